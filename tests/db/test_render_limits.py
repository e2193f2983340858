"""A message whose template goes past a sandbox limit with the data it is rendered with fails with the reason;
the worker goes on with the next message instead of hanging on it."""

from __future__ import annotations

from datetime import timedelta

from helpers.bounded import bounded
from helpers.campaigns import CAMPAIGN_TEMPLATES, campaigns, make_world_fixture  # noqa: F401 - fixture


def test_a_message_whose_template_multiplies_a_string_by_an_event_value_of_a_billion_fails_with_the_reason(
    make_world, clock
):
    # Validation renders with sample data, where the value is a word: only the real event shows the size.
    shouting = (
        "{% block subject %}Your cart{% endblock %}{% block text %}Your cart{{ '!' * event.data.shout }}\n"
        "{{ tenant.postal_address }} Unsubscribe: {{ links.unsubscribe }}{% endblock %}"
    )
    world = make_world(campaigns(), templates={**CAMPAIGN_TEMPLATES, "cart_note/email.en.j2": shouting})
    tenant = world.tenant()
    for name, shout in (("loud", 10**9), ("calm", 3)):
        world.contact(tenant, name, email=f"{name}@example.com", consents=[("email", "marketing")])
        world.event(tenant, "cart_abandoned", name, {"cart_id": f"k-{name}", "value": 120, "shout": shout})

    def dispatch():
        world.runtime.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
        world.run(clock.now() + timedelta(hours=2))
        return sorted(
            (m.contact_id, m.status, m.rule, m.reason) for m in world.messages(campaign="cart", channel="email")
        )

    outcome, messages = bounded(dispatch, seconds=60)
    assert outcome == "returned", messages
    (_, loud, rule, reason), (_, calm, _, _) = messages
    assert (loud, rule, calm) == ("failed", "render", "sent")
    assert reason == "templates/cart_note/email.en.j2:1: a repetition of over 100,000 characters or items"
