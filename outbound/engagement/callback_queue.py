"""The callback queue, and claiming the next call.

"Next call" claims the best offered task with a lease: a conditional UPDATE that only succeeds while
the task is open (or its lease ran out), so two agents never hold the same task, on SQLite or
PostgreSQL. Tasks whose number can never be called are closed on the way. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session

from outbound.compliance import Allow, Block, Decision
from outbound.db.models import Agent, CallbackTask, Contact, Tenant
from outbound.engagement.calling_rules import call_decisions
from outbound.errors import NotFound, OutboundError
from outbound.vocabulary import Rule, TaskStatus

LEASE = timedelta(minutes=10)
# Blocks that belong to the number itself: the task can never be called, so it is closed, not kept.
NUMBER_BLOCKS = frozenset({Rule.NO_PHONE, Rule.SUPPRESSION, Rule.DNC})
# Candidates are judged a few at a time: the best one is usually callable, and judging costs lookups.
_BATCHES = (8, 64, 256)


class TaskNotHeld(OutboundError):
    """The task is not claimed by this agent (never was, was closed, or its lease passed to someone else)."""


@dataclass(frozen=True)
class Offer:
    """A task with its customer, their local time, and whether calling them is allowed now."""

    task: CallbackTask
    contact: Contact
    zone: str
    local_time: datetime
    decision: Decision
    agent: str | None = None  # who holds it, when claimed


def queue(session: Session, tenant: Tenant, now: datetime, limit: int = 200) -> list[Offer]:
    """Open and claimed tasks, best first (priority, then due time), each with its calling decision now."""
    rows = session.execute(
        select(CallbackTask, Contact, Agent.name)
        .join(Contact, Contact.id == CallbackTask.contact_id)
        .outerjoin(Agent, Agent.id == CallbackTask.claimed_by)
        .where(CallbackTask.tenant_id == tenant.id, CallbackTask.status.in_((TaskStatus.OPEN, TaskStatus.CLAIMED)))
        .order_by(CallbackTask.priority.desc(), CallbackTask.due_at, CallbackTask.id)
        .limit(limit)
    ).all()
    decisions = call_decisions(session, tenant, [contact for _, contact, _ in rows], now)
    offers = []
    for task, contact, agent in rows:
        zone, decision = decisions[contact.id]
        held = task.status == TaskStatus.CLAIMED and task.lease_expires_at is not None and task.lease_expires_at > now
        offers.append(Offer(task, contact, zone, now.astimezone(ZoneInfo(zone)), decision, agent if held else None))
    return offers


def claim_next(
    session: Session, tenant: Tenant, agent: Agent, now: datetime, lease: timedelta = LEASE
) -> CallbackTask | None:
    """The task this agent already holds (lease renewed), else the best due task that may be called now,
    claimed for `lease`; None when there is none. Tasks whose number can never be called are closed."""
    held = session.scalar(
        select(CallbackTask)
        .where(
            CallbackTask.tenant_id == tenant.id,
            CallbackTask.status == TaskStatus.CLAIMED,
            CallbackTask.claimed_by == agent.id,
            CallbackTask.lease_expires_at > now,
        )
        .order_by(CallbackTask.id)
        .limit(1)
    )
    if held is not None:
        held.lease_expires_at = now + lease
        session.flush()
        return held
    claimable = or_(
        CallbackTask.status == TaskStatus.OPEN,
        and_(CallbackTask.status == TaskStatus.CLAIMED, CallbackTask.lease_expires_at <= now),
    )
    offset, size = 0, iter(_BATCHES)
    while True:
        batch = next(size, _BATCHES[-1])
        rows = session.execute(
            select(CallbackTask.id, Contact)
            .join(Contact, Contact.id == CallbackTask.contact_id)
            .where(CallbackTask.tenant_id == tenant.id, CallbackTask.due_at <= now, claimable)
            .order_by(CallbackTask.priority.desc(), CallbackTask.due_at, CallbackTask.id)
            .offset(offset)
            .limit(batch)
        ).all()
        if not rows:
            return None
        decisions = call_decisions(session, tenant, [contact for _, contact in rows], now)
        for task_id, contact in rows:
            decision = decisions[contact.id][1]
            if isinstance(decision, Block) and decision.rule in NUMBER_BLOCKS:
                _close_uncallable(session, tenant.id, task_id, claimable, decision, now)
            elif isinstance(decision, Allow) and _take(session, tenant.id, task_id, claimable, agent.id, now + lease):
                return session.get(CallbackTask, task_id, populate_existing=True)
        offset += len(rows)


def _take(
    session: Session, tenant_id: int, task_id: int, claimable: ColumnElement[bool], agent_id: int, until: datetime
) -> bool:
    # The WHERE re-checks the state at write time: whoever updates first wins, the other sees 0 rows.
    result = session.execute(
        update(CallbackTask)
        .where(CallbackTask.id == task_id, CallbackTask.tenant_id == tenant_id, claimable)
        .values(status=TaskStatus.CLAIMED.value, claimed_by=agent_id, lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)  # an UPDATE's result, which counts the rows it matched
    return result.rowcount == 1


def _close_uncallable(
    session: Session, tenant_id: int, task_id: int, claimable: ColumnElement[bool], decision: Block, now: datetime
) -> None:
    session.execute(
        update(CallbackTask)
        .where(CallbackTask.id == task_id, CallbackTask.tenant_id == tenant_id, claimable)
        .values(
            status=TaskStatus.CLOSED.value,
            outcome="blocked",
            notes=f"{decision.rule}: {decision.reason}",
            closed_at=now,
            claimed_by=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )


def get_task(session: Session, tenant_id: int, task_id: int) -> CallbackTask:
    """The tenant's task with that id, else NotFound (another tenant's task is not found either)."""
    # An id no row can have (a 64-bit key) is not found, rather than handed to the database to overflow.
    task = session.get(CallbackTask, task_id) if 0 < task_id < 2**63 else None
    if task is None or task.tenant_id != tenant_id:
        raise NotFound(f"no callback task {task_id}")
    return task
