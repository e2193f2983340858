"""Messages-per-second limits per sender: the token bucket on its own, then honoured across dispatch batches."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from outbound.config import Settings
from outbound.dispatch.ratelimit import SenderLimiter, rate_for, sender_key


def test_a_bucket_lets_a_seconds_worth_through_then_gives_each_refused_message_its_own_later_slot(clock):
    limiter, now = SenderLimiter(), clock.now()
    answers = [limiter.acquire("sms:+1", 10, now) for _ in range(13)]
    assert answers[:10] == [None] * 10
    assert answers[10:] == [now + timedelta(seconds=0.1), now + timedelta(seconds=0.2), now + timedelta(seconds=0.3)]


def test_a_bucket_refills_with_the_clock_up_to_one_seconds_worth(clock):
    limiter = SenderLimiter()
    for _ in range(10):
        limiter.acquire("sms:+1", 10, clock.now())
    clock.advance(timedelta(seconds=0.5))
    assert [limiter.acquire("sms:+1", 10, clock.now()) for _ in range(5)] == [None] * 5
    assert limiter.acquire("sms:+1", 10, clock.now()) is not None
    clock.advance(timedelta(hours=1))
    assert sum(limiter.acquire("sms:+1", 10, clock.now()) is None for _ in range(20)) == 10


def test_each_sender_has_its_own_bucket_and_no_rate_means_no_limit(clock):
    limiter = SenderLimiter()
    assert [limiter.acquire("sms:+1", 1, clock.now()), limiter.acquire("sms:+2", 1, clock.now())] == [None, None]
    assert limiter.acquire("sms:+1", 1, clock.now()) is not None
    assert all(
        limiter.acquire("email:x.example", rate, clock.now()) is None for rate in (None, 0, -1) for _ in range(50)
    )


def test_the_sender_is_the_number_the_messaging_service_or_the_email_domain():
    settings = Settings(twilio_from_number="+12155550123", sendgrid_from_email="hello@Shop.example")
    assert sender_key("sms", "+12155550999", settings) == "sms:+12155550999"
    assert sender_key("sms", None, settings) == "sms:+12155550123"
    service = "MG" + "0" * 32
    assert (
        sender_key("sms", None, settings.model_copy(update={"twilio_messaging_service_sid": service}))
        == f"sms:{service}"
    )
    assert sender_key("email", None, settings) == "email:shop.example"
    assert sender_key("email", "news@other.example", settings) == "email:other.example"


def test_a_tenant_setting_overrides_the_rate_from_the_environment():
    settings = Settings(sms_rate_per_second=10, email_rate_per_second=100)
    assert rate_for("sms", {}, settings) == 10 and rate_for("email", None, settings) == 100
    assert rate_for("sms", {"sms_rate_per_second": "2.5"}, settings) == 2.5


def _delays(world, tenant, count, prefix="c"):
    for i in range(count):
        world.contact(tenant, f"{prefix}{i}", phone=f"+1202555{i:04d}" if prefix == "c" else f"+1303555{i:04d}")
        world.event(
            tenant, "shipping_delayed", f"{prefix}{i}", {"order_id": f"{prefix}-o-{i}", "new_eta": "2026-11-25"}
        )


def test_a_batch_over_the_limit_sends_a_seconds_worth_and_keeps_the_rest_due_a_moment_later(world, runtime, clock):
    tenant = world.tenant(sms_from="+12155550123")
    _delays(world, tenant, 25)
    report = runtime.dispatcher.tick()
    statuses = Counter(m.status for m in world.messages())
    assert (report.sent, report.rate_limited) == (10, 15) and statuses == {"sent": 10, "scheduled": 15}
    waiting = [m for m in world.messages() if m.status == "scheduled"]
    assert all(clock.now() < m.due_at <= clock.now() + timedelta(seconds=2) for m in waiting)
    assert len({m.due_at for m in waiting}) == 15


def test_every_message_is_sent_in_the_end_and_no_second_carries_more_than_the_limit(world, clock):
    tenant = world.tenant(sms_from="+12155550123")
    _delays(world, tenant, 35)
    world.run(clock.now() + timedelta(hours=1))
    messages = world.messages()
    assert Counter(m.status for m in messages) == {"sent": 35}
    per_second = Counter(m.sent_at.replace(microsecond=0) for m in messages)
    assert max(per_second.values()) == 10


def test_a_tenants_own_rate_and_a_second_sender_are_honoured_separately(world, runtime):
    slow = world.tenant("shop-slow", sms_from="+12155550123", sms_rate_per_second=2)
    fast = world.tenant("shop-fast", sms_from="+12155550124")
    _delays(world, slow, 5)
    _delays(world, fast, 12, prefix="f")
    runtime.dispatcher.tick()
    sent = Counter(m.tenant_id for m in world.messages(status="sent"))
    assert sent == {slow.id: 2, fast.id: 10}


def test_emails_are_limited_per_sending_domain(world, runtime):
    tenant = world.tenant(email_from="hello@shop.example", email_rate_per_second=3)
    for i in range(5):
        world.contact(tenant, f"l{i}", email=f"l{i}@example.com", consents=[("email", "marketing")])
        world.event(tenant, "lead_created", f"l{i}", {"cart_id": f"k{i}"})
    report = runtime.dispatcher.tick()
    assert (report.sent, report.rate_limited) == (3, 2)
    assert {m.sender for m in world.messages(status="sent")} == {"hello@shop.example"}
