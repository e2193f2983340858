"""Dry run: what a campaign would do with a file of recorded events, without sending anything.

It is the real run, not a model of it: events are ingested by the same code, triggers enroll, the
compliance gate decides, templates render and dispatch hands messages to a recording outbox, all on
a simulated clock that walks through the events' own times. Everything happens inside one database
transaction that is rolled back at the end, so nothing stays and nothing reaches a provider.

The campaign runs as if active (a draft or a paused campaign can be tried before it goes live) and
as if new: its real enrollments are set aside for the run, so traffic it already handled is handled
again the way the campaign file now says. Event ids are namespaced so recorded events already stored
are processed again instead of being skipped as duplicates. On SQLite the run holds the database's write lock while it lasts.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from outbound.clock import SimulatedClock
from outbound.config import Settings
from outbound.db.models import CampaignState, Contact, Enrollment, Message, MessageTransition
from outbound.db.session import transaction
from outbound.definitions import Definitions
from outbound.enrollment.campaign_state import resume
from outbound.errors import NotFound
from outbound.ingest.envelopes import ItemError
from outbound.ingest.events import ingest_items
from outbound.jobs.simulation import run_until
from outbound.providers.outbox import Outbox
from outbound.tenancy.tenants import get_tenant
from outbound.vocabulary import CampaignState as State
from outbound.vocabulary import Channel, MessageStatus

DRY_RUN_PREFIX = "dry-run:"


@dataclass(frozen=True, kw_only=True)
class PlannedMessage:
    """One message the campaign would create, and what would become of it."""

    contact: str
    step: str
    variant: str | None
    channel: str
    outcome: str  # would send, would wait then send, blocked, cancelled, still due
    at: datetime  # when it would be sent, or when it was stopped, or when it is due
    rule: str | None
    reason: str | None
    waited: tuple[tuple[str, str], ...] = ()  # (rule, reason) of each deferral on the way
    subject: str | None = None
    body: str | None = None


@dataclass
class DryRunReport:
    """Who would get what and when, and what the rules would defer or block."""

    campaign: str
    tenant: str
    start: datetime | None = None
    end: datetime | None = None
    events: int = 0
    errors: list[ItemError] = field(default_factory=list)
    enrolled: int = 0
    held_out: int = 0
    messages: list[PlannedMessage] = field(default_factory=list)
    sent_anything: int = 0  # messages of every campaign the outbox recorded (never sent)


def dry_run(
    engine: Engine,
    settings: Settings,
    definitions: Definitions,
    campaign_name: str,
    events_path: Path,
    *,
    tenant_slug: str | None = None,
    until: datetime | None = None,
) -> DryRunReport:
    """Run `campaign_name` over the events in `events_path` (JSONL envelopes) and roll everything back."""
    from outbound.bootstrap import Runtime

    campaign = definitions.campaigns.get(campaign_name)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_name!r} (see `outbound campaigns list`)")
    raw_events, errors = _read(Path(events_path))
    times = [t for t, _, _ in raw_events]
    with engine.connect() as connection:
        outer = connection.begin()
        try:
            factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
            with factory() as session:
                tenant = get_tenant(session, tenant_slug)
                definitions.campaign_for(campaign_name, tenant.slug)
                first_message = session.scalar(select(func.max(Message.id))) or 0
                first_enrollment = session.scalar(select(func.max(Enrollment.id))) or 0
            start = min(times) if times else tenant.created_at
            longest = max((step.delay for step in campaign.steps), default=timedelta(0))
            end = until or (max(times) if times else start) + longest + timedelta(days=1)
            clock = SimulatedClock(start)
            outbox = Outbox()
            live = campaign.model_copy(update={"state": State.ACTIVE.value, "ends_at": None})
            trial = dataclasses.replace(
                definitions, campaigns={**definitions.campaigns, campaign_name: live}, _by_event={}
            )
            runtime = Runtime(
                settings=settings,
                engine=engine,
                factory=factory,
                clock=clock,
                definitions=trial,
                providers={Channel.SMS: outbox, Channel.EMAIL: outbox},
            )
            with transaction(factory) as session:
                # The campaign meets the traffic afresh: its real enrollments (perhaps from this very
                # traffic) are set aside so their dedupe windows hide nothing. Their messages, sent or
                # pending, still count for frequency caps, as they would.
                session.execute(
                    update(Enrollment)
                    .where(Enrollment.tenant_id == tenant.id, Enrollment.campaign == campaign_name)
                    .values(campaign=f"{campaign_name}:set-aside")
                )
                if (
                    session.scalar(
                        select(CampaignState.state).where(
                            CampaignState.tenant_id == tenant.id, CampaignState.campaign == campaign_name
                        )
                    )
                    == State.PAUSED
                ):
                    resume(session, tenant.id, live, clock)
            report = DryRunReport(campaign_name, tenant.slug, start=start, end=end, errors=errors)
            for when, line, raw in raw_events:
                if when > clock.now():
                    run_until(runtime, clock, min(when, end))
                with transaction(factory) as session:
                    batch = ingest_items(
                        session,
                        session.merge(tenant, load=False),
                        [raw],
                        clock,
                        on_event=runtime.on_event,
                        first_index=line,
                    )
                report.events += batch.stored + batch.duplicates
                report.errors += [dataclasses.replace(error, unit="line") for error in batch.errors]
            run_until(runtime, clock, max(end, clock.now()))
            with factory() as session:
                _collect(session, report, tenant.id, campaign_name, first_message, first_enrollment)
            report.sent_anything = len(outbox.sent)
            return report
        finally:
            outer.rollback()


def _read(path: Path) -> tuple[list[tuple[datetime, int, dict[str, Any]]], list[ItemError]]:
    events: list[tuple[datetime, int, dict[str, Any]]] = []
    errors: list[ItemError] = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            when = datetime.fromisoformat(str(raw["occurred_at"]))
            if when.tzinfo is None:
                raise ValueError("occurred_at has no time zone")
        except (ValueError, KeyError, TypeError) as error:
            errors.append(ItemError(number, None, f"not an event envelope: {error}", unit="line"))
            continue
        if isinstance(raw.get("id"), str):
            raw["id"] = DRY_RUN_PREFIX + raw["id"]
        events.append((when, number, raw))
    events.sort(key=lambda item: (item[0], item[1]))
    return events, errors


def _collect(
    session: Session, report: DryRunReport, tenant_id: int, campaign: str, after_message: int, after_enrollment: int
) -> None:
    rows = session.execute(
        select(Message, Contact.external_id)
        .join(Contact, Contact.id == Message.contact_id)
        .where(Message.tenant_id == tenant_id, Message.campaign == campaign, Message.id > after_message)
        .order_by(Message.due_at, Message.id)
    )
    for message, external_id in rows:
        waited = tuple(
            (t.rule or "-", t.reason or "")
            for t in session.scalars(
                select(MessageTransition)
                .where(
                    MessageTransition.message_id == message.id, MessageTransition.to_status == MessageStatus.DEFERRED
                )
                .order_by(MessageTransition.id)
            )
        )
        if message.sent_at is not None:
            outcome, at = ("would wait then send" if waited else "would send"), message.sent_at
        elif message.status in (MessageStatus.BLOCKED, MessageStatus.CANCELLED, MessageStatus.FAILED):
            outcome, at = message.status, message.updated_at
        else:
            outcome, at = "still due", message.due_at
        report.messages.append(
            PlannedMessage(
                contact=external_id,
                step=message.step,
                variant=message.variant,
                channel=message.channel,
                outcome=outcome,
                at=at,
                rule=message.rule,
                reason=message.reason,
                waited=waited,
                subject=message.subject,
                body=message.body,
            )
        )
    counts = session.execute(
        select(Enrollment.holdout, func.count())
        .where(Enrollment.tenant_id == tenant_id, Enrollment.campaign == campaign, Enrollment.id > after_enrollment)
        .group_by(Enrollment.holdout)
    ).all()
    for holdout, count in counts:
        report.enrolled += count
        report.held_out += count if holdout else 0
