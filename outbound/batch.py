"""Batch campaigns: an audience rule, run in the database, enrolls contacts on the campaign's cron schedule.

Each run is stored once per tenant, campaign and cron fire time (`batch_runs`), and enrollment
skips contacts picked within the campaign's window, so a fire time run twice (two schedulers, a
restart) enrolls nobody twice.

Two drivers share `fire_batch`: with a real clock, APScheduler runs one cron job per tenant and
campaign from its job store in our database (`schedule_batch_jobs`); with a simulated clock,
`run_due_batches` computes the due fire times with the same `CronTrigger` and runs them, which
`outbound.simulation.run_until` does at each step.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import ColumnElement, bindparam, false, func, insert, literal, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outbound.campaign_state import is_live
from outbound.clock import Clock
from outbound.context import contact_view, event_view
from outbound.db.models import (
    BatchRun,
    CallbackTask,
    Contact,
    Enrollment,
    Message,
    MessageTransition,
    OfferCode,
    Tenant,
)
from outbound.db.session import transaction
from outbound.db.types import UTCDateTime
from outbound.enrollment import CODE_ALPHABET, code_pattern_parts, in_holdout, pick_variant

log = logging.getLogger(__name__)
CHUNK = 5_000  # contacts per chunk: a few multi-row INSERTs each, memory bounded by it
JOBSTORE = "batch"


@dataclass(frozen=True)
class _Registered:
    runtime: object
    leadership: object | None


# The job store keeps jobs by reference ("outbound.batch:run_batch_job") and plain arguments; the
# job finds the runtime it runs against here, set when the scheduler starts.
_registered: _Registered | None = None


def cron_trigger(campaign, tenant: Tenant) -> CronTrigger:
    """The campaign's cron schedule in its time zone, else the tenant's."""
    return _trigger(campaign.schedule.cron, campaign.schedule.timezone or tenant.timezone)


@lru_cache(maxsize=256)
def _trigger(cron: str, zone: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=zone)


def batch_campaigns(definitions, tenant: Tenant) -> list:
    """The scheduled campaigns that serve the tenant."""
    return [c for c in definitions.campaigns_for_tenant(tenant.slug) if c.schedule is not None]


def fire_batch(session: Session, tenant: Tenant, campaign, fire_time: datetime, clock: Clock) -> BatchRun | None:
    """Enroll the campaign's audience for one fire time; None if the campaign is not active or the time already ran.

    Set-based: the audience query is read a chunk of contacts at a time (in id order), and each chunk
    becomes a few multi-row INSERTs of enrollments, offer codes, messages and their first transitions,
    so a run over millions of contacts holds one chunk in memory and issues a handful of queries per chunk.
    The rows are the ones `outbound.enrollment.enroll` writes for each contact, to the field.
    """
    now = clock.now()
    if not is_live(session, tenant.id, campaign, now):
        return None
    run = BatchRun(tenant_id=tenant.id, campaign=campaign.name, fire_time=fire_time, started_at=now,
                   audience=0, enrolled=0, held_out=0)
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        return None
    columns = _CONTACT_VIEW if _reads_contact(campaign) else (Contact.id, Contact.external_id)
    batch = _Batch(tenant, campaign, now, f"schedule {campaign.schedule.cron}")
    audience = enrolled = held_out = 0
    for chunk in campaign.audience.contact_chunks(session, tenant.id, now, CHUNK, columns=columns):
        audience += len(chunk)
        chunk_enrolled, chunk_held_out = batch.enroll(session, chunk)
        enrolled, held_out = enrolled + chunk_enrolled, held_out + chunk_held_out
    run.audience, run.enrolled, run.held_out = audience, enrolled, held_out
    session.flush()
    log.info("batch %s for %s at %s: %d in audience, %d enrolled (%d held out)", campaign.name, tenant.slug,
             fire_time.isoformat(), run.audience, run.enrolled, run.held_out)
    return run


def _text(value) -> str:
    return "" if value is None else str(value)


# -- set-based enrollment ---------------------------------------------------------------------

_CONTACT_VIEW = (Contact.id, Contact.external_id, Contact.phone, Contact.email, Contact.locale, Contact.timezone,
                 Contact.jurisdiction, Contact.attributes)


def _reads_contact(campaign) -> bool:
    """Whether the enrollment key or a step condition reads the contact, so its fields must be loaded."""
    rule = campaign.enrollment
    return (rule is not None and rule.key is not None) or any(step.when is not None for step in campaign.steps)


@dataclass
class _Plan:
    """What one contact of a chunk gets: its key, its side of the holdout, its steps (with their variants)."""

    contact: Any
    key: str
    held_out: bool
    steps: list[tuple[Any, Any]]
    enrollment_id: int = 0


class _Batch:
    """One batch run's enrollments, written a chunk of contacts at a time with the rows `enroll` writes one by one."""

    def __init__(self, tenant: Tenant, campaign, now: datetime, trigger: str) -> None:
        self.tenant, self.campaign, self.now, self.trigger = tenant, campaign, now, trigger
        rule = campaign.enrollment
        self.key = rule.key if rule is not None else None
        self.window = rule.window if rule is not None else None
        self.pool_left = bool(campaign.offer_codes is not None and campaign.offer_codes.pool)
        self.reads_contact = _reads_contact(campaign)

    def enroll(self, session: Session, contacts: list) -> tuple[int, int]:
        """Enroll a chunk of contacts (in id order); returns how many were enrolled and how many held out."""
        plans = self._plans(session, contacts)
        if not plans:
            return 0, 0
        self._insert_enrollments(session, plans)
        messaged = [plan for plan in plans if not plan.held_out]
        if self.campaign.offer_codes is not None and messaged:
            self._assign_offer_codes(session, messaged)
        self._insert_messages(session, messaged)
        if self.campaign.callback is not None and messaged:
            self._insert_callbacks(session, messaged)
        return len(plans), len(plans) - len(messaged)

    def _plans(self, session: Session, contacts: list) -> list[_Plan]:
        campaign, slug, name, share = self.campaign, self.tenant.slug, self.campaign.name, self.campaign.holdout
        recent = self._recently_enrolled(session, contacts)
        # Steps without a condition or variants are the same for every contact: one list shared by all.
        same_steps = None if self.reads_contact or any(step.variants for step in campaign.steps) else [
            (step, None) for step in campaign.steps]
        plans = []
        for contact in contacts:
            names = {"event": event_view(None), "contact": contact_view(contact)} if self.reads_contact else {}
            key = "" if self.key is None else _text(self.key.evaluate(**names))
            if (contact.id, key) in recent:
                continue
            held_out = in_holdout(slug, name, contact.external_id, share)
            if held_out:
                steps = []
            elif same_steps is not None:
                steps = same_steps
            else:
                steps = [(step, pick_variant(step, slug, name, contact.external_id))
                         for step in campaign.steps if step.when is None or step.when.test(**names)]
            plans.append(_Plan(contact, key, held_out, steps))
        return plans

    def _recently_enrolled(self, session: Session, contacts: list) -> set[tuple[int, str]]:
        """(contact, key) pairs of this chunk already enrolled within the window: one range query per chunk."""
        if self.window is None:
            return set()
        return set(map(tuple, session.execute(select(Enrollment.contact_id, Enrollment.dedupe_key).where(
            Enrollment.tenant_id == self.tenant.id, Enrollment.campaign == self.campaign.name,
            Enrollment.contact_id.between(contacts[0].id, contacts[-1].id),
            Enrollment.enrolled_at > self.now - self.window)).all()))

    def _insert_enrollments(self, session: Session, plans: list[_Plan]) -> None:
        """One `INSERT … SELECT … RETURNING` from `contacts` per (key, outcome) group: constants bound once, not per row."""
        campaign, now = self.campaign, self.now
        held = f"held out ({campaign.holdout:.0%} control group): never messaged"
        groups: dict[tuple[str, bool, str | None], list[_Plan]] = defaultdict(list)
        for plan in plans:
            if plan.held_out:
                reason = held
            elif not plan.steps and campaign.callback is None:
                reason = "no step applies to this contact"
            else:
                reason = None
            groups[(plan.key, plan.held_out, reason)].append(plan)
        ids: dict[int, int] = {}
        for (key, held_out, reason), group in groups.items():
            values = {"tenant_id": literal(self.tenant.id), "campaign": literal(campaign.name), "contact_id": Contact.id,
                      "dedupe_key": literal(key), "trigger": literal(self.trigger),
                      "status": literal("active" if reason is None else "completed"),
                      "enrolled_at": literal(now, UTCDateTime()), "holdout": literal(held_out)}
            if reason is not None:
                values.update(ended_at=literal(now, UTCDateTime()), end_reason=literal(reason))
            query = select(*values.values()).where(_written_in(Contact.id, [plan.contact.id for plan in group]))
            ids.update(session.execute(insert(Enrollment.__table__).from_select(list(values), query)
                                       .returning(Enrollment.contact_id, Enrollment.id), execution_options=_ONCE).all())
        for plan in plans:
            plan.enrollment_id = ids[plan.contact.id]

    def _insert_messages(self, session: Session, plans: list[_Plan]) -> None:
        """One `INSERT … SELECT` from `enrollments` per step (and variant), then every first transition in one more."""
        now, campaign = self.now, self.campaign
        groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
        chosen: dict[tuple[str, str | None], tuple[Any, Any]] = {}
        for plan in plans:
            for step, variant in plan.steps:
                group = (step.id, variant.id if variant is not None else None)
                groups[group].append(plan.enrollment_id)
                chosen[group] = (step, variant)
        if not groups:
            return
        at = literal(now, UTCDateTime())
        for group, enrollment_ids in groups.items():
            step, variant = chosen[group]
            values = {"tenant_id": literal(self.tenant.id), "enrollment_id": Enrollment.id,
                      "contact_id": Enrollment.contact_id, "campaign": literal(campaign.name), "step": literal(step.id),
                      "channel": literal(step.channel), "purpose": literal(campaign.purpose),
                      "template": literal(step.template_of(variant)), "status": literal("scheduled"),
                      "due_at": literal(max(now + step.delay, now), UTCDateTime()), "created_at": at, "updated_at": at,
                      "attempts": literal(0)}
            if variant is not None:
                values["variant"] = literal(variant.id)
            session.execute(insert(Message.__table__).from_select(
                list(values), select(*values.values()).where(_written_in(Enrollment.id, enrollment_ids))),
                execution_options=_ONCE)
        transitions = {"tenant_id": Message.tenant_id, "message_id": Message.id, "at": at,
                       "to_status": literal("scheduled"), "source": literal("trigger"),
                       "reason": literal(f"enrolled by {self.trigger}"),
                       "detail": literal({}, MessageTransition.__table__.c.detail.type)}
        session.execute(insert(MessageTransition.__table__).from_select(
            list(transitions), select(*transitions.values()).where(
                _written_in(Message.enrollment_id, [plan.enrollment_id for plan in plans if plan.steps]))),
            execution_options=_ONCE)

    def _insert_callbacks(self, session: Session, plans: list[_Plan]) -> None:
        rule, now = self.campaign.callback, self.now
        values = {"tenant_id": literal(self.tenant.id), "contact_id": Enrollment.contact_id,
                  "campaign": literal(self.campaign.name), "enrollment_id": Enrollment.id, "reason": literal(rule.reason),
                  "priority": literal(rule.priority), "status": literal("open"),
                  "due_at": literal(now + rule.delay, UTCDateTime()), "created_at": literal(now, UTCDateTime()),
                  "attempts": literal(0)}
        session.execute(insert(CallbackTask.__table__).from_select(list(values), select(*values.values()).where(
            _written_in(Enrollment.id, [plan.enrollment_id for plan in plans]))), execution_options=_ONCE)

    # -- offer codes: the pool first, in contact order, then codes drawn from the pattern ---------

    def _assign_offer_codes(self, session: Session, plans: list[_Plan]) -> None:
        offers = self.campaign.offer_codes
        pooled = self._from_pool(session, plans) if self.pool_left else 0
        if offers.pattern and pooled < len(plans):
            self._from_pattern(session, plans[pooled:], offers.pattern)

    def _from_pool(self, session: Session, plans: list[_Plan]) -> int:
        """Give the next unused pool codes (oldest first) to the first contacts; returns how many got one."""
        tenant_id, name, pool = self.tenant.id, self.campaign.name, self.campaign.offer_codes.pool
        free = self._free_pool_codes(session, len(plans))
        if len(free) < len(plans):
            # Codes enter the table the first time the pool is drawn from (and when the file adds more).
            known = set(session.scalars(select(OfferCode.code).where(
                OfferCode.tenant_id == tenant_id, OfferCode.campaign == name, OfferCode.code.in_(pool))))
            fresh = [code for code in pool if code not in known]
            if fresh:
                session.execute(insert(OfferCode.__table__), [
                    {"tenant_id": tenant_id, "campaign": name, "code": code, "contact_id": None, "assigned_at": None}
                    for code in fresh])
                free = self._free_pool_codes(session, len(plans))
            self.pool_left = len(free) >= len(plans)
        if free:
            session.execute(update(OfferCode.__table__).where(OfferCode.__table__.c.id == bindparam("code_id"))
                            .values(contact_id=bindparam("owner"), assigned_at=self.now),
                            [{"code_id": code_id, "owner": plan.contact.id} for code_id, plan in zip(free, plans, strict=False)])
        return len(free)

    def _free_pool_codes(self, session: Session, count: int) -> list[int]:
        return list(session.scalars(select(OfferCode.id).where(
            OfferCode.tenant_id == self.tenant.id, OfferCode.campaign == self.campaign.name,
            OfferCode.contact_id.is_(None), OfferCode.code.in_(self.campaign.offer_codes.pool))
            .order_by(OfferCode.id).limit(count).with_for_update(skip_locked=True)))

    def _from_pattern(self, session: Session, plans: list[_Plan], pattern: str) -> None:
        """A code per contact drawn from the pattern, redrawn while taken (8 draws at most, as `assign_offer_code`).

        Each draw is a hash of tenant, campaign, contact, enrollment and draw number: as stable as a
        seeded generator, at a tenth of the cost, which counts over a million contacts.
        """
        tenant, name = self.tenant, self.campaign.name
        seeds = {plan.contact.id: f"{tenant.slug}:{name}:{plan.contact.external_id}:{plan.enrollment_id}" for plan in plans}
        draws = dict.fromkeys(seeds, 0)
        candidates = {contact_id: pattern_code(pattern, seed, 0) for contact_id, seed in seeds.items()}
        chosen: dict[int, str] = {}
        given: set[str] = set()
        while candidates:
            taken = set(session.scalars(select(OfferCode.code).where(
                OfferCode.tenant_id == tenant.id, OfferCode.campaign == name,
                _written_in(OfferCode.code, set(candidates.values()))), execution_options=_ONCE))
            retry = {}
            for contact_id, code in candidates.items():
                if code not in taken and code not in given:
                    chosen[contact_id] = code
                    given.add(code)
                elif draws[contact_id] < 7:
                    draws[contact_id] += 1
                    retry[contact_id] = pattern_code(pattern, seeds[contact_id], draws[contact_id])
            candidates = retry
        rows = [{"tenant_id": tenant.id, "campaign": name, "code": code, "contact_id": contact_id,
                 "assigned_at": self.now} for contact_id, code in chosen.items()]
        try:
            with session.begin_nested():
                session.execute(insert(OfferCode.__table__), rows)
        except IntegrityError:
            # Another writer took one of these codes meanwhile: claim them one by one, redrawing on a clash.
            for row in rows:
                self._claim_one(session, row, pattern, seeds[row["contact_id"]], draws[row["contact_id"]])

    def _claim_one(self, session: Session, row: dict, pattern: str, seed: str, draw: int) -> None:
        while draw < 8:
            try:
                with session.begin_nested():
                    session.execute(insert(OfferCode.__table__), [row])
                return
            except IntegrityError:
                draw += 1
                row = {**row, "code": pattern_code(pattern, seed, draw)}


_ONCE = {"compiled_cache": None}  # statements with their values written in are used once: keep them out of the cache
_CODE = re.compile(r"^[A-Z0-9-]+$")


def _written_in(column, values) -> ColumnElement[bool]:
    """`column IN (…)` with the values written into the SQL text, for integer ids and offer codes only.

    Thousands of bound parameters per chunk cost more to build in Python than the query takes in the
    database. Only values that are safe as SQL text by construction are accepted: integers (`int()`
    of each), and codes of capital letters, digits and dashes (the alphabet and the pattern allow
    nothing else; anything else is refused).
    """
    values = list(values)
    if not values:
        return false()
    if isinstance(values[0], str):
        if not all(_CODE.match(value) for value in values):
            raise ValueError("only codes of capital letters, digits and dashes are written into SQL text")
        text = ",".join(f"'{value}'" for value in values)
    else:
        text = ",".join(map(str, map(int, values)))
    return column.op("IN")(literal_column(f"({text})"))


def pattern_code(pattern: str, seed: str, draw: int) -> str:
    """Draw number `draw` of a code for a pattern such as BACK-{random:6}, from a hash of `seed` (pure)."""
    head, length, tail = code_pattern_parts(pattern)
    bits = int.from_bytes(hashlib.sha256(f"{seed}:{draw}".encode()).digest(), "big")
    return head + "".join([CODE_ALPHABET[(bits >> shift) & 31] for shift in range(0, 5 * length, 5)]) + tail


def fire_times(trigger: CronTrigger, after: datetime, until: datetime) -> list[datetime]:
    """The trigger's fire times in (after, until], oldest first."""
    times: list[datetime] = []
    moment = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while moment is not None and moment <= until:
        times.append(moment)
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
        if len(times) > 10_000:
            break  # a cron every minute over a very long simulated jump: the latest ones are what matter
    return times


def run_due_batches(factory, definitions, clock: Clock) -> list[BatchRun]:
    """Run every scheduled campaign whose cron time came since its last run (missed times coalesce into one)."""
    now = clock.now()
    runs: list[BatchRun] = []
    if not any(campaign.schedule is not None for campaign in definitions.campaigns.values()):
        return runs
    with factory() as session:
        tenants = list(session.scalars(select(Tenant).order_by(Tenant.id)))
        last = dict(((tenant_id, name), at) for tenant_id, name, at in session.execute(
            select(BatchRun.tenant_id, BatchRun.campaign, func.max(BatchRun.fire_time))
            .group_by(BatchRun.tenant_id, BatchRun.campaign)))
    for tenant in tenants:
        for campaign in batch_campaigns(definitions, tenant):
            since = last.get((tenant.id, campaign.name)) or tenant.created_at
            due = fire_times(cron_trigger(campaign, tenant), since, now)
            if not due:
                continue
            with transaction(factory) as session:
                run = fire_batch(session, session.merge(tenant, load=False), campaign, due[-1], clock)
            if run is not None:
                runs.append(run)
    return runs


def next_batch_time(factory, definitions, after: datetime) -> datetime | None:
    """The earliest cron time of any scheduled campaign strictly after `after`."""
    if not any(campaign.schedule is not None for campaign in definitions.campaigns.values()):
        return None
    with factory() as session:
        tenants = list(session.scalars(select(Tenant)))
    times = [cron_trigger(campaign, tenant).get_next_fire_time(None, after + timedelta(microseconds=1))
             for tenant in tenants for campaign in batch_campaigns(definitions, tenant)]
    return min((t for t in times if t is not None), default=None)


# -- APScheduler with its job store in our database --------------------------------------------

def run_batch_job(tenant_slug: str, campaign_name: str) -> None:
    """The job APScheduler runs at each cron time: fire the batch for the current minute (leader only)."""
    registered = _registered
    if registered is None:
        log.warning("batch job %s/%s ran before the scheduler registered a runtime", tenant_slug, campaign_name)
        return
    if registered.leadership is not None and not registered.leadership.acquire():
        return
    runtime = registered.runtime
    campaign = runtime.definitions.campaigns.get(campaign_name)
    if campaign is None or campaign.schedule is None:
        return
    now = runtime.clock.now()
    with transaction(runtime.factory) as session:
        tenant = session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
        if tenant is not None:
            # Cron times fall on whole minutes: the minute this job woke in is the time it stands for.
            fire_batch(session, tenant, campaign, now.replace(second=0, microsecond=0), runtime.clock)


def schedule_batch_jobs(scheduler, runtime, leadership=None) -> set[str]:
    """Add a cron job per tenant and scheduled campaign to `scheduler`, stored in our database; returns their ids.

    Call before `scheduler.start()`, then `prune_batch_jobs` after it to drop jobs of campaigns that are gone.
    """
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    global _registered
    _registered = _Registered(runtime, leadership)
    scheduler.add_jobstore(SQLAlchemyJobStore(engine=runtime.engine), JOBSTORE)
    with runtime.factory() as session:
        tenants = list(session.scalars(select(Tenant).order_by(Tenant.id)))
    wanted: set[str] = set()
    for tenant in tenants:
        for campaign in batch_campaigns(runtime.definitions, tenant):
            job_id = f"batch:{tenant.slug}:{campaign.name}"
            scheduler.add_job("outbound.batch:run_batch_job", trigger=cron_trigger(campaign, tenant),
                              args=[tenant.slug, campaign.name], id=job_id, name=job_id, jobstore=JOBSTORE,
                              replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=3600)
            wanted.add(job_id)
    return wanted


def prune_batch_jobs(scheduler, wanted: set[str]) -> int:
    """Remove stored batch jobs whose campaign or tenant no longer has a schedule; returns how many."""
    stale = [job for job in scheduler.get_jobs(jobstore=JOBSTORE) if job.id not in wanted]
    for job in stale:
        job.remove()
    return len(stale)
