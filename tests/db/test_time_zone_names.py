"""Time zone names, as a careless client or an attacker gives them: only real IANA zones are taken. `localtime`
is whatever the server's clock is set to, `Factory` is no place, `posixrules` is a file of rules: on the server
each loads as a zone, and quiet hours would have been judged by it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from outbound.compliance.zones import real_zone, resolve_timezone
from outbound.errors import InvalidInput
from outbound.ingest.contact_files import import_contacts
from outbound.ingest.contacts import ContactIn
from outbound.tenancy.tenants import create_tenant

from helpers.cli import US_SHOP, invoke

NOT_ZONES = (
    "localtime",
    "Factory",
    "posixrules",
    "/etc/localtime",
    "posix/Asia/Seoul",
    "right/UTC",
    "zone.tab",
    "Mars/Olympus",
)


@pytest.mark.parametrize("name", NOT_ZONES)
def test_a_name_that_is_no_real_zone_is_refused_by_the_contact_model(name):
    with pytest.raises(ValidationError):
        ContactIn(external_id="c1", timezone=name)
    with pytest.raises(ValueError, match="unknown time zone"):
        real_zone(name)


@pytest.mark.parametrize("name", ("Asia/Seoul", "America/New_York", "UTC", "Etc/GMT+5", "US/Eastern"))
def test_iana_zones_and_their_links_are_taken(name):
    assert real_zone(name) == name
    assert ContactIn(external_id="c1", timezone=name).timezone == name


@pytest.mark.parametrize("name", ("localtime", "Factory", "posixrules"))
def test_a_tenant_in_the_servers_local_time_is_refused(session, clock, name):
    with pytest.raises(InvalidInput, match=f"timezone: unknown time zone '{name}'"):
        create_tenant(
            session,
            clock,
            "shop",
            jurisdiction="default",
            timezone=name,
            locale="en",
            settings={"support_contact": "x"},
        )


def test_the_tenants_create_command_says_which_zones_it_takes(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    invoke("db", "upgrade", "--db", db)
    shop = list(US_SHOP)
    shop[shop.index("America/New_York")] = "localtime"
    result = invoke(*shop, "--db", db)
    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: timezone: unknown time zone 'localtime' (use an IANA name such as America/New_York or Asia/Seoul)"
    )


def test_a_contacts_file_and_an_event_with_the_servers_local_time_are_refused_with_their_line(
    session, clock, make_tenant, tmp_path
):
    tenant = make_tenant()
    path = tmp_path / "contacts.csv"
    path.write_text("external_id,timezone\nc1,America/Chicago\nc2,localtime\nc3,Factory\n")
    report = import_contacts(session, tenant, path, clock)
    assert report.errors == [
        "line 3: timezone: unknown time zone 'localtime' (use an IANA name such as America/New_York or Asia/Seoul)",
        "line 4: timezone: unknown time zone 'Factory' (use an IANA name such as America/New_York or Asia/Seoul)",
    ]
    assert report.created == 1


def test_an_event_with_the_servers_local_time_is_refused_naming_the_field(session, clock, make_tenant):
    from outbound.ingest.events import ingest_items

    tenant = make_tenant()
    envelope = {
        "id": "e1",
        "type": "lead_created",
        "occurred_at": datetime(2026, 11, 20, tzinfo=UTC).isoformat(),
        "contact": {"external_id": "c1", "timezone": "posixrules"},
    }
    report = ingest_items(session, tenant, [json.loads(json.dumps(envelope))], clock)
    assert [str(error) for error in report.errors] == [
        "item 0: contact.timezone: unknown time zone 'posixrules' (use an IANA name such as America/New_York or "
        "Asia/Seoul)"
    ]


def test_a_batch_campaign_scheduled_in_the_servers_local_time_is_refused(tmp_path):
    from outbound.definitions import DefinitionErrors, load_definitions

    from helpers.definitions import write_definitions

    root = write_definitions(
        tmp_path / "defs",
        campaigns={
            "lapsed": """
                name: lapsed
                kind: winback
                purpose: transactional
                schedule:
                  cron: "0 10 * * *"
                  timezone: localtime
                audience: 'count("order_placed") >= 2'
                steps:
                  - id: sms_now
                    channel: sms
                    template: delay_note
            """
        },
        triggers="triggers: []\n",
    )
    with pytest.raises(DefinitionErrors, match="unknown time zone 'localtime'"):
        load_definitions(root)


def test_a_zone_stored_before_these_checks_is_not_trusted_by_the_gate():
    # A contact stored with `localtime` is judged in the zone of its phone number, not the server's clock.
    assert resolve_timezone("localtime", "+821012345678", "America/New_York") == "Asia/Seoul"
    assert resolve_timezone("Factory", None, "Factory") == "UTC"
