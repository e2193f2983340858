"""Calling rules at their boundaries: calling hours in the customer's zone, suppressions, the Do-Not-Call list."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from outbound.compliance import Allow, Block, Defer
from outbound.db.models import CallbackTask, Contact, DncImport
from outbound.db.suppressions import suppress
from outbound.engagement.callback_queue import claim_next
from outbound.engagement.calling_rules import CallFacts, call_decisions, calling_rules, decide_call
from outbound.errors import InvalidInput
from outbound.tenancy.agents import create_agent

NEW_YORK = "America/New_York"


def _at(local: str, zone: str = NEW_YORK) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _us_facts(now: datetime, **overrides) -> CallFacts:
    values = {"now": now, "zone": NEW_YORK, "window": calling_rules({}, us=True).window, "phone": "+12125550101"}
    values.update(overrides)
    return CallFacts(**values)


def test_a_us_customer_may_be_called_at_20_59_their_time_but_not_at_21_00():
    assert isinstance(decide_call(_us_facts(_at("2026-11-20T20:59"))), Allow)
    at_nine = decide_call(_us_facts(_at("2026-11-20T21:00")))
    assert isinstance(at_nine, Defer) and at_nine.rule == "calling_hours"
    assert at_nine.until == _at("2026-11-21T08:00")


def test_a_us_customer_may_not_be_called_at_07_59_but_may_at_08_00():
    assert isinstance(decide_call(_us_facts(_at("2026-11-20T07:59"))), Defer)
    assert isinstance(decide_call(_us_facts(_at("2026-11-20T08:00"))), Allow)


def test_calling_hours_follow_the_customers_zone_not_the_servers():
    # 02:30 UTC is 21:30 in New York and 18:30 in Los Angeles.
    now = datetime(2026, 11, 21, 2, 30, tzinfo=UTC)
    assert isinstance(decide_call(_us_facts(now)), Defer)
    assert isinstance(decide_call(_us_facts(now, zone="America/Los_Angeles")), Allow)


def test_a_tenant_outside_the_us_sets_its_calling_hours():
    window = calling_rules({"calling_hours": "09:00-20:00"}, us=False).window
    seoul = "Asia/Seoul"
    facts = {"zone": seoul, "window": window, "phone": "+821012345678"}
    assert isinstance(decide_call(CallFacts(now=_at("2026-11-20T08:59", seoul), **facts)), Defer)
    assert isinstance(decide_call(CallFacts(now=_at("2026-11-20T09:00", seoul), **facts)), Allow)
    assert isinstance(decide_call(CallFacts(now=_at("2026-11-20T19:59", seoul), **facts)), Allow)
    assert isinstance(decide_call(CallFacts(now=_at("2026-11-20T20:00", seoul), **facts)), Defer)


def test_a_tenant_setting_cannot_widen_us_calling_hours_beyond_08_00_to_21_00():
    assert calling_rules({"calling_hours": "07:00-22:00"}, us=True).window == (time(8), time(21))
    assert calling_rules({"calling_hours": "10:00-18:00"}, us=True).window == (time(10), time(18))


@pytest.mark.parametrize("value", ["9-20", "20:00-09:00", "09:00", "25:00-26:00"])
def test_a_malformed_calling_hours_setting_is_refused_naming_the_setting(value):
    with pytest.raises(InvalidInput) as raised:
        calling_rules({"calling_hours": value}, us=False)
    assert raised.value.field == "settings.calling_hours"


def test_a_number_suppressed_for_calls_or_on_the_dnc_list_or_missing_is_never_allowed():
    now = _at("2026-11-20T12:00")
    assert decide_call(_us_facts(now, suppressions=("do_not_call",))).rule == "suppression"
    assert decide_call(_us_facts(now, dnc=Block(rule="dnc", reason="listed"))).rule == "dnc"
    assert decide_call(_us_facts(now, phone=None)).rule == "no_phone"


# -- against the database --------------------------------------------------------------------------------


@pytest.fixture
def maple(session, make_tenant):
    tenant = make_tenant("maple", "US", NEW_YORK)
    session.commit()
    return tenant


def _contact(session, tenant, external_id, phone, zone=None):
    now = datetime(2026, 11, 1, tzinfo=UTC)
    contact = Contact(
        tenant_id=tenant.id,
        external_id=external_id,
        phone=phone,
        timezone=zone,
        attributes={},
        created_at=now,
        updated_at=now,
    )
    session.add(contact)
    session.flush()
    return contact


def _task(session, tenant, contact, *, priority=0, due_at):
    task = CallbackTask(
        tenant_id=tenant.id,
        contact_id=contact.id,
        campaign="lead",
        reason="call",
        priority=priority,
        status="open",
        due_at=due_at,
        created_at=due_at,
    )
    session.add(task)
    session.flush()
    return task


def _dnc_list(session, tenant, published: datetime):
    session.add(
        DncImport(tenant_id=tenant.id, source="registry", list_date=published, imported_at=published, entries=0)
    )
    session.flush()


def test_a_dnc_list_31_days_old_is_fresh_and_one_32_days_old_blocks_calls(session, maple):
    contact = _contact(session, maple, "c1", "+12125550101")
    now = _at("2026-11-20T12:00")
    _dnc_list(session, maple, now - timedelta(days=31))
    assert isinstance(call_decisions(session, maple, [contact], now)[contact.id][1], Allow)
    later = now + timedelta(days=1)
    stale = call_decisions(session, maple, [contact], later)[contact.id][1]
    assert isinstance(stale, Block) and stale.rule == "dnc_stale"


def test_a_stale_dnc_list_offers_no_call_but_keeps_the_tasks_for_when_a_fresh_list_arrives(session, maple):
    now = _at("2026-11-20T12:00")
    _dnc_list(session, maple, now - timedelta(days=32))
    task = _task(session, maple, _contact(session, maple, "c1", "+12125550101"), due_at=now)
    agent = create_agent(session, maple, "alice", name="Alice", password="password1", clock=_Clock(now))
    assert claim_next(session, maple, agent, now) is None
    assert task.status == "open"
    _dnc_list(session, maple, now - timedelta(days=1))
    assert claim_next(session, maple, agent, now).id == task.id


def test_a_number_on_the_dnc_list_is_never_offered_and_its_task_is_closed(session, maple):
    now = _at("2026-11-20T12:00")
    _dnc_list(session, maple, now - timedelta(days=1))
    listed = _contact(session, maple, "c1", "+12125550101")
    suppress(session, maple.id, "voice", listed.phone, reason="dnc", source="registry", at=now)
    task = _task(session, maple, listed, due_at=now)
    agent = create_agent(session, maple, "alice", name="Alice", password="password1", clock=_Clock(now))
    assert claim_next(session, maple, agent, now) is None
    session.refresh(task)
    assert (task.status, task.outcome) == ("closed", "blocked") and task.notes.startswith("dnc:")


def test_a_number_suppressed_for_calls_is_skipped_for_the_next_callable_task(session, maple):
    now = _at("2026-11-20T12:00")
    _dnc_list(session, maple, now - timedelta(days=1))
    suppressed = _contact(session, maple, "c1", "+12125550101")
    suppress(session, maple.id, "voice", suppressed.phone, reason="do_not_call", source="agent", at=now)
    _task(session, maple, suppressed, priority=9, due_at=now)
    callable_task = _task(session, maple, _contact(session, maple, "c2", "+12125550102"), priority=1, due_at=now)
    agent = create_agent(session, maple, "alice", name="Alice", password="password1", clock=_Clock(now))
    assert claim_next(session, maple, agent, now).id == callable_task.id


def test_claims_pass_over_a_customer_at_21_00_for_one_at_20_00_then_offer_them_at_08_00(session, maple):
    now = _at("2026-11-20T21:00")  # 20:00 in Chicago
    _dnc_list(session, maple, now - timedelta(days=1))
    new_york = _task(session, maple, _contact(session, maple, "ny", "+12125550101", NEW_YORK), priority=9, due_at=now)
    chicago = _task(session, maple, _contact(session, maple, "chi", "+13125550101", "America/Chicago"), due_at=now)
    alice = create_agent(session, maple, "alice", name="Alice", password="password1", clock=_Clock(now))
    bob = create_agent(session, maple, "bob", name="Bob", password="password1", clock=_Clock(now))
    assert claim_next(session, maple, alice, now).id == chicago.id
    assert claim_next(session, maple, bob, now) is None
    morning = _at("2026-11-21T08:00")
    assert claim_next(session, maple, bob, morning).id == new_york.id
    assert session.scalar(select(CallbackTask.status).where(CallbackTask.id == new_york.id)) == "claimed"


class _Clock:
    def __init__(self, at):
        self.at = at

    def now(self):
        return self.at
