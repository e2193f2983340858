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

from outbound.breaker import rates_for_dispatch
from outbound.campaign_state import not_paused
from outbound.clock import Clock
from outbound.compliance import (
    Allow,
    Block,
    ConsentRecord,
    Defer,
    MessageFacts,
    decide,
    policy_for,
)
from outbound.compliance.zones import resolve_jurisdiction, resolve_timezone
from outbound.contacts import address_hash
from outbound.context import contact_view, event_view, tenant_view
from outbound.db.models import (
    Consent,
    Contact,
    Enrollment,
    Event,
    Message,
    Suppression,
    Tenant,
)
from outbound.db.session import transaction
from outbound.definitions import Definitions
from outbound.definitions.formats import check_message
from outbound.delivery import (
    MAX_ATTEMPTS,
    SUPPRESSING_CODES,
    attach_pending,
    retry_delay,
)
from outbound.enrollment import offer_code_for
from outbound.errors import OutboundError
from outbound.fallback import schedule_fallback, undeliverable
from outbound.links import unsubscribe_url
from outbound.messages import transition
from outbound.providers import (
    OutgoingMessage,
    PermanentProviderError,
    Provider,
    ProviderError,
    send_all,
)
from outbound.ratelimit import SenderLimiter, rate_for, sender_key
from outbound.rendering import locale_chain, sms_segments
from outbound.settings import Settings
from outbound.surveys import survey_url

# MAX_ATTEMPTS and SUPPRESSING_CODES live with the delivery rules, which callbacks apply too.
__all__ = ["MAX_ATTEMPTS", "SUPPRESSING_CODES", "Dispatcher", "TickReport", "claim_due", "expire_sending", "next_due"]


@dataclass
class TickReport:
    """What one dispatch tick did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0  # over a sender's messages-per-second limit: still due, a moment later
    decisions: dict[str, int] = field(default_factory=dict)

    def add(self, other: "TickReport") -> None:
        """Add another report's counts to this one."""
        for name in ("claimed", "sent", "deferred", "blocked", "failed", "retried", "rate_limited"):
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
    complaint_rates: dict[int, float] = field(default_factory=dict)


class _Unsendable(OutboundError):
    """A rendered message that a rule forbids sending: blocked with the rule's name."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule


def claim_due(session: Session, now: datetime, limit: int) -> list[Message]:
    """Due scheduled or deferred messages, oldest first, locked against other workers (SKIP LOCKED)."""
    query = (
        select(Message)
        .where(Message.status.in_(("scheduled", "deferred")), Message.due_at <= now, not_paused())
        .order_by(Message.due_at, Message.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def next_due(session: Session) -> datetime | None:
    """When the next pending message is due, if any."""
    return session.scalar(select(func.min(Message.due_at)).where(Message.status.in_(("scheduled", "deferred")), not_paused()))


class Dispatcher:
    """Runs dispatch ticks against a database with a set of providers."""

    def __init__(self, factory: sessionmaker[Session], definitions: Definitions, providers: dict[str, Provider],
                 clock: Clock, settings: Settings) -> None:
        self.factory, self.definitions, self.providers = factory, definitions, providers
        self.clock, self.settings = clock, settings
        self._rng = random.Random()
        self.limiter = SenderLimiter()

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
        results = send_all(self.providers, outgoing)
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
                has_postal_address=bool((tenant.settings or {}).get("postal_address")),
                complaint_rate=context.complaint_rates.get(tenant.id, 0.0),
            )
            decision = decide(facts, policy_for(jurisdiction, (tenant.settings or {}).get("compliance")))
            report.decisions[decision.rule] = report.decisions.get(decision.rule, 0) + 1
            if isinstance(decision, Block):
                transition(session, message, "blocked", at=now, source="worker", rule=decision.rule, reason=decision.reason)
                report.blocked += 1
                if undeliverable(decision.rule, facts.suppressions):
                    schedule_fallback(session, message, self.definitions, now, decision.reason)
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
            sender = (tenant.settings or {}).get("sms_from" if message.channel == "sms" else "email_from")
            go_at = self.limiter.acquire(sender_key(message.channel, sender, self.settings),
                                         rate_for(message.channel, tenant.settings, self.settings), now)
            if go_at is not None:
                # Over the sender's messages-per-second limit: stays due, a moment later; never dropped.
                message.due_at = go_at
                report.rate_limited += 1
                continue
            try:
                out = self._render(session, message, tenant, contact, context, to, jurisdiction)
            except _Unsendable as refusal:
                # The text as rendered breaks a rule the gate could not see before rendering.
                transition(session, message, "blocked", at=now, source="worker", rule=refusal.rule, reason=str(refusal))
                report.blocked += 1
                report.decisions[refusal.rule] = report.decisions.get(refusal.rule, 0) + 1
                continue
            except OutboundError as error:
                transition(session, message, "failed", at=now, source="worker", rule="render", reason=str(error))
                report.failed += 1
                continue
            message.to_address = to
            message.attempts += 1
            provider = self.providers[message.channel]
            message.provider = provider.name
            message.sender = out.sender or (
                (self.settings.twilio_messaging_service_sid or self.settings.twilio_from_number)
                if message.channel == "sms" else self.settings.sendgrid_from_email)
            transition(session, message, "sending", at=now, source="worker", rule=decision.rule, reason=decision.reason)
            if message.purpose == "marketing":
                context.recent_marketing[contact.id].append((message.channel, now))
            outgoing.append((message.id, out))
        return outgoing

    def _render(self, session: Session, message: Message, tenant: Tenant, contact: Contact, context: _BatchContext,
                to: str, jurisdiction: str) -> OutgoingMessage:
        enrollment_event = context.events.get(message.id)
        links = {"unsubscribe": unsubscribe_url(self.settings.base_url, self.settings.secret_key,
                                                tenant.id, contact.id, message.channel)}
        if message.purpose == "survey":
            links["survey"] = survey_url(self.settings.base_url, self.settings.secret_key, tenant.id, message.id)
        campaign = self.definitions.campaigns.get(message.campaign)
        code = offer_code_for(session, tenant.id, message.campaign, contact.id) if campaign and campaign.offer_codes else None
        names = {
            "contact": contact_view(contact), "event": event_view(enrollment_event), "tenant": tenant_view(tenant),
            "campaign": message.campaign, "step": message.step, "links": links,
            "offer": {"code": code}, "variant": message.variant,
        }
        rendered = self.definitions.renderer.render(
            message.template, message.channel, locale_chain(contact.locale, tenant.locale), names
        )
        message.subject, message.body, message.locale = rendered.subject, rendered.text, rendered.locale
        if message.purpose == "marketing":
            problems = check_message(rendered, message.channel, jurisdiction, names["tenant"], links["unsubscribe"])
            if problems:
                raise _Unsendable("message_format", "; ".join(problems))
        step = campaign.step(message.step) if campaign else None
        if message.channel == "sms" and step is not None and step.max_segments is not None:
            info = sms_segments(rendered.text)
            if info.segments > step.max_segments:
                raise _Unsendable("sms_length", f"{info.segments} {info.encoding} segments ({info.characters} characters) "
                                                f"exceed the step's limit of {step.max_segments}")
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
        return _BatchContext(tenants, contacts, consents, suppressions, recent, last_purchase, events,
                             rates_for_dispatch(session, tenants, now))

    # -- sending --------------------------------------------------------------------

    def _record_results(self, session: Session, results, report: TickReport) -> None:
        now = self.clock.now()
        messages = {m.id: m for m in session.scalars(
            select(Message).where(Message.id.in_([r[0] for r in results])).with_for_update())}
        for message_id, result in results:
            message = messages[message_id]
            failed = isinstance(result, ProviderError)
            if message.status != "sending" and (message.status != "unknown" or (failed and result.ambiguous)):
                # A status callback got here first (delivered, or back to scheduled): keep what it recorded.
                if not failed:
                    message.provider_id = message.provider_id or result.provider_id
                    message.sent_at = message.sent_at or now
                    report.sent += 1
                continue
            if not failed:
                message.provider_id, message.sent_at = result.provider_id, now
                transition(session, message, "sent", at=now, source="worker", rule=message.rule, reason=message.reason,
                           detail={"provider": result.provider, "provider_id": result.provider_id})
                # Callbacks that arrived before this answer was recorded are waiting, unattached.
                attach_pending(session, message, now, self._rng)
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
                message.error_code = result.code
                message.due_at = now + retry_delay(message.attempts, self._rng, result.retry_after)
                transition(session, message, "scheduled", at=now, source="worker", rule="provider_retry",
                           reason=f"transient provider error, attempt {message.attempts}: {result}",
                           detail={"code": result.code, "retry_at": message.due_at.isoformat()})
                report.retried += 1

    def _fail(self, session: Session, message: Message, error: ProviderError, now: datetime) -> None:
        message.error_code = error.code
        transition(session, message, "failed", at=now, source="worker", rule="provider",
                   reason=f"provider refused{' (code ' + error.code + ')' if error.code else ''}: {error}",
                   detail={"code": error.code})
        if undeliverable("provider", code=error.code):
            schedule_fallback(session, message, self.definitions, now, f"provider error {error.code}")
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
