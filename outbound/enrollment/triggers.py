"""Trigger rules turn stored events into enrollments, through the one writer (`outbound.enrollment.writer`).

For each event, in order: an order is attributed to the campaigns that reached the contact (so the
purchase that ends a win-back still counts for it), then exit rules end the enrollments it settles
(so an event that both ends one enrollment and starts another, an order placed, never leaves a
reminder for the cart it just bought), then the triggers whose condition holds enroll the contact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.context import contact_view, event_view
from outbound.db.models import Contact, Enrollment, Event, Tenant
from outbound.definitions import Definitions
from outbound.enrollment.campaign_state import campaign_states
from outbound.enrollment.conversions import record_conversions
from outbound.enrollment.lifecycle import exit_enrollment
from outbound.enrollment.plan import Candidate, Planner
from outbound.enrollment.writer import enroll
from outbound.vocabulary import CampaignState, EnrollmentStatus

RUN_EVENTS = 500  # events per run in `process_events`: contact ids per look-up stay far below any limit


@dataclass
class EventOutcome:
    """What one event did: enrollments started, skipped as duplicates, and ended."""

    enrolled: list[Enrollment] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    exited: list[Enrollment] = field(default_factory=list)


def serves(campaign: Any, tenant: Tenant) -> bool:
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
    enrollments that exit rules end, and the run's enrollments through the writer at once (one
    read of the windows, one INSERT per table).
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
    matched = [
        (i, definitions.campaigns[trigger.campaign], trigger.name)
        for i, (event, _) in enumerate(run)
        for trigger in definitions.triggers_for(event.type)
        if serves(definitions.campaigns[trigger.campaign], tenant)
        and (trigger.when is None or trigger.when.test(**names[i]))
    ]
    if not matched:
        return made
    states = campaign_states(session, tenant.id, {c.name: c for _, c, _ in matched}.values(), now)
    candidates: list[Candidate] = []
    owners: list[_Made] = []
    for i, campaign, trigger in matched:
        event, contact = run[i]
        if states[campaign.name] != CampaignState.ACTIVE:
            made[i].skipped.append(campaign.name)
            continue
        candidates.append(
            Candidate(campaign, contact.id, contact.external_id, names[i], event.occurred_at, trigger, event.id)
        )
        owners.append(made[i])
    ids = enroll(session, tenant, candidates, now, Planner(tenant.slug))
    for owner, c, enrollment_id in zip(owners, candidates, ids, strict=True):
        if enrollment_id is None:
            owner.skipped.append(c.campaign.name)
        else:
            owner.enrolled.append(enrollment_id)
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
        key = _text(rule.key.evaluate(**names[i])) if rule.key is not None else None
        for enrollment in active[(contact.id, campaign.name)]:
            # An enrollment an earlier rule of this event ended is no longer active.
            if enrollment.status == EnrollmentStatus.ACTIVE and (key is None or enrollment.dedupe_key == key):
                exit_enrollment(session, enrollment, now, f"exit: {event.type} {event.event_id}")
                made[i].exited.append(enrollment)


# Built once: building a statement costs more than running it for a run of one event.
_ACTIVE = (
    select(Enrollment)
    .where(
        Enrollment.tenant_id == bindparam("tenant_id"),
        Enrollment.campaign.in_(bindparam("campaigns", expanding=True)),
        Enrollment.contact_id.in_(bindparam("contact_ids", expanding=True)),
        Enrollment.status == EnrollmentStatus.ACTIVE,
    )
    .order_by(Enrollment.id)
)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
