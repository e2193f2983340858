"""Message states and the trail of transitions between them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from outbound.db.models import Message, MessageTransition
from outbound.errors import OutboundError

STATUSES = (
    "scheduled", "deferred", "blocked", "cancelled", "sending", "sent",
    "delivered", "undelivered", "failed", "unknown",
)
FINAL = frozenset({"blocked", "cancelled", "delivered", "undelivered", "failed"})

# Which status may follow which. A message leaves `sending` only by the provider's
# answer (or its absence: `unknown`), so a send is never repeated blindly. `sent` and
# `unknown` go back to `scheduled` only when the carrier reports the message was not
# delivered and may be later (Twilio 30003/30005): a new attempt is then no duplicate.
# Final states take nothing, so a late `sent` after `delivered` changes nothing.
ALLOWED: dict[str | None, frozenset[str]] = {
    None: frozenset({"scheduled"}),
    "scheduled": frozenset({"deferred", "blocked", "cancelled", "sending", "scheduled", "failed"}),
    "deferred": frozenset({"deferred", "blocked", "cancelled", "sending", "scheduled", "failed"}),
    "sending": frozenset({"sent", "delivered", "undelivered", "failed", "unknown", "scheduled"}),
    "sent": frozenset({"delivered", "undelivered", "failed", "scheduled"}),
    "unknown": frozenset({"sent", "delivered", "undelivered", "failed", "scheduled"}),
    "delivered": frozenset(),
    "undelivered": frozenset(),
    "failed": frozenset(),
    "blocked": frozenset(),
    "cancelled": frozenset(),
}


class IllegalTransition(OutboundError):
    """A message cannot move from its status to the one asked for."""


def transition(
    session: Session,
    message: Message,
    to_status: str,
    *,
    at: datetime,
    source: str,
    rule: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> MessageTransition:
    """Move `message` to `to_status` and record who moved it and why; illegal moves are refused."""
    from_status = message.status
    if to_status not in ALLOWED.get(from_status, frozenset()):
        raise IllegalTransition(f"message {message.id}: {from_status} → {to_status} is not allowed")
    message.status = to_status
    message.updated_at = at
    if rule is not None or reason is not None:
        message.rule, message.reason = rule, reason
    step = MessageTransition(
        tenant_id=message.tenant_id,
        message_id=message.id,
        at=at,
        from_status=from_status,
        to_status=to_status,
        source=source,
        rule=rule,
        reason=reason,
        detail=detail or {},
    )
    session.add(step)
    return step
