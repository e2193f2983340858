"""A fake Twilio and SendGrid on loopback, for tests, benchmarks and local runs.

`FakeProviderServer` is a real HTTP server that answers the two calls the
engine makes the way the real APIs do: Twilio's `POST
/2010-04-01/Accounts/{AccountSid}/Messages.json` (form-encoded, HTTP Basic
auth) and SendGrid's `POST /v3/mail/send` (JSON, Bearer key). Point the real
SDKs at `server.url` (`TwilioSms(api_base=...)`, `SendGridEmail(api_base=...)`).

It can misbehave on request: queue faults with `fail_next` (an error status
with Retry-After, a slow answer, a connection closed without an answer), or
make one address always fail with `twilio_error_for` / `sendgrid_error_for`.
Every accepted message is in `requests` and every HTTP request in
`attempts`, so a test can check that the provider saw a message at most once.
A SendGrid request with many personalizations is checked as SendGrid checks it
(at most 1000, each address once, substitutions as strings within their size
limit) and each personalization is recorded as one message, with its
substitutions applied. It speaks HTTP/1.1 with keep-alive and counts TCP
`connections` and the `peak_in_flight` requests, so tests can see connection
reuse and bounded concurrency.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import math
import re
import secrets
import socket
import subprocess
import sys
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import phonenumbers

from outbound.clock import Clock

DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
DEFAULT_SENDGRID_API_KEY = "SG.fake-key.fake-secret"
SERVICES = ("twilio", "sendgrid")

TWILIO_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json$")
SENDGRID_PATH = "/v3/mail/send"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SHORT_CODE = re.compile(r"^\d{5,6}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
MAX_PERSONALIZATIONS = 1000
MAX_SUBSTITUTION_BYTES = 10_000
# Headers SendGrid sets itself and refuses in `headers`.
SENDGRID_RESERVED_HEADERS = {
    "x-sg-id",
    "x-sg-eid",
    "received",
    "dkim-signature",
    "content-type",
    "content-transfer-encoding",
    "to",
    "from",
    "subject",
    "reply-to",
    "cc",
    "bcc",
}

TWILIO_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "The 'To' number {to} is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
}
SENDGRID_MESSAGES = {
    400: "Bad Request",
    401: "The provided authorization grant is invalid, expired, or revoked",
    403: "access forbidden",
    413: "The JSON payload you have included in your request is too large.",
    429: "too many requests",
    500: "internal server error",
    503: "service unavailable",
}

GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿"
    "abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")


@dataclass(frozen=True, kw_only=True)
class Fault:
    """How the fake misbehaves for one request: wait `delay` seconds, then close without an answer
    (`drop`), or answer `status` (with `code`, `message`, Retry-After), or else answer normally.

    A `delay` alone is a slow answer to a request that is still accepted and recorded, as a real
    provider may do after the client has timed out.
    """

    status: int | None = None
    retry_after: float | None = None
    delay: float | None = None
    drop: bool = False
    code: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


class _ProviderHTTPServer(ThreadingHTTPServer):
    """As a provider's front end takes bursts of connections: many workers' pools opening theirs at once
    do not overflow the accept queue (socketserver's default is 5)."""

    request_queue_size = 128


class FakeProviderServer:
    """Twilio Messages and SendGrid mail/send on 127.0.0.1, in a background thread. Use as a context manager.

    `latency` makes every answer wait that many seconds, as a provider across a network does.
    """

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        sendgrid_api_key: str = DEFAULT_SENDGRID_API_KEY,
        clock: Clock | None = None,
        latency: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        self.latency = latency
        self.auth_token = auth_token
        self.sendgrid_api_key = sendgrid_api_key
        self.clock = clock
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._faults: dict[str, deque[Fault]] = {service: deque() for service in SERVICES}
        self._address_faults: dict[str, dict[str, Fault]] = {service: {} for service in SERVICES}
        self._requests: list[dict[str, Any]] = []
        self._attempts: list[dict[str, Any]] = []
        self._connections = 0
        self._open: set[socket.socket] = set()
        self._in_flight = 0
        self._peak_in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FakeProviderServer:
        """Listen on a free loopback port."""
        handler = type("FakeProviderHandler", (_Handler,), {"fake": self})
        self._stopping.clear()
        self._httpd = _ProviderHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; requests still waiting on a `delay` are dropped at once."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._lock:
            kept_alive, self._open = list(self._open), set()
        for connection in kept_alive:
            # Handler threads wait on kept-alive connections for a next request that will not come.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give the SDKs, e.g. `http://127.0.0.1:54321`."""
        if self._httpd is None:
            raise RuntimeError("the fake provider server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- faults ------------------------------------------------------------

    def fail_next(
        self,
        service: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
        drop: bool = False,
        code: int | None = None,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` requests to `service` ('twilio' or 'sendgrid') misbehave; see `Fault`."""
        fault = Fault(status=status, retry_after=retry_after, delay=delay, drop=drop, code=code, message=message)
        with self._lock:
            self._faults[_service(service)].extend([fault] * times)

    def twilio_error_for(self, to: str, *, code: int, status: int = 400, message: str | None = None) -> None:
        """Answer every valid message to this number with a Twilio error (e.g. 21610 opted out)."""
        with self._lock:
            self._address_faults["twilio"][to] = Fault(status=status, code=code, message=message)

    def sendgrid_error_for(self, email: str, *, status: int = 400, message: str | None = None) -> None:
        """Answer every valid mail to this address with a SendGrid error."""
        with self._lock:
            self._address_faults["sendgrid"][email.lower()] = Fault(status=status, message=message)

    def reset(self) -> None:
        """Forget recorded requests and attempts, queued faults and per-address errors."""
        with self._lock:
            for service in SERVICES:
                self._faults[service].clear()
                self._address_faults[service].clear()
            self._requests.clear()
            self._attempts.clear()
            self._connections = 0
            self._peak_in_flight = self._in_flight

    # -- what was seen -----------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Accepted messages, oldest first: service, provider_id, to, sender, subject, body, html,
        headers (email headers), custom_args, status_callback, fields (the whole parsed request)."""
        with self._lock:
            return list(self._requests)

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """Every HTTP request received, accepted or not: service, method, path, to (the first recipient),
        messages (how many it carried: SendGrid personalizations, else 1), fields, status (None when
        dropped) and outcome ('accepted', 'rejected', 'fault' or 'dropped')."""
        with self._lock:
            return list(self._attempts)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (a client that keeps its connection alive opens few)."""
        with self._lock:
            return self._connections

    @property
    def peak_in_flight(self) -> int:
        """The most requests that were being answered at the same time."""
        with self._lock:
            return self._peak_in_flight

    def accepted(self, service: str | None = None) -> list[dict[str, Any]]:
        """Accepted messages, optionally for one service only."""
        return [r for r in self.requests if service is None or r["service"] == service]

    # -- request handling --------------------------------------------------

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections += 1
            self._open.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._open.discard(connection)

    def _handle(self, handler: _Handler) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            self._handle_request(handler)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handle_request(self, handler: _Handler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        path = urlsplit(handler.path).path
        match = TWILIO_PATH.match(path)
        service = "twilio" if match else "sendgrid" if path == SENDGRID_PATH else None
        fields = _parse_form(raw) if service == "twilio" else _parse_json(raw) if service == "sendgrid" else None
        attempt: dict[str, Any] = {
            "service": service,
            "method": handler.command,
            "path": path,
            "to": _recipient(service, fields),
            "messages": _message_count(service, fields),
            "fields": fields,
            "status": None,
            "outcome": None,
        }
        with self._lock:
            self._attempts.append(attempt)
            fault = self._faults[service].popleft() if service and self._faults[service] else None
        reply, records = self._answer(handler, service, match, fields, fault)
        with self._lock:
            if reply is None:
                attempt["outcome"] = "dropped"
            else:
                attempt["status"] = reply.status
                attempt["outcome"] = "accepted" if records else "fault" if fault and fault.status else "rejected"
            if records:
                self._requests.extend(records)
        if reply is None:
            handler.close_connection = True
            return
        try:
            handler.send_response(reply.status)
            if reply.body:
                handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up waiting (a `delay` longer than its timeout); the message stays accepted.
            handler.close_connection = True

    def _answer(self, handler, service, match, fields, fault):
        if self.latency and self._stopping.wait(self.latency):
            return None, None
        if fault is not None:
            if fault.delay and self._stopping.wait(fault.delay):
                return None, None
            if fault.drop:
                return None, None
            if fault.status:
                return _error_reply(service, fault), None
        if service is None:
            return _sendgrid_reply(404, [("not found", None)]), None
        if handler.command != "POST":
            return _error_reply(service, Fault(status=405, code=20004, message="Method not allowed")), None
        if service == "twilio":
            return self._twilio(handler, match, fields)
        return self._sendgrid(handler, fields)

    def _twilio(self, handler, match, form):
        if not _basic_auth_matches(handler.headers.get("Authorization"), self.account_sid, self.auth_token):
            return _twilio_reply(401, 20003, TWILIO_MESSAGES[20003]), None
        if match["sid"] != self.account_sid:
            return _twilio_reply(404, 20404, f"The requested resource {match.string} was not found"), None
        form = form or {}
        to, sender, service_sid = form.get("To", "").strip(), form.get("From"), form.get("MessagingServiceSid")
        body, callback = form.get("Body"), form.get("StatusCallback")
        if not to:
            return _twilio_reply(400, 21604, "A 'To' phone number is required."), None
        if not _phone_number(to):
            return _twilio_reply(400, 21211, TWILIO_MESSAGES[21211].format(to=to)), None
        if not sender and not service_sid:
            return _twilio_reply(400, 21603, "A 'From' phone number is required."), None
        if sender and not (_phone_number(sender) or SHORT_CODE.match(sender) or ALPHANUMERIC_SENDER.match(sender)):
            msg = f"The 'From' number {sender} is not a valid phone number, shortcode, or alphanumeric sender ID."
            return _twilio_reply(400, 21212, msg), None
        if service_sid and not MESSAGING_SERVICE_SID.match(service_sid):
            return _twilio_reply(400, 21701, f"The Messaging Service Sid {service_sid} is invalid."), None
        if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
            return _twilio_reply(400, 21602, "Message body is required."), None
        if body and len(body) > 1600:
            return _twilio_reply(400, 21617, "The concatenated message body exceeds the 1600 character limit."), None
        if callback and not re.match(r"^https?://[^\s_/]+", callback):
            return _twilio_reply(400, 21609, "Invalid StatusCallback url"), None
        with self._lock:
            fault = self._address_faults["twilio"].get(to)
        if fault is not None:
            return _error_reply("twilio", fault, to=to), None
        sid = "SM" + uuid.uuid4().hex
        created = format_datetime(self.clock.now() if self.clock else datetime.now(UTC))
        resource = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body or "",
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": sender,
            "messaging_service_sid": service_sid,
            "num_media": "0",
            "num_segments": str(sms_segments(body or "")),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if sender else "accepted",
            "to": to,
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        record = {
            "service": "twilio",
            "provider_id": sid,
            "to": to,
            "sender": sender,
            "messaging_service_sid": service_sid,
            "subject": None,
            "body": body or "",
            "html": None,
            "headers": {},
            "custom_args": {},
            "status_callback": callback,
            "fields": form,
        }
        return _Reply(201, json.dumps(resource).encode()), [record]

    def _sendgrid(self, handler, payload):
        authorization = handler.headers.get("Authorization")
        if not authorization:
            return _sendgrid_reply(401, [("authorization required", None)]), None
        if authorization != f"Bearer {self.sendgrid_api_key}":
            return _sendgrid_reply(401, [(SENDGRID_MESSAGES[401], None)]), None
        if not isinstance(payload, dict):
            return _sendgrid_reply(400, [("Bad Request", None)]), None
        errors = sendgrid_errors(payload)
        if errors:
            return _sendgrid_reply(400, errors), None
        recipients = [to["email"] for p in payload["personalizations"] for to in p["to"]]
        with self._lock:
            faults = [self._address_faults["sendgrid"].get(r.lower()) for r in recipients]
        fault = next((f for f in faults if f is not None), None)
        if fault is not None:
            return _error_reply("sendgrid", fault), None
        message_id = secrets.token_urlsafe(16)[:22]
        # One message per personalization: the same X-Message-Id, its own recipient, subject, headers and text.
        records = [
            _sendgrid_record(payload, personalization, message_id) for personalization in payload["personalizations"]
        ]
        return _Reply(202, b"", (("X-Message-Id", message_id),)), records


def _sendgrid_record(payload: dict[str, Any], personalization: dict[str, Any], message_id: str) -> dict[str, Any]:
    """What one personalization delivers: the request's content and subject with its substitutions made."""
    substitutions = personalization.get("substitutions") or {}

    def substituted(text: str | None) -> str | None:
        # SendGrid makes substitutions in one pass: a value is never searched for tags again.
        if text is None or not substitutions:
            return text
        pattern = re.compile("|".join(re.escape(tag) for tag in sorted(substitutions, key=len, reverse=True)))
        return pattern.sub(lambda found: substitutions[found.group(0)], text)

    recipients = [to["email"] for to in personalization["to"]]
    contents = {c["type"]: c["value"] for c in payload.get("content") or []}
    return {
        "service": "sendgrid",
        "provider_id": message_id,
        "to": recipients[0],
        "recipients": recipients,
        "sender": payload["from"]["email"],
        "sender_name": payload["from"].get("name"),
        "subject": substituted(personalization.get("subject") or payload.get("subject")),
        "body": substituted(contents.get("text/plain")),
        "html": substituted(contents.get("text/html")),
        "headers": {**(payload.get("headers") or {}), **(personalization.get("headers") or {})},
        "custom_args": {**(payload.get("custom_args") or {}), **(personalization.get("custom_args") or {})},
        "status_callback": None,
        "fields": payload,
    }


class FakeProviderProcess:
    """A `FakeProviderServer` in a process of its own, for benchmarks: its request handling then runs on
    another core instead of taking turns with the client for this process's interpreter lock.
    Use as a context manager; `url` as for the server; `accepted_count` and `reset` ask the child."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self._child: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> FakeProviderProcess:
        """Start the child and wait until it listens."""
        self._child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from outbound.testing import _serve_over_pipes; _serve_over_pipes({self.latency!r})",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self._read()
        return self

    def accepted_count(self, service: str | None = None) -> int:
        """How many messages the child's server accepted, optionally for one service only."""
        return int(self._ask(f"count {service or ''}"))

    def reset(self) -> None:
        """Forget what the child's server recorded."""
        self._ask("reset")

    def stop(self) -> None:
        """Stop the child's server and wait for the child to end."""
        if self._child is not None:
            self._ask("stop")
            self._child.wait(timeout=30)
            self._child = None

    def __enter__(self) -> FakeProviderProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _ask(self, command: str) -> str:
        assert self._child is not None and self._child.stdin is not None, "the fake provider process is not running"
        self._child.stdin.write(command + "\n")
        self._child.stdin.flush()
        return self._read()

    def _read(self) -> str:
        assert self._child is not None and self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError("the fake provider process ended")
        return line.strip()


def _serve_over_pipes(latency: float = 0.0) -> None:
    """The child of `FakeProviderProcess`: serve, print the URL, then answer one command per stdin line."""
    with FakeProviderServer(latency=latency) as server:
        print(server.url, flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "count":
                print(len(server.accepted(argument or None)), flush=True)
            elif command == "reset":
                server.reset()
                print("ok", flush=True)
            else:
                print("ok", flush=True)
                return


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProviderServer
    server_version = "fake-provider"
    # Keep-alive, as the real APIs: a client may send many requests over one connection.
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # As servers that keep connections alive do: without it, an answer's body waits for the client
        # to acknowledge its headers (Nagle's algorithm against delayed ACKs), 40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fake._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._closed(self.connection)

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        self.fake._handle(self)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: tests read `attempts`, not stderr."""


def sendgrid_errors(payload: dict[str, Any]) -> list[tuple[str, str | None]]:
    """SendGrid's validation of a mail/send body: (message, field) pairs, empty when valid."""
    errors: list[tuple[str, str | None]] = []
    personalizations = payload.get("personalizations")
    has_template = bool(payload.get("template_id"))
    if not isinstance(personalizations, list) or not personalizations:
        msg = "The personalizations field is required and must have at least one personalization."
        errors.append((msg, "personalizations"))
        personalizations = []
    elif len(personalizations) > MAX_PERSONALIZATIONS:
        errors.append(
            (
                f"The personalization block is limited to 1000 personalizations per API request. You have provided "
                f"{len(personalizations)} personalizations. Please consider splitting this into multiple requests "
                "and resending your request.",
                "personalizations",
            )
        )
        personalizations = []
    seen: set[str] = set()
    for i, personalization in enumerate(personalizations):
        to = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(to, list) or not to:
            errors.append(
                (
                    "The to array is required for all personalization objects, and must have at least one email "
                    "object with a valid email address.",
                    f"personalizations.{i}.to",
                )
            )
            continue
        for j, address in enumerate(to):
            email = address.get("email") if isinstance(address, dict) else None
            if not isinstance(email, str) or not EMAIL.match(email):
                errors.append(("Does not contain a valid address.", f"personalizations.{i}.to.{j}.email"))
            elif email.lower() in seen:
                errors.append(
                    (
                        "Each unique email address in the personalizations array should only be included once. "
                        "You have included email address more than once.",
                        f"personalizations.{i}.to.{j}.email",
                    )
                )
            else:
                seen.add(email.lower())
        errors.extend(_personalization_errors(personalization, i))
    if len(seen) > MAX_PERSONALIZATIONS:
        errors.append(("There is a limit of 1000 total recipients (to + cc + bcc) per request.", "personalizations"))
    sender = payload.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        errors.append(
            (
                "The from object must be provided for every email send. It is an object that requires the email "
                'parameter, but may also contain a name parameter.  e.g. {"email" : "example@example.com"}  or '
                '{"email" : "example@example.com", "name" : "Example Recipient"}.',
                "from.email",
            )
        )
    elif not isinstance(sender["email"], str) or not EMAIL.match(sender["email"]):
        errors.append(("The from email does not contain a valid address.", "from.email"))
    every_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and p.get("subject") for p in personalizations
    )
    subject = payload.get("subject")
    if not has_template and not every_has_subject and (not isinstance(subject, str) or not subject):
        errors.append(
            (
                "The subject is required. You can get around this requirement if you use a template with a subject "
                "defined or if every personalization has a subject defined.",
                "subject",
            )
        )
    errors.extend(_content_errors(payload.get("content"), has_template))
    errors.extend(_string_map_errors(payload.get("custom_args"), "custom_args"))
    errors.extend(_string_map_errors(payload.get("headers"), "headers"))
    headers = payload.get("headers") if isinstance(payload.get("headers"), dict) else {}
    for name in headers:
        if name.lower() in SENDGRID_RESERVED_HEADERS:
            errors.append((f"The header {name} is reserved and cannot be set.", f"headers.{name}"))
    return errors


def _personalization_errors(personalization: dict[str, Any], i: int) -> list[tuple[str, str | None]]:
    """A personalization's headers, custom_args and substitutions: string maps, no reserved header,
    substitutions within their size limit."""
    where = f"personalizations.{i}"
    errors = _string_map_errors(personalization.get("headers"), f"{where}.headers")
    errors.extend(_string_map_errors(personalization.get("custom_args"), f"{where}.custom_args"))
    substitutions = personalization.get("substitutions")
    errors.extend(_string_map_errors(substitutions, f"{where}.substitutions"))
    headers = personalization.get("headers") if isinstance(personalization.get("headers"), dict) else {}
    for name in headers:
        if name.lower() in SENDGRID_RESERVED_HEADERS:
            errors.append((f"The header {name} is reserved and cannot be set.", f"{where}.headers.{name}"))
    if isinstance(substitutions, dict):
        size = sum(len(str(k).encode()) + len(v.encode()) for k, v in substitutions.items() if isinstance(v, str))
        if size > MAX_SUBSTITUTION_BYTES:
            errors.append(
                (
                    f"The total size of your substitutions may not exceed {MAX_SUBSTITUTION_BYTES:,} bytes per "
                    "personalization object.",
                    f"{where}.substitutions",
                )
            )
    return errors


def _content_errors(content: Any, has_template: bool) -> list[tuple[str, str | None]]:
    if content is None or content == []:
        if has_template:
            return []
        return [
            (
                "Unless a valid template_id is provided, the content parameter is required. There must be at least "
                "one defined content block. We typically suggest both text/plain and text/html blocks are included, "
                "but only one block is required.",
                "content",
            )
        ]
    if not isinstance(content, list):
        return [("Invalid type. Expected: array, given: " + _json_type(content) + ".", "content")]
    errors: list[tuple[str, str | None]] = []
    types = []
    for i, block in enumerate(content):
        block = block if isinstance(block, dict) else {}
        kind, value = block.get("type"), block.get("value")
        if not isinstance(kind, str) or not kind or ";" in kind or "\r" in kind or "\n" in kind:
            msg = (
                "The content type cannot contain ';', or CRLF characters. "
                "The content type must be at least one character in length."
            )
            errors.append((msg, f"content.{i}.type"))
        if not isinstance(value, str) or not value:
            msg = "The content value must be a string at least one character in length."
            errors.append((msg, f"content.{i}.value"))
        types.append(kind)
    # text/plain first, then text/html, then any other type.
    ranks = [{"text/plain": 0, "text/html": 1}.get(t, 2) for t in types]
    if ranks != sorted(ranks):
        msg = "If present, text/plain and text/html may only be provided in this order: text/plain, text/html, other."
        errors.append((msg, "content"))
    return errors


def _string_map_errors(value: Any, name: str) -> list[tuple[str, str | None]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [(f"Invalid type. Expected: object, given: {_json_type(value)}.", name)]
    return [
        (f"Invalid type. Expected: string, given: {_json_type(v)}.", f"{name}.{k}")
        for k, v in value.items()
        if not isinstance(v, str)
    ]


def sms_segments(body: str) -> int:
    """How many SMS segments Twilio bills for a body: GSM-7 160/153, else UCS-2 70/67 (UTF-16 units)."""
    if all(ch in GSM7 or ch in GSM7_EXTENSION for ch in body):
        units, single, multi = sum(2 if ch in GSM7_EXTENSION else 1 for ch in body), 160, 153
    else:
        units, single, multi = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _phone_number(value: str) -> bool:
    """E.164 with a country code and a length that country can have, as Twilio checks a 'To'."""
    if not E164.match(value):
        return False
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(value))
    except phonenumbers.NumberParseException:
        return False


def _service(name: str) -> str:
    if name not in SERVICES:
        raise ValueError(f"service must be one of {SERVICES}, not {name!r}")
    return name


def _parse_form(raw: bytes) -> dict[str, str]:
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _recipient(service: str | None, fields: Any) -> str | None:
    if service == "twilio" and isinstance(fields, dict):
        return fields.get("To")
    try:
        return fields["personalizations"][0]["to"][0]["email"]
    except (TypeError, KeyError, IndexError):
        return None


def _message_count(service: str | None, fields: Any) -> int:
    if service != "sendgrid":
        return 1
    try:
        return len(fields["personalizations"])
    except (TypeError, KeyError):
        return 1


def _basic_auth_matches(header: str | None, username: str, password: str) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given, f"{username}:{password}")


def _error_reply(service: str, fault: Fault, to: str = "") -> _Reply:
    headers = ()
    if fault.retry_after is not None:
        retry = fault.retry_after
        headers = (("Retry-After", str(int(retry)) if float(retry).is_integer() else str(retry)),)
    status = fault.status or 500
    if service == "twilio":
        code = fault.code or {429: 20429, 500: 20500, 503: 20503}.get(status, status)
        message = fault.message or TWILIO_MESSAGES.get(code, f"Error {code}").format(to=to)
        return _twilio_reply(status, code, message, headers)
    message = fault.message or SENDGRID_MESSAGES.get(status, "error")
    return _sendgrid_reply(status, [(message, None)], headers)


def _twilio_reply(status: int, code: int, message: str, headers: tuple = ()) -> _Reply:
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": more_info, "status": status}
    return _Reply(status, json.dumps(body).encode(), headers)


def _sendgrid_reply(status: int, errors: list[tuple[str, str | None]], headers: tuple = ()) -> _Reply:
    body = {"errors": [{"message": message, "field": field, "help": None} for message, field in errors]}
    return _Reply(status, json.dumps(body).encode(), headers)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value), "unknown")
