"""Fault injection: the real SDKs against the fake provider misbehaving — 429 with Retry-After, 5xx, slow
answers past the timeout, dropped connections, refused connections and each Twilio error code."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from outbound.bootstrap import build
from outbound.config import Settings
from outbound.db.suppressions import is_suppressed
from outbound.delivery.status import MAX_ATTEMPTS
from outbound.providers import SendGridEmail, TwilioSms
from outbound.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_SENDGRID_API_KEY, FakeProviderServer
from outbound.web.app import create_app

from helpers.definitions import write_definitions

PHONE = "+12025550143"
EMAIL = "a@example.com"
BASE = "https://ob.example"


@pytest.fixture
def fake():
    with FakeProviderServer() as server:
        yield server


def _world(db_url, tmp_path, clock, twilio_base, sendgrid_base):
    from conftest import World

    providers = {
        "sms": TwilioSms(
            DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number="+12155550123", api_base=twilio_base, timeout=1.5
        ),
        "email": SendGridEmail(DEFAULT_SENDGRID_API_KEY, "hello@shop.example", api_base=sendgrid_base, timeout=1.5),
    }
    settings = Settings(
        database_url=db_url,
        definitions=write_definitions(tmp_path / "defs"),
        base_url=BASE,
        twilio_auth_token=DEFAULT_AUTH_TOKEN,
    )
    return World(build(settings, clock=clock, providers=providers), clock)


@pytest.fixture
def world(db_url, tmp_path, clock, fake):
    world = _world(db_url, tmp_path, clock, fake.url, fake.url)
    yield world
    world.runtime.close()


def sms(world):
    tenant = world.tenant()
    world.contact(tenant, "c1", phone=PHONE)
    world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-1", "new_eta": "2026-11-25"})
    return tenant


def email(world, clock):
    tenant = world.tenant()
    world.contact(tenant, "c1", email=EMAIL, consents=[("email", "marketing")])
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k", "value": 150})
    clock.advance(timedelta(hours=1))
    return tenant


def twilio_attempts(fake):
    return [a for a in fake.attempts if a["service"] == "twilio"]


@pytest.mark.parametrize("service", ["twilio", "sendgrid"])
def test_a_429_waits_at_least_its_retry_after_then_sends_once(world, clock, fake, service):
    sms(world) if service == "twilio" else email(world, clock)
    fake.fail_next(service, status=429, retry_after=900)
    world.run(clock.now())
    [message] = world.messages()
    assert (message.status, message.rule) == ("scheduled", "provider_retry")
    assert message.due_at >= clock.now() + timedelta(seconds=900)
    world.run(clock.now() + timedelta(hours=1))
    [message] = world.messages()
    assert message.status == "sent" and message.attempts == 2 and len(fake.accepted(service)) == 1


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("service", ["twilio", "sendgrid"])
def test_a_server_error_is_retried_with_backoff_and_then_sent_once(world, clock, fake, service, status):
    sms(world) if service == "twilio" else email(world, clock)
    fake.fail_next(service, status=status, times=2)
    world.run(clock.now() + timedelta(hours=1))
    [message] = world.messages()
    assert message.status == "sent" and message.attempts == 3 and len(fake.accepted(service)) == 1
    assert [step for step, _ in world.trail(message.id)].count("scheduled") == 3


def test_backoff_doubles_with_each_attempt_within_its_jitter(world, clock, fake):
    sms(world)
    fake.fail_next("twilio", status=500, times=MAX_ATTEMPTS)
    gaps = []
    for _attempt in range(1, MAX_ATTEMPTS):
        world.runtime.dispatcher.drain()
        [message] = world.messages()
        gaps.append((message.due_at - clock.now()).total_seconds())
        clock.set(message.due_at)
    for attempt, gap in enumerate(gaps, start=1):
        base = 30 * 2 ** (attempt - 1)
        assert 0.5 * base <= gap <= 1.5 * base


def test_a_provider_that_keeps_failing_ends_failed_with_the_reason_after_the_limit(world, clock, fake):
    sms(world)
    fake.fail_next("twilio", status=503, times=MAX_ATTEMPTS + 5)
    world.run(clock.now() + timedelta(days=1))
    [message] = world.messages()
    assert (message.status, message.attempts) == ("failed", MAX_ATTEMPTS)
    assert "503" in message.reason and message.error_code == "20503"
    assert len(twilio_attempts(fake)) == MAX_ATTEMPTS and fake.accepted("twilio") == []


@pytest.mark.parametrize("fault", [{"delay": 5.0}, {"drop": True}])
@pytest.mark.parametrize("service", ["twilio", "sendgrid"])
def test_a_slow_or_dropped_answer_leaves_the_message_unknown_and_it_is_never_sent_again(
    world, clock, fake, service, fault
):
    sms(world) if service == "twilio" else email(world, clock)
    fake.fail_next(service, **fault)
    world.run(clock.now() + timedelta(days=2))
    [message] = world.messages()
    assert (message.status, message.rule) == ("unknown", "provider_ambiguous")
    assert len([a for a in fake.attempts if a["service"] == service]) == 1


def test_a_timed_out_sms_the_provider_took_is_settled_by_its_delivered_callback(world, clock, fake):
    sms(world)
    fake.fail_next("twilio", delay=5.0)
    world.run(clock.now() + timedelta(minutes=1))
    [message] = world.messages()
    assert message.status == "unknown" and message.provider_id is None
    # The fake still takes the message once its slow answer is done, after the client gave up, as Twilio may.
    deadline = time.monotonic() + 10
    while not fake.accepted("twilio") and time.monotonic() < deadline:
        time.sleep(0.02)
    [taken] = fake.accepted("twilio")
    params = {
        "MessageSid": taken["provider_id"],
        "MessageStatus": "delivered",
        "To": PHONE,
        "From": "+12155550123",
        "AccountSid": DEFAULT_ACCOUNT_SID,
    }
    signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(BASE + "/webhooks/twilio/status", params)
    runtime = world.runtime
    with TestClient(create_app(runtime, on_event=None)) as client:
        assert (
            client.post("/webhooks/twilio/status", data=params, headers={"X-Twilio-Signature": signature}).status_code
            == 200
        )
    [message] = world.messages()
    assert (message.status, message.provider_id) == ("delivered", taken["provider_id"])
    assert len(twilio_attempts(fake)) == 1


def test_a_refused_connection_is_retried_because_the_provider_never_saw_it(db_url, tmp_path, clock):
    with FakeProviderServer() as closed:
        dead = closed.url
    world = _world(db_url, tmp_path, clock, dead, dead)
    try:
        sms(world)
        world.run(clock.now())
        [message] = world.messages()
        assert (message.status, message.rule) == ("scheduled", "provider_retry")
    finally:
        world.runtime.close()


@pytest.mark.parametrize(
    "code, suppression",
    [(21610, "opt_out"), (21211, "undeliverable"), (30006, "undeliverable"), (21614, "undeliverable")],
)
def test_a_twilio_error_code_for_a_bad_address_fails_at_once_and_suppresses_it(world, clock, fake, code, suppression):
    tenant = sms(world)
    fake.twilio_error_for(PHONE, code=code)
    world.run(clock.now() + timedelta(days=1))
    [message] = world.messages()
    assert (message.status, message.error_code, message.attempts) == ("failed", str(code), 1)
    assert len(twilio_attempts(fake)) == 1
    with world.runtime.factory() as session:
        assert is_suppressed(session, tenant.id, "sms", PHONE) == [suppression]


@pytest.mark.parametrize("code", [30003, 30005])
def test_an_unreachable_handset_code_is_retried_up_to_the_limit_then_failed(world, clock, fake, code):
    tenant = sms(world)
    fake.twilio_error_for(PHONE, code=code)
    world.run(clock.now() + timedelta(days=1))
    [message] = world.messages()
    assert (message.status, message.error_code, message.attempts) == ("failed", str(code), MAX_ATTEMPTS)
    assert str(code) in message.reason and len(twilio_attempts(fake)) == MAX_ATTEMPTS
    with world.runtime.factory() as session:
        assert is_suppressed(session, tenant.id, "sms", PHONE) == []


def test_a_permanent_sendgrid_refusal_fails_without_retry(world, clock, fake):
    email(world, clock)
    fake.sendgrid_error_for(EMAIL, status=400, message="The to email is not valid")
    world.run(clock.now() + timedelta(days=1))
    [message] = [m for m in world.messages() if m.channel == "email"]
    assert message.status == "failed" and "400" in message.reason
    assert len([a for a in fake.attempts if a["service"] == "sendgrid"]) == 1
