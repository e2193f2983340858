"""Event ingest: envelope validation, storing each event once, the trigger hook, JSONL import."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from outbound.db.models import Consent, Contact, Enrollment, Event
from outbound.ingest.envelopes import InvalidEnvelope, parse_envelope
from outbound.ingest.events import import_events, ingest_event, ingest_items


def envelope(event_id="evt-1", type="cart_abandoned", external_id="cust-42", **extra):
    body = {
        "id": event_id,
        "type": type,
        "occurred_at": "2026-11-22T10:15:00+09:00",
        "contact": {"external_id": external_id, "phone": "+821012345678", "timezone": "Asia/Seoul", "locale": "ko"},
        "data": {"cart_id": "c-9", "value": 129000, "currency": "KRW"},
    }
    body.update(extra)
    return body


def count(session, model, **where):
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return session.scalar(query)


class Recorder:
    """A trigger hook that remembers what it was given; it can fail for one event id."""

    def __init__(self, fail_on=None):
        self.seen, self.fail_on = [], fail_on

    def __call__(self, session, tenant, event, contact):
        self.seen.append((tenant.slug, event.event_id, contact.external_id))
        # Write a row, as the trigger engine does, so a failure must undo it.
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


def test_an_event_is_stored_with_its_contact_in_utc(session, clock, make_tenant):
    tenant = make_tenant("shop-kr", jurisdiction="KR", timezone="Asia/Seoul", locale="ko")
    outcome = ingest_event(session, tenant, parse_envelope(envelope()), clock)
    assert outcome.status == "stored"
    event = outcome.event
    assert (event.event_id, event.type, event.data["cart_id"]) == ("evt-1", "cart_abandoned", "c-9")
    assert event.occurred_at == datetime(2026, 11, 22, 1, 15, tzinfo=UTC)
    assert event.received_at == clock.now()
    contact = session.get(Contact, event.contact_id)
    assert (contact.external_id, contact.phone, contact.timezone) == ("cust-42", "+821012345678", "Asia/Seoul")


def test_the_same_event_id_twice_is_stored_once_and_changes_nothing(session, clock, make_tenant):
    tenant = make_tenant()
    first = ingest_event(session, tenant, parse_envelope(envelope()), clock)
    changed = envelope(contact={"external_id": "cust-42", "locale": "en"})
    second = ingest_event(session, tenant, parse_envelope(changed), clock)
    assert (first.status, second.status) == ("stored", "duplicate")
    assert second.event.id == first.event.id
    assert count(session, Event) == 1
    assert session.scalar(select(Contact.locale)) == "ko"


def test_the_same_event_id_for_two_tenants_is_stored_for_each(session, clock, make_tenant):
    one, two = make_tenant("shop-one"), make_tenant("shop-two")
    assert ingest_event(session, one, parse_envelope(envelope()), clock).status == "stored"
    assert ingest_event(session, two, parse_envelope(envelope()), clock).status == "stored"
    assert count(session, Event, tenant_id=one.id) == 1
    assert count(session, Event, tenant_id=two.id) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"contact": {"phone": "+821012345678"}}, "contact.external_id"),
        ({"occurred_at": "2026-11-22T10:15:00"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"id": ""}, "id"),
        ({"id": "e\x00"}, "id"),
        ({"type": "cart abandoned!"}, "type"),
        ({"contact": {"external_id": "c", "timezone": "Seoul"}}, "contact.timezone"),
        ({"data": [1, 2]}, "data"),
        ({"colour": "red"}, "colour"),
        ({"type": "churn_risk_scored", "data": {"score": 1.5}}, "data.score"),
        ({"type": "churn_risk_scored", "data": {}}, "data.score"),
        (
            {
                "type": "consent_changed",
                "data": {"channel": "fax", "purpose": "marketing", "granted": True, "at": "2026-01-05T09:00:00+09:00"},
            },
            "data.channel",
        ),
    ],
)
def test_a_malformed_envelope_names_the_bad_field(change, field):
    with pytest.raises(InvalidEnvelope) as caught:
        parse_envelope(envelope(**change))
    assert caught.value.field == field
    assert field in [f for f, _ in caught.value.problems]


def test_events_of_unknown_types_are_stored(session, clock, make_tenant):
    tenant = make_tenant()
    outcome = ingest_event(session, tenant, parse_envelope(envelope(type="loyalty.tier_changed")), clock)
    assert outcome.status == "stored" and outcome.event.type == "loyalty.tier_changed"


def test_a_consent_changed_event_records_the_consent(session, clock, make_tenant):
    tenant = make_tenant("shop-kr", jurisdiction="KR", timezone="Asia/Seoul", locale="ko")
    data = {
        "channel": "sms",
        "purpose": "marketing",
        "granted": False,
        "night": False,
        "at": "2026-11-21T09:00:00+09:00",
        "source": "preference center",
        "text": "No more offers",
    }
    outcome = ingest_event(session, tenant, parse_envelope(envelope(type="consent_changed", data=data)), clock)
    (consent,) = session.scalars(select(Consent)).all()
    assert consent.contact_id == outcome.event.contact_id
    assert (consent.channel, consent.purpose, consent.granted, consent.source) == (
        "sms",
        "marketing",
        False,
        "preference center",
    )
    assert consent.at == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)


def test_the_hook_is_called_once_per_stored_event_and_not_for_duplicates(session, clock, make_tenant):
    tenant = make_tenant()
    hook = Recorder()
    items = [envelope("e1"), envelope("e2", external_id="cust-7"), envelope("e1")]
    report = ingest_items(session, tenant, items, clock, on_event=hook)
    assert (report.stored, report.duplicates, report.errors) == (2, 1, [])
    assert hook.seen == [("shop-us", "e1", "cust-42"), ("shop-us", "e2", "cust-7")]


def test_a_failing_hook_leaves_no_row_of_its_event_and_the_rest_is_stored(session, clock, make_tenant):
    tenant = make_tenant()
    hook = Recorder(fail_on="e2")
    items = [envelope("e1"), envelope("e2", external_id="only-in-e2"), envelope("e3")]
    report = ingest_items(session, tenant, items, clock, on_event=hook)
    assert (report.stored, report.duplicates) == (2, 0)
    (error,) = report.errors
    assert error.index == 1 and error.internal and "retry" in error.message
    assert sorted(session.scalars(select(Event.event_id))) == ["e1", "e3"]
    assert count(session, Contact, external_id="only-in-e2") == 0
    assert count(session, Enrollment) == 2


def test_a_batch_reports_each_bad_item_by_index_and_stores_the_good(session, clock, make_tenant):
    tenant = make_tenant()
    items = [
        envelope("e1"),
        {"id": "e2", "type": "order_placed"},
        "not json",
        envelope("e3"),
        envelope("e4", contact={"external_id": "x", "phone": "12"}),
    ]
    report = ingest_items(session, tenant, items, clock)
    assert report.stored == 2
    fields = {(e.index, e.field) for e in report.errors}
    assert {(1, "occurred_at"), (1, "contact"), (2, "body"), (4, "contact.phone")} <= fields
    assert "'12'" in next(e.message for e in report.errors if e.index == 4)


def test_jsonl_import_reports_lines_and_imports_the_rest(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    lines = [
        json.dumps(envelope("e1")),
        '{"id": "e2", oops',
        "",
        json.dumps(envelope("e3", occurred_at="soon")),
        json.dumps(envelope("e4")),
        json.dumps(envelope("e1")),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = import_events(session, tenant, path, clock)
    assert (report.stored, report.duplicates) == (2, 1)
    messages = [str(error) for error in report.errors]
    assert messages[0].startswith("line 2: body: invalid JSON")
    assert messages[1].startswith("line 4: occurred_at: ")
    assert len(messages) == 2
    assert sorted(session.scalars(select(Event.event_id))) == ["e1", "e4"]


def test_jsonl_import_refuses_nan_on_its_line(session, clock, make_tenant, tmp_path):
    tenant = make_tenant()
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(envelope("e1", data={"value": float("nan")})) + "\n" + json.dumps(envelope("e2")))
    report = import_events(session, tenant, path, clock)
    assert report.stored == 1
    assert report.messages() == ["line 1: body: invalid JSON: NaN is not valid JSON"]
