"""Delivery reports applied to messages: what each report means, idempotence, any order, illegal moves refused."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from outbound.db.messages import IllegalTransition, transition
from outbound.db.models import Contact, DeliveryEvent, Message
from outbound.delivery.status import DeliveryReport, Effect, apply_report, attach_pending, effect_of, retry_delay


@pytest.fixture
def tenant(session, make_tenant):
    tenant = make_tenant()
    session.flush()
    return tenant


def new_message(session, tenant, clock, *, status="sent", channel="email", provider="sendgrid", provider_id=None):
    """A message as dispatch leaves it after a send, with its trail."""
    n = session.scalar(select(func.count(Contact.id))) + 1
    contact = Contact(
        tenant_id=tenant.id,
        external_id=f"c{n}",
        email=f"c{n}@example.com",
        phone=f"+1202555{n:04d}",
        attributes={},
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    session.add(contact)
    session.flush()
    message = Message(
        tenant_id=tenant.id,
        contact_id=contact.id,
        campaign="delay",
        step="s",
        channel=channel,
        purpose="transactional",
        template="t",
        status="scheduled",
        due_at=clock.now(),
        created_at=clock.now(),
        updated_at=clock.now(),
        attempts=1,
        provider=provider,
        provider_id=provider_id,
        to_address=contact.email if channel == "email" else contact.phone,
    )
    session.add(message)
    session.flush()
    for step in ("sending", status) if status != "sending" else ("sending",):
        transition(session, message, step, at=clock.now(), source="worker")
    return message


def report(message, name, clock, n=0, **extra):
    return DeliveryReport(
        provider="sendgrid",
        event_id=f"{message.id}-{name}-{n}",
        type=name,
        at=clock.now(),
        tenant_id=message.tenant_id,
        message_id=message.id,
        **extra,
    )


@pytest.mark.parametrize(
    "provider, name, code, expected",
    [
        ("twilio", "queued", None, Effect(status="sent")),
        ("twilio", "delivered", None, Effect(status="delivered")),
        ("twilio", "read", None, Effect(status="delivered")),
        ("twilio", "undelivered", "21610", Effect(status="undelivered", suppress="opt_out")),
        ("twilio", "failed", "21211", Effect(status="failed", suppress="undeliverable")),
        ("twilio", "undelivered", "30006", Effect(status="undelivered", suppress="undeliverable")),
        ("twilio", "undelivered", "30003", Effect(status="undelivered", retry=True)),
        ("twilio", "failed", "30005", Effect(status="failed", retry=True)),
        ("twilio", "partially_delivered", None, Effect()),
        ("sendgrid", "processed", None, Effect(status="sent")),
        ("sendgrid", "deferred", None, Effect(status="sent")),
        ("sendgrid", "delivered", None, Effect(status="delivered")),
        ("sendgrid", "dropped", None, Effect(status="failed")),
        ("sendgrid", "spamreport", None, Effect(status="delivered", suppress="spam_report")),
        ("sendgrid", "unsubscribe", None, Effect(status="delivered", suppress="unsubscribe")),
        ("sendgrid", "group_unsubscribe", None, Effect(status="delivered", suppress="group_unsubscribe")),
        ("sendgrid", "group_resubscribe", None, Effect(lift="group_unsubscribe")),
        ("sendgrid", "open", None, Effect(status="delivered")),
        ("sendgrid", "click", None, Effect(status="delivered")),
    ],
)
def test_each_provider_report_means_one_status_and_suppression(provider, name, code, expected):
    assert effect_of(provider, name, code) == expected


def test_a_hard_bounce_suppresses_and_a_blocked_one_does_not():
    assert effect_of("sendgrid", "bounce", bounce_type="bounce") == Effect(status="undelivered", suppress="hard_bounce")
    assert effect_of("sendgrid", "bounce", bounce_type="blocked") == Effect(status="undelivered")


EVENTS = ["processed", "deferred", "delivered", "open"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    order=st.permutations(EVENTS),
    repeats=st.lists(st.sampled_from(EVENTS), max_size=4),
    start=st.sampled_from(["sending", "sent", "unknown"]),
)
def test_reports_in_any_order_and_repeated_end_delivered_and_are_stored_once(
    session, tenant, clock, order, repeats, start
):
    message = new_message(session, tenant, clock, status=start)
    for name in list(order) + repeats:
        apply_report(session, report(message, name, clock), clock.now())
    assert message.status == "delivered"
    types = session.scalars(select(DeliveryEvent.type).where(DeliveryEvent.message_id == message.id)).all()
    assert sorted(types) == sorted(EVENTS)


def test_a_message_left_unknown_is_settled_by_a_delivered_report(session, tenant, clock):
    message = new_message(session, tenant, clock, status="unknown")
    applied = apply_report(session, report(message, "delivered", clock), clock.now())
    assert applied.changed and message.status == "delivered" and message.sent_at == clock.now()


def test_a_final_state_is_never_left_by_a_later_report(session, tenant, clock):
    message = new_message(session, tenant, clock, status="sent")
    apply_report(session, report(message, "bounce", clock, bounce_type="bounce"), clock.now())
    applied = apply_report(session, report(message, "delivered", clock), clock.now())
    assert message.status == "undelivered" and not applied.changed and applied.stored


@pytest.mark.parametrize(
    "start, to",
    [
        ("delivered", "sent"),
        ("failed", "scheduled"),
        ("undelivered", "delivered"),
        ("sent", "sending"),
        ("scheduled", "sent"),
        ("unknown", "sending"),
    ],
)
def test_illegal_transitions_are_refused(session, tenant, clock, start, to):
    message = new_message(session, tenant, clock, status="sent")
    message.status = start
    with pytest.raises(IllegalTransition):
        transition(session, message, to, at=clock.now(), source="operator")


def test_a_twilio_report_that_came_before_the_provider_id_is_attached_once_it_is_known(session, tenant, clock):
    early = DeliveryReport(
        provider="twilio",
        event_id="SM123:delivered",
        type="delivered",
        at=clock.now(),
        tenant_id=tenant.id,
        provider_message_id="SM123",
        address="+12025559999",
    )
    assert apply_report(session, early, clock.now()).message_id is None
    message = new_message(session, tenant, clock, status="sent", channel="sms", provider="twilio", provider_id="SM123")
    other = new_message(session, tenant, clock, status="sent", channel="sms", provider="twilio", provider_id="SM1234")
    assert attach_pending(session, [message, other], clock.now()) == 1
    assert (message.status, other.status) == ("delivered", "sent")
    assert session.scalar(select(DeliveryEvent.message_id)) == message.id
    assert attach_pending(session, [message, other], clock.now()) == 0  # attached once


def test_a_twilio_report_matches_the_one_message_to_that_number_waiting_for_its_id(session, tenant, clock):
    message = new_message(session, tenant, clock, status="unknown", channel="sms", provider="twilio")
    found = DeliveryReport(
        provider="twilio",
        event_id="SM9:sent",
        type="sent",
        at=clock.now(),
        provider_message_id="SM9",
        address=message.to_address,
    )
    apply_report(session, found, clock.now())
    assert (message.status, message.provider_id) == ("sent", "SM9")


def test_a_twilio_report_is_not_guessed_onto_one_of_two_messages_to_the_same_number(session, tenant, clock):
    one = new_message(session, tenant, clock, status="unknown", channel="sms", provider="twilio")
    two = new_message(session, tenant, clock, status="unknown", channel="sms", provider="twilio")
    two.to_address = one.to_address
    applied = apply_report(
        session,
        DeliveryReport(
            provider="twilio",
            event_id="SM7:delivered",
            type="delivered",
            at=clock.now(),
            tenant_id=tenant.id,
            provider_message_id="SM7",
            address=one.to_address,
        ),
        clock.now(),
    )
    assert applied.message_id is None and (one.status, two.status) == ("unknown", "unknown")


def test_a_report_naming_another_tenants_message_does_not_touch_it(session, tenant, clock, make_tenant):
    other = make_tenant("shop-other")
    session.flush()
    message = new_message(session, tenant, clock)
    applied = apply_report(
        session,
        DeliveryReport(
            provider="sendgrid",
            event_id="x",
            type="delivered",
            at=clock.now(),
            tenant_id=other.id,
            message_id=message.id,
        ),
        clock.now(),
    )
    assert applied.message_id is None and message.status == "sent"


@pytest.mark.parametrize("attempts", [1, 2, 3, 4, 5, 8, 12])
def test_retry_delays_grow_exponentially_with_jitter_and_are_capped(attempts):
    base = min(3600.0, 30.0 * 2 ** (attempts - 1))
    delays = {retry_delay(attempts, random.Random(seed)).total_seconds() for seed in range(20)}
    assert all(0.5 * base <= d <= 1.5 * base for d in delays) and len(delays) > 1


def test_a_retry_never_comes_before_the_providers_retry_after():
    assert retry_delay(1, random.Random(1), retry_after=600) == timedelta(seconds=600)
