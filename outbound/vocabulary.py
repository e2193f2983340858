"""The words of the domain, one word for one thing: statuses, channels, purposes, where a move came from,
the rule behind a decision and why an address is suppressed.

Each is a `StrEnum`, so a member is the very string stored in the database and shown to users
(`MessageStatus.SENT == "sent"`): the stored values and the contracts (CLI, API, webhooks) stay
the same, and code names a status instead of spelling it. A provider's own words (Twilio's
`MessageStatus`, SendGrid's event names) are not here: they are read at the boundary and mapped
to these.
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
    DELIVERED = "delivered"  # the provider reports it arrived
    UNDELIVERED = "undelivered"  # the provider reports it did not arrive (a carrier error, a bounce)
    FAILED = "failed"  # it cannot go: the provider refused it or reports it failed, or it could not be rendered
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

    ACTIVE = "active"  # a message still to come
    COMPLETED = "completed"  # every message past scheduling; or, when written, held out or no step applied
    EXITED = "exited"  # ended early: an exit event, an agent's outcome, the contact's erasure


class TaskStatus(StrEnum):
    """A callback task agents work: open, claimed by an agent under a lease, or closed with an outcome."""

    OPEN = "open"  # waiting for an agent from its `due_at` (again after an unanswered call or a call-back time)
    CLAIMED = "claimed"  # an agent holds it until its lease expires
    CLOSED = "closed"  # done, with its outcome (an agent's; `blocked`: the number may not be called; `erased`)


class CampaignState(StrEnum):
    """A campaign per tenant: draft enrolls nobody, paused holds its messages, finished stops."""

    DRAFT = "draft"  # written in the campaign file: it loads, previews and dry-runs, and enrolls nobody
    ACTIVE = "active"  # it enrolls contacts and its messages go
    PAUSED = "paused"  # an operator's decision per tenant: no new enrollments, its due messages wait
    FINISHED = "finished"  # past the file's `ends_at`, or stored so


class Channel(StrEnum):
    """How a contact is reached."""

    SMS = "sms"  # a text message
    EMAIL = "email"
    VOICE = "voice"  # an agent's call on a callback task: consents and suppressions, no campaign messages


class Purpose(StrEnum):
    """Why a message is sent, which decides the consent it needs."""

    MARKETING = "marketing"  # advertising: needs marketing consent, keeps quiet hours and frequency caps
    SURVEY = "survey"  # a question after an order: needs survey consent, or marketing consent
    TRANSACTIONAL = "transactional"  # an order update: stopped only by a revocation, an SMS opt-out, a dead address


class Source(StrEnum):
    """Who moved a message (a transition's `source`): what enrolled it or ended its enrollment, the dispatching
    worker, the provider's report, a person; and `erasure`, the source of the suppressions an erasure keeps."""

    TRIGGER = "trigger"  # enrollment: a trigger, a batch run or a list scheduled it; an exit cancelled it
    WORKER = "worker"  # dispatch: the gate's decision, the provider's answer, a fallback scheduled
    WEBHOOK = "webhook"  # a provider's status report
    OPERATOR = "operator"  # a person at the command line (an erasure cancels the contact's messages)
    ERASURE = "erasure"  # the suppressions kept when a contact is erased


class Rule(StrEnum):
    """The rule behind a decision or a transition: stored with each move of a message (`rule`), shown by
    `outbound explain` and the reports, so a value never changes.

    The compliance gate's rules are named for their function in `outbound.compliance`. A provider's
    status report records its own rule, `<provider>_<event>` (`twilio_undelivered`, `sendgrid_bounce`),
    spelled from the provider's words and not listed here.
    """

    ALLOW = "allow"  # the gate found nothing against it (an Allow's rule)
    # The gate, before rendering (`outbound.compliance.rules`, `.standing`).
    NO_ADDRESS = "no_address"  # the contact has no address on the message's channel
    DNC = "dnc"  # the number is on the Do-Not-Call list (calls)
    DNC_STALE = "dnc_stale"  # no Do-Not-Call list fresh enough to call with
    SUPPRESSION = "suppression"  # the address is on the tenant's suppression list for the channel
    CONSENT = "consent"  # no consent for the channel and purpose, or a revoked one
    KR_RECONFIRMATION = "kr_reconfirmation"  # Korean advertising consent too old and not reconfirmed
    POSTAL_ADDRESS = "postal_address"  # marketing email, and the tenant has no postal address to carry
    COMPLAINT_BREAKER = "complaint_breaker"  # the tenant's spam-complaint rate paused its marketing email
    QUIET_HOURS = "quiet_hours"  # marketing outside the contact's local hours (US 08:00–21:00): deferred
    KR_NIGHT = "kr_night"  # Korean advertising at night without night-time consent: deferred
    FREQUENCY_CAP = "frequency_cap"  # over a marketing frequency cap: deferred, or dropped if the policy says so
    # The gate, on the rendered message (`outbound.compliance.rendered`).
    MESSAGE_FORMAT = "message_format"  # the text breaks the jurisdiction's advertising format
    SMS_LENGTH = "sms_length"  # the SMS needs more segments than its step allows
    # An agent's call (`outbound.engagement.calling_rules`).
    NO_PHONE = "no_phone"  # the customer has no phone number to call
    CALLING_HOURS = "calling_hours"  # inside or outside the customer's local calling hours
    # Dispatch and the providers' answers.
    DEFINITIONS = "definitions"  # the message's campaign is no longer defined: failed
    RENDER = "render"  # the template could not be rendered: failed
    PROVIDER = "provider"  # the provider refused the message for good: failed
    PROVIDER_RETRY = "provider_retry"  # a transient provider error: scheduled again, with backoff
    PROVIDER_AMBIGUOUS = "provider_ambiguous"  # no clear answer (a timeout): unknown, never re-sent blindly
    SENDING_EXPIRED = "sending_expired"  # no provider answer recorded in time: unknown
    FALLBACK = "fallback"  # a step's message scheduled again on its fallback channel: the first could not reach
    # Ends that cancel pending messages.
    EXIT = "exit"  # the enrollment ended: an exit event, an agent's outcome
    ERASURE = "erasure"  # the contact was erased


class SuppressionReason(StrEnum):
    """Why an address is on a tenant's suppression list for a channel (a suppression's `reason`)."""

    OPT_OUT = "opt_out"  # the contact texted STOP, or the provider reports the number opted out
    UNDELIVERABLE = "undeliverable"  # the provider says the number cannot take messages (invalid, landline)
    HARD_BOUNCE = "hard_bounce"  # the email address bounced for good
    BOUNCE = "bounce"  # read as unreachable, like a hard bounce; nothing records it now
    SPAM_REPORT = "spam_report"  # the recipient reported an email as spam
    UNSUBSCRIBE = "unsubscribe"  # the unsubscribe link, or the provider's unsubscribe event
    GROUP_UNSUBSCRIBE = "group_unsubscribe"  # the provider's group unsubscribe; its resubscribe lifts it
    ERASED = "erased"  # the contact was erased: the hash outlives them
    DNC = "dnc"  # the number is on an imported Do-Not-Call list (calls)
    DO_NOT_CALL = "do_not_call"  # an agent's call outcome: the customer asked not to be called
    WRONG_NUMBER = "wrong_number"  # an agent's call outcome: the number is not the customer's
