"""Inbound SMS to the shared sender: Twilio requests signed with the SDK's RequestValidator, to the global
OUTBOUND_TWILIO_FROM_NUMBER that every tenant without its own `sms_from` sends from. Routed by the number,
then by the phone among the tenants that send from it; an opt-out that stays ambiguous reaches them all."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from outbound.bootstrap import build
from outbound.config import Settings
from outbound.db.models import Consent, InboundMessage, Tenant
from outbound.db.suppressions import is_suppressed
from outbound.testing import DEFAULT_AUTH_TOKEN
from outbound.web.app import create_app

from helpers.definitions import write_definitions

BASE = "https://ob.example"
INBOUND = "/webhooks/twilio/inbound"
SHARED = "+12155550100"  # OUTBOUND_TWILIO_FROM_NUMBER
OWN = "+12155550123"  # one tenant's own sms_from
PHONE = "+12025550143"


def make_world(db_url, tmp_path, clock, outbox, **settings):
    from conftest import World

    runtime = build(
        Settings(
            database_url=db_url,
            definitions=write_definitions(tmp_path / "defs"),
            base_url=BASE,
            twilio_auth_token=DEFAULT_AUTH_TOKEN,
            **settings,
        ),
        clock=clock,
        providers={"sms": outbox, "email": outbox},
    )
    return World(runtime, clock)


@pytest.fixture
def world(db_url, tmp_path, clock, outbox):
    world = make_world(db_url, tmp_path, clock, outbox, twilio_from_number=SHARED)
    yield world
    world.runtime.close()


@pytest.fixture
def client(world):
    with TestClient(create_app(world.runtime, on_event=None)) as client:
        yield client


def post_signed(client, params, *, token=DEFAULT_AUTH_TOKEN):
    signature = RequestValidator(token).compute_signature(BASE + INBOUND, params)
    return client.post(INBOUND, data=params, headers={"X-Twilio-Signature": signature})


def inbound(body, *, sid="SM" + "b" * 32, sender=PHONE, to=SHARED):
    return {"MessageSid": sid, "SmsSid": sid, "From": sender, "To": to, "Body": body, "NumMedia": "0"}


def reply_of(response):
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    message = ElementTree.fromstring(response.text).find("Message")
    return None if message is None else message.text


def suppressed(world, tenant, phone=PHONE):
    with world.runtime.factory() as session:
        return is_suppressed(session, tenant.id, "sms", phone)


def inbound_rows(world):
    with world.runtime.factory() as session:
        slugs = dict(session.execute(select(Tenant.id, Tenant.slug)).all())
        return [(slugs[m.tenant_id], m.kind, m.contact_id) for m in session.scalars(select(InboundMessage))]


def ledger(world, tenant):
    with world.runtime.factory() as session:
        return [
            (c.purpose, c.granted, c.source)
            for c in session.scalars(select(Consent).where(Consent.tenant_id == tenant.id).order_by(Consent.id))
        ]


def test_stop_to_the_shared_number_opts_out_of_the_one_tenant_that_has_the_phone(world, client):
    maple, birch = world.tenant("maple"), world.tenant("birch")
    contact = world.contact(maple, "c1", phone=PHONE, consents=[("sms", "marketing")])
    reply = reply_of(post_signed(client, inbound("STOP")))
    assert reply.startswith("maple:") and "unsubscribed" in reply
    assert suppressed(world, maple) == ["opt_out"] and suppressed(world, birch) == []
    assert inbound_rows(world) == [("maple", "opt_out", contact.id)]
    assert ledger(world, maple)[-2:] == [("marketing", False, "inbound SMS"), ("survey", False, "inbound SMS")]


def test_stop_to_the_shared_number_from_a_phone_no_tenant_has_opts_it_out_of_every_tenant_sending_from_it(
    world, client
):
    maple, birch = world.tenant("maple"), world.tenant("birch")
    oak = world.tenant("oak", sms_from=OWN)  # sends from its own number: not from the shared one
    reply = reply_of(post_signed(client, inbound("Stop texting me")))
    assert "unsubscribed" in reply and "maple" not in reply and "birch" not in reply
    assert suppressed(world, maple) == ["opt_out"] and suppressed(world, birch) == ["opt_out"]
    assert suppressed(world, oak) == []
    assert sorted(inbound_rows(world)) == [("birch", "opt_out", None), ("maple", "opt_out", None)]


def test_stop_to_the_shared_number_from_a_contact_of_two_tenants_opts_out_of_both_with_their_ledgers(world, client):
    maple, birch, elm = world.tenant("maple"), world.tenant("birch"), world.tenant("elm")
    mine = world.contact(maple, "c1", phone=PHONE, consents=[("sms", "marketing")])
    theirs = world.contact(birch, "b7", phone=PHONE, consents=[("sms", "marketing")])
    reply = reply_of(post_signed(client, inbound("수신거부")))
    assert "maple" not in reply and "birch" not in reply
    for tenant in (maple, birch, elm):
        assert suppressed(world, tenant) == ["opt_out"]
    assert sorted(inbound_rows(world)) == [
        ("birch", "opt_out", theirs.id),
        ("elm", "opt_out", None),
        ("maple", "opt_out", mine.id),
    ]
    for tenant in (maple, birch):
        assert ledger(world, tenant)[-2:] == [("marketing", False, "inbound SMS"), ("survey", False, "inbound SMS")]


def test_a_shared_stop_sent_again_by_twilio_is_applied_once_and_a_second_stop_is_not_confirmed_again(world, client):
    maple, birch = world.tenant("maple"), world.tenant("birch")
    assert reply_of(post_signed(client, inbound("STOP"))) is not None
    assert reply_of(post_signed(client, inbound("STOP"))) is None  # Twilio's retry of the same message
    assert len(inbound_rows(world)) == 2
    assert reply_of(post_signed(client, inbound("STOP", sid="SM" + "c" * 32))) is None  # confirmed once a day
    assert suppressed(world, maple) == ["opt_out"] and suppressed(world, birch) == ["opt_out"]


def test_start_to_the_shared_number_undoes_a_shared_stop_in_every_tenant(world, client):
    maple, birch = world.tenant("maple"), world.tenant("birch")
    for tenant in (maple, birch):
        world.contact(tenant, "c1", phone=PHONE, consents=[("sms", "marketing")])
    post_signed(client, inbound("STOP"))
    reply = reply_of(post_signed(client, inbound("START", sid="SM" + "c" * 32)))
    assert "subscribed again" in reply and "maple" not in reply
    for tenant in (maple, birch):
        assert suppressed(world, tenant) == []
        assert ledger(world, tenant)[-2:] == [("marketing", True, "inbound SMS"), ("survey", True, "inbound SMS")]


def test_an_ambiguous_reply_to_the_shared_number_is_acknowledged_and_attributed_to_no_tenant(world, client):
    maple, birch = world.tenant("maple"), world.tenant("birch")
    for tenant in (maple, birch):
        world.contact(tenant, "c1", phone=PHONE)
    assert reply_of(post_signed(client, inbound("9 - quick delivery, thanks"))) is None
    assert inbound_rows(world) == []
    assert suppressed(world, maple) == [] and suppressed(world, birch) == []


def test_help_to_the_shared_number_from_an_ambiguous_phone_is_answered_naming_no_tenant(world, client):
    world.tenant("maple", support_contact="help@maple.example")
    world.tenant("birch", support_contact="help@birch.example")
    reply = reply_of(post_signed(client, inbound("HELP")))
    assert "STOP" in reply and "maple" not in reply and "birch" not in reply
    assert inbound_rows(world) == []


def test_a_reply_to_the_shared_number_from_a_contact_of_one_tenant_is_that_tenants(world, client):
    maple = world.tenant("maple", support_contact="help@maple.example")
    world.tenant("birch", support_contact="help@birch.example")
    contact = world.contact(maple, "c1", phone="(202) 555-0143")
    reply = reply_of(post_signed(client, inbound("HELP")))
    assert "help@maple.example" in reply and "birch" not in reply
    assert inbound_rows(world) == [("maple", "help", contact.id)]


def test_the_one_tenant_sending_from_the_shared_number_gets_its_replies_whoever_sends_them(world, client):
    world.tenant("maple")
    world.tenant("oak", sms_from=OWN)
    assert reply_of(post_signed(client, inbound("STOP"))).startswith("maple:")
    assert inbound_rows(world) == [("maple", "opt_out", None)]


def test_a_tenant_whose_own_number_is_the_shared_one_shares_its_replies(world, client):
    maple, birch = world.tenant("maple", sms_from="+1 215-555-0100"), world.tenant("birch")
    oak = world.tenant("oak", sms_from=OWN)
    post_signed(client, inbound("STOP"))
    assert suppressed(world, maple) == ["opt_out"] and suppressed(world, birch) == ["opt_out"]
    assert suppressed(world, oak) == []


def test_a_stop_to_a_tenants_own_number_stays_that_tenants_even_when_others_have_the_phone(world, client):
    maple, oak = world.tenant("maple"), world.tenant("oak", sms_from=OWN)
    world.contact(maple, "c1", phone=PHONE)
    assert reply_of(post_signed(client, inbound("STOP", to=OWN))).startswith("oak:")
    assert suppressed(world, oak) == ["opt_out"] and suppressed(world, maple) == []


def test_an_sms_to_the_shared_number_when_every_tenant_has_its_own_is_answered_with_twiml_not_404(world, client):
    world.tenant("oak", sms_from=OWN)
    assert reply_of(post_signed(client, inbound("STOP"))) is None
    assert inbound_rows(world) == []


def test_the_shared_number_is_compared_in_e164_however_it_is_written(db_url, tmp_path, clock, outbox):
    world = make_world(db_url, tmp_path, clock, outbox, twilio_from_number="+1 (215) 555-0100")
    maple = world.tenant("maple")
    with TestClient(create_app(world.runtime, on_event=None)) as client:
        assert reply_of(post_signed(client, inbound("STOP"))).startswith("maple:")
    assert suppressed(world, maple) == ["opt_out"]
    world.runtime.close()


def test_with_a_messaging_service_a_number_no_tenant_owns_is_the_shared_sender(db_url, tmp_path, clock, outbox):
    world = make_world(db_url, tmp_path, clock, outbox, twilio_messaging_service_sid="MG" + "a" * 32)
    maple, birch = world.tenant("maple"), world.tenant("birch")
    with TestClient(create_app(world.runtime, on_event=None)) as client:
        assert "unsubscribed" in reply_of(post_signed(client, inbound("STOP", to="+12155550177")))
    assert suppressed(world, maple) == ["opt_out"] and suppressed(world, birch) == ["opt_out"]
    world.runtime.close()


def test_a_stop_to_the_shared_number_signed_with_a_tenants_own_token_is_refused(world, client):
    maple = world.tenant("maple", twilio_auth_token="maple-own-token")
    world.tenant("birch")
    assert post_signed(client, inbound("STOP"), token="maple-own-token").status_code == 403
    assert suppressed(world, maple) == [] and inbound_rows(world) == []
