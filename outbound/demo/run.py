"""`outbound demo`: replay the shipped scenario on a simulated clock with the sandbox outbox, then report."""

from __future__ import annotations

import heapq
import itertools
import json
import os
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from outbound.bootstrap import SHIPPED_DEFINITIONS, build
from outbound.clock import SimulatedClock
from outbound.config import Settings
from outbound.db.session import transaction, upgrade
from outbound.demo.customers import Customers
from outbound.demo.kinds_report import print_campaign_kinds
from outbound.demo.report import print_report
from outbound.demo.scenario import Scenario, build_scenario
from outbound.ingest.contact_files import import_contacts
from outbound.ingest.events import ingest_items
from outbound.jobs.simulation import run_until
from outbound.providers.outbox import Outbox
from outbound.tenancy.tenants import create_tenant
from outbound.vocabulary import Channel

REACTION_STRIDE = timedelta(minutes=20)


def _event_time(raw: dict[str, Any], fallback: datetime) -> datetime:
    try:
        value = datetime.fromisoformat(str(raw.get("occurred_at")))
        return value if value.tzinfo else fallback
    except ValueError:
        return fallback


def run_demo(out: Path, *, db_url: str | None = None, seed: int = 7, console: Console | None = None) -> dict[str, Any]:
    """Run the whole scenario into `out` (database, outbox) and print the report; returns the figures shown."""
    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            console = Console(width=140)  # a report written to a file or a log keeps its tables whole
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for name in (
        "demo.db",
        "demo.db-wal",
        "demo.db-shm",
        "outbox.jsonl",
        *(f.name for f in out.glob("events-*.jsonl")),
    ):
        (out / name).unlink(missing_ok=True)
    url = db_url or f"sqlite:///{out / 'demo.db'}"
    upgrade(url)

    scenario = build_scenario(seed)
    console.print(f"[bold]outbound demo[/bold] — {escape(scenario.describe())}", highlight=False)
    clock = SimulatedClock(scenario.start - timedelta(hours=1))
    outbox = Outbox(path=out / "outbox.jsonl")
    runtime = build(
        # The demo's links point at an example site and its database is thrown away: a secret for this run.
        Settings(
            database_url=url,
            definitions=SHIPPED_DEFINITIONS,
            base_url="https://outbound.example",
            secret_key=secrets.token_urlsafe(48),
        ),
        clock=clock,
        providers={Channel.SMS: outbox, Channel.EMAIL: outbox},
    )
    ingest_errors: list[str] = []
    try:
        tenants = {}
        with transaction(runtime.factory) as session:
            for spec in scenario.tenants:
                tenant = create_tenant(
                    session,
                    clock,
                    spec.slug,
                    jurisdiction=spec.jurisdiction,
                    timezone=spec.timezone,
                    locale=spec.locale,
                    name=spec.name,
                    settings=dict(spec.settings),
                )
                tenants[spec.slug] = tenant
                contacts_file = out / f"contacts-{spec.slug}.jsonl"
                contacts_file.write_text(
                    "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in scenario.contacts[spec.slug])
                )
                report = import_contacts(session, tenant, contacts_file, clock)
                ingest_errors += [f"{spec.slug} contacts {error}" for error in report.errors]

        # Past orders from the order system come first: the batch win-back looks at this history.
        with transaction(runtime.factory) as session:
            for slug, history in scenario.history.items():
                batch = ingest_items(
                    session, session.merge(tenants[slug], load=False), list(history), clock, on_event=runtime.on_event
                )
                ingest_errors += [f"{slug} history {error}" for error in batch.errors]

        order = itertools.count()  # ties in time keep their order, and the heap never compares two payloads
        # (when, order, kind, tenant slug, what: an event envelope, a Reaction, or None for the end)
        timeline: list[tuple[datetime, int, str, str, Any]] = []
        for slug, events in scenario.events.items():
            # The traffic as recorded, for `outbound campaigns dry-run … --events` afterwards.
            recorded = [*events, *scenario.helpdesk.get(slug, [])]
            (out / f"events-{slug}.jsonl").write_text(
                "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in recorded)
            )
            last = scenario.start
            for raw in events:
                last = _event_time(raw, last)
                timeline.append((last, next(order), "event", slug, raw))
            for raw in scenario.helpdesk.get(slug, []):
                timeline.append((_event_time(raw, scenario.start), next(order), "event", slug, raw))
        heapq.heapify(timeline)
        heapq.heappush(timeline, (scenario.end, next(order), "end", "", None))
        customers = Customers(seed, runtime.keyring)

        def observe() -> None:
            with runtime.factory() as session:
                for reaction in customers.observe(session, clock.now()):
                    heapq.heappush(timeline, (max(reaction.at, clock.now()), next(order), "reaction", "", reaction))

        total = len(timeline) - 1
        with Progress(
            TextColumn("replaying events"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("events", total=total)
            while timeline:
                when = timeline[0][0]
                if when > clock.now():
                    # Short strides, so customers answer a message soon after it reaches them.
                    sent = len(outbox.sent)
                    run_until(runtime, clock, min(when, clock.now() + REACTION_STRIDE))
                    if len(outbox.sent) != sent:
                        observe()
                    continue
                _, _, kind, slug, item = heapq.heappop(timeline)
                if kind == "end":
                    break
                with transaction(runtime.factory) as session:
                    if kind == "reaction":
                        customers.apply(session, item, clock, runtime.definitions, runtime.on_event)
                        continue
                    tenant = session.merge(tenants[slug], load=False)
                    batch = ingest_items(session, tenant, [item], clock, on_event=runtime.on_event)
                ingest_errors += [
                    f"{slug} event {item.get('id', '?')}: {error.field}: {error.message}" for error in batch.errors
                ]
                progress.advance(task)
                observe()
            run_until(runtime, clock, scenario.end)

        with runtime.factory() as session:
            figures = print_report(
                session, console, outbox=outbox, ingest_errors=ingest_errors, duplicates=scenario_duplicates(scenario)
            )
            figures.update(print_campaign_kinds(session, console, customers.tally))
    finally:
        runtime.close()
    slug = scenario.tenants[-1].slug
    console.print(
        f"\nfinished in {time.perf_counter() - started:.1f} s — database {url}, outbox {out / 'outbox.jsonl'}\n"
        f"look closer: .venv/bin/outbound messages list --db {url} --tenant {slug} --status blocked\n"
        f"             .venv/bin/outbound explain ID --db {url}\n"
        f"try a campaign on the recorded traffic: .venv/bin/outbound campaigns dry-run cart_abandonment "
        f"--tenant {slug} --events {out / f'events-{slug}.jsonl'} --db {url}",
        highlight=False,
        markup=False,
    )
    return figures


def scenario_duplicates(scenario: Scenario) -> int:
    """How many events in the scenario repeat an id already sent (stored once)."""
    seen: set[tuple[str, object]] = set()
    dupes = 0
    for slug, events in scenario.events.items():
        for raw in events:
            key = (slug, raw.get("id"))
            dupes += key in seen
            seen.add(key)
    return dupes
