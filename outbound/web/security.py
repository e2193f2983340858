"""What every answer of the server carries for the browser's safety, and what its logs never show.

Headers: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` (a page reached by a
signed link must not pass the link on to another site), `X-Frame-Options: DENY`, a Content Security
Policy on the pages the server renders (its own scripts, styles and forms only; the API's
documentation pages load Swagger's from its CDN and keep theirs), and HSTS when the base URL is https.

Logs: the paths of unsubscribe and survey links carry their token; the access log shows them as
`/u/…` and `/s/…`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_DOCUMENTATION = ("/docs", "/redoc", "/openapi.json")
_TOKEN_PATH = re.compile(r"^(/[us])/[^/\s?]+")


class SecurityHeaders:
    """ASGI middleware adding the headers above to every answer (cheap: no request body is touched)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app, self.https = app, https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        documentation = str(scope.get("path", "")).startswith(_DOCUMENTATION)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in self._headers(documentation):
                    if name not in present:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _headers(self, documentation: bool) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        if not documentation:
            headers.append((b"content-security-policy", CSP.encode()))
        if self.https:
            headers.append((b"strict-transport-security", b"max-age=31536000"))
        return headers


def redacted_path(path: str) -> str:
    """A request path as logs may show it: the token of an unsubscribe or survey link left out."""
    return _TOKEN_PATH.sub(r"\1/…", path)


class RedactTokens(logging.Filter):
    """Rewrites uvicorn's access log lines so that link tokens never reach a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args: Any = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redacted_path(args[2]), *args[3:])
        return True


def redact_access_log() -> None:
    """Install `RedactTokens` on uvicorn's access logger (once)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())


class KeyFailures:
    """Failed API keys per client address, in this process: past `limit` failures within `window` seconds,
    the address is answered 429 until the window has passed. Keys are long random strings, so this is no
    guard against guessing them; it keeps a client with a wrong key from costing the server a look-up per
    request (logins, which people guess, are throttled in the database: `outbound.tenancy.throttle`)."""

    def __init__(self, limit: int = 30, window: float = 60.0, timer: Any = None) -> None:
        import time

        self.limit, self.window, self._timer = limit, window, timer or time.monotonic
        self._failures: dict[str, list[float]] = {}

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None."""
        now = self._timer()
        recent = [t for t in self._failures.get(address, ()) if t > now - self.window]
        if recent:
            self._failures[address] = recent
        else:
            self._failures.pop(address, None)
        if len(recent) < self.limit:
            return None
        return max(1, int(recent[0] + self.window - now) + 1)

    def failed(self, address: str) -> None:
        if len(self._failures) > 100_000:  # bounded memory whatever the traffic
            self._failures.clear()
        self._failures.setdefault(address, []).append(self._timer())
