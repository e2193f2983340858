"""Callback commands: the tasks agents work."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from outbound.cli.common import DbOption, TenantOption, console, database, friendly_errors
from outbound.db.models import CallbackTask, Contact, Tenant

app = typer.Typer(no_args_is_help=True, help="Callback tasks for agents.")


@app.command("list")
def callbacks_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    tenant: TenantOption = None,
    db: DbOption = None,
) -> None:
    """List callback tasks, most urgent first."""
    with friendly_errors(), database(db) as factory, factory() as session:
        query = (select(CallbackTask, Tenant.slug, Contact.external_id, Contact.phone)
                 .join(Tenant, Tenant.id == CallbackTask.tenant_id).join(Contact, Contact.id == CallbackTask.contact_id)
                 .order_by(CallbackTask.status, CallbackTask.priority.desc(), CallbackTask.due_at))
        if tenant:
            query = query.where(Tenant.slug == tenant)
        rows = session.execute(query).all()
        if as_json:
            for task, slug, external_id, phone in rows:
                print(json.dumps({"id": task.id, "tenant": slug, "campaign": task.campaign, "contact": external_id,
                                  "phone": phone, "reason": task.reason, "priority": task.priority, "status": task.status,
                                  "due_at": task.due_at.isoformat(), "outcome": task.outcome}, ensure_ascii=False))
            return
        table = Table("id", "tenant", "campaign", "contact", "phone", "priority", "status", "due", "reason")
        for task, slug, external_id, phone in rows:
            table.add_row(str(task.id), slug, task.campaign, external_id, phone or "", str(task.priority), task.status,
                          f"{task.due_at:%Y-%m-%d %H:%M}Z", task.reason)
        console.print(table)
