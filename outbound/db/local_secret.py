"""The secret a local install keeps for itself (`outbound.db.models.LocalSecret`): made once, read after."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from outbound.db.models import LocalSecret, table


def kept_secret(session: Session, made: str, now: datetime) -> str:
    """The kept secret; `made` becomes it if none is kept yet. Two processes starting at once keep one:
    the first insert wins, the other reads it."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(table(LocalSecret))
        .values(id=1, value=made, created_at=now)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    value = session.scalar(select(LocalSecret.value).where(LocalSecret.id == 1))
    assert value is not None
    return value
