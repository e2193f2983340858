"""The contact store: contacts by external id and the consent ledger, read and written in bulk.

Two ways to hold what is read: ORM objects attached to the session (the default), or plain objects
read and written through the driver and kept out of the session (`attach=False`), for a run of
ingested events that only reads them: the ORM's look-up of one contact cost more than all of a
run's INSERTs. A plain object is a `Contact` whose values were set without the change events that
setting fires; what the caller changes on it is stored with `write_plain_updates`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from outbound.db import direct
from outbound.db.bulk import assign_ids, insert_objects, update_by_id
from outbound.db.models import Consent, Contact, table

LOOKUP_CHUNK = 500  # external ids or contact ids per look-up


# Built once: building the statement costs more than running it for a request of one event.
_BY_EXTERNAL_ID = select(Contact).where(
    Contact.tenant_id == bindparam("tenant_id"), Contact.external_id.in_(bindparam("external_ids", expanding=True))
)


def _plain(row: tuple) -> Contact:
    # A contact as read, outside any session: its values set without the change events that setting fires.
    contact = Contact.__mapper__.class_manager.new_instance()
    contact.__dict__.update(zip(_CONTACT_KEYS, row, strict=True))
    return contact


_CONTACT_KEYS = tuple(column.key for column in table(Contact).c)


_ROWS_BY_EXTERNAL_ID = select(*table(Contact).c).where(
    Contact.tenant_id == bindparam("tenant_id"), Contact.external_id.in_(bindparam("external_ids", expanding=True))
)


# What `_update` may change.
_UPDATED = ("phone", "phone_hash", "email", "timezone", "locale", "jurisdiction", "attributes", "updated_at")


def write_plain_updates(session: Session, contacts: list[Contact]) -> None:
    """Store what `_update` changed on plain contacts, one UPDATE for all; a copy of one held by the session
    is expired, so it is read again rather than kept as it was."""
    if not contacts:
        return
    update_by_id(
        session,
        table(Contact),
        [{"_id": contact.id, **{key: getattr(contact, key) for key in _UPDATED}} for contact in contacts],
    )
    for contact in contacts:
        held = session.identity_map.get(identity_key(Contact, contact.id))
        if held is not None:
            session.expire(held)


# Built once, as _BY_EXTERNAL_ID; the columns `record_consent` compares.
_LEDGERS = select(
    Consent.contact_id,
    Consent.channel,
    Consent.purpose,
    Consent.granted,
    Consent.night,
    Consent.at,
    Consent.source,
    Consent.text,
).where(Consent.tenant_id == bindparam("tenant_id"), Consent.contact_id.in_(bindparam("contact_ids", expanding=True)))


def find_contacts(session: Session, tenant_id: int, external_ids: Sequence[str], *, attach: bool) -> dict[str, Contact]:
    """The tenant's contacts with these external ids, by external id (attached, or plain: see the module)."""
    wanted = sorted(set(external_ids))
    known: dict[str, Contact] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        params = {"tenant_id": tenant_id, "external_ids": wanted[start : start + LOOKUP_CHUNK]}
        if attach:
            known.update((c.external_id, c) for c in session.scalars(_BY_EXTERNAL_ID, params))
        else:
            known.update((c.external_id, c) for c in map(_plain, direct.fetch(session, _ROWS_BY_EXTERNAL_ID, params)))
    return known


def contacts_with_phone(session: Session, tenant_id: int, phone: str) -> list[Contact]:
    """The tenant's contacts, not erased, whose phone is `phone` (E.164), oldest first."""
    return list(
        session.scalars(
            select(Contact)
            .where(Contact.tenant_id == tenant_id, Contact.phone == phone, Contact.erased_at.is_(None))
            .order_by(Contact.id)
        )
    )


def add_contacts(session: Session, made: list[Contact], *, attach: bool) -> None:
    """Store new contacts: added to the session with ids drawn ahead (one executemany at the next flush),
    or inserted through the driver and kept out of it (`attach=False`)."""
    if attach:
        session.add_all(made)
        assign_ids(session, table(Contact), made)
    else:
        insert_objects(session, made)


def same_consent(session: Session, tenant_id: int, contact_id: int, entry: dict[str, Any]) -> Consent | None:
    """The ledger entry identical to `entry` (channel, purpose, granted, night, at, source, text), if any."""
    return session.scalar(
        select(Consent)
        .where(
            Consent.tenant_id == tenant_id,
            Consent.contact_id == contact_id,
            Consent.channel == entry["channel"],
            Consent.purpose == entry["purpose"],
            Consent.granted == entry["granted"],
            Consent.night == entry["night"],
            Consent.at == entry["at"],
            Consent.source.is_(None) if entry["source"] is None else Consent.source == entry["source"],
            Consent.text.is_(None) if entry["text"] is None else Consent.text == entry["text"],
        )
        .limit(1)
    )


def consent_ledgers(session: Session, tenant_id: int, contact_ids: Sequence[int]) -> set[tuple[Any, ...]]:
    """Every ledger entry of these contacts as (contact id, channel, purpose, granted, night, at, source, text)."""
    ids = sorted(set(contact_ids))
    known: set[tuple[Any, ...]] = set()
    for start in range(0, len(ids), LOOKUP_CHUNK):
        params = {"tenant_id": tenant_id, "contact_ids": ids[start : start + LOOKUP_CHUNK]}
        known.update(map(tuple, session.execute(_LEDGERS, params)))
    return known


def add_consents(session: Session, entries: list[Consent]) -> None:
    """Append entries to the consent ledger (never changed afterwards), ids drawn ahead, flushed."""
    assign_ids(session, table(Consent), entries)
    session.add_all(entries)
    session.flush()
