"""The spam-complaint breaker (COMPLIANCE 12): a tenant's rolling complaint rate on email.

Complaints are SendGrid `spamreport` delivery events; the base is the tenant's email
messages sent in the same window. Above the policy's pause rate (0.3%) the gate
blocks the tenant's marketing email (rule `complaint_breaker`); above the warn rate
(0.1%) dispatch logs a warning and `outbound contacts complaints` shows it.

The rate counts only once the tenant sent `MIN_VOLUME` (1,000) emails in the window. A rate over a
handful of sends says nothing about a sender: one complaint in three sends is 33%, and before this
fix it paused all of a tenant's marketing email. 1,000 is the smallest base on which a single
complaint (0.1%) is not already over the warn rate; at it, warning takes 2 complaints and pausing 4.
The thresholds come from the mailbox providers, and they judge far more mail than that: Google's and
Yahoo's bulk-sender rules (2024) ask a spam rate under 0.3% of a sender's daily volume, for senders
of 5,000 messages a day and more, as Postmaster Tools measures it. Below the minimum the rate is
still computed and shown, with `judged` false, and the level stays `ok`; a tenant's complaints
still suppress each complaining address (COMPLIANCE 3).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbound.compliance import policy_for
from outbound.compliance.zones import resolve_jurisdiction
from outbound.db.models import DeliveryEvent, Message, Tenant
from outbound.vocabulary import Channel

log = logging.getLogger(__name__)

WINDOW = timedelta(days=30)
MIN_VOLUME = 1000  # emails sent in the window before the rate counts (see the module's docstring)


@dataclass(frozen=True, kw_only=True)
class BreakerStatus:
    """One tenant's complaint rate and what it means: `ok`, `warn` or `paused`; `judged` is false when the
    tenant sent fewer than `MIN_VOLUME` emails in the window (the rate is shown, and counts for nothing)."""

    tenant: str
    rate: float
    complaints: int
    delivered: int
    level: str
    warn_at: float | None
    pause_at: float | None
    judged: bool


def complaint_rate(
    session: Session, tenant_id: int, now: datetime, window: timedelta = WINDOW
) -> tuple[float, int, int]:
    """(rate, complaints, emails sent) over the `window` before `now` for one tenant.

    With complaints but no email sent in the window (complaints about older mail),
    the complaints count as their own base, so the rate is 100% rather than undefined.
    """
    since = now - window
    complaints = (
        session.scalar(
            select(func.count(DeliveryEvent.id)).where(
                DeliveryEvent.tenant_id == tenant_id,
                DeliveryEvent.provider == "sendgrid",
                DeliveryEvent.type == "spamreport",
                DeliveryEvent.at > since,
                DeliveryEvent.at <= now,
            )
        )
        or 0
    )
    sent = (
        session.scalar(
            select(func.count(Message.id)).where(
                Message.tenant_id == tenant_id,
                Message.channel == Channel.EMAIL,
                Message.sent_at.is_not(None),
                Message.sent_at > since,
                Message.sent_at <= now,
            )
        )
        or 0
    )
    if not complaints:
        return 0.0, 0, sent
    return complaints / max(sent, complaints), complaints, sent


def breaker_status(session: Session, tenant: Tenant, now: datetime) -> BreakerStatus:
    """The tenant's complaint rate judged against its policy's warn and pause rates, once it sent
    `MIN_VOLUME` emails in the window."""
    policy = policy_for(resolve_jurisdiction(None, tenant.jurisdiction), (tenant.settings or {}).get("compliance"))
    rate, complaints, sent = complaint_rate(session, tenant.id, now)
    judged = sent >= MIN_VOLUME
    level = "ok"
    if judged and policy.complaint_pause_rate is not None and rate > policy.complaint_pause_rate:
        level = "paused"
    elif judged and policy.complaint_warn_rate is not None and rate > policy.complaint_warn_rate:
        level = "warn"
    return BreakerStatus(
        tenant=tenant.slug,
        rate=rate,
        complaints=complaints,
        delivered=sent,
        level=level,
        warn_at=policy.complaint_warn_rate,
        pause_at=policy.complaint_pause_rate,
        judged=judged,
    )


def rates_for_dispatch(session: Session, tenants: dict[int, Tenant], now: datetime) -> dict[int, float]:
    """Each tenant's complaint rate for the gate (0 while too few emails were sent to judge it); logs a
    warning for a tenant over its warn rate."""
    rates = {}
    for tenant in tenants.values():
        status = breaker_status(session, tenant, now)
        rates[tenant.id] = status.rate if status.judged else 0.0
        if status.level != "ok":
            log.warning(
                "tenant %s: spam complaints %.2f%% of email in the last %d days (%d of %d): %s",
                tenant.slug,
                status.rate * 100,
                WINDOW.days,
                status.complaints,
                status.delivered,
                "marketing email paused" if status.level == "paused" else "warning",
            )
    return rates
