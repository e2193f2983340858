"""Ingest in batches: the same rows as one event at a time, with one look-up per run instead of per event."""

from __future__ import annotations

import json

from sqlalchemy import select

from outbound.db.models import Consent, Contact, Enrollment, Event
from outbound.errors import InvalidInput
from outbound.ingest.contacts import ContactIn, upsert_contacts
from outbound.ingest.envelopes import parse_envelope
from outbound.ingest.events import RUN_SIZE, import_events, ingest_event, ingest_items

from helpers.statements import Statements


def envelope(event_id, external_id="cust-1", type="cart_abandoned", **contact):
    return {
        "id": event_id,
        "type": type,
        "occurred_at": "2026-11-22T10:15:00+09:00",
        "contact": {"external_id": external_id, **contact},
        "data": {"cart_id": f"cart-{event_id}"},
    }


class Recorder:
    """A trigger hook that writes a row, as the trigger engine does, and notes what it saw; it can fail for one id."""

    def __init__(self, fail_on=None):
        self.seen, self.fail_on = [], fail_on

    def __call__(self, session, tenant, event, contact):
        self.seen.append((event.event_id, contact.external_id, contact.locale, contact.email))
        session.add(
            Enrollment(
                tenant_id=tenant.id,
                campaign="win-back",
                contact_id=contact.id,
                dedupe_key="",
                event_id=event.id,
                status="active",
                enrolled_at=event.received_at,
            )
        )
        session.flush()
        if event.event_id == self.fail_on:
            raise RuntimeError("trigger engine failed")


def rows_of(session, tenant):
    """Everything ingest writes for a tenant, in id order, without ids and tenant ids."""
    contacts = {c.id: c.external_id for c in session.scalars(select(Contact).where(Contact.tenant_id == tenant.id))}
    return {
        "contacts": [
            (c.external_id, c.phone, c.email, c.locale, c.timezone, c.jurisdiction, c.attributes)
            for c in session.scalars(select(Contact).where(Contact.tenant_id == tenant.id).order_by(Contact.id))
        ],
        "events": [
            (e.event_id, e.type, contacts[e.contact_id], e.data, e.occurred_at)
            for e in session.scalars(select(Event).where(Event.tenant_id == tenant.id).order_by(Event.id))
        ],
        "consents": [
            (contacts[c.contact_id], c.channel, c.purpose, c.granted, c.at, c.source)
            for c in session.scalars(select(Consent).where(Consent.tenant_id == tenant.id).order_by(Consent.id))
        ],
        "enrollments": [
            (contacts[e.contact_id], e.campaign)
            for e in session.scalars(
                select(Enrollment).where(Enrollment.tenant_id == tenant.id).order_by(Enrollment.id)
            )
        ],
    }


def mixed_items():
    """Repeated contacts and ids, consents on the contact and by event, a bad phone and a bad envelope."""
    consent = {
        "channel": "sms",
        "purpose": "marketing",
        "granted": True,
        "at": "2026-11-01T09:00:00+00:00",
        "source": "checkout",
    }
    return [
        envelope("e1", "cust-1", locale="en", email="One@Example.com"),
        envelope("e2", "cust-2", phone="2125550123", consents=[consent]),
        envelope("e3", "cust-1", locale="ko", attributes={"tier": "gold"}),
        envelope("e2", "cust-2", locale="fr"),
        envelope("e4", "cust-3", phone="12"),
        {"id": "e5", "type": "order_placed"},
        {
            **envelope("e6", "cust-3"),
            "type": "consent_changed",
            "data": {**consent, "granted": False, "at": "2026-11-02T09:00:00+00:00"},
        },
        envelope("e4", "cust-3", phone="+12125550199"),
        envelope("e7", "cust-4", email="four@example.com"),
    ]


def test_a_batch_writes_the_same_rows_as_one_event_at_a_time(session, clock, make_tenant):
    batched, single = make_tenant("shop-batched"), make_tenant("shop-single")
    report = ingest_items(session, batched, mixed_items(), clock, on_event=Recorder())
    one_by_one = Recorder()
    for raw in mixed_items():
        ingest_items(session, single, [raw], clock, on_event=one_by_one)
    assert rows_of(session, batched) == rows_of(session, single)
    assert (report.stored, report.duplicates) == (6, 1)
    assert [(e.index, e.field) for e in report.errors] == [(4, "contact.phone"), (5, "occurred_at"), (5, "contact")]


def test_each_hook_sees_the_contact_as_its_own_event_left_it(session, clock, make_tenant):
    tenant = make_tenant()
    hook = Recorder()
    items = [
        envelope("e1", "cust-1", locale="en"),
        envelope("e2", "cust-2", locale="de"),
        envelope("e3", "cust-1", locale="ko"),
        envelope("e4", "cust-1", email="late@example.com"),
    ]
    ingest_items(session, tenant, items, clock, on_event=hook)
    assert hook.seen == [
        ("e1", "cust-1", "en", None),
        ("e2", "cust-2", "de", None),
        ("e3", "cust-1", "ko", None),
        ("e4", "cust-1", "ko", "late@example.com"),
    ]


def test_a_batch_looks_up_stored_ids_and_contacts_once_not_once_per_event(session, clock, make_tenant, engine):
    tenant = make_tenant()
    ingest_items(session, tenant, [envelope("e0", "c0")], clock)
    items = [envelope(f"e{i}", f"c{i}", email=f"c{i}@example.com") for i in range(60)]
    with Statements(engine) as statements:
        report = ingest_items(session, tenant, items, clock, on_event=Recorder())
    assert (report.stored, report.duplicates) == (59, 1)
    assert len(statements.selects_from("events")) == 1
    assert len(statements.selects_from("contacts")) == 1
    assert len([s for s in statements.seen if s.startswith("savepoint")]) == 1


def test_an_id_whose_first_copy_is_refused_is_stored_from_its_second(session, clock, make_tenant):
    tenant = make_tenant()
    report = ingest_items(session, tenant, [envelope("e1", phone="12"), envelope("e1", phone="+12125550123")], clock)
    assert (report.stored, report.duplicates) == (1, 0)
    assert [(e.index, e.field) for e in report.errors] == [(0, "contact.phone")]
    assert session.scalar(select(Contact.phone)) == "+12125550123"


def test_a_refused_contact_in_a_batch_leaves_no_row_and_the_others_go_in(session, clock, make_tenant):
    tenant = make_tenant()
    items = [envelope("e1", "cust-1"), envelope("e2", "only-in-e2", email="not an address"), envelope("e3", "cust-3")]
    report = ingest_items(session, tenant, items, clock)
    assert report.stored == 2
    (error,) = report.errors
    assert (error.index, error.field, error.internal) == (1, "contact.email", False)
    assert sorted(session.scalars(select(Contact.external_id))) == ["cust-1", "cust-3"]


def test_a_failing_hook_leaves_out_its_event_and_consents_and_nothing_else(session, clock, make_tenant):
    tenant = make_tenant()
    consent = {"channel": "email", "purpose": "marketing", "granted": True, "at": "2026-11-01T09:00:00+00:00"}
    items = [envelope(f"e{i}", f"cust-{i}", consents=[consent]) for i in range(10)]
    hook = Recorder(fail_on="e6")
    report = ingest_items(session, tenant, items, clock, on_event=hook)
    assert (report.stored, [e.index for e in report.errors]) == (9, [6])
    assert "cust-6" not in set(session.scalars(select(Contact.external_id)))
    assert session.scalar(select(Event.event_id).where(Event.event_id == "e6")) is None
    assert len(session.scalars(select(Consent)).all()) == 9
    assert len(session.scalars(select(Enrollment)).all()) == 9


def test_an_import_longer_than_a_chunk_keeps_line_numbers_and_file_order(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    count = RUN_SIZE + 20
    lines = [json.dumps(envelope(f"e{i}", f"cust-{i % 7}")) for i in range(count)]
    bad = {3: "{oops", RUN_SIZE - 1: json.dumps(envelope("x", phone="12")), RUN_SIZE + 4: "[]"}
    for number, text in bad.items():
        lines[number - 1] = text
    path = tmp_path / "events.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\n" + json.dumps(envelope("e0")).encode())
    hook, read = Recorder(), []
    report = import_events(session, tenant, path, clock, on_event=hook, progress=read.append)
    assert [e.index for e in report.errors] == [3, RUN_SIZE - 1, RUN_SIZE + 4, count + 1]
    assert report.messages()[1].startswith(f"line {RUN_SIZE - 1}: contact.phone: ")
    assert (report.stored, report.duplicates) == (count - 3, 1)
    expected = [f"e{i}" for i in range(count) if i + 1 not in bad]
    assert [seen[0] for seen in hook.seen] == expected
    assert list(session.scalars(select(Event.event_id).order_by(Event.id))) == expected
    assert read == sorted(read) and read[-1] == path.stat().st_size and len(read) >= 2


def test_upsert_contacts_applies_items_in_turn_and_puts_each_refusal_in_its_place(session, clock, make_tenant):
    tenant = make_tenant()
    results = upsert_contacts(
        session,
        tenant,
        [
            ContactIn(external_id="a", jurisdiction="KR"),
            ContactIn(external_id="b", phone="12"),
            ContactIn(external_id="a", phone="01012345678", attributes={"tier": "gold"}),
        ],
        clock,
    )
    first, refused, again = results
    assert isinstance(refused, InvalidInput) and refused.field == "contact.phone"
    assert first is again and (again.phone, again.attributes) == ("+821012345678", {"tier": "gold"})
    assert list(session.scalars(select(Contact.external_id))) == ["a"]


def test_a_single_event_after_a_batch_is_still_a_duplicate_by_id(session, clock, make_tenant):
    tenant = make_tenant()
    ingest_items(session, tenant, [envelope("e1"), envelope("e2", "cust-2")], clock)
    assert ingest_event(session, tenant, parse_envelope(envelope("e2", "cust-2")), clock).status == "duplicate"


def test_a_contact_the_session_holds_reads_what_a_batch_changed(session, clock, make_tenant):
    tenant = make_tenant()
    ingest_items(session, tenant, [envelope("e1", "cust-1", locale="en", email="old@example.com")], clock)
    held = session.scalar(select(Contact).where(Contact.external_id == "cust-1"))
    assert (held.locale, held.email) == ("en", "old@example.com")
    report = ingest_items(
        session,
        tenant,
        [envelope("e2", "cust-1", locale="ko", email="New@Example.com", attributes={"tier": "gold"})],
        clock,
    )
    assert report.stored == 1
    # The batch read and wrote the row itself; the session's copy is read again, not kept as it was.
    assert (held.locale, held.email, held.attributes) == ("ko", "new@example.com", {"tier": "gold"})
    session.commit()
    assert session.scalar(select(Contact.locale).where(Contact.external_id == "cust-1")) == "ko"
