"""The dispatch store: every statement a dispatch tick runs, from the claim to the record of the providers' answers.

Each function takes a session and plain values and returns rows. The reads of a claimed group's context
name the group's tenants and contacts and run once per kind, not once per message. Two statements
depend on the dialect: the claim locks its rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has
one writer and no row locks), and the read of the messages with a provider now names its index on SQLite.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import Row, Select, exists, func, select, text
from sqlalchemy.orm import Session

from outbound.db.messages import ClaimedMessage, claimed
from outbound.db.models import (
    CampaignState,
    Consent,
    Contact,
    Enrollment,
    Event,
    Message,
    OfferCode,
    Suppression,
    Tenant,
)
from outbound.vocabulary import CampaignState as State
from outbound.vocabulary import MessageStatus, Purpose

Rows: TypeAlias = Sequence[Row[*tuple[Any, ...]]]  # rows of any columns

_MESSAGES, _CONTACTS, _EVENTS = Message.__table__, Contact.__table__, Event.__table__
_ENROLLMENTS, _CONSENTS, _SUPPRESSIONS = Enrollment.__table__, Consent.__table__, Suppression.__table__

# The columns a claim reads: not the text dispatch writes and never reads back, nor the creation time.
# The group's objects are reused when the provider's answers are recorded, so they hold what that reads.
CLAIMED = [c for c in _MESSAGES.c if c.name not in ("created_at", "updated_at", "subject", "body", "locale")]
# What the gate and the templates read of a contact.
CONTACT_COLUMNS = [
    _CONTACTS.c[name]
    for name in (
        "id",
        "tenant_id",
        "external_id",
        "phone",
        "phone_hash",
        "email",
        "timezone",
        "locale",
        "jurisdiction",
        "attributes",
    )
]

# The message's campaign is not paused for its tenant: a paused campaign's due messages wait, unclaimed.
# Built once: it is part of every claim.
_NOT_PAUSED = ~exists(
    select(CampaignState.id).where(
        CampaignState.tenant_id == Message.tenant_id,
        CampaignState.campaign == Message.campaign,
        CampaignState.state == State.PAUSED,
    )
)

# The marketing messages with a provider now. SQLite's statistics know a status has few values, not that
# `sending` is rare, and scan the table: there the claim index is named.
_SENDING_COLUMNS = (_MESSAGES.c.channel, _MESSAGES.c.updated_at, _MESSAGES.c.contact_id, _MESSAGES.c.tenant_id)
_SENDING = select(*_SENDING_COLUMNS).where(
    _MESSAGES.c.status == MessageStatus.SENDING, _MESSAGES.c.purpose == Purpose.MARKETING
)
_SENDING_SQLITE = text(
    "SELECT channel, updated_at, contact_id, tenant_id FROM messages INDEXED BY ix_messages_due "
    "WHERE status = 'sending' AND purpose = 'marketing'"
).columns(*_SENDING_COLUMNS)


# -- the claim ------------------------------------------------------------------------------


def _due(status: str, now: datetime, limit: int) -> Select[*tuple[Any, ...]]:
    # In the order of the (status, due_at) index, so the read stays an index range however large the backlog.
    return (
        select(*CLAIMED)
        .where(_MESSAGES.c.status == status, _MESSAGES.c.due_at <= now, _NOT_PAUSED)
        .order_by(_MESSAGES.c.due_at, _MESSAGES.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def due_rows(session: Session, status: str, now: datetime, limit: int) -> list[ClaimedMessage]:
    """Up to `limit` messages of one status due by `now`, oldest first, locked against other workers (SKIP LOCKED)."""
    return claimed(session.execute(_due(status, now, limit)))


def due_messages(session: Session, status: str, now: datetime, limit: int) -> list[Message]:
    """The messages `due_rows` reads, as ORM objects."""
    return list(session.scalars(_due(status, now, limit).with_only_columns(Message)))


def earliest_due(session: Session, statuses: Collection[str]) -> datetime | None:
    """The earliest due time of the messages in `statuses` whose campaign is not paused, if any."""
    return session.scalar(select(func.min(Message.due_at)).where(Message.status.in_(statuses), _NOT_PAUSED))


# -- what the gate and the renderer read ------------------------------------------------------


def contacts(session: Session, contact_ids: Collection[int]) -> Rows:
    """The contacts' rows, with the columns of CONTACT_COLUMNS."""
    return session.execute(select(*CONTACT_COLUMNS).where(_CONTACTS.c.id.in_(contact_ids))).all()


# The reads by contact name the tenants too: the indexes on these tables start with tenant_id.


def consents(session: Session, tenant_ids: Collection[int], contact_ids: Collection[int]) -> Rows:
    """The contacts' consent ledgers, oldest entry first: (contact_id, channel, purpose, granted, night, at, source)."""
    held = _CONSENTS.c
    return session.execute(
        select(held.contact_id, held.channel, held.purpose, held.granted, held.night, held.at, held.source)
        .where(held.tenant_id.in_(tenant_ids), held.contact_id.in_(contact_ids))
        .order_by(held.id)
    ).all()


def suppressions(session: Session, tenant_ids: Collection[int], address_hashes: Collection[str]) -> Rows:
    """The suppressions of these address hashes, oldest first: (tenant_id, channel, address_hash, reason)."""
    held = _SUPPRESSIONS.c
    return session.execute(
        select(held.tenant_id, held.channel, held.address_hash, held.reason)
        .where(held.tenant_id.in_(tenant_ids), held.address_hash.in_(address_hashes))
        .order_by(held.id)
    ).all()


def marketing_sent_since(
    session: Session, tenant_ids: Collection[int], contact_ids: Collection[int], since: datetime
) -> Rows:
    """(channel, sent_at, contact_id) of the contacts' marketing messages sent since `since`, but those `sending`.

    An index range by contact and sent_at.
    """
    return session.execute(
        select(_MESSAGES.c.channel, _MESSAGES.c.sent_at, _MESSAGES.c.contact_id).where(
            _MESSAGES.c.tenant_id.in_(tenant_ids),
            _MESSAGES.c.contact_id.in_(contact_ids),
            _MESSAGES.c.purpose == Purpose.MARKETING,
            _MESSAGES.c.sent_at >= since,
            _MESSAGES.c.status != MessageStatus.SENDING,
        )
    ).all()


def marketing_sending(session: Session) -> Rows:
    """(channel, updated_at, contact_id, tenant_id) of every marketing message `sending`: with a provider now.

    An index range by status (a group or two in flight), of every contact: naming the contacts would let
    the planner read every message of each contact instead. The caller keeps those of its contacts.
    """
    sqlite = session.get_bind().dialect.name == "sqlite"
    return session.execute(_SENDING_SQLITE if sqlite else _SENDING).all()


def last_purchases(session: Session, tenant_ids: Collection[int], contact_ids: Collection[int]) -> dict[int, datetime]:
    """When each of the contacts last placed an order (an `order_placed` event), by contact id."""
    return dict(
        session.execute(
            select(Event.contact_id, func.max(Event.occurred_at))
            .where(Event.tenant_id.in_(tenant_ids), Event.contact_id.in_(contact_ids), Event.type == "order_placed")
            .group_by(Event.contact_id)
        ).all()
    )


def enrollment_events(session: Session, enrollment_ids: Collection[int]) -> dict[int, Any]:
    """The event row that started each enrollment (with its `enrollment_id`), by enrollment id."""
    if not enrollment_ids:
        return {}
    return {
        row.enrollment_id: row
        for row in session.execute(
            select(_ENROLLMENTS.c.id.label("enrollment_id"), *_EVENTS.c)
            .join(_EVENTS, _EVENTS.c.id == _ENROLLMENTS.c.event_id)
            .where(_ENROLLMENTS.c.id.in_(enrollment_ids))
        )
    }


def tenants(session: Session, tenant_ids: Collection[int]) -> dict[int, Tenant]:
    """The tenants, by id."""
    return {t.id: t for t in session.scalars(select(Tenant).where(Tenant.id.in_(tenant_ids)))}


def offer_codes(
    session: Session, tenant_ids: Collection[int], campaigns: Collection[str], contact_ids: Collection[int]
) -> Rows:
    """The codes given to the contacts in these campaigns: (tenant_id, campaign, contact_id, assigned_at, id, code)."""
    return session.execute(
        select(
            OfferCode.tenant_id,
            OfferCode.campaign,
            OfferCode.contact_id,
            OfferCode.assigned_at,
            OfferCode.id,
            OfferCode.code,
        ).where(
            OfferCode.tenant_id.in_(tenant_ids),
            OfferCode.campaign.in_(campaigns),
            OfferCode.contact_id.in_(contact_ids),
        )
    ).all()


# -- recording the providers' answers ----------------------------------------------------------


def lock_handed_over(session: Session, ids: Iterable[int]) -> Rows:
    """(id, status, updated_at) of the messages, locked (FOR UPDATE) until the transaction ends."""
    return session.execute(
        select(_MESSAGES.c.id, _MESSAGES.c.status, _MESSAGES.c.updated_at)
        .where(_MESSAGES.c.id.in_(ids))
        .with_for_update()
    ).all()


def claimed_again(session: Session, ids: Iterable[int]) -> list[ClaimedMessage]:
    """The messages read again, with the columns of a claim."""
    return claimed(session.execute(select(*CLAIMED).where(_MESSAGES.c.id.in_(ids))))


def stale_sending(session: Session, before: datetime) -> list[Message]:
    """The messages `sending` whose last change is older than `before`, as ORM objects."""
    return list(
        session.scalars(select(Message).where(Message.status == MessageStatus.SENDING, Message.updated_at < before))
    )
