"""What a provider is: a message going out, the provider's answer, and the errors it can raise.

Dispatch depends only on this module: it hands an `OutgoingMessage` to a
`Provider` and gets a `SendResult` back or a `ProviderError` that says whether
trying again could help.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Literal, Protocol, cast

from outbound.errors import InvalidInput, OutboundError

if TYPE_CHECKING:
    from outbound.config import Settings
    from outbound.providers.outbox import Outbox

Channel = Literal["sms", "email"]
CHANNELS: tuple[str, ...] = ("sms", "email")


@dataclass(frozen=True, kw_only=True)
class OutgoingMessage:
    """One rendered message, ready for a provider.

    `message_id` and `tenant` are our own identifiers; they are the only
    metadata a provider may receive besides the address and the content.
    `sender` overrides the provider's default sender (a tenant's own number or
    address); `headers` are extra email headers such as List-Unsubscribe.
    """

    message_id: int
    tenant: str
    channel: Channel
    to: str
    sender: str | None
    subject: str | None
    body: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sender_name: str | None = None

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise InvalidInput(f"must be one of {', '.join(CHANNELS)}, not {self.channel!r}", field="channel")
        if not self.to:
            raise InvalidInput("is required", field="to")


@dataclass(frozen=True, kw_only=True)
class SendResult:
    """A provider accepted a message: its name, its id for the message, and the status it reported."""

    provider: str
    provider_id: str
    status: str


class ProviderError(OutboundError):
    """A provider did not accept a message.

    `transient` says whether the same request may succeed later (rate limits,
    outages, timeouts); `code` is the provider's error code when it gave one
    (Twilio's numeric codes as strings); `retry_after` is the wait in seconds
    the provider asked for; `http_status` is the HTTP status when there was an
    answer. `ambiguous` is true when the request may have reached the provider
    before the failure (a read timeout, a connection dropped after sending), so
    the message may in fact have been accepted and a retry could duplicate it.
    """

    transient: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        http_status: int | None = None,
        ambiguous: bool = False,
        transient: bool | None = None,
    ) -> None:
        if transient is not None:
            self.transient = transient
        self.code = code
        self.retry_after = retry_after
        self.http_status = http_status
        self.ambiguous = ambiguous
        super().__init__(message)


class TransientProviderError(ProviderError):
    """The provider could not take the message now; the same request may succeed later."""

    transient = True


class PermanentProviderError(ProviderError):
    """The provider refused the message; sending it again would fail the same way."""

    transient = False


class Provider(Protocol):
    """Sends one message over one channel, at most once per call.

    A provider may also have `send_many(messages)`, returning each message's
    SendResult or ProviderError in order, to send a batch concurrently or in
    shared requests; `send_all` uses it when it is there.
    """

    name: str

    def send(self, message: OutgoingMessage) -> SendResult:
        """Hand the message to the provider; raise a ProviderError when it is not accepted."""
        ...


def send_all(
    providers: dict[str, Provider], outgoing: list[tuple[int, OutgoingMessage]]
) -> list[tuple[int, SendResult | ProviderError]]:
    """Hand a batch to its providers; each message's result or error, keyed by message id, in the batch's order.

    Each provider gets its share of the batch in one call (its `send_many`),
    so it can send concurrently and in shared requests; one without it sends
    one message at a time.
    """
    shares: dict[int, tuple[Provider, list[int]]] = {}
    for index, (_, out) in enumerate(outgoing):
        provider = providers[out.channel]
        shares.setdefault(id(provider), (provider, []))[1].append(index)
    results: list[SendResult | ProviderError | None] = [None] * len(outgoing)
    for provider, indexes in shares.values():
        answers = _send_share(provider, [outgoing[i][1] for i in indexes])
        for index, answer in zip(indexes, answers, strict=True):
            results[index] = answer
    # Every index belongs to exactly one share and each share answers for all of its messages: none is left None.
    answered = cast(list[SendResult | ProviderError], results)
    return [(message_id, result) for (message_id, _), result in zip(outgoing, answered, strict=True)]


def _send_share(provider: Provider, messages: list[OutgoingMessage]) -> list[SendResult | ProviderError]:
    send_many: Callable[[list[OutgoingMessage]], list[SendResult | ProviderError]] | None = getattr(
        provider, "send_many", None
    )
    if send_many is not None:
        return send_many(messages)
    answers: list[SendResult | ProviderError] = []
    for message in messages:
        try:
            answers.append(provider.send(message))
        except ProviderError as error:
            answers.append(error)
    return answers


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), or None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds)


def redact(text: str, address: str) -> str:
    """The provider's error text without the recipient's address, so errors can be stored without personal data."""
    return text.replace(address, "<to>") if address else text


def build_providers(settings: Settings, *, outbox: Outbox | None = None) -> dict[str, Provider]:
    """One provider per channel from settings: Twilio for SMS and SendGrid for email when their
    credentials are set, else the outbox (the one given, or a new in-memory one shared by both channels)."""
    # Imported here because the provider modules import this one.
    from outbound.providers.outbox import Outbox
    from outbound.providers.sendgrid_email import SendGridEmail
    from outbound.providers.twilio_sms import TwilioSms

    fallback = outbox if outbox is not None else Outbox()
    providers: dict[str, Provider] = {"sms": fallback, "email": fallback}
    if settings.twilio_account_sid and settings.twilio_auth_token:
        providers["sms"] = TwilioSms(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            from_number=settings.twilio_from_number,
            messaging_service_sid=settings.twilio_messaging_service_sid,
            api_base=settings.twilio_api_base,
            status_callback=f"{settings.base_url.rstrip('/')}/webhooks/twilio/status",
            concurrency=settings.provider_concurrency,
        )
    if settings.sendgrid_api_key:
        providers["email"] = SendGridEmail(
            settings.sendgrid_api_key.get_secret_value(),
            from_email=settings.sendgrid_from_email,
            api_base=settings.sendgrid_api_base,
            concurrency=settings.provider_concurrency,
        )
    return providers
