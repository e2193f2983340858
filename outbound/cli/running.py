"""Commands that run the engine: the simulated-clock runner, the server, the worker, the demo."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from outbound.cli.common import DbOption, console, database, err_console, friendly_errors, runtime_for


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2026-11-23T09:00:00+09:00 or ...Z")
    return value.astimezone(UTC)


def run(
    until: Annotated[str, typer.Option(help="Advance the simulated clock to this ISO time (with offset)")],
    step: Annotated[str, typer.Option(help="Clock resolution, e.g. 1m, 15m")] = "1m",
    start: Annotated[
        str | None, typer.Option(help="Start time (default: when the first pending message is due)")
    ] = None,
    db: DbOption = None,
) -> None:
    """Advance a simulated clock to --until, doing all due work on the way."""
    from outbound.clock import SimulatedClock, parse_duration
    from outbound.db.session import transaction
    from outbound.dispatch.claim import next_due
    from outbound.jobs.simulation import run_until

    end = _parse_time(until)
    try:
        resolution = parse_duration(step)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    with friendly_errors():
        if start:
            begin = _parse_time(start)
        else:
            with database(db) as factory, transaction(factory) as session:
                first = next_due(session)
            begin = min(first or end, end)
        clock = SimulatedClock(begin)
        with runtime_for(db, clock=clock) as runtime:
            report = run_until(runtime, clock, end, resolution)
    console.print(
        f"ran {begin:%Y-%m-%d %H:%M}Z → {end:%Y-%m-%d %H:%M}Z: {report.sent} sent, {report.deferred} deferred, "
        f"{report.blocked} blocked, {report.failed} failed, {report.retried} retried"
    )


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    db: DbOption = None,
) -> None:
    """HTTP API + scheduler + dispatch, in one process."""
    import uvicorn

    from outbound.jobs.scheduler import start_scheduler
    from outbound.web.app import create_app

    with friendly_errors(), runtime_for(db) as runtime:
        _ = runtime.keyring  # refuse to start without a secret, before anything runs
        _warn_about_local_links(runtime.settings.base_url, host)
        scheduler = start_scheduler(runtime)
        try:
            app = create_app(runtime)
            uvicorn.run(app, host=host, port=port)
        finally:
            scheduler.shutdown(wait=True)
            scheduler.leadership.release()


def _warn_about_local_links(base_url: str, host: str) -> None:
    """Links in messages point at `base_url`: on this machine only, while others can reach the server."""
    from urllib.parse import urlsplit

    from outbound.bootstrap import is_loopback

    if is_loopback(urlsplit(base_url).hostname or "") and not is_loopback(host):
        err_console.print(
            f"[yellow]warning:[/yellow] serving on {escape(host)}, but links in messages point at "
            f"{escape(base_url)}, which only this machine can open: set OUTBOUND_BASE_URL to the public address.",
            highlight=False,
        )


def worker(
    interval: Annotated[float, typer.Option(help="Seconds between dispatch ticks when idle")] = 1.0,
    once: Annotated[bool, typer.Option(help="Send what is due now, then exit")] = False,
    db: DbOption = None,
) -> None:
    """Dispatch only: claim due messages in batches and send them (run as many as you need)."""
    from outbound.jobs.duties import dispatch

    with friendly_errors(), runtime_for(db) as runtime:
        _ = runtime.keyring  # refuse to start without a secret, before anything is claimed
        while True:
            report = dispatch(runtime)
            if report.claimed:
                console.print(
                    f"{report.claimed} claimed: {report.sent} sent, {report.deferred} deferred, "
                    f"{report.blocked} blocked, {report.failed} failed"
                )
            if once:
                return
            time.sleep(interval)


def demo(
    db: DbOption = None,
    out: Annotated[Path, typer.Option(help="Folder for the demo database and outbox")] = Path("demo-out"),
    seed: Annotated[int, typer.Option(help="Scenario seed")] = 7,
) -> None:
    """Run the shipped scenario on a simulated clock with the sandbox outbox, and print a report."""
    from outbound.demo.run import run_demo

    with friendly_errors():
        run_demo(out, db_url=db, seed=seed)


def register(app: typer.Typer) -> None:
    for command in (run, serve, worker, demo):
        app.command()(command)
