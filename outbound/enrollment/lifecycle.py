"""An enrollment's end: exited (an exit event, an agent's outcome) with its pending messages cancelled, or
completed once nothing is left to send. The one place enrollments change after they are written."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db.messages import transition
from outbound.db.models import CallbackAttempt, CallbackTask, Enrollment, Message
from outbound.definitions import Definitions
from outbound.errors import NotFound
from outbound.vocabulary import PENDING_MESSAGE, EnrollmentStatus, MessageStatus, Rule, Source

PENDING = tuple(PENDING_MESSAGE)
# Call outcomes after which a lead is still worth nurturing: nobody was reached yet.
NURTURE_GOES_ON = frozenset(
    {"no_answer", "busy", "voicemail", "left_message", "call_back_later", "callback", "wrong_time"}
)


def exit_enrollment(session: Session, enrollment: Enrollment, at: datetime, reason: str) -> int:
    """End an enrollment and cancel its pending messages; returns how many were cancelled."""
    pending = session.scalars(
        select(Message).where(Message.enrollment_id == enrollment.id, Message.status.in_(PENDING))
    ).all()
    for message in pending:
        transition(
            session, message, MessageStatus.CANCELLED, at=at, source=Source.TRIGGER, rule=Rule.EXIT, reason=reason
        )
    _end(enrollment, at, EnrollmentStatus.EXITED, reason)
    return len(pending)


def complete_finished_enrollments(session: Session, tenant_id: int, at: datetime) -> None:
    """Mark active enrollments whose messages are all past scheduling as completed."""
    still_pending = select(Message.enrollment_id).where(Message.status.in_((*PENDING, MessageStatus.SENDING)))
    session.execute(
        update(Enrollment)
        .where(
            Enrollment.tenant_id == tenant_id,
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Enrollment.id.not_in(still_pending.where(Message.enrollment_id.is_not(None))),
        )
        .values(status=EnrollmentStatus.COMPLETED.value, ended_at=at, end_reason="all steps done")
    )


def end_lead_nurture(session: Session, enrollment_id: int, reason: str, clock: Clock) -> int:
    """Stop a lead's nurture sequence (an agent recorded an outcome, or it converted); returns messages cancelled."""
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise NotFound(f"no enrollment {enrollment_id}")
    if enrollment.status != EnrollmentStatus.ACTIVE:
        return 0
    return exit_enrollment(session, enrollment, clock.now(), reason)


def end_nurture_after_outcomes(session: Session, definitions: Definitions, now: datetime) -> int:
    """End active lead enrollments whose callback an agent answered with a final outcome; returns how many."""
    leads = [name for name, campaign in definitions.campaigns.items() if campaign.kind == "lead"]
    if not leads:
        return 0
    attempted = (
        select(CallbackAttempt.outcome)
        .where(CallbackAttempt.task_id == CallbackTask.id, CallbackAttempt.outcome.not_in(NURTURE_GOES_ON))
        .limit(1)
    )
    rows = session.execute(
        select(Enrollment, CallbackTask.id)
        .join(CallbackTask, CallbackTask.enrollment_id == Enrollment.id)
        .where(
            Enrollment.status == EnrollmentStatus.ACTIVE,
            Enrollment.campaign.in_(leads),
            or_(CallbackTask.outcome.not_in(NURTURE_GOES_ON), exists(attempted)),
        )
    ).all()
    ended = 0
    for enrollment, task_id in rows:
        if enrollment.status == EnrollmentStatus.ACTIVE:
            exit_enrollment(session, enrollment, now, f"agent recorded an outcome on callback task {task_id}")
            ended += 1
    return ended


def _end(enrollment: Enrollment, at: datetime, status: str, reason: str) -> None:
    enrollment.status, enrollment.ended_at, enrollment.end_reason = status, at, reason
