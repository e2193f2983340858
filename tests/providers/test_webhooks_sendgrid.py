"""SendGrid's signed event webhook through the real app: a P-256 key pair made here, signatures checked
with the sendgrid SDK's EventWebhook, events built from what the fake SendGrid really received."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sqlalchemy import select

from outbound.bootstrap import build
from outbound.config import Settings
from outbound.db.models import DeliveryEvent, Message
from outbound.db.session import transaction
from outbound.db.suppressions import is_suppressed, suppress
from outbound.providers import SendGridEmail
from outbound.testing import DEFAULT_SENDGRID_API_KEY, FakeProviderServer
from outbound.web.app import create_app

from helpers.definitions import write_definitions

PATH = "/webhooks/sendgrid/events"
EMAIL = "a@example.com"


class Signer:
    """An ECDSA P-256 key pair, as SendGrid holds for a signed event webhook."""

    def __init__(self):
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()  # what SendGrid's settings page shows

    def headers(self, body: str, timestamp: int) -> dict[str, str]:
        signature = base64.b64encode(
            self.private.sign(f"{timestamp}{body}".encode(), ec.ECDSA(hashes.SHA256()))
        ).decode()
        # The SDK's own verifier agrees before the app sees it.
        assert EventWebhook(self.public_key).verify_signature(body, signature, str(timestamp))
        return {EventWebhookHeader.SIGNATURE: signature, EventWebhookHeader.TIMESTAMP: str(timestamp)}


@pytest.fixture(scope="module")
def signer():
    return Signer()


@pytest.fixture
def fake():
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def world(db_url, tmp_path, clock, fake, signer):
    from conftest import World

    email = SendGridEmail(DEFAULT_SENDGRID_API_KEY, "hello@shop.example", api_base=fake.url, timeout=1)
    settings = Settings(
        database_url=db_url,
        definitions=write_definitions(tmp_path / "defs"),
        base_url="https://ob.example",
        sendgrid_webhook_public_key=signer.public_key,
    )
    runtime = build(settings, clock=clock, providers={"sms": email, "email": email})
    yield World(runtime, clock)
    runtime.close()


@pytest.fixture
def client(world, clock):
    runtime = world.runtime
    with TestClient(create_app(runtime, on_event=None)) as client:
        yield client


def post(client, signer, events, clock, *, age=timedelta(0)):
    body = json.dumps(events)
    timestamp = int((clock.now() - age).timestamp())
    return client.post(
        PATH, content=body, headers={"Content-Type": "application/json", **signer.headers(body, timestamp)}
    )


def send_one(world, clock, fake, tenant=None, email=EMAIL):
    """One marketing email sent through the SDK; returns (message, the fake's record of it)."""
    tenant = tenant or world.tenant()
    world.contact(tenant, f"c-{email}", email=email, consents=[("email", "marketing")])
    world.event(tenant, "cart_abandoned", f"c-{email}", {"cart_id": email, "value": 150})
    world.run(clock.now() + timedelta(hours=2))
    [message] = [m for m in world.messages() if m.to_address == email]
    [request] = [r for r in fake.accepted("sendgrid") if r["to"] == email]
    assert message.status == "sent"
    return message, request


def event(request, name, clock, n=1, **extra):
    """A SendGrid event as the webhook posts it: our custom_args come back at the top level."""
    return {
        "email": request["to"],
        "timestamp": int(clock.now().timestamp()),
        "event": name,
        "sg_event_id": f"{name}-{request['provider_id']}-{n}",
        "sg_message_id": f"{request['provider_id']}.filter0001.1.0",
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "category": ["cart"],
        **request["custom_args"],
        **extra,
    }


def stored(world):
    with world.runtime.factory() as session:
        return list(session.scalars(select(DeliveryEvent).order_by(DeliveryEvent.id)))


def suppressions(world, tenant_id, email=EMAIL):
    with world.runtime.factory() as session:
        return is_suppressed(session, tenant_id, "email", email)


def test_a_signed_delivered_event_marks_the_email_delivered(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    response = post(client, signer, [event(request, "processed", clock), event(request, "delivered", clock)], clock)
    assert response.status_code == 200 and response.json()["stored"] == 2
    [message] = world.messages(id=message.id)
    assert message.status == "delivered" and message.delivered_at == clock.now()
    assert [(e.provider, e.type, e.message_id) for e in stored(world)] == [
        ("sendgrid", "processed", message.id),
        ("sendgrid", "delivered", message.id),
    ]


def test_a_tampered_body_is_refused_with_403_and_changes_nothing(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    body = json.dumps([event(request, "delivered", clock)])
    headers = signer.headers(body, int(clock.now().timestamp()))
    response = client.post(PATH, content=body.replace("delivered", "bounce"), headers=headers)
    assert response.status_code == 403
    assert world.messages(id=message.id)[0].status == "sent" and stored(world) == []


@pytest.mark.parametrize("missing", [EventWebhookHeader.SIGNATURE, EventWebhookHeader.TIMESTAMP])
def test_a_request_without_the_signature_headers_gets_401(world, client, clock, fake, signer, missing):
    _, request = send_one(world, clock, fake)
    body = json.dumps([event(request, "delivered", clock)])
    headers = signer.headers(body, int(clock.now().timestamp()))
    del headers[missing]
    assert client.post(PATH, content=body, headers=headers).status_code == 401


@pytest.mark.parametrize("age", [timedelta(minutes=11), timedelta(minutes=-30)])
def test_a_stale_or_far_future_timestamp_is_refused_with_403(world, client, clock, fake, signer, age):
    message, request = send_one(world, clock, fake)
    assert post(client, signer, [event(request, "delivered", clock)], clock, age=age).status_code == 403
    assert world.messages(id=message.id)[0].status == "sent"


def test_a_timestamp_a_few_minutes_old_is_accepted(world, client, clock, fake, signer):
    _, request = send_one(world, clock, fake)
    assert (
        post(client, signer, [event(request, "delivered", clock)], clock, age=timedelta(minutes=9)).status_code == 200
    )


def test_a_signature_made_with_another_key_is_refused_with_403(world, client, clock, fake):
    _, request = send_one(world, clock, fake)
    assert post(client, Signer(), [event(request, "delivered", clock)], clock).status_code == 403


def test_a_tenant_key_verifies_that_tenants_events_and_no_other_tenants(world, client, clock, fake, signer):
    own = Signer()
    mine = world.tenant("shop-mine", sendgrid_webhook_public_key=own.public_key)
    theirs = world.tenant("shop-theirs")
    my_message, my_request = send_one(world, clock, fake, tenant=mine, email="me@example.com")
    their_message, their_request = send_one(world, clock, fake, tenant=theirs, email="them@example.com")
    response = post(
        client, own, [event(my_request, "delivered", clock), event(their_request, "delivered", clock)], clock
    )
    assert response.status_code == 200 and [e["index"] for e in response.json()["errors"]] == [1]
    assert world.messages(id=my_message.id)[0].status == "delivered"
    assert world.messages(id=their_message.id)[0].status == "sent"


def test_each_event_is_stored_once_under_its_sendgrid_name(world, client, clock, fake, signer):
    _, request = send_one(world, clock, fake)
    names = [
        "processed",
        "delivered",
        "deferred",
        "bounce",
        "dropped",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
        "group_resubscribe",
        "open",
        "click",
    ]
    events = [event(request, name, clock) for name in names]
    first, again = post(client, signer, events, clock), post(client, signer, events, clock)
    assert (first.json()["stored"], again.json()["stored"], again.json()["duplicates"]) == (11, 0, 11)
    assert [e.type for e in stored(world)] == names
    assert {e.provider_event_id for e in stored(world)} == {e["sg_event_id"] for e in events}


def test_a_hard_bounce_suppresses_the_address_and_ends_undelivered(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    post(
        client,
        signer,
        [event(request, "bounce", clock, type="bounce", reason="550 5.1.1 a@example.com unknown")],
        clock,
    )
    [message] = world.messages(id=message.id)
    assert message.status == "undelivered"
    assert suppressions(world, message.tenant_id) == ["hard_bounce"]
    assert "a@example.com" not in json.dumps(stored(world)[0].detail)


def test_a_blocked_bounce_ends_undelivered_without_suppressing(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    post(client, signer, [event(request, "bounce", clock, type="blocked", reason="550 blocked by policy")], clock)
    assert world.messages(id=message.id)[0].status == "undelivered"
    assert suppressions(world, message.tenant_id) == []


def test_a_dropped_email_ends_failed(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    post(client, signer, [event(request, "dropped", clock, reason="Invalid SMTPAPI header")], clock)
    assert world.messages(id=message.id)[0].status == "failed"


def test_deferred_keeps_the_message_sent(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    post(client, signer, [event(request, "deferred", clock, response="400 try again later", attempt="1")], clock)
    assert world.messages(id=message.id)[0].status == "sent"


@pytest.mark.parametrize(
    "name, reason",
    [("spamreport", "spam_report"), ("unsubscribe", "unsubscribe"), ("group_unsubscribe", "group_unsubscribe")],
)
def test_complaints_and_unsubscribes_suppress_the_email_address(world, client, clock, fake, signer, name, reason):
    message, request = send_one(world, clock, fake)
    post(client, signer, [event(request, name, clock, asm_group_id=7)], clock)
    assert suppressions(world, message.tenant_id) == [reason]
    assert world.messages(id=message.id)[0].status == "delivered"


def test_group_resubscribe_lifts_a_group_unsubscribe_and_nothing_else(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    post(client, signer, [event(request, "group_unsubscribe", clock, asm_group_id=7)], clock)
    post(client, signer, [event(request, "group_resubscribe", clock, asm_group_id=7)], clock)
    assert suppressions(world, message.tenant_id) == []
    with world.runtime.factory() as session:
        suppress(session, message.tenant_id, "email", EMAIL, reason="hard_bounce", source="test", at=clock.now())
        session.commit()
    post(client, signer, [event(request, "group_resubscribe", clock, n=2, asm_group_id=7)], clock)
    assert suppressions(world, message.tenant_id) == ["hard_bounce"]


def test_an_event_for_an_unknown_message_is_answered_200_and_kept_unattached(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    unknown = event(request, "spamreport", clock, message_id="999999")
    response = post(client, signer, [unknown], clock)
    assert response.status_code == 200 and response.json()["stored"] == 1
    [kept] = stored(world)
    assert kept.message_id is None and kept.tenant_id == message.tenant_id
    assert suppressions(world, message.tenant_id) == ["spam_report"]


def test_bad_events_are_listed_and_the_good_ones_of_the_batch_are_still_applied(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    good = event(request, "delivered", clock)
    response = post(client, signer, [{"event": "open"}, "not an object", {"sg_event_id": "x"}, good], clock)
    assert response.status_code == 200
    assert [(e["index"], e["message"]) for e in response.json()["errors"]] == [
        (0, "sg_event_id is required"),
        (1, "an event must be a JSON object"),
        (2, "event is required"),
    ]
    assert world.messages(id=message.id)[0].status == "delivered"


@pytest.mark.parametrize("body", ["{not json", '{"event": "delivered"}', '[{"event": "open"}]', '"text"'])
def test_a_signed_body_that_is_not_a_list_of_events_gets_400(world, client, clock, signer, body):
    response = client.post(PATH, content=body, headers=signer.headers(body, int(clock.now().timestamp())))
    assert response.status_code == 400


def test_without_our_message_id_an_event_finds_its_message_by_request_id_and_recipient(
    world, client, clock, fake, signer
):
    tenant = world.tenant()
    for email in ("ann@example.com", "bob@example.com"):
        world.contact(tenant, f"c-{email}", email=email, consents=[("email", "marketing")])
        world.event(tenant, "cart_abandoned", f"c-{email}", {"cart_id": email, "value": 150})
    world.run(clock.now() + timedelta(hours=2))
    sent = {m.to_address: m for m in world.messages()}
    assert set(sent) == {"ann@example.com", "bob@example.com"}
    with transaction(world.runtime.factory) as session:  # as if both went out in one request
        for message in session.scalars(select(Message)):
            message.provider_id = "shared-request-id"
    bare = {
        "email": "Bob@Example.com",
        "timestamp": int(clock.now().timestamp()),
        "event": "delivered",
        "sg_event_id": "delivered-bare-1",
        "sg_message_id": "shared-request-id.filter0001.1.0",
    }
    assert post(client, signer, [bare], clock).status_code == 200
    statuses = {m.to_address: m.status for m in world.messages()}
    assert statuses == {"ann@example.com": "sent", "bob@example.com": "delivered"}


def test_an_event_applied_while_the_batch_is_with_the_provider_is_kept_when_the_answers_are_recorded(
    db_url, tmp_path, clock, fake, signer
):
    """SendGrid's event names our message, so it moves the `sending` row at once; the worker then
    records the answers of the whole batch, and must keep what the event did to that one message."""
    from conftest import World

    posted = []

    class EventFirst(SendGridEmail):
        """The real SDK provider; SendGrid reports the first email delivered before `send_many` returns."""

        def send_many(self, messages):
            results = super().send_many(messages)
            request = next(r for r in fake.accepted("sendgrid") if r["to"] == "first@example.com")
            posted.append(post(self.client, signer, [event(request, "delivered", clock)], clock).status_code)
            return results

    email = EventFirst(DEFAULT_SENDGRID_API_KEY, "hello@shop.example", api_base=fake.url, timeout=1)
    settings = Settings(
        database_url=db_url,
        definitions=write_definitions(tmp_path / "defs"),
        base_url="https://ob.example",
        sendgrid_webhook_public_key=signer.public_key,
    )
    runtime = build(settings, clock=clock, providers={"sms": email, "email": email})
    world = World(runtime, clock)
    with TestClient(create_app(dataclasses.replace(runtime, settings=settings), on_event=None)) as client:
        email.client = client
        tenant = world.tenant()
        for address in ("first@example.com", "second@example.com"):
            world.contact(tenant, address, email=address, consents=[("email", "marketing")])
            world.event(tenant, "cart_abandoned", address, {"cart_id": address, "value": 150})
        world.run(clock.now() + timedelta(hours=2))
    assert posted == [200]
    by_address = {m.to_address: m for m in world.messages()}
    first, second = by_address["first@example.com"], by_address["second@example.com"]
    assert first.status == "delivered" and first.provider_id and first.sent_at is not None
    assert [step for step, _ in world.trail(first.id)] == ["scheduled", "sending", "delivered"]
    assert second.status == "sent"
    assert [step for step, _ in world.trail(second.id)] == ["scheduled", "sending", "sent"]
    runtime.close()


# -- signed events SendGrid may really send, and numbers and text the database cannot hold ---------------


@pytest.mark.parametrize("message_id", [2**63, 2**64 + 5, -(2**63) - 1, "9" * 40, 1e300, True])
def test_an_event_whose_message_id_is_beyond_64_bits_finds_its_message_another_way(
    world, client, clock, fake, signer, message_id
):
    message, request = send_one(world, clock, fake)
    response = post(client, signer, [event(request, "delivered", clock, message_id=message_id)], clock)
    assert response.status_code == 200 and response.json()["stored"] == 1
    # Not a message id of ours: the request id and the recipient still find it.
    assert world.messages(id=message.id)[0].status == "delivered"


def test_an_event_whose_numbers_are_infinite_or_not_a_number_is_stored_not_a_500(world, client, clock, fake, signer):
    message, request = send_one(world, clock, fake)
    events = [
        event(request, "delivered", clock, message_id=float("inf")),
        event(request, "open", clock, timestamp=float("-inf")),
        event(request, "group_unsubscribe", clock, asm_group_id=float("nan")),
        event(request, "click", clock, asm_group_id=2**80, timestamp=10**30),
    ]
    response = post(client, signer, events, clock)
    assert response.status_code == 200 and response.json()["stored"] == 4, response.json()
    assert world.messages(id=message.id)[0].status == "delivered"
    assert suppressions(world, message.tenant_id) == ["group_unsubscribe"]
    assert all(e.detail["asm_group_id"] is None for e in stored(world))


@pytest.mark.parametrize("bad", ["\x00", "\ud800"])
@pytest.mark.parametrize("field", ["email", "event", "sg_event_id", "sg_message_id", "reason", "type", "tenant"])
def test_an_event_with_a_nul_or_a_lone_surrogate_in_any_field_is_applied_without_it(
    world, client, clock, fake, signer, field, bad
):
    message, request = send_one(world, clock, fake)
    item = event(request, "bounce", clock, type="bounce", reason="550 5.1.1 unknown user")
    item[field] = item[field][:1] + bad + item[field][1:]
    response = post(client, signer, [item], clock)
    assert response.status_code == 200 and response.json()["stored"] == 1, response.json()
    [kept] = stored(world)
    text = kept.provider_event_id + kept.type + json.dumps(kept.detail, ensure_ascii=False)
    assert "\x00" not in text and "\ud800" not in text
    # The bounce still ends the message and suppresses the address.
    assert world.messages(id=message.id)[0].status == "undelivered"
    assert suppressions(world, message.tenant_id) == ["hard_bounce"]


def test_a_signed_body_nested_deeper_than_the_json_reader_goes_gets_400_not_a_500(world, client, clock, signer):
    body = "[" * 100_000 + "]" * 100_000
    response = client.post(PATH, content=body, headers=signer.headers(body, int(clock.now().timestamp())))
    assert response.status_code == 400
