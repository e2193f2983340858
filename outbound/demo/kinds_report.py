"""The demo report's second half: each campaign kind's results — batches, surveys, conversions against the holdout, A/B, fallback, leads."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbound.db.models import BatchRun, CallbackTask, Enrollment, MessageTransition, OfferCode, Tenant
from outbound.demo.customers import Tally
from outbound.demo.report import add_literal_row
from outbound.engagement.surveys import recovery_counts, survey_scores
from outbound.reporting.attribution import lift_report, variant_results
from outbound.vocabulary import Rule


def _money(amount: float | None, currency: str | None) -> str:
    if amount is None:
        return "-"
    return f"₩{amount:,.0f}" if currency == "KRW" else f"${amount:,.2f}" if currency == "USD" else f"{amount:,.2f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def print_campaign_kinds(session: Session, console: Console, tally: Tally) -> dict[str, Any]:
    """Print batch runs, survey scores, conversions and revenue against the holdout, A/B results, fallbacks and leads."""
    figures: dict[str, Any] = {}
    runs = session.execute(
        select(
            Tenant.slug,
            BatchRun.campaign,
            func.count(),
            func.sum(BatchRun.audience),
            func.sum(BatchRun.enrolled),
            func.sum(BatchRun.held_out),
            func.min(BatchRun.fire_time),
        )
        .join(Tenant, Tenant.id == BatchRun.tenant_id)
        .group_by(Tenant.slug, BatchRun.campaign)
        .order_by(Tenant.slug)
    ).all()
    codes = dict(
        ((slug, campaign), n)
        for slug, campaign, n in session.execute(
            select(Tenant.slug, OfferCode.campaign, func.count())
            .join(Tenant, Tenant.id == OfferCode.tenant_id)
            .where(OfferCode.contact_id.is_not(None))
            .group_by(Tenant.slug, OfferCode.campaign)
        )
    )
    console.rule("[bold]Batch campaigns on their cron (audience rule run in the database)")
    table = Table(
        "tenant",
        "campaign",
        "runs",
        "first run (UTC)",
        "matched (all runs)",
        "enrolled",
        "held out",
        "offer codes given",
    )
    for slug, campaign, count, audience, enrolled, held_out, first in runs:
        add_literal_row(
            table,
            slug,
            campaign,
            str(count),
            f"{first:%Y-%m-%d %H:%M}",
            str(audience),
            str(enrolled),
            str(held_out),
            str(codes.get((slug, campaign), 0)),
        )
    console.print(table)
    figures["batch_runs"] = sum(row[2] for row in runs)
    figures["offer_codes"] = sum(codes.values())

    console.rule("[bold]Surveys: NPS by SMS reply, CSAT by one-click email link")
    recoveries = recovery_counts(session)
    table = Table("tenant", "campaign", "scale", "week", "answers", "counted", "score", "average", "recovery calls")
    scores = survey_scores(session)
    for score in scores + survey_scores(session, by_week=True):
        shown = (
            "-"
            if score.score is None
            else (f"NPS {score.score:+.0f}" if score.scale == "nps" else f"CSAT {score.score:.0f}%")
        )
        add_literal_row(
            table,
            score.tenant,
            score.campaign,
            score.scale,
            score.week or "all",
            str(score.responses),
            str(score.counted),
            shown,
            "-" if score.average is None else f"{score.average:.1f}",
            str(recoveries.get((score.tenant, score.campaign), 0)) if score.week is None else "",
        )
    console.print(table)
    console.print(
        f"{tally.replies} SMS replies and {tally.clicks} link clicks from customers; answers after the window or "
        "a second answer to the same message are stored but not counted.",
        highlight=False,
    )
    figures["surveys"] = {
        f"{s.tenant}/{s.campaign}": {"scale": s.scale, "counted": s.counted, "responses": s.responses, "score": s.score}
        for s in scores
    }

    console.rule("[bold]Conversions and revenue against the holdout")
    table = Table(
        "tenant",
        "campaign",
        "treated (reached)",
        "converted",
        "revenue",
        "held out",
        "converted",
        "revenue",
        "lift",
        "added revenue",
    )
    lifts = lift_report(session)
    for row in lifts:
        r, h = row.treated, row.holdout
        lift = "-" if row.lift is None else f"{row.lift:+.0%}"
        add_literal_row(
            table,
            row.tenant,
            row.campaign,
            f"{r.contacts} ({row.reached})",
            f"{r.converted} ({_rate(r.rate)})",
            _money(r.revenue, row.currency),
            str(h.contacts),
            f"{h.converted} ({_rate(h.rate)})",
            _money(h.revenue, row.currency),
            lift,
            _money(row.incremental_revenue, row.currency),
        )
    console.print(table)
    console.print(
        "An order within the campaign's window after the enrollment counts, for the treated and the held-out "
        "alike (credited to the latest message sent before it, if any): both groups are measured the same way.",
        highlight=False,
    )
    figures["conversions"] = {
        f"{row.tenant}/{row.campaign}": {
            "treated": row.treated.contacts,
            "reached": row.reached,
            "converted": row.treated.converted,
            "revenue": row.treated.revenue,
            "holdout": row.holdout.contacts,
            "holdout_converted": row.holdout.converted,
            "holdout_revenue": row.holdout.revenue,
            "lift": row.lift,
        }
        for row in lifts
    }

    variants = variant_results(session)
    if variants:
        console.rule("[bold]A/B variants")
        table = Table("tenant", "campaign", "step", "variant", "sent", "converted", "rate", "revenue")
        for v in variants:
            currency = "KRW" if v.tenant.startswith("seoul") else "USD"
            add_literal_row(
                table,
                v.tenant,
                v.campaign,
                v.step,
                v.variant,
                str(v.sent),
                str(v.converted),
                _rate(v.rate),
                _money(v.revenue, currency),
            )
        console.print(table)
    figures["variants"] = {f"{v.tenant}/{v.campaign}/{v.step}/{v.variant}": v.sent for v in variants}

    fallbacks = session.scalar(
        select(func.count()).select_from(MessageTransition).where(MessageTransition.rule == Rule.FALLBACK)
    )
    leads = session.execute(select(Enrollment.end_reason).where(Enrollment.campaign == "lead_followup")).scalars().all()
    lead_tasks = session.scalar(
        select(func.count()).select_from(CallbackTask).where(CallbackTask.campaign == "lead_followup")
    )
    by_agent = sum(1 for reason in leads if reason and reason.startswith("agent"))
    by_order = sum(1 for reason in leads if reason and reason.startswith("exit: order_placed"))
    console.rule("[bold]Notifications with fallback, and leads")
    console.print(
        f"shipping_delay: {fallbacks} SMS could not be delivered to the number (none, invalid or landline) and went "
        f"by email instead.\nlead_followup: {len(leads)} leads, {lead_tasks} immediate callback tasks, "
        f"{tally.agent_calls} calls by agents; nurture ended by an agent's outcome for {by_agent} and by an "
        f"order for {by_order}.",
        highlight=False,
    )
    figures["fallbacks"] = fallbacks
    figures["leads"] = {
        "leads": len(leads),
        "callbacks": lead_tasks,
        "ended_by_agent": by_agent,
        "ended_by_order": by_order,
    }
    return figures
