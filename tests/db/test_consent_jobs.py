"""KR consent duties run by the scheduler: the 14-day change notice and the 2-year reconfirmation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import World
from sqlalchemy import select

from outbound.bootstrap import build
from outbound.config import Settings
from outbound.db.models import Consent, Contact, Enrollment
from outbound.db.session import transaction
from outbound.delivery.inbound import receive_inbound_sms
from outbound.enrollment.consent_notices import run_consent_jobs
from outbound.ingest.contacts import ConsentIn, record_consent

from helpers.definitions import CART, DELAY, LEAD, TEMPLATES, write_definitions

REPO = Path(__file__).resolve().parents[2]
SEOUL = ZoneInfo("Asia/Seoul")
KR_CAMPAIGNS = ("kr_consent_notice", "kr_consent_reconfirmation")


@pytest.fixture
def kr_world(db_url, tmp_path, clock, outbox):
    """The test definitions plus the shipped KR consent campaigns and their templates."""
    campaigns = {"cart": CART, "delay": DELAY, "lead": LEAD}
    campaigns.update({name: (REPO / "campaigns" / f"{name}.yaml").read_text() for name in KR_CAMPAIGNS})
    templates = dict(TEMPLATES)
    for name in KR_CAMPAIGNS:
        for path in (REPO / "templates" / name).iterdir():
            templates[f"{name}/{path.name}"] = path.read_text()
    root = write_definitions(tmp_path / "definitions", campaigns=campaigns, templates=templates)
    runtime = build(
        Settings(database_url=db_url, definitions=root, base_url="https://ob.example"),
        clock=clock,
        providers={"sms": outbox, "email": outbox},
    )
    yield World(runtime, clock)
    runtime.close()


def grant(world, tenant, external_id, *, at, channel="sms", granted=True, source="signup form"):
    with transaction(world.runtime.factory) as session:
        contact = session.scalar(select(Contact).where(Contact.external_id == external_id))
        record_consent(
            session,
            session.merge(tenant, load=False),
            contact,
            ConsentIn(
                channel=channel, purpose="marketing", granted=granted, at=at, source=source, text="광고 수신 동의"
            ),
            world.clock,
        )


def kr_shop(world):
    return world.tenant(
        "shop-kr",
        jurisdiction="KR",
        timezone="Asia/Seoul",
        locale="ko",
        sender_name="서울상점",
        support_contact="02-123-4567",
    )


def jobs(world):
    with transaction(world.runtime.factory) as session:
        return run_consent_jobs(session, world.runtime.definitions, world.clock.now())


def test_a_kr_consent_change_is_notified_within_14_days_saying_what_changed_and_when(kr_world, outbox):
    world = kr_world
    tenant = kr_shop(world)
    world.contact(tenant, "k1", phone="+821012345678", locale="ko")
    grant(world, tenant, "k1", at=world.clock.now() - timedelta(days=3), granted=False, source="account page")
    world.run(world.clock.now() + timedelta(hours=2))
    sent = outbox.sent_to("+821012345678")
    assert len(sent) == 1
    assert "서울상점" in sent[0].body and "광고성 정보 수신거부" in sent[0].body and "문자" in sent[0].body
    assert (world.clock.now() - timedelta(days=3)).astimezone(SEOUL).strftime("%Y-%m-%d") in sent[0].body
    with world.runtime.factory() as session:
        assert all(c.notified_at is not None for c in session.scalars(select(Consent)))
    assert jobs(world).notices == 0  # nothing twice


def test_no_notice_for_changes_already_confirmed_or_older_than_14_days_or_outside_kr(kr_world, outbox):
    world = kr_world
    tenant = kr_shop(world)
    us = world.tenant()
    world.contact(tenant, "k1", phone="+821012345678")
    world.contact(us, "u1", phone="+15125550100")
    grant(world, tenant, "k1", at=world.clock.now() - timedelta(days=15))
    grant(world, us, "u1", at=world.clock.now() - timedelta(days=1))
    with transaction(world.runtime.factory) as session:
        receive_inbound_sms(
            session,
            session.merge(tenant, load=False),
            from_number="+821012345678",
            to_number="+8215881234",
            body="수신거부",
            provider_id="SM1",
            clock=world.clock,
            settings=world.runtime.settings,
            definitions=world.runtime.definitions,
        )
    assert jobs(world).notices == 0


def test_reconfirmation_is_asked_four_weeks_before_the_lapse_and_a_yes_renews_consent(kr_world, outbox):
    world = kr_world
    tenant = kr_shop(world)
    world.contact(tenant, "k1", phone="+821012345678", locale="ko")
    given = world.clock.now() - timedelta(days=2 * 365 - 30)  # lapses in about 4 weeks and a day or two
    grant(world, tenant, "k1", at=given)
    with transaction(world.runtime.factory) as session:
        session.execute(Consent.__table__.update().values(notified_at=world.clock.now()))
    assert jobs(world).reconfirmations == 0
    world.clock.advance(timedelta(days=3))
    assert jobs(world).reconfirmations == 1
    assert jobs(world).reconfirmations == 0  # once per consent
    world.run(world.clock.now() + timedelta(hours=1))
    request = outbox.sent_to("+821012345678")[-1]
    assert "YES" in request.body and given.astimezone(SEOUL).strftime("%Y-%m-%d") in request.body
    world.clock.advance(timedelta(hours=1))
    with transaction(world.runtime.factory) as session:
        outcome = receive_inbound_sms(
            session,
            session.merge(tenant, load=False),
            from_number="+821012345678",
            to_number="+8215881234",
            body="네",
            provider_id="SM9",
            clock=world.clock,
            settings=world.runtime.settings,
            definitions=world.runtime.definitions,
        )
    assert outcome.kind == "opt_in" and "갱신" in outcome.reply
    with world.runtime.factory() as session:
        newest = session.scalars(select(Consent).order_by(Consent.id.desc())).first()
        assert newest.granted and newest.purpose == "marketing" and newest.source == "inbound SMS"


def test_only_a_standing_grant_is_reconfirmed_not_one_revoked_or_renewed_since(kr_world):
    world = kr_world
    tenant = kr_shop(world)
    old = world.clock.now() - timedelta(days=2 * 365 - 20)  # inside the four weeks before the lapse
    for external_id, phone in (
        ("standing", "+821011110001"),
        ("revoked", "+821011110002"),
        ("renewed", "+821011110003"),
    ):
        world.contact(tenant, external_id, phone=phone, locale="ko")
        grant(world, tenant, external_id, at=old)
    grant(world, tenant, "revoked", at=old + timedelta(days=30), granted=False)
    grant(world, tenant, "renewed", at=old + timedelta(days=300))
    assert jobs(world).reconfirmations == 1
    with world.runtime.factory() as session:
        asked = session.scalars(
            select(Contact.external_id)
            .join(Enrollment, Enrollment.contact_id == Contact.id)
            .where(Enrollment.campaign == "kr_consent_reconfirmation")
        )
        assert list(asked) == ["standing"]


def test_without_reconfirmation_advertising_stops_at_the_lapse(kr_world):
    world = kr_world
    tenant = kr_shop(world)
    world.contact(tenant, "k1", email="k1@example.kr", locale="ko")
    grant(world, tenant, "k1", channel="email", at=world.clock.now() - timedelta(days=2 * 365 + 1))
    world.event(tenant, "cart_abandoned", "k1", {"cart_id": "c1", "value": 200})
    world.run(world.clock.now() + timedelta(hours=2))
    cart = world.messages(campaign="cart")[0]
    assert cart.status == "blocked" and cart.rule == "kr_reconfirmation"
    reminder = world.messages(campaign="kr_consent_reconfirmation")
    assert reminder and reminder[0].channel == "email" and reminder[0].status == "sent"


def test_the_scheduler_runs_the_consent_duties_as_a_leader_job(kr_world):
    from outbound.jobs.scheduler import start_scheduler

    scheduler = start_scheduler(kr_world.runtime, dispatch=False)
    try:
        assert scheduler.get_job("consent_duties") is not None
    finally:
        scheduler.shutdown(wait=False)
        scheduler.leadership.release()
