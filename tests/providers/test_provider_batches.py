"""Sending a batch: a bounded pool of concurrent requests over kept-alive connections, SendGrid batches of
personalizations, faults during a batch, and the fake provider checking batched requests as SendGrid does."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests

from outbound.bootstrap import build
from outbound.config import Settings
from outbound.providers import (
    Outbox,
    OutgoingMessage,
    PermanentProviderError,
    SendGridEmail,
    SendResult,
    TransientProviderError,
    TwilioSms,
    send_all,
)
from outbound.providers.sendgrid_email import MAX_SUBSTITUTION_BYTES, TEXT_TAG
from outbound.testing import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SENDGRID_API_KEY,
    FakeProviderProcess,
    FakeProviderServer,
)

from helpers.definitions import write_definitions

FROM_NUMBER = "+15005550006"
UNSUBSCRIBE = "List-Unsubscribe"


@pytest.fixture
def server():
    with FakeProviderServer() as server:
        yield server


def twilio(server, concurrency=4):
    return TwilioSms(
        DEFAULT_ACCOUNT_SID,
        DEFAULT_AUTH_TOKEN,
        from_number=FROM_NUMBER,
        api_base=server.url,
        timeout=3,
        concurrency=concurrency,
    )


def sendgrid(server, concurrency=1):
    return SendGridEmail(
        DEFAULT_SENDGRID_API_KEY,
        "shop@example.com",
        from_name="Shop",
        api_base=server.url,
        timeout=3,
        concurrency=concurrency,
    )


def sms(n: int) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=n,
        tenant="shop-us",
        channel="sms",
        to=f"+1415555{n:04d}",
        sender=None,
        subject=None,
        body=f"Your parcel {n} is late.",
    )


def email(n: int, to: str | None = None, **fields) -> OutgoingMessage:
    values = {
        "message_id": n,
        "tenant": "shop-us",
        "channel": "email",
        "to": to or f"person{n}@example.com",
        "sender": None,
        "subject": f"Cart {n} is waiting",
        "body": f"Hello {n}, your cart is waiting.",
        "html": f"<p>Hello {n}</p>",
        "headers": {UNSUBSCRIBE: f"<https://ob.example/u/tok{n}>"},
    }
    return OutgoingMessage(**{**values, **fields})


def sendgrid_attempts(server):
    return [a for a in server.attempts if a["service"] == "sendgrid"]


# -- a bounded pool over kept-alive connections ----------------------------------------


def test_twilio_sends_a_batch_concurrently_but_never_more_than_its_pool(server):
    server.fail_next("twilio", delay=0.2, times=12)  # slow answers, still accepted

    results = twilio(server, concurrency=4).send_many([sms(n) for n in range(12)])

    assert all(isinstance(r, SendResult) for r in results)
    assert server.peak_in_flight == 4
    assert sorted(r["to"] for r in server.accepted("twilio")) == sorted(sms(n).to for n in range(12))


def test_a_pool_of_one_sends_one_request_at_a_time(server):
    server.fail_next("twilio", delay=0.05, times=5)

    twilio(server, concurrency=1).send_many([sms(n) for n in range(5)])

    assert server.peak_in_flight == 1 and len(server.accepted("twilio")) == 5


def test_results_come_back_in_the_order_of_the_batch(server):
    provider = twilio(server, concurrency=4)

    results = provider.send_many([sms(n) for n in range(20)])

    by_sid = {r["provider_id"]: r["to"] for r in server.accepted("twilio")}
    assert [by_sid[r.provider_id] for r in results] == [sms(n).to for n in range(20)]


def test_twilio_reuses_its_connections_across_requests_and_batches(server):
    provider = twilio(server, concurrency=4)

    provider.send_many([sms(n) for n in range(40)])
    provider.send_many([sms(n) for n in range(40, 80)])

    assert len(server.accepted("twilio")) == 80
    assert 1 <= server.connections <= 4


def test_sendgrid_reuses_one_connection_for_requests_one_after_another(server):
    provider = sendgrid(server)

    for n in range(5):
        provider.send(email(n))

    assert len(server.accepted("sendgrid")) == 5 and server.connections == 1


def test_a_provider_error_in_a_concurrent_batch_is_that_messages_alone(server):
    server.twilio_error_for(sms(3).to, code=21610)

    results = twilio(server).send_many([sms(n) for n in range(8)])

    assert isinstance(results[3], PermanentProviderError) and results[3].code == "21610"
    assert all(isinstance(r, SendResult) for i, r in enumerate(results) if i != 3)


# -- SendGrid batches of personalizations ----------------------------------------------------


def test_sendgrid_sends_a_batch_in_one_request_each_personalization_its_own_message(server):
    batch = [email(n) for n in range(5)]

    results = sendgrid(server).send_many(batch)

    [attempt] = sendgrid_attempts(server)
    assert attempt["messages"] == 5
    seen = {r["to"]: r for r in server.accepted("sendgrid")}
    for message in batch:
        record = seen[message.to]
        assert (record["subject"], record["body"], record["html"]) == (message.subject, message.body, message.html)
        assert record["headers"] == message.headers
        assert record["custom_args"] == {"message_id": str(message.message_id), "tenant": "shop-us"}
        assert (record["sender"], record["sender_name"]) == ("shop@example.com", "Shop")
    assert {r.provider_id for r in results} == {attempt_id(server)}


def attempt_id(server) -> str:
    [provider_id] = {r["provider_id"] for r in server.accepted("sendgrid")}
    return provider_id


def test_sendgrid_batches_put_no_personal_data_in_custom_args_or_outside_the_personalizations(server):
    sendgrid(server).send_many([email(n, to=f"lee.minji{n}@example.com") for n in range(3)])

    [attempt] = sendgrid_attempts(server)
    payload = attempt["fields"]
    assert "lee.minji" not in json.dumps({k: v for k, v in payload.items() if k != "personalizations"})
    assert all(set(p["custom_args"]) == {"message_id", "tenant"} for p in payload["personalizations"])


def test_sendgrid_never_puts_one_address_twice_in_a_request(server):
    batch = [email(1, to="kim@example.com"), email(2, to="KIM@example.com"), email(3)]

    results = sendgrid(server).send_many(batch)

    assert all(isinstance(r, SendResult) for r in results)
    assert sorted(a["messages"] for a in sendgrid_attempts(server)) == [1, 2]
    assert sorted(r["body"] for r in server.accepted("sendgrid")) == sorted(m.body for m in batch)


def test_sendgrid_splits_more_than_1000_messages_into_requests_of_at_most_1000(server):
    results = sendgrid(server).send_many([email(n) for n in range(1500)])

    assert sorted(a["messages"] for a in sendgrid_attempts(server)) == [500, 1000]
    assert len(server.accepted("sendgrid")) == 1500 and all(isinstance(r, SendResult) for r in results)


def test_sendgrid_spreads_a_batch_over_its_pool(server):
    sendgrid(server, concurrency=4).send_many([email(n) for n in range(100)])

    assert sorted(a["messages"] for a in sendgrid_attempts(server)) == [25, 25, 25, 25]


def test_sendgrid_batches_senders_and_content_kinds_apart(server):
    batch = [email(1), email(2, sender="news@brand.example", sender_name="Brand"), email(3, html=None), email(4)]

    sendgrid(server).send_many(batch)

    seen = {r["to"]: r for r in server.accepted("sendgrid")}
    assert sorted(a["messages"] for a in sendgrid_attempts(server)) == [1, 1, 2]
    assert (seen[batch[1].to]["sender"], seen[batch[1].to]["sender_name"]) == ("news@brand.example", "Brand")
    assert seen[batch[2].to]["html"] is None and seen[batch[2].to]["body"] == batch[2].body


def test_a_text_too_long_for_a_substitution_or_holding_the_tag_is_sent_alone_unchanged(server):
    long = email(1, body="x" * (MAX_SUBSTITUTION_BYTES + 1), html=None)
    tagged = email(2, body=f"Literally {TEXT_TAG} here")
    batch = [long, tagged, email(3), email(4)]

    results = sendgrid(server).send_many(batch)

    assert all(isinstance(r, SendResult) for r in results)
    assert sorted(a["messages"] for a in sendgrid_attempts(server)) == [1, 1, 2]
    seen = {r["to"]: r for r in server.accepted("sendgrid")}
    assert seen[long.to]["body"] == long.body and seen[tagged.to]["body"] == tagged.body


def test_a_message_sendgrid_would_refuse_fails_alone_without_holding_back_the_batch(server):
    batch = [email(1), email(2, subject=None), email(3, channel="sms", to="+14155550100")]

    results = sendgrid(server).send_many(batch)

    assert isinstance(results[0], SendResult)
    assert isinstance(results[1], PermanentProviderError) and results[1].http_status == 400
    assert isinstance(results[2], PermanentProviderError) and results[2].code == "wrong_channel"
    assert [r["to"] for r in server.accepted("sendgrid")] == [batch[0].to]


# -- faults during a batch ------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_transient_error_for_a_batch_request_is_every_messages_error(server, status):
    server.fail_next("sendgrid", status=status, retry_after=30)

    results = sendgrid(server).send_many([email(n) for n in range(6)])

    assert all(isinstance(r, TransientProviderError) and r.http_status == status for r in results)
    assert all(r.retry_after == 30.0 for r in results)
    assert len(sendgrid_attempts(server)) == 1 and server.accepted("sendgrid") == []


def test_a_dropped_batch_request_leaves_every_message_possibly_delivered_and_is_not_sent_again(server):
    server.fail_next("sendgrid", drop=True)

    results = sendgrid(server).send_many([email(n) for n in range(6)])

    assert all(isinstance(r, TransientProviderError) and r.ambiguous for r in results)
    assert len(sendgrid_attempts(server)) == 1


def test_a_batch_timing_out_leaves_every_message_possibly_delivered(server):
    server.fail_next("sendgrid", delay=5)
    provider = SendGridEmail(
        DEFAULT_SENDGRID_API_KEY, "shop@example.com", api_base=server.url, timeout=0.5, concurrency=1
    )

    results = provider.send_many([email(n) for n in range(4)])

    assert all(isinstance(r, TransientProviderError) and r.ambiguous for r in results)
    assert len(sendgrid_attempts(server)) == 1


def test_an_auth_failure_for_a_batch_fails_every_message_in_one_request(server):
    provider = SendGridEmail("SG.wrong", "shop@example.com", api_base=server.url, concurrency=1)

    results = provider.send_many([email(n) for n in range(4)])

    assert all(isinstance(r, PermanentProviderError) and r.http_status == 401 for r in results)
    assert len(sendgrid_attempts(server)) == 1


def test_a_batch_refused_for_one_address_fails_only_that_message(server):
    server.sendgrid_error_for("person5@example.com", status=400, message="The to email is not valid")
    batch = [email(n) for n in range(8)]

    results = sendgrid(server).send_many(batch)

    assert isinstance(results[5], PermanentProviderError) and results[5].http_status == 400
    assert "person5@example.com" not in str(results[5])
    assert all(isinstance(r, SendResult) for i, r in enumerate(results) if i != 5)
    assert sorted(r["to"] for r in server.accepted("sendgrid")) == sorted(m.to for i, m in enumerate(batch) if i != 5)


# -- send_all across providers ------------------------------------------------------------------


def test_send_all_hands_each_provider_its_share_and_keeps_the_batchs_order(server):
    providers = {"sms": twilio(server), "email": sendgrid(server)}
    outgoing = [(100 + n, sms(n) if n % 2 else email(n)) for n in range(10)]

    results = send_all(providers, outgoing)

    assert [message_id for message_id, _ in results] == [100 + n for n in range(10)]
    assert [r.provider for _, r in results] == ["sendgrid" if n % 2 == 0 else "twilio" for n in range(10)]
    assert [a["messages"] for a in sendgrid_attempts(server)] == [5]


def test_send_all_sends_one_by_one_to_a_provider_without_send_many():
    outbox = Outbox()

    results = send_all({"sms": outbox, "email": outbox}, [(1, sms(1)), (2, email(2)), (3, sms(3))])

    assert [(i, r.provider_id) for i, r in results] == [(1, "outbox-1"), (2, "outbox-2"), (3, "outbox-3")]


# -- the fake checks batched requests as SendGrid does ---------------------------------------------


def post_mail(server, payload, key=DEFAULT_SENDGRID_API_KEY):
    return requests.post(
        f"{server.url}/v3/mail/send", json=payload, headers={"Authorization": f"Bearer {key}"}, timeout=5
    )


def personalization(n, **more):
    return {"to": [{"email": f"p{n}@example.com"}], "subject": f"s{n}", **more}


def mail(personalizations):
    return {
        "from": {"email": "shop@example.com"},
        "content": [{"type": "text/plain", "value": "-text-"}],
        "personalizations": personalizations,
    }


def test_the_fake_refuses_more_than_1000_personalizations(server):
    response = post_mail(server, mail([personalization(n) for n in range(1001)]))

    assert response.status_code == 400 and "1000 personalizations" in response.text
    assert server.accepted() == []


def test_the_fake_refuses_an_address_twice_in_one_request(server):
    response = post_mail(server, mail([personalization(1), personalization(1)]))

    assert response.status_code == 400 and "only be included once" in response.text


def test_the_fake_refuses_substitutions_over_their_limit_or_not_strings(server):
    too_big = post_mail(server, mail([personalization(1, substitutions={"-text-": "x" * MAX_SUBSTITUTION_BYTES})]))
    not_text = post_mail(server, mail([personalization(1, substitutions={"-text-": 5})]))

    assert too_big.status_code == 400 and "substitutions" in too_big.text
    assert not_text.status_code == 400 and "substitutions" in not_text.text


def test_the_fake_refuses_a_batch_without_the_right_key(server):
    response = post_mail(server, mail([personalization(1), personalization(2)]), key="SG.wrong")

    assert response.status_code == 401 and server.accepted() == []


def test_the_fake_records_each_personalization_with_its_substitutions_made_once(server):
    payload = mail(
        [
            personalization(1, substitutions={"-text-": "one -text-"}),
            personalization(2, substitutions={"-text-": "two"}, custom_args={"message_id": "2"}),
        ]
    )

    response = post_mail(server, payload)

    first, second = server.accepted("sendgrid")
    assert response.status_code == 202 and first["provider_id"] == second["provider_id"]
    assert (first["to"], first["subject"], first["body"]) == ("p1@example.com", "s1", "one -text-")
    assert (second["to"], second["body"], second["custom_args"]) == ("p2@example.com", "two", {"message_id": "2"})
    assert [a["messages"] for a in server.attempts] == [2]


# -- through the engine: each message reconciled, sent at most once ---------------------------------


@pytest.fixture
def world(db_url, tmp_path, clock, server):
    from conftest import World

    providers = {"sms": twilio(server), "email": sendgrid(server)}
    settings = Settings(
        database_url=db_url, definitions=write_definitions(tmp_path / "defs"), base_url="https://ob.example"
    )
    runtime = build(settings, clock=clock, providers=providers)
    yield World(runtime, clock)
    runtime.close()


def abandon_carts(world, count):
    tenant = world.tenant()
    for n in range(count):
        world.contact(tenant, f"c{n}", email=f"buyer{n}@example.com", consents=[("email", "marketing")])
        world.event(tenant, "cart_abandoned", f"c{n}", {"cart_id": f"k{n}", "value": 150})
    return tenant


def test_dispatch_sends_a_batch_of_emails_in_one_request_and_records_each_message(world, clock, server):
    abandon_carts(world, 6)

    world.run(clock.now() + timedelta(hours=2))

    messages = [m for m in world.messages() if m.channel == "email"]
    assert len(messages) == 6 and {m.status for m in messages} == {"sent"}
    assert [a["messages"] for a in sendgrid_attempts(server)] == [6]
    by_id = {int(r["custom_args"]["message_id"]): r for r in server.accepted("sendgrid")}
    for message in messages:
        record = by_id[message.id]
        assert (record["to"], record["subject"], record["body"]) == (message.to_address, message.subject, message.body)
        assert message.provider_id == record["provider_id"]
        assert record["headers"][UNSUBSCRIBE].startswith("<https://ob.example/u/")
    assert len({r["headers"][UNSUBSCRIBE] for r in by_id.values()}) == 6


def test_dispatch_never_resends_a_batch_whose_request_was_dropped(world, clock, server):
    abandon_carts(world, 6)
    server.fail_next("sendgrid", drop=True)

    world.run(clock.now() + timedelta(hours=2))
    world.run(clock.now() + timedelta(days=2))

    messages = [m for m in world.messages() if m.channel == "email"]
    assert len(messages) == 6 and {m.status for m in messages} == {"unknown"}
    assert len(sendgrid_attempts(server)) == 1 and server.accepted("sendgrid") == []


def test_dispatch_retries_every_message_of_a_rate_limited_batch_once_later(world, clock, server):
    abandon_carts(world, 6)
    server.fail_next("sendgrid", status=429, retry_after=600)
    clock.advance(timedelta(hours=2))

    world.run(clock.now())
    waiting = [m for m in world.messages() if m.channel == "email"]
    world.run(clock.now() + timedelta(hours=1))

    assert {(m.status, m.rule) for m in waiting} == {("scheduled", "provider_retry")}
    assert {m.status for m in world.messages() if m.channel == "email"} == {"sent"}
    assert sorted(r["to"] for r in server.accepted("sendgrid")) == sorted(f"buyer{n}@example.com" for n in range(6))


# -- the environment, read once per sending thread ---------------------------------------------------


@pytest.mark.parametrize("service", ["twilio", "sendgrid"])
def test_a_proxy_set_in_the_environment_is_still_used(server, monkeypatch, service):
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.url)
    unreachable = "http://provider.invalid"
    if service == "twilio":
        provider = TwilioSms(
            DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number=FROM_NUMBER, api_base=unreachable, timeout=3
        )
        provider.send_many([sms(1), sms(2)])
    else:
        provider = SendGridEmail(DEFAULT_SENDGRID_API_KEY, "shop@example.com", api_base=unreachable, timeout=3)
        provider.send_many([email(1), email(2)])

    assert len(server.accepted(service)) == 2


# -- the fake in a process of its own, and slow like a distant provider ------------------------------------


def test_the_fake_in_its_own_process_counts_what_it_accepted_and_forgets_on_reset():
    with FakeProviderProcess() as fake:
        twilio_at(fake.url).send(sms(1))
        sendgrid_at(fake.url).send_many([email(1), email(2)])

        counts = (fake.accepted_count("twilio"), fake.accepted_count("sendgrid"), fake.accepted_count())
        fake.reset()

        assert counts == (1, 2, 3) and fake.accepted_count() == 0


def test_a_latency_longer_than_the_clients_timeout_leaves_the_message_possibly_delivered():
    with FakeProviderServer(latency=1.0) as server:
        provider = TwilioSms(
            DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number=FROM_NUMBER, api_base=server.url, timeout=0.2
        )

        [result] = provider.send_many([sms(1)])

        assert isinstance(result, TransientProviderError) and result.ambiguous


def twilio_at(url):
    return TwilioSms(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number=FROM_NUMBER, api_base=url, timeout=3)


def sendgrid_at(url):
    return SendGridEmail(DEFAULT_SENDGRID_API_KEY, "shop@example.com", api_base=url, timeout=3)
