"""Email through SendGrid's v3 mail/send, with the official `sendgrid` SDK."""

from __future__ import annotations

import http.client
import json
from urllib.error import URLError

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, From, Header, Mail, SendGridException, To

from outbound.providers.base import (
    OutgoingMessage,
    PermanentProviderError,
    ProviderError,
    SendResult,
    TransientProviderError,
    parse_retry_after,
    redact,
)

DEFAULT_API_BASE = "https://api.sendgrid.com"


def classify_sendgrid_error(http_status: int, detail: str, retry_after: float | None = None) -> ProviderError:
    """The ProviderError for one SendGrid error answer: 429 and 5xx may pass later, other 4xx never will."""
    message = f"sendgrid HTTP {http_status}: {detail}"
    if http_status == 429 or http_status >= 500:
        return TransientProviderError(message, retry_after=retry_after, http_status=http_status)
    return PermanentProviderError(message, http_status=http_status)


class SendGridEmail:
    """Sends email with SendGrid: plain text, optional HTML, extra headers (List-Unsubscribe).

    The sender is the message's own `sender`/`sender_name` when set, else
    `from_email`/`from_name`. The only metadata sent is `custom_args` with our
    message id and tenant slug, so delivery events can be matched without
    personal data.
    """

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        from_email: str | None,
        from_name: str | None = None,
        api_base: str | None = None,
        timeout: float = 10,
    ) -> None:
        self.from_email = from_email
        self.from_name = from_name
        self._client = SendGridAPIClient(api_key, host=(api_base or DEFAULT_API_BASE).rstrip("/"))
        # The SDK has no timeout argument; its HTTP client copies this one into every request.
        self._client.client.timeout = timeout

    def send(self, message: OutgoingMessage) -> SendResult:
        """POST one mail/send; raise Transient/PermanentProviderError when SendGrid does not accept it."""
        mail = self._mail(message)
        try:
            response = self._client.send(mail)
        except HTTPError as exc:
            detail = redact(_first_error(exc.body), message.to)
            retry_after = parse_retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            raise classify_sendgrid_error(exc.status_code, detail, retry_after) from None
        except URLError as exc:
            # urllib wraps failures up to the end of sending the request: SendGrid never got it whole.
            raise TransientProviderError(f"sendgrid unreachable: {exc.reason}", ambiguous=False) from None
        except (OSError, http.client.HTTPException) as exc:
            # Raised while waiting for the answer: the request was sent and may have been accepted.
            raise TransientProviderError(f"sendgrid did not answer: {type(exc).__name__}", ambiguous=True) from None
        provider_id = response.headers.get("X-Message-Id") or ""
        return SendResult(provider=self.name, provider_id=provider_id, status="accepted")

    def _mail(self, message: OutgoingMessage) -> Mail:
        if message.channel != "email":
            raise PermanentProviderError(f"sendgrid sends email, not {message.channel}", code="wrong_channel")
        sender = message.sender or self.from_email
        if not sender:
            raise PermanentProviderError("no email sender: set a from address", code="no_sender")
        try:
            mail = Mail(
                from_email=From(sender, message.sender_name or self.from_name),
                to_emails=To(message.to),
                subject=message.subject,
                plain_text_content=message.body,
                html_content=message.html,
            )
            for key, value in message.headers.items():
                mail.add_header(Header(key, value))
            mail.add_custom_arg(CustomArg("message_id", str(message.message_id)))
            mail.add_custom_arg(CustomArg("tenant", message.tenant))
        except SendGridException as exc:
            # The SDK refuses content that looks like an API key; sending it again would fail the same way.
            raise PermanentProviderError(
                f"sendgrid refused the content: {type(exc).__name__}", code="invalid_content"
            ) from None
        return mail


def _first_error(body: bytes | str | None) -> str:
    """SendGrid's first error message (and field), or the raw answer when it is not SendGrid's error JSON."""
    if not body:
        return "no details"
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        errors = json.loads(text)["errors"]
        first = errors[0]
        return f"{first.get('message')}" + (f" (field {first['field']})" if first.get("field") else "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return text[:200]
