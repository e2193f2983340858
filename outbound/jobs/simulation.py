"""Driving a simulated clock through due work: `outbound run --until` and the demo."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from outbound.clock import SimulatedClock
from outbound.db.session import transaction
from outbound.dispatch.dispatcher import TickReport, expire_sending, next_due
from outbound.enrollment.audience_runs import next_batch_time, run_due_batches
from outbound.enrollment.fallback import sweep_undelivered
from outbound.enrollment.planner import end_nurture_after_outcomes
from outbound.jobs.scheduler import consent_duties

CONSENT_DUTIES_EVERY = timedelta(hours=1)


def _round_up(when: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    epoch = when.timestamp()
    return datetime.fromtimestamp(math.ceil(epoch / seconds) * seconds, tz=when.tzinfo)


def run_until(
    runtime, clock: SimulatedClock, until: datetime, step: timedelta = timedelta(minutes=1), on_tick=None
) -> TickReport:
    """Advance `clock` to `until`, stopping at each time work is due (on the `step` grid) and doing it."""
    total = TickReport()
    while True:
        # KR consent notices and reconfirmation requests, once per simulated hour (as the scheduler does),
        # however many short runs the hour is cut into.
        last = runtime.consent_duties_at
        if last is None or not timedelta(0) <= clock.now() - last < CONSENT_DUTIES_EVERY:
            consent_duties(runtime)
            runtime.consent_duties_at = clock.now()
        # Cron batch campaigns fire at their times on this clock too, before what they enroll is sent.
        run_due_batches(runtime.factory, runtime.definitions, clock)
        report = runtime.dispatcher.drain()
        total.add(report)
        with transaction(runtime.factory) as session:
            expire_sending(session, clock.now(), timedelta(minutes=runtime.settings.sending_expiry_minutes))
            sweep_undelivered(session, runtime.definitions, clock.now())
            end_nurture_after_outcomes(session, runtime.definitions, clock.now())
            due = next_due(session)
        batch_due = next_batch_time(runtime.factory, runtime.definitions, clock.now())
        due = min((t for t in (due, batch_due) if t is not None), default=None)
        if on_tick is not None:
            on_tick(clock.now())
        if due is None or due > until:
            break
        clock.set(max(clock.now(), min(_round_up(due, step), until)))
    if clock.now() < until:
        clock.set(until)
    return total
