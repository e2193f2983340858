"""Dispatch through the real Twilio and SendGrid SDKs against the loopback fake provider, faults included."""

from datetime import timedelta

import pytest

from outbound.bootstrap import build
from outbound.config import Settings
from outbound.db.suppressions import is_suppressed
from outbound.providers import SendGridEmail, TwilioSms
from outbound.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_SENDGRID_API_KEY, FakeProviderServer

from helpers.definitions import write_definitions

PHONE = "+12025550143"


@pytest.fixture
def fake():
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def sdk_world(db_url, tmp_path, clock, fake):
    """The engine wired to the real SDKs, pointed at the fake provider."""
    from conftest import World

    providers = {
        "sms": TwilioSms(
            DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number="+12155550123", api_base=fake.url, timeout=1
        ),
        "email": SendGridEmail(DEFAULT_SENDGRID_API_KEY, "hello@shop.example", api_base=fake.url, timeout=1),
    }
    runtime = build(
        Settings(database_url=db_url, definitions=write_definitions(tmp_path / "defs")),
        clock=clock,
        providers=providers,
    )
    yield World(runtime, clock)
    runtime.close()


def _delay_event(world, tenant):
    world.contact(tenant, "c1", phone=PHONE, email="a@example.com")
    world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-1", "new_eta": "2026-11-25"})


def test_sms_goes_through_the_twilio_sdk_and_keeps_the_provider_id(sdk_world, clock, fake):
    tenant = sdk_world.tenant()
    _delay_event(sdk_world, tenant)
    sdk_world.run(clock.now() + timedelta(minutes=1))
    [message] = sdk_world.messages()
    [request] = fake.accepted("twilio")
    assert message.status == "sent" and message.provider == "twilio"
    assert message.provider_id == request["provider_id"] and request["to"] == PHONE


def test_email_goes_through_the_sendgrid_sdk_with_our_id_only_in_custom_args(sdk_world, clock, fake):
    tenant = sdk_world.tenant()
    sdk_world.contact(tenant, "c1", email="a@example.com", consents=[("email", "marketing")])
    sdk_world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k", "value": 150})
    sdk_world.run(clock.now() + timedelta(hours=2))
    [message] = sdk_world.messages()
    [request] = fake.accepted("sendgrid")
    assert message.status == "sent"
    assert request["custom_args"] == {"message_id": str(message.id), "tenant": "shop-us"}
    assert request["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_429_is_retried_later_and_then_sent_once(sdk_world, clock, fake):
    tenant = sdk_world.tenant()
    _delay_event(sdk_world, tenant)
    fake.fail_next("twilio", status=429, retry_after=120)
    sdk_world.run(clock.now())
    [message] = sdk_world.messages()
    assert (message.status, message.rule) == ("scheduled", "provider_retry")
    assert message.due_at >= clock.now() + timedelta(seconds=120)
    sdk_world.run(clock.now() + timedelta(hours=1))
    [message] = sdk_world.messages()
    assert message.status == "sent" and message.attempts == 2
    assert len(fake.accepted("twilio")) == 1


def test_a_provider_that_keeps_failing_ends_in_failed_after_the_attempt_limit(sdk_world, clock, fake):
    tenant = sdk_world.tenant()
    _delay_event(sdk_world, tenant)
    fake.fail_next("twilio", status=500, times=20)
    sdk_world.run(clock.now() + timedelta(days=1))
    [message] = sdk_world.messages()
    assert message.status == "failed" and message.attempts == 5
    assert fake.accepted("twilio") == []


def test_opted_out_number_21610_fails_without_retry_and_is_suppressed(sdk_world, clock, fake):
    tenant = sdk_world.tenant()
    fake.twilio_error_for(PHONE, code=21610)
    _delay_event(sdk_world, tenant)
    sdk_world.run(clock.now() + timedelta(hours=1))
    [message] = sdk_world.messages()
    assert message.status == "failed" and "21610" in message.reason
    assert len([a for a in fake.attempts if a["service"] == "twilio"]) == 1
    with sdk_world.runtime.factory() as session:
        assert is_suppressed(session, tenant.id, "sms", PHONE) == ["opt_out"]


def test_a_dropped_connection_leaves_the_message_unknown_and_never_resends_it(sdk_world, clock, fake):
    tenant = sdk_world.tenant()
    _delay_event(sdk_world, tenant)
    fake.fail_next("twilio", drop=True)
    sdk_world.run(clock.now() + timedelta(hours=1))
    [message] = sdk_world.messages()
    assert (message.status, message.rule) == ("unknown", "provider_ambiguous")
    assert len([a for a in fake.attempts if a["service"] == "twilio"]) == 1
