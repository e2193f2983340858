"""Inbound SMS: store it once, read it as a keyword (STOP, START, HELP, YES) or a survey answer, apply it.

The signed Twilio webhook calls `receive_inbound_sms` inside its transaction and
sends back the reply it returns, if any. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from outbound.addresses import address_hash, default_region, normalise_phone
from outbound.clock import Clock
from outbound.db.models import Consent, Contact, InboundMessage, Message, Suppression, Tenant
from outbound.db.suppressions import suppress
from outbound.delivery import keywords
from outbound.errors import InvalidInput
from outbound.vocabulary import Channel, Purpose, SuppressionReason

if TYPE_CHECKING:
    from outbound.config import Settings
from outbound.definitions import Definitions
from outbound.engagement.surveys import answer_from_sms

SOURCE = "inbound SMS"
# Purposes an SMS opt-out revokes in the ledger. Transactional SMS stops through the suppression
# (which lets a campaign marked essential through); a revoked transactional consent would not.
REVOKED_BY_STOP: tuple[str, ...] = (Purpose.MARKETING, Purpose.SURVEY)
REPLY_ONCE_WITHIN = timedelta(days=1)
RECONFIRMATION_CAMPAIGNS = frozenset({"kr_consent_reconfirmation"})


@dataclass(frozen=True)
class InboundOutcome:
    """What an inbound SMS was (`opt_out`, `opt_in`, `help`, `survey_answer`, `other`, `duplicate`),
    the reply to send (None: send nothing), and the contact it came from, if known."""

    kind: str
    reply: str | None
    contact_id: int | None


def receive_inbound_sms(
    session: Session,
    tenant: Tenant,
    *,
    from_number: str,
    to_number: str,
    body: str,
    provider_id: str | None,
    clock: Clock,
    settings: Settings,
    definitions: Definitions,
) -> InboundOutcome:
    """Store one inbound SMS (once per `provider_id`), apply its keyword, and return the reply to send."""
    now = clock.now()
    if provider_id:
        seen = session.scalar(select(InboundMessage).where(InboundMessage.provider_id == provider_id))
        if seen is not None:
            # A provider retry: the first delivery did the work and got the reply.
            return InboundOutcome(kind="duplicate", reply=None, contact_id=seen.contact_id)
    phone = _normalised(from_number, tenant)
    contacts = list(
        session.scalars(
            select(Contact)
            .where(Contact.tenant_id == tenant.id, Contact.phone == phone, Contact.erased_at.is_(None))
            .order_by(Contact.id)
        )
    )
    contact = contacts[0] if contacts else None
    kind = keywords.classify(body)
    if kind == keywords.YES and not _yes_means_consent(session, tenant, contact, phone):
        kind = None
    inbound = InboundMessage(
        tenant_id=tenant.id,
        contact_id=contact.id if contact else None,
        channel=Channel.SMS,
        from_address=phone,
        to_address=to_number,
        body=body,
        provider_id=provider_id,
        kind=kind or "other",
        received_at=now,
    )
    session.add(inbound)
    session.flush()
    sender = (tenant.settings or {}).get("sender_name") or tenant.name
    korean = keywords.is_korean((contact.locale if contact else None) or tenant.locale)
    contact_id = contact.id if contact else None

    if kind == keywords.OPT_OUT:
        replied_lately = _replied_to_opt_out_since(session, tenant.id, phone, now - REPLY_ONCE_WITHIN, inbound.id)
        suppress(session, tenant.id, Channel.SMS, phone, reason=SuppressionReason.OPT_OUT, source=SOURCE, at=now)
        for each in contacts:
            for purpose in REVOKED_BY_STOP:
                _ledger(session, tenant, each, purpose, False, now, body, notified=True)
        reply = None if replied_lately else keywords.opt_out_reply(sender, korean)
        return InboundOutcome(kind="opt_out", reply=reply, contact_id=contact_id)
    if kind == keywords.OPT_IN:
        _lift_opt_out(session, tenant.id, phone)
        for each in contacts:
            for purpose in _revoked_by_sms(session, tenant.id, each.id):
                _ledger(session, tenant, each, purpose, True, now, body, notified=True)
        return InboundOutcome(kind="opt_in", reply=keywords.opt_in_reply(sender, korean), contact_id=contact_id)
    if kind == keywords.YES:
        inbound.kind = "opt_in"
        _lift_opt_out(session, tenant.id, phone)
        for each in contacts:
            night = _latest_grant_night(session, tenant.id, each.id)
            _ledger(session, tenant, each, Purpose.MARKETING, True, now, body, notified=True, night=night)
        return InboundOutcome(kind="opt_in", reply=keywords.reconfirm_reply(sender, korean), contact_id=contact_id)
    if kind == keywords.HELP:
        support = (tenant.settings or {}).get("support_contact")
        return InboundOutcome(kind="help", reply=keywords.help_reply(sender, support, korean), contact_id=contact_id)
    if contact is not None:
        response = answer_from_sms(session, tenant, contact, inbound, clock, definitions)
        if response is not None:
            inbound.kind = "survey_answer"
            return InboundOutcome(kind="survey_answer", reply=None, contact_id=contact_id)
    return InboundOutcome(kind="other", reply=None, contact_id=contact_id)


def _normalised(number: str, tenant: Tenant) -> str:
    try:
        return normalise_phone(number, default_region(tenant.jurisdiction, tenant.timezone))
    except InvalidInput:
        # Keep what came: a suppression must hold even for a number we cannot parse.
        return (number or "").strip()


def _ledger(
    session: Session,
    tenant: Tenant,
    contact: Contact,
    purpose: str,
    granted: bool,
    at: datetime,
    body: str,
    *,
    notified: bool,
    night: bool = False,
) -> None:
    # The reply confirming the change is the notice of it (KR Art. 50⑦), so it counts as notified.
    session.add(
        Consent(
            tenant_id=tenant.id,
            contact_id=contact.id,
            channel=Channel.SMS,
            purpose=purpose,
            granted=granted,
            night=night and granted,
            at=at,
            source=SOURCE,
            text=(body or "").strip()[:1000],
            recorded_at=at,
            notified_at=at if notified else None,
        )
    )
    session.flush()


def _replied_to_opt_out_since(session: Session, tenant_id: int, phone: str, since: datetime, this_id: int) -> bool:
    return (
        session.scalar(
            select(InboundMessage.id)
            .where(
                InboundMessage.tenant_id == tenant_id,
                InboundMessage.from_address == phone,
                InboundMessage.kind == "opt_out",
                InboundMessage.received_at >= since,
                InboundMessage.id != this_id,
            )
            .limit(1)
        )
        is not None
    )


def _lift_opt_out(session: Session, tenant_id: int, phone: str) -> None:
    # Only the contact's own STOP is undone; bounces, invalid numbers and DNC entries stay.
    session.execute(
        delete(Suppression).where(
            Suppression.tenant_id == tenant_id,
            Suppression.channel == Channel.SMS,
            Suppression.address_hash == address_hash(Channel.SMS, phone),
            Suppression.reason == SuppressionReason.OPT_OUT,
        )
    )


def _revoked_by_sms(session: Session, tenant_id: int, contact_id: int) -> list[str]:
    """The SMS purposes whose newest ledger entry is a revocation by inbound SMS: what START restores."""
    restored: list[str] = []
    for purpose in (Purpose.MARKETING, Purpose.SURVEY, Purpose.TRANSACTIONAL):
        latest = session.scalar(
            select(Consent)
            .where(
                Consent.tenant_id == tenant_id,
                Consent.contact_id == contact_id,
                Consent.channel == Channel.SMS,
                Consent.purpose == purpose,
            )
            .order_by(Consent.at.desc(), Consent.id.desc())
            .limit(1)
        )
        if latest is not None and not latest.granted and latest.source == SOURCE:
            restored.append(purpose)
    return restored


def _latest_grant_night(session: Session, tenant_id: int, contact_id: int) -> bool:
    grant = session.scalar(
        select(Consent)
        .where(
            Consent.tenant_id == tenant_id,
            Consent.contact_id == contact_id,
            Consent.channel == Channel.SMS,
            Consent.purpose == Purpose.MARKETING,
            Consent.granted.is_(True),
        )
        .order_by(Consent.at.desc(), Consent.id.desc())
        .limit(1)
    )
    return bool(grant and grant.night)


def _yes_means_consent(session: Session, tenant: Tenant, contact: Contact | None, phone: str) -> bool:
    """YES re-subscribes only as a reply to a consent request: the latest SMS we sent asked for consent."""
    if contact is None:
        return False
    latest = session.scalar(
        select(Message.campaign)
        .where(
            Message.tenant_id == tenant.id,
            Message.contact_id == contact.id,
            Message.channel == Channel.SMS,
            Message.sent_at.is_not(None),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )
    return latest in RECONFIRMATION_CAMPAIGNS
