"""Input as an attacker or a careless client sends it: each gets a precise 4xx naming the field, never a
500, and the rest of a batch is stored. Runs on SQLite and on PostgreSQL (where NUL breaks JSON reads)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from outbound.db.models import Contact, Event
from outbound.tenancy.keys import create_api_key
from outbound.web.app import create_app


def envelope(event_id="evt-1", **extra):
    body = {
        "id": event_id,
        "type": "cart_abandoned",
        "occurred_at": "2026-11-22T10:15:00+09:00",
        "contact": {"external_id": "cust-42", "phone": "+821012345678"},
        "data": {"cart_id": "c-9", "value": 129000},
    }
    body.update(extra)
    return body


@pytest.fixture
def key(session, clock, make_tenant):
    tenant = make_tenant("shop-one")
    raw = create_api_key(session, tenant, clock=clock)
    session.commit()
    return raw


@pytest.fixture
def client(runtime):
    with TestClient(create_app(runtime, on_event=None)) as client:
        yield client


def post(client, key, body) -> object:
    text = body if isinstance(body, str) else json.dumps(body)
    return client.post(
        "/v1/events", content=text, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    )


def stored(factory) -> list[str]:
    with factory() as session:
        return sorted(session.scalars(select(Event.event_id)))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (envelope(data={"note": "a\x00b"}), "data"),
        (envelope(data={"items": [{"name": "ok"}, {"name": "bad\x00"}]}), "data"),
        (envelope(data={"k\x00": 1}), "data"),
        (envelope(contact={"external_id": "cust-42", "attributes": {"tier": "vip\x00"}}), "contact.attributes"),
        (envelope(contact={"external_id": "cust\x00-42"}), "contact.external_id"),
        (envelope(id="evt\x00"), "id"),
    ],
)
def test_nul_anywhere_in_an_event_is_refused_with_422_naming_the_field(client, key, factory, body, field):
    answer = post(client, key, body)
    assert answer.status_code == 422
    [error] = answer.json()["errors"]
    assert error["field"] == field and "NUL" in error["message"]
    assert stored(factory) == []


def test_a_lone_surrogate_in_event_data_is_refused_with_422(client, key, factory):
    text = json.dumps(envelope()).replace('"c-9"', '"c-\\ud800"')
    answer = post(client, key, text)
    assert answer.status_code == 422
    assert "surrogate" in answer.json()["errors"][0]["message"]
    assert stored(factory) == []


@pytest.mark.parametrize("depth", [40, 256, 600, 989])
def test_json_nested_hundreds_of_levels_deep_gets_a_4xx_not_a_500(client, key, factory, depth):
    text = json.dumps(envelope(data={"cart_id": "c-9", "deep": "here"})).replace('"here"', "[" * depth + "]" * depth)
    answer = post(client, key, text)
    assert 400 <= answer.status_code < 500
    assert stored(factory) == []


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-12:00", "9999-12-31T23:59:59Z"]
)
def test_an_event_dated_at_the_ends_of_the_calendar_gets_422_on_occurred_at(client, key, factory, when):
    answer = post(client, key, envelope(occurred_at=when))
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "occurred_at"
    assert stored(factory) == []


def test_a_batch_with_hostile_items_stores_the_others_and_names_each_bad_one(client, key, factory):
    batch = {
        "events": [
            envelope("ok-1"),
            envelope("bad-nul", data={"x": "\x00"}),
            envelope("bad-date", occurred_at="9999-12-31T23:59:59-12:00"),
            envelope("ok-2"),
        ]
    }
    answer = post(client, key, batch)
    assert answer.status_code == 200
    assert [(e["index"], e["field"]) for e in answer.json()["errors"]] == [(1, "data"), (2, "occurred_at")]
    assert stored(factory) == ["ok-1", "ok-2"]
    with factory() as session:
        assert session.scalars(select(Contact.external_id)).all() == ["cust-42"]
