"""Reports a marketer reads: per campaign what was sent, deferred, blocked and cancelled, and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from outbound.db.models import CallbackTask, Contact, Enrollment, Message, MessageTransition, Tenant
from outbound.vocabulary import MessageStatus, TaskStatus

# The moves a report explains with their rule: a message waited, or was stopped.
WAITED_OR_STOPPED = (MessageStatus.DEFERRED, MessageStatus.BLOCKED, MessageStatus.CANCELLED, MessageStatus.FAILED)


@dataclass
class CampaignResult:
    """The outcome of one campaign for one tenant."""

    tenant: str
    campaign: str
    statuses: Counter[str] = field(default_factory=Counter)
    deferred_ever: int = 0  # messages that waited at least once, whatever they became
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)  # (outcome, rule) → messages
    enrollments: Counter[str] = field(default_factory=Counter)  # enrollment status (active, completed, exited) → count

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


def campaign_results(session: Session) -> list[CampaignResult]:
    """Per tenant and campaign: messages by status, how many were deferred on the way, and the rules behind it."""
    results: dict[tuple[str, str], CampaignResult] = {}

    def result(slug: str, campaign: str) -> CampaignResult:
        return results.setdefault((slug, campaign), CampaignResult(slug, campaign))

    for slug, campaign, status, count in session.execute(
        select(Tenant.slug, Message.campaign, Message.status, func.count())
        .join(Tenant, Tenant.id == Message.tenant_id)
        .group_by(Tenant.slug, Message.campaign, Message.status)
    ):
        result(slug, campaign).statuses[status] += count
    for slug, campaign, to_status, rule, count in session.execute(
        select(
            Tenant.slug,
            Message.campaign,
            MessageTransition.to_status,
            MessageTransition.rule,
            func.count(distinct(MessageTransition.message_id)),
        )
        .join(Message, Message.id == MessageTransition.message_id)
        .join(Tenant, Tenant.id == Message.tenant_id)
        .where(MessageTransition.to_status.in_(WAITED_OR_STOPPED))
        .group_by(Tenant.slug, Message.campaign, MessageTransition.to_status, MessageTransition.rule)
    ):
        result(slug, campaign).reasons[(to_status, rule or "-")] += count
    for slug, campaign, count in session.execute(
        select(Tenant.slug, Message.campaign, func.count(distinct(MessageTransition.message_id)))
        .join(Message, Message.id == MessageTransition.message_id)
        .join(Tenant, Tenant.id == Message.tenant_id)
        .where(MessageTransition.to_status == MessageStatus.DEFERRED)
        .group_by(Tenant.slug, Message.campaign)
    ):
        result(slug, campaign).deferred_ever = count
    for slug, campaign, status, count in session.execute(
        select(Tenant.slug, Enrollment.campaign, Enrollment.status, func.count())
        .join(Tenant, Tenant.id == Enrollment.tenant_id)
        .group_by(Tenant.slug, Enrollment.campaign, Enrollment.status)
    ):
        result(slug, campaign).enrollments[status] += count
    return [results[key] for key in sorted(results)]


def decisions_by_rule(session: Session) -> list[tuple[str, str, str, int, list[str], str]]:
    """Per tenant, outcome and rule: messages affected, the campaigns they belong to, and one reason as recorded."""
    rows = session.execute(
        select(
            Tenant.slug,
            MessageTransition.to_status,
            MessageTransition.rule,
            Message.campaign,
            func.count(distinct(MessageTransition.message_id)),
            func.min(MessageTransition.reason),
        )
        .join(Message, Message.id == MessageTransition.message_id)
        .join(Tenant, Tenant.id == Message.tenant_id)
        .where(MessageTransition.to_status.in_(WAITED_OR_STOPPED))
        .group_by(Tenant.slug, MessageTransition.to_status, MessageTransition.rule, Message.campaign)
    )
    # (tenant, outcome, rule) → (messages, campaigns, the first reason seen)
    grouped: dict[tuple[str, str, str], tuple[int, list[str], str]] = {}
    for slug, outcome, rule, campaign, count, reason in rows:
        key = (slug, outcome, rule or "-")
        n, campaigns, first_reason = grouped.setdefault(key, (0, [], reason or ""))
        campaigns.append(campaign)
        grouped[key] = (n + count, campaigns, first_reason)
    return sorted(
        (
            (slug, outcome, rule, n, sorted(campaigns), reason)
            for (slug, outcome, rule), (n, campaigns, reason) in grouped.items()
        ),
        key=lambda row: (row[0], -row[3]),
    )


def sample_messages(session: Session, per_locale: int = 2) -> list[tuple[Message, str, str]]:
    """A few sent messages for each locale and channel: (message, tenant slug, contact external id)."""
    samples = []
    seen: Counter[tuple[str | None, ...]] = Counter()  # (locale, channel[, campaign]) → samples
    rows = session.execute(
        select(Message, Tenant.slug, Contact.external_id)
        .join(Tenant, Tenant.id == Message.tenant_id)
        .join(Contact, Contact.id == Message.contact_id)
        .where(Message.status.in_((MessageStatus.SENT, MessageStatus.DELIVERED)))
        .order_by(Message.campaign, Message.id)
    )
    for message, slug, external_id in rows:
        key = (message.locale, message.channel, message.campaign)
        if seen[key] or seen[(message.locale, message.channel)] >= per_locale:
            continue
        seen[key] += 1
        seen[(message.locale, message.channel)] += 1
        samples.append((message, slug, external_id))
    return samples


def callback_counts(session: Session) -> list[tuple[str, str, int]]:
    """Open callback tasks per tenant and campaign."""
    return list(
        session.execute(
            select(Tenant.slug, CallbackTask.campaign, func.count())
            .join(Tenant, Tenant.id == CallbackTask.tenant_id)
            .where(CallbackTask.status == TaskStatus.OPEN)
            .group_by(Tenant.slug, CallbackTask.campaign)
            .order_by(Tenant.slug, CallbackTask.campaign)
        ).all()
    )
