"""The demo's customers and agents react to what reaches them, so surveys, conversions and leads have results.

After each stretch of simulated time the runner shows this model what happened (messages sent,
enrollments made, callback tasks opened) and gets back reactions at later times: a survey reply by
SMS in Korean or English, a click on a CSAT score link, an order after an offer, an agent's call to
a new lead. Everybody, held out or not, buys at a small base rate; a message that reaches someone
adds to it, which is the lift the report measures against the holdout. Seeded: the same seed gives
the same reactions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db.models import CallbackTask, Contact, Enrollment, InboundMessage, Message, Tenant
from outbound.definitions import Definitions
from outbound.engagement.surveys import answer_from_link, answer_from_sms
from outbound.enrollment.lifecycle import end_lead_nurture
from outbound.ingest.events import OnEvent, ingest_items
from outbound.rendering.links import survey_token
from outbound.signing import Keyring
from outbound.vocabulary import Channel, TaskStatus

# Extra chance to buy after a message reached the customer, and the chance everybody has anyway.
UPLIFT = {"churn_winback": 0.16, "lapsed_winback": 0.14, "cart_abandonment": 0.10, "lead_followup": 0.12}
BASE = {"churn_winback": 0.05, "lapsed_winback": 0.04, "cart_abandonment": 0.05, "lead_followup": 0.03}
NPS_SCORES = (10, 9, 8, 7, 6, 5, 3, 1)
NPS_WEIGHTS = (30, 24, 15, 10, 6, 5, 6, 4)
CSAT_SCORES, CSAT_WEIGHTS = (5, 4, 3, 2, 1), (45, 30, 12, 8, 5)
EN_WORDS = {10: "Ten", 9: "Nine", 8: "Eight"}
KO_WORDS = {10: "열", 9: "아홉 점이요"}
REPLIES = {
    "en": ("{n}", "{n} - fast delivery", "{n}/10", "I'd say {n}", "{n}, everything arrived as ordered"),
    "ko": ("{n}", "{n}점", "{n}점이요", "{n}점 배송이 빨라요", "네 {n}점이요"),
}
LOW = {
    "en": ("{n} - arrived late and the box was crushed", "{n}. Nobody answered my email"),
    "ko": ("{n}점... 상자가 찌그러져 왔어요", "{n}점 배송이 너무 늦었어요"),
}


@dataclass(order=True)
class Reaction:
    """Something a customer or an agent does at a time."""

    at: datetime
    seq: int
    kind: str = field(compare=False)  # order, sms_reply, click, agent
    tenant_id: int = field(compare=False)
    payload: dict[str, Any] = field(compare=False)


@dataclass
class Tally:
    """What the simulated people did, for the report."""

    replies: int = 0
    clicks: int = 0
    orders: int = 0
    agent_calls: int = 0


class Customers:
    """Decides reactions to what happened; applies them through the engine's own entry points."""

    def __init__(self, seed: int, keyring: Keyring) -> None:
        self.rng = random.Random(f"{seed}:customers")
        self.keyring = keyring
        self.tally = Tally()
        self._seq = 0
        self._seen_messages: set[int] = set()
        self._last_enrollment = 0
        self._last_task = 0
        self._since: datetime | None = None

    def observe(self, session: Session, now: datetime) -> list[Reaction]:
        """Reactions to messages sent, enrollments made and lead callbacks opened since the last look."""
        reactions: list[Reaction] = []
        query = (
            select(Message, Contact.locale)
            .join(Contact, Contact.id == Message.contact_id)
            .where(Message.sent_at.is_not(None))
        )
        if self._since is not None:
            query = query.where(Message.sent_at >= self._since)
        for message, locale in session.execute(query):
            if message.id not in self._seen_messages:
                self._seen_messages.add(message.id)
                reactions += self._to_message(message, locale or "en")
        for enrollment in session.scalars(
            select(Enrollment).where(Enrollment.id > self._last_enrollment).order_by(Enrollment.id)
        ):
            self._last_enrollment = enrollment.id
            if enrollment.campaign in BASE and self.rng.random() < BASE[enrollment.campaign]:
                reactions.append(
                    self._order(enrollment, enrollment.enrolled_at + timedelta(hours=self.rng.uniform(3, 140)))
                )
        for task in session.scalars(
            select(CallbackTask).where(CallbackTask.id > self._last_task).order_by(CallbackTask.id)
        ):
            self._last_task = task.id
            if task.campaign == "lead_followup":
                reactions.append(
                    self._reaction(
                        task.created_at + timedelta(minutes=self.rng.uniform(3, 40)),
                        "agent",
                        task.tenant_id,
                        {"task": task.id},
                    )
                )
        self._since = now
        return reactions

    def _to_message(self, message: Message, locale: str) -> list[Reaction]:
        sent_at = message.sent_at
        assert sent_at is not None  # `observe` reads sent messages only
        rng, language = self.rng, ("ko" if locale.startswith("ko") else "en")
        if message.campaign == "delivery_survey" and message.channel == Channel.SMS and rng.random() < 0.55:
            score = rng.choices(NPS_SCORES, NPS_WEIGHTS)[0]
            late = rng.random() < 0.05  # answers after the 3-day window: stored, not counted
            at = sent_at + (
                timedelta(days=4, hours=rng.uniform(0, 20)) if late else timedelta(minutes=rng.uniform(3, 240))
            )
            reactions = [
                self._reaction(
                    at,
                    "sms_reply",
                    message.tenant_id,
                    {"contact": message.contact_id, "text": self._reply(score, language)},
                )
            ]
            if rng.random() < 0.06:  # a second answer to the same message: stored, not counted
                reactions.append(
                    self._reaction(
                        at + timedelta(minutes=rng.uniform(5, 60)),
                        "sms_reply",
                        message.tenant_id,
                        {"contact": message.contact_id, "text": str(min(10, score + 1))},
                    )
                )
            return reactions
        if message.campaign == "support_csat" and rng.random() < 0.45:
            at = sent_at + timedelta(minutes=rng.uniform(10, 1800))
            return [
                self._reaction(
                    at,
                    "click",
                    message.tenant_id,
                    {"message": message.id, "score": rng.choices(CSAT_SCORES, CSAT_WEIGHTS)[0]},
                )
            ]
        if message.campaign in UPLIFT and message.enrollment_id is not None and rng.random() < UPLIFT[message.campaign]:
            return [
                self._reaction(
                    sent_at + timedelta(hours=rng.uniform(2, 96)),
                    "order",
                    message.tenant_id,
                    {"enrollment": message.enrollment_id},
                )
            ]
        return []

    def _reply(self, score: int, language: str) -> str:
        if score <= 6 and self.rng.random() < 0.6:
            return self.rng.choice(LOW[language]).format(n=score)
        words = KO_WORDS if language == "ko" else EN_WORDS
        if score in words and self.rng.random() < 0.2:
            return words[score]
        return self.rng.choice(REPLIES[language]).format(n=score)

    def _order(self, enrollment: Enrollment, at: datetime) -> Reaction:
        return self._reaction(at, "order", enrollment.tenant_id, {"enrollment": enrollment.id})

    def _reaction(self, at: datetime, kind: str, tenant_id: int, payload: dict[str, Any]) -> Reaction:
        self._seq += 1
        return Reaction(at, self._seq, kind, tenant_id, payload)

    def apply(
        self, session: Session, reaction: Reaction, clock: Clock, definitions: Definitions, on_event: OnEvent
    ) -> None:
        """Do the reaction now, through the same functions the web handlers and agents' pages call."""
        tenant = session.get_one(Tenant, reaction.tenant_id)
        payload = reaction.payload
        if reaction.kind == "order":
            self._place_order(session, tenant, payload["enrollment"], clock, on_event)
        elif reaction.kind == "sms_reply":
            contact = session.get_one(Contact, payload["contact"])
            inbound = InboundMessage(
                tenant_id=tenant.id,
                contact_id=contact.id,
                channel=Channel.SMS,
                from_address=contact.phone,
                to_address=(tenant.settings or {}).get("sms_from"),
                body=payload["text"],
                kind="other",
                received_at=clock.now(),
            )
            session.add(inbound)
            session.flush()
            answer_from_sms(session, tenant, contact, inbound, clock, definitions)
            self.tally.replies += 1
        elif reaction.kind == "click":
            answer_from_link(
                session,
                self.keyring,
                survey_token(self.keyring, tenant.id, payload["message"], clock.now()),
                payload["score"],
                clock,
                definitions,
            )
            self.tally.clicks += 1
        elif reaction.kind == "agent":
            self._call_lead(session, payload["task"], clock)

    def _place_order(
        self, session: Session, tenant: Tenant, enrollment_id: int, clock: Clock, on_event: OnEvent
    ) -> None:
        enrollment = session.get_one(Enrollment, enrollment_id)
        contact = session.get_one(Contact, enrollment.contact_id)
        self.tally.orders += 1
        currency = "KRW" if tenant.jurisdiction == "KR" else "USD"
        value = self.rng.randrange(89, 3900) * 100 if currency == "KRW" else round(self.rng.uniform(12, 240), 2)
        data = {"order_id": f"R-{tenant.id}-{self.tally.orders:05d}", "value": value, "currency": currency}
        if enrollment.campaign == "cart_abandonment":
            data["cart_id"] = enrollment.dedupe_key  # the reminded cart is the one bought
        envelope = {
            "id": f"evt-react-{tenant.id}-{self.tally.orders:05d}",
            "type": "order_placed",
            "occurred_at": clock.now().isoformat(),
            "contact": {"external_id": contact.external_id},
            "data": data,
        }
        ingest_items(session, tenant, [envelope], clock, on_event=on_event)

    def _call_lead(self, session: Session, task_id: int, clock: Clock) -> None:
        task = session.get(CallbackTask, task_id)
        if task is None or task.status != TaskStatus.OPEN:
            return
        self.tally.agent_calls += 1
        outcome = self.rng.choices(("no_answer", "voicemail", "reached"), (25, 15, 60))[0]
        task.attempts += 1
        if outcome in ("no_answer", "voicemail"):
            return  # the lead stays in the queue and keeps getting the nurture sequence
        task.status, task.outcome, task.closed_at = TaskStatus.CLOSED, outcome, clock.now()
        if task.enrollment_id is not None:
            end_lead_nurture(session, task.enrollment_id, f"agent recorded an outcome: {outcome}", clock)
