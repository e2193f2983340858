"""Is a webhook request really from the provider: Twilio's HMAC signature, SendGrid's ECDSA signature.

Both checks use the providers' own SDK helpers (`twilio.request_validator.RequestValidator`,
`sendgrid.helpers.eventwebhook.EventWebhook`), so they follow the providers' rules exactly
(Twilio: the full URL plus the sorted POST parameters; SendGrid: timestamp + raw body).
Pure functions: values in, a verdict out.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator, get_signature_algorithm

from outbound.errors import OutboundError

# SendGrid retries for up to 24 hours, but every retry is signed anew with a fresh timestamp;
# an old timestamp means a replayed request.
SENDGRID_MAX_AGE = timedelta(minutes=10)
SENDGRID_MAX_SKEW = timedelta(minutes=5)


class SignatureRefused(OutboundError):
    """A webhook request is not signed by the provider; `status` is the HTTP answer (401 missing, 403 invalid)."""

    def __init__(self, message: str, status: int = 403) -> None:
        self.status = status
        super().__init__(message)


def webhook_url(base_url: str, path: str, query: str = "") -> str:
    """The public URL the provider called: OUTBOUND_BASE_URL + path (+ query), the string Twilio signs."""
    return base_url.rstrip("/") + path + (f"?{query}" if query else "")


def check_twilio(
    tokens: Iterable[str], url: str, params: Any, signature: str | None, signature_settings: str | None = None
) -> str:
    """The auth token that signed this request (one of `tokens`); SignatureRefused when none did.

    `params` is the POST form (a multi-dict with `getlist`, or a plain dict).
    """
    if not signature:
        raise SignatureRefused("X-Twilio-Signature is missing", status=403)
    algorithm = get_signature_algorithm(signature_settings)
    for token in dict.fromkeys(t for t in tokens if t):
        if RequestValidator(token).validate(url, params, signature, algorithm=algorithm):
            return token
    raise SignatureRefused("X-Twilio-Signature does not match this request", status=403)


def check_sendgrid(
    public_keys: Iterable[str], body: bytes, signature: str | None, timestamp: str | None, now: datetime
) -> str:
    """The public key that verifies this request (one of `public_keys`); SignatureRefused otherwise.

    Missing headers → 401; a stale or far-future timestamp, a bad signature or an unreadable
    key → 403.
    """
    if not signature or not timestamp:
        raise SignatureRefused("the SendGrid signature or timestamp header is missing", status=401)
    try:
        signed_at = datetime.fromtimestamp(int(timestamp), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise SignatureRefused("the SendGrid timestamp is not a Unix time", status=403) from None
    if signed_at < now - SENDGRID_MAX_AGE or signed_at > now + SENDGRID_MAX_SKEW:
        raise SignatureRefused(f"the SendGrid timestamp {signed_at.isoformat()} is stale", status=403)
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureRefused("the body is not UTF-8, so it cannot be what SendGrid signed", status=403) from None
    for key in dict.fromkeys(k for k in public_keys if k):
        if _sendgrid_valid(key, payload, signature, timestamp):
            return key
    raise SignatureRefused("the SendGrid signature does not match this request", status=403)


def _sendgrid_valid(public_key: str, payload: str, signature: str, timestamp: str) -> bool:
    try:
        verifier = EventWebhook(public_key.strip())
        return bool(verifier.verify_signature(payload, signature, timestamp))
    # A key that is not a P-256 key, or a signature that is not base64 DER: not a valid signature.
    except (ValueError, TypeError, AttributeError, binascii.Error, UnsupportedAlgorithm):
        return False
