"""The one enrollment writer. A run of events, a batch campaign's audience, Korea's consent notices and
an operator's list of contacts all enroll through `enroll`, and differ only in how many candidates they
hand it.

For each candidate: the campaign's window (one read for all of them), the plan
(`outbound.enrollment.plan`: key, holdout, steps and variants), then the rows, written by the
enrollment store (`outbound.db.enrollments`) in the statement shape that suits their number, and
offer codes, drawn the same way for every route.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from outbound.context import contact_view, event_view
from outbound.db import enrollments as store
from outbound.db.models import Contact, Event, Tenant
from outbound.enrollment.plan import (
    CODE_DRAWS,
    Candidate,
    Planned,
    Planner,
    code_seed,
    enrollment_key,
    has_key,
    pattern_codes,
    reads_contact,
)
from outbound.vocabulary import EnrollmentStatus, MessageStatus, Source, TaskStatus

# Enrollments that sets of rows can stand for (one campaign, no event, each contact once) are written as
# sets from this many on: a batch run's chunk, an operator's list. The rest (events) as rows.
SETS_FROM = 1
PAUSE_COLLECTOR_FROM = 1_000  # candidates from which the cycle collector waits for the write (`_collector_paused`)


def candidate(campaign: Any, contact: Contact, event: Event | None, now: datetime, trigger: str | None) -> Candidate:
    """A candidate for one contact (and the event that brings it, if any) as conditions see them."""
    names = {"event": event_view(event), "contact": contact_view(contact)} if reads_contact(campaign) else None
    start = event.occurred_at if event is not None else now
    return Candidate(campaign, contact.id, contact.external_id, names, start, trigger, event.id if event else None)


def candidates_without_event(campaign: Any, contacts: Sequence[Any], now: datetime, trigger: str) -> list[Candidate]:
    """`candidate` for each of a list of contacts enrolled without an event (a batch run, an operator's list):
    what the campaign reads of them is worked out once for all."""
    if not reads_contact(campaign):
        return [Candidate(campaign, c.id, c.external_id, None, now, trigger) for c in contacts]
    no_event = event_view(None)
    return [
        Candidate(campaign, c.id, c.external_id, {"event": no_event, "contact": contact_view(c)}, now, trigger)
        for c in contacts
    ]


def enroll(
    session: Session, tenant: Tenant, candidates: Sequence[Candidate], now: datetime, planner: Planner | None = None
) -> list[int | None]:
    """Enroll each candidate unless its campaign's window already counts an enrollment of the contact with
    its key (made before, or earlier in `candidates`); the enrollment id of each, None for a duplicate.

    Held-out contacts are enrolled (for attribution) and end at once, as does an enrollment no step
    applies to; the others get their steps' messages, each with its first transition, the campaign's
    callback task and an offer code.
    """
    with _collector_paused(len(candidates)):
        return _enroll(session, tenant, candidates, now, planner or Planner(tenant.slug))


@contextmanager
def _collector_paused(count: int) -> Iterator[None]:
    """Python's cycle collector paused while a large list of candidates is planned and written.

    Planning and writing allocate a few tuples per contact, none of them in a cycle; with the collector on,
    a generation scan every few hundred allocations (over every object the session and the chunk hold) costs
    a batch chunk about a third of its Python time. Anything left in a cycle is collected once it resumes.
    """
    if count < PAUSE_COLLECTOR_FROM or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _enroll(
    session: Session, tenant: Tenant, candidates: Sequence[Candidate], now: datetime, planner: Planner
) -> list[int | None]:
    windows: dict[str, timedelta] = {}
    for c in candidates:
        rule = c.campaign.enrollment
        if rule is not None and rule.window is not None:
            windows[c.campaign.name] = rule.window
    taken = store.enrolled_within(
        session, tenant.id, windows, [c.contact_id for c in candidates if c.campaign.name in windows], now
    )
    keyed = {c.campaign.name for c in candidates if has_key(c.campaign)}
    plan = planner.plan
    if not windows and not keyed:  # nothing to look up: every candidate is planned, in order
        planned = [plan(c, "") for c in candidates]
        ids = _write(session, tenant, planned, now)
        _give_offer_codes(session, tenant, planned, ids, now)
        return list(ids)
    planned = []
    positions: list[int] = []
    for position, c in enumerate(candidates):
        name = c.campaign.name
        key = enrollment_key(c.campaign, c.names) if name in keyed else ""
        if name in windows:
            mark = (name, c.contact_id, key)
            if mark in taken:
                continue
            taken.add(mark)
        planned.append(plan(c, key))
        positions.append(position)
    ids = _write(session, tenant, planned, now)
    _give_offer_codes(session, tenant, planned, ids, now)
    made: list[int | None] = [None] * len(candidates)
    for position, enrollment_id in zip(positions, ids, strict=True):
        made[position] = enrollment_id
    return made


def _write(session: Session, tenant: Tenant, planned: Sequence[Planned], now: datetime) -> list[int]:
    if not planned:
        return []
    if len(planned) >= SETS_FROM and _one_set(planned):
        return _write_sets(session, tenant, planned, now)
    return _write_rows(session, tenant, planned, now)


def _one_set(planned: Sequence[Planned]) -> bool:
    # One campaign, no event, one trigger and start, each contact once: what sets of rows can stand for.
    first = planned[0].candidate
    campaign, trigger, start = first.campaign, first.trigger, first.start
    if any(
        c.campaign is not campaign or c.event_id is not None or c.trigger != trigger or c.start != start
        for c in (plan.candidate for plan in planned)
    ):
        return False
    return len({plan.candidate.contact_id for plan in planned}) == len(planned)


def _first_reason(trigger: str | None) -> str:
    return f"enrolled by {trigger or 'operator'}"


def _write_rows(session: Session, tenant: Tenant, planned: Sequence[Planned], now: datetime) -> list[int]:
    enrollments, messages, transitions, callbacks = [], [], [], []
    for index, plan in enumerate(planned):
        c, reason = plan.candidate, plan.end_reason
        campaign = c.campaign
        enrollments.append(
            {
                "tenant_id": tenant.id,
                "campaign": campaign.name,
                "contact_id": c.contact_id,
                "dedupe_key": plan.key,
                "trigger": c.trigger,
                "event_id": c.event_id,
                "status": EnrollmentStatus.ACTIVE if reason is None else EnrollmentStatus.COMPLETED,
                "enrolled_at": now,
                "ended_at": now if reason else None,
                "end_reason": reason,
                "holdout": plan.held_out,
            }
        )
        for step, variant in plan.steps:
            messages.append(
                (
                    index,
                    {
                        "tenant_id": tenant.id,
                        "contact_id": c.contact_id,
                        "campaign": campaign.name,
                        "step": step.id,
                        "channel": step.channel,
                        "purpose": campaign.purpose,
                        "template": step.template_of(variant),
                        "variant": variant.id if variant is not None else None,
                        "status": MessageStatus.SCHEDULED,
                        "due_at": max(c.start + step.delay, now),
                        "created_at": now,
                        "updated_at": now,
                        "attempts": 0,
                    },
                )
            )
            transitions.append(
                {
                    "tenant_id": tenant.id,
                    "at": now,
                    "from_status": None,
                    "to_status": MessageStatus.SCHEDULED,
                    "source": Source.TRIGGER,
                    "rule": None,
                    "reason": _first_reason(c.trigger),
                    "detail": {},
                }
            )
        if campaign.callback is not None and not plan.held_out:
            callbacks.append(
                (
                    index,
                    {
                        "tenant_id": tenant.id,
                        "contact_id": c.contact_id,
                        "campaign": campaign.name,
                        "reason": campaign.callback.reason,
                        "priority": campaign.callback.priority,
                        "status": TaskStatus.OPEN,
                        "due_at": now + campaign.callback.delay,
                        "created_at": now,
                        "attempts": 0,
                    },
                )
            )
    return store.insert_rows_of(session, enrollments, messages, transitions, callbacks)


def _write_sets(session: Session, tenant: Tenant, planned: Sequence[Planned], now: datetime) -> list[int]:
    first = planned[0].candidate
    campaign = first.campaign
    groups: dict[tuple[str, bool, str | None], list[int]] = defaultdict(list)
    for plan in planned:
        groups[(plan.key, plan.held_out, plan.end_reason)].append(plan.candidate.contact_id)
    enrollment_of = store.insert_sets_of(
        session, tenant_id=tenant.id, campaign=campaign.name, trigger=first.trigger, now=now, groups=groups
    )
    ids = [enrollment_of[plan.candidate.contact_id] for plan in planned]
    called = [enrollment_id for enrollment_id, plan in zip(ids, planned, strict=True) if not plan.held_out]
    # Plans whose steps are one shared tuple (no condition, no variant: the planner gives every contact the
    # same) are grouped by it first, so each step's enrollments are listed once per tuple, not per plan.
    sharing: dict[int, tuple[tuple[tuple[Any, Any], ...], list[int]]] = {}
    for enrollment_id, plan in zip(ids, planned, strict=True):
        if plan.steps:
            entry = sharing.get(id(plan.steps))
            if entry is None:
                entry = sharing[id(plan.steps)] = (plan.steps, [])
            entry[1].append(enrollment_id)
    steps: dict[tuple[str, str | None], store.StepRows] = {}
    for shared, enrollment_ids in sharing.values():
        for step, variant in shared:
            group = (step.id, variant.id if variant is not None else None)
            rows = steps.get(group)
            if rows is None:
                rows = steps[group] = store.StepRows(
                    step.id, step.channel, step.template_of(variant), group[1], max(first.start + step.delay, now), []
                )
            rows.enrollment_ids.extend(enrollment_ids)
    store.insert_step_sets(
        session,
        tenant_id=tenant.id,
        campaign=campaign.name,
        purpose=campaign.purpose,
        reason=_first_reason(first.trigger),
        now=now,
        steps=list(steps.values()),
        callback=campaign.callback,
        called=called,
    )
    return ids


def _give_offer_codes(
    session: Session, tenant: Tenant, planned: Sequence[Planned], ids: list[int], now: datetime
) -> None:
    """A code for each messaged enrollment of a campaign that gives them: from its pool first, in order,
    then drawn from its pattern (a hash of the enrollment and the draw number), redrawn while taken."""
    wanting: dict[str, list[tuple[Planned, int]]] = defaultdict(list)
    for plan, enrollment_id in zip(planned, ids, strict=True):
        if plan.candidate.campaign.offer_codes is not None and not plan.held_out:
            wanting[plan.candidate.campaign.name].append((plan, enrollment_id))
    for name, given in wanting.items():
        offers = given[0][0].candidate.campaign.offer_codes
        owners = [plan.candidate.contact_id for plan, _ in given]
        pooled = store.give_pool_codes(session, tenant.id, name, offers.pool, owners, now) if offers.pool else 0
        if not offers.pattern:
            continue
        seeds = {
            index: code_seed(tenant.slug, name, plan.candidate.external_id, enrollment_id)
            for index, (plan, enrollment_id) in enumerate(given[pooled:], start=pooled)
        }
        draw_pattern_codes(session, tenant.id, name, offers.pattern, seeds, owners, now)


def draw_pattern_codes(
    session: Session,
    tenant_id: int,
    campaign: str,
    pattern: str,
    seeds: dict[int, str],
    owners: list[int],
    now: datetime,
) -> set[int]:
    """Give `owners[i]` a code drawn from `pattern` with `seeds[i]`, for each i of `seeds`: draw after draw
    (`CODE_DRAWS` at most) while the code drawn is taken; returns the i that got none."""
    waiting = dict(seeds)
    for draw in range(CODE_DRAWS):
        if not waiting:
            break
        codes = pattern_codes(pattern, waiting, draw)
        order = list(codes)
        placed = store.insert_codes(session, tenant_id, campaign, [(codes[i], owners[i]) for i in order], now)
        waiting = {i: waiting[i] for i, stored in zip(order, placed, strict=True) if not stored}
    return set(waiting)
