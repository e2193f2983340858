"""Delivery: what providers report about sent messages → delivery events, message states, suppressions.

Each report (a Twilio status callback, one SendGrid event) is stored once as a
`DeliveryEvent`, keyed by (provider, provider_event_id): the same report again
changes nothing. Reports only move a message forward (sending/unknown → sent →
delivered/undelivered/failed), so they may arrive in any order: `delivered` before
`sent` ends in `delivered`, and a late `sent` after it is stored but changes nothing.

A report for a message we cannot find is stored unattached when its tenant is known
(and attached later if the worker learns the provider id), else only logged; either
way the webhook answers 200 so the provider does not retry it forever.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outbound.addresses import address_hash
from outbound.db.messages import FINAL, ClaimedMessage, transition
from outbound.db.models import DeliveryEvent, Message, Suppression
from outbound.db.suppressions import suppress
from outbound.vocabulary import Channel, MessageStatus, Source, SuppressionReason

log = logging.getLogger(__name__)

S = MessageStatus

MAX_ATTEMPTS = 5
# Provider error codes that say the address itself is bad: suppress, never retry (COMPLIANCE 3).
SUPPRESSING_CODES = {
    "21610": SuppressionReason.OPT_OUT,
    "21211": SuppressionReason.UNDELIVERABLE,
    "30006": SuppressionReason.UNDELIVERABLE,
    "21614": SuppressionReason.UNDELIVERABLE,
}
# Carrier errors that may clear up (handset off or unknown for now): try again later, up to MAX_ATTEMPTS.
RETRY_LATER_CODES = frozenset({"30003", "30005"})

# Twilio MessageStatus → the message status it proves. Unlisted statuses are stored and change nothing.
TWILIO_STATUS = {
    "accepted": S.SENT,
    "scheduled": S.SENT,
    "queued": S.SENT,
    "sending": S.SENT,
    "sent": S.SENT,
    "delivered": S.DELIVERED,
    "read": S.DELIVERED,
    "undelivered": S.UNDELIVERED,
    "failed": S.FAILED,
    "canceled": S.FAILED,
}
# SendGrid event → the message status it proves. Engagement means the mail arrived.
SENDGRID_STATUS = {
    "processed": S.SENT,
    "deferred": S.SENT,
    "delivered": S.DELIVERED,
    "open": S.DELIVERED,
    "click": S.DELIVERED,
    "spamreport": S.DELIVERED,
    "unsubscribe": S.DELIVERED,
    "group_unsubscribe": S.DELIVERED,
    "bounce": S.UNDELIVERED,
    "dropped": S.FAILED,
}
SENDGRID_EVENTS = frozenset(SENDGRID_STATUS) | {"group_resubscribe"}
SENDGRID_SUPPRESSIONS = {
    "spamreport": SuppressionReason.SPAM_REPORT,
    "unsubscribe": SuppressionReason.UNSUBSCRIBE,
    "group_unsubscribe": SuppressionReason.GROUP_UNSUBSCRIBE,
}
_RANK: dict[str, int] = {S.SENDING: 0, S.UNKNOWN: 0, S.SENT: 1, S.DELIVERED: 2, S.UNDELIVERED: 2, S.FAILED: 2}


@dataclass(frozen=True, kw_only=True)
class DeliveryReport:
    """One provider report, read from its webhook. `address` (the recipient) is used for
    suppressions only and never stored in the event; `detail` must hold no personal data."""

    provider: str
    event_id: str
    type: str
    at: datetime
    tenant_id: int | None = None
    message_id: int | None = None
    provider_message_id: str | None = None
    address: str | None = None
    error_code: str | None = None
    bounce_type: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Effect:
    """What a report means: the status it proves, a suppression to add or lift, whether to retry."""

    status: MessageStatus | None = None
    suppress: SuppressionReason | None = None
    lift: SuppressionReason | None = None
    retry: bool = False


@dataclass(frozen=True, kw_only=True)
class Applied:
    """What applying one report did."""

    stored: bool
    duplicate: bool = False
    message_id: int | None = None
    status: str | None = None
    changed: bool = False
    suppressed: str | None = None


def effect_of(provider: str, type: str, error_code: str | None = None, bounce_type: str | None = None) -> Effect:
    """The meaning of one report (pure)."""
    if provider == "twilio":
        status = TWILIO_STATUS.get(type)
        code = error_code or ""
        retry = status in (S.UNDELIVERED, S.FAILED) and code in RETRY_LATER_CODES
        return Effect(status=status, suppress=SUPPRESSING_CODES.get(code), retry=retry)
    if type == "bounce":
        # `type: blocked` is a refusal of this mail (content, reputation), not a dead address.
        return Effect(
            status=S.UNDELIVERED, suppress=None if bounce_type == "blocked" else SuppressionReason.HARD_BOUNCE
        )
    if type == "group_resubscribe":
        return Effect(lift=SuppressionReason.GROUP_UNSUBSCRIBE)
    return Effect(status=SENDGRID_STATUS.get(type), suppress=SENDGRID_SUPPRESSIONS.get(type))


def retry_delay(attempts: int, rng: random.Random, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with jitter: 30 s doubling per attempt, capped at an hour, times 0.5–1.5,
    and never shorter than what the provider asked for."""
    backoff = min(3600.0, 30.0 * 2 ** max(0, attempts - 1)) * (0.5 + rng.random())
    return timedelta(seconds=max(backoff, retry_after or 0))


def apply_report(session: Session, report: DeliveryReport, now: datetime, rng: random.Random | None = None) -> Applied:
    """Store one report once and apply it to its message and the suppression list. Flushes, never commits."""
    message = find_message(session, report)
    tenant_id = message.tenant_id if message is not None else report.tenant_id
    if tenant_id is None:
        log.warning("%s report %s matches no message or tenant; not stored", report.provider, report.event_id)
        return Applied(stored=False)
    if session.scalar(
        select(DeliveryEvent.id).where(
            DeliveryEvent.provider == report.provider, DeliveryEvent.provider_event_id == report.event_id
        )
    ):
        return Applied(stored=False, duplicate=True, message_id=message.id if message else None)
    event = DeliveryEvent(
        tenant_id=tenant_id,
        message_id=message.id if message else None,
        provider=report.provider,
        provider_event_id=report.event_id,
        type=report.type[:32],
        at=report.at,
        received_at=now,
        detail={
            **report.detail,
            "error_code": report.error_code,
            "bounce_type": report.bounce_type,
            "provider_message_id": report.provider_message_id,
        },
    )
    try:
        # A concurrent delivery of the same report loses here, on the unique key.
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError:
        return Applied(stored=False, duplicate=True, message_id=message.id if message else None)
    channel = (
        message.channel if message is not None else (Channel.SMS if report.provider == "twilio" else Channel.EMAIL)
    )
    address = (message.to_address if message is not None else None) or report.address
    return _apply(session, event, message, tenant_id, channel, address, now, rng or random.Random())


def find_message(session: Session, report: DeliveryReport) -> Message | None:
    """The message a report is about: by our id (SendGrid custom_args), else by the provider's id, else
    (Twilio) the one message to that number still waiting for its provider id."""
    if report.message_id is not None:
        message = session.get(Message, report.message_id, with_for_update=True)
        if (
            message is None
            or (report.tenant_id is not None and message.tenant_id != report.tenant_id)
            or message.channel != (Channel.SMS if report.provider == "twilio" else Channel.EMAIL)
        ):
            return None
        return message
    if not report.provider_message_id:
        return None
    query = select(Message).where(
        Message.provider == report.provider, Message.provider_id == report.provider_message_id
    )
    if report.tenant_id is not None:
        query = query.where(Message.tenant_id == report.tenant_id)
    if report.provider == "sendgrid":
        # One SendGrid request carries many messages under one X-Message-Id: the recipient tells them
        # apart, and only when exactly one message of that request went to it.
        if not report.address:
            return None
        found = session.scalars(
            query.where(func.lower(Message.to_address) == report.address).with_for_update().limit(2)
        ).all()
        return found[0] if len(found) == 1 else None
    message = session.scalars(query.with_for_update().limit(1)).first()
    if message is not None or report.provider != "twilio" or not report.address:
        return message
    # The callback can beat the worker's record of the answer, and a timed-out send never learns
    # its id: match the one message to this number with no provider id yet, if there is exactly one.
    waiting = select(Message).where(
        Message.provider == "twilio",
        Message.provider_id.is_(None),
        Message.channel == Channel.SMS,
        Message.status.in_((S.SENDING, S.UNKNOWN)),
        Message.to_address == report.address,
    )
    if report.tenant_id is not None:
        waiting = waiting.where(Message.tenant_id == report.tenant_id)
    candidates = list(session.scalars(waiting.with_for_update().limit(2)))
    if len(candidates) != 1:
        return None
    candidates[0].provider_id = report.provider_message_id
    return candidates[0]


def attach_pending(
    session: Session, messages: Iterable[Message | ClaimedMessage], now: datetime, rng: random.Random | None = None
) -> int:
    """Apply reports that arrived before we knew these messages' provider ids (Twilio ids are `SID:status`):
    one query for the whole batch."""
    by_sid = {m.provider_id: m for m in messages if m.provider_id and m.provider == "twilio"}
    if not by_sid:
        return 0
    prefixes: dict[int, list[str]] = defaultdict(list)
    for sid in by_sid:
        prefixes[len(sid) + 1].append(f"{sid}:")
    pending = session.scalars(
        select(DeliveryEvent)
        .where(
            DeliveryEvent.provider == "twilio",
            DeliveryEvent.message_id.is_(None),
            DeliveryEvent.tenant_id.in_({m.tenant_id for m in by_sid.values()}),
            or_(
                *(
                    func.substr(DeliveryEvent.provider_event_id, 1, length).in_(group)
                    for length, group in prefixes.items()
                )
            ),
        )
        .order_by(DeliveryEvent.id)
    ).all()
    attached = 0
    for event in pending:
        message = by_sid.get(event.provider_event_id.partition(":")[0])
        if message is None or message.tenant_id != event.tenant_id:
            continue
        event.message_id = message.id
        _apply(
            session, event, message, message.tenant_id, message.channel, message.to_address, now, rng or random.Random()
        )
        attached += 1
    return attached


def _apply(
    session: Session,
    event: DeliveryEvent,
    message: Message | ClaimedMessage | None,
    tenant_id: int,
    channel: str,
    address: str | None,
    now: datetime,
    rng: random.Random,
) -> Applied:
    detail = event.detail or {}
    effect = effect_of(event.provider, event.type, detail.get("error_code"), detail.get("bounce_type"))
    source = f"{event.provider} {event.type}" + (f" (code {detail['error_code']})" if detail.get("error_code") else "")
    if address and effect.suppress:
        suppress(session, tenant_id, channel, address, reason=effect.suppress, source=source, at=now)
    if address and effect.lift:
        session.execute(
            delete(Suppression).where(
                Suppression.tenant_id == tenant_id,
                Suppression.channel == channel,
                Suppression.address_hash == address_hash(channel, address),
                Suppression.reason == effect.lift,
            )
        )
    if message is None:
        return Applied(stored=True, suppressed=effect.suppress)
    changed = _advance(session, message, event, effect, source, now, rng)
    return Applied(
        stored=True, message_id=message.id, status=message.status, changed=changed, suppressed=effect.suppress
    )


def _advance(
    session: Session,
    message: Message | ClaimedMessage,
    event: DeliveryEvent,
    effect: Effect,
    source: str,
    now: datetime,
    rng: random.Random,
) -> bool:
    """Move the message forward to what the report proves; never back, never out of a final state."""
    target, current = effect.status, message.status
    if target is None or current in FINAL or current not in _RANK or _RANK[target] <= _RANK[current]:
        return False
    code = (event.detail or {}).get("error_code")
    if message.provider_id is None and (event.detail or {}).get("provider_message_id"):
        message.provider_id = event.detail["provider_message_id"]
    if code:
        message.error_code = str(code)[:32]
    rule = f"{event.provider}_{event.type}"[:64]
    detail = {"delivery_event": event.provider_event_id, "code": code}
    if effect.retry and message.attempts < MAX_ATTEMPTS:
        message.due_at = now + retry_delay(message.attempts, rng)
        transition(
            session,
            message,
            S.SCHEDULED,
            at=now,
            source=Source.WEBHOOK,
            rule=rule,
            reason=f"{source}: not delivered for now, attempt {message.attempts} of {MAX_ATTEMPTS}; "
            f"trying again at {message.due_at:%Y-%m-%d %H:%M:%S}Z",
            detail={**detail, "retry_at": message.due_at.isoformat()},
        )
        return True
    if target in (S.SENT, S.DELIVERED) and message.sent_at is None:
        message.sent_at = event.at
    if target == S.DELIVERED:
        message.delivered_at = event.at
    reason = f"{source}" + (f" after {message.attempts} attempts" if effect.retry else "")
    transition(session, message, target, at=now, source=Source.WEBHOOK, rule=rule, reason=reason, detail=detail)
    return True
