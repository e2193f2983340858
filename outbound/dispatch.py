"""Dispatch: claim due messages, ask the compliance gate, render, send, record.

Sending is at most once: a message is marked `sending` and committed before the
provider is called, so a worker that dies mid-send leaves `sending` rows that
expire into `unknown` instead of being sent again.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from outbound.clock import Clock
from outbound.compliance import Allow, Block, ConsentRecord, Defer, MessageFacts, decide, policy_for
from outbound.compliance.zones import resolve_jurisdiction, resolve_timezone
from outbound.contacts import address_hash
from outbound.context import contact_view, event_view, tenant_view
from outbound.db.models import Consent, Contact, Enrollment, Event, Message, Suppression, Tenant
from outbound.db.session import transaction
from outbound.definitions import Definitions
from outbound.errors import OutboundError
from outbound.links import unsubscribe_url
from outbound.messages import transition
from outbound.providers import OutgoingMessage, PermanentProviderError, Provider, ProviderError
from outbound.rendering import locale_chain
from outbound.settings import Settings

MAX_ATTEMPTS = 5
# Provider error codes that say the address itself is bad: suppress, never retry.
SUPPRESSING_CODES = {"21610": "opt_out", "21211": "undeliverable", "30006": "undeliverable", "21614": "undeliverable"}


@dataclass
class TickReport:
    """What one dispatch tick did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    decisions: dict[str, int] = field(default_factory=dict)

    def add(self, other: "TickReport") -> None:
        """Add another report's counts to this one."""
        for name in ("claimed", "sent", "deferred", "blocked", "failed", "retried"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, count in other.decisions.items():
            self.decisions[key] = self.decisions.get(key, 0) + count


@dataclass
class _BatchContext:
    """Everything the gate and the renderer need for one batch, loaded with a query per kind, not per message."""

    tenants: dict[int, Tenant]
    contacts: dict[int, Contact]
    consents: dict[int, list[ConsentRecord]]
    suppressions: dict[tuple[int, str, str], list[str]]
    recent_marketing: dict[int, list[tuple[str, datetime]]]
    last_purchase: dict[int, datetime]
    events: dict[int, Event]


def claim_due(session: Session, now: datetime, limit: int) -> list[Message]:
    """Due scheduled or deferred messages, oldest first, locked against other workers (SKIP LOCKED)."""
    query = (
        select(Message)
        .where(Message.status.in_(("scheduled", "deferred")), Message.due_at <= now)
        .order_by(Message.due_at, Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def next_due(session: Session) -> datetime | None:
    """When the next pending message is due, if any."""
    return session.scalar(select(func.min(Message.due_at)).where(Message.status.in_(("scheduled", "deferred"))))


class Dispatcher:
    """Runs dispatch ticks against a database with a set of providers."""

    def __init__(self, factory: sessionmaker[Session], definitions: Definitions, providers: dict[str, Provider],
                 clock: Clock, settings: Settings) -> None:
        self.factory, self.definitions, self.providers = factory, definitions, providers
        self.clock, self.settings = clock, settings
        self._rng = random.Random()

    def tick(self) -> TickReport:
        """Claim one batch, decide, render and send it."""
        report = TickReport()
        now = self.clock.now()
        with transaction(self.factory) as session:
            batch = claim_due(session, now, self.settings.dispatch_batch_size)
            report.claimed = len(batch)
            if not batch:
                return report
            outgoing = self._decide_and_render(session, batch, now, report)
        # Committed: every message to send is now `sending`. Only then call providers.
        results = [(message_id, self._send(out)) for message_id, out in outgoing]
        with transaction(self.factory) as session:
            self._record_results(session, results, report)
        return report

    def drain(self) -> TickReport:
        """Tick until nothing is due at the current time; the totals of all ticks."""
        total = TickReport()
        while True:
            report = self.tick()
            if not report.claimed:
                return total
            total.add(report)

    # -- deciding -----------------------------------------------------------------

    def _decide_and_render(self, session: Session, batch: list[Message], now: datetime, report: TickReport):
        context = self._load_context(session, batch, now)
        outgoing: list[tuple[int, OutgoingMessage]] = []
        for message in batch:
            tenant = context.tenants[message.tenant_id]
            contact = context.contacts[message.contact_id]
            campaign = self.definitions.campaigns.get(message.campaign)
            to = contact.phone if message.channel == "sms" else contact.email
            jurisdiction = resolve_jurisdiction(contact.jurisdiction, tenant.jurisdiction)
            facts = MessageFacts(
                channel=message.channel,
                purpose=message.purpose,
                essential=bool(campaign and campaign.essential),
                to=to,
                jurisdiction=jurisdiction,
                timezone=resolve_timezone(contact.timezone, contact.phone, tenant.timezone),
                now=now,
                consents=tuple(context.consents.get(contact.id, ())),
                suppressions=tuple(context.suppressions.get((tenant.id, message.channel, address_hash(message.channel, to)), ())) if to else (),
                recent_marketing=tuple(context.recent_marketing.get(contact.id, ())),
                last_purchase_at=context.last_purchase.get(contact.id),
            )
            decision = decide(facts, policy_for(jurisdiction, (tenant.settings or {}).get("compliance")))
            report.decisions[decision.rule] = report.decisions.get(decision.rule, 0) + 1
            if isinstance(decision, Block):
                transition(session, message, "blocked", at=now, source="worker", rule=decision.rule, reason=decision.reason)
                report.blocked += 1
                continue
            if isinstance(decision, Defer):
                message.due_at = decision.until
                transition(session, message, "deferred", at=now, source="worker", rule=decision.rule,
                           reason=decision.reason, detail={"until": decision.until.isoformat()})
                report.deferred += 1
                continue
            assert isinstance(decision, Allow)
            if campaign is None:
                transition(session, message, "failed", at=now, source="worker", rule="definitions",
                           reason=f"campaign {message.campaign!r} is no longer defined")
                report.failed += 1
                continue
            try:
                out = self._render(message, tenant, contact, context, to)
            except OutboundError as error:
                transition(session, message, "failed", at=now, source="worker", rule="render", reason=str(error))
                report.failed += 1
                continue
            message.to_address = to
            message.attempts += 1
            provider = self.providers[message.channel]
            message.provider = provider.name
            transition(session, message, "sending", at=now, source="worker", rule=decision.rule, reason=decision.reason)
            if message.purpose == "marketing":
                context.recent_marketing[contact.id].append((message.channel, now))
            outgoing.append((message.id, out))
        return outgoing

    def _render(self, message: Message, tenant: Tenant, contact: Contact, context: _BatchContext, to: str) -> OutgoingMessage:
        enrollment_event = context.events.get(message.id)
        links = {"unsubscribe": unsubscribe_url(self.settings.base_url, self.settings.secret_key,
                                                tenant.id, contact.id, message.channel)}
        names = {
            "contact": contact_view(contact), "event": event_view(enrollment_event), "tenant": tenant_view(tenant),
            "campaign": message.campaign, "step": message.step, "links": links,
        }
        rendered = self.definitions.renderer.render(
            message.template, message.channel, locale_chain(contact.locale, tenant.locale), names
        )
        message.subject, message.body, message.locale = rendered.subject, rendered.text, rendered.locale
        headers = {}
        if message.channel == "email" and message.purpose == "marketing":
            headers = {"List-Unsubscribe": f"<{links['unsubscribe']}>",
                       "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        settings = tenant.settings or {}
        return OutgoingMessage(
            message_id=message.id, tenant=tenant.slug, channel=message.channel, to=to,
            sender=settings.get("sms_from" if message.channel == "sms" else "email_from"),
            sender_name=settings.get("sender_name", tenant.name),
            subject=rendered.subject, body=rendered.text, html=rendered.html, headers=headers,
        )

    def _load_context(self, session: Session, batch: list[Message], now: datetime) -> _BatchContext:
        tenant_ids = {m.tenant_id for m in batch}
        contact_ids = {m.contact_id for m in batch}
        contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
        consents: dict[int, list[ConsentRecord]] = defaultdict(list)
        for row in session.scalars(select(Consent).where(Consent.contact_id.in_(contact_ids))):
            consents[row.contact_id].append(ConsentRecord(channel=row.channel, purpose=row.purpose, granted=row.granted,
                                                          night=row.night, at=row.at, source=row.source))
        hashes = {address_hash(m.channel, a) for m in batch
                  if (a := (contacts[m.contact_id].phone if m.channel == "sms" else contacts[m.contact_id].email))}
        suppressions: dict[tuple[int, str, str], list[str]] = defaultdict(list)
        if hashes:
            for row in session.scalars(select(Suppression).where(Suppression.tenant_id.in_(tenant_ids),
                                                                 Suppression.address_hash.in_(hashes))):
                suppressions[(row.tenant_id, row.channel, row.address_hash)].append(row.reason)
        recent: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
        for channel, sent_at, contact_id in session.execute(
            select(Message.channel, Message.sent_at, Message.contact_id).where(
                Message.contact_id.in_(contact_ids), Message.purpose == "marketing",
                Message.sent_at >= now - timedelta(days=7))
        ):
            recent[contact_id].append((channel, sent_at))
        last_purchase = dict(session.execute(
            select(Event.contact_id, func.max(Event.occurred_at)).where(
                Event.contact_id.in_(contact_ids), Event.type == "order_placed").group_by(Event.contact_id)
        ).all())
        enrollment_ids = {m.enrollment_id for m in batch if m.enrollment_id is not None}
        event_of_enrollment = dict(session.execute(
            select(Enrollment.id, Event).join(Event, Event.id == Enrollment.event_id).where(Enrollment.id.in_(enrollment_ids))
        ).all()) if enrollment_ids else {}
        events = {m.id: event_of_enrollment[m.enrollment_id] for m in batch if m.enrollment_id in event_of_enrollment}
        tenants = {t.id: t for t in session.scalars(select(Tenant).where(Tenant.id.in_(tenant_ids)))}
        return _BatchContext(tenants, contacts, consents, suppressions, recent, last_purchase, events)

    # -- sending --------------------------------------------------------------------

    def _send(self, out: OutgoingMessage):
        try:
            return self.providers[out.channel].send(out)
        except ProviderError as error:
            return error

    def _record_results(self, session: Session, results, report: TickReport) -> None:
        now = self.clock.now()
        messages = {m.id: m for m in session.scalars(select(Message).where(Message.id.in_([r[0] for r in results])))}
        for message_id, result in results:
            message = messages[message_id]
            if not isinstance(result, ProviderError):
                message.provider_id, message.sent_at = result.provider_id, now
                transition(session, message, "sent", at=now, source="worker", rule=message.rule, reason=message.reason,
                           detail={"provider": result.provider, "provider_id": result.provider_id})
                report.sent += 1
            elif result.ambiguous:
                # The provider may have taken it (timeout, dropped connection): never re-send blindly.
                transition(session, message, "unknown", at=now, source="worker", rule="provider_ambiguous",
                           reason=f"no clear answer from the provider, not re-sent; a status callback settles it: {result}",
                           detail={"code": result.code})
                report.failed += 1
            elif isinstance(result, PermanentProviderError) or message.attempts >= MAX_ATTEMPTS:
                self._fail(session, message, result, now)
                report.failed += 1
            else:
                backoff = min(3600.0, 30.0 * 2 ** (message.attempts - 1)) * (0.5 + self._rng.random())
                message.due_at = now + timedelta(seconds=max(backoff, result.retry_after or 0))
                transition(session, message, "scheduled", at=now, source="worker", rule="provider_retry",
                           reason=f"transient provider error, attempt {message.attempts}: {result}",
                           detail={"code": result.code, "retry_at": message.due_at.isoformat()})
                report.retried += 1

    def _fail(self, session: Session, message: Message, error: ProviderError, now: datetime) -> None:
        transition(session, message, "failed", at=now, source="worker", rule="provider",
                   reason=f"provider refused{' (code ' + error.code + ')' if error.code else ''}: {error}",
                   detail={"code": error.code})
        reason = SUPPRESSING_CODES.get(error.code or "")
        if reason and message.to_address:
            from outbound.suppressions import suppress

            suppress(session, message.tenant_id, message.channel, message.to_address, reason=reason,
                     source=f"provider error {error.code}", at=now)


def expire_sending(session: Session, now: datetime, older_than: timedelta) -> int:
    """`sending` rows older than `older_than` become `unknown`: reconciled by callbacks, never re-sent."""
    stale = session.scalars(select(Message).where(Message.status == "sending", Message.updated_at < now - older_than))
    count = 0
    for message in stale:
        transition(session, message, "unknown", at=now, source="worker", rule="sending_expired",
                   reason=f"no provider answer recorded within {older_than}; not re-sent")
        count += 1
    return count
