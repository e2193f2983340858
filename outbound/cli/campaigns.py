"""The marketer's commands: check, list, preview and dry-run campaigns; pause and resume them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from outbound.cli.common import DbOption, TenantOption, console, err_console, friendly_errors, settings_for

if TYPE_CHECKING:  # for annotations only: the commands import it when they run
    from outbound.definitions import Definitions

app = typer.Typer(no_args_is_help=True, help="Campaign, trigger and template definitions.")

DefinitionsOption = Annotated[
    Path | None,
    typer.Option(
        "--definitions", help="Folder with campaigns/, triggers/, templates/ (default: $OUTBOUND_DEFINITIONS or .)"
    ),
]


def _root(definitions: Path | None) -> Path:
    return definitions or settings_for(None).definitions


@app.command("validate")
def validate(definitions: DefinitionsOption = None) -> None:
    """Check every definition file; print each error with file, line and field; exit 1 if any."""
    from outbound.definitions import DefinitionErrors, load_definitions

    root = _root(definitions)
    try:
        loaded = load_definitions(root)
    except DefinitionErrors as errors:
        for error in errors.errors:
            err_console.print(f"[red]{escape(str(error))}[/red]", highlight=False)
        err_console.print(f"{len(errors.errors)} error(s) in {root}", markup=False)
        raise typer.Exit(1) from None
    console.print(f"ok: {len(loaded.campaigns)} campaigns, {len(loaded.triggers)} triggers in {root}", markup=False)


@app.command("list")
def list_campaigns(definitions: DefinitionsOption = None, db: DbOption = None) -> None:
    """The campaigns defined, with their kind, purpose, steps, triggers or schedule, and state per tenant."""
    from outbound.definitions import load_definitions

    loaded = load_definitions(_root(definitions))
    states = _states(loaded, db)
    table = Table("campaign", "kind", "purpose", "steps", "triggered by", "tenants", "state")
    for name, campaign in sorted(loaded.campaigns.items()):
        steps = ", ".join(
            f"{s.channel}+{_duration(s.delay)}"
            + (f" (A/B {len(s.variants)})" if s.variants else "")
            + (f" ⇢{s.fallback}" if s.fallback else "")
            for s in campaign.steps
        )
        triggers = ", ".join(t.on for t in loaded.triggers if t.campaign == name)
        if campaign.schedule is not None:
            triggers = ", ".join(filter(None, (triggers, f"cron {campaign.schedule.cron}")))
        state = ", ".join(f"{slug}: {by_name[name]}" for slug, by_name in states.items() if name in by_name)
        table.add_row(
            *map(
                escape,
                (
                    name,
                    campaign.kind,
                    campaign.purpose,
                    steps,
                    triggers,
                    ", ".join(campaign.tenants) or "all",
                    state or campaign.state,
                ),
            )
        )
    console.print(table)


def _states(loaded: Definitions, db: str | None) -> dict[str, dict[str, str]]:
    # With no database yet (a marketer checking files), the list shows each file's own state.
    from sqlalchemy import make_url, select
    from sqlalchemy.exc import SQLAlchemyError

    from outbound.cli.common import database
    from outbound.clock import SystemClock
    from outbound.db.models import Tenant
    from outbound.enrollment.campaign_state import campaign_states

    url = make_url(settings_for(db).database_url)
    if (
        url.get_backend_name() == "sqlite"
        and url.database not in (None, "", ":memory:")
        and not Path(url.database).exists()
    ):
        return {}  # reading never creates an empty database file
    try:
        with database(db) as factory, factory() as session:
            now = SystemClock().now()
            return {
                tenant.slug: campaign_states(session, tenant.id, loaded.campaigns_for_tenant(tenant.slug), now)
                for tenant in session.scalars(select(Tenant).order_by(Tenant.slug))
            }
    except SQLAlchemyError:
        return {}


@app.command("pause")
def pause(
    campaign: Annotated[str, typer.Argument(help="Campaign name")],
    tenant: TenantOption = None,
    definitions: DefinitionsOption = None,
    db: DbOption = None,
) -> None:
    """Pause a campaign for a tenant: no new enrollments, and its due messages wait until it is resumed."""
    _set_state(campaign, tenant, definitions, db, pausing=True)


@app.command("resume")
def resume(
    campaign: Annotated[str, typer.Argument(help="Campaign name")],
    tenant: TenantOption = None,
    definitions: DefinitionsOption = None,
    db: DbOption = None,
) -> None:
    """Resume a paused campaign for a tenant; messages that waited become due at once."""
    _set_state(campaign, tenant, definitions, db, pausing=False)


def _set_state(name: str, slug: str | None, definitions: Path | None, db: str | None, *, pausing: bool) -> None:
    from outbound.cli.common import database
    from outbound.clock import SystemClock
    from outbound.db.session import transaction
    from outbound.definitions import load_definitions
    from outbound.enrollment import campaign_state
    from outbound.errors import NotFound
    from outbound.tenancy.tenants import get_tenant

    with friendly_errors():
        loaded = load_definitions(_root(definitions))
        if name not in loaded.campaigns:
            raise NotFound(f"no campaign {name!r} (see `outbound campaigns list`)")
        with database(db) as factory, transaction(factory) as session:
            tenant = get_tenant(session, slug)
            campaign = loaded.campaign_for(name, tenant.slug)
            change = campaign_state.pause if pausing else campaign_state.resume
            state = change(session, tenant.id, campaign, SystemClock())
        console.print(f"{name} is {state} for {tenant.slug}", markup=False)


@app.command("preview")
def preview(
    campaign: Annotated[str, typer.Argument(help="Campaign name")],
    contact: Annotated[str, typer.Option("--contact", help="The contact's external id")],
    tenant: TenantOption = None,
    event_data: Annotated[
        str | None,
        typer.Option(
            "--event-data", help="JSON object to use as event.data (default: the contact's latest triggering event)"
        ),
    ] = None,
    definitions: DefinitionsOption = None,
    db: DbOption = None,
) -> None:
    """Each step rendered per channel and locale for one contact, with SMS encoding, segments and cost."""
    from outbound.authoring.preview import preview_campaign
    from outbound.cli.common import database
    from outbound.definitions import load_definitions
    from outbound.errors import InvalidInput
    from outbound.tenancy.tenants import get_tenant

    with friendly_errors():
        data = None
        if event_data is not None:
            try:
                data = json.loads(event_data)
            except ValueError as error:
                raise InvalidInput(f"not JSON: {error}", field="--event-data") from None
            if not isinstance(data, dict):
                raise InvalidInput("give a JSON object", field="--event-data")
        settings = settings_for(db)
        loaded = load_definitions(_root(definitions))
        with database(db) as factory, factory() as session:
            result = preview_campaign(session, loaded, settings, get_tenant(session, tenant), campaign, contact, data)
    console.print(
        f"[bold]{escape(result.campaign)}[/bold] "
        + escape(
            f"for {result.contact} ({result.tenant}); "
            f"event: {result.event or 'none (names from --event-data or empty)'}; ★ = the locale this contact gets"
        ),
        highlight=False,
    )
    for version in result.versions:
        title = (
            f"{version.step} (+{_duration(version.delay)})"
            + (f" variant {version.variant}" if version.variant else "")
            + f" / {version.channel}{' (fallback)' if version.fallback else ''} / {version.locale}"
            + (" ★" if version.chosen else "")
            + ("" if version.applies else " — step does not apply to this contact")
        )
        title = escape(title)
        if version.error:
            console.print(
                Panel(f"[red]{escape(version.error)}[/red]", title=title, title_align="left", expand=False),
                highlight=False,
            )
            continue
        if version.sms is not None:
            title += escape(
                f" — {version.sms.encoding}, {version.sms.characters} chars, {version.sms.segments} segment(s), "
                f"cost {version.cost:.4f} {result.currency}"
            )
        body = (f"[bold]{escape(version.subject)}[/bold]\n\n" if version.subject else "") + escape(version.text or "")
        body += "".join(f"\n[red]would be blocked: {escape(problem)}[/red]" for problem in version.problems)
        console.print(Panel(body, title=title, title_align="left", expand=False), highlight=False)


@app.command("dry-run")
def dry_run(
    campaign: Annotated[str, typer.Argument(help="Campaign name")],
    events: Annotated[Path, typer.Option("--events", help="JSONL file of event envelopes (recorded traffic)")],
    tenant: TenantOption = None,
    until: Annotated[
        str | None, typer.Option(help="Run the clock to this ISO time (default: a day after the last step)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message")] = False,
    definitions: DefinitionsOption = None,
    db: DbOption = None,
) -> None:
    """Who would get what and when, and what the rules would defer or block, without sending or keeping anything."""
    from outbound.authoring.dryrun import dry_run as run
    from outbound.cli.running import _parse_time
    from outbound.db.session import make_engine
    from outbound.definitions import load_definitions

    with friendly_errors():
        settings = settings_for(db)
        loaded = load_definitions(_root(definitions))
        engine = make_engine(settings.database_url)
        try:
            report = run(
                engine,
                settings,
                loaded,
                campaign,
                events,
                tenant_slug=tenant,
                until=_parse_time(until) if until else None,
            )
        finally:
            engine.dispose()
    if as_json:
        for m in report.messages:
            typer.echo(
                json.dumps(
                    {
                        "contact": m.contact,
                        "step": m.step,
                        "variant": m.variant,
                        "channel": m.channel,
                        "outcome": m.outcome,
                        "at": m.at.isoformat(),
                        "rule": m.rule,
                        "reason": m.reason,
                        "waited": [list(w) for w in m.waited],
                        "subject": m.subject,
                        "body": m.body,
                    },
                    ensure_ascii=False,
                )
            )
        return
    console.print(
        f"dry run of [bold]{escape(report.campaign)}[/bold] "
        + escape(
            f"for {report.tenant}: {report.events} events from "
            f"{report.start:%Y-%m-%d %H:%M}Z to {report.end:%Y-%m-%d %H:%M}Z; {report.enrolled} enrolled "
            f"({report.held_out} held out); nothing was sent or kept"
        ),
        highlight=False,
    )
    for error in report.errors:
        err_console.print(f"[yellow]{escape(str(error))}[/yellow]", highlight=False)
    table = Table("contact", "step", "channel", "outcome", "at (UTC)", "rule", "reason")
    for m in report.messages:
        waited = "".join(f"\nwaited: {rule}" for rule, _ in m.waited)
        table.add_row(
            *map(
                escape,
                (
                    m.contact,
                    m.step + (f" [{m.variant}]" if m.variant else ""),
                    m.channel,
                    m.outcome + waited,
                    f"{m.at:%Y-%m-%d %H:%M}",
                    m.rule or "",
                    m.reason or "",
                ),
            )
        )
    console.print(table)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
