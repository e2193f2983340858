"""The APScheduler ticks dispatch due messages and do housekeeping in the background."""

from datetime import timedelta

from outbound.db.messages import transition
from outbound.db.session import transaction
from outbound.dispatch.record import expire_sending
from outbound.jobs.duties import housekeeping
from outbound.jobs.scheduler import start_scheduler

from helpers.waiting import wait_until


def test_background_scheduler_sends_a_due_message(world, runtime, clock, outbox):
    runtime.settings.dispatch_interval_seconds = 0.1
    tenant = world.tenant()
    world.contact(tenant, "c1", phone="+12025550143")
    world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-1", "new_eta": "2026-11-25"})
    scheduler = start_scheduler(runtime)
    try:
        wait_until(lambda: world.messages()[0].status == "sent", what="the scheduler to send the message")
    finally:
        scheduler.shutdown(wait=True)
    assert len(outbox.sent) == 1


def test_housekeeping_turns_stale_sending_rows_into_unknown_and_never_resends(world, runtime, clock, outbox):
    tenant = world.tenant()
    world.contact(tenant, "c1", phone="+12025550143")
    world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-1", "new_eta": "2026-11-25"})
    # A worker marked the message `sending` and died before the provider answered.
    with transaction(runtime.factory) as session:
        from outbound.db.models import Message

        message = session.query(Message).one()
        transition(session, message, "sending", at=clock.now(), source="worker", reason="claimed")
    clock.advance(timedelta(minutes=runtime.settings.sending_expiry_minutes + 1))
    housekeeping(runtime)
    runtime.dispatcher.drain()
    [message] = world.messages()
    assert message.status == "unknown" and message.rule == "sending_expired"
    assert outbox.sent == []
    with transaction(runtime.factory) as session:
        assert expire_sending(session, clock.now(), timedelta(minutes=1)) == 0
