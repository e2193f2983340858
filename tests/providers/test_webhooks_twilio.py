"""Twilio webhooks through the real app: signatures made with the twilio SDK's RequestValidator,
status callbacks for messages really sent through the SDK to the fake provider, and inbound SMS."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from outbound.bootstrap import build
from outbound.config import Settings
from outbound.db.models import DeliveryEvent, InboundMessage, MessageTransition
from outbound.db.suppressions import is_suppressed
from outbound.providers import TwilioSms
from outbound.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeProviderServer
from outbound.web.app import create_app

from helpers.definitions import write_definitions

BASE = "https://ob.example"
STATUS = "/webhooks/twilio/status"
INBOUND = "/webhooks/twilio/inbound"
PHONE = "+12025550143"
SHOP_NUMBER = "+12155550123"


@pytest.fixture
def fake():
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def world(db_url, tmp_path, clock, fake):
    """The engine sending SMS with the real Twilio SDK to the fake, and verifying callbacks with its token."""
    from conftest import World

    sms = TwilioSms(
        DEFAULT_ACCOUNT_SID,
        DEFAULT_AUTH_TOKEN,
        from_number=SHOP_NUMBER,
        api_base=fake.url,
        timeout=1,
        status_callback=BASE + STATUS,
    )
    settings = Settings(
        database_url=db_url,
        definitions=write_definitions(tmp_path / "defs"),
        base_url=BASE,
        twilio_auth_token=DEFAULT_AUTH_TOKEN,
    )
    runtime = build(settings, clock=clock, providers={"sms": sms, "email": sms})
    yield World(runtime, clock)
    runtime.close()


@pytest.fixture
def client(world, clock):
    runtime = world.runtime
    with TestClient(create_app(runtime)) as client:
        yield client


def post_signed(client, path, params, *, token=DEFAULT_AUTH_TOKEN, url=None, headers=None):
    """POST form params signed the way Twilio signs them (the SDK's own computation)."""
    signature = RequestValidator(token).compute_signature(url or BASE + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature, **(headers or {})})


def callback(sid, status, *, code=None, to=PHONE):
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": to,
        "From": SHOP_NUMBER,
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
    }
    if code:
        params["ErrorCode"] = str(code)
    return params


def send_one(world, clock, tenant=None, phone=PHONE, order="o-1"):
    """One transactional SMS sent through the SDK; returns the message."""
    tenant = tenant or world.tenant(sms_from=SHOP_NUMBER)
    world.contact(tenant, f"c-{order}", phone=phone)
    world.event(tenant, "shipping_delayed", f"c-{order}", {"order_id": order, "new_eta": "2026-11-25"})
    world.run(clock.now() + timedelta(minutes=1))
    [message] = [m for m in world.messages() if m.to_address == phone and m.body and order in m.body]
    assert message.status == "sent" and message.provider_id
    return message


def events_of(world, message_id=None):
    with world.runtime.factory() as session:
        query = select(DeliveryEvent).order_by(DeliveryEvent.id)
        if message_id is not None:
            query = query.where(DeliveryEvent.message_id == message_id)
        return list(session.scalars(query))


def test_a_signed_delivered_callback_marks_the_message_delivered(world, client, clock, fake):
    message = send_one(world, clock)
    assert fake.accepted("twilio")[0]["status_callback"] == BASE + STATUS
    response = post_signed(client, STATUS, callback(message.provider_id, "delivered"))
    assert response.status_code == 200
    [message] = world.messages(id=message.id)
    assert message.status == "delivered" and message.delivered_at == clock.now()
    assert world.trail(message.id)[-1] == ("delivered", "twilio_delivered")
    [event] = events_of(world, message.id)
    assert (event.provider, event.provider_event_id, event.type) == (
        "twilio",
        f"{message.provider_id}:delivered",
        "delivered",
    )


def test_a_callback_with_a_tampered_parameter_is_refused_with_403_and_changes_nothing(world, client, clock):
    message = send_one(world, clock)
    params = callback(message.provider_id, "delivered")
    signature = RequestValidator(DEFAULT_AUTH_TOKEN).compute_signature(BASE + STATUS, params)
    params["MessageStatus"] = "failed"
    response = client.post(STATUS, data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403
    assert world.messages(id=message.id)[0].status == "sent" and events_of(world) == []


def test_a_callback_without_a_signature_is_refused_with_403(world, client, clock):
    message = send_one(world, clock)
    response = client.post(STATUS, data=callback(message.provider_id, "delivered"))
    assert response.status_code == 403
    assert world.messages(id=message.id)[0].status == "sent"


def test_a_callback_signed_for_another_url_or_with_another_token_is_refused(world, client, clock):
    message = send_one(world, clock)
    params = callback(message.provider_id, "delivered")
    assert post_signed(client, STATUS, params, url="http://localhost:8000" + STATUS).status_code == 403
    assert post_signed(client, STATUS, params, token="someone-elses-token").status_code == 403
    assert world.messages(id=message.id)[0].status == "sent"


def test_a_tenant_with_its_own_auth_token_is_verified_with_it_and_not_with_the_global_one(world, client, clock):
    tenant = world.tenant(sms_from=SHOP_NUMBER, twilio_auth_token="tenant-own-token")
    message = send_one(world, clock, tenant=tenant)
    params = callback(message.provider_id, "delivered")
    assert post_signed(client, STATUS, params).status_code == 403
    assert post_signed(client, STATUS, params, token="tenant-own-token").status_code == 200
    assert world.messages(id=message.id)[0].status == "delivered"


def test_the_same_callback_twice_is_stored_once_and_changes_nothing_more(world, client, clock):
    message = send_one(world, clock)
    first = post_signed(client, STATUS, callback(message.provider_id, "delivered"))
    trail = world.trail(message.id)
    second = post_signed(client, STATUS, callback(message.provider_id, "delivered"))
    assert first.json()["stored"] and second.json()["duplicate"] and second.status_code == 200
    assert world.trail(message.id) == trail and len(events_of(world)) == 1


def test_delivered_before_sent_ends_in_delivered_and_the_late_sent_changes_nothing(world, client, clock):
    message = send_one(world, clock)
    for status in ("delivered", "sent", "queued"):
        assert post_signed(client, STATUS, callback(message.provider_id, status)).status_code == 200
    assert world.messages(id=message.id)[0].status == "delivered"
    assert [step for step, _ in world.trail(message.id)].count("delivered") == 1
    assert [e.type for e in events_of(world, message.id)] == ["delivered", "sent", "queued"]


def test_a_callback_that_beats_the_workers_record_of_the_answer_still_ends_delivered(db_url, tmp_path, clock, fake):
    """The carrier can report delivery before the worker has stored the provider's answer."""
    from conftest import World

    class CallbackFirst(TwilioSms):
        """The real SDK provider; the delivered callback reaches the app before `send` returns."""

        def send(self, message):
            result = super().send(message)
            assert post_signed(self.client, STATUS, callback(result.provider_id, "delivered")).status_code == 200
            return result

    sms = CallbackFirst(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number=SHOP_NUMBER, api_base=fake.url, timeout=1)
    settings = Settings(
        database_url=db_url,
        definitions=write_definitions(tmp_path / "defs"),
        base_url=BASE,
        twilio_auth_token=DEFAULT_AUTH_TOKEN,
    )
    runtime = build(settings, clock=clock, providers={"sms": sms, "email": sms})
    world = World(runtime, clock)
    with TestClient(create_app(dataclasses.replace(runtime, settings=settings), on_event=None)) as client:
        sms.client = client
        tenant = world.tenant(sms_from=SHOP_NUMBER)
        world.contact(tenant, "c1", phone=PHONE)
        world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-1", "new_eta": "2026-11-25"})
        world.run(clock.now() + timedelta(minutes=1))
    [message] = world.messages()
    assert message.status == "delivered" and message.provider_id == fake.accepted("twilio")[0]["provider_id"]
    assert [step for step, _ in world.trail(message.id)] == ["scheduled", "sending", "delivered"]
    runtime.close()


def test_undelivered_with_21610_suppresses_the_number_as_opted_out_and_is_not_retried(world, client, clock, fake):
    message = send_one(world, clock)
    post_signed(client, STATUS, callback(message.provider_id, "undelivered", code=21610))
    world.run(clock.now() + timedelta(days=1))
    [message] = world.messages(id=message.id)
    assert (message.status, message.error_code) == ("undelivered", "21610")
    assert len(fake.accepted("twilio")) == 1
    with world.runtime.factory() as session:
        assert is_suppressed(session, message.tenant_id, "sms", PHONE) == ["opt_out"]


@pytest.mark.parametrize("code", [21211, 30006])
def test_a_failed_callback_with_an_invalid_or_landline_number_marks_it_undeliverable(world, client, clock, code):
    message = send_one(world, clock)
    post_signed(client, STATUS, callback(message.provider_id, "failed", code=code))
    [message] = world.messages(id=message.id)
    assert message.status == "failed" and message.error_code == str(code)
    with world.runtime.factory() as session:
        assert is_suppressed(session, message.tenant_id, "sms", PHONE) == ["undeliverable"]


@pytest.mark.parametrize("code", [30003, 30005])
def test_an_unreachable_handset_is_tried_again_later_then_ends_undelivered_after_the_limit(
    world, client, clock, fake, code
):
    message = send_one(world, clock)
    for attempt in range(1, 6):
        [message] = world.messages(id=message.id)
        assert message.attempts == attempt and message.status == "sent"
        post_signed(client, STATUS, callback(message.provider_id, "undelivered", code=code))
        [message] = world.messages(id=message.id)
        if attempt < 5:
            assert message.status == "scheduled" and message.due_at > clock.now()
            world.run(clock.now() + timedelta(hours=2))
    assert (message.status, message.error_code) == ("undelivered", str(code))
    assert len({r["provider_id"] for r in fake.accepted("twilio")}) == 5
    with world.runtime.factory() as session:
        assert is_suppressed(session, message.tenant_id, "sms", PHONE) == []


def test_a_callback_for_an_unknown_message_is_answered_200_and_kept_unattached(world, client, clock):
    tenant = world.tenant(sms_from=SHOP_NUMBER)
    response = post_signed(client, STATUS, callback("SM" + "f" * 32, "delivered", to="+12025550199"))
    assert response.status_code == 200 and response.json()["stored"] is True
    [event] = events_of(world)
    assert event.message_id is None and event.tenant_id == tenant.id


@pytest.mark.parametrize("drop", ["MessageSid", "MessageStatus"])
def test_a_signed_callback_missing_a_required_field_gets_400(world, client, clock, drop):
    params = {
        k: v for k, v in callback("SM" + "a" * 32, "sent").items() if k not in (drop, drop.replace("Message", "Sms"))
    }
    assert post_signed(client, STATUS, params).status_code == 400


def test_a_body_that_is_not_form_data_gets_a_4xx_not_a_500(world, client):
    response = client.post(STATUS, content=b"\xff\xfe\x00garbage", headers={"X-Twilio-Signature": "x"})
    assert response.status_code == 400


def test_an_unknown_status_is_stored_and_changes_nothing(world, client, clock):
    message = send_one(world, clock)
    assert post_signed(client, STATUS, callback(message.provider_id, "partially_delivered")).status_code == 200
    assert world.messages(id=message.id)[0].status == "sent"
    assert [e.type for e in events_of(world, message.id)] == ["partially_delivered"]


def test_every_webhook_transition_is_recorded_with_its_source_and_reason(world, client, clock):
    message = send_one(world, clock)
    post_signed(client, STATUS, callback(message.provider_id, "undelivered", code=21610))
    with world.runtime.factory() as session:
        last = session.scalars(
            select(MessageTransition)
            .where(MessageTransition.message_id == message.id)
            .order_by(MessageTransition.id.desc())
        ).first()
    assert (last.from_status, last.to_status, last.source, last.at) == ("sent", "undelivered", "webhook", clock.now())
    assert "21610" in last.reason


# -- inbound SMS ---------------------------------------------------------------------


def inbound(body, *, sid="SM" + "b" * 32, sender=PHONE, to=SHOP_NUMBER):
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }


def test_an_inbound_stop_suppresses_the_number_and_is_answered_with_twiml(world, client):
    tenant = world.tenant(sms_from=SHOP_NUMBER)
    world.contact(tenant, "c1", phone=PHONE)
    response = post_signed(client, INBOUND, inbound("STOP"))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    assert ElementTree.fromstring(response.text).tag == "Response"
    with world.runtime.factory() as session:
        assert "opt_out" in is_suppressed(session, tenant.id, "sms", PHONE)
        assert session.scalar(select(func.count(InboundMessage.id))) == 1


def test_an_inbound_sms_with_a_bad_signature_is_refused_and_nothing_is_recorded(world, client):
    world.tenant(sms_from=SHOP_NUMBER)
    params = inbound("STOP")
    response = client.post(INBOUND, data=params, headers={"X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"})
    assert response.status_code == 403
    with world.runtime.factory() as session:
        assert session.scalar(select(func.count(InboundMessage.id))) == 0


def test_an_inbound_sms_to_a_number_no_tenant_sends_from_gets_404(world, client):
    world.tenant(sms_from=SHOP_NUMBER)
    assert post_signed(client, INBOUND, inbound("hello", to="+12155550999")).status_code == 404


def test_explain_and_the_unknown_list_show_provider_ids_and_delivery_events(world, client, clock, db_url):
    from typer.testing import CliRunner

    from outbound.cli import app

    message = send_one(world, clock)
    post_signed(client, STATUS, callback(message.provider_id, "undelivered", code=21610))
    explained = CliRunner().invoke(app, ["explain", str(message.id), "--db", db_url], terminal_width=250)
    assert explained.exit_code == 0, explained.output
    assert message.provider_id in explained.output and f"{message.provider_id}:undelivered" in explained.output
    assert "21610" in explained.output and "webhook" in explained.output
    listed = CliRunner().invoke(app, ["messages", "list", "--status", "undelivered", "--json", "--db", db_url])
    assert f'"provider_id": "{message.provider_id}"' in listed.output and '"error_code": "21610"' in listed.output


# -- signed requests Twilio may really send, and what an attacker holding no token cannot change ----------


def test_an_inbound_stop_from_an_alphanumeric_sender_is_recorded_without_a_reply(world, client):
    tenant = world.tenant(sms_from=SHOP_NUMBER)
    response = post_signed(client, INBOUND, inbound("STOP", sender="VERIFY"))
    assert response.status_code == 200
    # A sender id cannot be texted back: no <Message>.
    assert ElementTree.fromstring(response.text).find("Message") is None
    with world.runtime.factory() as session:
        assert is_suppressed(session, tenant.id, "sms", "VERIFY") == ["opt_out"]
        [kept] = session.scalars(select(InboundMessage))
        assert (kept.kind, kept.from_address) == ("opt_out", "VERIFY")


@pytest.mark.parametrize("code", [None, 21610, 21211])
def test_a_status_callback_to_an_alphanumeric_address_is_answered_not_a_500(world, client, code):
    tenant = world.tenant(sms_from=SHOP_NUMBER)
    response = post_signed(client, STATUS, callback("SM" + "c" * 32, "undelivered", code=code, to="VERIFY"))
    assert response.status_code == 200 and response.json()["stored"] is True
    with world.runtime.factory() as session:
        expected = {None: [], 21610: ["opt_out"], 21211: ["undeliverable"]}[code]
        assert is_suppressed(session, tenant.id, "sms", "VERIFY") == expected


@pytest.mark.parametrize("body", ["STOP\x00", "\x00STOP", "ST\x00OP"])
def test_an_inbound_stop_with_a_nul_in_its_body_still_opts_out(world, client, body):
    tenant = world.tenant(sms_from=SHOP_NUMBER)
    world.contact(tenant, "c1", phone=PHONE)
    response = post_signed(client, INBOUND, inbound(body))
    assert response.status_code == 200 and ElementTree.fromstring(response.text).find("Message") is not None
    with world.runtime.factory() as session:
        assert is_suppressed(session, tenant.id, "sms", PHONE) == ["opt_out"]
        [kept] = session.scalars(select(InboundMessage))
        assert (kept.kind, kept.body) == ("opt_out", "STOP")


@pytest.mark.parametrize("field", ["MessageSid", "From", "To"])
def test_an_inbound_stop_with_a_nul_in_any_field_still_opts_out(world, client, field):
    tenant = world.tenant(sms_from=SHOP_NUMBER)
    params = inbound("STOP")
    params[field] = params[field][:4] + "\x00" + params[field][4:]
    response = post_signed(client, INBOUND, params)
    assert response.status_code == 200
    with world.runtime.factory() as session:
        assert is_suppressed(session, tenant.id, "sms", PHONE) == ["opt_out"]
        [kept] = session.scalars(select(InboundMessage))
        assert "\x00" not in (kept.provider_id + kept.from_address + kept.to_address)


@pytest.mark.parametrize("field", ["MessageSid", "MessageStatus", "ErrorCode", "To", "From", "AccountSid"])
def test_a_status_callback_with_a_nul_in_any_field_is_stored_without_it(world, client, clock, field):
    message = send_one(world, clock)
    params = callback(message.provider_id, "undelivered", code=21610)
    params[field] = params[field][:3] + "\x00" + params[field][3:]
    if field == "MessageSid":
        params["SmsSid"] = params[field]
    response = post_signed(client, STATUS, params)
    assert response.status_code == 200
    [event] = events_of(world)
    assert "\x00" not in event.provider_event_id + event.type + json.dumps(event.detail)


@pytest.mark.parametrize("field, value", [("MessageSid", "SM" + "d" * 300), ("From", "+1" + "2" * 400)])
def test_an_inbound_sms_with_a_field_longer_than_any_twilio_sends_gets_400_not_a_500(world, client, field, value):
    world.tenant(sms_from=SHOP_NUMBER)
    params = inbound("hello")
    params[field] = value
    response = post_signed(client, INBOUND, params)
    assert response.status_code == 400 and field in response.json()["detail"]


@pytest.mark.parametrize("field, value", [("MessageSid", "SM" + "d" * 300), ("MessageStatus", "x" * 300)])
def test_a_status_callback_with_a_field_longer_than_any_twilio_sends_gets_400_not_a_500(world, client, field, value):
    world.tenant(sms_from=SHOP_NUMBER)
    params = callback("SM" + "e" * 32, "sent")
    params[field] = value
    response = post_signed(client, STATUS, params)
    assert response.status_code == 400 and field in response.json()["detail"]
