"""Inbound SMS: store it once, read it as a keyword (STOP, START, HELP, YES) or a survey answer, apply it.

The signed Twilio webhook finds the tenants an SMS is for (`outbound.delivery.routing`), calls
`receive_inbound` inside its transaction and sends back the reply it returns, if any. Nothing here
commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from outbound.addresses import address_hash
from outbound.clock import Clock
from outbound.db.contacts import contacts_with_phone
from outbound.db.models import Consent, Contact, InboundMessage, Message, Suppression, Tenant
from outbound.db.suppressions import suppress
from outbound.delivery import keywords
from outbound.delivery.routing import inbound_phone
from outbound.vocabulary import Channel, Purpose, SuppressionReason

if TYPE_CHECKING:
    from outbound.config import Settings
from outbound.definitions import Definitions
from outbound.engagement.surveys import answer_from_sms

log = logging.getLogger(__name__)

SOURCE = "inbound SMS"
# Purposes an SMS opt-out revokes in the ledger. Transactional SMS stops through the suppression
# (which lets a campaign marked essential through); a revoked transactional consent would not.
REVOKED_BY_STOP: tuple[str, ...] = (Purpose.MARKETING, Purpose.SURVEY)
REPLY_ONCE_WITHIN = timedelta(days=1)
RECONFIRMATION_CAMPAIGNS = frozenset({"kr_consent_reconfirmation"})


@dataclass(frozen=True)
class InboundOutcome:
    """What an inbound SMS was (`opt_out`, `opt_in`, `help`, `survey_answer`, `other`, `duplicate`, or
    `unattributed`: for none of its tenants in particular), the reply to send (None: send nothing), and
    the contact it came from, if known."""

    kind: str
    reply: str | None
    contact_id: int | None


def receive_inbound(
    session: Session,
    tenants: list[Tenant],
    *,
    from_number: str,
    to_number: str,
    body: str,
    provider_id: str | None,
    clock: Clock,
    settings: Settings,
    definitions: Definitions,
) -> InboundOutcome:
    """Apply one inbound SMS to the tenants it is for (`outbound.delivery.routing.attribute`): all of it to
    one tenant; to several, only what holds for each (`receive_shared_inbound`); to none, nothing."""
    if len(tenants) == 1:
        return receive_inbound_sms(
            session,
            tenants[0],
            from_number=from_number,
            to_number=to_number,
            body=body,
            provider_id=provider_id,
            clock=clock,
            settings=settings,
            definitions=definitions,
        )
    if not tenants:
        # The shared sender, and every tenant has a number of its own: no one sends from it.
        log.info("inbound SMS %s to a number no tenant sends from; nothing to apply", provider_id)
        return InboundOutcome(kind="unattributed", reply=None, contact_id=None)
    return receive_shared_inbound(
        session, tenants, from_number=from_number, to_number=to_number, body=body, provider_id=provider_id, clock=clock
    )


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
    seen = _seen(session, provider_id)
    if seen is not None:
        # A provider retry: the first delivery did the work and got the reply.
        return InboundOutcome(kind="duplicate", reply=None, contact_id=seen.contact_id)
    phone = inbound_phone(from_number, tenant)
    contacts = contacts_with_phone(session, tenant.id, phone)
    contact = contacts[0] if contacts else None
    kind = keywords.classify(body)
    if kind == keywords.YES and not _yes_means_consent(session, tenant, contact, phone):
        kind = None
    inbound = _store(session, tenant, contact, phone, to_number, body, provider_id, kind or "other", now)
    sender = (tenant.settings or {}).get("sender_name") or tenant.name
    korean = keywords.is_korean((contact.locale if contact else None) or tenant.locale)
    contact_id = contact.id if contact else None

    if kind == keywords.OPT_OUT:
        replied_lately = _replied_to_opt_out_since(session, tenant.id, phone, now - REPLY_ONCE_WITHIN, inbound.id)
        _opt_out(session, tenant, phone, contacts, body, now)
        reply = None if replied_lately else keywords.opt_out_reply(sender, korean)
        return InboundOutcome(kind="opt_out", reply=reply, contact_id=contact_id)
    if kind == keywords.OPT_IN:
        _opt_in(session, tenant, phone, contacts, body, now)
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


def receive_shared_inbound(
    session: Session,
    tenants: list[Tenant],
    *,
    from_number: str,
    to_number: str,
    body: str,
    provider_id: str | None,
    clock: Clock,
) -> InboundOutcome:
    """An SMS to a number several tenants send from, from a phone that does not tell which of them it is for.

    An opt-out opts the phone out of every one of them, each keeping the SMS, its suppression and its
    contacts' ledger entries, as a STOP to its own number would: an opt-out is never lost. START undoes
    that the same way. HELP is answered naming no sender. Anything else (a survey answer, a question) is
    acknowledged and kept by none of them: kept by one it could be the wrong one, kept by all it would show
    each a message meant for another. The replies name no sender, which could be the wrong one.
    """
    now = clock.now()
    seen = _seen(session, provider_id)
    if seen is not None:
        return InboundOutcome(kind="duplicate", reply=None, contact_id=None)
    kind = keywords.classify(body)
    korean = all(keywords.is_korean(tenant.locale) for tenant in tenants)
    if kind == keywords.OPT_OUT:
        replied_lately = False
        for tenant in tenants:
            phone = inbound_phone(from_number, tenant)
            contacts = contacts_with_phone(session, tenant.id, phone)
            first = contacts[0] if contacts else None
            inbound = _store(session, tenant, first, phone, to_number, body, provider_id, "opt_out", now)
            since = now - REPLY_ONCE_WITHIN
            replied_lately = _replied_to_opt_out_since(session, tenant.id, phone, since, inbound.id) or replied_lately
            _opt_out(session, tenant, phone, contacts, body, now)
        reply = None if replied_lately else keywords.shared_opt_out_reply(korean)
        return InboundOutcome(kind="opt_out", reply=reply, contact_id=None)
    if kind == keywords.OPT_IN:
        for tenant in tenants:
            phone = inbound_phone(from_number, tenant)
            contacts = contacts_with_phone(session, tenant.id, phone)
            first = contacts[0] if contacts else None
            _store(session, tenant, first, phone, to_number, body, provider_id, "opt_in", now)
            _opt_in(session, tenant, phone, contacts, body, now)
        return InboundOutcome(kind="opt_in", reply=keywords.shared_opt_in_reply(korean), contact_id=None)
    # Logged by Twilio's id only: the phone and the text stay out of the log (Twilio's own log has them).
    log.info("inbound SMS %s to a shared number is for none of its %d tenants in particular", provider_id, len(tenants))
    reply = keywords.shared_help_reply(korean) if kind == keywords.HELP else None
    return InboundOutcome(kind="help" if reply else "unattributed", reply=reply, contact_id=None)


def _seen(session: Session, provider_id: str | None) -> InboundMessage | None:
    """The SMS already kept under this provider id (for any tenant), if any."""
    if not provider_id:
        return None
    return session.scalars(select(InboundMessage).where(InboundMessage.provider_id == provider_id).limit(1)).first()


def _store(
    session: Session,
    tenant: Tenant,
    contact: Contact | None,
    phone: str,
    to_number: str,
    body: str,
    provider_id: str | None,
    kind: str,
    now: datetime,
) -> InboundMessage:
    inbound = InboundMessage(
        tenant_id=tenant.id,
        contact_id=contact.id if contact else None,
        channel=Channel.SMS,
        from_address=phone,
        to_address=to_number,
        body=body,
        provider_id=provider_id,
        kind=kind,
        received_at=now,
    )
    session.add(inbound)
    session.flush()
    return inbound


def _opt_out(session: Session, tenant: Tenant, phone: str, contacts: list[Contact], body: str, now: datetime) -> None:
    suppress(session, tenant.id, Channel.SMS, phone, reason=SuppressionReason.OPT_OUT, source=SOURCE, at=now)
    for each in contacts:
        for purpose in REVOKED_BY_STOP:
            _ledger(session, tenant, each, purpose, False, now, body, notified=True)


def _opt_in(session: Session, tenant: Tenant, phone: str, contacts: list[Contact], body: str, now: datetime) -> None:
    _lift_opt_out(session, tenant.id, phone)
    for each in contacts:
        for purpose in _revoked_by_sms(session, tenant.id, each.id):
            _ledger(session, tenant, each, purpose, True, now, body, notified=True)


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
