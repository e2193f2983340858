"""The command line as a test drives it: in process, through Typer's runner, on a real database."""

from __future__ import annotations

from typer.testing import CliRunner

from outbound.cli import app

runner = CliRunner()

# A US shop with what its jurisdiction requires (`outbound tenants create` refuses it otherwise).
US_SHOP = (
    "tenants",
    "create",
    "maple",
    "--jurisdiction",
    "US",
    "--timezone",
    "America/New_York",
    "--locale",
    "en",
    "--set",
    "postal_address=1 Main St",
    "--set",
    "support_contact=help@maple.example",
)


def invoke(*args, env=None):
    """Run `outbound ARGS…` and return Typer's result (its exit code and output); exceptions propagate."""
    return runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=False)
