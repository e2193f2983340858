"""Trigger rules turn events into enrollments; enrollments schedule one message per step.

Exit rules run first, so an event that both ends one enrollment and starts another
(an order placed) never leaves a reminder for the cart it just bought. An order is
attributed to campaigns before that, so the purchase that ends a win-back still counts for it.

A fixed share of each campaign's audience is held out (a deterministic hash of tenant,
campaign and contact, so the same contact lands on the same side on every run and every copy of
the database): held-out enrollments are recorded, for attribution, and never messaged. A step
with variants sends each contact one of them, split by weight with the same kind of hash.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.context import contact_view, event_view
from outbound.db import direct
from outbound.db.bulk import insert_returning_ids, insert_rows, insert_with_ids
from outbound.db.models import (
    CallbackAttempt,
    CallbackTask,
    Contact,
    Enrollment,
    Event,
    Message,
    MessageTransition,
    OfferCode,
    Tenant,
)
from outbound.definitions import Definitions
from outbound.enrollment.campaign_state import campaign_states
from outbound.enrollment.conversions import record_conversions
from outbound.errors import NotFound

PENDING = ("scheduled", "deferred")
# Call outcomes after which a lead is still worth nurturing: nobody was reached yet.
NURTURE_GOES_ON = frozenset(
    {"no_answer", "busy", "voicemail", "left_message", "call_back_later", "callback", "wrong_time"}
)
BULK_CHUNK = 2000  # contacts per set of multi-row INSERTs in `enroll_many`
RUN_EVENTS = 500  # events per run in `process_events`: contact ids per look-up stay far below any limit
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed


@dataclass
class EventOutcome:
    """What one event did: enrollments started, skipped as duplicates, and ended."""

    enrolled: list[Enrollment] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    exited: list[Enrollment] = field(default_factory=list)


def serves(campaign, tenant: Tenant) -> bool:
    """A campaign serves every tenant unless it names the tenants it serves."""
    return not campaign.tenants or tenant.slug in campaign.tenants


def process_event(
    session: Session, tenant: Tenant, event: Event, contact: Contact, definitions: Definitions, clock: Clock
) -> EventOutcome:
    """Apply exit rules, then trigger rules, for one stored event."""
    (made,) = _process_run(session, tenant, [(event, contact)], definitions, clock)
    enrolled = (
        {e.id: e for e in session.scalars(select(Enrollment).where(Enrollment.id.in_(made.enrolled)))}
        if made.enrolled
        else {}
    )
    return EventOutcome([enrolled[i] for i in made.enrolled], made.skipped, made.exited)


def process_events(
    session: Session, tenant: Tenant, stored: Sequence[tuple[Event, Contact]], definitions: Definitions, clock: Clock
) -> None:
    """`process_event` for each (event, contact) in turn, with a query per run of events rather than per event.

    The events are taken in runs in which no contact comes twice: an event's exits, enrollments and
    conversions read and write only its own contact's rows, so within such a run each event sees
    what it would see one at a time. Per run: one query for the campaigns' states, one for the
    enrollments that exit rules end, one for those that enrollment windows count; the new
    enrollments, messages, first transitions and callback tasks go in with one INSERT per table.
    """
    run: list[tuple[Event, Contact]] = []
    contacts: set[int] = set()
    for event, contact in stored:
        if contact.id in contacts or len(run) >= RUN_EVENTS:
            _process_run(session, tenant, run, definitions, clock)
            run, contacts = [], set()
        run.append((event, contact))
        contacts.add(contact.id)
    if run:
        _process_run(session, tenant, run, definitions, clock)


@dataclass
class _Made:
    # What one event of a run did; `enrolled` holds enrollment ids.
    enrolled: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    exited: list[Enrollment] = field(default_factory=list)


def _process_run(
    session: Session, tenant: Tenant, run: Sequence[tuple[Event, Contact]], definitions: Definitions, clock: Clock
) -> list[_Made]:
    # Every contact of `run` comes once (see process_events).
    now = clock.now()
    made = [_Made() for _ in run]
    names = [{"event": event_view(event), "contact": contact_view(contact)} for event, contact in run]
    for event, contact in run:
        if event.type == "order_placed":
            record_conversions(session, tenant, event, contact, definitions)
    _exit_run(session, tenant, run, names, made, definitions, now)
    candidates = [
        (i, definitions.campaigns[trigger.campaign], trigger.name)
        for i, (event, _) in enumerate(run)
        for trigger in definitions.triggers_for(event.type)
        if serves(definitions.campaigns[trigger.campaign], tenant)
        and (trigger.when is None or trigger.when.test(**names[i]))
    ]
    if not candidates:
        return made
    states = campaign_states(session, tenant.id, {c.name: c for _, c, _ in candidates}.values(), now)
    live = [c for _, c, _ in candidates if states[c.name] == "active"]
    taken = _enrolled_within_windows(session, tenant, run, live, now)
    pending = _NewEnrollments(tenant, now)
    for i, campaign, trigger in candidates:
        event, contact = run[i]
        if states[campaign.name] != "active":
            made[i].skipped.append(campaign.name)
            continue
        rule = campaign.enrollment
        key = _key(rule.key.evaluate(**names[i])) if rule is not None and rule.key is not None else ""
        if campaign.offer_codes is not None:
            # Codes are drawn one enrollment at a time, in event order, after the enrollments before it.
            pending.write(session)
            enrollment = enroll(session, tenant, campaign, contact, event, clock, trigger=trigger)
            if enrollment is None:
                made[i].skipped.append(campaign.name)
            else:
                made[i].enrolled.append(enrollment.id)
            continue
        if rule is not None and rule.window is not None:
            if (campaign.name, contact.id, key) in taken:
                made[i].skipped.append(campaign.name)
                continue
            taken.add((campaign.name, contact.id, key))
        pending.add(campaign, event, contact, key, trigger, names[i], made[i])
    pending.write(session)
    return made


def _exit_run(
    session: Session,
    tenant: Tenant,
    run: Sequence[tuple[Event, Contact]],
    names: list[dict],
    made: list[_Made],
    definitions: Definitions,
    now: datetime,
) -> None:
    # The exit rules of every event of the run, with one query for the active enrollments they may end.
    rules = [
        (i, campaign, rule)
        for i, (event, _) in enumerate(run)
        for campaign, rule in definitions.exits_for(event.type)
        if serves(campaign, tenant)
    ]
    if not rules:
        return
    active: dict[tuple[int, str], list[Enrollment]] = defaultdict(list)
    for enrollment in session.scalars(
        _ACTIVE,
        {
            "tenant_id": tenant.id,
            "campaigns": sorted({c.name for _, c, _ in rules}),
            "contact_ids": sorted({run[i][1].id for i, _, _ in rules}),
        },
    ):
        active[(enrollment.contact_id, enrollment.campaign)].append(enrollment)
    for i, campaign, rule in rules:
        event, contact = run[i]
        key = _key(rule.key.evaluate(**names[i])) if rule.key is not None else None
        for enrollment in active[(contact.id, campaign.name)]:
            # An enrollment an earlier rule of this event ended is no longer active.
            if enrollment.status == "active" and (key is None or enrollment.dedupe_key == key):
                exit_enrollment(session, enrollment, now, f"exit: {event.type} {event.event_id}")
                made[i].exited.append(enrollment)


def _enrolled_within_windows(
    session: Session, tenant: Tenant, run: Sequence[tuple[Event, Contact]], campaigns, now: datetime
) -> set[tuple[str, int, str]]:
    # (campaign, contact id, key) of the run's contacts' enrollments that the campaigns' windows still count.
    windows = {
        c.name: c.enrollment.window
        for c in campaigns
        if c.offer_codes is None and c.enrollment is not None and c.enrollment.window is not None
    }
    if not windows:
        return set()
    rows = direct.fetch(
        session,
        _WITHIN_WINDOWS,
        {
            "tenant_id": tenant.id,
            "campaigns": sorted(windows),
            "contact_ids": [contact.id for _, contact in run],
            "since": now - max(windows.values()),
        },
    )
    return {(campaign, contact_id, key) for campaign, contact_id, key, at in rows if at > now - windows[campaign]}


# Built once: building a statement costs more than running it for a run of one event.
_ACTIVE = (
    select(Enrollment)
    .where(
        Enrollment.tenant_id == bindparam("tenant_id"),
        Enrollment.campaign.in_(bindparam("campaigns", expanding=True)),
        Enrollment.contact_id.in_(bindparam("contact_ids", expanding=True)),
        Enrollment.status == "active",
    )
    .order_by(Enrollment.id)
)
_WITHIN_WINDOWS = select(
    Enrollment.campaign, Enrollment.contact_id, Enrollment.dedupe_key, Enrollment.enrolled_at
).where(
    Enrollment.tenant_id == bindparam("tenant_id"),
    Enrollment.campaign.in_(bindparam("campaigns", expanding=True)),
    Enrollment.contact_id.in_(bindparam("contact_ids", expanding=True)),
    Enrollment.enrolled_at > bindparam("since"),
)


class _NewEnrollments:
    """Enrollments of a run waiting to be written together: the rows `enroll` writes for each, in order."""

    def __init__(self, tenant: Tenant, now: datetime) -> None:
        self.tenant, self.now = tenant, now
        self.enrollments: list[dict[str, Any]] = []
        self.messages: list[tuple[int, dict[str, Any]]] = []  # (index of its enrollment, row)
        self.callbacks: list[tuple[int, dict[str, Any]]] = []
        self.made: list[_Made] = []

    def add(self, campaign, event: Event, contact: Contact, key: str, trigger: str, names: dict, made: _Made) -> None:
        tenant, now = self.tenant, self.now
        held_out = in_holdout(tenant.slug, campaign.name, contact.external_id, campaign.holdout)
        steps = [] if held_out else [s for s in campaign.steps if s.when is None or s.when.test(**names)]
        index = len(self.enrollments)
        self.enrollments.append(
            {
                **_enrollment_row(tenant, campaign, contact, key, trigger, held_out, bool(steps), now),
                "event_id": event.id,
            }
        )
        self.made.append(made)
        for step in steps:
            variant = pick_variant(step, tenant.slug, campaign.name, contact.external_id)
            self.messages.append(
                (
                    index,
                    {
                        "tenant_id": tenant.id,
                        "contact_id": contact.id,
                        "campaign": campaign.name,
                        "step": step.id,
                        "channel": step.channel,
                        "purpose": campaign.purpose,
                        "template": step.template_of(variant),
                        "variant": variant.id if variant else None,
                        "status": "scheduled",
                        "due_at": max(event.occurred_at + step.delay, now),
                        "created_at": now,
                        "updated_at": now,
                        "attempts": 0,
                    },
                )
            )
        if campaign.callback is not None and not held_out:
            self.callbacks.append(
                (
                    index,
                    {
                        "tenant_id": tenant.id,
                        "contact_id": contact.id,
                        "campaign": campaign.name,
                        "reason": campaign.callback.reason,
                        "priority": campaign.callback.priority,
                        "status": "open",
                        "due_at": now + campaign.callback.delay,
                        "created_at": now,
                        "attempts": 0,
                    },
                )
            )

    def write(self, session: Session) -> None:
        """INSERT what is waiting, one statement per table, and start afresh."""
        if not self.enrollments:
            return
        ids = insert_with_ids(session, Enrollment.__table__, self.enrollments)
        for enrollment_id, made in zip(ids, self.made, strict=True):
            made.enrolled.append(enrollment_id)
        if self.messages:
            rows = [{**row, "enrollment_id": ids[index]} for index, row in self.messages]
            if len(ids) == 1:
                # The messages of one enrollment get the same first transition: any id will do for any of them.
                message_ids = sorted(insert_returning_ids(session, Message.__table__, rows))
            else:
                message_ids = insert_with_ids(session, Message.__table__, rows)
            insert_rows(
                session,
                MessageTransition.__table__,
                [
                    {
                        "tenant_id": self.tenant.id,
                        "message_id": message_id,
                        "at": self.now,
                        "from_status": None,
                        "to_status": "scheduled",
                        "source": "trigger",
                        "rule": None,
                        "reason": f"enrolled by {self.enrollments[index]['trigger'] or 'operator'}",
                        "detail": {},
                    }
                    for message_id, (index, _) in zip(message_ids, self.messages, strict=True)
                ],
            )
        if self.callbacks:
            insert_rows(
                session, CallbackTask.__table__, [{**row, "enrollment_id": ids[index]} for index, row in self.callbacks]
            )
        self.enrollments, self.messages, self.callbacks, self.made = [], [], [], []


def enroll(
    session: Session,
    tenant: Tenant,
    campaign,
    contact: Contact,
    event: Event | None,
    clock: Clock,
    *,
    trigger: str | None = None,
) -> Enrollment | None:
    """Enroll `contact` in `campaign` and schedule its steps; None if already enrolled with that key in the window."""
    now = clock.now()
    names = {"event": event_view(event), "contact": contact_view(contact)}
    rule = campaign.enrollment
    key = _key(rule.key.evaluate(**names)) if rule is not None and rule.key is not None else ""
    window = rule.window if rule is not None else None
    if window is not None:
        existing = session.scalar(
            select(Enrollment.id)
            .where(
                Enrollment.tenant_id == tenant.id,
                Enrollment.campaign == campaign.name,
                Enrollment.contact_id == contact.id,
                Enrollment.dedupe_key == key,
                Enrollment.enrolled_at > now - window,
            )
            .limit(1)
        )
        if existing is not None:
            return None
    held_out = in_holdout(tenant.slug, campaign.name, contact.external_id, campaign.holdout)
    enrollment = Enrollment(
        tenant_id=tenant.id,
        campaign=campaign.name,
        contact_id=contact.id,
        dedupe_key=key,
        trigger=trigger,
        event_id=event.id if event is not None else None,
        status="active",
        enrolled_at=now,
        holdout=held_out,
    )
    session.add(enrollment)
    session.flush()
    if held_out:
        _end(enrollment, now, "completed", f"held out ({campaign.holdout:.0%} control group): never messaged")
        return enrollment
    if campaign.offer_codes is not None:
        assign_offer_code(session, tenant, campaign, contact, enrollment, now)
    start = event.occurred_at if event is not None else now
    messages = []
    for step in campaign.steps:
        if step.when is not None and not step.when.test(**names):
            continue
        variant = pick_variant(step, tenant.slug, campaign.name, contact.external_id)
        messages.append(
            Message(
                tenant_id=tenant.id,
                enrollment_id=enrollment.id,
                contact_id=contact.id,
                campaign=campaign.name,
                step=step.id,
                channel=step.channel,
                purpose=campaign.purpose,
                template=step.template_of(variant),
                variant=variant.id if variant else None,
                status="scheduled",
                due_at=max(start + step.delay, now),
                created_at=now,
                updated_at=now,
            )
        )
    session.add_all(messages)
    if campaign.callback is not None:
        session.add(
            CallbackTask(
                tenant_id=tenant.id,
                contact_id=contact.id,
                campaign=campaign.name,
                enrollment_id=enrollment.id,
                reason=campaign.callback.reason,
                priority=campaign.callback.priority,
                status="open",
                due_at=now + campaign.callback.delay,
                created_at=now,
            )
        )
    session.flush()
    session.add_all(
        MessageTransition(
            tenant_id=tenant.id,
            message_id=m.id,
            at=now,
            from_status=None,
            to_status="scheduled",
            source="trigger",
            reason=f"enrolled by {trigger or 'operator'}",
            detail={},
        )
        for m in messages
    )
    if not messages and campaign.callback is None:
        _end(enrollment, now, "completed", "no step applies to this contact")
    return enrollment


def enroll_many(
    session: Session,
    tenant: Tenant,
    campaign,
    contacts: Sequence[Any],
    clock: Clock,
    *,
    trigger: str | None = None,
) -> list[int]:
    """Enroll many contacts in `campaign` without an event; the ids of the enrollments made, in contact order.

    The rows are those `enroll` writes for each contact in turn (the window check, the
    holdout, the steps that apply, the callback task, each message's first transition),
    written with one multi-row INSERT per table and chunk instead of an ORM flush per row.
    `contacts` are Contact objects or rows with the contact columns. A campaign that gives
    out offer codes draws them one contact at a time, through `enroll`.
    """
    if campaign.offer_codes is not None:
        made = [
            enroll(session, tenant, campaign, _as_contact(session, c), None, clock, trigger=trigger) for c in contacts
        ]
        return [enrollment.id for enrollment in made if enrollment is not None]
    ids: list[int] = []
    taken: set[tuple[int, str]] = set()  # (contact, key) enrolled by this call: a repeat within it is a duplicate
    for start in range(0, len(contacts), BULK_CHUNK):
        ids.extend(
            _enroll_chunk(session, tenant, campaign, contacts[start : start + BULK_CHUNK], clock.now(), trigger, taken)
        )
    return ids


def _enroll_chunk(
    session: Session,
    tenant: Tenant,
    campaign,
    contacts: Sequence[Any],
    now: datetime,
    trigger: str | None,
    taken: set[tuple[int, str]],
) -> list[int]:
    rule = campaign.enrollment
    keyed = rule is not None and rule.key is not None
    reads_contact = keyed or any(step.when is not None for step in campaign.steps)
    no_event = event_view(None)
    names = [{"event": no_event, "contact": contact_view(c)} if reads_contact else None for c in contacts]
    keys = [_key(rule.key.evaluate(**n)) if keyed else "" for n in names]
    window = rule.window if rule is not None else None
    if window is not None:
        taken |= set(
            map(
                tuple,
                session.execute(
                    select(Enrollment.contact_id, Enrollment.dedupe_key).where(
                        Enrollment.tenant_id == tenant.id,
                        Enrollment.campaign == campaign.name,
                        Enrollment.contact_id.in_({c.id for c in contacts}),
                        Enrollment.enrolled_at > now - window,
                    )
                ).all(),
            )
        )
    chosen: list[tuple[Any, str, dict | None, bool, list]] = []
    for contact, key, view in zip(contacts, keys, names, strict=True):
        if window is not None:
            if (contact.id, key) in taken:
                continue
            taken.add((contact.id, key))
        held_out = in_holdout(tenant.slug, campaign.name, contact.external_id, campaign.holdout)
        steps = [] if held_out else [step for step in campaign.steps if step.when is None or step.when.test(**view)]
        chosen.append((contact, key, view, held_out, steps))
    if not chosen:
        return []
    enrollment_rows = [
        _enrollment_row(tenant, campaign, contact, key, trigger, held_out, bool(steps), now)
        for contact, key, _, held_out, steps in chosen
    ]
    enrollment_ids = insert_with_ids(session, Enrollment.__table__, enrollment_rows)
    message_rows, callback_rows = [], []
    for enrollment_id, (contact, _, _, held_out, steps) in zip(enrollment_ids, chosen, strict=True):
        if held_out:
            continue
        for step in steps:
            variant = pick_variant(step, tenant.slug, campaign.name, contact.external_id)
            message_rows.append(
                {
                    "tenant_id": tenant.id,
                    "enrollment_id": enrollment_id,
                    "contact_id": contact.id,
                    "campaign": campaign.name,
                    "step": step.id,
                    "channel": step.channel,
                    "purpose": campaign.purpose,
                    "template": step.template_of(variant),
                    "variant": variant.id if variant else None,
                    "status": "scheduled",
                    "due_at": max(now + step.delay, now),
                    "created_at": now,
                    "updated_at": now,
                    "attempts": 0,
                }
            )
        if campaign.callback is not None:
            callback_rows.append(
                {
                    "tenant_id": tenant.id,
                    "contact_id": contact.id,
                    "campaign": campaign.name,
                    "enrollment_id": enrollment_id,
                    "reason": campaign.callback.reason,
                    "priority": campaign.callback.priority,
                    "status": "open",
                    "due_at": now + campaign.callback.delay,
                    "created_at": now,
                    "attempts": 0,
                }
            )
    if message_rows:
        message_ids = insert_with_ids(session, Message.__table__, message_rows)
        reason = f"enrolled by {trigger or 'operator'}"
        insert_rows(
            session,
            MessageTransition.__table__,
            [
                {
                    "tenant_id": tenant.id,
                    "message_id": message_id,
                    "at": now,
                    "from_status": None,
                    "to_status": "scheduled",
                    "source": "trigger",
                    "rule": None,
                    "reason": reason,
                    "detail": {},
                }
                for message_id in message_ids
            ],
        )
    if callback_rows:
        insert_rows(session, CallbackTask.__table__, callback_rows)
    return enrollment_ids


def _enrollment_row(
    tenant: Tenant, campaign, contact, key: str, trigger: str | None, held_out: bool, has_steps: bool, now: datetime
) -> dict[str, Any]:
    # The end `enroll` gives right after inserting: a held-out contact, or one no step applies to.
    status, end_reason = "active", None
    if held_out:
        status, end_reason = "completed", f"held out ({campaign.holdout:.0%} control group): never messaged"
    elif not has_steps and campaign.callback is None:
        status, end_reason = "completed", "no step applies to this contact"
    return {
        "tenant_id": tenant.id,
        "campaign": campaign.name,
        "contact_id": contact.id,
        "dedupe_key": key,
        "trigger": trigger,
        "event_id": None,
        "status": status,
        "enrolled_at": now,
        "ended_at": now if end_reason else None,
        "end_reason": end_reason,
        "holdout": held_out,
    }


def _as_contact(session: Session, contact) -> Contact:
    return contact if isinstance(contact, Contact) else session.get(Contact, contact.id)


def exit_enrollment(session: Session, enrollment: Enrollment, at: datetime, reason: str) -> int:
    """End an enrollment and cancel its pending messages; returns how many were cancelled."""
    pending = session.scalars(
        select(Message).where(Message.enrollment_id == enrollment.id, Message.status.in_(PENDING))
    ).all()
    for message in pending:
        from outbound.db.messages import transition

        transition(session, message, "cancelled", at=at, source="trigger", rule="exit", reason=reason)
    _end(enrollment, at, "exited", reason)
    return len(pending)


def complete_finished_enrollments(session: Session, tenant_id: int, at: datetime) -> None:
    """Mark active enrollments whose messages are all past scheduling as completed."""
    still_pending = select(Message.enrollment_id).where(Message.status.in_(PENDING + ("sending",)))
    session.execute(
        update(Enrollment)
        .where(
            Enrollment.tenant_id == tenant_id,
            Enrollment.status == "active",
            Enrollment.id.not_in(still_pending.where(Message.enrollment_id.is_not(None))),
        )
        .values(status="completed", ended_at=at, end_reason="all steps done")
    )


def end_lead_nurture(session: Session, enrollment_id: int, reason: str, clock: Clock) -> int:
    """Stop a lead's nurture sequence (an agent recorded an outcome, or it converted); returns messages cancelled."""
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise NotFound(f"no enrollment {enrollment_id}")
    if enrollment.status != "active":
        return 0
    return exit_enrollment(session, enrollment, clock.now(), reason)


def end_nurture_after_outcomes(session: Session, definitions: Definitions, now: datetime) -> int:
    """End active lead enrollments whose callback an agent answered with a final outcome; returns how many."""
    leads = [name for name, campaign in definitions.campaigns.items() if campaign.kind == "lead"]
    if not leads:
        return 0
    attempted = (
        select(CallbackAttempt.outcome)
        .where(CallbackAttempt.task_id == CallbackTask.id, CallbackAttempt.outcome.not_in(NURTURE_GOES_ON))
        .limit(1)
    )
    rows = session.execute(
        select(Enrollment, CallbackTask.id)
        .join(CallbackTask, CallbackTask.enrollment_id == Enrollment.id)
        .where(
            Enrollment.status == "active",
            Enrollment.campaign.in_(leads),
            or_(CallbackTask.outcome.not_in(NURTURE_GOES_ON), exists(attempted)),
        )
    ).all()
    ended = 0
    for enrollment, task_id in rows:
        if enrollment.status == "active":
            exit_enrollment(session, enrollment, now, f"agent recorded an outcome on callback task {task_id}")
            ended += 1
    return ended


def in_holdout(tenant: str, campaign: str, external_id: str, share: float) -> bool:
    """Whether the contact is in the campaign's control group (pure, stable for the same names)."""
    return share > 0 and _bucket("holdout", tenant, campaign, external_id) < share


def pick_variant(step, tenant: str, campaign: str, external_id: str):
    """The step's variant for this contact, split by weight (pure, stable); None for a step without variants."""
    if not step.variants:
        return None
    point = _bucket("variant", tenant, campaign, step.id, external_id) * sum(v.weight for v in step.variants)
    for variant in step.variants:
        point -= variant.weight
        if point < 0:
            return variant
    return step.variants[-1]


def assign_offer_code(
    session: Session, tenant: Tenant, campaign, contact: Contact, enrollment: Enrollment, at: datetime
) -> str | None:
    """Give the contact a code: the next unused one of the campaign's pool, else a new one from its pattern."""
    offers = campaign.offer_codes
    code = _from_pool(session, tenant.id, campaign.name, offers.pool, contact.id, at) if offers.pool else None
    if code is None and offers.pattern:
        rng = random.Random(f"{tenant.slug}:{campaign.name}:{contact.external_id}:{enrollment.id}")
        for _ in range(8):
            candidate = fill_code_pattern(offers.pattern, rng)
            try:
                with session.begin_nested():
                    session.add(
                        OfferCode(
                            tenant_id=tenant.id,
                            campaign=campaign.name,
                            code=candidate,
                            contact_id=contact.id,
                            assigned_at=at,
                        )
                    )
                code = candidate
                break
            except IntegrityError:
                continue  # already given to someone: draw again
    return code


def _from_pool(
    session: Session, tenant_id: int, campaign: str, pool: list[str], contact_id: int, at: datetime
) -> str | None:
    for attempt in range(2):
        row = session.scalar(
            select(OfferCode)
            .where(
                OfferCode.tenant_id == tenant_id,
                OfferCode.campaign == campaign,
                OfferCode.contact_id.is_(None),
                OfferCode.code.in_(pool),
            )
            .order_by(OfferCode.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if row is not None:
            row.contact_id, row.assigned_at = contact_id, at
            session.flush()
            return row.code
        if attempt == 0:
            # Codes enter the table the first time the pool is drawn from (and when the file adds more).
            known = set(
                session.scalars(
                    select(OfferCode.code).where(
                        OfferCode.tenant_id == tenant_id, OfferCode.campaign == campaign, OfferCode.code.in_(pool)
                    )
                )
            )
            fresh = [code for code in pool if code not in known]
            if not fresh:
                return None
            session.add_all(OfferCode(tenant_id=tenant_id, campaign=campaign, code=code) for code in fresh)
            session.flush()
    return None


def fill_code_pattern(pattern: str, rng: random.Random) -> str:
    """A code from a pattern such as WB-{random:6}: the placeholder filled from `rng`."""
    head, length, tail = code_pattern_parts(pattern)
    return head + "".join(rng.choice(CODE_ALPHABET) for _ in range(length)) + tail


@lru_cache(maxsize=64)
def code_pattern_parts(pattern: str) -> tuple[str, int, str]:
    """A code pattern such as WB-{random:6} as (text before, random characters, text after)."""
    head, _, rest = pattern.partition("{random:")
    length, _, tail = rest.partition("}")
    return head, int(length), tail


def _bucket(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _end(enrollment: Enrollment, at: datetime, status: str, reason: str) -> None:
    enrollment.status, enrollment.ended_at, enrollment.end_reason = status, at, reason


def _key(value) -> str:
    return "" if value is None else str(value)
