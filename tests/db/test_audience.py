"""Audience rules: compiled to one SQL query that runs in the database, over event history and contact fields."""

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from outbound.db.audience import InvalidAudience, compile_audience
from outbound.db.models import Contact
from outbound.definitions import DefinitionErrors, load_definitions

from helpers.campaigns import make_world_fixture  # noqa: F401 - fixture
from helpers.definitions import write_definitions

LAPSED = 'count("order_placed") >= 2 and count("order_placed", within="90d") == 0'


def _orders(world, tenant, external_id, days_ago, **fields):
    world.contact(tenant, external_id, **fields)
    for n, days in enumerate(days_ago):
        world.event(
            tenant,
            "order_placed",
            external_id,
            {"order_id": f"{external_id}-{n}", "value": 100 + n},
            occurred_at=world.clock.now() - timedelta(days=days),
        )


def _matching(world, rule, tenant):
    audience = compile_audience(rule)
    with world.runtime.factory() as session:
        ids = audience.contact_ids(session, tenant.id, world.clock.now())
        return sorted(session.scalars(select(Contact.external_id).where(Contact.id.in_(ids))))


@pytest.fixture
def shop(make_world):
    world = make_world()
    tenant = world.tenant()
    _orders(world, tenant, "lapsed-regular", [300, 200, 120])
    _orders(world, tenant, "lapsed-pair", [100, 95], locale="ko")
    _orders(world, tenant, "recent-regular", [200, 30])
    _orders(world, tenant, "one-off", [200])
    world.contact(tenant, "never-bought")
    other = world.tenant("other-shop")
    _orders(world, other, "elsewhere", [300, 200])
    return world, tenant


def test_no_order_in_90_days_and_at_least_two_orders_picks_exactly_the_lapsed_regulars(shop):
    world, tenant = shop
    assert _matching(world, LAPSED, tenant) == ["lapsed-pair", "lapsed-regular"]


def test_days_since_the_last_event_and_contact_fields_combine(shop):
    world, tenant = shop
    assert _matching(world, 'days_since("order_placed") >= 100', tenant) == ["lapsed-regular", "one-off"]
    assert _matching(world, 'days_since("order_placed") < 100', tenant) == ["lapsed-pair", "recent-regular"]
    assert _matching(world, f'{LAPSED} and contact.locale == "ko"', tenant) == ["lapsed-pair"]
    assert _matching(world, 'not count("order_placed")', tenant) == ["never-bought"]
    assert _matching(world, 'total("order_placed", "value") > 300', tenant) == ["lapsed-regular"]
    assert _matching(world, 'contact.locale in ["ko", "ja"] or count("order_placed", within="60d") >= 1', tenant) == [
        "lapsed-pair",
        "recent-regular",
    ]


def test_events_after_the_evaluation_time_do_not_count(shop):
    world, tenant = shop
    assert _matching(world, 'count("order_placed") >= 3', tenant) == ["lapsed-regular"]
    audience = compile_audience('count("order_placed") >= 3')
    with world.runtime.factory() as session:
        # 150 days ago the regular's third order (120 days ago) had not happened yet.
        assert audience.contact_ids(session, tenant.id, world.clock.now() - timedelta(days=150)) == []


def test_contact_attributes_are_read_in_the_database_with_the_constant_type(make_world):
    world = make_world()
    tenant = world.tenant()
    world.contact(tenant, "vip", attributes={"tier": "vip", "visits": 12})
    world.contact(tenant, "regular", attributes={"tier": "regular", "visits": 2})
    assert _matching(world, 'contact.attributes.tier == "vip"', tenant) == ["vip"]
    assert _matching(world, "contact.attributes.visits >= 10", tenant) == ["vip"]


def test_the_rule_runs_as_one_query_whatever_the_number_of_contacts(make_world, engine):
    world = make_world()
    tenant = world.tenant()
    for n in range(40):
        _orders(world, tenant, f"c{n}", [200, 150] if n % 2 else [10])
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    audience = compile_audience(LAPSED)
    runtime_engine = world.runtime.engine
    event.listen(runtime_engine, "before_cursor_execute", count)
    try:
        with world.runtime.factory() as session:
            ids = audience.contact_ids(session, tenant.id, world.clock.now())
    finally:
        event.remove(runtime_engine, "before_cursor_execute", count)
    assert len(ids) == 20
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


@pytest.mark.parametrize(
    "rule, problem",
    [
        ("count(order_placed) >= 2", "quoted text"),
        ("orders >= 2", "unknown name 'orders'"),
        ('days_since("order_placed") == 90', "compare days_since() with a number"),
        ("contact.password == 'x'", "unknown contact field 'password'"),
        ('count("order_placed", since="90d") > 0', "no argument 'since'"),
        ('count("order_placed", within="3 months") > 0', "not a duration"),
        ("__import__('os')", "unknown function"),
        ('days_since("order_placed") >= 1e300', "from 0 to 36600"),
        ('days_since("order_placed") < -99999999999', "from 0 to 36600"),
        ('days_since("order_placed") > 999999999', "from 0 to 36600"),
        ('count("order_placed", within="99999999999d") > 0', "not a duration"),
        ('count("order_placed", within="9999999w") > 0', "longer than 3660 days"),
        ('count("order_placed") >=', "syntax error"),
    ],
)
def test_a_bad_rule_is_refused_with_what_is_wrong(rule, problem):
    with pytest.raises(InvalidAudience) as error:
        compile_audience(rule)
    assert problem in str(error.value)


def test_a_bad_audience_in_a_campaign_file_is_reported_with_file_line_and_field(tmp_path):
    campaign = """
name: lapsed
kind: winback
purpose: marketing
schedule:
  cron: "0 10 * * *"
audience: 'count("order_placed") >> 2'
steps:
  - id: email_now
    channel: email
    template: cart_note
"""
    root = write_definitions(tmp_path, {"lapsed": campaign}, triggers="triggers: []\n")
    with pytest.raises(DefinitionErrors) as raised:
        load_definitions(root)
    [error] = raised.value.errors
    assert (error.file, error.line, error.field) == ("campaigns/lapsed.yaml", 6, "audience")
    assert "syntax error" in error.detail


def test_the_matching_contacts_come_in_id_order_a_chunk_at_a_time_and_all_of_them(make_world):
    world = make_world()
    tenant = world.tenant()
    for n in range(23):
        _orders(world, tenant, f"c{n}", [200, 150] if n % 4 else [10])
    world.contact(tenant, "gone", email="gone@example.com")
    audience = compile_audience(LAPSED)
    with world.runtime.factory() as session:
        everyone = audience.contact_ids(session, tenant.id, world.clock.now())
        chunks = list(
            audience.contact_chunks(session, tenant.id, world.clock.now(), 5, columns=(Contact.id, Contact.external_id))
        )
    assert [len(chunk) for chunk in chunks] == [5, 5, 5, 2]
    assert [row.id for chunk in chunks for row in chunk] == everyone and len(everyone) == 17
    assert all(row.external_id.startswith("c") for chunk in chunks for row in chunk)


def test_a_chunk_size_that_divides_the_audience_ends_without_an_empty_chunk(make_world):
    world = make_world()
    tenant = world.tenant()
    for n in range(6):
        _orders(world, tenant, f"c{n}", [200, 150])
    audience = compile_audience(LAPSED)
    with world.runtime.factory() as session:
        chunks = list(audience.contact_chunks(session, tenant.id, world.clock.now(), 3))
        nobody = list(
            compile_audience('count("order_placed") > 5').contact_chunks(session, tenant.id, world.clock.now(), 3)
        )
    assert [len(chunk) for chunk in chunks] == [3, 3] and nobody == []
