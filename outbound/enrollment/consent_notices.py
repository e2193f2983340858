"""Korean consent duties run by the scheduler (COMPLIANCE 16, 17).

- Notice of change (Art. 50⑦, Decree 62-2): every consent given or withdrawn is told to the
  recipient within 14 days: what changed and when. Entries confirmed on the spot (the STOP
  reply, the unsubscribe page) are already notified; the rest get one notice per contact
  through the `kr_consent_notice` campaign, and their `notified_at` is set.
- Reconfirmation (Art. 50⑧, Decree 62-3): advertising consent lapses 2 years after it was
  given (the gate's `kr_reconfirmation` rule stops advertising then). Some weeks before,
  the `kr_consent_reconfirmation` campaign asks the contact to renew it (a YES reply does).

Both enroll through the ordinary campaign machinery, so the notices pass the gate, are
rendered from templates in both languages, and show in `outbound explain`. Each job is
idempotent: a second run at the same time enrolls nobody twice.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from outbound.compliance import policy_for
from outbound.compliance.rules import months_after, months_before
from outbound.compliance.zones import resolve_jurisdiction
from outbound.db.models import Consent, Contact, Event, Tenant
from outbound.enrollment.writer import candidate, enroll
from outbound.vocabulary import Channel, Purpose

log = logging.getLogger(__name__)

NOTICE_CAMPAIGN = "kr_consent_notice"
RECONFIRM_CAMPAIGN = "kr_consent_reconfirmation"
NOTICE_WITHIN = timedelta(days=14)
RECONFIRM_AHEAD = timedelta(weeks=4)
KST = ZoneInfo("Asia/Seoul")
_CHANNEL: dict[str, tuple[str, str]] = {
    Channel.SMS: ("문자", "SMS"),
    Channel.EMAIL: ("이메일", "email"),
    Channel.VOICE: ("전화", "calls"),
}
_PURPOSE: dict[str, tuple[str, str]] = {
    Purpose.MARKETING: ("광고성 정보", "marketing"),
    Purpose.SURVEY: ("설문", "surveys"),
    Purpose.TRANSACTIONAL: ("거래 안내", "order updates"),
}


@dataclass
class ConsentJobReport:
    """What one run of the consent jobs did."""

    notices: int = 0
    reconfirmations: int = 0


def run_consent_jobs(session: Session, definitions, now: datetime) -> ConsentJobReport:
    """Enroll the due consent-change notices and reconfirmation requests; nothing commits here."""
    report = ConsentJobReport()
    tenants = {t.id: t for t in session.scalars(select(Tenant))}
    notice = definitions.campaigns.get(NOTICE_CAMPAIGN)
    reconfirm = definitions.campaigns.get(RECONFIRM_CAMPAIGN)
    if notice is not None:
        report.notices = _notices(session, tenants, notice, now)
    if reconfirm is not None:
        report.reconfirmations = _reconfirmations(session, tenants, reconfirm, now)
    if notice is None or reconfirm is None:
        log.debug("consent jobs: campaign %s or %s is not defined; skipped", NOTICE_CAMPAIGN, RECONFIRM_CAMPAIGN)
    return report


def _is_kr(contact: Contact, tenant: Tenant) -> bool:
    return resolve_jurisdiction(contact.jurisdiction, tenant.jurisdiction) == "KR"


def _notices(session: Session, tenants: dict[int, Tenant], campaign, now: datetime) -> int:
    rows = session.execute(
        select(Consent, Contact)
        .join(Contact, Contact.id == Consent.contact_id)
        .where(
            Consent.notified_at.is_(None),
            Consent.at > now - NOTICE_WITHIN,
            Consent.at <= now,
            Contact.erased_at.is_(None),
            (Contact.email.is_not(None) | Contact.phone.is_not(None)),
        )
        .order_by(Consent.contact_id, Consent.at, Consent.id)
    ).all()
    pending: dict[int, tuple[Contact, list[Consent]]] = {}
    for consent, contact in rows:
        tenant = tenants[contact.tenant_id]
        if consent.tenant_id == contact.tenant_id and _is_kr(contact, tenant):
            pending.setdefault(contact.id, (contact, []))[1].append(consent)
    count = 0
    for contact, changes in pending.values():
        tenant = tenants[contact.tenant_id]
        key = f"{NOTICE_CAMPAIGN}:{contact.id}:{changes[-1].id}"
        data = {
            "key": key,
            "changes_ko": "; ".join(_describe(c, korean=True) for c in changes),
            "changes_en": "; ".join(_describe(c, korean=False) for c in changes),
            "count": len(changes),
        }
        if enroll(
            session,
            tenant,
            [candidate(campaign, contact, _event(session, tenant, contact, key, now, data), now, "consent notice job")],
            now,
        ) != [None]:
            count += 1
        for consent in changes:
            consent.notified_at = now
    session.flush()
    return count


def _reconfirmations(session: Session, tenants: dict[int, Tenant], campaign, now: datetime) -> int:
    count = 0
    for tenant in tenants.values():
        months = policy_for("KR", (tenant.settings or {}).get("compliance")).reconfirm_months
        if months is None:
            continue
        # Ask once the lapse is less than RECONFIRM_AHEAD away: the contact's standing marketing consent
        # on a channel (its latest entry, a grant) was given before (now + ahead) − months. The database
        # finds them: only consents that old are read, and only those no later entry replaced.
        cutoff = months_before((now + RECONFIRM_AHEAD).astimezone(KST), months)
        later = aliased(Consent)
        replaced = exists().where(
            later.tenant_id == Consent.tenant_id,
            later.contact_id == Consent.contact_id,
            later.channel == Consent.channel,
            later.purpose == Consent.purpose,
            later.at <= now,
            or_(later.at > Consent.at, and_(later.at == Consent.at, later.id > Consent.id)),
        )
        due: dict[int, list[Consent]] = defaultdict(list)
        for record in session.scalars(
            select(Consent)
            .where(
                Consent.tenant_id == tenant.id,
                Consent.purpose == Purpose.MARKETING,
                Consent.granted.is_(True),
                Consent.at <= cutoff,
                ~replaced,
            )
            .order_by(Consent.contact_id, Consent.at, Consent.id)
        ):
            due[record.contact_id].append(record)
        if not due:
            continue
        contacts = {
            c.id: c
            for c in session.scalars(
                select(Contact).where(Contact.tenant_id == tenant.id, Contact.id.in_(due), Contact.erased_at.is_(None))
            )
        }
        keys = {
            contact_id: f"{RECONFIRM_CAMPAIGN}:{contact_id}:{min(records, key=lambda r: r.at).id}"
            for contact_id, records in due.items()
        }
        asked = set(
            session.scalars(
                select(Event.event_id).where(Event.tenant_id == tenant.id, Event.event_id.in_(keys.values()))
            )
        )
        for contact_id, records in due.items():
            contact = contacts.get(contact_id)
            if contact is None or not _is_kr(contact, tenant) or not (contact.phone or contact.email):
                continue
            key = keys[contact_id]
            if key in asked:
                continue
            oldest = min(records, key=lambda r: r.at)
            lapses = months_after(oldest.at.astimezone(KST), months)
            data = {
                "key": key,
                "given_at": f"{oldest.at.astimezone(KST):%Y-%m-%d}",
                "lapses_at": f"{lapses.astimezone(KST):%Y-%m-%d}",
                "channels_ko": ", ".join(_CHANNEL[r.channel][0] for r in records),
                "channels_en": ", ".join(_CHANNEL[r.channel][1] for r in records),
            }
            if enroll(
                session,
                tenant,
                [
                    candidate(
                        campaign,
                        contact,
                        _event(session, tenant, contact, key, now, data),
                        now,
                        "consent reconfirmation job",
                    )
                ],
                now,
            ) != [None]:
                count += 1
    return count


def _event(session: Session, tenant: Tenant, contact: Contact, key: str, now: datetime, data: dict) -> Event:
    # The facts a notice speaks of, stored as an event so the templates and the trail can show them.
    event = Event(
        tenant_id=tenant.id,
        event_id=key,
        type=key.split(":")[0],
        occurred_at=now,
        received_at=now,
        contact_id=contact.id,
        data=data,
    )
    session.add(event)
    session.flush()
    return event


def _describe(consent: Consent, *, korean: bool) -> str:
    when = consent.at.astimezone(KST)
    channel = _CHANNEL.get(consent.channel, (consent.channel, consent.channel))
    purpose = _PURPOSE.get(consent.purpose, (consent.purpose, consent.purpose))
    if korean:
        what = ("야간 수신 포함 " if consent.night and consent.granted else "") + (
            "수신동의" if consent.granted else "수신거부"
        )
        return f"{when:%Y-%m-%d %H:%M} {channel[0]} {purpose[0]} {what}"
    what = (
        ("consent given" + (" (including night-time)" if consent.night else ""))
        if consent.granted
        else "consent withdrawn"
    )
    return f"{purpose[1]} by {channel[1]}: {what} on {when:%Y-%m-%d %H:%M} KST"
