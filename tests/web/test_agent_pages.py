"""The agent pages in a real headless Chromium (Debian `chromium`, driven by Playwright) against the app
served by uvicorn on loopback, as `outbound serve` serves it, on a real database.

Without /usr/bin/chromium these tests fail: the pages are only proven in a real browser.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from outbound.config import Settings
from outbound.db.models import (
    Agent,
    CallbackAttempt,
    CallbackTask,
    Contact,
    DncImport,
    Enrollment,
    Message,
    SurveyResponse,
)
from outbound.db.session import transaction
from outbound.tenancy.agents import create_agent
from outbound.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), "the browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shop(world, clock):
    """A US shop (fresh DNC list) with agents Alice and Bob, supervisor Sue, and three leads to call."""
    tenant = world.tenant("maple", "US", "America/New_York")
    with transaction(world.runtime.factory) as session:
        merged = session.merge(tenant)
        session.add(
            DncImport(
                tenant_id=tenant.id,
                source="registry",
                list_date=clock.now() - timedelta(days=3),
                imported_at=clock.now(),
                entries=0,
            )
        )
        create_agent(session, merged, "alice", name="Alice Agent", password=PASSWORD, clock=clock)
        create_agent(session, merged, "bob", name="Bob Agent", password=PASSWORD, clock=clock)
        create_agent(session, merged, "sue", name="Sue Supervisor", password=PASSWORD, role="supervisor", clock=clock)
    for n in (1, 2, 3):
        world.contact(
            tenant,
            f"lead-{n}",
            phone=f"+1212555010{n}",
            email=f"lead{n}@example.com",
            timezone="America/New_York",
            consents=[("sms", "marketing"), ("email", "marketing")],
        )
        world.event(tenant, "lead_created", f"lead-{n}", {"source": f"webinar-{n}"})
        clock.advance(timedelta(minutes=1))
    with transaction(world.runtime.factory) as session:
        for contact in session.scalars(select(Contact)):
            session.add(
                SurveyResponse(
                    tenant_id=tenant.id,
                    contact_id=contact.id,
                    campaign="nps",
                    scale="nps",
                    score=4,
                    comment=f"slow delivery for {contact.external_id}",
                    channel="sms",
                    received_at=clock.now(),
                )
            )
    return tenant


@pytest.fixture
def server(world, clock, shop):
    """The app as `outbound serve` builds it, served by uvicorn in a thread on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(
        database_url=str(world.runtime.engine.url),
        secret_key=secrets.token_urlsafe(32),
        base_url=f"http://127.0.0.1:{port}",
    )
    app = create_app(dataclasses.replace(world.runtime, settings=settings))
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield base
    uv.should_exit = True
    thread.join(timeout=10)


def _log_in(browser, base, username):
    page = browser.new_context().new_page()
    page.goto(f"{base}/agent/queue")
    assert page.url.endswith("/agent/login")  # not logged in yet: sent to the login page
    page.fill("input[name=tenant]", "maple")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return page


def _task_id(page) -> int:
    return int(re.search(r"/agent/tasks/(\d+)$", page.url).group(1))


def test_two_agents_log_in_claim_different_tasks_see_the_context_and_record_outcomes(browser, server, world, clock):
    alice, bob = _log_in(browser, server, "alice"), _log_in(browser, server, "bob")
    for page, name in ((alice, "Alice Agent"), (bob, "Bob Agent")):
        assert page.url.endswith("/agent/queue") and name in page.inner_text("[data-testid=who]")
        rows = page.locator("#queue tbody tr")
        assert rows.count() == 3
        assert "New lead: call within 5 minutes" in rows.first.inner_text()
        assert "yes" in rows.first.locator("td").nth(6).inner_text()  # calling allowed now (19:03 in New York)

    alice.click("#next-call")
    bob.click("#next-call")
    first, second = _task_id(alice), _task_id(bob)
    assert first != second

    # Alice sees who she is calling: phone, local time, consent, messages, survey answer, events.
    assert "+1212555010" in alice.inner_text("#phone")
    assert alice.inner_text("#call-allowed") == "calling allowed"
    assert re.search(r"\d\d:\d\d", alice.inner_text("#local-time"))
    consents = alice.inner_text("#consents")
    assert "sms" in consents and "marketing" in consents and "granted" in consents
    assert "scheduled" in alice.inner_text("#messages")
    assert "slow delivery for lead-" in alice.inner_text("#surveys")
    assert "lead_created" in alice.inner_text("#events") and "webinar-" in alice.inner_text("#events")

    # Bob's queue shows Alice holding her task.
    bob.goto(f"{server}/agent/queue")
    assert "with Alice Agent" in bob.locator(f"#queue tr[data-task='{first}']").inner_text()

    alice.check("input[value=no_answer]")
    alice.fill("textarea[name=notes]", "rang out twice")
    alice.click("#outcome button[type=submit]")
    assert alice.url.endswith("/agent/queue") and "Recorded “No answer”" in alice.inner_text(".notice")

    bob.goto(f"{server}/agent/tasks/{second}")
    bob.check("input[value=converted]")
    bob.click("#outcome button[type=submit]")
    assert "Recorded “Converted”" in bob.inner_text(".notice")

    # The next call for Alice is the third lead: hers waits two hours, Bob's is closed.
    alice.click("#next-call")
    third = _task_id(alice)
    assert third not in (first, second)

    with world.runtime.factory() as session:
        attempts = {(a.task_id, a.outcome, a.notes) for a in session.scalars(select(CallbackAttempt))}
        assert attempts == {(first, "no_answer", "rang out twice"), (second, "converted", None)}
        retried = session.get(CallbackTask, first)
        assert (retried.status, retried.due_at) == ("open", clock.now() + timedelta(hours=2))
        converted = session.get(CallbackTask, second)
        assert converted.status == "closed"
        assert session.get(Enrollment, converted.enrollment_id).status == "exited"
        assert {
            m.status for m in session.scalars(select(Message).where(Message.enrollment_id == converted.enrollment_id))
        } == {"cancelled"}

    # The supervisor sees the queue, today's outcomes per agent and the hourly chart.
    sue = _log_in(browser, server, "sue")
    assert sue.url.endswith("/agent/supervisor")
    assert sue.inner_text("[data-testid=open]") == "1" and sue.inner_text("[data-testid=claimed]") == "1"
    outcomes = sue.inner_text("#outcomes")
    assert "Alice Agent" in outcomes and "Bob Agent" in outcomes
    assert sue.locator("#hourly svg rect.created").count() == 24
    assert "3 created" in " ".join(sue.locator("#hourly svg rect.created title").all_text_contents())


def test_a_wrong_password_is_refused_on_the_login_page(browser, server):
    page = browser.new_context().new_page()
    page.goto(f"{server}/agent/login")
    page.fill("input[name=tenant]", "maple")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    assert "Wrong tenant, username or password." in page.inner_text(".error")
    page.goto(f"{server}/agent/queue")
    assert page.url.endswith("/agent/login")


def test_an_agent_cannot_open_the_supervisor_page_or_another_agents_task(browser, server):
    alice, bob = _log_in(browser, server, "alice"), _log_in(browser, server, "bob")
    assert alice.goto(f"{server}/agent/supervisor").status == 403
    bob.click("#next-call")
    assert alice.goto(f"{server}/agent/tasks/{_task_id(bob)}").status == 403


def _csrf(text: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', text).group(1)


def test_a_form_posted_without_the_sessions_csrf_token_is_refused(server):
    with httpx.Client(base_url=server) as client, httpx.Client(base_url=server) as other:
        token = _csrf(client.get("/agent/login").text)
        form = {"tenant": "maple", "username": "alice", "password": PASSWORD}
        assert client.post("/agent/login", data=form).status_code == 403
        assert client.post("/agent/login", data={**form, "csrf": "forged"}).status_code == 403
        # A token is only good in the session it was issued to.
        other.get("/agent/login")
        assert other.post("/agent/login", data={**form, "csrf": token}).status_code == 403
        logged_in = client.post("/agent/login", data={**form, "csrf": token})
        assert logged_in.status_code == 303 and logged_in.headers["location"] == "/agent/queue"
        assert client.post("/agent/next", data={"csrf": token}).status_code == 403  # login issued a new token
        fresh = _csrf(client.get("/agent/queue").text)
        assert client.post("/agent/next").status_code == 403
        assert client.post("/agent/next", data={"csrf": fresh}).status_code == 303


def test_a_login_session_expires_after_eight_hours(server, clock):
    with httpx.Client(base_url=server) as client:
        token = _csrf(client.get("/agent/login").text)
        client.post("/agent/login", data={"tenant": "maple", "username": "alice", "password": PASSWORD, "csrf": token})
        assert client.get("/agent/queue").status_code == 200
        for _ in range(9):  # a busy shift: a page every 53 minutes, never idle for an hour
            clock.advance(timedelta(minutes=53))
            assert client.get("/agent/queue").status_code == 200
        clock.advance(timedelta(minutes=3))  # 8 h after login
        expired = client.get("/agent/queue")
        assert expired.status_code == 303 and expired.headers["location"] == "/agent/login"
    assert "Max-Age=28800" in _set_cookie(server)


def _set_cookie(server) -> str:
    with httpx.Client(base_url=server) as client:
        return client.get("/agent/login").headers["set-cookie"]


@contextmanager
def _agent_client(server, username="alice") -> Iterator[tuple[httpx.Client, str]]:
    with httpx.Client(base_url=server) as client:
        token = _csrf(client.get("/agent/login").text)
        form = {"tenant": "maple", "username": username, "password": PASSWORD, "csrf": token}
        client.post("/agent/login", data=form)
        yield client, _csrf(client.get("/agent/queue").text)


@pytest.mark.parametrize(
    "form",
    [
        {"tenant": "maple\x00", "username": "alice"},
        {"tenant": "maple", "username": "alice\x00"},
        {"tenant": "maple", "username": "a" * 100_000},
        {"tenant": "maple", "username": "alice\ud800"},
    ],
)
def test_a_login_with_nul_surrogates_or_huge_fields_is_refused_as_a_wrong_login_not_a_500(server, form):
    with httpx.Client(base_url=server) as client:
        token = _csrf(client.get("/agent/login").text)
        data = {**form, "password": PASSWORD, "csrf": token}
        body = urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in data.items()})
        answer = client.post(
            "/agent/login", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert answer.status_code == 401 and "Wrong tenant, username or password" in answer.text


@pytest.mark.parametrize("task_id", [2**63, 2**64, 10**30])
def test_a_task_id_beyond_64_bits_is_not_found_not_a_500(server, task_id):
    with _agent_client(server, "sue") as (client, token):
        assert client.get(f"/agent/tasks/{task_id}").status_code == 404
        answer = client.post(f"/agent/tasks/{task_id}/outcome", data={"outcome": "no_answer", "csrf": token})
        assert answer.status_code == 404


@pytest.mark.parametrize(
    ("call_back_at", "message"),
    [
        ("0001-01-01T00:00", "must be in the future"),
        ("9999-12-31T23:59", "not a time a call can be made"),  # past the calendar's end in UTC
        ("9999-12-30T12:00", "within 366 days"),
        ("2400-01-01T09:00", "within 366 days"),
    ],
)
def test_a_call_back_time_at_the_ends_of_the_calendar_is_refused_on_the_form(server, call_back_at, message):
    with _agent_client(server) as (client, token):
        claimed = client.post("/agent/next", data={"csrf": token})
        task = claimed.headers["location"]
        answer = client.post(
            f"{task}/outcome", data={"outcome": "call_back_later", "call_back_at": call_back_at, "csrf": token}
        )
        assert answer.status_code == 422 and message in answer.text


def test_agent_notes_with_a_nul_are_refused_naming_the_field_and_the_call_stays_unrecorded(server, world):
    with _agent_client(server) as (client, token):
        task = client.post("/agent/next", data={"csrf": token}).headers["location"]
        answer = client.post(f"{task}/outcome", data={"outcome": "no_answer", "notes": "rang\x00", "csrf": token})
        assert answer.status_code == 422 and "notes" in answer.text and "NUL" in answer.text
    with world.runtime.factory() as session:
        assert session.scalars(select(CallbackAttempt)).all() == []


def test_a_session_idle_for_an_hour_ends(server, clock):
    with _agent_client(server) as (client, _):
        clock.advance(timedelta(minutes=59))
        assert client.get("/agent/queue").status_code == 200
        clock.advance(timedelta(minutes=60))
        assert client.get("/agent/queue").headers.get("location") == "/agent/login"


def test_logout_ends_the_session_on_the_server_so_a_copied_cookie_is_refused(server):
    with _agent_client(server) as (client, token):
        thief = httpx.Client(base_url=server, cookies={"outbound_agent": client.cookies["outbound_agent"]})
        assert thief.get("/agent/queue").status_code == 200
        client.post("/agent/logout", data={"csrf": token})
        refused = thief.get("/agent/queue")
        thief.close()
        assert refused.status_code == 303 and refused.headers["location"] == "/agent/login"


def test_disabling_an_agent_ends_the_sessions_already_open(server, world, clock):
    from outbound.tenancy.agents import disable_agent

    with _agent_client(server, "bob") as (client, _):
        assert client.get("/agent/queue").status_code == 200
        with transaction(world.runtime.factory) as session:
            bob = session.scalar(select(Agent).where(Agent.username == "bob"))
            disable_agent(session, bob, clock.now())
        assert client.get("/agent/queue").headers.get("location") == "/agent/login"


def test_guessing_passwords_is_throttled_per_account_with_429_and_retry_after(server, clock):
    with httpx.Client(base_url=server) as client:
        token = _csrf(client.get("/agent/login").text)
        wrong = {"tenant": "maple", "username": "alice", "password": "guess", "csrf": token}
        assert [client.post("/agent/login", data=wrong).status_code for _ in range(5)] == [401] * 5
        refused = client.post("/agent/login", data={**wrong, "password": PASSWORD})  # even the right password
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "Too many failed logins" in refused.text
        clock.advance(timedelta(minutes=16))
        allowed = client.post("/agent/login", data={**wrong, "password": PASSWORD})
        assert allowed.status_code == 303


def test_guessing_across_many_accounts_is_throttled_per_address(server):
    with httpx.Client(base_url=server) as client:
        token = _csrf(client.get("/agent/login").text)
        answers = [
            client.post(
                "/agent/login", data={"tenant": "maple", "username": f"user{n}", "password": "x", "csrf": token}
            ).status_code
            for n in range(21)
        ]
        assert answers == [401] * 20 + [429]
