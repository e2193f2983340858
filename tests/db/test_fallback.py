"""Notification with fallback: an SMS that cannot be delivered to the address goes out by email instead."""

from datetime import timedelta

import pytest

from outbound.db.messages import transition
from outbound.db.models import Message
from outbound.db.session import transaction
from outbound.db.suppressions import suppress
from outbound.providers import SendGridEmail, TwilioSms
from outbound.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_SENDGRID_API_KEY, FakeProviderServer

from helpers.campaigns import CAMPAIGN_TEMPLATES, campaigns, make_world_fixture  # noqa: F401 - fixture

NOTICE = """
name: delay
kind: notification
purpose: transactional
enrollment:
  key: "event.data.order_id"
steps:
  - id: sms_now
    channel: sms
    template: delay_note
    fallback: email
"""
TEMPLATES = {
    **CAMPAIGN_TEMPLATES,
    "delay_note/email.en.j2": "{% block subject %}Order {{ event.data.order_id }} is late{% endblock %}"
    "{% block text %}New date {{ event.data.new_eta }}.{% endblock %}",
}
PHONE = "+12025550143"
CONSENTS = [("sms", "transactional"), ("email", "transactional")]


def _notice(world, clock, **contact):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="c1@example.com", consents=CONSENTS, **contact)
    world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-1", "new_eta": "2026-11-25"})
    world.run(clock.now() + timedelta(minutes=2))
    return tenant, [(m.channel, m.status, m.rule) for m in world.messages(campaign="delay")]


def test_a_contact_without_a_number_gets_the_notice_by_email(make_world, clock, outbox):
    world = make_world(campaigns(delay=NOTICE), templates=TEMPLATES)
    _, trail = _notice(world, clock)
    assert [t[:2] for t in trail] == [("sms", "blocked"), ("email", "sent")] and trail[0][2] == "no_address"
    [sent] = outbox.sent
    assert (sent.channel, sent.to, sent.subject) == ("email", "c1@example.com", "Order o-1 is late")


def test_a_number_marked_undeliverable_falls_back_but_an_opted_out_one_does_not(make_world, clock, outbox):
    world = make_world(campaigns(delay=NOTICE), templates=TEMPLATES)
    tenant = world.tenant()
    for name, phone, reason in (("landline", "+12025550144", "undeliverable"), ("stopped", "+12025550145", "opt_out")):
        world.contact(tenant, name, phone=phone, email=f"{name}@example.com", consents=CONSENTS)
        with transaction(world.runtime.factory) as session:
            suppress(session, tenant.id, "sms", phone, reason=reason, source="test", at=clock.now())
        world.event(tenant, "shipping_delayed", name, {"order_id": f"o-{name}", "new_eta": "2026-11-25"})
    world.run(clock.now() + timedelta(minutes=2))
    assert sorted(m.to for m in outbox.sent) == ["landline@example.com"]


@pytest.fixture
def fake():
    with FakeProviderServer() as server:
        yield server


def test_a_number_the_provider_calls_invalid_falls_back_to_email_through_the_real_sdks(make_world, clock, fake):
    providers = {
        "sms": TwilioSms(
            DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number="+12155550123", api_base=fake.url, timeout=1
        ),
        "email": SendGridEmail(DEFAULT_SENDGRID_API_KEY, "hello@shop.example", api_base=fake.url, timeout=1),
    }
    world = make_world(campaigns(delay=NOTICE), templates=TEMPLATES, providers=providers)
    fake.twilio_error_for(PHONE, code=21211)
    _, trail = _notice(world, clock, phone=PHONE)
    assert [t[:2] for t in trail] == [("sms", "failed"), ("email", "sent")]
    assert [request["to"] for request in fake.accepted("sendgrid")] == ["c1@example.com"]
    assert fake.accepted("twilio") == []


def test_an_sms_the_carrier_reports_undelivered_falls_back_once(make_world, clock, outbox):
    world = make_world(campaigns(delay=NOTICE), templates=TEMPLATES)
    _, trail = _notice(world, clock, phone=PHONE)
    assert [t[:2] for t in trail] == [("sms", "sent")]
    with transaction(world.runtime.factory) as session:
        [sms] = session.query(Message).all()
        transition(
            session,
            sms,
            "undelivered",
            at=clock.now(),
            source="webhook",
            rule="carrier",
            reason="carrier: unreachable handset (30003)",
        )
    world.run(clock.now() + timedelta(minutes=5))
    world.run(clock.now() + timedelta(minutes=5))
    assert [(m.channel, m.status) for m in world.messages(campaign="delay")] == [
        ("sms", "undelivered"),
        ("email", "sent"),
    ]
    assert [m.channel for m in outbox.sent] == ["sms", "email"]
