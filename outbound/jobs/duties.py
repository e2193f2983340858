"""Every duty of the engine, listed once.

APScheduler runs `DUTIES` on the wall clock (`outbound.jobs.scheduler`); the simulated clock of
`outbound run` and the demo runs the same list (`outbound.jobs.simulation`). A new duty is added
here and nowhere else. Every duty is idempotent: run twice at the same time, it does its work once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from outbound.config import Settings
from outbound.db.logins import forget_failures_before
from outbound.db.models import Tenant
from outbound.db.session import transaction
from outbound.dispatch.claim import next_due
from outbound.dispatch.record import expire_sending
from outbound.dispatch.report import TickReport
from outbound.enrollment.consent_notices import run_consent_jobs
from outbound.enrollment.fallback import sweep_undelivered
from outbound.enrollment.lifecycle import complete_finished_enrollments, end_nurture_after_outcomes
from outbound.jobs import batch_campaigns

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from outbound.bootstrap import Runtime

log = logging.getLogger(__name__)
FAILURES_KEPT = timedelta(days=1)  # longer than any throttling window (outbound.tenancy.throttle)


@dataclass(frozen=True, kw_only=True)
class Duty:
    """One recurring duty: what it does, how often the scheduler runs it, and where.

    `sweeps`: the duty handles whatever is due at the moment it runs, so the simulated clock runs it
    at every stop; otherwise the simulated clock runs it once `every` has passed since its last run.
    `next_work`: when the duty next has work of its own, so the simulated clock stops there.
    `install`: for a duty the scheduler runs on its own triggers rather than an interval; called
    before the scheduler starts, it returns what to call once it has started.
    """

    name: str
    run: Callable[[Runtime], object]
    every: Callable[[Settings], timedelta]
    leader_only: bool = True
    sweeps: bool = False
    next_work: Callable[[Runtime, datetime], datetime | None] | None = None
    install: Callable[[BaseScheduler, Runtime, Any], Callable[[], object]] | None = None


def dispatch(runtime: Runtime) -> TickReport:
    """Send everything due now, group by group of claimed messages."""
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
    return report


def _next_message(runtime: Runtime, now: datetime) -> datetime | None:
    with transaction(runtime.factory) as session:
        return next_due(session)


def housekeeping(runtime: Runtime) -> None:
    """Expire `sending` rows nobody answered for, send undeliverable SMS steps by email, end lead
    nurture an agent's outcome settled, and complete enrollments with nothing left to send."""
    now = runtime.clock.now()
    with transaction(runtime.factory) as session:
        expired = expire_sending(session, now, timedelta(minutes=runtime.settings.sending_expiry_minutes))
        sweep_undelivered(session, runtime.definitions, now)
        end_nurture_after_outcomes(session, runtime.definitions, now)
        for tenant_id in session.scalars(select(Tenant.id)):
            complete_finished_enrollments(session, tenant_id, now)
    if expired:
        log.warning("%d messages had no provider answer and are now 'unknown'", expired)


def forget_login_failures(runtime: Runtime) -> None:
    """Drop failed logins older than any throttling window: the table stays small whatever is tried."""
    with transaction(runtime.factory) as session:
        forget_failures_before(session, runtime.clock.now() - FAILURES_KEPT)


def consent_duties(runtime: Runtime) -> None:
    """KR consent duties: enroll due consent-change notices and 2-year reconfirmation requests."""
    with transaction(runtime.factory) as session:
        report = run_consent_jobs(session, runtime.definitions, runtime.clock.now())
    if report.notices or report.reconfirmations:
        log.info(
            "consent duties: %d change notices, %d reconfirmation requests", report.notices, report.reconfirmations
        )


def due_batch_campaigns(runtime: Runtime) -> object:
    """Fire every batch campaign whose cron time has come since its last run."""
    return batch_campaigns.run_due_batches(runtime.factory, runtime.definitions, runtime.clock)


def _next_batch(runtime: Runtime, now: datetime) -> datetime | None:
    return batch_campaigns.next_batch_time(runtime.factory, runtime.definitions, now)


def _install_batch_jobs(scheduler: BaseScheduler, runtime: Runtime, leadership: Any) -> Callable[[], object]:
    wanted = batch_campaigns.schedule_batch_jobs(scheduler, runtime, leadership)
    return lambda: batch_campaigns.prune_batch_jobs(scheduler, wanted)


# In the order the simulated clock runs them at a stop: what enrolls, then what sends, then what tidies.
DUTIES: tuple[Duty, ...] = (
    Duty(name="consent_duties", run=consent_duties, every=lambda _: timedelta(hours=1)),
    Duty(
        name="batch_campaigns",
        run=due_batch_campaigns,
        every=lambda _: timedelta(minutes=1),
        sweeps=True,
        next_work=_next_batch,
        install=_install_batch_jobs,
    ),
    Duty(
        name="dispatch",
        run=dispatch,
        every=lambda settings: timedelta(seconds=settings.dispatch_interval_seconds),
        leader_only=False,
        sweeps=True,
        next_work=_next_message,
    ),
    Duty(name="housekeeping", run=housekeeping, every=lambda _: timedelta(minutes=1), sweeps=True),
    Duty(name="forget_login_failures", run=forget_login_failures, every=lambda _: timedelta(hours=1)),
)
