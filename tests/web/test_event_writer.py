"""The API's event writer: requests that wait together are written in one transaction, each answered as if alone."""

from __future__ import annotations

import json
import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event as sa_event
from sqlalchemy import select

from outbound.db.models import Enrollment, Event
from outbound.tenancy.keys import create_api_key
from outbound.web.app import create_app

from helpers.waiting import wait_until

HOLD = "evt-hold"


def envelope(event_id, external_id="cust-1", **extra):
    body = {
        "id": event_id,
        "type": "cart_abandoned",
        "occurred_at": "2026-11-22T10:15:00+09:00",
        "contact": {"external_id": external_id, "phone": "+821012345678"},
        "data": {"cart_id": "c-9"},
    }
    body.update(extra)
    return body


class Gate:
    """A trigger hook that enrolls each contact, holds the writer on the event `evt-hold` until released,
    and makes the commit of the transaction holding `evt-poison` fail."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, session, tenant, event, contact):
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
        if event.event_id == HOLD:
            self.entered.set()
            assert self.release.wait(30)
        if event.event_id == "evt-poison":
            # A new function each time: a listener already registered on a session at the same address is ignored.
            sa_event.listen(session, "before_commit", lambda _session: _refuse())


def _refuse():
    raise RuntimeError("the database refused the commit")


@pytest.fixture
def key(session, clock, make_tenant):
    key = create_api_key(session, make_tenant("shop-one"), clock=clock)
    session.commit()
    return key


@pytest.fixture
def gate():
    return Gate()


@pytest.fixture
def app(runtime, gate):
    return create_app(runtime, on_event=gate)


@pytest.fixture
def commits(runtime):
    counted = []
    sa_event.listen(runtime.engine, "commit", lambda connection: counted.append(1))
    return counted


class Requests:
    """Requests sent one after another from threads, each left waiting for the writer before the next goes."""

    def __init__(self, client, app, key):
        self.client, self.writer, self.key = client, app.state.events, key
        self.answers, self.threads = {}, []

    def send(self, name, body, key=None, *, queued=True):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        waiting = self.writer.waiting

        def post():
            self.answers[name] = self.client.post(
                "/v1/events",
                content=content,
                headers={"Authorization": f"Bearer {key or self.key}", "Content-Type": "application/json"},
            )

        thread = threading.Thread(target=post)
        thread.start()
        self.threads.append(thread)
        if queued:
            wait_until(lambda: self.writer.waiting == waiting + 1, what=f"{name} to wait for the writer")

    def wait(self):
        for thread in self.threads:
            thread.join(30)
        return self.answers


def stored(factory):
    with factory() as session:
        return set(session.scalars(select(Event.event_id)))


def test_requests_waiting_together_are_one_transaction_and_each_gets_its_own_answer(app, key, gate, factory, commits):
    with TestClient(app) as client:
        requests = Requests(client, app, key)
        requests.send("held", envelope(HOLD, "cust-0"), queued=False)
        assert gate.entered.wait(10)
        commits.clear()
        requests.send("single", envelope("evt-b", "cust-b"))
        requests.send(
            "batch", {"events": [envelope("evt-c", "cust-c"), {"id": "evt-bad"}, envelope("evt-b", "cust-b")]}
        )
        requests.send("wrong key", envelope("evt-d", "cust-d"), key="ob_wrong")
        requests.send("not json", b"{not json")
        requests.send("bad single", {"id": "evt-e", "contact": {"external_id": "cust-e"}})
        requests.send("same contact", envelope("evt-f", "cust-b"))
        gate.release.set()
        answers = requests.wait()

    assert len(commits) == 2  # the held request's transaction, then one for the six that waited
    assert app.state.events.groups == 2
    assert (answers["held"].status_code, answers["held"].json()["stored"]) == (200, 1)
    assert answers["single"].json() == {"stored": 1, "duplicates": 0, "errors": []}
    batch = answers["batch"].json()
    assert (batch["stored"], batch["duplicates"]) == (1, 1)  # evt-b came first in the request before it
    assert [(e["index"], e["field"]) for e in batch["errors"]] == [(1, "type"), (1, "occurred_at"), (1, "contact")]
    assert answers["wrong key"].status_code == 401
    assert answers["wrong key"].headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert answers["not json"].status_code == 400
    assert answers["bad single"].status_code == 422
    assert {e["field"] for e in answers["bad single"].json()["errors"]} == {"type", "occurred_at"}
    assert answers["same contact"].json()["stored"] == 1
    assert stored(factory) == {HOLD, "evt-b", "evt-c", "evt-f"}
    with factory() as session:  # the hook ran once for each stored event, in the group's transaction
        assert len(session.scalars(select(Enrollment)).all()) == 4


def test_a_group_whose_commit_fails_is_written_request_by_request_and_only_the_failing_one_is_lost(
    factory, runtime, gate, key
):
    app = create_app(runtime, on_event=gate)
    with TestClient(app, raise_server_exceptions=False) as client:
        requests = Requests(client, app, key)
        requests.send("held", envelope(HOLD, "cust-0"), queued=False)
        assert gate.entered.wait(10)
        requests.send("before", envelope("evt-ok-1", "cust-1"))
        requests.send("poison", envelope("evt-poison", "cust-2"))
        requests.send("after", {"events": [envelope("evt-ok-2", "cust-3"), envelope("evt-ok-3", "cust-4")]})
        gate.release.set()
        answers = requests.wait()

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "held": 200,
        "before": 200,
        "poison": 500,
        "after": 200,
    }
    assert answers["after"].json()["stored"] == 2
    assert stored(factory) == {HOLD, "evt-ok-1", "evt-ok-2", "evt-ok-3"}
    with factory() as session:  # nothing of the poisoned request remains, not even its hook's rows
        assert len(session.scalars(select(Enrollment)).all()) == 4


def test_a_lone_request_is_written_at_once_in_its_own_transaction(app, key, commits):
    with TestClient(app) as client:
        for number in range(3):
            answer = client.post(
                "/v1/events", json=envelope(f"evt-{number}"), headers={"Authorization": f"Bearer {key}"}
            )
            assert answer.json()["stored"] == 1
    assert len(commits) == 3
    assert app.state.events.groups == 3
