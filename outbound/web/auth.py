"""Agent login sessions and CSRF tokens for the server-rendered pages.

A login is kept on the server (`outbound.db.logins`): the cookie carries only a random token, and the
database only its hash. Logging out ends it at once (a copied cookie is worthless after), as does
disabling the agent; it ends after `SESSION_IDLE` without a request and `SESSION_MAX_AGE` after login
at the latest, by the app's clock (so a simulated clock can expire it too). The cookie itself is
signed with the keyring's session key (`outbound.signing`; Starlette's SessionMiddleware), HttpOnly,
SameSite=Lax, and Secure when the base URL is https.

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
from sqlalchemy.orm import Session
from starlette.middleware.sessions import SessionMiddleware

from outbound.db import logins
from outbound.db.models import Agent
from outbound.signing import Keyring, TokenKind

SESSION_COOKIE = "outbound_agent"
SESSION_MAX_AGE = timedelta(hours=8)  # one shift
SESSION_IDLE = timedelta(hours=1)  # a long call, no longer
_TOUCH = timedelta(minutes=1)  # a session's last use is written at most this often
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


def log_in(request: Request, session: Session, agent: Agent, now: datetime) -> None:
    """Start a fresh session for `agent` (a new token and CSRF token; nothing of the anonymous session kept)."""
    token = secrets.token_urlsafe(32)
    logins.open_session(session, agent.tenant_id, agent.id, token, now)
    request.session.clear()
    request.session.update({"sid": token, "csrf": secrets.token_urlsafe(32)})


def log_out(request: Request, session: Session, now: datetime) -> None:
    """End the session, on the server too."""
    token = request.session.get("sid")
    if isinstance(token, str):
        logins.end_session(session, token, now)
    request.session.clear()


def current_login(request: Request, session: Session, now: datetime) -> Login | None:
    """The login the session holds, if it is still live at `now` (the app's clock)."""
    token = request.session.get("sid")
    if not isinstance(token, str) or len(token) > 100:
        return None
    live = logins.live_session(session, token, now, idle=SESSION_IDLE, longest=SESSION_MAX_AGE, touch_after=_TOUCH)
    if live is None:
        request.session.clear()
        return None
    return Login(live.tenant_id, live.agent_id)


def flash(request: Request, text: str) -> None:
    """A one-line notice shown on the next page."""
    request.session["flash"] = text[:300]


def take_flash(request: Request) -> str | None:
    """The pending notice, removed from the session."""
    notice: str | None = request.session.pop("flash", None)
    return notice
