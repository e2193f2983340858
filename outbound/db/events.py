"""The event store: events stored once per tenant and event id, looked up by id, written in runs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from outbound.db import direct
from outbound.db.bulk import insert_objects
from outbound.db.models import Event

# Built once: building the statement costs more than running it for a request of one event.
_STORED_IDS = select(Event.event_id).where(
    Event.tenant_id == bindparam("tenant_id"), Event.event_id.in_(bindparam("event_ids", expanding=True))
)


def find_event(session: Session, tenant_id: int, event_id: str) -> Event | None:
    """The tenant's event with this id, if stored."""
    return session.scalar(select(Event).where(Event.tenant_id == tenant_id, Event.event_id == event_id))


def stored_event_ids(session: Session, tenant_id: int, event_ids: Sequence[str]) -> set[str]:
    """Which of these event ids the tenant has stored already (a non-empty list)."""
    params = {"tenant_id": tenant_id, "event_ids": list(event_ids)}
    return {row[0] for row in direct.fetch(session, _STORED_IDS, params)}


def add_events(session: Session, events: Sequence[Event]) -> None:
    """Store a run of new events through the driver, kept out of the session (see `insert_objects`)."""
    insert_objects(session, list(events))
