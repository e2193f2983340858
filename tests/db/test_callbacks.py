"""Callback tasks: claiming with a lease, outcomes and what they do, agent accounts, the CLI, the supervisor's counts."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from outbound.cli import app
from outbound.db.models import (
    Agent,
    CallbackAttempt,
    CallbackTask,
    Consent,
    DncImport,
    Enrollment,
    Suppression,
    Tenant,
)
from outbound.db.session import transaction
from outbound.engagement.callback_outcomes import record_outcome
from outbound.engagement.callback_queue import TaskNotHeld, claim_next, get_task
from outbound.engagement.callback_summary import supervisor_summary
from outbound.errors import InvalidInput, NotFound
from outbound.tenancy.agents import authenticate_agent, create_agent, disable_agent, hash_password, verify_password

PASSWORD = "correct horse"


@pytest.fixture
def shop(world, clock):
    """A US tenant with a fresh Do-Not-Call list, two agents, and three leads (one callback task each)."""
    tenant = world.tenant("maple", "US", "America/New_York")
    with transaction(world.runtime.factory) as session:
        session.add(
            DncImport(
                tenant_id=tenant.id,
                source="registry",
                list_date=clock.now() - timedelta(days=2),
                imported_at=clock.now(),
                entries=0,
            )
        )
        for username in ("alice", "bob"):
            create_agent(
                session, session.merge(tenant), username, name=username.title(), password=PASSWORD, clock=clock
            )
    for n in (1, 2, 3):
        world.contact(
            tenant,
            f"lead-{n}",
            phone=f"+1212555010{n}",
            email=f"lead{n}@example.com",
            timezone="America/New_York",
            consents=[("sms", "marketing"), ("sms", "transactional"), ("email", "marketing")],
        )
        world.event(tenant, "lead_created", f"lead-{n}")
        clock.advance(timedelta(minutes=1))
    return tenant


def _agent(session, username) -> Agent:
    return session.scalar(select(Agent).where(Agent.username == username))


def _work(world, fn):
    with transaction(world.runtime.factory) as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == "maple"))
        return fn(session, tenant)


def _claim(world, clock, username):
    def claim(session, tenant):
        task = claim_next(session, tenant, _agent(session, username), clock.now())
        return None if task is None else task.id

    return _work(world, claim)


def _record(world, clock, username, task_id, outcome, **kwargs):
    return _work(
        world,
        lambda session, tenant: record_outcome(
            session, tenant, _agent(session, username), task_id, outcome, now=clock.now(), **kwargs
        ).id,
    )


def _task(world, task_id) -> CallbackTask:
    with world.runtime.factory() as session:
        return session.get(CallbackTask, task_id)


def test_next_call_claims_the_highest_priority_then_the_longest_waiting_task(world, clock, shop):
    with transaction(world.runtime.factory) as session:
        newest = session.scalars(select(CallbackTask).order_by(CallbackTask.id.desc())).first()
        newest.priority = 20
        newest_id = newest.id
    first, second = _claim(world, clock, "alice"), _claim(world, clock, "bob")
    assert first == newest_id
    assert second == min(t.id for t in world_tasks(world) if t.id != newest_id)


def world_tasks(world):
    with world.runtime.factory() as session:
        return list(session.scalars(select(CallbackTask).order_by(CallbackTask.id)))


def test_an_agent_asking_again_gets_the_task_they_already_hold_with_a_renewed_lease(world, clock, shop):
    first = _claim(world, clock, "alice")
    clock.advance(timedelta(minutes=5))
    assert _claim(world, clock, "alice") == first
    assert _task(world, first).lease_expires_at == clock.now() + timedelta(minutes=10)


def test_a_task_not_yet_due_is_not_offered(world, clock, shop):
    with transaction(world.runtime.factory) as session:
        for task in session.scalars(select(CallbackTask)):
            task.due_at = clock.now() + timedelta(hours=1)
    assert _claim(world, clock, "alice") is None
    clock.advance(timedelta(hours=1))
    assert _claim(world, clock, "alice") is not None


def _only_first_task_open(world):
    with transaction(world.runtime.factory) as session:
        for task in session.scalars(select(CallbackTask).where(CallbackTask.id > 1)):
            task.status = "closed"


def test_when_a_lease_runs_out_another_agent_takes_the_task_and_the_first_can_no_longer_record_it(world, clock, shop):
    _only_first_task_open(world)
    assert _claim(world, clock, "alice") == 1
    assert _claim(world, clock, "bob") is None
    clock.advance(timedelta(minutes=10))
    assert _claim(world, clock, "bob") == 1
    with pytest.raises(TaskNotHeld):
        _record(world, clock, "alice", 1, "reached")
    _record(world, clock, "bob", 1, "reached", notes="spoke to them")
    assert (_task(world, 1).status, _task(world, 1).outcome) == ("closed", "reached")


def test_no_answer_retries_after_the_delay_and_closes_after_the_last_attempt(world, clock, shop):
    with transaction(world.runtime.factory) as session:
        session.scalar(select(Tenant)).settings = {
            **shop.settings,
            "callback_retry_delay": "30m",
            "callback_max_attempts": 3,
        }
    _only_first_task_open(world)
    task_id = _claim(world, clock, "alice")
    _record(world, clock, "alice", task_id, "no_answer")
    assert (_task(world, task_id).status, _task(world, task_id).due_at) == ("open", clock.now() + timedelta(minutes=30))
    clock.advance(timedelta(minutes=29))
    assert _claim(world, clock, "bob") is None
    clock.advance(timedelta(minutes=1))
    assert _claim(world, clock, "bob") == task_id
    _record(world, clock, "bob", task_id, "voicemail")
    clock.advance(timedelta(minutes=30))
    assert _claim(world, clock, "alice") == task_id
    _record(world, clock, "alice", task_id, "no_answer")
    task = _task(world, task_id)
    assert (task.status, task.outcome, task.attempts) == ("closed", "no_answer", 3)


def test_no_answer_retries_after_two_hours_up_to_three_calls_by_default(clock):
    from outbound.engagement.callback_outcomes import plan_outcome
    from outbound.engagement.calling_rules import CallingRules

    rules, now = CallingRules(), clock.now()
    assert plan_outcome("no_answer", unanswered_before=0, rules=rules, now=now).due_at == now + timedelta(hours=2)
    assert plan_outcome("voicemail", unanswered_before=1, rules=rules, now=now).status == "open"
    assert plan_outcome("no_answer", unanswered_before=2, rules=rules, now=now).status == "closed"


def test_call_back_at_reschedules_the_task_to_that_time(world, clock, shop):
    task_id = _claim(world, clock, "alice")
    later = clock.now() + timedelta(hours=3)
    _record(world, clock, "alice", task_id, "call_back_later", call_back_at=later)
    assert (_task(world, task_id).status, _task(world, task_id).due_at) == ("open", later)
    with world.runtime.factory() as session:
        attempt = session.scalar(select(CallbackAttempt).where(CallbackAttempt.task_id == task_id))
        assert (attempt.outcome, attempt.call_back_at) == ("call_back_later", later)


def test_call_back_needs_a_time_in_the_future_and_an_unknown_outcome_is_refused(world, clock, shop):
    task_id = _claim(world, clock, "alice")
    with pytest.raises(InvalidInput) as missing:
        _record(world, clock, "alice", task_id, "call_back_later")
    assert missing.value.field == "call_back_at"
    with pytest.raises(InvalidInput) as past:
        _record(world, clock, "alice", task_id, "call_back_later", call_back_at=clock.now() - timedelta(minutes=1))
    assert past.value.field == "call_back_at"
    with pytest.raises(InvalidInput) as unknown:
        _record(world, clock, "alice", task_id, "hung_up")
    assert unknown.value.field == "outcome"
    assert _task(world, task_id).status == "claimed"


def test_converted_ends_the_leads_enrollment_and_cancels_its_pending_nurture_messages(world, clock, shop):
    task_id = _claim(world, clock, "alice")
    enrollment_id = _task(world, task_id).enrollment_id
    assert [m.status for m in world.messages(enrollment_id=enrollment_id)] == ["scheduled"]
    _record(world, clock, "alice", task_id, "converted")
    assert [m.status for m in world.messages(enrollment_id=enrollment_id)] == ["cancelled"]
    with world.runtime.factory() as session:
        assert session.get(Enrollment, enrollment_id).status == "exited"


def test_do_not_call_suppresses_calls_and_stops_marketing_sms_while_transactional_sms_still_goes(world, clock, shop):
    task_id = _claim(world, clock, "alice")
    _record(world, clock, "alice", task_id, "do_not_call", notes="asked us to stop")
    with world.runtime.factory() as session:
        contact_id = session.get(CallbackTask, task_id).contact_id
        assert session.scalar(select(Suppression.reason).where(Suppression.channel == "voice")) == "do_not_call"
        last = session.scalars(
            select(Consent)
            .where(Consent.contact_id == contact_id, Consent.channel == "sms", Consent.purpose == "marketing")
            .order_by(Consent.id)
        ).all()[-1]
        assert last.granted is False
        from outbound.db.models import Contact

        external = session.get(Contact, contact_id).external_id
    world.event(shop, "cart_abandoned", external, {"cart_id": "c-1", "value": 150})
    world.event(shop, "shipping_delayed", external, {"order_id": "o-1", "new_eta": "2026-11-30"})
    world.run(clock.now() + timedelta(days=2))
    assert world.messages(campaign="delay", channel="sms")[0].status == "sent"
    cart_sms = world.messages(campaign="cart", channel="sms")[0]
    assert cart_sms.status == "blocked" and cart_sms.rule == "consent"
    # No other agent is ever offered that number again.
    with transaction(world.runtime.factory) as session:
        tenant = session.scalar(select(Tenant))
        session.add(
            CallbackTask(
                tenant_id=tenant.id,
                contact_id=contact_id,
                campaign="lead",
                reason="again",
                priority=99,
                status="open",
                due_at=clock.now(),
                created_at=clock.now(),
            )
        )
    assert _claim(world, clock, "bob") != task_id
    assert all(t.contact_id != contact_id or t.status == "closed" for t in world_tasks(world))


def test_wrong_number_closes_the_task_and_suppresses_the_number_for_calls(world, clock, shop):
    task_id = _claim(world, clock, "alice")
    _record(world, clock, "alice", task_id, "wrong_number")
    assert _task(world, task_id).status == "closed"
    with world.runtime.factory() as session:
        assert session.scalar(select(Suppression.reason).where(Suppression.channel == "voice")) == "wrong_number"


def test_an_agent_never_sees_or_claims_another_tenants_tasks(world, clock, shop):
    other = world.tenant("acme", "US", "America/New_York")
    with transaction(world.runtime.factory) as session:
        session.add(DncImport(tenant_id=other.id, source="registry", list_date=clock.now(), imported_at=clock.now()))
        outsider = create_agent(
            session, session.merge(other), "alice", name="Other Alice", password=PASSWORD, clock=clock
        )
        assert claim_next(session, session.merge(other), outsider, clock.now()) is None
        with pytest.raises(NotFound):
            get_task(session, other.id, 1)
        with pytest.raises(NotFound):
            record_outcome(session, session.merge(other), outsider, 1, "reached", now=clock.now())


def test_a_password_is_stored_only_as_a_salted_hash_that_verifies_it():
    stored, again = hash_password(PASSWORD), hash_password(PASSWORD)
    assert PASSWORD not in stored and stored != again
    assert verify_password(PASSWORD, stored) and not verify_password("correct horse!", stored)
    assert not verify_password(PASSWORD, "not-a-hash")


def test_login_needs_the_right_tenant_username_and_password_and_an_enabled_account(world, clock, shop):
    with transaction(world.runtime.factory) as session:
        assert authenticate_agent(session, "maple", "alice", PASSWORD).username == "alice"
        assert authenticate_agent(session, "maple", "alice", "wrong password") is None
        assert authenticate_agent(session, "acme", "alice", PASSWORD) is None
        disable_agent(session, _agent(session, "alice"), clock.now())
        assert authenticate_agent(session, "maple", "alice", PASSWORD) is None


def test_agent_accounts_need_a_new_username_and_a_long_enough_password(world, clock, shop):
    with transaction(world.runtime.factory) as session:
        tenant = session.merge(shop)
        with pytest.raises(InvalidInput) as taken:
            create_agent(session, tenant, "alice", name="Alice", password=PASSWORD, clock=clock)
        assert taken.value.field == "username"
        with pytest.raises(InvalidInput) as short:
            create_agent(session, tenant, "carol", name="Carol", password="short", clock=clock)
        assert short.value.field == "password"


def test_supervisor_counts_the_queue_outcomes_per_agent_today_and_tasks_per_hour(world, clock, shop):
    first = _claim(world, clock, "alice")
    _record(world, clock, "alice", first, "reached")
    second = _claim(world, clock, "bob")
    _record(world, clock, "bob", second, "no_answer")
    summary = _work(world, lambda session, tenant: supervisor_summary(session, tenant, clock.now()))
    assert (summary.open, summary.claimed) == (2, 0)
    assert summary.oldest_due_at is not None and summary.oldest_due_at <= clock.now()
    assert summary.outcomes == {"Alice": {"reached": 1}, "Bob": {"no_answer": 1}}
    assert sum(created for _, created, _ in summary.hours) == 3
    assert sum(closed for _, _, closed in summary.hours) == 1
    assert len(summary.hours) == 24


def test_agents_create_on_the_command_line_makes_an_account_that_can_log_in(tmp_path, db_url):
    runner = CliRunner()
    runner.invoke(
        app,
        [
            "tenants",
            "create",
            "maple",
            "--jurisdiction",
            "US",
            "--timezone",
            "America/New_York",
            "--locale",
            "en",
            "--set",
            "support_contact=help@maple.example",
            "--set",
            "postal_address=1 Main St",
            "--db",
            db_url,
        ],
        catch_exceptions=False,
    )
    created = runner.invoke(
        app,
        ["agents", "create", "sue", "--tenant", "maple", "--name", "Sue", "--supervisor", "--db", db_url],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert created.exit_code == 0, created.output
    again = runner.invoke(
        app, ["agents", "create", "sue", "--tenant", "maple", "--name", "Sue", "--password", PASSWORD, "--db", db_url]
    )
    assert again.exit_code == 1 and "already exists" in again.output
    from outbound.db.session import make_engine, session_factory

    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        agent = authenticate_agent(session, "maple", "sue", PASSWORD)
        assert (agent.name, agent.role) == ("Sue", "supervisor")
    engine.dispose()


def test_callbacks_export_writes_every_task_as_csv_with_its_outcome_and_agent(world, clock, shop, tmp_path):
    task_id = _claim(world, clock, "alice")
    _record(world, clock, "alice", task_id, "reached", notes="booked a demo, 3pm")
    db_url = str(world.runtime.engine.url)
    out = tmp_path / "callbacks.csv"
    result = CliRunner().invoke(app, ["callbacks", "export", "--out", str(out), "--db", db_url])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 3
    done = next(row for row in rows if row["id"] == str(task_id))
    assert (done["status"], done["outcome"], done["agent"], done["notes"]) == (
        "closed",
        "reached",
        "alice",
        "booked a demo, 3pm",
    )
    assert done["contact"].startswith("lead-") and done["tenant"] == "maple"
    printed = CliRunner().invoke(app, ["callbacks", "export", "--db", db_url])
    assert printed.output.splitlines()[0].startswith("id,tenant,campaign,contact")
