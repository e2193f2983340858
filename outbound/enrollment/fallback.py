"""Multi-channel fallback: when an SMS cannot be delivered to the address, send the step by email.

A step with ``fallback: email`` gets a second message on that channel when its SMS turns out
undeliverable: the contact has no number, the number is marked undeliverable (invalid, landline),
the provider refuses it as such, or the carrier reports it undelivered. The fallback message is an
ordinary scheduled message: it passes the compliance gate like any other, and never falls back again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.db.enrollments import insert_messages
from outbound.db.messages import ClaimedMessage
from outbound.db.models import Message
from outbound.definitions import Definitions
from outbound.vocabulary import MessageStatus, Rule, Source, SuppressionReason

# Provider error codes that mean the address cannot take the channel (Twilio: invalid, landline, not mobile).
UNDELIVERABLE_CODES = frozenset({"21211", "30006", "21614", "30005", "30003"})


def undeliverable(
    rule: str | None, suppression_reasons: list[str] | tuple[str, ...] = (), code: str | None = None
) -> bool:
    """Whether a block or failure means the address cannot take the channel, rather than 'must not' (pure)."""
    if rule == Rule.NO_ADDRESS or (code is not None and code in UNDELIVERABLE_CODES):
        return True
    # A number marked undeliverable falls back; an opt-out never does (the contact said no, not 'can't').
    return (
        rule == Rule.SUPPRESSION
        and SuppressionReason.UNDELIVERABLE in suppression_reasons
        and SuppressionReason.OPT_OUT not in suppression_reasons
    )


def schedule_fallback(
    session: Session, message: Message | ClaimedMessage, definitions: Definitions, at: datetime, reason: str
) -> Message | None:
    """Schedule the step again on its fallback channel, due now; None if it has none or one exists."""
    campaign = definitions.campaigns.get(message.campaign)
    step = campaign.step(message.step) if campaign is not None else None
    if step is None or step.fallback is None or message.channel != step.channel:
        return None
    existing = session.scalar(
        select(Message.id)
        .where(
            Message.tenant_id == message.tenant_id,
            Message.contact_id == message.contact_id,
            Message.enrollment_id == message.enrollment_id
            if message.enrollment_id is not None
            else Message.enrollment_id.is_(None),
            Message.campaign == message.campaign,
            Message.step == message.step,
            Message.channel == step.fallback,
        )
        .limit(1)
    )
    if existing is not None:
        return None
    [fallback_id] = insert_messages(
        session,
        [
            {
                "tenant_id": message.tenant_id,
                "enrollment_id": message.enrollment_id,
                "contact_id": message.contact_id,
                "campaign": message.campaign,
                "step": message.step,
                "channel": step.fallback,
                "purpose": message.purpose,
                "template": message.template,
                "variant": message.variant,
                "status": MessageStatus.SCHEDULED,
                "due_at": at,
                "created_at": at,
                "updated_at": at,
                "attempts": 0,
            }
        ],
        [
            {
                "tenant_id": message.tenant_id,
                "at": at,
                "from_status": None,
                "to_status": MessageStatus.SCHEDULED,
                "source": Source.WORKER,
                "rule": Rule.FALLBACK,
                "reason": f"fallback for {message.channel} message {message.id}: {reason}",
                "detail": {"from_message": message.id},
            }
        ],
    )
    return session.get(Message, fallback_id)


def sweep_undelivered(session: Session, definitions, now: datetime, lookback: timedelta = timedelta(days=2)) -> int:
    """Fall back for recent SMS the carrier reported undelivered (status reports); returns how many were scheduled."""
    names = [name for name, campaign in definitions.campaigns.items() if any(step.fallback for step in campaign.steps)]
    if not names:
        return 0
    candidates = session.scalars(
        select(Message)
        .where(
            Message.campaign.in_(names),
            Message.status.in_((MessageStatus.UNDELIVERED, MessageStatus.FAILED)),
            Message.updated_at >= now - lookback,
        )
        .order_by(Message.id)
    )
    scheduled = 0
    for message in candidates:
        if message.status == MessageStatus.UNDELIVERED or undeliverable(message.rule, code=message.error_code):
            scheduled += (
                schedule_fallback(
                    session, message, definitions, now, f"{message.status}: {message.reason or 'undeliverable'}"
                )
                is not None
            )
    return scheduled
