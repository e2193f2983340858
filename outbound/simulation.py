"""Driving a simulated clock through due work: `outbound run --until` and the demo."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from outbound.clock import SimulatedClock
from outbound.db.session import transaction
from outbound.dispatch import TickReport, expire_sending, next_due


def _round_up(when: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    epoch = when.timestamp()
    return datetime.fromtimestamp(math.ceil(epoch / seconds) * seconds, tz=when.tzinfo)


def run_until(runtime, clock: SimulatedClock, until: datetime, step: timedelta = timedelta(minutes=1),
              on_tick=None) -> TickReport:
    """Advance `clock` to `until`, stopping at each time work is due (on the `step` grid) and doing it."""
    total = TickReport()
    while True:
        report = runtime.dispatcher.drain()
        total.add(report)
        with transaction(runtime.factory) as session:
            expire_sending(session, clock.now(), timedelta(minutes=runtime.settings.sending_expiry_minutes))
            due = next_due(session)
        if on_tick is not None:
            on_tick(clock.now())
        if due is None or due > until:
            break
        clock.set(max(clock.now(), min(_round_up(due, step), until)))
    if clock.now() < until:
        clock.set(until)
    return total
