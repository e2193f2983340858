"""What every command shares: the --db and --tenant options, the tenant a command works on, opening the engine,
printing errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from outbound.errors import OutboundError

if TYPE_CHECKING:  # for annotations only: the functions below import these when they are called
    from sqlalchemy.orm import Session, sessionmaker

    from outbound.bootstrap import Runtime
    from outbound.config import Settings
    from outbound.db.models import Tenant

console = Console()
err_console = Console(stderr=True)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $OUTBOUND_DATABASE_URL, else sqlite:///outbound.db)."),
]
TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="Tenant slug (optional when only one tenant exists).")
]
AllTenantsOption = Annotated[
    bool, typer.Option("--all-tenants", help="Every tenant's rows, each naming its tenant (instead of --tenant).")
]


def settings_for(db: str | None) -> Settings:
    """Settings from the environment, with --db taking precedence."""
    from outbound.config import Settings

    settings = Settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})
    return settings


@contextmanager
def runtime_for(db: str | None, **kwargs: Any) -> Iterator[Runtime]:
    """The wired engine for one command; closed when the command ends."""
    from outbound.bootstrap import build

    runtime = build(settings_for(db), **kwargs)
    try:
        yield runtime
    finally:
        runtime.close()


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print an outbound error as one clear line and exit 1, instead of a traceback."""
    try:
        yield
    except OutboundError as error:
        # Never wrapped: one line, whatever the terminal's width, for the eye and for grep.
        err_console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(1)


def tenant_scope(session: Session, slug: str | None, all_tenants: bool) -> Tenant | None:
    """The tenant whose rows a listing shows: the one named, else the only one (`get_tenant`); None when the
    operator asks for every tenant's. Several tenants and neither option is an error, never a mix."""
    from outbound.errors import InvalidInput
    from outbound.tenancy.tenants import get_tenant

    if all_tenants:
        if slug:
            raise InvalidInput("give --tenant SLUG or --all-tenants, not both")
        return None
    return get_tenant(session, slug)


@contextmanager
def database(db: str | None) -> Iterator[sessionmaker[Session]]:
    """A session factory for commands that only read or write rows (no definitions, no providers)."""
    from outbound.db.session import make_engine, session_factory

    engine = make_engine(settings_for(db).database_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()
