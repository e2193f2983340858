"""Every read of a dispatch tick is an index range on the messages table, with the planner's statistics
of a real backlog (ANALYZE): a tick costs the same with ten thousand or ten million messages waiting."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, insert

from outbound.db.models import Message


@pytest.fixture
def sqlite_only(db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL keeps per-value statistics")


def test_no_read_of_a_tick_scans_the_messages_table(world, clock, sqlite_only):
    tenant = world.tenant()
    contacts = [
        world.contact(tenant, f"c{n}", email=f"c{n}@example.com", consents=[("email", "marketing")]) for n in range(20)
    ]
    now = clock.now()
    # A backlog as a batch campaign leaves it: one status for nearly every row when the statistics are
    # taken, so they say a status picks out the whole table (they cannot say that `sending` is rare).
    rows = [
        {
            "tenant_id": tenant.id,
            "contact_id": contacts[n % 20].id,
            "campaign": "cart",
            "step": "email_1h",
            "channel": "email",
            "purpose": "marketing",
            "template": "cart_note",
            "status": "scheduled",
            "due_at": now + timedelta(minutes=n % 7 - 3),
            "created_at": now,
            "updated_at": now,
            "attempts": 0,
        }
        for n in range(5000)
    ]
    engine = world.runtime.engine
    with engine.begin() as connection:
        connection.execute(insert(Message), rows)
        connection.exec_driver_sql("ANALYZE")
        connection.exec_driver_sql("UPDATE messages SET status = 'sending' WHERE id % 1000 = 1")
    reads: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            reads.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        report = world.runtime.dispatcher.tick()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert report.claimed > 0
    with engine.connect() as connection:
        plans = {
            sql: [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]
            for sql, params in reads
            if "messages" in sql
        }
    assert plans, "the tick read no messages"
    scans = {
        " ".join(sql.split())[:120]: plan
        for sql, plan in plans.items()
        if any(line.startswith("SCAN messages") for line in plan)
    }
    assert scans == {}
