"""The marketer's commands: check definitions, list campaigns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from outbound.cli.common import console, err_console

app = typer.Typer(no_args_is_help=True, help="Campaign, trigger and template definitions.")

DefinitionsOption = Annotated[Optional[Path], typer.Option("--definitions", help="Folder with campaigns/, triggers/, templates/ (default: $OUTBOUND_DEFINITIONS or .)")]


def _root(definitions: Path | None) -> Path:
    from outbound.settings import Settings

    return definitions or Settings().definitions


@app.command("validate")
def validate(definitions: DefinitionsOption = None) -> None:
    """Check every definition file; print each error with file, line and field; exit 1 if any."""
    from outbound.definitions import DefinitionErrors, load_definitions

    root = _root(definitions)
    try:
        loaded = load_definitions(root)
    except DefinitionErrors as errors:
        for error in errors.errors:
            err_console.print(f"[red]{error}[/red]", highlight=False)
        err_console.print(f"{len(errors.errors)} error(s) in {root}")
        raise typer.Exit(1)
    console.print(f"ok: {len(loaded.campaigns)} campaigns, {len(loaded.triggers)} triggers in {root}")


@app.command("list")
def list_campaigns(definitions: DefinitionsOption = None) -> None:
    """The campaigns defined, with their kind, purpose, steps and triggers."""
    from outbound.definitions import load_definitions

    loaded = load_definitions(_root(definitions))
    table = Table("campaign", "kind", "purpose", "steps", "triggered by", "tenants")
    for name, campaign in sorted(loaded.campaigns.items()):
        steps = ", ".join(f"{s.channel}+{_duration(s.delay)}" for s in campaign.steps)
        triggers = ", ".join(t.on for t in loaded.triggers if t.campaign == name)
        table.add_row(name, campaign.kind, campaign.purpose, steps, triggers, ", ".join(campaign.tenants) or "all")
    console.print(table)


def _duration(delta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
