"""Driving a simulated clock through the duties of `outbound.jobs.duties`: `outbound run --until` and the demo."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from outbound.clock import SimulatedClock
from outbound.dispatch.report import TickReport
from outbound.jobs.duties import DUTIES, Duty

if TYPE_CHECKING:
    from collections.abc import Callable

    from outbound.bootstrap import Runtime


def _round_up(when: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    epoch = when.timestamp()
    return datetime.fromtimestamp(math.ceil(epoch / seconds) * seconds, tz=when.tzinfo)


def _due(duty: Duty, runtime: Runtime, now: datetime) -> bool:
    # A duty that sweeps what is due runs at every stop; another once its period has passed since its
    # last run on this runtime, however many short runs the period is cut into (or if the clock went back).
    if duty.sweeps:
        return True
    last = runtime.duty_runs.get(duty.name)
    return last is None or not timedelta(0) <= now - last < duty.every(runtime.settings)


def run_until(
    runtime: Runtime,
    clock: SimulatedClock,
    until: datetime,
    step: timedelta = timedelta(minutes=1),
    on_tick: Callable[[datetime], object] | None = None,
) -> TickReport:
    """Advance `clock` to `until`, stopping at each time work is due (on the `step` grid) and doing it.

    At each stop every due duty runs, in the order of `DUTIES`; the dispatch reports are summed.
    """
    total = TickReport()
    while True:
        now = clock.now()
        for duty in DUTIES:
            if _due(duty, runtime, now):
                result = duty.run(runtime)
                runtime.duty_runs[duty.name] = now
                if isinstance(result, TickReport):
                    total.add(result)
        upcoming = [duty.next_work(runtime, clock.now()) for duty in DUTIES if duty.next_work is not None]
        due = min((t for t in upcoming if t is not None), default=None)
        if on_tick is not None:
            on_tick(clock.now())
        if due is None or due > until:
            break
        clock.set(max(clock.now(), min(_round_up(due, step), until)))
    if clock.now() < until:
        clock.set(until)
    return total
