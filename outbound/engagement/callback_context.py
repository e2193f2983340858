"""What an agent sees before calling: the customer's recent events, messages, survey answers, consent
state, suppressions and past calls, every query scoped by the tenant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from outbound.addresses import address_hash
from outbound.compliance import Decision
from outbound.db.models import (
    Agent,
    CallbackAttempt,
    CallbackTask,
    Consent,
    Contact,
    Event,
    Message,
    Suppression,
    SurveyResponse,
    Tenant,
)
from outbound.engagement.calling_rules import call_decisions
from outbound.errors import NotFound
from outbound.vocabulary import Channel


@dataclass(frozen=True)
class CustomerContext:
    """What an agent sees before calling: recent events, messages, survey answers, consent state, past calls."""

    contact: Contact
    zone: str
    local_time: datetime
    decision: Decision
    events: list[Event]
    messages: list[Message]
    surveys: list[SurveyResponse]
    consents: list[Consent]  # the latest ledger entry per (channel, purpose)
    suppressions: list[tuple[str, str]]  # (channel, reason)
    attempts: list[tuple[CallbackAttempt, str | None]]  # (attempt, agent name), newest first


def customer_context(
    session: Session, tenant: Tenant, task: CallbackTask, now: datetime, recent: int = 10
) -> CustomerContext:
    """The context of the task's customer, every query scoped by the tenant."""
    contact = session.get(Contact, task.contact_id)
    if contact is None or contact.tenant_id != tenant.id:
        raise NotFound(f"no contact for callback task {task.id}")
    zone, decision = call_decisions(session, tenant, [contact], now)[contact.id]
    mine = {"tenant_id": tenant.id, "contact_id": contact.id}
    events = session.scalars(select(Event).filter_by(**mine).order_by(Event.occurred_at.desc()).limit(recent)).all()
    messages = session.scalars(
        select(Message).filter_by(**mine).order_by(Message.updated_at.desc(), Message.id.desc()).limit(recent)
    ).all()
    surveys = session.scalars(
        select(SurveyResponse).filter_by(**mine).order_by(SurveyResponse.received_at.desc()).limit(recent)
    ).all()
    latest: dict[tuple[str, str], Consent] = {}
    for consent in session.scalars(select(Consent).filter_by(**mine).order_by(Consent.at, Consent.id)):
        latest[(consent.channel, consent.purpose)] = consent
    addresses = [
        (channel, address_hash(channel, value))
        for channel, value in (
            (Channel.SMS, contact.phone),
            (Channel.VOICE, contact.phone),
            (Channel.EMAIL, contact.email),
        )
        if value
    ]
    suppressions = [
        (row.channel, row.reason)
        for row in session.scalars(
            select(Suppression).where(
                Suppression.tenant_id == tenant.id,
                or_(*[and_(Suppression.channel == c, Suppression.address_hash == h) for c, h in addresses])
                if addresses
                else Suppression.id.is_(None),
            )
        )
    ]
    attempts = session.execute(
        select(CallbackAttempt, Agent.name)
        .outerjoin(Agent, Agent.id == CallbackAttempt.agent_id)
        .join(CallbackTask, CallbackTask.id == CallbackAttempt.task_id)
        .where(CallbackAttempt.tenant_id == tenant.id, CallbackTask.contact_id == contact.id)
        .order_by(CallbackAttempt.at.desc(), CallbackAttempt.id.desc())
        .limit(recent)
    ).all()
    return CustomerContext(
        contact,
        zone,
        now.astimezone(ZoneInfo(zone)),
        decision,
        list(events),
        list(messages),
        list(surveys),
        sorted(latest.values(), key=lambda c: (c.channel, c.purpose)),
        suppressions,
        [(attempt, name) for attempt, name in attempts],
    )
