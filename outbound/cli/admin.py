"""Operator commands: schema, tenants, API keys."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from outbound.cli.common import DbOption, console, database, friendly_errors, settings_for

db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
tenants_app = typer.Typer(no_args_is_help=True, help="Tenants (brands).")
keys_app = typer.Typer(no_args_is_help=True, help="API keys for order systems.")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or migrate the schema."""
    from outbound.db.session import upgrade

    settings = settings_for(db)
    upgrade(settings.database_url)
    console.print(f"schema is up to date: {settings.database_url}", markup=False)


@tenants_app.command("create")
def tenants_create(
    slug: str,
    jurisdiction: Annotated[str, typer.Option(help="US, KR, EU or default")],
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Asia/Seoul")],
    locale: Annotated[str, typer.Option(help="Default locale, e.g. ko or en")],
    name: Annotated[str | None, typer.Option(help="Display name")] = None,
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Sender setting KEY=VALUE (sender_name, support_contact, postal_address, optout_number, sms_from, email_from)",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a tenant."""
    from outbound.clock import SystemClock
    from outbound.db.session import transaction
    from outbound.tenancy.tenants import create_tenant

    settings = dict(item.split("=", 1) for item in (setting or []) if "=" in item)
    with friendly_errors(), database(db) as factory, transaction(factory) as session:
        tenant = create_tenant(
            session,
            SystemClock(),
            slug,
            jurisdiction=jurisdiction,
            timezone=timezone,
            locale=locale,
            name=name,
            settings=settings,
        )
        console.print(
            f"created tenant {tenant.slug} ({tenant.jurisdiction}, {tenant.timezone}, {tenant.locale})", markup=False
        )


@tenants_app.command("list")
def tenants_list(db: DbOption = None) -> None:
    """List tenants."""
    from sqlalchemy import select

    from outbound.db.models import Tenant

    with database(db) as factory, factory() as session:
        table = Table("slug", "name", "jurisdiction", "timezone", "locale")
        for tenant in session.scalars(select(Tenant).order_by(Tenant.slug)):
            table.add_row(*map(escape, (tenant.slug, tenant.name, tenant.jurisdiction, tenant.timezone, tenant.locale)))
    console.print(table)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    role: Annotated[str, typer.Option(help="ingest or admin")] = "ingest",
    db: DbOption = None,
) -> None:
    """Create an API key and print it once."""
    from outbound.clock import SystemClock
    from outbound.db.session import transaction
    from outbound.tenancy.keys import create_api_key
    from outbound.tenancy.tenants import get_tenant

    with friendly_errors(), database(db) as factory, transaction(factory) as session:
        key = create_api_key(session, get_tenant(session, tenant), role=role, clock=SystemClock())
    print(key)


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(keys_app, name="keys")
