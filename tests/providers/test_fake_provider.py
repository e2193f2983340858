"""The fake provider speaks Twilio's and SendGrid's HTTP APIs, including their errors and faults."""

from __future__ import annotations

import re
import threading
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest

from outbound.testing import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SENDGRID_API_KEY,
    FakeProviderServer,
    sms_segments,
)

TWILIO_AUTH = (DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
SENDGRID_AUTH = {"Authorization": f"Bearer {DEFAULT_SENDGRID_API_KEY}"}
VALID_MAIL = {
    "personalizations": [{"to": [{"email": "kim@example.com"}]}],
    "from": {"email": "shop@example.com", "name": "Shop"},
    "subject": "Your order",
    "content": [{"type": "text/plain", "value": "Hello"}, {"type": "text/html", "value": "<p>Hello</p>"}],
}


# One client for the module: building one per request loads certificates each time.
HTTP = httpx.Client()


@pytest.fixture
def server():
    with FakeProviderServer() as server:
        yield server


def post_sms(server, form, auth=TWILIO_AUTH, account=DEFAULT_ACCOUNT_SID):
    return HTTP.post(f"{server.url}/2010-04-01/Accounts/{account}/Messages.json", data=form, auth=auth)


def post_mail(server, body=None, headers=SENDGRID_AUTH, content=None):
    if content is not None:
        return HTTP.post(f"{server.url}/v3/mail/send", content=content, headers=headers)
    return HTTP.post(f"{server.url}/v3/mail/send", json=body, headers=headers)


def twilio_code(response):
    return response.json()["code"]


def sendgrid_fields(response):
    return [error["field"] for error in response.json()["errors"]]


def test_twilio_answers_a_valid_message_with_a_queued_message_resource(server):
    response = post_sms(server, {"To": "+14155550100", "From": "+15005550006", "Body": "Your parcel is late"})

    assert response.status_code == 201
    message = response.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert (message["status"], message["to"], message["from"]) == ("queued", "+14155550100", "+15005550006")
    assert message["body"] == "Your parcel is late" and message["num_segments"] == "1"
    assert message["account_sid"] == DEFAULT_ACCOUNT_SID and message["direction"] == "outbound-api"
    assert parsedate_to_datetime(message["date_created"]).tzinfo is not None
    assert server.requests[0]["provider_id"] == message["sid"]


def test_twilio_accepts_a_messaging_service_instead_of_a_from_number(server):
    service = "MG" + "a" * 32
    response = post_sms(server, {"To": "+14155550100", "MessagingServiceSid": service, "Body": "hi"})

    assert response.status_code == 201
    assert response.json()["status"] == "accepted" and response.json()["from"] is None
    assert server.requests[0]["messaging_service_sid"] == service


def test_twilio_rejects_wrong_credentials_with_its_401_error_shape(server):
    form = {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}

    response = post_sms(server, form, auth=(DEFAULT_ACCOUNT_SID, "nope"))

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert server.requests == []


def test_twilio_rejects_a_request_without_basic_auth(server):
    response = post_sms(server, {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}, auth=None)

    assert response.status_code == 401 and twilio_code(response) == 20003


def test_twilio_answers_404_for_another_accounts_messages(server):
    response = post_sms(server, {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}, account="AC" + "9" * 32)

    assert response.status_code == 404 and twilio_code(response) == 20404


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": "+15005550006", "Body": "hi"}, 21604),
        ({"To": "+14155550100", "From": "+15005550006"}, 21602),
        ({"To": "+14155550100", "From": "+15005550006", "Body": ""}, 21602),
        ({"To": "+14155550100", "Body": "hi"}, 21603),
        ({"To": "555-0100", "From": "+15005550006", "Body": "hi"}, 21211),
        ({"To": "+14155550100", "From": "not a number!", "Body": "hi"}, 21212),
        ({"To": "+14155550100", "MessagingServiceSid": "MGshort", "Body": "hi"}, 21701),
        ({"To": "+14155550100", "From": "+15005550006", "Body": "x" * 1601}, 21617),
    ],
    ids=[
        "missing To",
        "missing Body",
        "empty Body",
        "no sender",
        "invalid To",
        "invalid From",
        "bad service",
        "too long",
    ],
)
def test_twilio_rejects_malformed_messages_with_its_error_codes(server, form, code):
    response = post_sms(server, form)

    assert response.status_code == 400
    assert twilio_code(response) == code and response.json()["status"] == 400
    assert server.requests == [] and server.attempts[0]["outcome"] == "rejected"


def test_twilio_counts_segments_as_gsm7_or_ucs2():
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2
    assert sms_segments("€" * 80) == 1  # extension characters take two septets
    assert sms_segments("€" * 81) == 2
    assert sms_segments("가" * 70) == 1
    assert sms_segments("가" * 71) == 2


def test_per_number_errors_answer_with_the_configured_twilio_code(server):
    server.twilio_error_for("+15005550009", code=21610)

    blocked = post_sms(server, {"To": "+15005550009", "From": "+15005550006", "Body": "hi"})
    other = post_sms(server, {"To": "+14155550100", "From": "+15005550006", "Body": "hi"})

    assert blocked.status_code == 400 and twilio_code(blocked) == 21610
    assert other.status_code == 201
    assert [r["to"] for r in server.requests] == ["+14155550100"]


def test_sendgrid_accepts_valid_mail_with_202_and_a_message_id(server):
    response = post_mail(server, VALID_MAIL)

    assert response.status_code == 202 and response.content == b""
    assert response.headers["X-Message-Id"] == server.requests[0]["provider_id"]
    recorded = server.requests[0]
    assert (recorded["to"], recorded["subject"], recorded["body"], recorded["html"]) == (
        "kim@example.com",
        "Your order",
        "Hello",
        "<p>Hello</p>",
    )


def test_sendgrid_rejects_a_missing_or_wrong_key_with_401(server):
    missing = post_mail(server, VALID_MAIL, headers={})
    wrong = post_mail(server, VALID_MAIL, headers={"Authorization": "Bearer SG.wrong"})

    assert missing.status_code == 401 and missing.json()["errors"][0]["message"] == "authorization required"
    assert wrong.status_code == 401 and "invalid" in wrong.json()["errors"][0]["message"]
    assert set(wrong.json()["errors"][0]) == {"message", "field", "help"}
    assert server.requests == []


def test_sendgrid_rejects_a_body_that_is_not_json_as_bad_request(server):
    response = post_mail(server, content=b"{not json", headers={**SENDGRID_AUTH, "Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Bad Request", "field": None, "help": None}]}


def test_sendgrid_reports_every_missing_field_at_once(server):
    response = post_mail(server, {"personalizations": [{}]})

    assert response.status_code == 400
    assert sendgrid_fields(response) == ["personalizations.0.to", "from.email", "subject", "content"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"personalizations": []}, "personalizations"),
        ({"personalizations": [{"to": [{"email": "not-an-address"}]}]}, "personalizations.0.to.0.email"),
        ({"from": {"email": "shop"}}, "from.email"),
        ({"subject": ""}, "subject"),
        ({"content": [{"type": "text/plain", "value": ""}]}, "content.0.value"),
        ({"content": [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]}, "content"),
        ({"custom_args": {"message_id": 42}}, "custom_args.message_id"),
        ({"custom_args": "message 42"}, "custom_args"),
        ({"headers": {"Subject": "sneaky"}}, "headers.Subject"),
    ],
    ids=[
        "no personalization",
        "bad to",
        "bad from",
        "empty subject",
        "empty content",
        "html first",
        "numeric custom arg",
        "custom args not an object",
        "reserved header",
    ],
)
def test_sendgrid_rejects_invalid_mail_naming_the_field(server, change, field):
    response = post_mail(server, {**VALID_MAIL, **change})

    assert response.status_code == 400
    assert field in sendgrid_fields(response)
    assert server.requests == []


def test_sendgrid_takes_subjects_from_every_personalization_instead_of_the_top_level(server):
    mail = {
        **VALID_MAIL,
        "subject": None,
        "personalizations": [{"to": [{"email": "kim@example.com"}], "subject": "Hi"}],
    }

    assert post_mail(server, mail).status_code == 202
    assert server.requests[0]["subject"] == "Hi"


def test_a_queued_fault_answers_once_then_the_fake_answers_normally(server):
    server.fail_next("sendgrid", status=429, retry_after=3)

    limited = post_mail(server, VALID_MAIL)
    accepted = post_mail(server, VALID_MAIL)

    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert accepted.status_code == 202
    assert [a["outcome"] for a in server.attempts] == ["fault", "accepted"]


def test_twilio_faults_carry_twilio_error_codes(server):
    server.fail_next("twilio", status=503)

    response = post_sms(server, {"To": "+14155550100", "From": "+15005550006", "Body": "hi"})

    assert response.status_code == 503 and twilio_code(response) == 20503


def test_a_dropped_request_gets_no_answer_and_is_recorded_as_an_attempt_only(server):
    server.fail_next("twilio", drop=True)

    with pytest.raises(httpx.RemoteProtocolError):
        post_sms(server, {"To": "+14155550100", "From": "+15005550006", "Body": "hi"})

    assert server.requests == []
    assert [(a["to"], a["status"], a["outcome"]) for a in server.attempts] == [("+14155550100", None, "dropped")]


def test_a_slow_answer_still_accepts_the_message_after_the_delay(server):
    server.fail_next("sendgrid", delay=0.2)
    started = time.monotonic()

    response = post_mail(server, VALID_MAIL)

    assert response.status_code == 202
    assert time.monotonic() - started >= 0.2
    assert len(server.requests) == 1


def test_stopping_the_server_drops_a_request_still_waiting_on_its_delay():
    server = FakeProviderServer().start()
    server.fail_next("twilio", delay=30)
    errors = []

    def call():
        try:
            post_sms(server, {"To": "+14155550100", "From": "+15005550006", "Body": "hi"})
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    while not server.attempts:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    caller.join(timeout=5)

    assert time.monotonic() - started < 2
    assert len(errors) == 1 and server.requests == []


def test_reset_forgets_requests_attempts_and_faults(server):
    server.fail_next("twilio", status=500, times=2)
    server.twilio_error_for("+15005550009", code=21610)
    post_mail(server, VALID_MAIL)

    server.reset()

    assert server.requests == [] and server.attempts == []
    assert post_sms(server, {"To": "+15005550009", "From": "+15005550006", "Body": "hi"}).status_code == 201


def test_fail_next_refuses_an_unknown_service(server):
    with pytest.raises(ValueError, match="service"):
        server.fail_next("mailgun", status=500)
