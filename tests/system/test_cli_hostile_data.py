"""The command line fed what customers, order systems and files may hold: text that looks like Rich markup is
printed as it is, never read as styles (nor crashing on a closing tag that closes nothing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from helpers.cli import US_SHOP, invoke
from helpers.definitions import write_definitions

MARKUP = ("[/]", "[bold red]x")
WIDE = {"COLUMNS": "300"}  # tables keep each value on one line


@pytest.fixture
def marked(tmp_path):
    """A database whose tenant, contacts, events, messages and callback tasks carry markup in their data."""
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {"OUTBOUND_DEFINITIONS": str(write_definitions(tmp_path / "defs")), **WIDE}
    assert invoke("db", "upgrade", "--db", db, env=env).exit_code == 0
    created = invoke(*US_SHOP, "--name", "[bold red]x", "--db", db, env=env)
    assert created.exit_code == 0, created.output
    consent = {"channel": "email", "purpose": "marketing", "granted": True, "at": "2026-01-05T09:00:00-05:00"}
    contacts = tmp_path / "contacts.jsonl"
    contacts.write_text(
        "".join(
            json.dumps({"external_id": name, "email": f"c{n}@example.com", "consents": [consent]}) + "\n"
            for n, name in enumerate(MARKUP)
        )
        + json.dumps({"external_id": "c9", "timezone": "[/]"})
        + "\n"
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"e{n}",
                    "type": "lead_created",
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "contact": {"external_id": name},
                    "data": {"cart_id": name},
                }
            )
            + "\n"
            for n, name in enumerate(MARKUP)
        )
        + json.dumps({"id": "e9", "type": "lead_created", "contact": {"external_id": "[bold red]x", "timezone": "[/]"}})
        + "\n"
    )
    return db, env, contacts, events


def _shows_markup_literally(result, *texts):
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for text in texts or MARKUP:
        assert text in result.output, result.output


def test_markup_in_data_is_printed_as_it_is_by_every_command(marked, tmp_path):
    db, env, contacts, events = marked
    imported = invoke("contacts", "import", contacts, "--db", db, env=env)
    assert imported.exit_code == 2  # the line with a bad time zone is refused, and said so
    _shows_markup_literally(imported, "unknown time zone '[/]'")
    loaded = invoke("events", "import", events, "--db", db, env=env)
    assert loaded.exit_code == 2
    _shows_markup_literally(loaded, "'[/]'")
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert invoke("run", "--until", until, "--db", db, env=env).exit_code == 0

    _shows_markup_literally(invoke("tenants", "list", "--db", db, env=env), "[bold red]x")
    _shows_markup_literally(invoke("callbacks", "list", "--db", db, env=env))
    _shows_markup_literally(invoke("messages", "list", "--db", db, env=env))
    messages = [
        json.loads(line) for line in invoke("messages", "list", "--json", "--db", db, env=env).output.splitlines()
    ]
    assert {m["contact"] for m in messages} == set(MARKUP)
    for message in messages:
        explained = invoke("explain", message["id"], "--db", db, env=env)
        assert explained.exit_code == 0, explained.output
        _shows_markup_literally(explained, f"Hi {message['contact']}, your cart", f"Your cart {message['contact']}")
    for name in MARKUP:
        shown = invoke("contacts", "show", name, "--db", db, env=env)
        _shows_markup_literally(shown, f"contact {name} ")
        preview = invoke("campaigns", "preview", "lead", "--contact", name, "--db", db, env=env)
        assert preview.exit_code == 0, preview.output
        _shows_markup_literally(preview, f"Hi {name}, your cart")
    dry = invoke("campaigns", "dry-run", "lead", "--events", events, "--db", db, env=env)
    assert dry.exit_code == 0, dry.output
    _shows_markup_literally(dry)

    listed = tmp_path / "dnc.txt"
    listed.write_text("+1 512 555 0100\n[bold red]x\n")
    dnc = invoke("contacts", "dnc", "import", listed, "--list-date", "2026-01-01", "--db", db, env=env)
    _shows_markup_literally(dnc, "'[bold red]x'")


def test_markup_in_a_definition_file_is_printed_as_it_is_by_validate(tmp_path):
    root = write_definitions(tmp_path / "defs")
    (root / "campaigns" / "cart.yaml").write_text(
        "name: cart\nkind: reminder\npurpose: marketing\nsteps:\n  - id: s1\n    channel: '[/]'\n    delay: 1h\n"
        "    template: '[bold red]x'\n"
    )
    result = invoke("campaigns", "validate", "--definitions", root, env=WIDE)
    assert result.exit_code == 1
    _shows_markup_literally(result, "'[/]'")
