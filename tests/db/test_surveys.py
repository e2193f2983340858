"""Surveys: scores read from real-looking SMS replies in both languages, one-click email links, NPS and CSAT."""

import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from outbound.db.models import CallbackTask, Contact, InboundMessage, SurveyResponse, Tenant
from outbound.db.session import transaction
from outbound.engagement.surveys import answer_from_sms, parse_answer, survey_scores
from outbound.rendering.links import read_survey_token, survey_token
from outbound.signing import Keyring

from helpers.campaigns import make_world_fixture  # noqa: F401 - fixture

PHONE = "+12025550143"


@pytest.mark.parametrize(
    "reply, score, comment",
    [
        ("9", 9, None),
        ("10", 10, None),
        ("  7 ", 7, None),
        ("ten", 10, None),
        ("Ten!", 10, None),
        ("9 - fast delivery", 9, "fast delivery"),
        ("8 because the box was a bit damaged", 8, "because the box was a bit damaged"),
        ("9/10", 9, None),
        ("I'd say 8", 8, None),
        ("Nine, but delivery was slow", 9, "but delivery was slow"),
        ("score: 6 - meh", 6, "meh"),
        ("0", 0, None),
        ("10점", 10, None),
        ("10점이요", 10, None),
        ("네 10점이요", 10, None),
        ("9점 배송이 빨라요", 9, "배송이 빨라요"),
        ("3점... 상자가 찌그러져 왔어요", 3, "상자가 찌그러져 왔어요"),
        ("배송이 빨라서 10점 드려요", 10, "배송이 빨라서"),
        ("10점 만점에 9점", 9, None),
        ("아홉 점이요", 9, None),
        ("열", 10, None),
        ("십점", 10, None),
        ("８점", 8, None),
    ],
)
def test_a_reply_in_english_or_korean_reads_as_its_score_and_keeps_the_comment(reply, score, comment):
    assert parse_answer(reply, "nps") == parse_answer(reply) and parse_answer(reply).score == score
    assert parse_answer(reply).comment == comment


@pytest.mark.parametrize(
    "reply",
    [
        "오늘 잘 받았어요",
        "one of the best",
        "STOP",
        "what is this?",
        "010-1234-5678",
        "11",
        "7.5",
        "9am tomorrow",
        "",
    ],
)
def test_a_reply_without_a_score_on_the_scale_is_not_an_answer(reply):
    assert parse_answer(reply, "nps") is None


def test_csat_takes_one_to_five_only():
    assert parse_answer("5", "csat").score == 5 and parse_answer("매우 만족 5점", "csat").score == 5
    assert parse_answer("0", "csat") is None and parse_answer("6", "csat") is None


def _surveyed(world, clock, external_id="c1", phone=PHONE, locale="en"):
    tenant = world.tenant()
    world.contact(tenant, external_id, phone=phone, locale=locale, consents=[("sms", "survey")])
    world.event(tenant, "order_delivered", external_id, {"order_id": f"o-{external_id}"})
    world.run(clock.now() + timedelta(hours=3))
    [message] = world.messages(campaign="survey")
    assert message.status == "sent"
    return tenant


def _reply(world, clock, tenant, external_id, body, *, after=timedelta(minutes=5)):
    """An inbound SMS stored as the inbound handler stores it, then handed to the survey reader."""
    clock.advance(after)
    with transaction(world.runtime.factory) as session:
        contact = session.scalar(select(Contact).where(Contact.external_id == external_id))
        inbound = InboundMessage(
            tenant_id=tenant.id,
            contact_id=contact.id,
            channel="sms",
            from_address=contact.phone,
            to_address="+12155550123",
            body=body,
            kind="other",
            received_at=clock.now(),
        )
        session.add(inbound)
        session.flush()
        response = answer_from_sms(
            session, session.get(Tenant, tenant.id), contact, inbound, clock, world.runtime.definitions
        )
        return (response.score, response.comment, response.counted, inbound.kind) if response else None


def test_an_sms_reply_answers_the_latest_survey_message_and_keeps_the_comment(make_world, clock):
    world = make_world()
    tenant = _surveyed(world, clock)
    assert _reply(world, clock, tenant, "c1", "9 - fast delivery") == (9, "fast delivery", True, "survey_answer")


def test_only_the_first_answer_to_a_message_counts_and_later_ones_are_stored(make_world, clock):
    world = make_world()
    tenant = _surveyed(world, clock)
    assert _reply(world, clock, tenant, "c1", "10")[2] is True
    assert _reply(world, clock, tenant, "c1", "3")[2] is False
    with world.runtime.factory() as session:
        rows = session.execute(select(SurveyResponse.score, SurveyResponse.counted).order_by(SurveyResponse.id)).all()
    assert [tuple(r) for r in rows] == [(10, True), (3, False)]


def test_a_reply_after_the_window_is_stored_but_not_counted(make_world, clock):
    world = make_world()
    tenant = _surveyed(world, clock)
    assert _reply(world, clock, tenant, "c1", "8", after=timedelta(days=4)) == (8, None, False, "survey_answer")
    with world.runtime.factory() as session:
        [score] = survey_scores(session)
    assert (score.responses, score.counted) == (1, 0)


def test_a_low_score_opens_a_service_recovery_callback_and_a_high_one_does_not(make_world, clock):
    world = make_world()
    tenant = _surveyed(world, clock, "sad")
    world.contact(tenant, "glad", phone="+12025550144", consents=[("sms", "survey")])
    world.event(tenant, "order_delivered", "glad", {"order_id": "o-glad"})
    world.run(clock.now() + timedelta(hours=3))
    _reply(world, clock, tenant, "sad", "3점... 상자가 찌그러져 왔어요")
    _reply(world, clock, tenant, "glad", "10점")
    with world.runtime.factory() as session:
        [task] = session.scalars(select(CallbackTask)).all()
        contact = session.get(Contact, task.contact_id)
    assert contact.external_id == "sad" and task.status == "open" and task.campaign == "survey"
    assert "NPS 3" in task.reason and "상자가 찌그러져" in task.reason


def test_a_message_that_is_not_a_score_or_without_a_survey_is_not_an_answer(make_world, clock):
    world = make_world()
    tenant = world.tenant()
    world.contact(tenant, "nobody-asked", phone="+12025550145")
    assert _reply(world, clock, tenant, "nobody-asked", "9") is None
    tenant2 = world.tenant("shop-2")
    world.contact(tenant2, "c1", phone=PHONE, consents=[("sms", "survey")])
    world.event(tenant2, "order_delivered", "c1", {"order_id": "o-1"})
    world.run(clock.now() + timedelta(hours=3))
    assert _reply(world, clock, tenant2, "c1", "where is my refund?") is None


def test_nps_and_csat_are_reported_per_campaign_and_per_week(make_world, clock):
    world = make_world()
    tenant = world.tenant()
    for n in range(4):
        world.contact(tenant, f"c{n}", phone=f"+1202555015{n}", consents=[("sms", "survey")])
        world.event(tenant, "order_delivered", f"c{n}", {"order_id": f"o-{n}"})
    world.run(clock.now() + timedelta(hours=3))
    for n, reply in enumerate(["10", "9", "7", "3"]):
        _reply(world, clock, tenant, f"c{n}", reply, after=timedelta(minutes=1))
    with world.runtime.factory() as session:
        [overall] = survey_scores(session)
        weekly = survey_scores(session, by_week=True)
    # 2 promoters, 1 passive, 1 detractor: NPS = 50 - 25.
    assert (overall.campaign, overall.scale, overall.counted, overall.score) == ("survey", "nps", 4, 25.0)
    assert [w.week for w in weekly] == ["2026-W47"] and weekly[0].score == 25.0


def _csat_link(world, clock):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="c1@example.com", consents=[("email", "survey")])
    world.event(tenant, "ticket_closed", "c1", {"ticket_id": "t-1"})
    world.run(clock.now() + timedelta(minutes=1))
    [message] = world.messages(campaign="csat")
    link = next(line.split(": ")[1] for line in message.body.splitlines() if line.startswith("4:"))
    return tenant, message, link


def _client(world):
    from outbound.web.app import create_app

    app = create_app(world.runtime, on_event=None)
    app.state.settings = world.runtime.settings
    app.state.definitions = world.runtime.definitions
    return TestClient(app)


def test_confirming_an_email_score_link_records_the_score_and_a_second_answer_is_not_counted(make_world, clock):
    world = make_world()
    tenant, message, link = _csat_link(world, clock)
    assert link.startswith("https://ob.example/s/") and link.endswith("/4")
    client = _client(world)
    path = link.removeprefix("https://ob.example")
    first = client.post(path)
    assert first.status_code == 200 and "You answered <strong>4</strong>" in first.text
    second = client.post(path[:-1] + "1")
    assert second.status_code == 200 and "already have your answer" in second.text
    with world.runtime.factory() as session:
        rows = session.execute(
            select(
                SurveyResponse.score, SurveyResponse.counted, SurveyResponse.channel, SurveyResponse.message_id
            ).order_by(SurveyResponse.id)
        ).all()
        tasks = session.scalars(select(CallbackTask)).all()
    assert [tuple(r) for r in rows] == [(4, True, "email", message.id), (1, False, "email", None)]
    assert tasks == []  # the 1 came second: not counted, so no recovery call


def test_the_comment_form_adds_the_comment_to_the_counted_answer(make_world, clock):
    world = make_world()
    _, _, link = _csat_link(world, clock)
    client = _client(world)
    path = link.removeprefix("https://ob.example")
    client.post(path)
    token = path.split("/")[2]
    assert client.post(f"/s/{token}/comment", data={"comment": "Quick and kind"}).status_code == 200
    with world.runtime.factory() as session:
        assert session.scalar(select(SurveyResponse.comment)) == "Quick and kind"


def test_a_forged_or_off_scale_link_is_refused_and_records_nothing(make_world, clock):
    world = make_world()
    tenant, message, link = _csat_link(world, clock)
    client = _client(world)
    forged = survey_token(Keyring(secrets.token_urlsafe(32)), tenant.id, message.id, clock.now())
    token = link.removeprefix("https://ob.example/s/").split("/")[0]
    for send in (client.get, client.post):
        assert send(f"/s/{forged}/5").status_code == 404
        assert send(f"/s/{token}/9").status_code == 400
    with world.runtime.factory() as session:
        assert session.scalars(select(SurveyResponse)).all() == []


def test_survey_tokens_name_one_message_and_cannot_be_swapped_for_unsubscribe_tokens(clock):
    from outbound.rendering.links import unsubscribe_token

    ours, other = Keyring(secrets.token_urlsafe(32)), Keyring(secrets.token_urlsafe(32))
    token = survey_token(ours, 1, 42, clock.now())
    assert read_survey_token(ours, token, clock.now()) == (1, 42)
    assert read_survey_token(other, token, clock.now()) is None
    assert read_survey_token(ours, unsubscribe_token(ours, 1, 42, "email"), clock.now()) is None


def test_a_survey_link_expires_ninety_days_after_it_was_sent_an_unsubscribe_link_never(clock):
    from datetime import timedelta

    from outbound.rendering.links import read_unsubscribe_token, unsubscribe_token

    keyring = Keyring(secrets.token_urlsafe(32))
    survey, unsubscribe = survey_token(keyring, 1, 42, clock.now()), unsubscribe_token(keyring, 1, 7, "email")
    assert read_survey_token(keyring, survey, clock.now() + timedelta(days=89)) == (1, 42)
    assert read_survey_token(keyring, survey, clock.now() + timedelta(days=92)) is None
    assert read_unsubscribe_token(keyring, unsubscribe, clock.now() + timedelta(days=3650)) == (
        1,
        7,
        "email",
        "marketing",
    )


SHIPPED_CSAT = (Path(__file__).resolve().parents[2] / "templates" / "csat_email" / "email.en.j2").read_text()


def test_the_no_more_surveys_link_revokes_survey_email_only_and_marketing_stays_as_it_was(make_world, clock):
    from outbound.db.models import Consent
    from outbound.db.suppressions import is_suppressed

    from helpers.campaigns import CAMPAIGN_TEMPLATES

    world = make_world(templates={**CAMPAIGN_TEMPLATES, "csat_note/email.en.j2": SHIPPED_CSAT})
    tenant = world.tenant()
    world.contact(
        tenant,
        "c1",
        email="ann@example.com",
        phone=PHONE,
        consents=[("email", "survey"), ("email", "marketing"), ("sms", "survey")],
    )
    world.event(tenant, "ticket_closed", "c1", {"ticket_id": "t-1"})
    world.run(clock.now() + timedelta(minutes=1))
    [survey] = world.messages(campaign="csat")
    link = next(line for line in survey.body.splitlines() if line.startswith("Don't want surveys from us?")).split()[-1]
    client = _client(world)
    path = link.removeprefix("https://ob.example")
    page = client.get(path)
    assert page.status_code == 200 and "surveys" in page.text and "marketing" not in page.text
    done = client.post(path, data={"List-Unsubscribe": "One-Click"}, headers={"accept": "text/html"})
    assert done.status_code == 200 and "surveys" in done.text
    with world.runtime.factory() as session:
        latest = {}
        for consent in session.scalars(select(Consent).order_by(Consent.id)):
            latest[(consent.channel, consent.purpose)] = consent.granted
        suppressed = is_suppressed(session, tenant.id, "email", "ann@example.com")
    assert latest == {("email", "survey"): False, ("email", "marketing"): True, ("sms", "survey"): True}
    assert suppressed == []  # a suppression would stop marketing email too
    # The next survey by email is refused for want of survey consent; a marketing email still goes.
    world.event(tenant, "ticket_closed", "c1", {"ticket_id": "t-2"})
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "k1", "value": 200})
    world.run(clock.now() + timedelta(hours=2))
    second = world.messages(campaign="csat")[-1]
    assert (second.status, second.rule) == ("blocked", "consent")
    assert [m.status for m in world.messages(campaign="cart", channel="email")] == ["sent"]


def test_a_link_scanner_opening_every_score_link_records_no_answer_and_opens_no_callback(make_world, clock):
    world = make_world()
    _, message, link = _csat_link(world, clock)
    client = _client(world)
    base = link.removeprefix("https://ob.example")[:-1]
    for score in range(1, 6):  # what a mail-security scanner does: fetch every link in the message
        page = client.get(f"{base}{score}")
        assert page.status_code == 200 and '<form method="post"' in page.text
    with world.runtime.factory() as session:
        assert session.scalars(select(SurveyResponse)).all() == []
        assert session.scalars(select(CallbackTask)).all() == []  # a 1 would have opened a recovery call
    answer = client.post(f"{base}4")
    assert answer.status_code == 200 and "You answered <strong>4</strong>" in answer.text
    with world.runtime.factory() as session:
        assert [(r.score, r.counted) for r in session.scalars(select(SurveyResponse))] == [(4, True)]


def test_the_score_page_speaks_the_contacts_language(make_world, clock):
    world = make_world()
    tenant = world.tenant()
    world.contact(tenant, "c1", email="c1@example.com", locale="ko", consents=[("email", "survey")])
    world.event(tenant, "ticket_closed", "c1", {"ticket_id": "t-1"})
    world.run(clock.now() + timedelta(minutes=1))
    [message] = world.messages(campaign="csat")
    link = next(line.split(": ")[1] for line in message.body.splitlines() if line.startswith("5:"))
    client = _client(world)
    page = client.get(link.removeprefix("https://ob.example"))
    assert page.status_code == 200 and "답변 보내기" in page.text and 'lang="ko"' in page.text
    assert "감사합니다" in client.post(link.removeprefix("https://ob.example")).text
