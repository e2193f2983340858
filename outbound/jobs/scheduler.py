"""APScheduler runs the ticks: dispatch due messages and housekeeping. Ticks are idempotent."""

from __future__ import annotations

import logging
from datetime import timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from outbound.db.models import Tenant
from outbound.db.session import transaction
from outbound.dispatch.dispatcher import expire_sending
from outbound.enrollment.fallback import sweep_undelivered
from outbound.enrollment.planner import complete_finished_enrollments, end_nurture_after_outcomes

log = logging.getLogger(__name__)


def housekeeping(runtime) -> None:
    """Expire `sending` rows nobody answered for, and close enrollments with nothing left to send."""
    now = runtime.clock.now()
    with transaction(runtime.factory) as session:
        expired = expire_sending(session, now, timedelta(minutes=runtime.settings.sending_expiry_minutes))
        sweep_undelivered(session, runtime.definitions, now)
        end_nurture_after_outcomes(session, runtime.definitions, now)
        for tenant_id in session.scalars(select(Tenant.id)):
            complete_finished_enrollments(session, tenant_id, now)
    if expired:
        log.warning("%d messages had no provider answer and are now 'unknown'", expired)


def consent_duties(runtime) -> None:
    """KR consent duties: enroll due consent-change notices and 2-year reconfirmation requests."""
    from outbound.jobs.consent import run_consent_jobs

    with transaction(runtime.factory) as session:
        report = run_consent_jobs(session, runtime.definitions, runtime.clock.now())
    if report.notices or report.reconfirmations:
        log.info(
            "consent duties: %d change notices, %d reconfirmation requests", report.notices, report.reconfirmations
        )


def dispatch_tick(runtime) -> None:
    """Send everything due now, batch by batch."""
    report = runtime.dispatcher.drain()
    if report.claimed:
        log.info(
            "dispatch: %d claimed, %d sent, %d deferred, %d blocked, %d failed, %d retried",
            report.claimed,
            report.sent,
            report.deferred,
            report.blocked,
            report.failed,
            report.retried,
        )


def add_leader_job(scheduler: BackgroundScheduler, leadership, job, runtime, **trigger) -> None:
    """Schedule `job(runtime)` to run only while this process leads; others skip it and keep trying to lead."""

    def run_if_leader() -> None:
        if leadership.acquire():
            job(runtime)

    scheduler.add_job(run_if_leader, id=job.__name__, max_instances=1, coalesce=True, **trigger)


def start_scheduler(runtime, *, dispatch: bool = True) -> BackgroundScheduler:
    """Start the background ticks; the caller shuts the scheduler down (and releases `scheduler.leadership`)."""
    from outbound.jobs.leader import Leadership

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.leadership = leadership = Leadership(runtime.engine)
    if dispatch:
        scheduler.add_job(
            dispatch_tick,
            "interval",
            args=[runtime],
            id="dispatch",
            seconds=runtime.settings.dispatch_interval_seconds,
            max_instances=1,
            coalesce=True,
        )
    add_leader_job(scheduler, leadership, housekeeping, runtime, trigger="interval", minutes=1)
    add_leader_job(scheduler, leadership, consent_duties, runtime, trigger="interval", hours=1)
    from outbound.enrollment.audience_runs import prune_batch_jobs, schedule_batch_jobs

    batch_jobs = schedule_batch_jobs(scheduler, runtime, leadership)
    scheduler.start()
    prune_batch_jobs(scheduler, batch_jobs)
    return scheduler
