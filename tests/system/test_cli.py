"""The command line, as an operator and a marketer use it, on a real SQLite file."""

import json
from datetime import UTC, datetime, timedelta

from outbound.cli import app

from helpers.cli import US_SHOP, invoke, runner
from helpers.definitions import write_definitions


def test_operator_flow_from_empty_database_to_explained_messages(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"OUTBOUND_DEFINITIONS": str(write_definitions(tmp_path / "defs"))}
    assert invoke("db", "upgrade", "--db", db, env=env).exit_code == 0
    created = invoke(*US_SHOP, "--db", db, env=env)
    assert created.exit_code == 0, created.output

    contacts = tmp_path / "contacts.jsonl"
    contacts.write_text(
        json.dumps(
            {
                "external_id": "c1",
                "email": "a@example.com",
                "consents": [
                    {
                        "channel": "email",
                        "purpose": "marketing",
                        "granted": True,
                        "at": "2026-01-05T09:00:00-05:00",
                        "source": "checkout form",
                        "text": "Yes, email me offers",
                    }
                ],
            }
        )
        + "\n"
        + json.dumps({"external_id": "c2", "email": "b@example.com"})
        + "\n"
    )
    result = invoke("contacts", "import", contacts, "--db", db, env=env)
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output

    events = tmp_path / "events.jsonl"
    events.write_text(
        json.dumps(
            {
                "id": "e1",
                "type": "cart_abandoned",
                "occurred_at": "2026-11-20T10:00:00-05:00",
                "contact": {"external_id": "c1"},
                "data": {"cart_id": "k1", "value": 150},
            }
        )
        + "\n"
        + "{not json\n"
        + json.dumps(
            {
                "id": "e2",
                "type": "cart_abandoned",
                "occurred_at": "2026-11-20T10:05:00-05:00",
                "contact": {"external_id": "c2"},
                "data": {"cart_id": "k2", "value": 150},
            }
        )
        + "\n"
    )
    result = invoke("events", "import", events, "--db", db, env=env)
    assert result.exit_code == 2  # some lines refused
    assert "2 stored" in result.output and "line 2" in result.output

    # Imported with the system clock, the events' messages are due now at the latest.
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    result = invoke("run", "--until", until, "--db", db, env=env)
    assert result.exit_code == 0, result.output

    listed = invoke("messages", "list", "--json", "--db", db, env=env)
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert {r["contact"]: r["status"] for r in rows} == {"c1": "sent", "c2": "blocked"}
    for field in (
        "id",
        "tenant",
        "campaign",
        "step",
        "contact",
        "channel",
        "to",
        "status",
        "due_at",
        "sent_at",
        "reason",
        "subject",
        "body",
    ):
        assert field in rows[0]
    blocked = next(r for r in rows if r["status"] == "blocked")
    assert blocked["reason"]

    explained = invoke("explain", blocked["id"], "--db", db, env=env)
    assert explained.exit_code == 0
    assert "consent" in explained.output and "blocked" in explained.output

    only_sent = invoke("messages", "list", "--json", "--status", "sent", "--db", db, env=env)
    assert [json.loads(line)["contact"] for line in only_sent.output.splitlines()] == ["c1"]


def test_explain_of_an_unknown_message_is_a_clear_error(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    invoke("db", "upgrade", "--db", db)
    result = runner.invoke(app, ["explain", "999", "--db", db])
    assert result.exit_code == 1
    assert "no message 999" in result.output


def test_validate_reports_every_broken_file_with_its_line_and_exits_non_zero(tmp_path):
    root = write_definitions(tmp_path / "defs")
    (root / "campaigns" / "cart.yaml").write_text(
        "name: cart\nkind: reminder\npurpose: marketing\nsteps:\n  - id: s1\n    channel: pigeon\n    delay: 1h\n    template: cart_note\n"
    )
    result = runner.invoke(app, ["campaigns", "validate", "--definitions", str(root)])
    assert result.exit_code == 1
    assert "cart.yaml:6" in result.output and "channel" in result.output


def test_validate_accepts_the_shipped_definitions():
    result = runner.invoke(app, ["campaigns", "validate", "--definitions", "."])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output


def test_keys_create_prints_a_key_that_authenticates(tmp_path):
    from outbound.db.session import make_engine, session_factory
    from outbound.tenancy.keys import authenticate

    db = f"sqlite:///{tmp_path / 'cli.db'}"
    invoke("db", "upgrade", "--db", db)
    invoke(*US_SHOP, "--db", db)
    key = invoke("keys", "create", "--tenant", "maple", "--db", db).output.strip()
    engine = make_engine(db)
    with session_factory(engine)() as session:
        tenant, role = authenticate(session, key)
    engine.dispose()
    assert (tenant.slug, role) == ("maple", "ingest")


def test_a_tenant_without_the_sender_details_its_jurisdiction_requires_is_refused(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    invoke("db", "upgrade", "--db", db)
    result = runner.invoke(
        app,
        [
            "tenants",
            "create",
            "seoul",
            "--jurisdiction",
            "KR",
            "--timezone",
            "Asia/Seoul",
            "--locale",
            "ko",
            "--set",
            "support_contact=02-555-0100",
            "--db",
            db,
        ],
    )
    assert result.exit_code == 1
    assert "optout_number" in result.output
    assert "seoul" not in invoke("tenants", "list", "--db", db).output
