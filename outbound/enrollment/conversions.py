"""Conversions: an `order_placed` event attributed to the campaigns that reached the contact before it.

Recorded as the order is processed, before exit rules end the enrollment it converts, so the
purchase that ends a win-back still counts for it. The reports of `outbound.reporting.attribution`
read what is recorded here.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.db.models import Contact, Conversion, Enrollment, Event, Message, Tenant


def record_conversions(
    session: Session, tenant: Tenant, event: Event, contact: Contact, definitions
) -> list[Conversion]:
    """Attribute one order to the campaigns that touched (or held out) the contact within their windows."""
    windows = {
        name: campaign.attribution_window
        for name, campaign in definitions.campaigns.items()
        if campaign.attribution_window
    }
    if not windows:
        return []
    at, longest = event.occurred_at, max(windows.values())
    touched: dict[str, tuple[int | None, str | None, bool]] = {}
    for campaign, enrollment_id, enrolled_at, holdout in session.execute(
        select(Enrollment.campaign, Enrollment.id, Enrollment.enrolled_at, Enrollment.holdout)
        .where(
            Enrollment.tenant_id == tenant.id,
            Enrollment.contact_id == contact.id,
            Enrollment.campaign.in_(windows),
            Enrollment.enrolled_at <= at,
            Enrollment.enrolled_at >= at - longest,
        )
        .order_by(Enrollment.enrolled_at, Enrollment.id)
    ):
        if enrolled_at >= at - windows[campaign]:
            touched[campaign] = (enrollment_id, None, bool(holdout))
    for campaign, messaged_enrollment, variant, sent_at in session.execute(
        select(Message.campaign, Message.enrollment_id, Message.variant, Message.sent_at)
        .where(
            Message.tenant_id == tenant.id,
            Message.contact_id == contact.id,
            Message.campaign.in_(windows),
            Message.sent_at.is_not(None),
            Message.sent_at <= at,
            Message.sent_at >= at - longest,
        )
        .order_by(Message.sent_at, Message.id)
    ):
        if sent_at >= at - windows[campaign]:
            touched[campaign] = (messaged_enrollment, variant, False)  # the latest message wins, with its variant
    if not touched:
        return []
    already = set(
        session.scalars(
            select(Conversion.campaign).where(Conversion.tenant_id == tenant.id, Conversion.event_id == event.id)
        )
    )
    revenue, currency = _revenue(event.data or {})
    conversions = [
        Conversion(
            tenant_id=tenant.id,
            campaign=campaign,
            enrollment_id=enrollment_id,
            contact_id=contact.id,
            event_id=event.id,
            holdout=holdout,
            variant=variant,
            revenue=revenue,
            currency=currency,
            at=at,
        )
        for campaign, (enrollment_id, variant, holdout) in sorted(touched.items())
        if campaign not in already
    ]
    session.add_all(conversions)
    session.flush()
    return conversions


def _revenue(data: dict) -> tuple[float, str | None]:
    value = data.get("value")
    amount = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0
    currency = data.get("currency")
    return amount, currency if isinstance(currency, str) else None
