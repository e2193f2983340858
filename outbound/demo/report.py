"""The demo's printed report: what was sent, deferred, blocked and cancelled per campaign, and why."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbound.db.models import Event, Tenant
from outbound.providers.outbox import Outbox
from outbound.rendering.templates import sms_segments
from outbound.reporting.campaigns import callback_counts, campaign_results, decisions_by_rule, sample_messages
from outbound.vocabulary import Channel, EnrollmentStatus, MessageStatus

S = MessageStatus

OUTCOME_STYLE: dict[str, str] = {S.DEFERRED: "yellow", S.BLOCKED: "red", S.CANCELLED: "magenta", S.FAILED: "red"}


def add_literal_row(table: Table, *cells: str) -> None:
    """Add a row of values read from the database: shown as they are, never read as Rich markup."""
    table.add_row(*map(escape, cells))


def print_report(
    session: Session, console: Console, *, outbox: Outbox, ingest_errors: list[str], duplicates: int
) -> dict[str, Any]:
    """Print the report and return its main figures."""
    events = session.execute(
        select(Tenant.slug, func.count(Event.id))
        .select_from(Event)
        .join(Tenant, Tenant.id == Event.tenant_id)
        .group_by(Tenant.slug)
    ).all()
    console.print()
    console.rule("[bold]Events in")
    console.print(
        ", ".join(f"{slug}: {count} stored" for slug, count in events)
        + f"; {duplicates} duplicate id(s) stored once; {len(ingest_errors)} refused with a reason:",
        highlight=False,
        markup=False,
    )
    for error in ingest_errors:
        console.print(f"  [yellow]{escape(error)}[/yellow]", highlight=False)

    results = campaign_results(session)
    console.rule("[bold]Campaigns")
    table = Table(
        "tenant", "campaign", "messages", "sent", "waited (deferred)", "blocked", "cancelled", "failed", "still due"
    )
    totals: Counter[str] = Counter()
    for result in results:
        s = result.statuses
        sent = s[S.SENT] + s[S.DELIVERED]
        pending = s[S.SCHEDULED] + s[S.DEFERRED] + s[S.SENDING]
        table.add_row(
            escape(result.tenant),
            escape(result.campaign),
            str(result.total),
            f"[green]{sent}[/green]",
            str(result.deferred_ever),
            str(s[S.BLOCKED]),
            str(s[S.CANCELLED]),
            str(s[S.FAILED]),
            str(pending),
        )
        totals.update(
            sent=sent,
            deferred=result.deferred_ever,
            blocked=s[S.BLOCKED],
            cancelled=s[S.CANCELLED],
            failed=s[S.FAILED],
            pending=pending,
            messages=result.total,
        )
    table.add_row(
        "[bold]all",
        "",
        str(totals["messages"]),
        f"[bold green]{totals['sent']}",
        str(totals["deferred"]),
        str(totals["blocked"]),
        str(totals["cancelled"]),
        str(totals["failed"]),
        str(totals["pending"]),
    )
    console.print(table)

    console.rule("[bold]Enrollments")
    enrollments: Counter = Counter()
    for result in results:
        enrollments.update(result.enrollments)
    console.print(
        f"{enrollments.total()} enrollments: {enrollments[EnrollmentStatus.COMPLETED]} completed (every step done, held out, "
        f"or no step applied), {enrollments[EnrollmentStatus.EXITED]} exited (an exit event, or an agent's outcome), "
        f"{enrollments[EnrollmentStatus.ACTIVE]} still active (a step still to come)",
        highlight=False,
    )

    console.rule("[bold]Why messages waited or were stopped, by rule")
    why = Table("tenant", "outcome", "rule", "messages", "campaigns", "for example (as recorded)")
    by_rule: Counter[tuple[str, str]] = Counter()
    for slug, outcome, rule, count, campaigns, reason in decisions_by_rule(session):
        style = OUTCOME_STYLE.get(outcome, "")
        why.add_row(
            escape(slug),
            f"[{style}]{escape(outcome)}[/{style}]",
            *map(escape, (rule, str(count), ", ".join(campaigns), reason)),
        )
        by_rule[(outcome, rule)] += count
    console.print(why)

    callbacks = callback_counts(session)
    if callbacks:
        console.rule("[bold]Callback tasks for agents")
        console.print(
            ", ".join(f"{slug} / {campaign}: {count} open" for slug, campaign, count in callbacks),
            highlight=False,
            markup=False,
        )

    console.rule("[bold]Sample messages as sent (sandbox outbox)")
    for message, slug, external_id in sample_messages(session):
        info = ""
        if message.channel == Channel.SMS and message.body:
            sms = sms_segments(message.body)
            info = f" — {sms.encoding}, {sms.segments} segment(s)"
        title = escape(f"{slug} / {message.campaign} / {message.channel} / {message.locale} → {external_id}{info}")
        body = (f"[bold]{escape(message.subject)}[/bold]\n\n" if message.subject else "") + escape(message.body or "")
        console.print(Panel(body, title=title, title_align="left", expand=False), highlight=False)

    return {
        "totals": dict(totals),
        "enrollments": dict(enrollments),
        "by_rule": {f"{o}:{r}": n for (o, r), n in by_rule.items()},
        "ingest_errors": len(ingest_errors),
        "outbox": len(outbox.sent),
    }
