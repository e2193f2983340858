"""Agent login sessions and CSRF tokens for the server-rendered pages.

The session lives in a cookie signed with the keyring's session key (`outbound.signing`: a key of its
own, derived from the operator's secret; Starlette's SessionMiddleware, itsdangerous underneath), so it cannot be forged or altered. It expires twice
over: the signed cookie carries its own timestamp and is refused after `SESSION_MAX_AGE`, and the
login time inside it is checked against the app's clock, so a simulated clock can expire it too.

Every form carries the session's CSRF token; a POST without the matching token is refused (403)
before it touches anything. Logging in starts a fresh session (new token), so a token or cookie
planted before login is worthless after it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import FastAPI, HTTPException, Request
from starlette.middleware.sessions import SessionMiddleware

from outbound.db.models import Agent
from outbound.signing import Keyring, TokenKind

SESSION_COOKIE = "outbound_agent"
SESSION_MAX_AGE = timedelta(hours=8)  # one shift
LOGIN_PATH = "/agent/login"


class CsrfRejected(HTTPException):
    """A form came without the session's CSRF token (or with another one)."""

    def __init__(self) -> None:
        super().__init__(403, "This form has expired or did not come from this site; reload the page and try again.")


class LoginRequired(HTTPException):
    """No valid login session: the browser is sent to the login page."""

    def __init__(self) -> None:
        super().__init__(303, "Please log in.", headers={"Location": LOGIN_PATH})


@dataclass(frozen=True)
class Login:
    """Who a request comes from: the tenant and agent its session names."""

    tenant_id: int
    agent_id: int


def install_sessions(app: FastAPI, keyring: Keyring, *, https_only: bool = False) -> None:
    """Add the signed, expiring session cookie to `app`."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=keyring.key(TokenKind.SESSION).hex(),
        session_cookie=SESSION_COOKIE,
        max_age=int(SESSION_MAX_AGE.total_seconds()),
        same_site="lax",
        https_only=https_only,
    )


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse the request (403) unless `submitted` is the session's CSRF token."""
    expected = request.session.get("csrf")
    if not expected or not submitted or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise CsrfRejected()


def log_in(request: Request, agent: Agent, now: datetime) -> None:
    """Start a fresh session for `agent` (a new CSRF token; nothing of the anonymous session kept)."""
    request.session.clear()
    request.session.update(
        {"tenant_id": agent.tenant_id, "agent_id": agent.id, "at": now.isoformat(), "csrf": secrets.token_urlsafe(32)}
    )


def log_out(request: Request) -> None:
    """End the session."""
    request.session.clear()


def current_login(request: Request, now: datetime) -> Login | None:
    """The login the session holds, if it has not expired by `now` (the app's clock)."""
    session = request.session
    try:
        at = datetime.fromisoformat(session["at"])
        login = Login(int(session["tenant_id"]), int(session["agent_id"]))
    except (KeyError, TypeError, ValueError):
        return None
    if at.utcoffset() is None or not at <= now < at + SESSION_MAX_AGE:  # a time without its zone is no login time
        session.clear()
        return None
    return login


def flash(request: Request, text: str) -> None:
    """A one-line notice shown on the next page."""
    request.session["flash"] = text[:300]


def take_flash(request: Request) -> str | None:
    """The pending notice, removed from the session."""
    notice: str | None = request.session.pop("flash", None)
    return notice
