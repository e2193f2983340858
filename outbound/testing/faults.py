"""Fault injection and error answers: how the fake misbehaves on request, and how each provider words an error.

A `Fault` is queued with `FakeProviderServer.fail_next` or set for one address with `twilio_error_for` /
`sendgrid_error_for`; `error_reply` answers it in the provider's own error format, the format the Twilio and
SendGrid checks also reject a request in (`twilio_reply`, `sendgrid_reply`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# An answer's further headers, as (name, value) pairs.
Headers = tuple[tuple[str, str], ...]

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
class Reply:
    """One HTTP answer: its status, JSON body (empty for none) and any further headers."""

    status: int
    body: bytes = b""
    headers: Headers = ()


def error_reply(service: str, fault: Fault, to: str = "") -> Reply:
    """The error answer to a fault, in the format of `service` ('twilio' or 'sendgrid'), with Retry-After if set."""
    headers: Headers = ()
    if fault.retry_after is not None:
        retry = fault.retry_after
        headers = (("Retry-After", str(int(retry)) if float(retry).is_integer() else str(retry)),)
    status = fault.status or 500
    if service == "twilio":
        code = fault.code or {429: 20429, 500: 20500, 503: 20503}.get(status, status)
        message = fault.message or TWILIO_MESSAGES.get(code, f"Error {code}").format(to=to)
        return twilio_reply(status, code, message, headers)
    message = fault.message or SENDGRID_MESSAGES.get(status, "error")
    return sendgrid_reply(status, [(message, None)], headers)


def twilio_reply(status: int, code: int, message: str, headers: Headers = ()) -> Reply:
    """A Twilio error answer: code, message, more_info and status in a JSON body."""
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    body = {"code": code, "message": message, "more_info": more_info, "status": status}
    return Reply(status, json.dumps(body).encode(), headers)


def sendgrid_reply(status: int, errors: list[tuple[str, str | None]], headers: Headers = ()) -> Reply:
    """A SendGrid error answer: one {message, field, help} per (message, field) pair."""
    body = {"errors": [{"message": message, "field": field, "help": None} for message, field in errors]}
    return Reply(status, json.dumps(body).encode(), headers)
