"""Dispatch works a batch at a time: one claim per pending status merged in due order, and every
change of the batch written back with one UPDATE per set of changed columns."""

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from outbound.db.messages import IllegalTransition, claimed, move, record_transitions, write_changes
from outbound.db.models import Message, MessageTransition
from outbound.db.session import transaction
from outbound.dispatch.claim import claim_due, claim_due_rows


def _messages(world, clock, plan):
    """Insert one message per (status, minutes from now until due) of `plan`; returns their ids in plan order."""
    tenant = world.tenant()
    contact = world.contact(tenant, "c1", email="c1@example.com")
    now = clock.now()
    rows = [
        {
            "tenant_id": tenant.id,
            "contact_id": contact.id,
            "campaign": "lead",
            "step": "email_now",
            "channel": "email",
            "purpose": "marketing",
            "template": "cart_note",
            "status": status,
            "due_at": now + timedelta(minutes=minutes),
            "created_at": now,
            "updated_at": now,
            "attempts": 0,
        }
        for status, minutes in plan
    ]
    with transaction(world.runtime.factory) as session:
        return list(session.scalars(insert(Message).returning(Message.id, sort_by_parameter_order=True), rows))


def test_a_claim_takes_the_oldest_due_messages_across_scheduled_and_deferred_in_due_order(world, clock):
    ids = _messages(
        world,
        clock,
        [
            ("scheduled", -5),
            ("deferred", -9),
            ("scheduled", -1),
            ("deferred", -3),
            ("scheduled", 10),
            ("sent", -20),
            ("deferred", 5),
            ("scheduled", -7),
        ],
    )
    oldest_first = [ids[1], ids[7], ids[0], ids[3], ids[2]]
    with transaction(world.runtime.factory) as session:
        assert [m.id for m in claim_due_rows(session, clock.now(), 3)] == oldest_first[:3]
        assert [m.id for m in claim_due(session, clock.now(), 3)] == oldest_first[:3]
        assert [m.id for m in claim_due_rows(session, clock.now(), 100)] == oldest_first


def test_equal_due_times_are_claimed_in_id_order(world, clock):
    ids = _messages(world, clock, [("deferred", -1), ("scheduled", -1), ("deferred", -1), ("scheduled", -1)])
    with transaction(world.runtime.factory) as session:
        assert [m.id for m in claim_due_rows(session, clock.now(), 10)] == ids


def test_written_changes_are_exactly_what_each_message_changed(world, clock):
    first, second, untouched = _messages(world, clock, [("scheduled", -1), ("scheduled", -1), ("scheduled", -1)])
    later = clock.now() + timedelta(hours=2)
    with transaction(world.runtime.factory) as session:
        batch = {m.id: m for m in claimed(session.execute(select(Message.__table__)))}
        steps = [move(batch[first], "deferred", at=clock.now(), source="worker", rule="quiet_hours", reason="night")]
        batch[first].due_at = later
        batch[second].subject, batch[second].attempts = "Hello", 1
        record_transitions(session, steps)
        write_changes(session, list(batch.values()))
        assert all(not m.changes for m in batch.values())
    with world.runtime.factory() as session:
        stored = {m.id: m for m in session.scalars(select(Message))}
        trail = session.execute(
            select(
                MessageTransition.message_id,
                MessageTransition.from_status,
                MessageTransition.to_status,
                MessageTransition.rule,
            )
        ).all()
    assert (stored[first].status, stored[first].due_at, stored[first].rule) == ("deferred", later, "quiet_hours")
    assert stored[first].subject is None and stored[first].attempts == 0
    assert (stored[second].status, stored[second].subject, stored[second].attempts) == ("scheduled", "Hello", 1)
    assert stored[second].due_at == stored[untouched].due_at
    assert (stored[untouched].status, stored[untouched].subject) == ("scheduled", None)
    assert trail == [(first, "scheduled", "deferred", "quiet_hours")]


def test_a_batch_move_refuses_an_illegal_transition_like_a_single_one(world, clock):
    _messages(world, clock, [("sent", -1)])
    with transaction(world.runtime.factory) as session:
        [message] = claimed(session.execute(select(Message.__table__)))
        with pytest.raises(IllegalTransition):
            move(message, "sending", at=clock.now(), source="worker")
        assert message.status == "sent" and not message.changes
