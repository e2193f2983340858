"""The schema, as SQLAlchemy 2 models. Alembic migrations under alembic/ create it.

Longer than most modules on purpose: the whole schema in one file, read side by side with the
migrations, rather than split so that a reader must assemble it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates

from outbound.addresses import address_hash
from outbound.db.types import BigId, UTCDateTime
from outbound.vocabulary import Channel

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def table(model: type[Base]) -> Table:
    """The model's table, typed as one (SQLAlchemy types `__table__` as any FROM clause)."""
    found = model.__table__
    assert isinstance(found, Table)
    return found


class Tenant(Base):
    """A brand whose customers are contacted; every other row belongs to one."""

    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    jurisdiction: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16))
    # Sender details: sender_name, support_contact, sms_from, email_from,
    # postal_address, optout_number (KR 080), calling hours overrides.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class ApiKey(Base):
    """A tenant's API key; only its SHA-256 is stored."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Contact(Base):
    """A customer of a tenant, known by the order system's external id."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    external_id: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32))  # E.164
    # address_hash of the phone, kept with it on every write through the model (see _phone_set), so dispatch
    # does not parse every number it meets. NULL for rows written around the model: readers compute it then.
    phone_hash: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))  # lower-cased
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(16))
    jurisdiction: Mapped[str | None] = mapped_column(String(16))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    erased_at: Mapped[datetime | None]

    @validates("phone")
    def _phone_set(self, _key: str, value: str | None) -> str | None:
        self.phone_hash = address_hash(Channel.SMS, value) if value else None
        return value


class Consent(Base):
    """One entry of the consent ledger: granted or revoked, when, how, and the text shown."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_contact", "tenant_id", "contact_id", "channel", "purpose"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    channel: Mapped[str] = mapped_column(String(16))  # sms, email, voice
    purpose: Mapped[str] = mapped_column(String(16))  # marketing, survey, transactional
    granted: Mapped[bool] = mapped_column(Boolean)
    night: Mapped[bool] = mapped_column(Boolean, default=False)  # KR: advertising 21:00-08:00
    at: Mapped[datetime]
    source: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime]
    notified_at: Mapped[datetime | None]  # KR: when the contact was told of this change


class Suppression(Base):
    """An address that must not be contacted on a channel; kept by hash so it outlives erasure."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("tenant_id", "channel", "address_hash"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    channel: Mapped[str] = mapped_column(String(16))
    address_hash: Mapped[str] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(320))  # cleared on erasure
    reason: Mapped[str] = mapped_column(String(64))  # opt_out, hard_bounce, spam_report, undeliverable, ...
    source: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Event(Base):
    """An order-system event, stored once per (tenant, event id)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id"),
        Index("ix_events_contact", "tenant_id", "contact_id", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Enrollment(Base):
    """A contact in a campaign, started by an event through a trigger."""

    __tablename__ = "enrollments"
    __table_args__ = (Index("ix_enrollments_dedupe", "tenant_id", "campaign", "contact_id", "dedupe_key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    campaign: Mapped[str] = mapped_column(String(100))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    dedupe_key: Mapped[str] = mapped_column(String(200), default="")
    trigger: Mapped[str | None] = mapped_column(String(100))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"))
    status: Mapped[str] = mapped_column(String(16))  # active, completed, exited
    enrolled_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(200))
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)  # in the audience, never messaged


class Message(Base):
    """One message of one step to one contact, from scheduled to its final state."""

    __tablename__ = "messages"
    __table_args__ = (
        # The claim reads one status in (due_at, id) order: with `id` in the index, PostgreSQL walks it
        # without sorting, even when a batch campaign makes a million messages due at the same instant.
        Index("ix_messages_due", "status", "due_at", "id"),
        # What a tenant sent on a channel lately (the complaint-rate breaker, each tick): a range of
        # this index, whatever the number of messages still waiting (sent_at NULL sorts apart).
        Index("ix_messages_sent", "tenant_id", "channel", "sent_at"),
        Index("ix_messages_contact", "tenant_id", "contact_id", "sent_at"),
        Index("ix_messages_enrollment", "enrollment_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    campaign: Mapped[str] = mapped_column(String(100))
    step: Mapped[str] = mapped_column(String(100))
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    to_address: Mapped[str | None] = mapped_column(String(320))
    locale: Mapped[str | None] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(200), index=True)
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    rule: Mapped[str | None] = mapped_column(String(64))  # the rule of the last decision
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    variant: Mapped[str | None] = mapped_column(String(32))  # A/B variant of the step
    sender: Mapped[str | None] = mapped_column(String(320))  # the number or address it went from
    error_code: Mapped[str | None] = mapped_column(String(32))  # the provider's, when it refused


class MessageTransition(Base):
    """One step of a message's trail: from which status to which, who moved it, why."""

    __tablename__ = "message_transitions"
    __table_args__ = (Index("ix_message_transitions_message", "message_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    at: Mapped[datetime]
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # worker, webhook, operator, trigger
    rule: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CallbackTask(Base):
    """A call an agent should make: a lead, a low survey score, a shipping problem."""

    __tablename__ = "callback_tasks"
    __table_args__ = (Index("ix_callback_tasks_queue", "tenant_id", "status", "due_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    campaign: Mapped[str] = mapped_column(String(100))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"))
    reason: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))  # open, claimed, closed
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    lease_expires_at: Mapped[datetime | None]


class DncImport(Base):
    """One import of a Do-Not-Call list; its entries are suppressions on the `voice` channel."""

    __tablename__ = "dnc_imports"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    source: Mapped[str] = mapped_column(String(200))
    list_date: Mapped[datetime]  # the date the list was published
    imported_at: Mapped[datetime]
    entries: Mapped[int] = mapped_column(Integer, default=0)


class InboundMessage(Base):
    """An SMS a contact sent us: a keyword, a survey answer, or anything else."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_messages_contact", "tenant_id", "contact_id", "received_at"),
        # Once per tenant it is for: an opt-out to the shared number is kept by every tenant sending from it.
        UniqueConstraint("tenant_id", "provider_id"),
        Index("ix_inbound_messages_provider", "provider_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    channel: Mapped[str] = mapped_column(String(16))
    from_address: Mapped[str | None] = mapped_column(String(320))  # cleared on erasure
    to_address: Mapped[str | None] = mapped_column(String(320))
    body: Mapped[str | None] = mapped_column(Text)  # cleared on erasure
    provider_id: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # opt_out, opt_in, help, survey_answer, other
    received_at: Mapped[datetime]


class DeliveryEvent(Base):
    """A provider callback about a message (status, bounce, complaint, open, click), stored once."""

    __tablename__ = "delivery_events"
    __table_args__ = (
        UniqueConstraint("provider", "provider_event_id"),
        Index("ix_delivery_events_tenant", "tenant_id", "type", "at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    received_at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Agent(Base):
    """A call-center agent or supervisor of one tenant; only a password hash is stored."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    username: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16))  # agent, supervisor
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class AgentSession(Base):
    """An agent's login, kept on the server: the cookie carries only its random token, whose hash is here.
    Logging out, disabling the agent or idling too long ends it; an ended session is refused at once."""

    __tablename__ = "agent_sessions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class AuthFailure(Base):
    """A failed login or API key, by what it was aimed at (an account, an address); counted to throttle.
    Only hashes are kept: no username, address or key in the clear."""

    __tablename__ = "auth_failures"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # account, address
    key_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    __table_args__ = (Index("ix_auth_failures_scope_key_at", "scope", "key_hash", "at"),)


class CallbackAttempt(Base):
    """One call an agent made on a callback task, with its outcome."""

    __tablename__ = "callback_attempts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("callback_tasks.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    outcome: Mapped[str] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    call_back_at: Mapped[datetime | None]
    at: Mapped[datetime]


class SurveyResponse(Base):
    """A survey answer: a score, a comment, whether it counted."""

    __tablename__ = "survey_responses"
    __table_args__ = (Index("ix_survey_responses_campaign", "tenant_id", "campaign", "received_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), unique=True)
    campaign: Mapped[str] = mapped_column(String(100))
    scale: Mapped[str] = mapped_column(String(8))  # nps, csat
    score: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))
    counted: Mapped[bool] = mapped_column(Boolean, default=True)  # false outside the answer window
    received_at: Mapped[datetime]


class Conversion(Base):
    """An order attributed to a campaign message or to its holdout assignment."""

    __tablename__ = "conversions"
    __table_args__ = (UniqueConstraint("tenant_id", "campaign", "event_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    campaign: Mapped[str] = mapped_column(String(100))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    holdout: Mapped[bool] = mapped_column(Boolean, default=False)
    variant: Mapped[str | None] = mapped_column(String(32))
    revenue: Mapped[float] = mapped_column(Float, default=0.0)
    currency: Mapped[str | None] = mapped_column(String(8))
    at: Mapped[datetime]


class CampaignState(Base):
    """A campaign's state for one tenant: active, paused or finished (draft campaigns are not loaded)."""

    __tablename__ = "campaign_states"
    __table_args__ = (UniqueConstraint("tenant_id", "campaign"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    campaign: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime]


class OfferCode(Base):
    """A code from a campaign's pool, given to at most one contact."""

    __tablename__ = "offer_codes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "campaign", "code"),
        # A contact's code in a campaign, looked up when its messages are rendered.
        Index("ix_offer_codes_contact", "tenant_id", "campaign", "contact_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    campaign: Mapped[str] = mapped_column(String(100))
    code: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    assigned_at: Mapped[datetime | None]


class BatchRun(Base):
    """One run of a scheduled (cron) campaign for one tenant at one fire time; stored once per fire time."""

    __tablename__ = "batch_runs"
    __table_args__ = (UniqueConstraint("tenant_id", "campaign", "fire_time"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    campaign: Mapped[str] = mapped_column(String(100))
    fire_time: Mapped[datetime]  # the cron time this run stands for
    started_at: Mapped[datetime]
    audience: Mapped[int] = mapped_column(Integer, default=0)  # contacts the audience rule matched
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    held_out: Mapped[int] = mapped_column(Integer, default=0)


class LocalSecret(Base):
    """The secret a local install made for itself (no `OUTBOUND_SECRET_KEY`, links to a loopback address):
    one row, made once, so links stay valid across restarts. A public install sets its own secret."""

    __tablename__ = "local_secrets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    value: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


# APScheduler's SQLAlchemyJobStore table, with exactly the columns it creates itself, so that
# the migrations own it and the job store's own create_all finds it already there.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
