"""Survey answers: scores read from SMS replies or one-click email links, and NPS / CSAT per campaign.

An SMS reply is matched to the contact's latest survey message sent before it. A reply reads as a
score when it starts with one ("9", "10점", "9/10", "ten", "9 - fast delivery" keeps "fast delivery" as
the comment), says it with 점 ("배송이 빨라서 10점"), or is only a number word ("열", "ten"). One answer
counts per message: later answers, and answers after the campaign's window, are stored but not
counted. A counted score at or below the campaign's threshold opens a service-recovery callback.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db.models import CallbackTask, Contact, InboundMessage, Message, SurveyResponse, Tenant
from outbound.definitions.loader import Definitions
from outbound.definitions.schema import SCALES, SurveyConfig
from outbound.errors import InvalidInput, NotFound
from outbound.rendering.links import read_survey_token
from outbound.signing import Keyring
from outbound.vocabulary import Channel, Purpose, TaskStatus


@dataclass(frozen=True, kw_only=True)
class Answer:
    """A score read from a reply, with whatever else the contact wrote."""

    score: int
    comment: str | None


EN_WORDS = {
    w: n for n, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"])
}
KO_WORDS = {
    "영": 0,
    "빵": 0,
    "공": 0,
    "일": 1,
    "이": 2,
    "삼": 3,
    "사": 4,
    "오": 5,
    "육": 6,
    "칠": 7,
    "팔": 8,
    "구": 9,
    "십": 10,
    "하나": 1,
    "한": 1,
    "둘": 2,
    "두": 2,
    "셋": 3,
    "세": 3,
    "넷": 4,
    "네": 4,
    "다섯": 5,
    "여섯": 6,
    "일곱": 7,
    "여덟": 8,
    "아홉": 9,
    "열": 10,
}
_FILLER = (
    r"(?:(?:i'?d say|i would say|i give (?:it|you)|i'?ll give (?:it|you)|maybe|probably|definitely|a solid|solid|"
    r"score(?: is)?|rating|음+|음\.+|네|예|저는|제 점수는|점수는|점수)[\s:,.~]*)*"
)
_SEP = r"[\s\-–—:,.!~/)]"
_DIGITS = re.compile(
    rf"^{_FILLER}(?P<n>\d{{1,2}})(?!\d|[.,]\d|-\d)(?:\s*(?:점|/\s*(?:10|5)|out of (?:10|5)|pts?\b|points?\b))?"
    rf"(?P<rest>(?:(?<=점)|{_SEP}).*|)$",
    re.IGNORECASE | re.DOTALL,
)
_EN = re.compile(
    rf"^{_FILLER}(?P<w>{'|'.join(EN_WORDS)})(?:\s*(?:/\s*(?:10|5)|out of (?:10|5)|points?))?"
    rf"(?P<rest>(?:[-–—:,.!~]|\s*$).*)$",
    re.IGNORECASE | re.DOTALL,
)
_KO = re.compile(rf"^{_FILLER}(?P<w>{'|'.join(sorted(KO_WORDS, key=len, reverse=True))})\s*점(?P<rest>.*)$", re.DOTALL)
_OUT_OF = re.compile(r"(?P<max>\d{1,2})\s*점\s*만점에\s*(?P<n>\d{1,2})\s*점?")
_INLINE = re.compile(r"(?<![\d.])(?P<n>\d{1,2})\s*점")
# What Korean puts after a score ("10점이요", "9점 드려요") is part of saying it, not a comment.
_KO_TAIL = re.compile(
    r"^\s*(?:이에요|이요|입니다|예요|요|드려요|드립니다|드릴게요|줄게요|줄께요|주고 싶어요)(?=$|[\s.!~,])"
)


def parse_answer(text: str, scale: str = "nps") -> Answer | None:
    """The score (and comment) in a reply, if it holds one on the scale (NPS 0-10, CSAT 1-5); else None."""
    low, high = SCALES[scale]
    clean = unicodedata.normalize("NFKC", text or "").strip()
    if not clean:
        return None
    found = _read(clean)
    if found is None:
        return None
    score, comment = found
    if not low <= score <= high:
        return None
    note = " ".join(_KO_TAIL.sub("", comment).split()).strip(" -–—:,.!~/)") or None
    return Answer(score=score, comment=note)


def _read(clean: str) -> tuple[int, str] | None:
    bare = clean.strip(" .!~")
    if bare.lower() in EN_WORDS:
        return EN_WORDS[bare.lower()], ""
    if bare in KO_WORDS and len(bare) > 1 or bare in ("십", "열"):
        return KO_WORDS[bare], ""
    if match := _OUT_OF.search(clean):
        return int(match["n"]), clean[: match.start()] + clean[match.end() :]
    if match := _DIGITS.match(clean):
        return int(match["n"]), match["rest"]
    if match := _EN.match(clean):
        return EN_WORDS[match["w"].lower()], match["rest"]
    if match := _KO.match(clean):
        return KO_WORDS[match["w"]], match["rest"]
    if match := _INLINE.search(clean):
        return int(match["n"]), clean[: match.start()] + _KO_TAIL.sub("", clean[match.end() :])
    return None


# -- recording answers ------------------------------------------------------------------------


def answer_from_sms(
    session: Session,
    tenant: Tenant,
    contact: Contact,
    inbound_message: InboundMessage,
    clock: Clock,
    definitions: Definitions,
) -> SurveyResponse | None:
    """Record an inbound SMS as the answer to the contact's latest survey message; None if it is not one.

    `definitions` gives each campaign's scale, window and threshold.
    """
    received = inbound_message.received_at or clock.now()
    message = session.scalar(
        select(Message)
        .where(
            Message.tenant_id == tenant.id,
            Message.contact_id == contact.id,
            Message.purpose == Purpose.SURVEY,
            Message.channel == Channel.SMS,
            Message.sent_at.is_not(None),
            Message.sent_at <= received,
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )
    if message is None:
        return None
    config = survey_config(definitions, message.campaign)
    answer = parse_answer(inbound_message.body or "", config.scale)
    if answer is None:
        return None
    inbound_message.kind = "survey_answer"
    return _record(session, tenant.id, contact.id, message, config, answer, Channel.SMS, received, clock)


@dataclass(frozen=True, kw_only=True)
class LinkedAnswer:
    """What a one-click survey link says, checked: the survey message it names and the score it carries."""

    message: Message
    config: SurveyConfig
    score: int


def read_survey_link(
    session: Session, keyring: Keyring, token: str, score: int, clock: Clock, definitions: Definitions
) -> LinkedAnswer:
    """The survey message and score a link names, recording nothing (opening a link is not answering:
    mail scanners open them all); InvalidInput for a bad token or score, NotFound for no message."""
    read = read_survey_token(keyring, token, clock.now())
    if read is None:
        raise InvalidInput("this survey link is not valid", field="token")
    tenant_id, message_id = read
    message = session.scalar(select(Message).where(Message.tenant_id == tenant_id, Message.id == message_id))
    if message is None or message.purpose != Purpose.SURVEY:
        raise NotFound("this survey no longer exists")
    config = survey_config(definitions, message.campaign)
    low, high = SCALES[config.scale]
    if not low <= score <= high:
        raise InvalidInput(f"a score is from {low} to {high}", field="score")
    return LinkedAnswer(message=message, config=config, score=score)


def answer_from_link(
    session: Session, keyring: Keyring, token: str, score: int, clock: Clock, definitions: Definitions
) -> SurveyResponse:
    """Record the score of an email link the contact confirmed (the page's POST); InvalidInput for a bad
    token or score, NotFound for no message."""
    return record_linked_answer(session, read_survey_link(session, keyring, token, score, clock, definitions), clock)


def record_linked_answer(session: Session, linked: LinkedAnswer, clock: Clock) -> SurveyResponse:
    """Record a checked link answer (`read_survey_link`) as the contact's answer by email, now."""
    message = linked.message
    return _record(
        session,
        message.tenant_id,
        message.contact_id,
        message,
        linked.config,
        Answer(score=linked.score, comment=None),
        Channel.EMAIL,
        clock.now(),
        clock,
    )


def add_comment(session: Session, response_id: int, tenant_id: int, comment: str) -> SurveyResponse:
    """Attach the contact's comment to an answer given by link (the thank-you page asks for one)."""
    response = session.scalar(
        select(SurveyResponse).where(SurveyResponse.id == response_id, SurveyResponse.tenant_id == tenant_id)
    )
    if response is None:
        raise NotFound("no such answer")
    response.comment = comment.strip()[:2000] or response.comment
    session.flush()
    return response


def _record(
    session: Session,
    tenant_id: int,
    contact_id: int,
    message: Message,
    config: SurveyConfig,
    answer: Answer,
    channel: str,
    received: datetime,
    clock: Clock,
) -> SurveyResponse:
    first = session.scalar(select(SurveyResponse.id).where(SurveyResponse.message_id == message.id)) is None
    in_window = message.sent_at is None or received - message.sent_at <= config.window
    response = SurveyResponse(
        tenant_id=tenant_id,
        contact_id=contact_id,
        message_id=message.id if first else None,
        campaign=message.campaign,
        scale=config.scale,
        score=answer.score,
        comment=answer.comment,
        channel=channel,
        counted=first and in_window,
        received_at=received,
    )
    session.add(response)
    if response.counted and answer.score <= config.threshold:
        said = f' — "{answer.comment}"' if answer.comment else ""
        session.add(
            CallbackTask(
                tenant_id=tenant_id,
                contact_id=contact_id,
                campaign=message.campaign,
                enrollment_id=message.enrollment_id,
                reason=f"{config.recovery_reason} ({config.scale.upper()} {answer.score}{said})",
                priority=config.recovery_priority,
                status=TaskStatus.OPEN,
                due_at=clock.now(),
                created_at=clock.now(),
            )
        )
    session.flush()
    return response


def survey_config(definitions: Definitions, campaign: str) -> SurveyConfig:
    """The campaign's survey settings; defaults (NPS, 7 days) when the campaign is not defined any more."""
    found = definitions.campaigns.get(campaign)
    return found.survey if found is not None and found.survey is not None else SurveyConfig()


# -- reporting --------------------------------------------------------------------------------


@dataclass
class SurveyScore:
    """A campaign's answers for one tenant (and one ISO week, when asked per week)."""

    tenant: str
    campaign: str
    scale: str
    week: str | None
    responses: int = 0
    counted: int = 0
    total: int = 0
    high: int = 0  # NPS promoters (9-10); CSAT satisfied (4-5)
    low: int = 0  # NPS detractors (0-6); CSAT dissatisfied (1-2)

    @property
    def score(self) -> float | None:
        """NPS (-100..100: % promoters - % detractors) or CSAT (% satisfied), over counted answers."""
        if not self.counted:
            return None
        if self.scale == "nps":
            return 100.0 * (self.high - self.low) / self.counted
        return 100.0 * self.high / self.counted

    @property
    def average(self) -> float | None:
        return self.total / self.counted if self.counted else None


def survey_scores(session: Session, *, by_week: bool = False) -> list[SurveyScore]:
    """NPS and CSAT per tenant and campaign (and ISO week of the answer, if `by_week`)."""
    results: dict[tuple[str, str, str, str | None], SurveyScore] = {}
    rows = session.execute(
        select(
            Tenant.slug,
            SurveyResponse.campaign,
            SurveyResponse.scale,
            SurveyResponse.score,
            SurveyResponse.counted,
            SurveyResponse.received_at,
        ).join(Tenant, Tenant.id == SurveyResponse.tenant_id)
    )
    for slug, campaign, scale, score, counted, received_at in rows:
        week = None
        if by_week:
            year, number, _ = received_at.isocalendar()
            week = f"{year}-W{number:02d}"
        result = results.setdefault((slug, campaign, scale, week), SurveyScore(slug, campaign, scale, week))
        result.responses += 1
        if not counted or score is None:
            continue
        result.counted += 1
        result.total += score
        high, low = (9, 6) if scale == "nps" else (4, 2)
        result.high += score >= high
        result.low += score <= low
    return [results[key] for key in sorted(results, key=lambda k: tuple(x or "" for x in k))]


def recovery_counts(session: Session) -> dict[tuple[str, str], int]:
    """Service-recovery callbacks opened per tenant and survey campaign."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for slug, campaign in session.execute(
        select(Tenant.slug, CallbackTask.campaign)
        .join(Tenant, Tenant.id == CallbackTask.tenant_id)
        .where(CallbackTask.campaign.in_(select(SurveyResponse.campaign).distinct()))
    ):
        counts[(slug, campaign)] += 1
    return dict(counts)
