"""The time of one dispatch tick with a large backlog waiting, and the query plan of its claim.

The backlog is written by the database itself (`INSERT … SELECT` from a generated series), a
group of messages per due time, as batch campaigns leave them: many messages due at the same
instant. A claim that stays an index range read takes the same time whatever the backlog; the
floor of each size is the tick with the smallest backlog, measured in the same run.
"""

from __future__ import annotations

import statistics
import tempfile
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event, func, insert, literal, select

from bench.batch import numbers
from bench.common import T0, Figure, console, database, seed_contacts, timed
from bench.pipeline import definitions
from outbound.bootstrap import build
from outbound.clock import SimulatedClock
from outbound.config import Settings
from outbound.db.models import Contact, Message, Tenant
from outbound.db.session import make_engine
from outbound.db.types import UTCDateTime
from outbound.providers import Outbox

CONTACTS = 5000
GROUP = 100_000  # messages due at the same instant
TICKS = 5


def backlog(url: str, count: int) -> None:
    """`count` scheduled marketing SMS for the seeded contacts, oldest due first, `GROUP` per due time."""
    engine = make_engine(url)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # The rows are consistent by construction: skip the per-row foreign key triggers while loading.
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        tenant_id = connection.execute(select(Tenant.id)).scalar()
        first = connection.execute(select(func.min(Contact.id))).scalar()
        groups = range(0, count, GROUP)
        for n, start in enumerate(groups):
            size = min(GROUP, count - start)
            i = numbers(connection, size).c.i
            due = literal(T0 - timedelta(minutes=len(groups) - n), UTCDateTime())
            connection.execute(
                insert(Message).from_select(
                    [
                        "tenant_id",
                        "contact_id",
                        "campaign",
                        "step",
                        "channel",
                        "purpose",
                        "template",
                        "status",
                        "due_at",
                        "created_at",
                        "updated_at",
                        "attempts",
                    ],
                    select(
                        literal(tenant_id),
                        first + i % CONTACTS,
                        literal("bench_reminder"),
                        literal("sms_1h"),
                        literal("sms"),
                        literal("marketing"),
                        literal("bench_note"),
                        literal("scheduled"),
                        due,
                        literal(T0, UTCDateTime()),
                        literal(T0, UTCDateTime()),
                        literal(0),
                    ),
                )
            )
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")  # as autovacuum / a maintenance job leaves a large table
    engine.dispose()


def claim_plan(engine, statements: list[tuple[str, object]]) -> tuple[str, list[str]]:
    """The verdict on the claim's plan ("index scan" or what is wrong) and the plan lines, from EXPLAIN."""
    claims = [
        (sql, params) for sql, params in statements if "FROM messages" in sql and "ORDER BY messages.due_at" in sql
    ]
    lines: list[str] = []
    verdicts = set()
    with engine.connect() as connection:
        for sql, params in claims:
            if engine.dialect.name == "sqlite":
                plan = [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
                scan = [line for line in plan if "messages" in line.split(" USING")[0]]
                ranged = scan and all("USING INDEX ix_messages_due" in line for line in scan)
                sorted_ = any("TEMP B-TREE" in line for line in plan)
            else:
                plan = [row[0] for row in connection.exec_driver_sql("EXPLAIN " + sql, params)]
                ranged = any("Index Scan using ix_messages_due" in line for line in plan) and not any(
                    "Seq Scan on messages" in line for line in plan
                )
                sorted_ = any("Sort" in line for line in plan)
            verdicts.add(
                "index scan" if ranged and not sorted_ else "index scan, then a sort" if ranged else "scan of the table"
            )
            lines += plan
    return " / ".join(sorted(verdicts)) or "no claim seen", lines


def one_size(backend: str, size: int) -> tuple[float, float, float, str, list[str], int]:
    """Seconds to write the backlog, the first tick's and the median tick's seconds, the claim's plan, messages claimed."""
    with database(backend) as url, tempfile.TemporaryDirectory() as folder:
        clock = SimulatedClock(T0)
        seed_contacts(url, CONTACTS, clock=clock)
        write_s, _ = timed(backlog, url, size)
        # No per-sender rate limit: the clock stands still, and the figure is the engine's own pace.
        settings = Settings(database_url=url, dispatch_batch_size=500, sms_rate_per_second=0, email_rate_per_second=0)
        runtime = build(
            settings, clock=clock, providers={"sms": Outbox(), "email": Outbox()}, definitions=definitions(Path(folder))
        )
        statements: list[tuple[str, object]] = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            statements.append((statement, parameters))

        event.listen(runtime.engine, "before_cursor_execute", capture)
        first_s, report = timed(runtime.dispatcher.tick)
        event.remove(runtime.engine, "before_cursor_execute", capture)
        verdict, plan = claim_plan(runtime.engine, statements)
        ticks = [timed(runtime.dispatcher.tick)[0] for _ in range(TICKS)]
        runtime.close()
    return write_s, first_s, statistics.median(ticks), verdict, plan, report.claimed


def run(backend: str, sizes: list[int], *, show_plan: bool = False) -> list[Figure]:
    figures: list[Figure] = []
    smallest, floor_ms = min(sizes), None
    for size in sorted(sizes):
        write_s, first_s, median_s, verdict, plan, claimed = one_size(backend, size)
        if show_plan:
            console.print(f"[dim]{backend}, {size:,} waiting, claim plan:\n  " + "\n  ".join(plan))
        if size == smallest:
            floor_ms = median_s * 1000
        figures += [
            Figure(f"{backend}: write a backlog of {size:,} (INSERT … SELECT)", write_s, "s"),
            Figure(
                f"{backend}: first tick (batch of {claimed}) with {size:,} waiting; claim: {verdict}",
                first_s * 1000,
                "ms",
            ),
            Figure(
                f"{backend}: median of {TICKS} more ticks with {size:,} waiting",
                median_s * 1000,
                "ms",
                f"median tick with {smallest:,} waiting" if size != smallest else None,
                floor_ms if size != smallest else None,
            ),
        ]
    return figures
