"""Claiming due messages: the scheduled and deferred messages whose time has come, oldest first.

A claim locks its rows against other workers (SKIP LOCKED on PostgreSQL) until its transaction ends,
so two workers never claim the same message. A paused campaign's messages wait: no claim takes them,
and `next_due` does not count them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from outbound.db import dispatch as store
from outbound.db.messages import ClaimedMessage
from outbound.db.models import Message
from outbound.vocabulary import MessageStatus

PENDING = (MessageStatus.SCHEDULED, MessageStatus.DEFERRED)  # the statuses of a message waiting for its time


def claim_due(session: Session, now: datetime, limit: int) -> list[Message]:
    """Due scheduled or deferred messages, oldest first, locked against other workers (SKIP LOCKED)."""
    return _claim(session, now, limit, store.due_messages)


def claim_due_rows(session: Session, now: datetime, limit: int) -> list[ClaimedMessage]:
    """The same claim as `claim_due`, as plain rows that a group changes and writes back at once."""
    return _claim(session, now, limit, store.due_rows)


def _claim(
    session: Session, now: datetime, limit: int, read: Callable[[Session, str, datetime, int], list[Any]]
) -> list[Any]:
    # One read per pending status, each an index range in due order, so a claim costs the same however
    # large the backlog; `status IN (…)` would sort every due row. Rows of one status beyond the merged
    # `limit` stay locked, unchanged, until this transaction ends.
    found = []
    for status in PENDING:
        found.extend(read(session, status, now, limit))
    found.sort(key=lambda message: (message.due_at, message.id))
    return found[:limit]


def next_due(session: Session) -> datetime | None:
    """When the next pending message is due, if any."""
    return store.earliest_due(session, PENDING)
