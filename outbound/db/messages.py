"""Message states and the trail of transitions between them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from outbound.db.bulk import insert_rows, update_by_id
from outbound.db.models import Message, MessageTransition, table
from outbound.errors import OutboundError
from outbound.vocabulary import FINAL_MESSAGE, MessageStatus

S = MessageStatus
STATUSES = tuple(MessageStatus)
FINAL = FINAL_MESSAGE

# Which status may follow which. A message leaves `sending` only by the provider's
# answer (or its absence: `unknown`), so a send is never repeated blindly. `sent` and
# `unknown` go back to `scheduled` only when the carrier reports the message was not
# delivered and may be later (Twilio 30003/30005): a new attempt is then no duplicate.
# Final states take nothing, so a late `sent` after `delivered` changes nothing.
ALLOWED: dict[str | None, frozenset[str]] = {
    None: frozenset({S.SCHEDULED}),
    S.SCHEDULED: frozenset({S.DEFERRED, S.BLOCKED, S.CANCELLED, S.SENDING, S.SCHEDULED, S.FAILED}),
    S.DEFERRED: frozenset({S.DEFERRED, S.BLOCKED, S.CANCELLED, S.SENDING, S.SCHEDULED, S.FAILED}),
    S.SENDING: frozenset({S.SENT, S.DELIVERED, S.UNDELIVERED, S.FAILED, S.UNKNOWN, S.SCHEDULED}),
    S.SENT: frozenset({S.DELIVERED, S.UNDELIVERED, S.FAILED, S.SCHEDULED}),
    S.UNKNOWN: frozenset({S.SENT, S.DELIVERED, S.UNDELIVERED, S.FAILED, S.SCHEDULED}),
    **{final: frozenset() for final in FINAL_MESSAGE},
}


class IllegalTransition(OutboundError):
    """A message cannot move from its status to the one asked for."""


def transition(
    session: Session,
    message: Message | ClaimedMessage,
    to_status: str,
    *,
    at: datetime,
    source: str,
    rule: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> MessageTransition:
    """Move `message` to `to_status` and record who moved it and why; illegal moves are refused."""
    step = MessageTransition(**move(message, to_status, at=at, source=source, rule=rule, reason=reason, detail=detail))
    session.add(step)
    return step


def move(
    message: Any,
    to_status: str,
    *,
    at: datetime,
    source: str,
    rule: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move `message` to `to_status` as `transition` does, and return its transition row instead of adding it.

    For a whole batch: the rows go to the database together with `record_transitions`, in the
    same transaction, so a status is never stored without the step that explains it.
    """
    from_status = message.status
    if to_status not in ALLOWED.get(from_status, frozenset()):
        raise IllegalTransition(f"message {message.id}: {from_status} → {to_status} is not allowed")
    message.status = to_status
    message.updated_at = at
    if rule is not None or reason is not None:
        message.rule, message.reason = rule, reason
    return {
        "tenant_id": message.tenant_id,
        "message_id": message.id,
        "at": at,
        "from_status": from_status,
        "to_status": to_status,
        "source": source,
        "rule": rule,
        "reason": reason,
        "detail": detail or {},
    }


def record_transitions(session: Session, rows: list[dict[str, Any]]) -> None:
    """Store transition rows made by `move` with one multi-row INSERT."""
    insert_rows(session, table(MessageTransition), rows)


class ClaimedMessage:
    """A message row read for a batch: it reads and changes like a Message, and remembers what changed.

    It holds the columns it was read with: reading one left out raises AttributeError, never a stale None.

    Dispatch works on a whole batch of these and writes every change with `write_changes`, one
    UPDATE per set of changed columns instead of an ORM flush per object.
    """

    id: int
    changes: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        # Only for columns the row was not read with (its own fields are found before this is asked).
        raise AttributeError(f"{name!r} was not read for this claimed message")

    def __init__(self, fields: dict[str, Any]) -> None:
        fields["changes"] = {}
        object.__setattr__(self, "__dict__", fields)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value
        self.changes[name] = value


def claimed(result) -> list[ClaimedMessage]:
    """The rows of a select of message columns (the id among them) as ClaimedMessages, in order."""
    names = tuple(result.keys())
    return [ClaimedMessage(dict(zip(names, row, strict=True))) for row in result.all()]


def write_changes(session: Session, messages: list[ClaimedMessage]) -> None:
    """Store what changed on each message: an executemany UPDATE by id per distinct set of changed columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for message in messages:
        if message.changes:
            groups.setdefault(tuple(sorted(message.changes)), []).append({"_id": message.id, **message.changes})
            message.changes.clear()
    for rows in groups.values():
        update_by_id(session, table(Message), rows)
