"""Holdout: a fixed, deterministic share of each campaign's audience is recorded and never messaged."""

from datetime import timedelta

from sqlalchemy import select

from outbound.db.models import Enrollment
from outbound.definitions import load_definitions
from outbound.enrollment.plan import in_holdout

from helpers.campaigns import WINBACK, campaigns, make_world_fixture  # noqa: F401 - fixture
from helpers.definitions import write_definitions


def test_the_held_out_share_is_within_tolerance_over_many_contacts():
    for share in (0.1, 0.2, 0.5):
        held = sum(in_holdout("shop", "winback", f"cust-{n}", share) for n in range(20_000))
        # Binomial standard deviation at n=20000 is at most 0.0036; allow about four of them.
        assert abs(held / 20_000 - share) < 0.015, (share, held)


def test_the_same_contact_is_always_on_the_same_side_and_campaigns_split_independently():
    sides = [in_holdout("shop", "winback", f"cust-{n}", 0.2) for n in range(2000)]
    assert sides == [in_holdout("shop", "winback", f"cust-{n}", 0.2) for n in range(2000)]
    other = [in_holdout("shop", "cart", f"cust-{n}", 0.2) for n in range(2000)]
    assert sides != other
    assert not any(in_holdout("shop", "winback", f"cust-{n}", 0.0) for n in range(2000))


def test_held_out_enrollments_are_recorded_and_get_no_messages(make_world, clock, outbox):
    world = make_world()  # the kit's winback holds out half
    tenant = world.tenant()
    for n in range(40):
        world.contact(tenant, f"c{n}", email=f"c{n}@example.com", consents=[("email", "marketing")])
        world.event(tenant, "churn_risk_scored", f"c{n}", {"score": 0.9})
    world.run(clock.now() + timedelta(days=3))
    with world.runtime.factory() as session:
        enrollments = session.scalars(select(Enrollment).where(Enrollment.campaign == "winback")).all()
    held = [e for e in enrollments if e.holdout]
    messaged = {m.contact_id for m in world.messages(campaign="winback")}
    assert 10 <= len(held) <= 30 and len(enrollments) == 40
    assert messaged == {e.contact_id for e in enrollments if not e.holdout}
    assert all(e.status == "completed" and "held out" in e.end_reason for e in held)
    assert {message.to for message in outbox.sent} == {
        f"c{n}@example.com" for n in range(40) if not in_holdout("shop-us", "winback", f"c{n}", 0.5)
    }


def test_a_transactional_campaign_cannot_hold_anyone_out(tmp_path):
    import pytest

    from outbound.definitions import DefinitionErrors

    root = write_definitions(tmp_path, {"delay": campaigns()["delay"] + "holdout: 0.1\n"}, triggers="triggers: []\n")
    with pytest.raises(DefinitionErrors) as raised:
        load_definitions(root)
    assert "transactional campaign cannot hold contacts out" in str(raised.value)
    assert WINBACK  # the kit's marketing campaign with a holdout loads (used above)
