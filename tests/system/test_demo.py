"""`outbound demo` replays the shipped scenario end to end and reports what happened and why."""

import io
import json
import sqlite3

from rich.console import Console

from outbound.demo.run import run_demo


def test_demo_sends_defers_blocks_and_cancels_with_reasons_in_both_languages(tmp_path):
    output = io.StringIO()
    figures = run_demo(tmp_path, seed=7, console=Console(file=output, width=200))
    text = output.getvalue()
    totals = figures["totals"]
    assert totals["sent"] > 50
    assert totals["deferred"] > 0 and totals["blocked"] > 0 and totals["cancelled"] > 0
    # Everything the outbox saw is a sent message, and nothing else reached it.
    assert figures["outbox"] == totals["sent"]
    outbox_lines = [json.loads(line) for line in (tmp_path / "outbox.jsonl").read_text().splitlines()]
    assert len(outbox_lines) == totals["sent"]
    # Each kind of stop or wait is explained by its rule.
    rules = set(figures["by_rule"])
    assert {"blocked:consent", "cancelled:exit"} <= rules
    assert any(rule.startswith("deferred:") for rule in rules)
    # Enrollments with nothing left to send are completed, as the scheduler completes them; the report says so.
    enrollments = figures["enrollments"]
    assert enrollments["completed"] > enrollments.get("active", 0) and enrollments["exited"] > 0
    assert f"{enrollments['completed']} completed" in text
    with sqlite3.connect(tmp_path / "demo.db") as db:
        idle = db.execute(
            "SELECT count(*) FROM enrollments e WHERE e.status = 'active' AND NOT EXISTS (SELECT 1 FROM messages m "
            "WHERE m.enrollment_id = e.id AND m.status IN ('scheduled', 'deferred', 'sending'))"
        ).fetchone()[0]
    assert idle == 0
    # Malformed scenario events are refused with a reason, the rest still went in.
    assert figures["ingest_errors"] >= 2
    for campaign in ("shipping_delay", "cart_abandonment", "delivery_survey", "churn_winback", "lead_followup"):
        assert campaign in text
    assert "(광고)" in text and "Reply STOP" in text
    # The traffic as recorded is left for `campaigns dry-run`, one envelope per line.
    recorded = [json.loads(line) for line in (tmp_path / "events-maple-goods.jsonl").read_text().splitlines()]
    assert {"cart_abandoned", "order_placed"} <= {event.get("type") for event in recorded}
