"""The spam-complaint breaker: a tenant's 30-day complaint rate; over 0.1% warns, over 0.3% pauses marketing email,
once the tenant sent 1,000 emails in the window."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from outbound.cli import app
from outbound.db.models import DeliveryEvent, Message
from outbound.db.session import transaction
from outbound.dispatch.breaker import breaker_status, complaint_rate

runner = CliRunner()


def history(world, tenant, *, sent: int, complaints: int, days_ago: float = 1, now=None):
    """`sent` emails and `complaints` SendGrid spam reports, `days_ago` before now."""
    at = (now or world.clock.now()) - timedelta(days=days_ago)
    contact = world.contact(tenant, f"hist-{days_ago}", email=f"hist{int(days_ago * 10)}@example.com")
    with transaction(world.runtime.factory) as session:
        session.add_all(
            Message(
                tenant_id=tenant.id,
                contact_id=contact.id,
                campaign="history",
                step="email",
                channel="email",
                purpose="marketing",
                template="cart_note",
                status="delivered",
                due_at=at,
                created_at=at,
                updated_at=at,
                sent_at=at,
            )
            for _ in range(sent)
        )
        session.add_all(
            DeliveryEvent(
                tenant_id=tenant.id,
                provider="sendgrid",
                provider_event_id=f"sg-{days_ago}-{i}",
                type="spamreport",
                at=at,
                received_at=at,
            )
            for i in range(complaints)
        )


def test_the_rate_counts_spam_reports_against_email_sent_in_the_last_30_days(world):
    tenant = world.tenant()
    history(world, tenant, sent=1000, complaints=2)
    history(world, tenant, sent=500, complaints=50, days_ago=31)  # outside the window
    with world.runtime.factory() as session:
        assert complaint_rate(session, tenant.id, world.clock.now()) == (0.002, 2, 1000)


def test_three_per_thousand_is_ok_to_send_and_four_per_thousand_pauses_marketing_email(world):
    tenant = world.tenant()
    history(world, tenant, sent=1000, complaints=3)
    with world.runtime.factory() as session:
        assert breaker_status(session, tenant, world.clock.now()).level == "warn"
    history(world, tenant, sent=0, complaints=1, days_ago=2)
    with world.runtime.factory() as session:
        assert breaker_status(session, tenant, world.clock.now()).level == "paused"


def test_over_the_pause_rate_marketing_email_is_blocked_and_marketing_sms_still_goes(world, caplog):
    tenant = world.tenant()
    world.contact(
        tenant,
        "c1",
        email="ann@example.com",
        phone="+15125550100",
        consents=[("email", "marketing"), ("sms", "marketing")],
    )
    history(world, tenant, sent=1000, complaints=4)
    world.clock.set(world.clock.now().replace(hour=15))  # 10:00 in New York: inside SMS hours
    with caplog.at_level(logging.WARNING, logger="outbound.dispatch.breaker"):
        world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k1", "value": 200})
        world.run(world.clock.now() + timedelta(hours=25))
    by_channel = {m.channel: m for m in world.messages(campaign="cart")}
    assert by_channel["email"].status == "blocked" and by_channel["email"].rule == "complaint_breaker"
    assert by_channel["sms"].status == "sent"
    assert any("marketing email paused" in record.getMessage() for record in caplog.records)


def test_the_complaints_command_shows_each_tenants_level(world):
    us = world.tenant()
    world.tenant("calm", postal_address="2 Main St")
    # The command judges at the wall-clock time.
    history(world, us, sent=1000, complaints=2, now=datetime.now(UTC))
    result = runner.invoke(app, ["contacts", "complaints", "--db", world.runtime.settings.database_url])
    assert result.exit_code == 0, result.output
    assert "shop-us: 0.200% spam complaints (2 of 1000 emails) → warn" in result.output
    assert "calm: 0.000% spam complaints (0 of 0 emails) → ok" in result.output


def test_one_complaint_in_three_sends_does_not_pause_marketing_email(world):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="ann@example.com", consents=[("email", "marketing")])
    history(world, tenant, sent=3, complaints=1)
    with world.runtime.factory() as session:
        status = breaker_status(session, tenant, world.clock.now())
    # The rate is shown as it is, but three sends are too few to judge a sender by.
    assert (status.complaints, status.delivered, status.level) == (1, 3, "ok")
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k1", "value": 200})
    world.run(world.clock.now() + timedelta(hours=25))
    [email] = world.messages(campaign="cart", channel="email")
    assert (email.status, email.rule) != ("blocked", "complaint_breaker") and email.status == "sent"
    assert not status.judged


def test_the_rate_counts_from_the_minimum_volume_and_not_one_send_before(world):
    tenant = world.tenant()
    history(world, tenant, sent=999, complaints=4)
    with world.runtime.factory() as session:
        below = breaker_status(session, tenant, world.clock.now())
    assert (below.delivered, below.level) == (999, "ok") and not below.judged
    history(world, tenant, sent=1, complaints=0, days_ago=2)
    with world.runtime.factory() as session:
        at = breaker_status(session, tenant, world.clock.now())
    assert (at.delivered, at.complaints, at.level, at.judged) == (1000, 4, "paused", True)
