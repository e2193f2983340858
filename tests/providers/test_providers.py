"""The real Twilio and SendGrid SDKs against the loopback fake, the outbox, and choosing providers from settings."""

from __future__ import annotations

import json
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest

from outbound.config import Settings
from outbound.errors import InvalidInput
from outbound.providers import (
    Outbox,
    OutgoingMessage,
    PermanentProviderError,
    SendGridEmail,
    TransientProviderError,
    TwilioSms,
    build_providers,
    parse_retry_after,
)
from outbound.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_SENDGRID_API_KEY, FakeProviderServer

FROM_NUMBER = "+15005550006"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://ob.example/u/tok123>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


@pytest.fixture
def server():
    with FakeProviderServer() as server:
        yield server


@pytest.fixture
def twilio(server):
    return TwilioSms(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number=FROM_NUMBER, api_base=server.url, timeout=1.5)


@pytest.fixture
def sendgrid(server):
    return SendGridEmail(
        DEFAULT_SENDGRID_API_KEY, "shop@example.com", from_name="Shop", api_base=server.url, timeout=1.5
    )


def sms(to="+14155550100", **fields):
    values = {
        "message_id": 7,
        "tenant": "shop-us",
        "channel": "sms",
        "to": to,
        "sender": None,
        "subject": None,
        "body": "Your parcel is late; new ETA Friday.",
    }
    return OutgoingMessage(**{**values, **fields})


def email(to="kim@example.com", **fields):
    values = {
        "message_id": 8,
        "tenant": "shop-us",
        "channel": "email",
        "to": to,
        "sender": None,
        "subject": "Still thinking it over?",
        "body": "Your cart is waiting.",
        "html": "<p>Your cart is waiting.</p>",
        "headers": UNSUBSCRIBE,
    }
    return OutgoingMessage(**{**values, **fields})


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- Twilio ---------------------------------------------------------------------


def test_twilio_sends_an_sms_and_returns_the_sid_the_provider_assigned(twilio, server):
    result = twilio.send(sms())

    [seen] = server.requests
    assert (result.provider, result.provider_id, result.status) == ("twilio", seen["provider_id"], "queued")
    assert (seen["to"], seen["sender"]) == ("+14155550100", FROM_NUMBER)
    assert seen["body"] == "Your parcel is late; new ETA Friday."


def test_twilio_sends_only_to_and_body_besides_the_sender_and_callback(server):
    provider = TwilioSms(
        DEFAULT_ACCOUNT_SID,
        DEFAULT_AUTH_TOKEN,
        from_number=FROM_NUMBER,
        api_base=server.url,
        status_callback="https://ob.example/webhooks/twilio/status",
    )

    provider.send(sms())

    assert server.requests[0]["fields"] == {
        "To": "+14155550100",
        "From": FROM_NUMBER,
        "Body": "Your parcel is late; new ETA Friday.",
        "StatusCallback": "https://ob.example/webhooks/twilio/status",
    }


def test_twilio_prefers_the_messages_own_sender_then_the_messaging_service(server):
    service = "MG" + "b" * 32
    provider = TwilioSms(
        DEFAULT_ACCOUNT_SID,
        DEFAULT_AUTH_TOKEN,
        from_number=FROM_NUMBER,
        messaging_service_sid=service,
        api_base=server.url,
    )

    own = provider.send(sms(sender="+15005550001"))
    pooled = provider.send(sms())

    first, second = server.requests
    assert (first["sender"], first["messaging_service_sid"], own.status) == ("+15005550001", None, "queued")
    assert (second["sender"], second["messaging_service_sid"], pooled.status) == (None, service, "accepted")


def test_twilio_without_any_sender_refuses_before_calling_the_provider(server):
    provider = TwilioSms(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, api_base=server.url)

    with pytest.raises(PermanentProviderError) as raised:
        provider.send(sms())

    assert raised.value.code == "no_sender" and server.attempts == []


def test_twilio_with_a_wrong_auth_token_fails_permanently(server):
    provider = TwilioSms(DEFAULT_ACCOUNT_SID, "wrong-token", from_number=FROM_NUMBER, api_base=server.url)

    with pytest.raises(PermanentProviderError) as raised:
        provider.send(sms())

    assert (raised.value.code, raised.value.http_status, raised.value.transient) == ("20003", 401, False)


def test_twilio_invalid_number_fails_permanently_with_21211_and_no_number_in_the_error(twilio):
    with pytest.raises(PermanentProviderError) as raised:
        twilio.send(sms(to="+1555"))

    assert raised.value.code == "21211" and not raised.value.transient
    assert "+1555" not in str(raised.value)


@pytest.mark.parametrize("code", [21610, 21211, 30006, 21614])
def test_twilio_unreachable_recipient_codes_fail_permanently_with_their_code(twilio, server, code):
    server.twilio_error_for("+15005550009", code=code)

    with pytest.raises(PermanentProviderError) as raised:
        twilio.send(sms(to="+15005550009"))

    assert raised.value.code == str(code) and raised.value.retry_after is None
    assert "+15005550009" not in str(raised.value)


@pytest.mark.parametrize("code", [30003, 30005])
def test_twilio_handset_unreachable_codes_are_transient_with_their_code(twilio, server, code):
    server.twilio_error_for("+15005550009", code=code)

    with pytest.raises(TransientProviderError) as raised:
        twilio.send(sms(to="+15005550009"))

    assert raised.value.code == str(code)


def test_twilio_other_client_errors_fail_permanently(twilio, server):
    server.fail_next("twilio", status=400, code=21408, message="Permission to send an SMS has not been enabled")

    with pytest.raises(PermanentProviderError) as raised:
        twilio.send(sms())

    assert raised.value.code == "21408"


def test_twilio_rate_limit_is_transient_and_carries_retry_after(twilio, server):
    server.fail_next("twilio", status=429, retry_after=7)

    with pytest.raises(TransientProviderError) as raised:
        twilio.send(sms())

    assert (raised.value.retry_after, raised.value.http_status, raised.value.ambiguous) == (7.0, 429, False)


def test_twilio_server_error_is_transient(twilio, server):
    server.fail_next("twilio", status=500)

    with pytest.raises(TransientProviderError) as raised:
        twilio.send(sms())

    assert raised.value.http_status == 500 and raised.value.retry_after is None


def test_twilio_dropped_connection_is_transient_possibly_delivered_and_sent_once(twilio, server):
    server.fail_next("twilio", drop=True)

    with pytest.raises(TransientProviderError) as raised:
        twilio.send(sms())

    assert raised.value.ambiguous
    assert len(server.attempts) == 1 and server.requests == []


def test_twilio_slow_answer_times_out_as_transient_and_possibly_delivered(twilio, server):
    server.fail_next("twilio", delay=5)

    with pytest.raises(TransientProviderError) as raised:
        twilio.send(sms())

    assert raised.value.ambiguous and len(server.attempts) == 1


def test_twilio_unreachable_host_is_transient_and_certainly_not_delivered():
    provider = TwilioSms(
        DEFAULT_ACCOUNT_SID,
        DEFAULT_AUTH_TOKEN,
        from_number=FROM_NUMBER,
        api_base=f"http://127.0.0.1:{unused_port()}",
        timeout=1.5,
    )

    with pytest.raises(TransientProviderError) as raised:
        provider.send(sms())

    assert not raised.value.ambiguous


def test_twilio_refuses_an_email_message(twilio, server):
    with pytest.raises(PermanentProviderError) as raised:
        twilio.send(email())

    assert raised.value.code == "wrong_channel" and server.attempts == []


# -- SendGrid -------------------------------------------------------------------


def test_sendgrid_sends_text_and_html_and_returns_the_x_message_id(sendgrid, server):
    result = sendgrid.send(email())

    [seen] = server.requests
    assert (result.provider, result.provider_id, result.status) == ("sendgrid", seen["provider_id"], "accepted")
    assert result.provider_id
    assert (seen["to"], seen["sender"], seen["sender_name"]) == ("kim@example.com", "shop@example.com", "Shop")
    assert (seen["subject"], seen["body"], seen["html"]) == (
        "Still thinking it over?",
        "Your cart is waiting.",
        "<p>Your cart is waiting.</p>",
    )


def test_sendgrid_passes_list_unsubscribe_headers_through(sendgrid, server):
    sendgrid.send(email())

    assert server.requests[0]["headers"] == UNSUBSCRIBE


def test_sendgrid_custom_args_carry_only_our_ids(sendgrid, server):
    sendgrid.send(email(to="lee.minji@example.com", message_id=1234, tenant="shop-kr"))

    payload = server.requests[0]["fields"]
    assert payload["custom_args"] == {"message_id": "1234", "tenant": "shop-kr"}
    assert "lee.minji" not in json.dumps({key: value for key, value in payload.items() if key != "personalizations"})
    assert "categories" not in payload


def test_sendgrid_uses_the_messages_own_sender_and_name(sendgrid, server):
    sendgrid.send(email(sender="news@brand.example", sender_name="Brand"))

    assert (server.requests[0]["sender"], server.requests[0]["sender_name"]) == ("news@brand.example", "Brand")


def test_sendgrid_plain_text_only_sends_one_content_block(sendgrid, server):
    sendgrid.send(email(html=None))

    assert server.requests[0]["fields"]["content"] == [{"type": "text/plain", "value": "Your cart is waiting."}]


def test_sendgrid_with_a_wrong_key_fails_permanently(server):
    provider = SendGridEmail("SG.wrong", "shop@example.com", api_base=server.url)

    with pytest.raises(PermanentProviderError) as raised:
        provider.send(email())

    assert raised.value.http_status == 401


def test_sendgrid_rejects_mail_without_a_subject_permanently(sendgrid, server):
    with pytest.raises(PermanentProviderError) as raised:
        sendgrid.send(email(subject=None))

    assert raised.value.http_status == 400 and "subject" in str(raised.value)
    assert server.requests == []


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_sendgrid_client_errors_are_permanent(sendgrid, server, status):
    server.fail_next("sendgrid", status=status)

    with pytest.raises(PermanentProviderError) as raised:
        sendgrid.send(email())

    assert raised.value.http_status == status


def test_sendgrid_rate_limit_is_transient_and_carries_retry_after(sendgrid, server):
    server.fail_next("sendgrid", status=429, retry_after=12)

    with pytest.raises(TransientProviderError) as raised:
        sendgrid.send(email())

    assert (raised.value.retry_after, raised.value.http_status) == (12.0, 429)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_sendgrid_server_errors_are_transient(sendgrid, server, status):
    server.fail_next("sendgrid", status=status)

    with pytest.raises(TransientProviderError):
        sendgrid.send(email())


def test_sendgrid_dropped_connection_is_transient_possibly_delivered_and_sent_once(sendgrid, server):
    server.fail_next("sendgrid", drop=True)

    with pytest.raises(TransientProviderError) as raised:
        sendgrid.send(email())

    assert raised.value.ambiguous and len(server.attempts) == 1


def test_sendgrid_slow_answer_times_out_as_transient(sendgrid, server):
    server.fail_next("sendgrid", delay=5)

    with pytest.raises(TransientProviderError) as raised:
        sendgrid.send(email())

    assert raised.value.ambiguous and len(server.attempts) == 1


def test_sendgrid_unreachable_host_is_transient_and_certainly_not_delivered():
    provider = SendGridEmail(
        DEFAULT_SENDGRID_API_KEY, "shop@example.com", api_base=f"http://127.0.0.1:{unused_port()}", timeout=1.5
    )

    with pytest.raises(TransientProviderError) as raised:
        provider.send(email())

    assert not raised.value.ambiguous


def test_sendgrid_per_address_error_fails_only_that_address(sendgrid, server):
    server.sendgrid_error_for("blocked@example.com", status=403, message="blocked")

    with pytest.raises(PermanentProviderError):
        sendgrid.send(email(to="blocked@example.com"))
    sendgrid.send(email())

    assert [r["to"] for r in server.requests] == ["kim@example.com"]


# -- Outbox ---------------------------------------------------------------------


def test_outbox_records_messages_with_increasing_ids():
    outbox = Outbox()

    first, second = outbox.send(sms()), outbox.send(email())

    assert (first.provider, first.provider_id, second.provider_id) == ("outbox", "outbox-1", "outbox-2")
    assert outbox.sent == [sms(), email()]
    assert outbox.sent_to("kim@example.com") == [email()]


def test_outbox_appends_one_json_line_per_message_and_continues_numbering(tmp_path):
    path = tmp_path / "outbox.jsonl"
    Outbox(path).send(sms())

    again = Outbox(path).send(email())

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert again.provider_id == "outbox-2"
    assert [(line["provider_id"], line["channel"], line["to"]) for line in lines] == [
        ("outbox-1", "sms", "+14155550100"),
        ("outbox-2", "email", "kim@example.com"),
    ]
    assert lines[1]["headers"] == UNSUBSCRIBE


def test_outbox_gives_unique_ids_to_concurrent_senders():
    outbox = Outbox()
    ids: list[str] = []

    def send_many():
        ids.extend(outbox.send(sms()).provider_id for _ in range(200))

    threads = [threading.Thread(target=send_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 1600 and len(outbox.sent) == 1600


# -- Choosing providers -----------------------------------------------------------

NO_CREDENTIALS = {"twilio_account_sid": None, "twilio_auth_token": None, "sendgrid_api_key": None}


def test_build_providers_uses_the_outbox_for_both_channels_without_credentials():
    providers = build_providers(Settings(**NO_CREDENTIALS))

    assert {channel: provider.name for channel, provider in providers.items()} == {"sms": "outbox", "email": "outbox"}


def test_build_providers_uses_a_given_outbox():
    outbox = Outbox()

    providers = build_providers(Settings(**NO_CREDENTIALS), outbox=outbox)

    providers["sms"].send(sms())
    assert outbox.sent == [sms()]


def test_build_providers_needs_both_twilio_sid_and_token():
    providers = build_providers(Settings(**{**NO_CREDENTIALS, "twilio_account_sid": DEFAULT_ACCOUNT_SID}))

    assert providers["sms"].name == "outbox"


def test_build_providers_with_credentials_sends_through_the_sdks(server):
    settings = Settings(
        base_url="https://ob.example/",
        twilio_account_sid=DEFAULT_ACCOUNT_SID,
        twilio_auth_token=DEFAULT_AUTH_TOKEN,
        twilio_from_number=FROM_NUMBER,
        twilio_messaging_service_sid=None,
        twilio_api_base=server.url,
        sendgrid_api_key=DEFAULT_SENDGRID_API_KEY,
        sendgrid_from_email="shop@example.com",
        sendgrid_api_base=server.url,
    )

    providers = build_providers(settings)
    providers["sms"].send(sms())
    providers["email"].send(email())

    assert isinstance(providers["sms"], TwilioSms) and isinstance(providers["email"], SendGridEmail)
    assert [r["service"] for r in server.requests] == ["twilio", "sendgrid"]
    assert server.requests[0]["status_callback"] == "https://ob.example/webhooks/twilio/status"


# -- Values -----------------------------------------------------------------------


def test_outgoing_message_rejects_an_unknown_channel_naming_the_field():
    with pytest.raises(InvalidInput) as raised:
        sms(channel="fax")

    assert raised.value.field == "channel"


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")

    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(later, now=now) == 90.0
    assert parse_retry_after("Fri, 01 Jan 2021 00:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
