"""Batch campaigns: an audience rule, run in the database, enrolls contacts on the campaign's cron schedule.

Each run is stored once per tenant, campaign and cron fire time (`batch_runs`), and enrollment
skips contacts picked within the campaign's window, so a fire time run twice (two schedulers, a
restart) enrolls nobody twice.

Two drivers share `fire_batch`: with a real clock, APScheduler runs one cron job per tenant and
campaign from its job store in our database (`schedule_batch_jobs`); with a simulated clock,
`run_due_batches` computes the due fire times with the same `CronTrigger` and runs them, which
`outbound.jobs.simulation.run_until` does at each step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db.bulk_sql import without_jit
from outbound.db.models import BatchRun, Contact, Tenant
from outbound.db.session import transaction
from outbound.enrollment.audience_writer import CONTACT_VIEW, BatchEnrollment, reads_contact
from outbound.enrollment.campaign_state import is_live

log = logging.getLogger(__name__)
CHUNK = 20_000  # contacts per chunk: a handful of statements each, memory bounded by it
JOBSTORE = "batch"


@dataclass(frozen=True)
class _Registered:
    runtime: object
    leadership: object | None


# The job store keeps jobs by reference ("outbound.enrollment.audience_runs:run_batch_job") and plain arguments; the
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
    becomes a handful of `INSERT … SELECT`s of enrollments, offer codes, messages and their first
    transitions (`outbound.enrollment.audience_writer`), so a run over millions of contacts holds one chunk in
    memory. The rows are the ones `outbound.enrollment.planner.enroll` writes for each contact, to the field.
    """
    now = clock.now()
    if not is_live(session, tenant.id, campaign, now):
        return None
    run = BatchRun(
        tenant_id=tenant.id,
        campaign=campaign.name,
        fire_time=fire_time,
        started_at=now,
        audience=0,
        enrolled=0,
        held_out=0,
    )
    try:
        with session.begin_nested():
            session.add(run)
    except IntegrityError:
        return None
    columns = CONTACT_VIEW if reads_contact(campaign) else (Contact.id, Contact.external_id)
    batch = BatchEnrollment(tenant, campaign, now, f"schedule {campaign.schedule.cron}")
    audience = enrolled = held_out = 0
    with without_jit(session.connection()):
        for chunk in campaign.audience.contact_chunks(session, tenant.id, now, CHUNK, columns=columns):
            audience += len(chunk)
            chunk_enrolled, chunk_held_out = batch.enroll(session, chunk)
            enrolled, held_out = enrolled + chunk_enrolled, held_out + chunk_held_out
    run.audience, run.enrolled, run.held_out = audience, enrolled, held_out
    session.flush()
    log.info(
        "batch %s for %s at %s: %d in audience, %d enrolled (%d held out)",
        campaign.name,
        tenant.slug,
        fire_time.isoformat(),
        run.audience,
        run.enrolled,
        run.held_out,
    )
    return run


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
        last = dict(
            ((tenant_id, name), at)
            for tenant_id, name, at in session.execute(
                select(BatchRun.tenant_id, BatchRun.campaign, func.max(BatchRun.fire_time)).group_by(
                    BatchRun.tenant_id, BatchRun.campaign
                )
            )
        )
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
    times = [
        cron_trigger(campaign, tenant).get_next_fire_time(None, after + timedelta(microseconds=1))
        for tenant in tenants
        for campaign in batch_campaigns(definitions, tenant)
    ]
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
            scheduler.add_job(
                "outbound.enrollment.audience_runs:run_batch_job",
                trigger=cron_trigger(campaign, tenant),
                args=[tenant.slug, campaign.name],
                id=job_id,
                name=job_id,
                jobstore=JOBSTORE,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=3600,
            )
            wanted.add(job_id)
    return wanted


def prune_batch_jobs(scheduler, wanted: set[str]) -> int:
    """Remove stored batch jobs whose campaign or tenant no longer has a schedule; returns how many."""
    stale = [job for job in scheduler.get_jobs(jobstore=JOBSTORE) if job.id not in wanted]
    for job in stale:
        job.remove()
    return len(stale)
