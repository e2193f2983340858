"""PostgreSQL advisory locks: a lock held by a connection until it releases it or closes."""

from __future__ import annotations

from sqlalchemy import Connection, text


def try_advisory_lock(connection: Connection, key: int) -> bool:
    """Take the session-level advisory lock `key` on this connection if free; never waits."""
    return bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())


def advisory_unlock(connection: Connection, key: int) -> None:
    """Release the advisory lock `key` this connection holds."""
    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
