"""Conversions and lift: an order within a campaign's window of a message, or of a holdout assignment.

An `order_placed` event is attributed to every campaign (with an attribution window: marketing
campaigns by default) that sent the contact a message within the window before the order — to the
latest such message, with its A/B variant — or that enrolled the contact within the window, held
out or not. Both groups are thus measured from the same moment, the assignment (an order that
comes before any message was sent still counts for the messaged group, as it does for the
holdout), so comparing their conversion rates and revenue per contact gives the lift the
messages caused, without the bias of only counting the contacts a message happened to reach.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from outbound.db.models import Conversion, Enrollment, Message, Tenant


@dataclass
class Group:
    """One side of a comparison: how many contacts, how many converted, the revenue they brought."""

    contacts: int = 0
    converted: int = 0
    orders: int = 0
    revenue: float = 0.0

    @property
    def rate(self) -> float | None:
        """Share of contacts who converted."""
        return self.converted / self.contacts if self.contacts else None

    @property
    def revenue_per_contact(self) -> float | None:
        return self.revenue / self.contacts if self.contacts else None


@dataclass
class Lift:
    """A campaign's treated contacts (enrolled, not held out) against its holdout, for one tenant."""

    tenant: str
    campaign: str
    currency: str | None
    reached: int  # treated enrollments that were sent at least one message
    treated: Group
    holdout: Group

    @property
    def lift(self) -> float | None:
        """Relative lift of the conversion rate over the holdout's (None without a holdout conversion)."""
        if self.treated.rate is None or not self.holdout.rate:
            return None
        return self.treated.rate / self.holdout.rate - 1

    @property
    def incremental_revenue(self) -> float | None:
        """Revenue the messages added: (revenue per treated contact - per held-out contact) x treated contacts."""
        if self.treated.revenue_per_contact is None or self.holdout.revenue_per_contact is None:
            return None
        return (self.treated.revenue_per_contact - self.holdout.revenue_per_contact) * self.treated.contacts


def lift_report(session: Session) -> list[Lift]:
    """Per tenant and campaign with conversions or a holdout: treated enrollments against held-out ones.

    A group's converted count is its distinct enrollments with a conversion; `reached` says how many
    treated enrollments a message actually reached (the rest were blocked, deferred past the end...).
    """
    results: dict[tuple[str, str], Lift] = {}

    def lift(slug: str, campaign: str) -> Lift:
        return results.setdefault((slug, campaign), Lift(slug, campaign, None, 0, Group(), Group()))

    for slug, campaign, holdout, count in session.execute(
        select(Tenant.slug, Enrollment.campaign, Enrollment.holdout, func.count())
        .join(Tenant, Tenant.id == Enrollment.tenant_id)
        .group_by(Tenant.slug, Enrollment.campaign, Enrollment.holdout)
    ):
        row = lift(slug, campaign)
        (row.holdout if holdout else row.treated).contacts = count
    for slug, campaign, count in session.execute(
        select(Tenant.slug, Message.campaign, func.count(distinct(Message.enrollment_id)))
        .join(Tenant, Tenant.id == Message.tenant_id)
        .where(Message.sent_at.is_not(None))
        .group_by(Tenant.slug, Message.campaign)
    ):
        lift(slug, campaign).reached = count
    for slug, campaign, holdout, converted, orders, revenue, currency in session.execute(
        select(
            Tenant.slug,
            Conversion.campaign,
            Conversion.holdout,
            func.count(distinct(Conversion.enrollment_id)),
            func.count(),
            func.sum(Conversion.revenue),
            func.max(Conversion.currency),
        )
        .join(Tenant, Tenant.id == Conversion.tenant_id)
        .group_by(Tenant.slug, Conversion.campaign, Conversion.holdout)
    ):
        row = lift(slug, campaign)
        group = row.holdout if holdout else row.treated
        group.converted, group.orders, group.revenue = converted, orders, float(revenue or 0)
        row.currency = row.currency or currency
    return [results[key] for key in sorted(results) if results[key].holdout.contacts or results[key].treated.orders]


@dataclass
class VariantResult:
    """One A/B variant of a step: messages sent, and the orders attributed to it."""

    tenant: str
    campaign: str
    step: str
    variant: str
    sent: int = 0
    converted: int = 0
    revenue: float = 0.0

    @property
    def rate(self) -> float | None:
        return self.converted / self.sent if self.sent else None


def variant_results(session: Session) -> list[VariantResult]:
    """Per tenant, campaign, step and variant: messages sent and conversions with their revenue."""
    results: dict[tuple[str, str, str, str], VariantResult] = {}
    steps: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for slug, campaign, step, variant, sent in session.execute(
        select(Tenant.slug, Message.campaign, Message.step, Message.variant, func.count())
        .join(Tenant, Tenant.id == Message.tenant_id)
        .where(Message.variant.is_not(None), Message.sent_at.is_not(None))
        .group_by(Tenant.slug, Message.campaign, Message.step, Message.variant)
    ):
        assert variant is not None  # the WHERE leaves out messages without one
        results[(slug, campaign, step, variant)] = VariantResult(slug, campaign, step, variant, sent=sent)
        steps[(slug, campaign, variant)].add(step)
    # A conversion carries the variant of the message it followed; credit it to that variant's steps.
    for slug, campaign, variant, converted, revenue in session.execute(
        select(
            Tenant.slug,
            Conversion.campaign,
            Conversion.variant,
            func.count(distinct(Conversion.contact_id)),
            func.sum(Conversion.revenue),
        )
        .join(Tenant, Tenant.id == Conversion.tenant_id)
        .where(Conversion.variant.is_not(None))
        .group_by(Tenant.slug, Conversion.campaign, Conversion.variant)
    ):
        assert variant is not None  # the WHERE leaves out conversions without one
        for step in steps.get((slug, campaign, variant), ()):
            result = results[(slug, campaign, step, variant)]
            result.converted, result.revenue = converted, float(revenue or 0)
    return [results[key] for key in sorted(results)]
