"""Recording what came of a call: the task's next state, and what the outcome means for the customer.

`plan_outcome` is pure: values in, values out. `record_outcome` writes the call only while the agent
still holds the task, then applies the outcome. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from outbound.clock import ensure_utc
from outbound.db.models import Agent, CallbackAttempt, CallbackTask, Contact, Enrollment, Tenant
from outbound.db.suppressions import suppress
from outbound.engagement.callback_queue import TaskNotHeld, get_task
from outbound.engagement.calling_rules import CallingRules, calling_rules
from outbound.enrollment.lifecycle import exit_enrollment
from outbound.errors import InvalidInput
from outbound.ingest.contacts import ConsentIn, record_consent
from outbound.ingest.text import check_storable
from outbound.vocabulary import Channel, EnrollmentStatus, Purpose, SuppressionReason, TaskStatus

OUTCOMES = {
    "reached": "Reached",
    "no_answer": "No answer",
    "voicemail": "Voicemail",
    "call_back_later": "Call back at",
    "converted": "Converted",
    "wrong_number": "Wrong number",
    "do_not_call": "Do not call",
}
# Nobody picked up: the task comes back after a delay, until the tenant's attempt limit.
UNANSWERED = frozenset({"no_answer", "voicemail"})
CALL_BACK_HORIZON = timedelta(days=366)  # the latest a customer may ask to be called back


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What an outcome does to its task: open again at `due_at`, or close."""

    status: TaskStatus
    due_at: datetime | None = None


def plan_outcome(
    outcome: str, *, unanswered_before: int, rules: CallingRules, now: datetime, call_back_at: datetime | None = None
) -> Plan:
    """The task's next state after `outcome`; `unanswered_before` counts earlier no-answer/voicemail calls."""
    if outcome not in OUTCOMES:
        raise InvalidInput(f"must be one of {', '.join(OUTCOMES)}, not {outcome!r}", field="outcome")
    if outcome in UNANSWERED:
        if unanswered_before + 1 >= rules.max_attempts:
            return Plan(status=TaskStatus.CLOSED)
        return Plan(status=TaskStatus.OPEN, due_at=now + rules.retry_delay)
    if outcome == "call_back_later":
        if call_back_at is None:
            raise InvalidInput("give the time to call back", field="call_back_at")
        try:
            due = ensure_utc(call_back_at)
        except OverflowError:
            raise InvalidInput("not a time a call can be made", field="call_back_at") from None
        if due <= now:
            raise InvalidInput("the time to call back must be in the future", field="call_back_at")
        if due > now + CALL_BACK_HORIZON:
            raise InvalidInput(
                f"a call back is planned within {CALL_BACK_HORIZON.days} days, not later", field="call_back_at"
            )
        return Plan(status=TaskStatus.OPEN, due_at=due)
    return Plan(status=TaskStatus.CLOSED)


def record_outcome(
    session: Session,
    tenant: Tenant,
    agent: Agent,
    task_id: int,
    outcome: str,
    *,
    now: datetime,
    notes: str = "",
    call_back_at: datetime | None = None,
) -> CallbackAttempt:
    """Record one call on a task the agent holds, and apply what the outcome means (see `plan_outcome`):
    do not call → voice suppression and revoked marketing SMS consent; wrong number → voice suppression;
    converted → the enrollment (its nurture messages) ends."""
    task = get_task(session, tenant.id, task_id)
    notes = (notes or "").strip()
    if len(notes) > 4000:
        raise InvalidInput("at most 4000 characters", field="notes")
    check_storable(notes, "notes")
    unanswered = (
        session.scalar(
            select(func.count())
            .select_from(CallbackAttempt)
            .where(CallbackAttempt.task_id == task.id, CallbackAttempt.outcome.in_(UNANSWERED))
        )
        or 0
    )
    rules = calling_rules(tenant.settings or {}, us=False)
    plan = plan_outcome(outcome, unanswered_before=unanswered, rules=rules, now=now, call_back_at=call_back_at)
    # Conditional on still holding it: an agent whose lease was taken over cannot overwrite the new holder's work.
    values: dict[str, Any] = {
        "status": plan.status.value,
        "outcome": outcome,
        "notes": notes or None,
        "attempts": CallbackTask.attempts + 1,
        "claimed_by": None,
        "lease_expires_at": None,
    }
    values.update({"due_at": plan.due_at} if plan.status == TaskStatus.OPEN else {"closed_at": now})
    result = session.execute(
        update(CallbackTask)
        .where(
            CallbackTask.id == task.id,
            CallbackTask.tenant_id == tenant.id,
            CallbackTask.status == TaskStatus.CLAIMED,
            CallbackTask.claimed_by == agent.id,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)  # an UPDATE's result, which counts the rows it matched
    if result.rowcount != 1:
        raise TaskNotHeld(f"callback task {task.id} is not claimed by {agent.username}; take the next call instead")
    attempt = CallbackAttempt(
        tenant_id=tenant.id,
        task_id=task.id,
        agent_id=agent.id,
        outcome=outcome,
        notes=notes or None,
        call_back_at=plan.due_at if outcome == "call_back_later" else None,
        at=now,
    )
    session.add(attempt)
    session.flush()
    session.refresh(task)
    contact = session.get(Contact, task.contact_id)
    source = f"agent {agent.username}, callback task {task.id}"
    if outcome in ("do_not_call", "wrong_number") and contact is not None and contact.phone:
        suppress(
            session, tenant.id, Channel.VOICE, contact.phone, reason=SuppressionReason(outcome), source=source, at=now
        )
    if outcome == "do_not_call" and contact is not None:
        record_consent(
            session,
            tenant,
            contact,
            ConsentIn(
                channel=Channel.SMS,
                purpose=Purpose.MARKETING,
                granted=False,
                at=now,
                source=source,
                text="Asked on a call not to be called again nor sent marketing",
            ),
            _Fixed(now),
        )
    if outcome == "converted" and task.enrollment_id is not None:
        enrollment = session.get(Enrollment, task.enrollment_id)
        if enrollment is not None and enrollment.status == EnrollmentStatus.ACTIVE:
            exit_enrollment(session, enrollment, now, f"converted on callback task {task.id} ({agent.username})")
    return attempt


class _Fixed:
    """The moment of the outcome, as the clock the consent ledger asks for."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at
