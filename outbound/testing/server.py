"""The fake provider's server: a real HTTP server on loopback that records what it sees.

`FakeProviderServer` routes each request to the Twilio or SendGrid checks (`outbound.testing.twilio`,
`outbound.testing.sendgrid`), applies the faults queued for it (`outbound.testing.faults`), and records
every accepted message in `requests` and every HTTP request in `attempts`. It speaks HTTP/1.1 with
keep-alive and counts TCP `connections` and the `peak_in_flight` requests, so tests can see connection
reuse and bounded concurrency.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from outbound.clock import Clock
from outbound.testing.faults import Fault, Reply, error_reply, sendgrid_reply
from outbound.testing.sendgrid import SENDGRID_PATH, sendgrid_messages, sendgrid_rejection
from outbound.testing.twilio import TWILIO_PATH, twilio_message, twilio_rejection

DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
DEFAULT_SENDGRID_API_KEY = "SG.fake-key.fake-secret"
SERVICES = ("twilio", "sendgrid")

# What the fake answers a request: its reply (None: close without one) and the messages it accepted.
Answer = tuple[Reply | None, list[dict[str, Any]] | None]


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

    def _answer(
        self, handler: _Handler, service: str | None, match: re.Match[str] | None, fields: Any, fault: Fault | None
    ) -> Answer:
        if self.latency and self._stopping.wait(self.latency):
            return None, None
        if service is None:  # no fault is ever queued for an unknown path
            return sendgrid_reply(404, [("not found", None)]), None
        if fault is not None:
            if fault.delay and self._stopping.wait(fault.delay):
                return None, None
            if fault.drop:
                return None, None
            if fault.status:
                return error_reply(service, fault), None
        if handler.command != "POST":
            return error_reply(service, Fault(status=405, code=20004, message="Method not allowed")), None
        if match is not None:  # the Twilio path
            return self._twilio(handler, match, fields)
        return self._sendgrid(handler, fields)

    def _twilio(self, handler: _Handler, match: re.Match[str], form: dict[str, str]) -> Answer:
        rejection = twilio_rejection(
            match, form, handler.headers.get("Authorization"), self.account_sid, self.auth_token
        )
        if rejection is not None:
            return rejection, None
        to = form.get("To", "").strip()
        with self._lock:
            fault = self._address_faults["twilio"].get(to)
        if fault is not None:
            return error_reply("twilio", fault, to=to), None
        reply, record = twilio_message(form, self.account_sid, self.clock.now() if self.clock else datetime.now(UTC))
        return reply, [record]

    def _sendgrid(self, handler: _Handler, payload: Any) -> Answer:
        rejection = sendgrid_rejection(payload, handler.headers.get("Authorization"), self.sendgrid_api_key)
        if rejection is not None:
            return rejection, None
        recipients = [to["email"] for p in payload["personalizations"] for to in p["to"]]
        with self._lock:
            faults = [self._address_faults["sendgrid"].get(r.lower()) for r in recipients]
        fault = next((f for f in faults if f is not None), None)
        if fault is not None:
            return error_reply("sendgrid", fault), None
        return sendgrid_messages(payload)


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


def _recipient(service: str | None, fields: Any) -> object:
    """The request's first recipient as it gives it (any JSON value, for SendGrid), None when it has none."""
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
