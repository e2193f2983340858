"""Batch campaigns on their cron schedules: APScheduler's cron jobs on the wall clock, due fire times on a simulated one.

Both run `outbound.enrollment.audience_runs.fire_batch`, which stores each fire time once per tenant
and campaign, so a fire time run twice (two schedulers, a restart) enrolls nobody twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from outbound.clock import Clock
from outbound.db.models import BatchRun, Tenant
from outbound.db.session import transaction
from outbound.enrollment.audience_runs import batch_campaigns, cron_trigger, fire_batch, fire_times

log = logging.getLogger(__name__)
JOBSTORE = "batch"
# The job store keeps jobs by this reference and plain arguments. A job stored under an earlier
# reference is rewritten when the scheduler starts (`schedule_batch_jobs` replaces it).
JOB_REFERENCE = "outbound.jobs.batch_campaigns:run_batch_job"


@dataclass(frozen=True)
class _Registered:
    runtime: Any
    leadership: Any | None


# The job finds the runtime it runs against here, set when the scheduler starts.
_registered: _Registered | None = None


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
                JOB_REFERENCE,
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
