"""The HTTP ingest API, through a real app on a real SQLite database."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from outbound.db.models import Enrollment, Event, Tenant
from outbound.tenancy.keys import create_api_key, revoke_api_key
from outbound.web.api import MAX_EVENTS
from outbound.web.app import create_app


def envelope(event_id="evt-1", **extra):
    body = {
        "id": event_id,
        "type": "cart_abandoned",
        "occurred_at": "2026-11-22T10:15:00+09:00",
        "contact": {"external_id": "cust-42", "phone": "+821012345678", "timezone": "Asia/Seoul"},
        "data": {"cart_id": "c-9", "value": 129000, "currency": "KRW"},
    }
    body.update(extra)
    return body


class Recorder:
    """A trigger hook that enrolls the contact, as the trigger engine would; it can fail for one event id."""

    def __init__(self, fail_on=None):
        self.seen, self.fail_on = [], fail_on

    def __call__(self, session, tenant, event, contact):
        self.seen.append(event.event_id)
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


@pytest.fixture
def tenants(session, clock, make_tenant):
    """Two tenants with an ingest key each, committed so requests can see them."""
    one, two = make_tenant("shop-one"), make_tenant("shop-two")
    keys = {
        "shop-one": create_api_key(session, one, clock=clock),
        "shop-two": create_api_key(session, two, clock=clock),
    }
    session.commit()
    return {"shop-one": one.id, "shop-two": two.id}, keys


@pytest.fixture
def hook():
    return Recorder()


@pytest.fixture
def client(runtime, hook):
    with TestClient(create_app(runtime, on_event=hook)) as client:
        yield client


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def stored_ids(factory, tenant_id=None):
    with factory() as session:
        query = select(Event.event_id).order_by(Event.event_id)
        if tenant_id is not None:
            query = query.where(Event.tenant_id == tenant_id)
        return list(session.scalars(query))


def test_a_request_without_a_key_gets_401_with_a_challenge(client, tenants):
    response = client.post("/v1/events", json=envelope())
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_request_with_a_wrong_key_gets_401_and_stores_nothing(client, tenants, factory):
    response = client.post("/v1/events", json=envelope(), headers=auth("ob_not-a-real-key"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert stored_ids(factory) == []


def test_an_event_is_stored_under_the_tenant_of_the_key_only(client, tenants, factory):
    ids, keys = tenants
    response = client.post("/v1/events", json=envelope("e1"), headers=auth(keys["shop-one"]))
    assert response.status_code == 200
    assert response.json() == {"stored": 1, "duplicates": 0, "errors": []}
    assert stored_ids(factory, ids["shop-one"]) == ["e1"]
    assert stored_ids(factory, ids["shop-two"]) == []


def test_the_same_event_id_in_two_requests_is_stored_once(client, tenants, factory, hook):
    _, keys = tenants
    first = client.post("/v1/events", json=envelope("e1"), headers=auth(keys["shop-one"]))
    second = client.post("/v1/events", json=envelope("e1"), headers=auth(keys["shop-one"]))
    assert first.json()["stored"] == 1
    assert second.json() == {"stored": 0, "duplicates": 1, "errors": []}
    assert stored_ids(factory) == ["e1"]
    assert hook.seen == ["e1"]


def test_a_batch_with_a_bad_item_stores_the_good_ones_and_names_the_bad(client, tenants, factory):
    _, keys = tenants
    batch = {"events": [envelope("e1"), envelope("e2", contact={"phone": "+821012345678"}), envelope("e3"), 7]}
    response = client.post("/v1/events", json=batch, headers=auth(keys["shop-one"]))
    assert response.status_code == 200
    body = response.json()
    assert (body["stored"], body["duplicates"]) == (2, 0)
    assert body["errors"][0] == {"index": 1, "field": "contact.external_id", "message": "Field required"}
    assert body["errors"][1]["index"] == 3
    assert stored_ids(factory) == ["e1", "e3"]


def test_the_hooks_rows_commit_with_the_request_and_a_failing_one_leaves_nothing(factory, runtime, tenants):
    _, keys = tenants
    with TestClient(create_app(runtime, on_event=Recorder(fail_on="e2"))) as client:
        response = client.post(
            "/v1/events",
            json={"events": [envelope("e1"), envelope("e2"), envelope("e3")]},
            headers=auth(keys["shop-one"]),
        )
    assert response.status_code == 200
    assert [e["index"] for e in response.json()["errors"]] == [1]
    assert stored_ids(factory) == ["e1", "e3"]
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 2


def test_a_single_malformed_envelope_gets_422_naming_the_field(client, tenants, factory):
    _, keys = tenants
    response = client.post(
        "/v1/events", json=envelope(occurred_at="2026-11-22T10:15:00"), headers=auth(keys["shop-one"])
    )
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "occurred_at"
    assert stored_ids(factory) == []


def test_a_single_event_with_an_impossible_phone_gets_422_naming_the_value(client, tenants):
    _, keys = tenants
    response = client.post(
        "/v1/events", json=envelope(contact={"external_id": "c", "phone": "12"}), headers=auth(keys["shop-one"])
    )
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "contact.phone" and "'12'" in error["message"]


def test_malformed_json_gets_400(client, tenants):
    _, keys = tenants
    response = client.post("/v1/events", content=b'{"id": "e1",', headers=auth(keys["shop-one"]))
    assert response.status_code == 400
    assert response.json()["detail"].startswith("invalid JSON")


def test_more_than_the_maximum_of_events_gets_413_and_stores_nothing(client, tenants, factory):
    _, keys = tenants
    batch = {"events": [envelope(f"e{i}") for i in range(MAX_EVENTS + 1)]}
    response = client.post("/v1/events", json=batch, headers=auth(keys["shop-one"]))
    assert response.status_code == 413
    assert stored_ids(factory) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'"text"',
        b"null",
        b"42",
        b'{"events": "e1"}',
        b'{"events": [null, [], "x"]}',
        b"\xff\xfe\x00garbage",
        b'{"id": NaN}',
        b"[" * 100_000,
        b'{"id": "e\\u0000", "type": "x"}',
    ],
)
def test_bad_bodies_never_get_a_500(client, tenants, factory, body):
    _, keys = tenants
    response = client.post("/v1/events", content=body, headers=auth(keys["shop-one"]))
    assert response.status_code in (200, 400, 422), response.text
    assert stored_ids(factory) == []


def test_health_check_answers_when_the_database_does(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_the_openapi_document_describes_the_event_envelope(client):
    assert client.get("/docs").status_code == 200
    document = client.get("/openapi.json").json()
    assert "EventEnvelope" in document["components"]["schemas"]
    assert "ContactIn" in document["components"]["schemas"]
    assert "requestBody" in document["paths"]["/v1/events"]["post"]


def test_a_key_revoked_while_the_server_runs_is_refused_on_its_next_request(client, tenants, session, clock, factory):
    ids, keys = tenants
    assert client.post("/v1/events", json=envelope("e1"), headers=auth(keys["shop-one"])).status_code == 200
    revoke_api_key(session, session.get(Tenant, ids["shop-one"]), keys["shop-one"], clock)
    session.commit()
    response = client.post("/v1/events", json=envelope("e2"), headers=auth(keys["shop-one"]))
    assert response.status_code == 401
    assert client.post("/v1/events", json=envelope("e3"), headers=auth(keys["shop-two"])).status_code == 200
    assert stored_ids(factory) == ["e1", "e3"]


def test_a_client_sending_wrong_keys_is_answered_429_with_retry_after(client, tenants, factory):
    good = tenants[1]["shop-one"]
    answers = [client.post("/v1/events", json=envelope(), headers=auth("obk_wrong")).status_code for _ in range(31)]
    assert answers == [401] * 30 + [429]
    refused = client.post("/v1/events", json=envelope(), headers=auth(good))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert stored_ids(factory) == []
