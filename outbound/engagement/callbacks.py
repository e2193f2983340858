"""Callback tasks agents work: which may be called now, claiming the next one, recording outcomes.

A task is offered only inside calling hours in the customer's own time zone and never for a number
on the voice suppression list or the Do-Not-Call list (which must itself be fresh). "Next call"
claims the best offered task with a lease: a conditional UPDATE that only succeeds while the task
is open (or its lease ran out), so two agents never hold the same task, on SQLite or PostgreSQL.

The rules (`calling_rules`, `decide_call`, `plan_outcome`) are pure: values in, values out. The
functions below them read and write the database and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from outbound.addresses import address_hash, contact_address_hash
from outbound.clock import ensure_utc, parse_duration
from outbound.compliance import (
    Allow,
    Block,
    Decision,
    Defer,
    dnc_decision,
    policy_for,
    resolve_jurisdiction,
    resolve_timezone,
)
from outbound.compliance.rules import inside, next_local
from outbound.db.models import Agent, CallbackAttempt, CallbackTask, Contact, DncImport, Enrollment, Suppression, Tenant
from outbound.db.suppressions import suppress
from outbound.enrollment.lifecycle import exit_enrollment
from outbound.errors import InvalidInput, NotFound, OutboundError
from outbound.ingest.contacts import ConsentIn, record_consent

OUTCOMES = {
    "reached": "Reached",
    "no_answer": "No answer",
    "voicemail": "Voicemail",
    "call_back_later": "Call back at",
    "converted": "Converted",
    "wrong_number": "Wrong number",
    "do_not_call": "Do not call",
}
# Nobody picked up: the task comes back after a delay, until the tenant's attempt limit.
UNANSWERED = frozenset({"no_answer", "voicemail"})
LEASE = timedelta(minutes=10)
US_CALLING_HOURS = (time(8), time(21))  # 47 CFR 64.1200(c)(1)
DEFAULT_CALLING_HOURS = US_CALLING_HOURS
DEFAULT_RETRY_DELAY = timedelta(hours=2)
DEFAULT_MAX_ATTEMPTS = 3
# Blocks that belong to the number itself: the task can never be called, so it is closed, not kept.
NUMBER_BLOCKS = frozenset({"no_phone", "suppression", "dnc"})
# Candidates are judged a few at a time: the best one is usually callable, and judging costs lookups.
_BATCHES = (8, 64, 256)


class TaskNotHeld(OutboundError):
    """The task is not claimed by this agent (never was, was closed, or its lease passed to someone else)."""


# -- pure rules --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CallingRules:
    """A tenant's calling rules for one customer: the local window [start, end), retry delay, attempt limit."""

    window: tuple[time, time] = DEFAULT_CALLING_HOURS
    retry_delay: timedelta = DEFAULT_RETRY_DELAY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


def calling_rules(settings: dict[str, Any], *, us: bool) -> CallingRules:
    """The rules from a tenant's settings (`calling_hours` "HH:MM-HH:MM", `callback_retry_delay` "2h",
    `callback_max_attempts`); for a US customer the window never reaches outside 08:00–21:00."""
    window = parse_hours(settings.get("calling_hours"), "settings.calling_hours") or DEFAULT_CALLING_HOURS
    if us:
        window = (max(window[0], US_CALLING_HOURS[0]), min(window[1], US_CALLING_HOURS[1]))
    retry = settings.get("callback_retry_delay")
    try:
        retry_delay = parse_duration(retry) if retry is not None else DEFAULT_RETRY_DELAY
    except ValueError as error:
        raise InvalidInput(str(error), field="settings.callback_retry_delay") from None
    attempts = settings.get("callback_max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InvalidInput(f"must be a whole number ≥ 1, not {attempts!r}", field="settings.callback_max_attempts")
    return CallingRules(window=window, retry_delay=retry_delay, max_attempts=attempts)


def parse_hours(value: Any, field: str) -> tuple[time, time] | None:
    """'09:00-20:00' → (09:00, 20:00); None stays None. The window must not span midnight."""
    if value is None:
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in str(value).split("-"))
    except ValueError:
        raise InvalidInput(f"must be 'HH:MM-HH:MM', not {value!r}", field=field) from None
    if not start < end:
        raise InvalidInput(f"the start must be before the end, not {value!r}", field=field)
    return start, end


@dataclass(frozen=True, kw_only=True)
class CallFacts:
    """What decides whether a customer may be called now."""

    now: datetime
    zone: str
    window: tuple[time, time]
    phone: str | None
    suppressions: tuple[str, ...] = ()  # reasons the number is on the voice suppression list
    dnc: Decision = Allow()  # the Do-Not-Call decision for the number (listed, list fresh)


def decide_call(facts: CallFacts) -> Decision:
    """Allow, Defer(until the window opens, rule calling_hours) or Block(no_phone, dnc, suppression, dnc_stale)."""
    if not facts.phone:
        return Block(rule="no_phone", reason="the customer has no phone number")
    if not isinstance(facts.dnc, Allow):
        return facts.dnc
    if facts.suppressions:
        return Block(rule="suppression", reason=f"the number is suppressed for calls ({', '.join(facts.suppressions)})")
    zone = ZoneInfo(facts.zone)
    start, end = facts.window
    local = facts.now.astimezone(zone)
    if not inside(local.time(), start, end):
        return Defer(
            until=next_local(facts.now, zone, start),
            rule="calling_hours",
            reason=f"it is {local:%H:%M} for the customer ({facts.zone}); calls only {start:%H:%M}–{end:%H:%M}",
        )
    return Allow(rule="calling_hours", reason=f"it is {local:%H:%M} for the customer, inside {start:%H:%M}–{end:%H:%M}")


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What an outcome does to its task: open again at `due_at`, or close."""

    status: str
    due_at: datetime | None = None


def plan_outcome(
    outcome: str, *, unanswered_before: int, rules: CallingRules, now: datetime, call_back_at: datetime | None = None
) -> Plan:
    """The task's next state after `outcome`; `unanswered_before` counts earlier no-answer/voicemail calls."""
    if outcome not in OUTCOMES:
        raise InvalidInput(f"must be one of {', '.join(OUTCOMES)}, not {outcome!r}", field="outcome")
    if outcome in UNANSWERED:
        if unanswered_before + 1 >= rules.max_attempts:
            return Plan(status="closed")
        return Plan(status="open", due_at=now + rules.retry_delay)
    if outcome == "call_back_later":
        if call_back_at is None:
            raise InvalidInput("give the time to call back", field="call_back_at")
        if ensure_utc(call_back_at) <= now:
            raise InvalidInput("the time to call back must be in the future", field="call_back_at")
        return Plan(status="open", due_at=ensure_utc(call_back_at))
    return Plan(status="closed")


# -- queries -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """A task with its customer, their local time, and whether calling them is allowed now."""

    task: CallbackTask
    contact: Contact
    zone: str
    local_time: datetime
    decision: Decision
    agent: str | None = None  # who holds it, when claimed


def call_decisions(
    session: Session, tenant: Tenant, contacts: list[Contact], now: datetime
) -> dict[int, tuple[str, Decision]]:
    """Per contact id: the customer's time zone and whether they may be called now. The same Do-Not-Call rule
    as `outbound.ingest.dnc.may_call` (the gate's `dnc_decision`), with one lookup for the whole batch of numbers."""
    hashes = {c.id: contact_address_hash("voice", c) for c in contacts if c.phone}
    reasons: dict[str, list[str]] = {}
    if hashes:
        for digest, reason in session.execute(
            select(Suppression.address_hash, Suppression.reason).where(
                Suppression.tenant_id == tenant.id,
                Suppression.channel == "voice",
                Suppression.address_hash.in_(set(hashes.values())),
            )
        ):
            reasons.setdefault(digest, []).append(reason)
    list_date = session.scalar(select(func.max(DncImport.list_date)).where(DncImport.tenant_id == tenant.id))
    settings = tenant.settings or {}
    result = {}
    for contact in contacts:
        zone = resolve_timezone(contact.timezone, contact.phone, tenant.timezone)
        jurisdiction = resolve_jurisdiction(contact.jurisdiction, tenant.jurisdiction)
        us = jurisdiction == "US" or _us_number(contact.phone)
        found = reasons.get(hashes.get(contact.id, ""), [])
        dnc = dnc_decision(
            listed="dnc" in found,
            list_date=list_date,
            now=now,
            policy=policy_for("US" if us else jurisdiction, settings.get("compliance")),
        )
        facts = CallFacts(
            now=now,
            zone=zone,
            window=calling_rules(settings, us=us).window,
            phone=contact.phone,
            suppressions=tuple(r for r in found if r != "dnc"),
            dnc=dnc,
        )
        result[contact.id] = (zone, decide_call(facts))
    return result


def queue(session: Session, tenant: Tenant, now: datetime, limit: int = 200) -> list[Offer]:
    """Open and claimed tasks, best first (priority, then due time), each with its calling decision now."""
    rows = session.execute(
        select(CallbackTask, Contact, Agent.name)
        .join(Contact, Contact.id == CallbackTask.contact_id)
        .outerjoin(Agent, Agent.id == CallbackTask.claimed_by)
        .where(CallbackTask.tenant_id == tenant.id, CallbackTask.status.in_(("open", "claimed")))
        .order_by(CallbackTask.priority.desc(), CallbackTask.due_at, CallbackTask.id)
        .limit(limit)
    ).all()
    decisions = call_decisions(session, tenant, [contact for _, contact, _ in rows], now)
    offers = []
    for task, contact, agent in rows:
        zone, decision = decisions[contact.id]
        held = task.status == "claimed" and task.lease_expires_at is not None and task.lease_expires_at > now
        offers.append(Offer(task, contact, zone, now.astimezone(ZoneInfo(zone)), decision, agent if held else None))
    return offers


def claim_next(
    session: Session, tenant: Tenant, agent: Agent, now: datetime, lease: timedelta = LEASE
) -> CallbackTask | None:
    """The task this agent already holds (lease renewed), else the best due task that may be called now,
    claimed for `lease`; None when there is none. Tasks whose number can never be called are closed."""
    held = session.scalar(
        select(CallbackTask)
        .where(
            CallbackTask.tenant_id == tenant.id,
            CallbackTask.status == "claimed",
            CallbackTask.claimed_by == agent.id,
            CallbackTask.lease_expires_at > now,
        )
        .order_by(CallbackTask.id)
        .limit(1)
    )
    if held is not None:
        held.lease_expires_at = now + lease
        session.flush()
        return held
    claimable = or_(
        CallbackTask.status == "open", and_(CallbackTask.status == "claimed", CallbackTask.lease_expires_at <= now)
    )
    offset, size = 0, iter(_BATCHES)
    while True:
        batch = next(size, _BATCHES[-1])
        rows = session.execute(
            select(CallbackTask.id, Contact)
            .join(Contact, Contact.id == CallbackTask.contact_id)
            .where(CallbackTask.tenant_id == tenant.id, CallbackTask.due_at <= now, claimable)
            .order_by(CallbackTask.priority.desc(), CallbackTask.due_at, CallbackTask.id)
            .offset(offset)
            .limit(batch)
        ).all()
        if not rows:
            return None
        decisions = call_decisions(session, tenant, [contact for _, contact in rows], now)
        for task_id, contact in rows:
            decision = decisions[contact.id][1]
            if isinstance(decision, Block) and decision.rule in NUMBER_BLOCKS:
                _close_uncallable(session, tenant.id, task_id, claimable, decision, now)
            elif isinstance(decision, Allow) and _take(session, tenant.id, task_id, claimable, agent.id, now + lease):
                return session.get(CallbackTask, task_id, populate_existing=True)
        offset += len(rows)


def _take(session: Session, tenant_id: int, task_id: int, claimable, agent_id: int, until: datetime) -> bool:
    # The WHERE re-checks the state at write time: whoever updates first wins, the other sees 0 rows.
    result = session.execute(
        update(CallbackTask)
        .where(CallbackTask.id == task_id, CallbackTask.tenant_id == tenant_id, claimable)
        .values(status="claimed", claimed_by=agent_id, lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _close_uncallable(
    session: Session, tenant_id: int, task_id: int, claimable, decision: Block, now: datetime
) -> None:
    session.execute(
        update(CallbackTask)
        .where(CallbackTask.id == task_id, CallbackTask.tenant_id == tenant_id, claimable)
        .values(
            status="closed",
            outcome="blocked",
            notes=f"{decision.rule}: {decision.reason}",
            closed_at=now,
            claimed_by=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )


def get_task(session: Session, tenant_id: int, task_id: int) -> CallbackTask:
    """The tenant's task with that id, else NotFound (another tenant's task is not found either)."""
    task = session.get(CallbackTask, task_id)
    if task is None or task.tenant_id != tenant_id:
        raise NotFound(f"no callback task {task_id}")
    return task


def record_outcome(
    session: Session,
    tenant: Tenant,
    agent: Agent,
    task_id: int,
    outcome: str,
    *,
    now: datetime,
    notes: str = "",
    call_back_at: datetime | None = None,
) -> CallbackAttempt:
    """Record one call on a task the agent holds, and apply what the outcome means (see `plan_outcome`):
    do not call → voice suppression and revoked marketing SMS consent; wrong number → voice suppression;
    converted → the enrollment (its nurture messages) ends."""
    task = get_task(session, tenant.id, task_id)
    notes = (notes or "").strip()
    if len(notes) > 4000:
        raise InvalidInput("at most 4000 characters", field="notes")
    unanswered = (
        session.scalar(
            select(func.count())
            .select_from(CallbackAttempt)
            .where(CallbackAttempt.task_id == task.id, CallbackAttempt.outcome.in_(UNANSWERED))
        )
        or 0
    )
    rules = calling_rules(tenant.settings or {}, us=False)
    plan = plan_outcome(outcome, unanswered_before=unanswered, rules=rules, now=now, call_back_at=call_back_at)
    # Conditional on still holding it: an agent whose lease was taken over cannot overwrite the new holder's work.
    values: dict[str, Any] = {
        "status": plan.status,
        "outcome": outcome,
        "notes": notes or None,
        "attempts": CallbackTask.attempts + 1,
        "claimed_by": None,
        "lease_expires_at": None,
    }
    values.update({"due_at": plan.due_at} if plan.status == "open" else {"closed_at": now})
    result = session.execute(
        update(CallbackTask)
        .where(
            CallbackTask.id == task.id,
            CallbackTask.tenant_id == tenant.id,
            CallbackTask.status == "claimed",
            CallbackTask.claimed_by == agent.id,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise TaskNotHeld(f"callback task {task.id} is not claimed by {agent.username}; take the next call instead")
    attempt = CallbackAttempt(
        tenant_id=tenant.id,
        task_id=task.id,
        agent_id=agent.id,
        outcome=outcome,
        notes=notes or None,
        call_back_at=plan.due_at if outcome == "call_back_later" else None,
        at=now,
    )
    session.add(attempt)
    session.flush()
    session.refresh(task)
    contact = session.get(Contact, task.contact_id)
    source = f"agent {agent.username}, callback task {task.id}"
    if outcome in ("do_not_call", "wrong_number") and contact is not None and contact.phone:
        suppress(session, tenant.id, "voice", contact.phone, reason=outcome, source=source, at=now)
    if outcome == "do_not_call" and contact is not None:
        record_consent(
            session,
            tenant,
            contact,
            ConsentIn(
                channel="sms",
                purpose="marketing",
                granted=False,
                at=now,
                source=source,
                text="Asked on a call not to be called again nor sent marketing",
            ),
            _Fixed(now),
        )
    if outcome == "converted" and task.enrollment_id is not None:
        enrollment = session.get(Enrollment, task.enrollment_id)
        if enrollment is not None and enrollment.status == "active":
            exit_enrollment(session, enrollment, now, f"converted on callback task {task.id} ({agent.username})")
    return attempt


class _Fixed:
    """The moment of the outcome, as the clock the consent ledger asks for."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at


@lru_cache(maxsize=4096)
def _us_number(phone: str | None) -> bool:
    if not phone:
        return False
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None)) == "US"
    except phonenumbers.NumberParseException:
        return False


# -- what agents and supervisors read ----------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerContext:
    """What an agent sees before calling: recent events, messages, survey answers, consent state, past calls."""

    contact: Contact
    zone: str
    local_time: datetime
    decision: Decision
    events: list
    messages: list
    surveys: list
    consents: list  # the latest ledger entry per (channel, purpose)
    suppressions: list  # (channel, reason)
    attempts: list  # (attempt, agent name), newest first


def customer_context(
    session: Session, tenant: Tenant, task: CallbackTask, now: datetime, recent: int = 10
) -> CustomerContext:
    """The context of the task's customer, every query scoped by the tenant."""
    from outbound.db.models import Consent, Event, Message, SurveyResponse

    contact = session.get(Contact, task.contact_id)
    if contact is None or contact.tenant_id != tenant.id:
        raise NotFound(f"no contact for callback task {task.id}")
    zone, decision = call_decisions(session, tenant, [contact], now)[contact.id]
    mine = {"tenant_id": tenant.id, "contact_id": contact.id}
    events = session.scalars(select(Event).filter_by(**mine).order_by(Event.occurred_at.desc()).limit(recent)).all()
    messages = session.scalars(
        select(Message).filter_by(**mine).order_by(Message.updated_at.desc(), Message.id.desc()).limit(recent)
    ).all()
    surveys = session.scalars(
        select(SurveyResponse).filter_by(**mine).order_by(SurveyResponse.received_at.desc()).limit(recent)
    ).all()
    latest: dict[tuple[str, str], Any] = {}
    for consent in session.scalars(select(Consent).filter_by(**mine).order_by(Consent.at, Consent.id)):
        latest[(consent.channel, consent.purpose)] = consent
    addresses = [
        (channel, address_hash(channel, value))
        for channel, value in (("sms", contact.phone), ("voice", contact.phone), ("email", contact.email))
        if value
    ]
    suppressions = [
        (row.channel, row.reason)
        for row in session.scalars(
            select(Suppression).where(
                Suppression.tenant_id == tenant.id,
                or_(*[and_(Suppression.channel == c, Suppression.address_hash == h) for c, h in addresses])
                if addresses
                else Suppression.id.is_(None),
            )
        )
    ]
    attempts = session.execute(
        select(CallbackAttempt, Agent.name)
        .outerjoin(Agent, Agent.id == CallbackAttempt.agent_id)
        .join(CallbackTask, CallbackTask.id == CallbackAttempt.task_id)
        .where(CallbackAttempt.tenant_id == tenant.id, CallbackTask.contact_id == contact.id)
        .order_by(CallbackAttempt.at.desc(), CallbackAttempt.id.desc())
        .limit(recent)
    ).all()
    return CustomerContext(
        contact,
        zone,
        now.astimezone(ZoneInfo(zone)),
        decision,
        list(events),
        list(messages),
        list(surveys),
        sorted(latest.values(), key=lambda c: (c.channel, c.purpose)),
        suppressions,
        [tuple(row) for row in attempts],
    )


@dataclass(frozen=True)
class Summary:
    """The supervisor's view: the queue, outcomes per agent today, tasks created and closed per hour."""

    open: int
    claimed: int
    oldest_due_at: datetime | None
    outcomes: dict[str, dict[str, int]]  # agent name → outcome → count, since local midnight
    hours: list[tuple[datetime, int, int]]  # (hour start, local; created; closed), oldest first


def supervisor_summary(session: Session, tenant: Tenant, now: datetime, hours: int = 24) -> Summary:
    """Counts for the tenant's supervisor page; `hours` whole hours ending with the current one."""
    zone = ZoneInfo(tenant.timezone)
    counts = dict(
        session.execute(
            select(CallbackTask.status, func.count())
            .where(CallbackTask.tenant_id == tenant.id, CallbackTask.status.in_(("open", "claimed")))
            .group_by(CallbackTask.status)
        ).all()
    )
    oldest = session.scalar(
        select(func.min(CallbackTask.due_at)).where(
            CallbackTask.tenant_id == tenant.id,
            CallbackTask.status.in_(("open", "claimed")),
            CallbackTask.due_at <= now,
        )
    )
    midnight = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
    outcomes: dict[str, dict[str, int]] = {}
    for name, outcome, count in session.execute(
        select(Agent.name, CallbackAttempt.outcome, func.count())
        .join(Agent, Agent.id == CallbackAttempt.agent_id)
        .where(CallbackAttempt.tenant_id == tenant.id, CallbackAttempt.at >= midnight)
        .group_by(Agent.name, CallbackAttempt.outcome)
        .order_by(Agent.name)
    ):
        outcomes.setdefault(name, {})[outcome] = count
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    created = session.scalars(
        select(CallbackTask.created_at).where(
            CallbackTask.tenant_id == tenant.id, CallbackTask.created_at >= start, CallbackTask.created_at < end
        )
    ).all()
    closed = session.scalars(
        select(CallbackTask.closed_at).where(
            CallbackTask.tenant_id == tenant.id, CallbackTask.closed_at >= start, CallbackTask.closed_at < end
        )
    ).all()
    return Summary(
        counts.get("open", 0), counts.get("claimed", 0), oldest, outcomes, hourly(created, closed, start, hours, zone)
    )


def hourly(
    created: list[datetime], closed: list[datetime], start: datetime, hours: int, zone: ZoneInfo
) -> list[tuple[datetime, int, int]]:
    """Bucket times into `hours` hours from `start` (UTC, on the hour): (local hour start, created, closed)."""
    buckets = [[0, 0] for _ in range(hours)]
    for column, times in ((0, created), (1, closed)):
        for at in times:
            index = int((at - start).total_seconds() // 3600)
            if 0 <= index < hours:
                buckets[index][column] += 1
    return [((start + timedelta(hours=i)).astimezone(zone), a, b) for i, (a, b) in enumerate(buckets)]
