"""Dispatch: claim due messages, ask the compliance gate, render, send, record.

Sending is at most once: a message is marked `sending` and committed before the
provider is called, so a worker that dies mid-send leaves `sending` rows that
expire into `unknown` instead of being sent again.

A tick works on the whole batch at once: it reads the messages and what the gate needs with
one query per kind, and writes its decisions back with one INSERT of the batch's transitions
and one UPDATE per set of changed columns, never an ORM flush per message.
"""

from __future__ import annotations

import random
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from outbound.addresses import contact_address_hash
from outbound.clock import Clock
from outbound.compliance import (
    Allow,
    Block,
    ConsentRecord,
    Defer,
    MessageFacts,
    Policy,
    decide,
    policy_for,
)
from outbound.compliance.rendered import RenderedFacts, decide_rendered
from outbound.compliance.zones import resolve_jurisdiction, resolve_timezone
from outbound.config import Settings
from outbound.context import contact_view, event_view, tenant_view
from outbound.db.messages import ClaimedMessage, claimed, move, record_transitions, transition, write_changes
from outbound.db.models import (
    Consent,
    Contact,
    Enrollment,
    Event,
    Message,
    OfferCode,
    Suppression,
    Tenant,
)
from outbound.db.session import transaction
from outbound.definitions import Definitions
from outbound.delivery.status import (
    MAX_ATTEMPTS,
    SUPPRESSING_CODES,
    attach_pending,
    retry_delay,
)
from outbound.dispatch.breaker import rates_for_dispatch
from outbound.dispatch.ratelimit import SenderLimiter, rate_for, sender_key
from outbound.engagement.surveys import survey_url
from outbound.enrollment.campaign_state import not_paused
from outbound.enrollment.fallback import schedule_fallback, undeliverable
from outbound.errors import OutboundError
from outbound.providers import (
    OutgoingMessage,
    PermanentProviderError,
    Provider,
    ProviderError,
    send_all,
)
from outbound.rendering.links import unsubscribe_url
from outbound.rendering.templates import locale_chain

# MAX_ATTEMPTS and SUPPRESSING_CODES live with the delivery rules, which callbacks apply too.
__all__ = [
    "MAX_ATTEMPTS",
    "SUPPRESSING_CODES",
    "Dispatcher",
    "TickReport",
    "claim_due",
    "claim_due_rows",
    "expire_sending",
    "next_due",
]

PENDING = ("scheduled", "deferred")
MESSAGES = Message.__table__
CONTACTS = Contact.__table__
EVENTS = Event.__table__
# The columns a claim reads: not the text dispatch writes and never reads back, nor the creation time.
# The batch's objects are reused when the provider's answers are recorded, so they hold what that reads.
CLAIMED = [c for c in MESSAGES.c if c.name not in ("created_at", "updated_at", "subject", "body", "locale")]
# What the gate and the templates read of a contact.
CONTACT_COLUMNS = [
    CONTACTS.c[name]
    for name in (
        "id",
        "tenant_id",
        "external_id",
        "phone",
        "phone_hash",
        "email",
        "timezone",
        "locale",
        "jurisdiction",
        "attributes",
    )
]


# The marketing messages with a provider now. SQLite's statistics know a status has few values, not that
# `sending` is rare, and scan the table: there the claim index is named.
_SENDING_COLUMNS = (MESSAGES.c.channel, MESSAGES.c.updated_at, MESSAGES.c.contact_id, MESSAGES.c.tenant_id)
_SENDING = select(*_SENDING_COLUMNS).where(MESSAGES.c.status == "sending", MESSAGES.c.purpose == "marketing")
_SENDING_SQLITE = text(
    "SELECT channel, updated_at, contact_id, tenant_id FROM messages INDEXED BY ix_messages_due "
    "WHERE status = 'sending' AND purpose = 'marketing'"
).columns(*_SENDING_COLUMNS)


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

    def add(self, other: TickReport) -> None:
        """Add another report's counts to this one."""
        for name in ("claimed", "sent", "deferred", "blocked", "failed", "retried", "rate_limited"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, count in other.decisions.items():
            self.decisions[key] = self.decisions.get(key, 0) + count


@dataclass
class _BatchContext:
    """Everything the gate and the renderer need for one batch, loaded with a query per kind, not per message."""

    tenants: dict[int, Tenant]
    contacts: dict[int, Any]  # contact rows
    consents: dict[int, tuple[ConsentRecord, ...]]
    suppressions: dict[tuple[int, str, str], list[str]]
    recent_marketing: dict[int, list[tuple[str, datetime]]]
    last_purchase: dict[int, datetime]
    events: dict[int, Any]  # the event row that started each enrollment
    offer_codes: dict[tuple[int, str, int], str] = field(default_factory=dict)
    complaint_rates: dict[int, float] = field(default_factory=dict)
    # Pure per-tenant values, worked out once per batch instead of once per message.
    policies: dict[tuple[int, str], Policy] = field(default_factory=dict)
    tenant_views: dict[int, dict[str, Any]] = field(default_factory=dict)
    locale_chains: dict[tuple[str | None, str | None], list[str]] = field(default_factory=dict)

    def policy(self, tenant: Tenant, jurisdiction: str) -> Policy:
        key = (tenant.id, jurisdiction)
        if key not in self.policies:
            self.policies[key] = policy_for(jurisdiction, (tenant.settings or {}).get("compliance"))
        return self.policies[key]

    def tenant_view(self, tenant: Tenant) -> dict[str, Any]:
        # One dict shared by the batch's messages: templates run in an immutable sandbox and cannot change it.
        if tenant.id not in self.tenant_views:
            self.tenant_views[tenant.id] = tenant_view(tenant)
        return self.tenant_views[tenant.id]

    def locale_chain(self, contact_locale: str | None, tenant_locale: str | None) -> list[str]:
        key = (contact_locale, tenant_locale)
        if key not in self.locale_chains:
            self.locale_chains[key] = locale_chain(contact_locale, tenant_locale)
        return self.locale_chains[key]


@dataclass
class _Claim:
    """A claimed batch: its report so far, what goes to providers (None when nothing was claimed),
    the batch's rows by id and the time they were handed over (their `updated_at`)."""

    report: TickReport
    outgoing: list[tuple[int, OutgoingMessage]] | None
    ours: dict[int, ClaimedMessage]
    handed_at: datetime


class _Links(dict):
    """The links a message may carry, each signed when first read (by its template or its headers):
    an SMS that never shows its unsubscribe link does not pay for the signature."""

    def __init__(self, makers: dict[str, Any]) -> None:
        super().__init__()
        self._makers = makers

    def __missing__(self, key: str) -> str:
        if key not in self._makers:
            raise KeyError(key)
        self[key] = value = self._makers[key]()
        return value


class _Unsendable(OutboundError):
    """A rendered message that a rule forbids sending: blocked with the rule's name."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule


def claim_due(session: Session, now: datetime, limit: int) -> list[Message]:
    """Due scheduled or deferred messages, oldest first, locked against other workers (SKIP LOCKED)."""
    return _claim(session, now, limit, lambda query: list(session.scalars(query.with_only_columns(Message))))


def claim_due_rows(session: Session, now: datetime, limit: int) -> list[ClaimedMessage]:
    """The same claim as `claim_due`, as plain rows that a batch changes and writes back at once."""
    return _claim(session, now, limit, lambda query: claimed(session.execute(query)))


def _claim(session: Session, now: datetime, limit: int, run) -> list:
    # One query per pending status, each read in the order of the (status, due_at) index, so a claim
    # stays an index range read however large the backlog; `status IN (…)` would sort every due row.
    # Rows of one status beyond the merged `limit` stay locked, unchanged, until this transaction ends.
    found = []
    for status in PENDING:
        found.extend(
            run(
                select(*CLAIMED)
                .where(MESSAGES.c.status == status, MESSAGES.c.due_at <= now, not_paused())
                .order_by(MESSAGES.c.due_at, MESSAGES.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
    found.sort(key=lambda message: (message.due_at, message.id))
    return found[:limit]


def next_due(session: Session) -> datetime | None:
    """When the next pending message is due, if any."""
    return session.scalar(select(func.min(Message.due_at)).where(Message.status.in_(PENDING), not_paused()))


class Dispatcher:
    """Runs dispatch ticks against a database with a set of providers."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        definitions: Definitions,
        providers: dict[str, Provider],
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.factory, self.definitions, self.providers = factory, definitions, providers
        self.clock, self.settings = clock, settings
        self._rng = random.Random()
        self.limiter = SenderLimiter()

    def tick(self) -> TickReport:
        """Claim one batch, decide, render and send it."""
        claim = self._claim_batch()
        if claim.outgoing is not None:
            self._record(claim, send_all(self.providers, claim.outgoing))
        return claim.report

    def drain(self) -> TickReport:
        """Tick until nothing is due at the current time; the totals of all ticks.

        Pipelined: while one batch is with the providers (network waits, in a thread of its own),
        the next is claimed, decided and rendered; its answers are recorded once that is committed.
        Every message of a batch is `sending`, committed, before its batch is handed over, as in `tick`.
        """
        total = TickReport()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbound-send") as sender:
            in_flight: tuple[_Claim, Future] | None = None
            while True:
                try:
                    claim = self._claim_batch()
                finally:
                    if in_flight is not None:  # record the batch in flight even when the next claim failed
                        self._record(in_flight[0], in_flight[1].result())
                        total.add(in_flight[0].report)
                        in_flight = None
                if claim.outgoing is None:  # nothing was due
                    return total
                in_flight = (claim, sender.submit(send_all, self.providers, claim.outgoing))

    def _claim_batch(self) -> _Claim:
        report = TickReport()
        now = self.clock.now()
        with transaction(self.factory) as session:
            batch = claim_due_rows(session, now, self.settings.dispatch_batch_size)
            report.claimed = len(batch)
            if not batch:
                return _Claim(report, None, {}, now)
            outgoing = self._decide_and_render(session, batch, now, report)
        # Committed: every message to send is now `sending`. Only then may providers be called.
        return _Claim(report, outgoing, {m.id: m for m in batch}, now)

    def _record(self, claim: _Claim, results) -> None:
        with transaction(self.factory) as session:
            self._record_results(session, results, claim.report, claim.ours, claim.handed_at)

    # -- deciding -----------------------------------------------------------------

    def _decide_and_render(self, session: Session, batch: list[ClaimedMessage], now: datetime, report: TickReport):
        context = self._load_context(session, batch, now)
        outgoing: list[tuple[int, OutgoingMessage]] = []
        steps: list[dict[str, Any]] = []  # the batch's transitions, stored together at the end
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
                consents=context.consents.get(contact.id, ()),
                suppressions=tuple(
                    context.suppressions.get(
                        (tenant.id, message.channel, contact_address_hash(message.channel, contact)), ()
                    )
                )
                if to
                else (),
                recent_marketing=tuple(context.recent_marketing.get(contact.id, ())),
                last_purchase_at=context.last_purchase.get(contact.id),
                has_postal_address=bool((tenant.settings or {}).get("postal_address")),
                complaint_rate=context.complaint_rates.get(tenant.id, 0.0),
            )
            decision = decide(facts, context.policy(tenant, jurisdiction))
            report.decisions[decision.rule] = report.decisions.get(decision.rule, 0) + 1
            if isinstance(decision, Block):
                steps.append(
                    move(message, "blocked", at=now, source="worker", rule=decision.rule, reason=decision.reason)
                )
                report.blocked += 1
                if undeliverable(decision.rule, facts.suppressions):
                    schedule_fallback(session, message, self.definitions, now, decision.reason)
                continue
            if isinstance(decision, Defer):
                message.due_at = decision.until
                steps.append(
                    move(
                        message,
                        "deferred",
                        at=now,
                        source="worker",
                        rule=decision.rule,
                        reason=decision.reason,
                        detail={"until": decision.until.isoformat()},
                    )
                )
                report.deferred += 1
                continue
            assert isinstance(decision, Allow)
            if campaign is None:
                steps.append(
                    move(
                        message,
                        "failed",
                        at=now,
                        source="worker",
                        rule="definitions",
                        reason=f"campaign {message.campaign!r} is no longer defined",
                    )
                )
                report.failed += 1
                continue
            sender = (tenant.settings or {}).get("sms_from" if message.channel == "sms" else "email_from")
            go_at = self.limiter.acquire(
                sender_key(message.channel, sender, self.settings),
                rate_for(message.channel, tenant.settings, self.settings),
                now,
            )
            if go_at is not None:
                # Over the sender's messages-per-second limit: stays due, a moment later; never dropped.
                message.due_at = go_at
                report.rate_limited += 1
                continue
            try:
                out = self._render(message, campaign, tenant, contact, context, to, sender, jurisdiction)
            except _Unsendable as refusal:
                # The text as rendered breaks a rule the gate could not see before rendering.
                steps.append(move(message, "blocked", at=now, source="worker", rule=refusal.rule, reason=str(refusal)))
                report.blocked += 1
                report.decisions[refusal.rule] = report.decisions.get(refusal.rule, 0) + 1
                continue
            except OutboundError as error:
                steps.append(move(message, "failed", at=now, source="worker", rule="render", reason=str(error)))
                report.failed += 1
                continue
            message.to_address = to
            message.attempts += 1
            provider = self.providers[message.channel]
            message.provider = provider.name
            message.sender = out.sender or (
                (self.settings.twilio_messaging_service_sid or self.settings.twilio_from_number)
                if message.channel == "sms"
                else self.settings.sendgrid_from_email
            )
            steps.append(move(message, "sending", at=now, source="worker", rule=decision.rule, reason=decision.reason))
            if message.purpose == "marketing":
                context.recent_marketing[contact.id].append((message.channel, now))
            outgoing.append((message.id, out))
        record_transitions(session, steps)
        write_changes(session, batch)
        return outgoing

    def _render(
        self,
        message: ClaimedMessage,
        campaign,
        tenant: Tenant,
        contact,
        context: _BatchContext,
        to: str,
        sender: str | None,
        jurisdiction: str,
    ) -> OutgoingMessage:
        base, secret = self.settings.base_url, self.settings.secret_key
        makers = {"unsubscribe": lambda: unsubscribe_url(base, secret, tenant.id, contact.id, message.channel)}
        if message.purpose == "survey":
            makers["survey"] = lambda: survey_url(base, secret, tenant.id, message.id)
        links = _Links(makers)
        code = context.offer_codes.get((tenant.id, message.campaign, contact.id)) if campaign.offer_codes else None
        names = {
            "contact": contact_view(contact),
            "event": event_view(context.events.get(message.enrollment_id)),
            "tenant": context.tenant_view(tenant),
            "campaign": message.campaign,
            "step": message.step,
            "links": links,
            "offer": {"code": code},
            "variant": message.variant,
        }
        rendered = self.definitions.renderer.render(
            message.template, message.channel, context.locale_chain(contact.locale, tenant.locale), names
        )
        message.subject, message.body, message.locale = rendered.subject, rendered.text, rendered.locale
        step = campaign.step(message.step)
        # The gate's second phase, on the message as rendered. A link no template read is in no text:
        # the check sees one that cannot be found.
        decision = decide_rendered(
            RenderedFacts(
                rendered=rendered,
                channel=message.channel,
                purpose=message.purpose,
                jurisdiction=jurisdiction,
                tenant=names["tenant"],
                unsubscribe_url=links.get("unsubscribe", "\0"),
                max_segments=step.max_segments if step is not None else None,
            )
        )
        if isinstance(decision, Block):
            raise _Unsendable(decision.rule, decision.reason)
        headers = {}
        if message.channel == "email" and message.purpose == "marketing":
            headers = {
                "List-Unsubscribe": f"<{links['unsubscribe']}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        return OutgoingMessage(
            message_id=message.id,
            tenant=tenant.slug,
            channel=message.channel,
            to=to,
            sender=sender,
            sender_name=(tenant.settings or {}).get("sender_name", tenant.name),
            subject=rendered.subject,
            body=rendered.text,
            html=rendered.html,
            headers=headers,
        )

    def _load_context(self, session: Session, batch: list[ClaimedMessage], now: datetime) -> _BatchContext:
        tenant_ids = {m.tenant_id for m in batch}
        contact_ids = {m.contact_id for m in batch}
        contacts = {
            c.id: c for c in session.execute(select(*CONTACT_COLUMNS).where(CONTACTS.c.id.in_(contact_ids))).all()
        }
        # The reads by contact name the tenants too: the indexes on these tables start with tenant_id.
        ledgers: dict[int, list[ConsentRecord]] = defaultdict(list)
        consent = Consent.__table__.c
        for row in session.execute(
            select(
                consent.contact_id,
                consent.channel,
                consent.purpose,
                consent.granted,
                consent.night,
                consent.at,
                consent.source,
            )
            .where(consent.tenant_id.in_(tenant_ids), consent.contact_id.in_(contact_ids))
            .order_by(consent.id)
        ):
            ledgers[row.contact_id].append(
                ConsentRecord(
                    channel=row.channel,
                    purpose=row.purpose,
                    granted=row.granted,
                    night=row.night,
                    at=row.at,
                    source=row.source,
                )
            )
        hashes = {
            contact_address_hash(m.channel, contacts[m.contact_id])
            for m in batch
            if (contacts[m.contact_id].phone if m.channel == "sms" else contacts[m.contact_id].email)
        }
        suppressions: dict[tuple[int, str, str], list[str]] = defaultdict(list)
        if hashes:
            held = Suppression.__table__.c
            for row in session.execute(
                select(held.tenant_id, held.channel, held.address_hash, held.reason)
                .where(held.tenant_id.in_(tenant_ids), held.address_hash.in_(hashes))
                .order_by(held.id)
            ):
                suppressions[(row.tenant_id, row.channel, row.address_hash)].append(row.reason)
        recent: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
        # A message still `sending` (with a provider now, or lost there) counts as sent when it was handed over.
        # Two reads, each an index range: sent in the window (by contact and sent_at), and every marketing
        # message sending (by status: a batch or two in flight), kept for the batch's contacts here. Naming
        # the contacts in the second would let the planner read every message of each contact instead.
        for channel, sent_at, contact_id in session.execute(
            select(MESSAGES.c.channel, MESSAGES.c.sent_at, MESSAGES.c.contact_id).where(
                MESSAGES.c.tenant_id.in_(tenant_ids),
                MESSAGES.c.contact_id.in_(contact_ids),
                MESSAGES.c.purpose == "marketing",
                MESSAGES.c.sent_at >= now - timedelta(days=7),
                MESSAGES.c.status != "sending",
            )
        ):
            recent[contact_id].append((channel, sent_at))
        sqlite = session.get_bind().dialect.name == "sqlite"
        for channel, handed_at, contact_id, tenant_id in session.execute(_SENDING_SQLITE if sqlite else _SENDING):
            if contact_id in contact_ids and tenant_id in tenant_ids:
                recent[contact_id].append((channel, handed_at))
        last_purchase = dict(
            session.execute(
                select(Event.contact_id, func.max(Event.occurred_at))
                .where(Event.tenant_id.in_(tenant_ids), Event.contact_id.in_(contact_ids), Event.type == "order_placed")
                .group_by(Event.contact_id)
            ).all()
        )
        enrollment_ids = {m.enrollment_id for m in batch if m.enrollment_id is not None}
        events = (
            {
                row.enrollment_id: row
                for row in session.execute(
                    select(Enrollment.__table__.c.id.label("enrollment_id"), *EVENTS.c)
                    .join(EVENTS, EVENTS.c.id == Enrollment.__table__.c.event_id)
                    .where(Enrollment.__table__.c.id.in_(enrollment_ids))
                )
            }
            if enrollment_ids
            else {}
        )
        tenants = {t.id: t for t in session.scalars(select(Tenant).where(Tenant.id.in_(tenant_ids)))}
        # The complaint rate (two counts over 30 days per tenant) only matters to marketing email.
        emailing = {
            m.tenant_id: tenants[m.tenant_id] for m in batch if m.channel == "email" and m.purpose == "marketing"
        }
        return _BatchContext(
            tenants,
            contacts,
            {k: tuple(v) for k, v in ledgers.items()},
            suppressions,
            recent,
            last_purchase,
            events,
            self._offer_codes(session, batch, tenant_ids, contact_ids),
            rates_for_dispatch(session, emailing, now),
        )

    def _offer_codes(
        self, session: Session, batch: list[ClaimedMessage], tenant_ids: set[int], contact_ids: set[int]
    ) -> dict[tuple[int, str, int], str]:
        """The code most recently given to each contact in each offer campaign of the batch, for `offer.code`."""
        names = {m.campaign for m in batch if (c := self.definitions.campaigns.get(m.campaign)) and c.offer_codes}
        if not names:
            return {}
        newest: dict[tuple[int, str, int], tuple] = {}
        for row in session.execute(
            select(
                OfferCode.tenant_id,
                OfferCode.campaign,
                OfferCode.contact_id,
                OfferCode.assigned_at,
                OfferCode.id,
                OfferCode.code,
            ).where(
                OfferCode.tenant_id.in_(tenant_ids),
                OfferCode.campaign.in_(names),
                OfferCode.contact_id.in_(contact_ids),
            )
        ):
            key = (row.tenant_id, row.campaign, row.contact_id)
            rank = (row.assigned_at is not None, row.assigned_at, row.id)
            if key not in newest or rank > newest[key][0]:
                newest[key] = (rank, row.code)
        return {key: code for key, (_, code) in newest.items()}

    # -- sending --------------------------------------------------------------------

    def _record_results(
        self, session: Session, results, report: TickReport, ours: dict[int, ClaimedMessage], handed_at: datetime
    ) -> None:
        now = self.clock.now()
        # The rows as this worker left them (`sending`, stamped when handed over) are the batch's own objects;
        # only those a status callback moved meanwhile are read again, whole.
        ids = [r[0] for r in results]
        moved = [
            row.id
            for row in session.execute(
                select(MESSAGES.c.id, MESSAGES.c.status, MESSAGES.c.updated_at)
                .where(MESSAGES.c.id.in_(ids))
                .with_for_update()
            )
            if row.status != "sending" or row.updated_at != handed_at
        ]
        messages = {i: ours[i] for i in ids}
        if moved:
            messages.update(
                (m.id, m) for m in claimed(session.execute(select(*CLAIMED).where(MESSAGES.c.id.in_(moved))))
            )
        steps: list[dict[str, Any]] = []
        sent: list[ClaimedMessage] = []
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
                steps.append(
                    move(
                        message,
                        "sent",
                        at=now,
                        source="worker",
                        rule=message.rule,
                        reason=message.reason,
                        detail={"provider": result.provider, "provider_id": result.provider_id},
                    )
                )
                sent.append(message)
                report.sent += 1
            elif result.ambiguous:
                # The provider may have taken it (timeout, dropped connection): never re-send blindly.
                steps.append(
                    move(
                        message,
                        "unknown",
                        at=now,
                        source="worker",
                        rule="provider_ambiguous",
                        reason=f"no clear answer from the provider, not re-sent; a status callback settles it: {result}",
                        detail={"code": result.code},
                    )
                )
                report.failed += 1
            elif isinstance(result, PermanentProviderError) or message.attempts >= MAX_ATTEMPTS:
                steps.append(self._fail(session, message, result, now))
                report.failed += 1
            else:
                message.error_code = result.code
                message.due_at = now + retry_delay(message.attempts, self._rng, result.retry_after)
                steps.append(
                    move(
                        message,
                        "scheduled",
                        at=now,
                        source="worker",
                        rule="provider_retry",
                        reason=f"transient provider error, attempt {message.attempts}: {result}",
                        detail={"code": result.code, "retry_at": message.due_at.isoformat()},
                    )
                )
                report.retried += 1
        # The worker's own steps first, so callbacks applied below come after `sent` in each message's trail.
        record_transitions(session, steps)
        # Callbacks that arrived before this answer was recorded are waiting, unattached.
        attach_pending(session, sent, now, self._rng)
        write_changes(session, list(messages.values()))

    def _fail(self, session: Session, message: ClaimedMessage, error: ProviderError, now: datetime) -> dict[str, Any]:
        message.error_code = error.code
        step = move(
            message,
            "failed",
            at=now,
            source="worker",
            rule="provider",
            reason=f"provider refused{' (code ' + error.code + ')' if error.code else ''}: {error}",
            detail={"code": error.code},
        )
        if undeliverable("provider", code=error.code):
            schedule_fallback(session, message, self.definitions, now, f"provider error {error.code}")
        reason = SUPPRESSING_CODES.get(error.code or "")
        if reason and message.to_address:
            from outbound.db.suppressions import suppress

            suppress(
                session,
                message.tenant_id,
                message.channel,
                message.to_address,
                reason=reason,
                source=f"provider error {error.code}",
                at=now,
            )
        return step


def expire_sending(session: Session, now: datetime, older_than: timedelta) -> int:
    """`sending` rows older than `older_than` become `unknown`: reconciled by callbacks, never re-sent."""
    stale = session.scalars(select(Message).where(Message.status == "sending", Message.updated_at < now - older_than))
    count = 0
    for message in stale:
        transition(
            session,
            message,
            "unknown",
            at=now,
            source="worker",
            rule="sending_expired",
            reason=f"no provider answer recorded within {older_than}; not re-sent",
        )
        count += 1
    return count
