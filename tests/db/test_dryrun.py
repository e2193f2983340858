"""Dry run: the real pipeline over recorded events in a rolled-back transaction; who would get what, when and why not."""

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from typer.testing import CliRunner

from outbound.authoring.dryrun import dry_run
from outbound.cli import app
from outbound.db.models import Contact, Enrollment, Event, Message, MessageTransition

from helpers.campaigns import (  # noqa: F401 - fixture
    CAMPAIGN_TEMPLATES,
    CAMPAIGN_TRIGGERS,
    campaigns,
    make_world_fixture,
)
from helpers.definitions import CART, write_definitions

# 22:30 in New York: the 1h email is fine at night, the 24h SMS falls at 22:30 the next day and must wait.
NIGHT = datetime(2026, 11, 21, 3, 30, tzinfo=UTC)


def _recorded(tmp_path, lines):
    path = tmp_path / "recorded.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _event(n, who, at):
    return json.dumps(
        {
            "id": f"evt-{n}",
            "type": "cart_abandoned",
            "occurred_at": at.isoformat(),
            "contact": {"external_id": who},
            "data": {"cart_id": f"k{n}", "value": 150},
        }
    )


def _shop(world):
    tenant = world.tenant()
    world.contact(
        tenant,
        "opted-in",
        email="in@example.com",
        phone="+12025550143",
        consents=[("email", "marketing"), ("sms", "marketing")],
    )
    world.contact(tenant, "no-consent", email="none@example.com")
    return tenant


def _counts(world):
    with world.runtime.factory() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(t))
            for t in (Message, Enrollment, Event, Contact, MessageTransition)
        )


def test_a_dry_run_says_who_would_get_what_and_when_and_what_the_rules_defer_or_block(make_world, tmp_path, outbox):
    world = make_world()
    _shop(world)
    before = _counts(world)
    path = _recorded(
        tmp_path,
        [
            _event(1, "opted-in", NIGHT),
            _event(2, "no-consent", NIGHT),
            "{not json",
            _event(3, "newcomer", NIGHT + timedelta(minutes=5)),
        ],
    )
    report = dry_run(world.runtime.engine, world.runtime.settings, world.runtime.definitions, "cart", path)
    plan = {(m.contact, m.step): m for m in report.messages}
    assert (report.events, report.enrolled, len(report.errors)) == (3, 3, 1) and "line 3" in str(report.errors[0])
    email = plan[("opted-in", "email_1h")]
    assert (email.outcome, email.at) == ("would send", NIGHT + timedelta(hours=1))
    assert email.subject == "Your cart k1" and "Unsubscribe" in email.body
    sms = plan[("opted-in", "sms_24h")]
    assert sms.outcome == "would wait then send" and sms.waited[0][0] == "quiet_hours"
    assert sms.at == datetime(2026, 11, 22, 13, 0, tzinfo=UTC)  # 08:00 in New York
    blocked = plan[("no-consent", "email_1h")]
    assert (blocked.outcome, blocked.rule) == ("blocked", "consent")
    assert ("no-consent", "sms_24h") not in plan  # no phone: the step's condition leaves it out
    # Nothing stayed and nothing reached a provider.
    assert _counts(world) == before and outbox.sent == [] and report.sent_anything == 1 + 1


def test_a_draft_campaign_can_be_dry_run_and_recorded_ids_already_stored_are_processed_again(make_world, tmp_path):
    world = make_world(campaigns(cart=CART + "state: draft\n"))
    tenant = _shop(world)
    world.event(tenant, "cart_abandoned", "opted-in", {"cart_id": "k1", "value": 150}, id="evt-1", occurred_at=NIGHT)
    assert world.messages() == []  # a draft enrolls nobody for real
    path = _recorded(tmp_path, [_event(1, "opted-in", NIGHT)])
    report = dry_run(world.runtime.engine, world.runtime.settings, world.runtime.definitions, "cart", path)
    assert [(m.contact, m.step, m.outcome) for m in report.messages][:1] == [("opted-in", "email_1h", "would send")]
    assert world.messages() == []


def test_the_dry_run_command_prints_the_plan_and_changes_nothing(make_world, tmp_path, db_url):
    world = make_world()
    _shop(world)
    before = _counts(world)
    root = write_definitions(tmp_path / "cli-defs", campaigns(), CAMPAIGN_TRIGGERS, CAMPAIGN_TEMPLATES)
    path = _recorded(tmp_path, [_event(1, "opted-in", NIGHT), _event(2, "no-consent", NIGHT)])
    result = CliRunner().invoke(
        app,
        ["campaigns", "dry-run", "cart", "--events", str(path), "--db", db_url, "--definitions", str(root)],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert "2 enrolled" in result.output and "nothing was sent or kept" in result.output
    assert "would send" in result.output and "blocked" in result.output and "quiet_hours" in result.output
    as_json = CliRunner().invoke(
        app,
        ["campaigns", "dry-run", "cart", "--events", str(path), "--json", "--db", db_url, "--definitions", str(root)],
    )
    outcomes = sorted(json.loads(line)["outcome"] for line in as_json.output.splitlines() if line.strip())
    assert outcomes == ["blocked", "would send", "would wait then send"]
    assert _counts(world) == before


def test_traffic_the_campaign_already_handled_for_real_is_dry_run_afresh(make_world, tmp_path):
    world = make_world()
    tenant = _shop(world)
    world.event(tenant, "cart_abandoned", "opted-in", {"cart_id": "k1", "value": 150}, id="evt-1", occurred_at=NIGHT)
    assert len(world.messages(campaign="cart")) == 2  # enrolled for real: cart k1 is inside its dedupe window
    before = _counts(world)
    path = _recorded(tmp_path, [_event(1, "opted-in", NIGHT)])
    report = dry_run(world.runtime.engine, world.runtime.settings, world.runtime.definitions, "cart", path)
    assert report.enrolled == 1
    assert [(m.contact, m.step) for m in report.messages] == [("opted-in", "email_1h"), ("opted-in", "sms_24h")]
    assert _counts(world) == before
    with world.runtime.factory() as session:
        assert set(session.scalars(select(Enrollment.campaign))) == {"cart"}
