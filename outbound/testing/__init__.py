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

The parts: `server` (the HTTP server and what it records), `twilio` and `sendgrid` (each API's checks
and answers), `faults` (misbehaving on request, and the providers' error answers), `process` (the
server in a child process, for benchmarks). Every public name is importable from here.
"""

from outbound.testing.faults import SENDGRID_MESSAGES, TWILIO_MESSAGES, Fault
from outbound.testing.process import FakeProviderProcess
from outbound.testing.sendgrid import (
    EMAIL,
    MAX_PERSONALIZATIONS,
    MAX_SUBSTITUTION_BYTES,
    SENDGRID_PATH,
    SENDGRID_RESERVED_HEADERS,
    sendgrid_errors,
)
from outbound.testing.server import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SENDGRID_API_KEY,
    SERVICES,
    FakeProviderServer,
)
from outbound.testing.twilio import (
    ALPHANUMERIC_SENDER,
    E164,
    GSM7,
    GSM7_EXTENSION,
    MESSAGING_SERVICE_SID,
    SHORT_CODE,
    TWILIO_PATH,
    sms_segments,
)

__all__ = [
    "ALPHANUMERIC_SENDER",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "DEFAULT_SENDGRID_API_KEY",
    "E164",
    "EMAIL",
    "GSM7",
    "GSM7_EXTENSION",
    "MAX_PERSONALIZATIONS",
    "MAX_SUBSTITUTION_BYTES",
    "MESSAGING_SERVICE_SID",
    "SENDGRID_MESSAGES",
    "SENDGRID_PATH",
    "SENDGRID_RESERVED_HEADERS",
    "SERVICES",
    "SHORT_CODE",
    "TWILIO_MESSAGES",
    "TWILIO_PATH",
    "FakeProviderProcess",
    "FakeProviderServer",
    "Fault",
    "sendgrid_errors",
    "sms_segments",
]
