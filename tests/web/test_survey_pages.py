"""The one-click survey pages in a real headless Chromium against the app served by uvicorn, on a real database:
opening a score link asks the customer to confirm; only the confirmation records the answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from outbound.db.models import CallbackTask, SurveyResponse
from outbound.web.app import create_app

from helpers.browser import chromium, served
from helpers.campaigns import make_world_fixture  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def surveyed(make_world, clock):
    """A CSAT survey email sent to one customer; its score links and the app serving them."""
    world = make_world()
    tenant = world.tenant()
    world.contact(tenant, "c1", email="c1@example.com", consents=[("email", "survey")])
    world.event(tenant, "ticket_closed", "c1", {"ticket_id": "t-1"})
    world.run(clock.now() + timedelta(minutes=1))
    [message] = world.messages(campaign="csat")
    links = {
        int(score): link.removeprefix("https://ob.example")
        for score, link in (line.split(": ") for line in message.body.splitlines() if ": https://" in line)
    }
    with served(create_app(world.runtime, on_event=None)) as base:
        yield world, message, base, links


def answers(world):
    with world.runtime.factory() as session:
        rows = session.execute(select(SurveyResponse.score, SurveyResponse.counted, SurveyResponse.comment)).all()
        tasks = session.scalars(select(CallbackTask)).all()
    return [tuple(row) for row in rows], tasks


def test_opening_a_score_link_in_a_browser_records_nothing_until_the_customer_confirms(browser, surveyed):
    world, message, base, links = surveyed
    page = browser.new_context().new_page()
    page.set_default_timeout(10_000)
    page.goto(base + links[2])
    assert answers(world) == ([], [])  # what a mail scanner's visit leaves: nothing
    assert page.inner_text("[data-testid=score]") == "2"
    page.click("button[type=submit]")
    page.wait_for_selector("textarea[name=comment]")
    assert page.url == base + links[2]  # the answer page of the POST: no redirect
    recorded, tasks = answers(world)
    assert recorded == [(2, True, None)] and len(tasks) == 1  # a 2 is at the campaign's recovery threshold
    page.fill("textarea[name=comment]", "Slow to answer my mail")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Your comment reached us")
    assert answers(world)[0] == [(2, True, "Slow to answer my mail")]


def test_a_scanner_opening_every_score_link_in_a_browser_answers_nothing(browser, surveyed):
    world, message, base, links = surveyed
    page = browser.new_context().new_page()
    responses = [page.goto(base + path) for path in links.values()]
    assert answers(world) == ([], [])
    assert [r.status for r in responses] == [200] * 5
    assert {r.headers.get("cache-control") for r in responses} == {"no-store"}
