"""Providers: hand a rendered message to Twilio (SMS), SendGrid (email) or the outbox."""

from outbound.providers.base import (
    OutgoingMessage,
    PermanentProviderError,
    Provider,
    ProviderError,
    SendResult,
    TransientProviderError,
    build_providers,
    parse_retry_after,
    send_all,
)
from outbound.providers.outbox import Outbox
from outbound.providers.sendgrid_email import SendGridEmail
from outbound.providers.twilio_sms import TwilioSms

__all__ = [
    "OutgoingMessage",
    "Outbox",
    "PermanentProviderError",
    "Provider",
    "ProviderError",
    "SendGridEmail",
    "SendResult",
    "TransientProviderError",
    "TwilioSms",
    "build_providers",
    "parse_retry_after",
    "send_all",
]
