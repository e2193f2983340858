"""The `outbound` command line."""

from __future__ import annotations

import typer

from outbound.cli import admin, callbacks, campaigns, contacts, data, running

app = typer.Typer(no_args_is_help=True, add_completion=False, help="outbound: reach customers before they have to ask.")
admin.register(app)
data.register(app)
running.register(app)
app.add_typer(campaigns.app, name="campaigns")
app.add_typer(contacts.app, name="contacts")
app.add_typer(callbacks.app, name="callbacks")
app.add_typer(callbacks.agents_app, name="agents")
