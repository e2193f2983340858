"""The supervisor's summary of the callback queue: open and claimed tasks, outcomes per agent today, and
tasks created and closed per hour."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbound.db.models import Agent, CallbackAttempt, CallbackTask, Tenant
from outbound.vocabulary import TaskStatus

WAITING = (TaskStatus.OPEN, TaskStatus.CLAIMED)  # the tasks still in the queue


@dataclass(frozen=True)
class Summary:
    """The supervisor's view: the queue, outcomes per agent today, tasks created and closed per hour."""

    open: int
    claimed: int
    oldest_due_at: datetime | None
    outcomes: dict[str, dict[str, int]]  # agent name → outcome → count, since local midnight
    hours: list[tuple[datetime, int, int]]  # (hour start, local; created; closed), oldest first


def supervisor_summary(session: Session, tenant: Tenant, now: datetime, hours: int = 24) -> Summary:
    """Counts for the tenant's supervisor page; `hours` whole hours ending with the current one."""
    zone = ZoneInfo(tenant.timezone)
    counts = dict(
        session.execute(
            select(CallbackTask.status, func.count())
            .where(CallbackTask.tenant_id == tenant.id, CallbackTask.status.in_(WAITING))
            .group_by(CallbackTask.status)
        ).all()
    )
    oldest = session.scalar(
        select(func.min(CallbackTask.due_at)).where(
            CallbackTask.tenant_id == tenant.id,
            CallbackTask.status.in_(WAITING),
            CallbackTask.due_at <= now,
        )
    )
    midnight = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
    outcomes: dict[str, dict[str, int]] = {}
    for name, outcome, count in session.execute(
        select(Agent.name, CallbackAttempt.outcome, func.count())
        .join(Agent, Agent.id == CallbackAttempt.agent_id)
        .where(CallbackAttempt.tenant_id == tenant.id, CallbackAttempt.at >= midnight)
        .group_by(Agent.name, CallbackAttempt.outcome)
        .order_by(Agent.name)
    ):
        outcomes.setdefault(name, {})[outcome] = count
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    created = session.scalars(
        select(CallbackTask.created_at).where(
            CallbackTask.tenant_id == tenant.id, CallbackTask.created_at >= start, CallbackTask.created_at < end
        )
    ).all()
    closed = [
        at
        for at in session.scalars(
            select(CallbackTask.closed_at).where(
                CallbackTask.tenant_id == tenant.id, CallbackTask.closed_at >= start, CallbackTask.closed_at < end
            )
        )
        if at is not None  # never, after that WHERE; the column itself may hold NULL
    ]
    return Summary(
        counts.get(TaskStatus.OPEN, 0),
        counts.get(TaskStatus.CLAIMED, 0),
        oldest,
        outcomes,
        hourly(created, closed, start, hours, zone),
    )


def hourly(
    created: Sequence[datetime], closed: Sequence[datetime], start: datetime, hours: int, zone: ZoneInfo
) -> list[tuple[datetime, int, int]]:
    """Bucket times into `hours` hours from `start` (UTC, on the hour): (local hour start, created, closed)."""
    buckets = [[0, 0] for _ in range(hours)]
    for column, times in ((0, created), (1, closed)):
        for at in times:
            index = int((at - start).total_seconds() // 3600)
            if 0 <= index < hours:
                buckets[index][column] += 1
    return [((start + timedelta(hours=i)).astimezone(zone), a, b) for i, (a, b) in enumerate(buckets)]
