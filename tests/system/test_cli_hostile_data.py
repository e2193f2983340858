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


KR_SHOP = (
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
    "--set",
    "optout_number=080-555-0100",
)


@pytest.fixture
def two_shops(tmp_path):
    """Two tenants, each with a lead whose callback task and message are waiting."""
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    # At the default width of 80 columns: an error stays one line however long.
    env = {"OUTBOUND_DEFINITIONS": str(write_definitions(tmp_path / "defs"))}
    invoke("db", "upgrade", "--db", db, env=env)
    for shop, slug, phone in ((US_SHOP, "maple", "+12125550101"), (KR_SHOP, "seoul", "+821012345678")):
        assert invoke(*shop, "--db", db, env=env).exit_code == 0
        events = tmp_path / f"{slug}.jsonl"
        events.write_text(
            json.dumps(
                {
                    "id": "e1",
                    "type": "lead_created",
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "contact": {"external_id": f"{slug}-lead", "phone": phone, "email": f"lead@{slug}.example"},
                }
            )
            + "\n"
        )
        assert invoke("events", "import", events, "--tenant", slug, "--db", db, env=env).exit_code == 0
    return db, env


def _refused(result, message):
    """Exit 1 with one line that says why, no traceback, nothing else printed."""
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [f"error: {message}"], result.output


AMBIGUOUS = "more than one tenant: name one with --tenant SLUG (see `outbound tenants list`)"


@pytest.mark.parametrize(
    "command",
    [
        ("callbacks", "list"),
        ("callbacks", "list", "--json"),
        ("callbacks", "export"),
        ("messages", "list"),
        ("messages", "list", "--json"),
        ("contacts", "show", "maple-lead"),
        ("campaigns", "pause", "lead"),
        ("campaigns", "preview", "lead", "--contact", "maple-lead"),
        ("campaigns", "dry-run", "lead", "--events", "{file}"),
        ("events", "import", "{file}"),
        ("contacts", "import", "{file}"),
        ("contacts", "dnc", "import", "{file}", "--list-date", "2026-01-01"),
    ],
)
def test_without_tenant_a_command_over_several_tenants_asks_which_instead_of_mixing_them(two_shops, command, tmp_path):
    db, env = two_shops
    command = [str(tmp_path / "maple.jsonl") if part == "{file}" else part for part in command]
    _refused(invoke(*command, "--db", db, env=env), AMBIGUOUS)


@pytest.mark.parametrize(
    "command",
    [
        ("callbacks", "list"),
        ("callbacks", "list", "--json"),
        ("callbacks", "export"),
        ("messages", "list"),
        ("messages", "list", "--json"),
        ("contacts", "show", "maple-lead"),
        ("contacts", "erase", "maple-lead"),
        ("contacts", "complaints"),
        ("campaigns", "pause", "lead"),
        ("campaigns", "resume", "lead"),
        ("campaigns", "preview", "lead", "--contact", "maple-lead"),
        ("keys", "create"),
        ("agents", "create", "alice", "--name", "Alice", "--password", "correct horse"),
        ("campaigns", "dry-run", "lead", "--events", "{file}"),
        ("events", "import", "{file}"),
        ("contacts", "import", "{file}"),
        ("contacts", "dnc", "import", "{file}", "--list-date", "2026-01-01"),
    ],
)
def test_an_unknown_tenant_is_an_error_not_an_empty_answer(two_shops, command, tmp_path):
    db, env = two_shops
    command = [str(tmp_path / "maple.jsonl") if part == "{file}" else part for part in command]
    _refused(
        invoke(*command, "--tenant", "mapel", "--db", db, env=env), "no tenant 'mapel' (see `outbound tenants list`)"
    )


def test_each_tenant_sees_only_its_own_rows_and_all_tenants_is_asked_for_by_name(two_shops):
    db, env = two_shops
    for slug in ("maple", "seoul"):
        tasks = invoke("callbacks", "list", "--json", "--tenant", slug, "--db", db, env=env)
        assert [json.loads(line)["contact"] for line in tasks.output.splitlines()] == [f"{slug}-lead"]
        messages = invoke("messages", "list", "--json", "--tenant", slug, "--db", db, env=env)
        assert {json.loads(line)["tenant"] for line in messages.output.splitlines()} == {slug}
        exported = invoke("callbacks", "export", "--tenant", slug, "--db", db, env=env)
        assert len(exported.output.splitlines()) == 2 and f"{slug}-lead" in exported.output
    everything = invoke("messages", "list", "--json", "--all-tenants", "--db", db, env=env)
    assert {json.loads(line)["tenant"] for line in everything.output.splitlines()} == {"maple", "seoul"}
    tasks = invoke("callbacks", "list", "--all-tenants", "--db", db, env={**env, **WIDE})
    assert "maple-lead" in tasks.output and "seoul-lead" in tasks.output
    _refused(
        invoke("callbacks", "list", "--all-tenants", "--tenant", "maple", "--db", db, env=env),
        "give --tenant SLUG or --all-tenants, not both",
    )


def test_with_one_tenant_the_tenant_may_be_left_out(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    invoke("db", "upgrade", "--db", db)
    invoke(*US_SHOP, "--db", db)
    assert invoke("callbacks", "list", "--db", db).exit_code == 0
    assert invoke("messages", "list", "--db", db).exit_code == 0


def test_an_unknown_campaign_contact_or_status_is_an_error(two_shops, tmp_path):
    db, env = two_shops
    maple = ("--tenant", "maple", "--db", db)
    no_campaign = "no campaign 'leed' (see `outbound campaigns list`)"
    _refused(invoke("messages", "list", "--campaign", "leed", *maple, env=env), no_campaign)
    _refused(invoke("campaigns", "pause", "leed", *maple, env=env), no_campaign)
    _refused(invoke("campaigns", "preview", "leed", "--contact", "maple-lead", *maple, env=env), no_campaign)
    _refused(invoke("campaigns", "dry-run", "leed", "--events", tmp_path / "maple.jsonl", *maple, env=env), no_campaign)
    _refused(
        invoke("messages", "list", "--status", "sentt", *maple, env=env),
        "--status: unknown status 'sentt' (one of scheduled, deferred, blocked, cancelled, sending, sent, delivered, "
        "undelivered, failed, unknown)",
    )
    no_contact = "no contact 'seoul-lead' in tenant 'maple'"
    _refused(invoke("contacts", "show", "seoul-lead", *maple, env=env), no_contact)
    _refused(invoke("contacts", "erase", "seoul-lead", *maple, env=env), no_contact)
    _refused(invoke("campaigns", "preview", "lead", "--contact", "seoul-lead", *maple, env=env), no_contact)
    # A campaign known to the definitions, with no message yet, lists nothing and is no error.
    assert invoke("messages", "list", "--campaign", "cart", *maple, env=env).exit_code == 0
    assert "maple-lead" in invoke("messages", "list", "--campaign", "lead", *maple, env={**env, **WIDE}).output


def test_a_campaign_that_does_not_serve_the_tenant_is_an_error(two_shops, tmp_path):
    db, env = two_shops
    defs = tmp_path / "defs"
    campaign = defs / "campaigns" / "lead.yaml"
    campaign.write_text(campaign.read_text() + "tenants: [seoul]\n")
    maple = ("--tenant", "maple", "--db", db)
    message = "campaign 'lead' does not serve tenant 'maple' (it serves seoul)"
    _refused(invoke("campaigns", "pause", "lead", *maple, env=env), message)
    _refused(invoke("campaigns", "preview", "lead", "--contact", "maple-lead", *maple, env=env), message)
    _refused(invoke("campaigns", "dry-run", "lead", "--events", tmp_path / "maple.jsonl", *maple, env=env), message)


def test_explain_of_an_id_past_64_bits_is_an_unknown_message(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    invoke("db", "upgrade", "--db", db)
    for number in (2**64, 2**63, 0):
        _refused(invoke("explain", number, "--db", db), f"no message {number}")
