"""The words of the domain, one word for one thing: statuses, channels, purposes, where a move came from.

Each is a `StrEnum`, so a member is the very string stored in the database and shown to users
(`MessageStatus.SENT == "sent"`): the stored values and the contracts (CLI, API, webhooks) stay
the same, and code names a status instead of spelling it.
"""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """Where a message is on its way: waiting, stopped, with the provider, or settled."""

    SCHEDULED = "scheduled"  # due at its `due_at`
    DEFERRED = "deferred"  # a rule moved its `due_at` later (quiet hours, a frequency cap, …)
    BLOCKED = "blocked"  # a rule forbids it: never rendered, never sent
    CANCELLED = "cancelled"  # its enrollment ended first (an exit event, an agent's outcome)
    SENDING = "sending"  # committed before the provider call
    SENT = "sent"  # the provider took it
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    UNKNOWN = "unknown"  # no answer from the provider: never re-sent blindly, settled by its status report


PENDING_MESSAGE = frozenset({MessageStatus.SCHEDULED, MessageStatus.DEFERRED})
FINAL_MESSAGE = frozenset(
    {
        MessageStatus.BLOCKED,
        MessageStatus.CANCELLED,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.FAILED,
    }
)


class EnrollmentStatus(StrEnum):
    """An enrollment is active until nothing is left to send (completed) or something ends it (exited)."""

    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"


class TaskStatus(StrEnum):
    """A callback task agents work: open, claimed by an agent under a lease, or closed with an outcome."""

    OPEN = "open"
    CLAIMED = "claimed"
    CLOSED = "closed"


class CampaignState(StrEnum):
    """A campaign per tenant: draft enrolls nobody, paused holds its messages, finished stops."""

    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    FINISHED = "finished"


class Channel(StrEnum):
    """How a contact is reached."""

    SMS = "sms"
    EMAIL = "email"
    VOICE = "voice"


class Purpose(StrEnum):
    """Why a message is sent, which decides the consent it needs."""

    MARKETING = "marketing"
    SURVEY = "survey"
    TRANSACTIONAL = "transactional"


class Source(StrEnum):
    """Who moved a message: what enrolled it, the dispatching worker, the provider's report, a person."""

    TRIGGER = "trigger"
    WORKER = "worker"
    WEBHOOK = "webhook"
    OPERATOR = "operator"
    ERASURE = "erasure"
