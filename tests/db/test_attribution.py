"""Attribution: an order within N days of a message, or of the (holdout) assignment, is a conversion; lift is reported."""

from datetime import timedelta

from sqlalchemy import select

from outbound.db.models import Conversion
from outbound.enrollment.plan import in_holdout
from outbound.reporting.attribution import lift_report

from helpers.campaigns import make_world_fixture  # noqa: F401 - fixture


def _scored(world, tenant, names):
    for name in names:
        world.contact(tenant, name, email=f"{name}@example.com", consents=[("email", "marketing")])
        world.event(tenant, "churn_risk_scored", name, {"score": 0.9})


def _split(names):
    held = [n for n in names if in_holdout("shop-us", "winback", n, 0.5)]
    return [n for n in names if n not in held], held


def _conversions(world):
    with world.runtime.factory() as session:
        return [
            (c.campaign, c.holdout, c.revenue, c.currency)
            for c in session.scalars(select(Conversion).order_by(Conversion.id))
        ]


def test_an_order_within_the_window_after_a_message_is_a_conversion_with_its_revenue(make_world, clock):
    world = make_world()
    tenant = world.tenant()
    treated, _ = _split([f"c{n}" for n in range(10)])
    _scored(world, tenant, treated[:1])
    world.run(clock.now() + timedelta(hours=1))
    clock.advance(timedelta(days=2))
    world.event(tenant, "order_placed", treated[0], {"order_id": "o-1", "value": 129.5, "currency": "USD"})
    assert _conversions(world) == [("winback", False, 129.5, "USD")]


def test_an_order_before_the_enrollment_or_after_the_window_is_not_a_conversion(make_world, clock):
    world = make_world()
    tenant = world.tenant()
    treated, _ = _split([f"c{n}" for n in range(10)])
    _scored(world, tenant, treated[:2])
    world.event(
        tenant,
        "order_placed",
        treated[0],
        {"order_id": "early", "value": 10},
        occurred_at=clock.now() - timedelta(minutes=5),
    )
    world.run(clock.now() + timedelta(hours=1))
    clock.advance(timedelta(days=8))  # the default window of a marketing campaign is 7 days
    world.event(tenant, "order_placed", treated[1], {"order_id": "late", "value": 10})
    assert _conversions(world) == []


def test_a_held_out_contact_who_orders_within_the_window_converts_for_the_holdout(make_world, clock):
    world = make_world()
    tenant = world.tenant()
    _, held = _split([f"c{n}" for n in range(10)])
    _scored(world, tenant, held[:1])
    world.run(clock.now() + timedelta(days=1))
    assert world.messages(campaign="winback") == []
    world.event(tenant, "order_placed", held[0], {"order_id": "o-h", "value": 40, "currency": "USD"})
    assert _conversions(world) == [("winback", True, 40.0, "USD")]


def test_lift_compares_the_conversion_rate_of_messaged_contacts_with_the_holdout(make_world, clock):
    world = make_world()
    tenant = world.tenant()
    treated, held = _split([f"c{n}" for n in range(40)])
    treated, held = treated[:10], held[:10]
    _scored(world, tenant, treated + held)
    world.run(clock.now() + timedelta(hours=1))
    clock.advance(timedelta(days=1))
    for name in treated[:4] + held[:2]:
        world.event(tenant, "order_placed", name, {"order_id": f"o-{name}", "value": 50, "currency": "USD"})
    with world.runtime.factory() as session:
        [lift] = [row for row in lift_report(session) if row.campaign == "winback"]
    assert (lift.treated.contacts, lift.reached, lift.treated.converted, lift.treated.revenue) == (10, 10, 4, 200.0)
    assert (lift.holdout.contacts, lift.holdout.converted, lift.holdout.revenue) == (10, 2, 100.0)
    assert lift.lift == 1.0  # 40% against 20%
    assert lift.incremental_revenue == 100.0  # (20 - 10 per contact) x 10 treated


def test_treated_contacts_are_measured_from_enrollment_like_the_holdout(make_world, clock):
    world = make_world()
    tenant = world.tenant()
    treated, _ = _split([f"c{n}" for n in range(10)])
    world.contact(tenant, treated[0], email=f"{treated[0]}@example.com")  # no consent: nothing will reach them
    world.event(tenant, "churn_risk_scored", treated[0], {"score": 0.9})
    world.run(clock.now() + timedelta(hours=1))
    world.event(tenant, "order_placed", treated[0], {"order_id": "o-1", "value": 30, "currency": "USD"})
    assert [m.status for m in world.messages(campaign="winback")][:1] == ["blocked"]
    assert _conversions(world) == [("winback", False, 30.0, "USD")]
    with world.runtime.factory() as session:
        [lift] = lift_report(session)
    assert (lift.treated.contacts, lift.reached, lift.treated.converted) == (1, 0, 1)
