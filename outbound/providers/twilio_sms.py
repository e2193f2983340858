"""SMS through Twilio's Messages API, with the official `twilio` SDK."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Mapping
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from outbound.providers.base import (
    OutgoingMessage,
    PermanentProviderError,
    ProviderError,
    SendResult,
    TransientProviderError,
    parse_retry_after,
    redact,
)
from outbound.providers.pool import SendPool, may_have_arrived, read_environment_once

# Twilio error codes that say this recipient cannot be reached by SMS; never retried.
PERMANENT_CODES: dict[int, str] = {
    21610: "recipient opted out",
    21211: "invalid 'To' number",
    21614: "'To' number is not a mobile number",
    30006: "landline or unreachable carrier",
}
# Delivery failures that can clear up (handset off, unknown for now).
TRANSIENT_CODES: dict[int, str] = {
    30003: "unreachable destination handset",
    30005: "unknown destination handset",
}


def classify_twilio_error(
    http_status: int, code: int | None, detail: str, retry_after: float | None = None
) -> ProviderError:
    """The ProviderError for one Twilio error answer: known codes first, then the HTTP status."""
    code_text = str(code) if code is not None else None
    if code in PERMANENT_CODES:
        return PermanentProviderError(
            f"twilio {code}: {PERMANENT_CODES[code]}", code=code_text, http_status=http_status
        )
    if code in TRANSIENT_CODES:
        return TransientProviderError(
            f"twilio {code}: {TRANSIENT_CODES[code]}", code=code_text, retry_after=retry_after, http_status=http_status
        )
    message = f"twilio HTTP {http_status}" + (f" ({code})" if code is not None else "") + f": {detail}"
    if http_status == 429 or http_status >= 500:
        return TransientProviderError(message, code=code_text, retry_after=retry_after, http_status=http_status)
    return PermanentProviderError(message, code=code_text, http_status=http_status)


class _HeaderKeepingHttpClient(TwilioHttpClient):
    """The SDK's HTTP client (a pooled `requests.Session`, so connections are kept alive), keeping the last
    response's headers: the SDK's exceptions drop them, and Retry-After lives there. One per sending thread."""

    def __init__(self, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self.headers: Mapping[str, str] | None = None

    def request(self, *args: Any, **kwargs: Any) -> Any:  # the SDK's untyped Response
        self.headers = None
        response = super().request(*args, **kwargs)
        self.headers = response.headers
        return response

    def last_header(self, name: str) -> str | None:
        return self.headers.get(name) if self.headers is not None else None


def _client(account_sid: str, auth_token: str, api_base: str | None, timeout: float) -> Client:
    """One thread's SDK client, with its own HTTP session."""
    http = _HeaderKeepingHttpClient(timeout=timeout)
    client = Client(account_sid, auth_token, http_client=http)
    if api_base:
        client.api.base_url = api_base.rstrip("/")
        # TWILIO_EDGE / TWILIO_REGION in the environment would rewrite the host away from api_base.
        client.edge = None
        client.region = None
    read_environment_once(http.session, client.api.base_url)
    return client


class TwilioSms:
    """Sends SMS with Twilio.

    The sender is the message's own `sender` (a tenant's number) when set,
    else the Messaging Service, else `from_number`. `api_base` points the SDK
    at another host (a loopback fake in tests). Only To and Body carry
    personal data; nothing else about the contact is sent. `send_many` sends
    up to `concurrency` messages at once (Twilio takes one message per
    request), each sending thread over its own kept-alive connection.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base: str | None = None,
        timeout: float = 10,
        status_callback: str | None = None,
        concurrency: int = 8,
    ) -> None:
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        self._pool: SendPool[Client] = SendPool(
            concurrency, functools.partial(_client, account_sid, auth_token, api_base, timeout), "twilio"
        )
        weakref.finalize(self, self._pool.close)

    def send_many(self, messages: list[OutgoingMessage]) -> list[SendResult | ProviderError]:
        """Send each message in its own request, up to `concurrency` at once; each one's result or error, in order."""
        return self._pool.map(self._result, messages)

    def close(self) -> None:
        """End the sending threads (and their connections) once idle."""
        self._pool.close()

    def _result(self, message: OutgoingMessage) -> SendResult | ProviderError:
        try:
            return self.send(message)
        except ProviderError as error:
            return error

    def send(self, message: OutgoingMessage) -> SendResult:
        """Create one Message resource; raise Transient/PermanentProviderError when Twilio does not accept it."""
        if message.channel != "sms":
            raise PermanentProviderError(f"twilio sends sms, not {message.channel}", code="wrong_channel")
        params: dict[str, Any] = {"to": message.to, "body": message.body}
        if message.sender:
            params["from_"] = message.sender
        elif self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        elif self.from_number:
            params["from_"] = self.from_number
        else:
            raise PermanentProviderError("no SMS sender: set a from number or messaging service", code="no_sender")
        if self.status_callback:
            params["status_callback"] = self.status_callback
        client = self._pool.client()
        try:
            created = client.messages.create(**params)
        # `from None`: the SDK's exceptions quote the request, and tracebacks end up in logs.
        except (TwilioRestException, TwilioServiceException) as exc:
            detail = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
            retry_after = parse_retry_after(client.http_client.last_header("Retry-After"))
            raise classify_twilio_error(exc.status, exc.code, redact(str(detail), message.to), retry_after) from None
        except requests.exceptions.RequestException as exc:
            raise TransientProviderError(
                f"twilio unreachable: {type(exc).__name__}", ambiguous=may_have_arrived(exc)
            ) from None
        return SendResult(provider=self.name, provider_id=created.sid, status=created.status or "queued")
