"""Email through SendGrid's v3 mail/send, with the official `sendgrid` SDK.

A batch of emails goes out in as few requests as SendGrid allows: one request
carries up to 1000 personalizations, each with its own recipient, subject,
headers, custom_args and text. The text travels as per-personalization
`substitutions` of one substitution tag that is the whole content, so every
recipient gets exactly the message rendered for them. Requests run side by
side on a bounded pool of threads, each over its own kept-alive connection.
"""

from __future__ import annotations

import functools
import http.client
import json
import math
import urllib.request
import weakref
from typing import Any, cast
from urllib.error import URLError

import python_http_client
import requests
from python_http_client.exceptions import HTTPError, err_dict
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, From, Header, Mail, SendGridException, To
from sendgrid.helpers.mail.validators import ValidateApiKey

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

DEFAULT_API_BASE = "https://api.sendgrid.com"
# SendGrid's limits for one mail/send request: personalizations per request, and the bytes of one
# personalization's substitutions (10,000 is the stricter of the figures SendGrid has published).
MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 10_000
# The whole content of a batched request: each personalization substitutes its own rendered text.
TEXT_TAG = "%outbound-text%"
HTML_TAG = "%outbound-html%"
# Answers that refuse the request as a whole before taking any of it: halves of it may pass.
SPLIT_STATUSES = (400, 413)

_API_KEY_CHECK = ValidateApiKey()


def classify_sendgrid_error(http_status: int, detail: str, retry_after: float | None = None) -> ProviderError:
    """The ProviderError for one SendGrid error answer: 429 and 5xx may pass later, other 4xx never will."""
    message = f"sendgrid HTTP {http_status}: {detail}"
    if http_status == 429 or http_status >= 500:
        return TransientProviderError(message, retry_after=retry_after, http_status=http_status)
    return PermanentProviderError(message, http_status=http_status)


class _Answer:
    """A `requests` response in the shape python_http_client reads from urllib's (getcode, read, info)."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response

    def getcode(self) -> int:
        return self._response.status_code

    def read(self) -> bytes:
        return self._response.content

    def info(self) -> Any:
        return self._response.headers


class _KeepAliveHttpClient(python_http_client.Client):
    """The SDK's HTTP client over one `requests.Session`: urllib, its default, opens a new connection per
    request. Failures keep urllib's contract, which `SendGridEmail` reads: URLError when the request
    never left, another OSError when it may have arrived, python_http_client's HTTPError for 4xx/5xx."""

    def __init__(self, *, session: requests.Session, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._session = session

    def _build_client(self, name: str | None = None) -> _KeepAliveHttpClient:
        url_path = self._url_path + [name] if name else self._url_path
        return _KeepAliveHttpClient(
            session=self._session,
            host=self.host,
            version=self._version,
            request_headers=self.request_headers,
            url_path=url_path,
            append_slash=self.append_slash,
            timeout=self.timeout,
        )

    def _make_request(
        self, opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout: float | None = None
    ) -> _Answer:
        try:
            response = self._session.request(
                request.get_method(),
                request.full_url,
                data=request.data,
                headers=dict(request.header_items()),
                timeout=timeout or self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.RequestException as exc:
            if not may_have_arrived(exc):
                raise URLError(type(exc).__name__) from None
            if isinstance(exc, requests.exceptions.Timeout):
                raise TimeoutError(type(exc).__name__) from None
            raise ConnectionError(type(exc).__name__) from None
        if response.status_code >= 400:
            error = err_dict.get(response.status_code, HTTPError)
            raise error(response.status_code, response.reason, response.content, response.headers)
        return _Answer(response)


def _client(api_key: str, host: str, timeout: float) -> SendGridAPIClient:
    """One thread's SDK client, with its own kept-alive HTTP session."""
    client = SendGridAPIClient(api_key, host=host)
    session = requests.Session()
    read_environment_once(session, host)
    client.client = _KeepAliveHttpClient(
        session=session, host=host, version=3, request_headers=client._default_headers, timeout=timeout
    )
    return client


class SendGridEmail:
    """Sends email with SendGrid: plain text, optional HTML, extra headers (List-Unsubscribe).

    The sender is the message's own `sender`/`sender_name` when set, else
    `from_email`/`from_name`. The only metadata sent is `custom_args` with our
    message id and tenant slug, so delivery events can be matched without
    personal data. `send_many` batches messages into shared requests (see the
    module's docstring), up to `concurrency` requests at once.
    """

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        from_email: str | None,
        from_name: str | None = None,
        api_base: str | None = None,
        timeout: float = 10,
        concurrency: int = 8,
    ) -> None:
        self.from_email = from_email
        self.from_name = from_name
        host = (api_base or DEFAULT_API_BASE).rstrip("/")
        self._pool: SendPool[SendGridAPIClient] = SendPool(
            concurrency, functools.partial(_client, api_key, host, timeout), "sendgrid"
        )
        weakref.finalize(self, self._pool.close)

    def send(self, message: OutgoingMessage) -> SendResult:
        """POST one mail/send; raise Transient/PermanentProviderError when SendGrid does not accept it."""
        provider_id = self._post(self._mail(message).get(), [message.to])
        return SendResult(provider=self.name, provider_id=provider_id, status="accepted")

    def send_many(self, messages: list[OutgoingMessage]) -> list[SendResult | ProviderError]:
        """Send a batch in shared requests where SendGrid allows; each message's result or error, in order.

        Messages share a request when they share a sender and content blocks;
        one address appears once per request (SendGrid refuses repeats).
        Anything else (no subject, text too long for a substitution, content
        SendGrid's SDK refuses) goes in a request of its own, as `send` does it.
        """
        groups: dict[tuple[str, str | None, bool], list[int]] = {}
        parts: list[list[int]] = []
        for index, message in enumerate(messages):
            key = self._batch_key(message)
            if key is None:
                parts.append([index])
            else:
                groups.setdefault(key, []).append(index)
        for indexes in groups.values():
            parts.extend(self._chunks(messages, indexes))
        answers = self._pool.map(lambda chunk: self._send_request([messages[i] for i in chunk]), parts)
        results: list[SendResult | ProviderError | None] = [None] * len(messages)
        for chunk, answer in zip(parts, answers, strict=True):
            for index, result in zip(chunk, answer, strict=True):
                results[index] = result
        # Every index is in exactly one chunk and each chunk answers for all of its messages: none is left None.
        return cast(list[SendResult | ProviderError], results)

    def close(self) -> None:
        """End the sending threads (and their connections) once idle."""
        self._pool.close()

    # -- batches ---------------------------------------------------------------------

    def _batch_key(self, message: OutgoingMessage) -> tuple[str, str | None, bool] | None:
        """What messages sharing a request must share, or None when this one must go alone."""
        sender = message.sender or self.from_email
        if message.channel != "email" or not sender or not message.subject or not message.body or message.html == "":
            return None
        texts = [message.subject, message.body, message.html or "", *message.headers.values()]
        if any(TEXT_TAG in text or HTML_TAG in text for text in texts):
            return None
        size = (
            len(TEXT_TAG)
            + len(message.body.encode())
            + (len(HTML_TAG) + len(message.html.encode()) if message.html is not None else 0)
        )
        if size > MAX_SUBSTITUTION_BYTES:
            return None
        try:
            _API_KEY_CHECK.validate_message_text(message.body)
            _API_KEY_CHECK.validate_message_text(message.html)
        except SendGridException:
            return None
        return sender, message.sender_name or self.from_name, message.html is not None

    def _chunks(self, messages: list[OutgoingMessage], indexes: list[int]) -> list[list[int]]:
        """Requests of at most 1000 distinct addresses, spread so every sending thread gets one."""
        rounds: list[list[int]] = []  # the n-th message to an address goes in the n-th round
        seen: dict[str, int] = {}
        for index in indexes:
            address = messages[index].to.strip().lower()
            n = seen[address] = seen.get(address, -1) + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(index)
        chunks: list[list[int]] = []
        for members in rounds:
            size = min(MAX_PERSONALIZATIONS, math.ceil(len(members) / self._pool.size))
            chunks.extend(members[start : start + size] for start in range(0, len(members), size))
        return chunks

    def _send_request(self, batch: list[OutgoingMessage]) -> list[SendResult | ProviderError]:
        """One request for the batch; its answer is every message's. A refusal of the request as a whole
        (400, 413) means SendGrid took none of it: the halves go again, to find the messages at fault."""
        if len(batch) == 1:
            try:
                return [self.send(batch[0])]
            except ProviderError as error:
                return [error]
        try:
            provider_id = self._post(self._payload(batch), [m.to for m in batch])
        except ProviderError as error:
            if isinstance(error, PermanentProviderError) and error.http_status in SPLIT_STATUSES:
                half = len(batch) // 2
                return self._send_request(batch[:half]) + self._send_request(batch[half:])
            return [error] * len(batch)
        result = SendResult(provider=self.name, provider_id=provider_id, status="accepted")
        return [result] * len(batch)

    def _payload(self, batch: list[OutgoingMessage]) -> dict[str, Any]:
        first = batch[0]
        sender: dict[str, str] = {"email": first.sender or self.from_email or ""}
        if first.sender_name or self.from_name:
            sender["name"] = first.sender_name or self.from_name or ""
        content = [{"type": "text/plain", "value": TEXT_TAG}]
        if first.html is not None:
            content.append({"type": "text/html", "value": HTML_TAG})
        return {"from": sender, "content": content, "personalizations": [_personalization(m) for m in batch]}

    # -- one request -------------------------------------------------------------------

    def _post(self, body: dict[str, Any], addresses: list[str]) -> str:
        """POST one mail/send body; SendGrid's X-Message-Id, or a ProviderError without the addresses in it."""
        try:
            response = self._pool.client().send(body)
        except HTTPError as exc:
            detail = _first_error(exc.body)
            for address in addresses:
                detail = redact(detail, address)
            retry_after = parse_retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            raise classify_sendgrid_error(exc.status_code, detail, retry_after) from None
        except URLError as exc:
            # Raised up to the end of sending the request: SendGrid never got it whole.
            raise TransientProviderError(f"sendgrid unreachable: {exc.reason}", ambiguous=False) from None
        except (OSError, http.client.HTTPException) as exc:
            # Raised while waiting for the answer: the request was sent and may have been accepted.
            raise TransientProviderError(f"sendgrid did not answer: {type(exc).__name__}", ambiguous=True) from None
        return response.headers.get("X-Message-Id") or ""

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


def _personalization(message: OutgoingMessage) -> dict[str, Any]:
    """One message's part of a batched request: its recipient, subject, headers, our ids and its own text."""
    substitutions = {TEXT_TAG: message.body}
    if message.html is not None:
        substitutions[HTML_TAG] = message.html
    personalization: dict[str, Any] = {
        "to": [{"email": message.to}],
        "subject": message.subject,
        "substitutions": substitutions,
        "custom_args": {"message_id": str(message.message_id), "tenant": message.tenant},
    }
    if message.headers:
        personalization["headers"] = dict(message.headers)
    return personalization
