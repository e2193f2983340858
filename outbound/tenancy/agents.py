"""Agent accounts: call-center agents and supervisors of one tenant, who log in with a password.

Passwords are stored as scrypt hashes (the standard library's `hashlib.scrypt`, a memory-hard
function) with a random salt per password; the parameters travel with each hash, so they can be
raised later without breaking existing logins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db.logins import end_agent_sessions
from outbound.db.models import Agent, Tenant
from outbound.errors import InvalidInput
from outbound.ingest.text import storable

ROLES = ("agent", "supervisor")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # scrypt reads all of it; refuse absurd inputs before hashing
# About 16 MiB and a few tens of milliseconds per hash: slow for guessing, quick for a login.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
# Compared against when the username is unknown, so a login takes as long either way.
_DUMMY_HASH: str | None = None


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash` (base64) of `password` with a fresh random salt."""
    _check_password(password)
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches the stored hash (constant-time comparison); False for a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or len(password) > MAX_PASSWORD:
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def create_agent(
    session: Session, tenant: Tenant, username: str, *, name: str, password: str, role: str = "agent", clock: Clock
) -> Agent:
    """Add an agent account to `tenant`; the username must be new in that tenant."""
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise InvalidInput(
            "use lower-case letters, digits, dots, dashes and underscores (at most 100)", field="username"
        )
    if not name.strip():
        raise InvalidInput("a display name is required", field="name")
    if role not in ROLES:
        raise InvalidInput(f"must be one of {', '.join(ROLES)}", field="role")
    if session.scalar(select(Agent.id).where(Agent.tenant_id == tenant.id, Agent.username == username)) is not None:
        raise InvalidInput(f"agent {username!r} already exists in tenant {tenant.slug!r}", field="username")
    agent = Agent(
        tenant_id=tenant.id,
        username=username,
        name=name.strip(),
        password_hash=hash_password(password),
        role=role,
        created_at=clock.now(),
    )
    session.add(agent)
    session.flush()
    return agent


def authenticate_agent(session: Session, tenant_slug: str, username: str, password: str) -> Agent | None:
    """The enabled agent of that tenant with that username and password, else None (never says which was wrong).

    Text no account can hold (too long, a NUL or a lone surrogate) finds nobody, and takes as long.
    """
    if not all(_plausible(text, limit) for text, limit in ((tenant_slug, 200), (username, 200), (password, 1024))):
        verify_password("", _dummy_hash())
        return None
    agent = session.scalar(
        select(Agent)
        .join(Tenant, Tenant.id == Agent.tenant_id)
        .where(Tenant.slug == tenant_slug.strip().lower(), Agent.username == username.strip().lower())
    )
    if agent is None or agent.disabled_at is not None:
        verify_password(password, _dummy_hash())
        return None
    return agent if verify_password(password, agent.password_hash) else None


def _plausible(text: str, limit: int) -> bool:
    try:
        return len(text) <= limit and storable(text) == text
    except ValueError:
        return False


def active_agent(session: Session, tenant_id: int, agent_id: int) -> Agent | None:
    """The agent a login session names, if it still exists in that tenant and is not disabled."""
    agent = session.get(Agent, agent_id)
    if agent is None or agent.tenant_id != tenant_id or agent.disabled_at is not None:
        return None
    return agent


def disable_agent(session: Session, agent: Agent, at: datetime) -> None:
    """Stop an agent from logging in, and end the sessions already open."""
    agent.disabled_at = at
    end_agent_sessions(session, agent.id, at)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"use at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"use at most {MAX_PASSWORD} characters", field="password")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASH


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
