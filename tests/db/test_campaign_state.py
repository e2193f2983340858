"""Campaign states: draft enrolls nobody, paused holds its messages until resumed, finished stops; the CLI shows them."""

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from outbound.cli import app
from outbound.db.session import transaction
from outbound.enrollment.campaign_state import campaign_state, pause, resume
from outbound.errors import InvalidInput

from helpers.campaigns import (  # noqa: F401 - fixture
    CAMPAIGN_TEMPLATES,
    CAMPAIGN_TRIGGERS,
    campaigns,
    make_world_fixture,
)
from helpers.definitions import CART, write_definitions

runner = CliRunner()


def _cart(world, tenant, n):
    world.contact(tenant, f"c{n}", email=f"c{n}@example.com", consents=[("email", "marketing")])
    world.event(tenant, "cart_abandoned", f"c{n}", {"cart_id": f"k{n}", "value": 150})


def test_a_draft_campaign_loads_but_enrolls_nobody(make_world, clock):
    world = make_world(campaigns(cart=CART + "state: draft\n"))
    tenant = world.tenant()
    _cart(world, tenant, 1)
    assert world.messages() == []
    with world.runtime.factory() as session:
        assert campaign_state(session, tenant.id, world.runtime.definitions.campaigns["cart"], clock.now()) == "draft"


def test_a_paused_campaign_enrolls_nobody_and_holds_its_due_messages_until_resumed(make_world, clock, outbox):
    world = make_world()
    tenant = world.tenant()
    _cart(world, tenant, 1)
    cart = world.runtime.definitions.campaigns["cart"]
    with transaction(world.runtime.factory) as session:
        assert pause(session, tenant.id, cart, clock) == "paused"
    _cart(world, tenant, 2)
    world.run(clock.now() + timedelta(hours=3))
    [held] = world.messages(campaign="cart")
    assert held.status == "scheduled" and outbox.sent == []
    with transaction(world.runtime.factory) as session:
        assert resume(session, tenant.id, cart, clock) == "active"
    world.run(clock.now() + timedelta(minutes=1))
    assert [m.status for m in world.messages(campaign="cart")] == ["sent"]
    assert [m.to for m in outbox.sent] == ["c1@example.com"]


def test_pausing_is_per_tenant(make_world, clock, outbox):
    world = make_world()
    paused, running = world.tenant(), world.tenant("other-shop")
    with transaction(world.runtime.factory) as session:
        pause(session, paused.id, world.runtime.definitions.campaigns["cart"], clock)
    _cart(world, paused, 1)
    _cart(world, running, 2)
    world.run(clock.now() + timedelta(hours=2))
    assert [m.to for m in outbox.sent] == ["c2@example.com"]


def test_a_campaign_past_its_end_is_finished_and_cannot_be_paused(make_world, clock):
    world = make_world(campaigns(cart=CART + "ends_at: 2026-11-19T00:00:00Z\n"))
    tenant = world.tenant()
    _cart(world, tenant, 1)
    assert world.messages() == []
    with transaction(world.runtime.factory) as session, pytest.raises(InvalidInput, match="finished"):
        pause(session, tenant.id, world.runtime.definitions.campaigns["cart"], clock)


def test_the_cli_pauses_resumes_and_lists_campaigns_with_their_state(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    root = write_definitions(
        tmp_path / "defs",
        campaigns(later=CART.replace("name: cart", "name: later") + "state: draft\n"),
        CAMPAIGN_TRIGGERS,
        CAMPAIGN_TEMPLATES,
    )
    env = {"OUTBOUND_DEFINITIONS": str(root), "COLUMNS": "200"}
    assert runner.invoke(app, ["db", "upgrade", "--db", db]).exit_code == 0
    assert (
        runner.invoke(
            app,
            [
                "tenants",
                "create",
                "maple",
                "--jurisdiction",
                "US",
                "--timezone",
                "America/New_York",
                "--locale",
                "en",
                "--set",
                "postal_address=1 Main St",
                "--set",
                "support_contact=help@maple.example",
                "--db",
                db,
            ],
        ).exit_code
        == 0
    )
    paused = runner.invoke(app, ["campaigns", "pause", "cart", "--db", db], env=env)
    assert paused.exit_code == 0 and "cart is paused for maple" in paused.output
    listed = runner.invoke(app, ["campaigns", "list", "--db", db], env=env)
    assert "maple: paused" in listed.output and "maple: draft" in listed.output
    refused = runner.invoke(app, ["campaigns", "pause", "later", "--db", db], env=env)
    assert refused.exit_code == 1 and "draft" in refused.output
    resumed = runner.invoke(app, ["campaigns", "resume", "cart", "--tenant", "maple", "--db", db], env=env)
    assert resumed.exit_code == 0 and "cart is active for maple" in resumed.output
    assert "maple: active" in runner.invoke(app, ["campaigns", "list", "--db", db], env=env).output


def test_listing_campaigns_without_a_database_shows_the_files_and_creates_nothing(tmp_path):
    missing = tmp_path / "none.db"
    root = write_definitions(
        tmp_path / "defs",
        campaigns(later=CART.replace("name: cart", "name: later") + "state: draft\n"),
        CAMPAIGN_TRIGGERS,
        CAMPAIGN_TEMPLATES,
    )
    listed = runner.invoke(
        app,
        ["campaigns", "list", "--db", f"sqlite:///{missing}"],
        env={"OUTBOUND_DEFINITIONS": str(root), "COLUMNS": "200"},
    )
    assert listed.exit_code == 0
    assert "draft" in listed.output and "active" in listed.output
    assert not missing.exists()
