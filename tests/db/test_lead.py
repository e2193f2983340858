"""Leads: an immediate callback task for agents and a nurture sequence that stops on conversion or an agent's outcome."""

from datetime import timedelta

from sqlalchemy import select

from outbound.db.models import CallbackTask, Enrollment
from outbound.db.session import transaction
from outbound.enrollment.lifecycle import end_lead_nurture

from helpers.campaigns import campaigns, make_world_fixture  # noqa: F401 - fixture

LEAD = """
name: lead
kind: lead
purpose: marketing
exit_on:
  - event: order_placed
steps:
  - id: email_now
    channel: email
    template: cart_note
  - id: sms_1d
    channel: sms
    delay: 1d
    template: cart_note
  - id: email_3d
    channel: email
    delay: 3d
    template: cart_note
callback:
  reason: "New lead: call within 5 minutes"
  priority: 10
"""


def _lead(make_world, clock):
    world = make_world(campaigns(lead=LEAD))
    tenant = world.tenant()
    world.contact(
        tenant,
        "lead-1",
        email="lead@example.com",
        phone="+12025550143",
        consents=[("email", "marketing"), ("sms", "marketing")],
    )
    world.event(tenant, "lead_created", "lead-1", {"cart_id": "-", "source": "webinar"})
    world.run(clock.now() + timedelta(minutes=1))
    return world, tenant


def _steps(world):
    return [(m.step, m.status) for m in world.messages(campaign="lead")]


def _task(world):
    with world.runtime.factory() as session:
        return session.scalars(select(CallbackTask)).one()


def test_a_new_lead_gets_an_immediate_callback_and_a_nurture_sequence(make_world, clock):
    world, _ = _lead(make_world, clock)
    task = _task(world)
    assert (task.status, task.priority, task.due_at) == ("open", 10, clock.now() - timedelta(minutes=1))
    assert _steps(world) == [("email_now", "sent"), ("sms_1d", "scheduled"), ("email_3d", "scheduled")]


def test_the_nurture_stops_when_the_lead_converts(make_world, clock):
    world, tenant = _lead(make_world, clock)
    world.event(tenant, "order_placed", "lead-1", {"order_id": "o-1", "value": 900})
    world.run(clock.now() + timedelta(days=4))
    assert _steps(world) == [("email_now", "sent"), ("sms_1d", "cancelled"), ("email_3d", "cancelled")]


def test_an_agent_recording_an_outcome_ends_the_nurture(make_world, clock):
    world, _ = _lead(make_world, clock)
    with transaction(world.runtime.factory) as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert end_lead_nurture(session, enrollment.id, "agent: interested, demo booked", clock) == 2
        assert end_lead_nurture(session, enrollment.id, "again", clock) == 0
    world.run(clock.now() + timedelta(days=4))
    assert _steps(world) == [("email_now", "sent"), ("sms_1d", "cancelled"), ("email_3d", "cancelled")]


def test_a_final_outcome_on_the_callback_task_ends_the_nurture_but_no_answer_does_not(make_world, clock):
    world, _ = _lead(make_world, clock)
    with transaction(world.runtime.factory) as session:
        task = session.scalars(select(CallbackTask)).one()
        task.status, task.outcome, task.closed_at = "open", "no_answer", clock.now()
    world.run(clock.now() + timedelta(days=1, hours=1))
    assert _steps(world) == [("email_now", "sent"), ("sms_1d", "sent"), ("email_3d", "scheduled")]
    with transaction(world.runtime.factory) as session:
        task = session.scalars(select(CallbackTask)).one()
        task.status, task.outcome = "closed", "not_interested"
    world.run(clock.now() + timedelta(days=3))
    assert _steps(world) == [("email_now", "sent"), ("sms_1d", "sent"), ("email_3d", "cancelled")]
    with world.runtime.factory() as session:
        assert "agent recorded an outcome" in session.scalars(select(Enrollment)).one().end_reason
