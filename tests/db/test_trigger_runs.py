"""Triggers over a run of events: the rows of one event at a time, with a fixed number of queries per run."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from outbound.bootstrap import SHIPPED_DEFINITIONS, build
from outbound.config import Settings
from outbound.db.models import (
    CallbackTask,
    Contact,
    Conversion,
    Enrollment,
    Event,
    Message,
    MessageTransition,
    OfferCode,
)
from outbound.enrollment.campaign_state import pause
from outbound.ingest.events import ingest_items
from outbound.tenancy.tenants import create_tenant, get_tenant

from helpers.definitions import CART, DELAY, LEAD, write_definitions
from helpers.statements import Statements


@pytest.fixture
def shipped(db_url, clock, outbox):
    """The engine with the shipped campaigns: holdouts, A/B variants, offer codes, a lead campaign, exits."""
    runtime = build(
        Settings(database_url=db_url, definitions=SHIPPED_DEFINITIONS, base_url="https://ob.example"),
        clock=clock,
        providers={"sms": outbox, "email": outbox},
    )
    with runtime.factory() as session, session.begin():
        create_tenant(
            session,
            clock,
            "shop",
            jurisdiction="US",
            timezone="America/New_York",
            locale="en",
            settings={"support_contact": "help@shop.example", "postal_address": "1 Main St"},
        )
    yield runtime
    runtime.close()


def envelope(event_id, external_id, type, data=None, at="2026-11-22T10:15:00+00:00", **contact):
    return {
        "id": event_id,
        "type": type,
        "occurred_at": at,
        "contact": {"external_id": external_id, **contact},
        "data": data or {},
    }


def mixed_events():
    """Carts (one twice, one bought), a lead, churn scores above and below the bar, a delivery, a delay,
    a duplicate id and a bad envelope, over contacts with and without a phone."""
    events = []
    for i in range(12):
        contact = {"email": f"c{i}@example.com", **({"phone": f"+1212555{i:04d}"} if i % 3 else {})}
        events.append(envelope(f"cart-{i}", f"c{i}", "cart_abandoned", {"cart_id": f"k{i}", "value": 150}, **contact))
    events += [
        envelope("cart-again", "c1", "cart_abandoned", {"cart_id": "k1", "value": 150}),  # in the window: skipped
        envelope("cart-other", "c1", "cart_abandoned", {"cart_id": "k1b", "value": 150}),
        envelope("order-2", "c2", "order_placed", {"cart_id": "k2", "order_id": "o2", "value": 99.5}),
        envelope("order-3", "c3", "order_placed", {"cart_id": "nope", "order_id": "o3", "value": 10}),
        envelope("lead-1", "lead-1", "lead_created", {}, email="lead@example.com", phone="+12125550999"),
        envelope("lead-1", "lead-1", "lead_created", {}),  # the same id again
        {"id": "broken", "type": "cart_abandoned"},
        envelope("churn-4", "c4", "churn_risk_scored", {"score": 0.9}),
        envelope("churn-5", "c5", "churn_risk_scored", {"score": 0.95}),
        envelope("churn-6", "c6", "churn_risk_scored", {"score": 0.2}),
        envelope("churn-7", "c7", "churn_risk_scored", {"score": 0.8}),
        envelope("delivered-8", "c8", "order_delivered", {"order_id": "o8"}),
        envelope("delayed-9", "c9", "shipping_delayed", {"order_id": "o9", "new_eta": "2026-11-30"}),
        envelope("lead-2", "lead-2", "lead_created", {}, email="lead2@example.com"),
    ]
    return events


def rows_of(session, tenant_id):
    """What ingest and its triggers wrote for a tenant, by natural keys (ids differ between two rolled-back runs)."""
    contacts = dict(
        session.execute(select(Contact.id, Contact.external_id).where(Contact.tenant_id == tenant_id)).all()
    )
    events = dict(session.execute(select(Event.id, Event.event_id).where(Event.tenant_id == tenant_id)).all())
    enrollments = {
        e.id: e
        for e in session.scalars(select(Enrollment).where(Enrollment.tenant_id == tenant_id).order_by(Enrollment.id))
    }
    name = {i: (contacts[e.contact_id], e.campaign, e.dedupe_key) for i, e in enrollments.items()}
    messages = list(session.scalars(select(Message).where(Message.tenant_id == tenant_id).order_by(Message.id)))
    label = {m.id: (*name[m.enrollment_id], m.step) for m in messages}
    trails: dict = {}
    for t in session.scalars(
        select(MessageTransition).where(MessageTransition.tenant_id == tenant_id).order_by(MessageTransition.id)
    ):
        trails.setdefault(label[t.message_id], []).append(
            (t.at, t.from_status, t.to_status, t.source, t.rule, t.reason, t.detail)
        )
    return {
        "events": sorted(events.values()),
        "enrollments": [
            (
                *name[e.id],
                e.trigger,
                events.get(e.event_id),
                e.status,
                e.enrolled_at,
                e.ended_at,
                e.end_reason,
                e.holdout,
            )
            for e in enrollments.values()
        ],
        "messages": [
            (
                label[m.id],
                m.channel,
                m.purpose,
                m.template,
                m.variant,
                m.status,
                m.due_at,
                m.created_at,
                m.rule,
                m.reason,
                m.attempts,
            )
            for m in messages
        ],
        "transitions": sorted(trails.items()),
        "callbacks": [
            (name[c.enrollment_id], c.reason, c.priority, c.status, c.due_at, c.created_at, c.attempts)
            for c in session.scalars(
                select(CallbackTask).where(CallbackTask.tenant_id == tenant_id).order_by(CallbackTask.id)
            )
        ],
        "codes": [
            (c.campaign, c.code, contacts.get(c.contact_id), c.assigned_at)
            for c in session.scalars(select(OfferCode).where(OfferCode.tenant_id == tenant_id).order_by(OfferCode.code))
        ],
        "conversions": sorted(
            (
                c.campaign,
                name.get(c.enrollment_id),
                contacts[c.contact_id],
                events[c.event_id],
                c.holdout,
                c.variant,
                c.revenue,
                c.currency,
            )
            for c in session.scalars(select(Conversion).where(Conversion.tenant_id == tenant_id))
        ),
    }


def ingest_then_forget(runtime, clock, requests):
    """Ingest each request's items with the real trigger hook; the reports and rows, then roll it all back."""
    with runtime.factory() as session:
        session.begin()
        tenant = get_tenant(session, "shop")
        reports = []
        for items in requests:
            report = ingest_items(session, tenant, items, clock, on_event=runtime.on_event)
            reports.append((report.stored, report.duplicates, [(e.index, e.field, e.internal) for e in report.errors]))
        rows = rows_of(session, tenant.id)
        session.rollback()
    return reports, rows


def test_a_run_of_events_triggers_what_one_event_at_a_time_does(shipped, clock):
    events = mixed_events()
    (batched,), together = ingest_then_forget(shipped, clock, [events])
    apart_reports, apart = ingest_then_forget(shipped, clock, [[item] for item in events])
    assert together == apart
    assert batched == (24, 1, [(18, "occurred_at", False), (18, "contact", False)])
    assert sum(r[0] for r in apart_reports) == 24
    enrollments = together["enrollments"]
    assert {campaign for _, campaign, *_ in enrollments} == {
        "cart_abandonment",
        "churn_winback",
        "lead_followup",
        "delivery_survey",
        "shipping_delay",
    }
    assert [row for row in enrollments if row[:2] == ("c1", "cart_abandonment")][1][2] == "k1b"  # k1 again: skipped
    assert [row[5] for row in enrollments if row[:2] == ("c2", "cart_abandonment")] == ["exited"]
    assert any(holdout for *_, holdout in enrollments) and any(not holdout for *_, holdout in enrollments)
    assert {variant for _, _, _, _, variant, *_ in together["messages"]} >= {"a", "b"}
    assert len([code for code in together["codes"] if code[2] is not None]) == 3 - sum(
        1 for row in enrollments if row[1] == "churn_winback" and row[-1]
    )
    assert [reason for (_, campaign, _), reason, *_ in together["callbacks"]] == ["New lead: call within 5 minutes"] * 2
    assert [(c[0], c[2]) for c in together["conversions"]] == [("cart_abandonment", "c2"), ("cart_abandonment", "c3")]


def test_a_paused_campaign_enrolls_nobody_from_a_run_and_the_others_go_on(shipped, clock):
    with shipped.factory() as session, session.begin():
        tenant = get_tenant(session, "shop")
        pause(session, tenant.id, shipped.definitions.campaigns["cart_abandonment"], clock)
    events = [
        envelope(f"e{i}", f"c{i}", "cart_abandoned", {"cart_id": f"k{i}", "value": 150}, email=f"c{i}@x.example")
        for i in range(5)
    ] + [envelope("lead", "lead", "lead_created", {}, email="lead@x.example")]
    (report,), rows = ingest_then_forget(shipped, clock, [events])
    assert report == (6, 0, [])
    assert [(contact, campaign) for contact, campaign, *_ in rows["enrollments"]] == [("lead", "lead_followup")]


KEYED_BY_DIVISION = """
name: split
kind: notification
purpose: transactional
enrollment:
  key: "100 // event.data.n"
  window: 1d
steps:
  - id: sms_now
    channel: sms
    delay: 0m
    template: delay_note
"""


def test_a_run_where_some_events_enroll_some_are_duplicates_and_one_fails_keeps_the_others(
    db_url, tmp_path, clock, outbox
):
    triggers = "triggers:\n  - name: split_on_tick\n    on: tick\n    campaign: split\n"
    folder = write_definitions(
        tmp_path / "definitions",
        {"cart": CART, "delay": DELAY, "lead": LEAD, "split": KEYED_BY_DIVISION},
        triggers=triggers,
    )
    runtime = build(
        Settings(database_url=db_url, definitions=folder), clock=clock, providers={"sms": outbox, "email": outbox}
    )
    try:
        with runtime.factory() as session, session.begin():
            create_tenant(
                session,
                clock,
                "shop",
                jurisdiction="US",
                timezone="America/New_York",
                locale="en",
                settings={"support_contact": "help@shop.example", "postal_address": "1 Main St"},
            )
            ingest_items(
                session,
                get_tenant(session, "shop"),
                [envelope("t-old", "c1", "tick", {"n": 5}, phone="+12125550101")],
                clock,
                on_event=runtime.on_event,
            )
        items = [
            envelope(f"t{i}", f"c{i}", "tick", {"n": n}, phone=f"+1212555{i:04d}")
            for i, n in enumerate([4, 5, 7, 0, 9, 10])
        ]  # c1's key 20 was enrolled a moment ago
        items.insert(2, envelope("t-old", "c1", "tick", {"n": 5}))
        with runtime.factory() as session, session.begin():
            report = ingest_items(session, get_tenant(session, "shop"), items, clock, on_event=runtime.on_event)
        assert (report.stored, report.duplicates) == (5, 1)
        [(index, message, internal)] = [(e.index, e.message, e.internal) for e in report.errors]
        assert (index, internal) == (4, False) and "100 // event.data.n" in message  # t3: 100 // 0
        with runtime.factory() as session:
            assert sorted(session.scalars(select(Event.event_id))) == ["t-old", "t0", "t1", "t2", "t4", "t5"]
            enrolled = session.execute(
                select(Contact.external_id, Enrollment.dedupe_key)
                .join(Contact, Contact.id == Enrollment.contact_id)
                .order_by(Enrollment.id)
            ).all()
            assert enrolled == [("c1", "20"), ("c0", "25"), ("c2", "14"), ("c4", "11"), ("c5", "10")]
            assert session.scalar(select(Contact.id).where(Contact.external_id == "c3")) is None
            assert len(session.scalars(select(Message)).all()) == 5
            assert len(session.scalars(select(MessageTransition)).all()) == 5
    finally:
        runtime.close()


def test_the_statements_of_a_run_do_not_grow_with_its_events(shipped, clock):
    def run(first, count):
        items = []
        for i in range(first, first + count):
            items += [
                envelope(
                    f"cart-{i}",
                    f"c{i}",
                    "cart_abandoned",
                    {"cart_id": f"k{i}", "value": 150},
                    email=f"c{i}@example.com",
                    phone=f"+1212555{i:04d}",
                ),
                envelope(f"lead-{i}", f"lead{i}", "lead_created", {}, email=f"l{i}@example.com"),
            ]
        with shipped.factory() as session, session.begin():
            tenant = get_tenant(session, "shop")
            with Statements(shipped.engine) as statements:
                report = ingest_items(session, tenant, items, clock, on_event=shipped.on_event)
        assert (report.stored, report.errors) == (2 * count, [])
        return statements.seen

    few, many = run(1000, 10), run(2000, 30)
    # Fixed work per run: ids, contacts, events, campaign states, windows, then one INSERT per table.
    assert len(few) == len(many)
    assert len([s for s in many if "from campaign_states" in s]) == 1
    assert len([s for s in many if s.startswith("select enrollments")]) == 1  # the windows; none per event
    with shipped.factory() as session:
        assert len(session.scalars(select(CallbackTask)).all()) == 40
        assert len(session.scalars(select(Enrollment)).all()) == 80
