"""Event and message commands: importing events, listing messages, explaining one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from outbound.cli.common import (
    AllTenantsOption,
    DbOption,
    TenantOption,
    console,
    database,
    err_console,
    friendly_errors,
    runtime_for,
    tenant_scope,
)
from outbound.db.models import Contact, Message, MessageTransition, Tenant
from outbound.db.session import transaction

events_app = typer.Typer(no_args_is_help=True, help="Order-system events.")
messages_app = typer.Typer(no_args_is_help=True, help="Messages and their states.")

FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


def print_errors(errors: list[str]) -> None:
    """An import's refused lines (at most 50 of them), each as it was reported: never read as markup."""
    for error in errors[:50]:
        err_console.print(f"  [yellow]{escape(error)}[/yellow]", highlight=False)
    if len(errors) > 50:
        err_console.print(f"  … and {len(errors) - 50} more")


@events_app.command("import")
def events_import(file: FileArg, tenant: TenantOption = None, db: DbOption = None) -> None:
    """Import a JSONL file of event envelopes; triggers run as each event is stored."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from outbound.ingest.events import import_events
    from outbound.tenancy.tenants import get_tenant

    # On stderr, and gone when done: stdout keeps only the summary.
    progress = Progress(
        TextColumn("importing events"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    with friendly_errors(), progress, runtime_for(db) as runtime, transaction(runtime.factory) as session:
        task = progress.add_task("events", total=file.stat().st_size)
        report = import_events(
            session,
            get_tenant(session, tenant),
            file,
            runtime.clock,
            on_event=runtime.on_event,
            progress=lambda done: progress.update(task, completed=done),
        )
    console.print(f"events: {report.stored} stored, {report.duplicates} duplicates, {len(report.errors)} lines refused")
    print_errors([str(e) for e in report.errors])
    if report.errors:
        raise typer.Exit(2)


def message_record(message: Message, tenant: str, contact: str) -> dict[str, Any]:
    """The stable JSON shape of a message (DESIGN.md contract)."""
    return {
        "id": message.id,
        "tenant": tenant,
        "campaign": message.campaign,
        "step": message.step,
        "contact": contact,
        "channel": message.channel,
        "purpose": message.purpose,
        "to": message.to_address,
        "status": message.status,
        "due_at": message.due_at.isoformat() if message.due_at else None,
        "sent_at": message.sent_at.isoformat() if message.sent_at else None,
        "rule": message.rule,
        "reason": message.reason,
        "subject": message.subject,
        "body": message.body,
        "locale": message.locale,
        "provider": message.provider,
        "provider_id": message.provider_id,
        "sender": message.sender,
        "error_code": message.error_code,
        "attempts": message.attempts,
    }


@messages_app.command("list")
def messages_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status")] = None,
    tenant: TenantOption = None,
    all_tenants: AllTenantsOption = False,
    limit: Annotated[int, typer.Option(help="At most this many (0: all)", min=0)] = 0,
    db: DbOption = None,
) -> None:
    """List a tenant's messages, oldest due first."""
    from outbound.errors import InvalidInput, NotFound
    from outbound.vocabulary import MessageStatus

    with friendly_errors(), database(db) as factory, factory() as session:
        scope = tenant_scope(session, tenant, all_tenants)
        if status is not None and status not in set(MessageStatus):
            known = ", ".join(MessageStatus)
            raise InvalidInput(f"unknown status {status!r} (one of {known})", field="--status")
        if campaign and not _known_campaign(session, scope, campaign, db):
            raise NotFound(f"no campaign {campaign!r} (see `outbound campaigns list`)")
        query = (
            select(Message, Tenant.slug, Contact.external_id)
            .join(Tenant, Tenant.id == Message.tenant_id)
            .join(Contact, Contact.id == Message.contact_id)
            .order_by(Message.due_at, Message.id)
        )
        if scope is not None:
            query = query.where(Message.tenant_id == scope.id)
        if campaign:
            query = query.where(Message.campaign == campaign)
        if status:
            query = query.where(Message.status == status)
        if limit:
            query = query.limit(limit)
        rows = session.execute(query)
        if as_json:
            for message, slug, external_id in rows:
                print(json.dumps(message_record(message, slug, external_id), ensure_ascii=False))
            return
        table = Table("id", "tenant", "campaign", "step", "contact", "channel", "status", "due", "reason")
        for message, slug, external_id in rows:
            table.add_row(
                str(message.id),
                *map(escape, (slug, message.campaign, message.step, external_id, message.channel, message.status)),
                f"{message.due_at:%Y-%m-%d %H:%M}Z",
                escape((message.reason or "")[:60]),
            )
        console.print(table)


def _known_campaign(session: Session, scope: Tenant | None, name: str, db: str | None) -> bool:
    """Whether `name` is a campaign of the definitions or has messages (a campaign since removed still has them)."""
    from outbound.cli.common import settings_for
    from outbound.definitions import DefinitionErrors, load_definitions

    sent = select(Message.id).where(Message.campaign == name).limit(1)
    if scope is not None:
        sent = sent.where(Message.tenant_id == scope.id)
    if session.scalar(sent) is not None:
        return True
    try:
        loaded = load_definitions(settings_for(db).definitions)
    except DefinitionErrors:
        return False
    serving = loaded.campaigns.values() if scope is None else loaded.campaigns_for_tenant(scope.slug)
    return any(campaign.name == name for campaign in serving)


def explain(message_id: Annotated[int, typer.Argument(help="Message id")], db: DbOption = None) -> None:
    """The decision trail of one message: every transition, its rule and reason."""
    from outbound.errors import NotFound

    with friendly_errors(), database(db) as factory, factory() as session:
        # An id past a 64-bit integer names no row (and the database driver would refuse to bind it).
        message = session.get(Message, message_id) if 0 < message_id < 2**63 else None
        if message is None:
            raise NotFound(f"no message {message_id}")
        tenant = session.get_one(Tenant, message.tenant_id)
        contact = session.get_one(Contact, message.contact_id)
        console.print(
            f"[bold]message {message.id}[/bold]  "
            + escape(
                f"{tenant.slug} / {message.campaign} / {message.step}  "
                f"{message.channel} {message.purpose} to {contact.external_id} ({message.to_address or '-'})"
            )
        )
        console.print(
            f"status [bold]{escape(message.status)}[/bold]"
            + escape(f" — {message.rule}: {message.reason}" if message.reason else ""),
            highlight=False,
        )
        if message.provider_id or message.provider:
            console.print(
                f"provider {message.provider or '-'} id {message.provider_id or '-'}  from {message.sender or '-'}  "
                f"attempts {message.attempts}" + (f"  error code {message.error_code}" if message.error_code else ""),
                highlight=False,
                markup=False,
            )
        table = Table("at (UTC)", "from", "to", "by", "rule", "reason")
        for step in session.scalars(
            select(MessageTransition).where(MessageTransition.message_id == message.id).order_by(MessageTransition.id)
        ):
            table.add_row(
                f"{step.at:%Y-%m-%d %H:%M:%S}",
                *map(escape, (step.from_status or "", step.to_status, step.source, step.rule or "", step.reason or "")),
            )
        console.print(table)
        _print_delivery_events(session, message)
        if message.body:
            console.print(
                f"[dim]{escape(message.subject + chr(10) if message.subject else '')}{escape(message.body)}[/dim]",
                highlight=False,
            )


def _print_delivery_events(session: Session, message: Message) -> None:
    """What the provider reported about the message (status callbacks, bounces, opens), in arrival order."""
    from outbound.db.models import DeliveryEvent

    events = list(
        session.scalars(
            select(DeliveryEvent)
            .where(DeliveryEvent.tenant_id == message.tenant_id, DeliveryEvent.message_id == message.id)
            .order_by(DeliveryEvent.id)
        )
    )
    if not events:
        return
    # One line per event, so provider ids stay whole on narrow terminals.
    console.print("[bold]delivery events[/bold]")
    for event in events:
        detail = event.detail or {}
        extra = ", ".join(
            f"{k}={v}"
            for k, v in detail.items()
            if v is not None and k not in ("error_code", "provider_message_id", "status")
        )
        console.print(
            f"  {event.received_at:%Y-%m-%d %H:%M:%S}  {event.provider} {event.type}  {event.provider_event_id}"
            + (f"  code {detail['error_code']}" if detail.get("error_code") else "")
            + (f"  {extra[:120]}" if extra else ""),
            highlight=False,
            markup=False,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
    app.add_typer(messages_app, name="messages")
    app.command("explain")(explain)
