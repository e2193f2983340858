"""APScheduler runs the duties of `outbound.jobs.duties` on the wall clock. Every duty is idempotent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler

from outbound.jobs.duties import DUTIES, Duty
from outbound.jobs.leader import Leadership

if TYPE_CHECKING:
    from outbound.bootstrap import Runtime


def add_leader_job(scheduler: BackgroundScheduler, leadership: Leadership, duty: Duty, runtime: Runtime) -> None:
    """Schedule `duty` to run only while this process leads; others skip it and keep trying to lead."""

    def run_if_leader() -> None:
        if leadership.acquire():
            duty.run(runtime)

    scheduler.add_job(
        run_if_leader,
        "interval",
        seconds=duty.every(runtime.settings).total_seconds(),
        id=duty.name,
        max_instances=1,
        coalesce=True,
    )


def start_scheduler(runtime: Runtime, *, dispatch: bool = True) -> BackgroundScheduler:
    """Start the duties in the background; the caller shuts the scheduler down (and releases `scheduler.leadership`).

    Leader-only duties run in one process at a time across all of them; the others (dispatch) run in
    every process that is asked to dispatch.
    """
    scheduler = BackgroundScheduler(timezone="UTC")
    leadership = Leadership(runtime.engine)
    scheduler.leadership = leadership  # released by the caller on shutdown
    after_start: list[Any] = []
    for duty in DUTIES:
        if not duty.leader_only and not dispatch:
            continue
        if duty.install is not None:
            after_start.append(duty.install(scheduler, runtime, leadership))
        elif duty.leader_only:
            add_leader_job(scheduler, leadership, duty, runtime)
        else:
            scheduler.add_job(
                duty.run,
                "interval",
                args=[runtime],
                id=duty.name,
                seconds=duty.every(runtime.settings).total_seconds(),
                max_instances=1,
                coalesce=True,
            )
    scheduler.start()
    for started in after_start:
        started()
    return scheduler
