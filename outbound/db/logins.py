"""The login store: agents' sessions kept on the server, and failed attempts counted for throttling.

Tokens and the names failures are counted by are stored as SHA-256 hashes only."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from outbound.db.models import AgentSession, AuthFailure


def digest(text: str) -> str:
    """The hash a token or a throttling key is stored by."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def open_session(session: Session, tenant_id: int, agent_id: int, token: str, now: datetime) -> None:
    session.add(
        AgentSession(tenant_id=tenant_id, agent_id=agent_id, token_hash=digest(token), started_at=now, seen_at=now)
    )
    session.flush()


def live_session(
    session: Session, token: str, now: datetime, *, idle: timedelta, longest: timedelta, touch_after: timedelta
) -> AgentSession | None:
    """The session of `token` if it has not ended, idled past `idle` or lasted past `longest` by `now`; its
    last use is moved to `now` when older than `touch_after` (so a page view writes at most that often)."""
    found = session.scalar(select(AgentSession).where(AgentSession.token_hash == digest(token)))
    if found is None or found.ended_at is not None:
        return None
    if not (found.started_at <= now < found.started_at + longest and now < found.seen_at + idle):
        found.ended_at = now
        session.flush()
        return None
    if now - found.seen_at >= touch_after:
        found.seen_at = now
        session.flush()
    return found


def end_session(session: Session, token: str, now: datetime) -> None:
    session.execute(
        update(AgentSession)
        .where(AgentSession.token_hash == digest(token), AgentSession.ended_at.is_(None))
        .values(ended_at=now)
    )


def end_agent_sessions(session: Session, agent_id: int, now: datetime) -> int:
    """End every open session of the agent (disabled, password reset); how many there were."""
    result = session.execute(
        update(AgentSession)
        .where(AgentSession.agent_id == agent_id, AgentSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def record_failure(session: Session, scope: str, key: str, now: datetime) -> None:
    session.add(AuthFailure(scope=scope, key_hash=digest(key), at=now))
    session.flush()


def recent_failures(session: Session, scope: str, key: str, since: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(AuthFailure)
            .where(AuthFailure.scope == scope, AuthFailure.key_hash == digest(key), AuthFailure.at > since)
        )
        or 0
    )


def clear_failures(session: Session, scope: str, key: str) -> None:
    session.execute(delete(AuthFailure).where(AuthFailure.scope == scope, AuthFailure.key_hash == digest(key)))


def forget_failures_before(session: Session, before: datetime) -> int:
    """Drop counted failures older than any throttling window (a housekeeping duty)."""
    result = session.execute(delete(AuthFailure).where(AuthFailure.at < before))
    return int(getattr(result, "rowcount", 0) or 0)
