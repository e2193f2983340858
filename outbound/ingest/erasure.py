"""Erasure (COMPLIANCE 6, GDPR Art. 17): remove a contact's personal data and message bodies, keep hashed
suppressions so the same address imported again is still blocked.

What stays: the contact row as a tombstone (ids only, `erased_at` set), the consent
ledger without personal data (channel, purpose, granted, when, source), message
rows and their trails without addresses or bodies, and one suppression per
address, by hash only, with reason `erased` unless one already existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from outbound.addresses import address_hash
from outbound.db.messages import transition
from outbound.db.models import (
    CallbackAttempt,
    CallbackTask,
    Contact,
    DeliveryEvent,
    Enrollment,
    Event,
    InboundMessage,
    Message,
    Suppression,
    SurveyResponse,
    Tenant,
)
from outbound.db.suppressions import suppress
from outbound.errors import NotFound
from outbound.vocabulary import Channel, EnrollmentStatus, MessageStatus, Rule, Source, SuppressionReason, TaskStatus

PENDING = (MessageStatus.SCHEDULED, MessageStatus.DEFERRED)


@dataclass
class ErasureReport:
    """What an erasure did."""

    contact_id: int
    suppressions_kept: int = 0
    messages_cleared: int = 0
    messages_cancelled: int = 0
    inbound_cleared: int = 0
    events_cleared: int = 0


def erase_contact(session: Session, tenant: Tenant, external_id: str, now: datetime) -> ErasureReport:
    """Erase the tenant's contact `external_id`; NotFound if there is none (or it is already erased)."""
    contact = session.scalar(
        select(Contact).where(
            Contact.tenant_id == tenant.id, Contact.external_id == external_id, Contact.erased_at.is_(None)
        )
    )
    if contact is None:
        raise NotFound(f"no contact {external_id!r} in tenant {tenant.slug!r}")
    report = ErasureReport(contact_id=contact.id)
    addresses: list[tuple[str, str]] = [
        (channel, address)
        for channel, address in (
            (Channel.SMS, contact.phone),
            (Channel.VOICE, contact.phone),
            (Channel.EMAIL, contact.email),
        )
        if address
    ]
    for channel, address in addresses:
        suppress(session, tenant.id, channel, address, reason=SuppressionReason.ERASED, source=Source.ERASURE, at=now)
        report.suppressions_kept += 1
    hashes = {row.address_hash for row in _suppressions_of(session, tenant.id, addresses)}
    if hashes:
        session.execute(
            update(Suppression)
            .where(Suppression.tenant_id == tenant.id, Suppression.address_hash.in_(hashes))
            .values(address=None)
        )

    for message in session.scalars(
        select(Message).where(
            Message.tenant_id == tenant.id, Message.contact_id == contact.id, Message.status.in_(PENDING)
        )
    ):
        transition(
            session,
            message,
            MessageStatus.CANCELLED,
            at=now,
            source=Source.OPERATOR,
            rule=Rule.ERASURE,
            reason="the contact was erased",
        )
        report.messages_cancelled += 1
    message_ids = select(Message.id).where(Message.tenant_id == tenant.id, Message.contact_id == contact.id)
    report.messages_cleared = (
        session.execute(
            update(Message)
            .where(Message.tenant_id == tenant.id, Message.contact_id == contact.id)
            .values(to_address=None, subject=None, body=None)
        ).rowcount  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
        or 0
    )
    session.execute(
        update(DeliveryEvent)
        .where(DeliveryEvent.tenant_id == tenant.id, DeliveryEvent.message_id.in_(message_ids))
        .values(detail={})
    )
    report.inbound_cleared = (
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.tenant_id == tenant.id, InboundMessage.contact_id == contact.id)
            .values(from_address=None, body=None)
        ).rowcount  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
        or 0
    )
    report.events_cleared = (
        session.execute(
            update(Event).where(Event.tenant_id == tenant.id, Event.contact_id == contact.id).values(data={})
        ).rowcount  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
        or 0
    )
    session.execute(
        update(SurveyResponse)
        .where(SurveyResponse.tenant_id == tenant.id, SurveyResponse.contact_id == contact.id)
        .values(comment=None)
    )
    task_ids = select(CallbackTask.id).where(CallbackTask.tenant_id == tenant.id, CallbackTask.contact_id == contact.id)
    session.execute(
        update(CallbackAttempt)
        .where(CallbackAttempt.tenant_id == tenant.id, CallbackAttempt.task_id.in_(task_ids))
        .values(notes=None)
    )
    session.execute(
        update(CallbackTask)
        .where(
            CallbackTask.tenant_id == tenant.id,
            CallbackTask.contact_id == contact.id,
            CallbackTask.status != TaskStatus.CLOSED,
        )
        .values(status=TaskStatus.CLOSED.value, closed_at=now, outcome="erased")
    )
    session.execute(
        update(CallbackTask)
        .where(CallbackTask.tenant_id == tenant.id, CallbackTask.contact_id == contact.id)
        .values(notes=None)
    )
    session.execute(
        update(Enrollment)
        .where(
            Enrollment.tenant_id == tenant.id,
            Enrollment.contact_id == contact.id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
        )
        .values(status=EnrollmentStatus.EXITED.value, ended_at=now, end_reason="the contact was erased")
    )
    # The external id is the order system's key for a person; a re-import under it starts a new contact.
    contact.external_id = f"erased:{contact.id}"
    contact.phone = contact.email = contact.timezone = contact.locale = None
    contact.attributes = {}
    contact.erased_at = contact.updated_at = now
    session.flush()
    return report


def _suppressions_of(session: Session, tenant_id: int, addresses: list[tuple[str, str]]) -> list[Suppression]:
    wanted = {(channel, address_hash(channel, address)) for channel, address in addresses}
    rows = session.scalars(
        select(Suppression).where(
            Suppression.tenant_id == tenant_id, Suppression.address_hash.in_({h for _, h in wanted})
        )
    )
    return [row for row in rows if (row.channel, row.address_hash) in wanted]
