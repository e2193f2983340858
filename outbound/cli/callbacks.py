"""Callback commands: the tasks agents work, and the agents' accounts."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select

from outbound.cli.common import (
    AllTenantsOption,
    DbOption,
    TenantOption,
    console,
    database,
    friendly_errors,
    tenant_scope,
)
from outbound.db.models import Agent, CallbackAttempt, CallbackTask, Contact, Tenant
from outbound.reporting.spreadsheets import SpreadsheetWriter

app = typer.Typer(no_args_is_help=True, help="Callback tasks for agents.")
agents_app = typer.Typer(no_args_is_help=True, help="Agent and supervisor accounts for the callback pages.")

EXPORT_COLUMNS = (
    "id",
    "tenant",
    "campaign",
    "contact",
    "phone",
    "reason",
    "priority",
    "status",
    "due_at",
    "created_at",
    "closed_at",
    "attempts",
    "outcome",
    "agent",
    "notes",
)


@app.command("list")
def callbacks_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    tenant: TenantOption = None,
    all_tenants: AllTenantsOption = False,
    db: DbOption = None,
) -> None:
    """List a tenant's callback tasks, most urgent first."""
    with friendly_errors(), database(db) as factory, factory() as session:
        scope = tenant_scope(session, tenant, all_tenants)
        query = (
            select(CallbackTask, Tenant.slug, Contact.external_id, Contact.phone)
            .join(Tenant, Tenant.id == CallbackTask.tenant_id)
            .join(Contact, Contact.id == CallbackTask.contact_id)
            .order_by(CallbackTask.status, CallbackTask.priority.desc(), CallbackTask.due_at)
        )
        if scope is not None:
            query = query.where(CallbackTask.tenant_id == scope.id)
        rows = session.execute(query).all()
        if as_json:
            for task, slug, external_id, phone in rows:
                print(
                    json.dumps(
                        {
                            "id": task.id,
                            "tenant": slug,
                            "campaign": task.campaign,
                            "contact": external_id,
                            "phone": phone,
                            "reason": task.reason,
                            "priority": task.priority,
                            "status": task.status,
                            "due_at": task.due_at.isoformat(),
                            "outcome": task.outcome,
                        },
                        ensure_ascii=False,
                    )
                )
            return
        table = Table("id", "tenant", "campaign", "contact", "phone", "priority", "status", "due", "reason")
        for task, slug, external_id, phone in rows:
            table.add_row(
                str(task.id),
                *map(escape, (slug, task.campaign, external_id, phone or "")),
                str(task.priority),
                escape(task.status),
                f"{task.due_at:%Y-%m-%d %H:%M}Z",
                escape(task.reason),
            )
        console.print(table)


@app.command("export")
def callbacks_export(
    out: Annotated[Path | None, typer.Option("--out", help="CSV file to write (default: standard output)")] = None,
    tenant: TenantOption = None,
    all_tenants: AllTenantsOption = False,
    db: DbOption = None,
) -> None:
    """Export a tenant's callback tasks as CSV, one row per task with its latest outcome; a cell a spreadsheet would run
    as a formula (`=`, `+`, `-`, `@`) starts with a `'`."""
    with friendly_errors(), database(db) as factory, factory() as session:
        scope = tenant_scope(session, tenant, all_tenants)
        # The agent holding the task now, else the one who made its last call.
        last_caller = (
            select(Agent.username)
            .join(CallbackAttempt, CallbackAttempt.agent_id == Agent.id)
            .where(CallbackAttempt.task_id == CallbackTask.id)
            .order_by(CallbackAttempt.id.desc())
            .limit(1)
            .correlate(CallbackTask)
            .scalar_subquery()
        )
        holder = (
            select(Agent.username).where(Agent.id == CallbackTask.claimed_by).correlate(CallbackTask).scalar_subquery()
        )
        query = (
            select(CallbackTask, Tenant.slug, Contact.external_id, Contact.phone, func.coalesce(holder, last_caller))
            .join(Tenant, Tenant.id == CallbackTask.tenant_id)
            .join(Contact, Contact.id == CallbackTask.contact_id)
            .order_by(CallbackTask.id)
        )
        if scope is not None:
            query = query.where(CallbackTask.tenant_id == scope.id)
        handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
        try:
            writer = SpreadsheetWriter(handle)
            writer.writerow(EXPORT_COLUMNS)
            count = 0
            for task, slug, external_id, phone, username in session.execute(query):
                writer.writerow(
                    [
                        task.id,
                        slug,
                        task.campaign,
                        external_id,
                        phone,
                        task.reason,
                        task.priority,
                        task.status,
                        _iso(task.due_at),
                        _iso(task.created_at),
                        _iso(task.closed_at),
                        task.attempts,
                        task.outcome,
                        username,
                        task.notes,
                    ]
                )
                count += 1
        finally:
            if out:
                handle.close()
    if out:
        console.print(f"wrote {count} callback tasks to {out}", markup=False)


@agents_app.command("create")
def agents_create(
    username: str,
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant slug")],
    name: Annotated[str, typer.Option("--name", help="Display name")],
    supervisor: Annotated[bool, typer.Option("--supervisor", help="May see the supervisor page")] = False,
    password: Annotated[str | None, typer.Option("--password", help="Password (prompted when not given)")] = None,
    db: DbOption = None,
) -> None:
    """Create an agent account (or a supervisor's) for a tenant's callback pages."""
    from outbound.clock import SystemClock
    from outbound.db.session import transaction
    from outbound.tenancy.agents import create_agent
    from outbound.tenancy.tenants import get_tenant

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with friendly_errors(), database(db) as factory, transaction(factory) as session:
        agent = create_agent(
            session,
            get_tenant(session, tenant),
            username,
            name=name,
            password=password,
            role="supervisor" if supervisor else "agent",
            clock=SystemClock(),
        )
        console.print(f"created {agent.role} {agent.username} in tenant {tenant}", markup=False)


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""
