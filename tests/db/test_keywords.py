"""Inbound SMS keywords (EN and KO words and clear phrases) and what receiving them does to the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from outbound.db.models import Consent, InboundMessage, Suppression
from outbound.db.session import transaction
from outbound.db.suppressions import is_suppressed
from outbound.delivery.inbound import receive_inbound_sms
from outbound.delivery.keywords import HELP, OPT_IN, OPT_OUT, YES, classify


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "  Stop. ",
        "STOPALL",
        "UNSUBSCRIBE",
        "cancel",
        "END",
        "quit!",
        "REVOKE",
        "OPTOUT",
        "opt out",
        "수신거부",
        "거부",
        "중지",
        " 수신거부. ",
        "stop texting me",
        "Please unsubscribe me",
        "STOP TEXTING ME!!",
        "please stop sending me messages",
        "unsubscribe me please",
        "take me off your list",
        "don't text me again",
        "no more texts",
        "문자 보내지 마세요",
        "수신거부 해주세요",
        "광고 문자 그만 보내세요",
        "거부합니다",
    ],
)
def test_opt_out_words_and_clear_phrases_are_recognised(text):
    assert classify(text) == OPT_OUT


@pytest.mark.parametrize(
    "text",
    [
        "",
        "9",
        "10 great service",
        "don't stop",
        "can you cancel my order",
        "when does it end?",
        "stop by the store",
        "I love it",
        "stopwatch",
        "not now",
        "거부감 없이 좋아요",
        "최고예요",
    ],
)
def test_other_messages_are_not_keywords(text):
    assert classify(text) is None


@pytest.mark.parametrize(
    "text, kind",
    [
        ("START", OPT_IN),
        ("unstop", OPT_IN),
        ("HELP", HELP),
        ("info", HELP),
        ("도움말", HELP),
        ("YES", YES),
        ("네", YES),
    ],
)
def test_start_help_and_yes_are_recognised(text, kind):
    assert classify(text) == kind


# -- receiving ----------------------------------------------------------------------------------------------


@pytest.fixture
def shop(world):
    tenant = world.tenant(sender_name="Maple Goods", support_contact="help@maple.example")
    world.contact(
        tenant,
        "c1",
        phone="+15125550100",
        email="c1@example.com",
        consents=[("sms", "marketing"), ("sms", "survey"), ("email", "marketing")],
    )
    return tenant


def receive(world, tenant, body, *, sid=None, number="+15125550100"):
    world._sid = getattr(world, "_sid", 0) + 1
    with transaction(world.runtime.factory) as session:
        tenant = session.merge(tenant, load=False)
        return receive_inbound_sms(
            session,
            tenant,
            from_number=number,
            to_number="+15125550999",
            body=body,
            provider_id=sid or f"SM{world._sid}",
            clock=world.clock,
            settings=world.runtime.settings,
            definitions=world.runtime.definitions,
        )


def ledger(world, channel="sms"):
    with world.runtime.factory() as session:
        return [
            (c.purpose, c.granted, c.source)
            for c in session.scalars(select(Consent).where(Consent.channel == channel).order_by(Consent.id))
        ]


def test_stop_suppresses_the_number_revokes_sms_consent_and_confirms_once_without_marketing(world, shop):
    outcome = receive(world, shop, "stop texting me")
    assert outcome.kind == "opt_out" and outcome.contact_id is not None
    assert "unsubscribed" in outcome.reply and "Maple Goods" in outcome.reply
    assert not any(word in outcome.reply.lower() for word in ("offer", "sale", "%", "code"))
    with world.runtime.factory() as session:
        assert is_suppressed(session, shop.id, "sms", "+15125550100") == ["opt_out"]
        stored = session.scalar(select(InboundMessage))
        assert stored.kind == "opt_out" and stored.body == "stop texting me"
    assert ("marketing", False, "inbound SMS") in ledger(world) and ("survey", False, "inbound SMS") in ledger(world)
    assert ("marketing", True, "test form") in ledger(world, "email")  # email is another list


def test_a_second_stop_within_a_day_gets_no_reply_and_one_after_a_day_does(world, shop):
    assert receive(world, shop, "STOP").reply is not None
    world.clock.advance(timedelta(hours=23, minutes=59))
    assert receive(world, shop, "수신거부").reply is None
    world.clock.advance(timedelta(days=1, minutes=1))
    assert receive(world, shop, "STOP").reply is not None


def test_the_same_provider_message_twice_is_applied_once(world, shop):
    first = receive(world, shop, "STOP", sid="SMdup")
    again = receive(world, shop, "STOP", sid="SMdup")
    assert first.kind == "opt_out" and again.kind == "duplicate" and again.reply is None
    with world.runtime.factory() as session:
        assert len(session.scalars(select(InboundMessage)).all()) == 1


def test_start_lifts_the_opt_out_and_restores_what_stop_revoked(world, shop):
    receive(world, shop, "STOP")
    world.clock.advance(timedelta(minutes=5))
    outcome = receive(world, shop, "START")
    assert outcome.kind == "opt_in" and "STOP" in outcome.reply
    with world.runtime.factory() as session:
        assert is_suppressed(session, shop.id, "sms", "+15125550100") == []
    assert ledger(world)[-2:] == [("marketing", True, "inbound SMS"), ("survey", True, "inbound SMS")]


def test_start_does_not_lift_a_suppression_the_contact_did_not_ask_for(world, shop):
    from outbound.db.suppressions import suppress

    with transaction(world.runtime.factory) as session:
        suppress(
            session, shop.id, "sms", "+15125550100", reason="undeliverable", source="provider", at=world.clock.now()
        )
    receive(world, shop, "START")
    with world.runtime.factory() as session:
        assert session.scalar(select(Suppression.reason)) == "undeliverable"


def test_help_answers_with_the_brand_and_support_contact_in_the_contacts_language(world, shop):
    outcome = receive(world, shop, "HELP")
    assert outcome.kind == "help" and "Maple Goods" in outcome.reply and "help@maple.example" in outcome.reply
    world.contact(shop, "c2", phone="+15125550101", locale="ko")
    korean = receive(world, shop, "도움말", number="+15125550101")
    assert "문의" in korean.reply and "help@maple.example" in korean.reply


def test_a_plain_yes_outside_a_consent_request_grants_nothing(world, shop):
    outcome = receive(world, shop, "YES")
    assert outcome.kind == "other"
    assert ledger(world) == [("marketing", True, "test form"), ("survey", True, "test form")]


def test_stop_from_an_unknown_number_still_suppresses_it(world, shop):
    outcome = receive(world, shop, "STOP", number="+15125550177")
    assert outcome.kind == "opt_out" and outcome.contact_id is None and outcome.reply
    with world.runtime.factory() as session:
        assert is_suppressed(session, shop.id, "sms", "+15125550177") == ["opt_out"]


def test_a_message_that_is_no_keyword_is_other_when_no_survey_awaits_it(world, shop):
    outcome = receive(world, shop, "what time do you open?")
    assert outcome.kind == "other" and outcome.reply is None


def test_after_stop_the_next_marketing_sms_is_blocked_by_the_suppression(world, shop):
    receive(world, shop, "STOP")
    world.event(shop, "cart_abandoned", "c1", {"cart_id": "k1", "value": 200})
    world.run(world.clock.now() + timedelta(days=2))
    sms = world.messages(channel="sms")
    assert sms and all(m.status == "blocked" and m.rule == "suppression" for m in sms)
