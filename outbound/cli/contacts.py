"""Contact commands: import contacts with their consents."""

from __future__ import annotations

import typer

from outbound.cli.common import DbOption, TenantOption, console, friendly_errors, runtime_for
from outbound.cli.data import FileArg, print_errors
from outbound.db.session import transaction

app = typer.Typer(no_args_is_help=True, help="Contacts and their consents.")


@app.command("import")
def contacts_import(file: FileArg, tenant: TenantOption = None, db: DbOption = None) -> None:
    """Import contacts (JSONL or CSV) with their consents; bad lines are reported, the rest imported."""
    from outbound.contacts import import_contacts
    from outbound.tenants import get_tenant

    with friendly_errors(), runtime_for(db) as runtime, transaction(runtime.factory) as session:
        report = import_contacts(session, get_tenant(session, tenant), file, runtime.clock)
    console.print(f"contacts: {report.created} created, {report.updated} updated, {len(report.errors)} lines refused")
    print_errors(report.errors)
    if report.errors:
        raise typer.Exit(2)
