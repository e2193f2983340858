"""A/B variants per step: a weighted, stable split; each message carries its variant; results per variant."""

from collections import Counter
from datetime import timedelta

import pytest

from outbound.definitions import DefinitionErrors, load_definitions
from outbound.definitions.schema import StepDef
from outbound.enrollment.plan import pick_variant
from outbound.reporting.attribution import variant_results

from helpers.campaigns import campaigns, make_world_fixture  # noqa: F401 - fixture
from helpers.definitions import write_definitions

AB = """
name: ab
kind: reminder
purpose: marketing
holdout: 0
attribution:
  window: 2d
steps:
  - id: email_1h
    channel: email
    delay: 1h
    template: cart_note
    variants:
      - id: a
        weight: 3
      - id: b
        weight: 1
        template: offer_note
"""
TRIGGERS_AB = """
triggers:
  - name: abandoned
    on: cart_abandoned
    campaign: ab
"""


def test_the_split_follows_the_weights_and_is_stable_per_contact():
    step = StepDef.model_validate(
        {
            "id": "s",
            "channel": "email",
            "template": "t",
            "variants": [{"id": "a", "weight": 3}, {"id": "b", "weight": 1}],
        }
    )
    picks = Counter(pick_variant(step, "shop", "ab", f"c{n}").id for n in range(8000))
    assert abs(picks["a"] / 8000 - 0.75) < 0.03
    assert [pick_variant(step, "shop", "ab", f"c{n}").id for n in range(100)] == [
        pick_variant(step, "shop", "ab", f"c{n}").id for n in range(100)
    ]


def test_each_message_carries_its_variant_and_is_rendered_from_that_variants_template(make_world, clock):
    world = make_world(campaigns(ab=AB), triggers=TRIGGERS_AB)
    tenant = world.tenant()
    for n in range(12):
        world.contact(tenant, f"c{n}", email=f"c{n}@example.com", consents=[("email", "marketing")])
        world.event(tenant, "cart_abandoned", f"c{n}", {"cart_id": f"k{n}", "value": 120})
    world.run(clock.now() + timedelta(hours=2))
    messages = world.messages(campaign="ab")
    assert {m.variant for m in messages} == {"a", "b"}
    for m in messages:
        assert (m.template, m.subject.startswith("Your cart")) == (
            ("cart_note", True) if m.variant == "a" else ("offer_note", False)
        )


def test_results_are_reported_per_variant_with_conversions_and_revenue(make_world, clock):
    world = make_world(campaigns(ab=AB), triggers=TRIGGERS_AB)
    tenant = world.tenant()
    for n in range(12):
        world.contact(tenant, f"c{n}", email=f"c{n}@example.com", consents=[("email", "marketing")])
        world.event(tenant, "cart_abandoned", f"c{n}", {"cart_id": f"k{n}", "value": 120})
    world.run(clock.now() + timedelta(hours=2))
    by_contact = {m.contact_id: m.variant for m in world.messages(campaign="ab")}
    buyers = ["c0", "c1", "c2"]
    for name in buyers:
        world.event(tenant, "order_placed", name, {"order_id": f"o-{name}", "value": 100, "currency": "USD"})
    with world.runtime.factory() as session:
        results = {r.variant: r for r in variant_results(session)}
    assert sum(r.sent for r in results.values()) == 12
    assert sum(r.converted for r in results.values()) == 3 and sum(r.revenue for r in results.values()) == 300
    assert set(results) == set(by_contact.values())


def test_a_variant_template_that_does_not_exist_is_an_error_at_its_line(tmp_path):
    root = write_definitions(
        tmp_path, {"ab": AB.replace("template: offer_note", "template: nowhere")}, triggers=TRIGGERS_AB
    )
    with pytest.raises(DefinitionErrors) as raised:
        load_definitions(root)
    [error] = raised.value.errors
    assert (error.line, error.field) == (17, "steps[0].variants[1].template") and "'nowhere'" in error.detail
