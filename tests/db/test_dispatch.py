"""Dispatch: due messages pass the compliance gate, are rendered and sent, and every step is recorded."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from outbound.db.models import Contact
from outbound.db.session import transaction
from outbound.db.suppressions import suppress

NY = ZoneInfo("America/New_York")


def test_consented_email_is_rendered_and_sent_when_due(world, clock, outbox):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com", consents=[("email", "marketing")])
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-7", "value": 150})
    world.run(clock.now() + timedelta(minutes=59))
    assert outbox.sent == []
    world.run(clock.now() + timedelta(minutes=2))
    [message] = world.messages()
    assert message.status == "sent" and message.to_address == "a@example.com"
    assert message.subject == "Your cart cart-7"
    assert "1 Main St" in message.body and "https://ob.example/u/" in message.body
    [sent] = outbox.sent
    assert sent.to == "a@example.com" and sent.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [status for status, _ in world.trail(message.id)] == ["scheduled", "sending", "sent"]


def test_marketing_without_consent_is_blocked_and_never_reaches_the_provider(world, clock, outbox):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com")
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-7", "value": 150})
    world.run(clock.now() + timedelta(hours=2))
    [message] = world.messages()
    assert (message.status, message.rule) == ("blocked", "consent")
    assert message.reason and message.body is None
    assert outbox.sent == []


def test_suppression_added_after_enrollment_blocks_at_send_time(world, clock, outbox):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com", consents=[("email", "marketing")])
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-7", "value": 150})
    with transaction(world.runtime.factory) as session:
        suppress(session, tenant.id, "email", "a@example.com", reason="unsubscribe", source="test", at=clock.now())
    world.run(clock.now() + timedelta(hours=2))
    [message] = world.messages()
    assert (message.status, message.rule) == ("blocked", "suppression")
    assert outbox.sent == []


@pytest.mark.parametrize("stored_hash", [True, False], ids=["hash kept by the model", "row written without it"])
def test_a_suppressed_number_is_blocked_whether_or_not_its_contact_row_holds_the_hash(
    world, clock, outbox, stored_hash
):
    tenant = world.tenant()
    world.contact(tenant, "c1", phone="+12025550143", timezone="America/New_York", consents=[("sms", "marketing")])
    world.contact(tenant, "c2", phone="+12025550144", timezone="America/New_York", consents=[("sms", "marketing")])
    with transaction(world.runtime.factory) as session:
        if not stored_hash:
            session.execute(update(Contact).values(phone_hash=None))
        suppress(session, tenant.id, "sms", "+1 (202) 555-0143", reason="opt_out", source="test", at=clock.now())
    clock.set(datetime(2026, 11, 20, 12, 0, tzinfo=NY))
    for contact in ("c1", "c2"):
        world.event(tenant, "cart_abandoned", contact, {"cart_id": f"cart-{contact}", "value": 150})
    world.run(clock.now() + timedelta(hours=25))
    by_contact = {m.contact_id: m for m in world.messages(channel="sms")}
    with transaction(world.runtime.factory) as session:
        ids = dict(session.execute(select(Contact.external_id, Contact.id)).all())
    assert (by_contact[ids["c1"]].status, by_contact[ids["c1"]].rule) == ("blocked", "suppression")
    assert by_contact[ids["c2"]].status == "sent"
    assert [m.to for m in outbox.sent if m.channel == "sms"] == ["+12025550144"]


def test_marketing_sms_due_at_night_waits_until_eight_local_then_sends(world, clock, outbox):
    tenant = world.tenant()
    world.contact(
        tenant,
        "c1",
        phone="+12025550143",
        email="a@example.com",
        timezone="America/New_York",
        consents=[("sms", "marketing"), ("email", "marketing")],
    )
    # Abandoned at 22:30 New York: the SMS is due 22:30 the next day, after 21:00.
    abandoned = datetime(2026, 11, 20, 22, 30, tzinfo=NY)
    clock.set(abandoned)
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-7", "value": 150})
    world.run(abandoned + timedelta(hours=24, minutes=5))
    sms = world.messages(channel="sms")[0]
    assert (sms.status, sms.rule) == ("deferred", "quiet_hours")
    assert sms.due_at == datetime(2026, 11, 22, 8, 0, tzinfo=NY)
    assert [m.channel for m in outbox.sent] == ["email"]
    world.run(datetime(2026, 11, 22, 8, 1, tzinfo=NY))
    sms = world.messages(channel="sms")[0]
    assert sms.status == "sent"
    assert sms.sent_at == datetime(2026, 11, 22, 8, 0, tzinfo=NY)
    assert [s for s, _ in world.trail(sms.id)] == ["scheduled", "deferred", "sending", "sent"]


def test_transactional_sms_goes_at_night_without_marketing_consent(world, clock, outbox):
    tenant = world.tenant()
    world.contact(tenant, "c1", phone="+12025550143", timezone="America/New_York")
    clock.set(datetime(2026, 11, 20, 23, 45, tzinfo=NY))
    world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-5", "new_eta": "2026-11-25"})
    world.run(clock.now() + timedelta(minutes=1))
    [message] = world.messages()
    assert message.status == "sent"
    assert message.body == "Order o-5 is delayed; new date 2026-11-25."


def test_korean_contact_gets_the_korean_template_and_falls_back_to_english_when_none(world, clock, outbox):
    tenant = world.tenant("shop-kr", jurisdiction="KR", timezone="Asia/Seoul", locale="ko", sender_name="서울상점")
    world.contact(
        tenant, "k1", phone="+821012345678", email="k@example.com", locale="ko", consents=[("email", "marketing")]
    )
    clock.set(datetime(2026, 11, 20, 3, 0, tzinfo=UTC))  # 12:00 in Seoul
    world.event(tenant, "cart_abandoned", "k1", {"cart_id": "c-9", "value": 129000})
    world.event(tenant, "shipping_delayed", "k1", {"order_id": "o-9", "new_eta": "2026-11-25"})
    world.run(clock.now() + timedelta(hours=2))
    email = world.messages(channel="email")[0]
    assert email.locale == "ko" and email.subject.startswith("(광고)") and "서울상점" in email.body
    delay = world.messages(campaign="delay")[0]
    assert delay.status == "sent" and delay.locale == "en"


def test_a_template_that_cannot_render_fails_the_message_with_the_reason_and_sends_nothing(world, clock, outbox):
    tenant = world.tenant()
    world.contact(tenant, "c1", phone="+12025550143")
    world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-5"})  # no new_eta for the template
    world.run(clock.now() + timedelta(minutes=1))
    [message] = world.messages()
    assert (message.status, message.rule) == ("failed", "render")
    assert "new_eta" in message.reason
    assert outbox.sent == []


def test_a_contact_without_the_channel_address_is_blocked_with_a_reason(world, clock, outbox):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com")
    world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-5", "new_eta": "2026-11-25"})
    world.run(clock.now() + timedelta(minutes=1))
    [message] = world.messages()
    assert (message.status, message.rule) == ("blocked", "no_address")
    assert outbox.sent == []


def test_two_marketing_messages_due_together_respect_the_daily_cap_per_channel(world, clock, outbox):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com", consents=[("email", "marketing")])
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 150})
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-2", "value": 150})
    world.run(clock.now() + timedelta(hours=2))
    statuses = sorted((m.status, m.rule) for m in world.messages())
    assert statuses[0][0] == "deferred" and statuses[0][1] == "frequency_cap"
    assert statuses[1][0] == "sent"
    assert len(outbox.sent) == 1


def test_draining_hands_one_batch_to_the_provider_while_the_next_is_decided_and_the_cap_counts_it(world, clock):
    """The next batch is decided while the last is with the provider, so that one is still `sending`:
    the frequency cap (one marketing email a day) must count it, or two emails would go."""
    import threading

    from outbound.dispatch.dispatcher import Dispatcher
    from outbound.providers import Outbox

    class Watching(Outbox):
        def __init__(self):
            super().__init__()
            self.threads = []

        def send(self, message):
            self.threads.append(threading.current_thread().name)
            return super().send(message)

    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com", consents=[("email", "marketing")])
    for cart in ("cart-1", "cart-2"):
        world.event(tenant, "cart_abandoned", "c1", {"cart_id": cart, "value": 150})
    clock.advance(timedelta(hours=2))
    provider = Watching()
    runtime = world.runtime
    one_at_a_time = runtime.settings.model_copy(update={"dispatch_batch_size": 1})
    report = Dispatcher(
        runtime.factory,
        runtime.definitions,
        {"email": provider, "sms": provider},
        clock,
        one_at_a_time,
        lambda: runtime.signer,
    ).drain()
    emails = world.messages(channel="email")
    assert sorted(m.status for m in emails) == ["deferred", "sent"]
    [deferred] = [m for m in emails if m.status == "deferred"]
    assert deferred.rule == "frequency_cap" and deferred.due_at > clock.now()
    assert len(provider.sent) == 1 and provider.threads == ["outbound-send_0"]
    assert (report.claimed, report.sent, report.deferred) == (2, 1, 1)
