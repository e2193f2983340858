"""Trigger rules turn events into enrollments; enrollments schedule one message per step.

Exit rules run first, so an event that both ends one enrollment and starts another
(an order placed) never leaves a reminder for the cart it just bought.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.context import contact_view, event_view
from outbound.db.models import CallbackTask, Contact, Enrollment, Event, Message, MessageTransition, Tenant
from outbound.definitions import Definitions

PENDING = ("scheduled", "deferred")


@dataclass
class EventOutcome:
    """What one event did: enrollments started, skipped as duplicates, and ended."""

    enrolled: list[Enrollment] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    exited: list[Enrollment] = field(default_factory=list)


def serves(campaign, tenant: Tenant) -> bool:
    """A campaign serves every tenant unless it names the tenants it serves."""
    return not campaign.tenants or tenant.slug in campaign.tenants


def process_event(
    session: Session, tenant: Tenant, event: Event, contact: Contact, definitions: Definitions, clock: Clock
) -> EventOutcome:
    """Apply exit rules, then trigger rules, for one stored event."""
    outcome = EventOutcome()
    names = {"event": event_view(event), "contact": contact_view(contact)}
    for campaign, rule in definitions.exits_for(event.type):
        if not serves(campaign, tenant):
            continue
        query = select(Enrollment).where(
            Enrollment.tenant_id == tenant.id,
            Enrollment.campaign == campaign.name,
            Enrollment.contact_id == contact.id,
            Enrollment.status == "active",
        )
        if rule.key is not None:
            query = query.where(Enrollment.dedupe_key == _key(rule.key.evaluate(**names)))
        for enrollment in session.scalars(query):
            exit_enrollment(session, enrollment, clock.now(), f"exit: {event.type} {event.event_id}")
            outcome.exited.append(enrollment)
    for trigger in definitions.triggers_for(event.type):
        campaign = definitions.campaigns[trigger.campaign]
        if not serves(campaign, tenant):
            continue
        if trigger.when is not None and not trigger.when.test(**names):
            continue
        enrollment = enroll(session, tenant, campaign, contact, event, clock, trigger=trigger.name)
        if enrollment is None:
            outcome.skipped.append(campaign.name)
        else:
            outcome.enrolled.append(enrollment)
    return outcome


def enroll(
    session: Session, tenant: Tenant, campaign, contact: Contact, event: Event | None, clock: Clock,
    *, trigger: str | None = None,
) -> Enrollment | None:
    """Enroll `contact` in `campaign` and schedule its steps; None if already enrolled with that key in the window."""
    now = clock.now()
    names = {"event": event_view(event), "contact": contact_view(contact)}
    rule = campaign.enrollment
    key = _key(rule.key.evaluate(**names)) if rule is not None and rule.key is not None else ""
    window = rule.window if rule is not None else None
    if window is not None:
        existing = session.scalar(
            select(Enrollment.id).where(
                Enrollment.tenant_id == tenant.id,
                Enrollment.campaign == campaign.name,
                Enrollment.contact_id == contact.id,
                Enrollment.dedupe_key == key,
                Enrollment.enrolled_at > now - window,
            ).limit(1)
        )
        if existing is not None:
            return None
    enrollment = Enrollment(
        tenant_id=tenant.id, campaign=campaign.name, contact_id=contact.id, dedupe_key=key,
        trigger=trigger, event_id=event.id if event is not None else None, status="active", enrolled_at=now,
    )
    session.add(enrollment)
    session.flush()
    start = event.occurred_at if event is not None else now
    messages = []
    for step in campaign.steps:
        if step.when is not None and not step.when.test(**names):
            continue
        messages.append(Message(
            tenant_id=tenant.id, enrollment_id=enrollment.id, contact_id=contact.id, campaign=campaign.name,
            step=step.id, channel=step.channel, purpose=campaign.purpose, template=step.template,
            status="scheduled", due_at=max(start + step.delay, now), created_at=now, updated_at=now,
        ))
    session.add_all(messages)
    if campaign.callback is not None:
        session.add(CallbackTask(
            tenant_id=tenant.id, contact_id=contact.id, campaign=campaign.name, enrollment_id=enrollment.id,
            reason=campaign.callback.reason, priority=campaign.callback.priority, status="open",
            due_at=now + campaign.callback.delay, created_at=now,
        ))
    session.flush()
    session.add_all(
        MessageTransition(tenant_id=tenant.id, message_id=m.id, at=now, from_status=None, to_status="scheduled",
                          source="trigger", reason=f"enrolled by {trigger or 'operator'}", detail={})
        for m in messages
    )
    if not messages and campaign.callback is None:
        _end(enrollment, now, "completed", "no step applies to this contact")
    return enrollment


def exit_enrollment(session: Session, enrollment: Enrollment, at: datetime, reason: str) -> int:
    """End an enrollment and cancel its pending messages; returns how many were cancelled."""
    pending = session.scalars(
        select(Message).where(Message.enrollment_id == enrollment.id, Message.status.in_(PENDING))
    ).all()
    for message in pending:
        from outbound.messages import transition

        transition(session, message, "cancelled", at=at, source="trigger", rule="exit", reason=reason)
    _end(enrollment, at, "exited", reason)
    return len(pending)


def complete_finished_enrollments(session: Session, tenant_id: int, at: datetime) -> None:
    """Mark active enrollments whose messages are all past scheduling as completed."""
    still_pending = select(Message.enrollment_id).where(Message.status.in_(PENDING + ("sending",)))
    session.execute(
        update(Enrollment)
        .where(Enrollment.tenant_id == tenant_id, Enrollment.status == "active",
               Enrollment.id.not_in(still_pending.where(Message.enrollment_id.is_not(None))))
        .values(status="completed", ended_at=at, end_reason="all steps done")
    )


def _end(enrollment: Enrollment, at: datetime, status: str, reason: str) -> None:
    enrollment.status, enrollment.ended_at, enrollment.end_reason = status, at, reason


def _key(value) -> str:
    return "" if value is None else str(value)
