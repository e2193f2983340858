"""Rules that can only be checked on the text as rendered for one contact: the jurisdiction's
advertising format and a step's SMS segment limit. A message that breaks them is blocked with
the rule's name and never reaches the provider."""

from __future__ import annotations

from datetime import timedelta

from outbound.authoring.preview import preview_campaign

from helpers.campaigns import (  # noqa: F401 - fixture
    CAMPAIGN_TEMPLATES,
    CAMPAIGN_TRIGGERS,
    campaigns,
    make_world_fixture,
)
from helpers.definitions import CART

# Validation renders with sample data where every field is set, so this passes `campaigns validate`;
# a contact without a `tier` attribute renders the second branch, which lacks the KR advertising mark.
BRANCHING_KR_SMS = (
    "{% if contact.attributes.tier is defined %}(광고) {{ tenant.sender_name }} 장바구니 문의 {{ tenant.support_contact }}"
    "\n무료수신거부 {{ tenant.optout_number }}{% else %}{{ tenant.sender_name }} 장바구니가 기다려요"
    "{% endif %}"
)


def _kr_cart(world, tenant, n, attributes):
    world.contact(
        tenant,
        f"c{n}",
        phone=f"+8210555{n:05d}",
        locale="ko",
        timezone="Asia/Seoul",
        attributes=attributes,
        consents=[("sms", "marketing", True), ("email", "marketing")],
    )
    world.event(tenant, "cart_abandoned", f"c{n}", {"cart_id": f"k{n}", "value": 150})


def test_a_kr_advertisement_that_renders_without_its_mark_is_blocked_at_send_time(make_world, clock, outbox):
    templates = dict(CAMPAIGN_TEMPLATES, **{"cart_note/sms.ko.j2": BRANCHING_KR_SMS})
    world = make_world(campaigns(cart=CART.replace('    when: "contact.phone"\n', "")), templates=templates)
    tenant = world.tenant("kr-shop", jurisdiction="KR", timezone="Asia/Seoul", locale="ko")
    _kr_cart(world, tenant, 1, {"tier": "vip"})
    _kr_cart(world, tenant, 2, {})
    world.run(clock.now() + timedelta(days=2))
    sms = {m.contact_id: m for m in world.messages(channel="sms")}
    sent = [m for m in sms.values() if m.status == "sent"]
    blocked = [m for m in sms.values() if m.status == "blocked"]
    assert len(sent) == 1 and sent[0].body.startswith("(광고)")
    assert len(blocked) == 1, [(m.status, m.rule, m.reason) for m in world.messages()]
    assert blocked[0].rule == "message_format" and "(광고)" in blocked[0].reason
    assert [m.body for m in outbox.sent if m.channel == "sms"] == [sent[0].body]


def test_an_sms_over_the_steps_segment_limit_is_blocked_and_preview_says_so(make_world, clock, outbox):
    long_sms = "Your cart {{ event.data.cart_id }} is waiting: {{ event.data.note }}. Reply STOP to opt out"
    limited = CART.replace('    when: "contact.phone"\n', "    max_segments: 1\n")
    world = make_world(campaigns(cart=limited), templates=dict(CAMPAIGN_TEMPLATES, **{"cart_note/sms.en.j2": long_sms}))
    tenant = world.tenant()
    for n, note in ((1, "short"), (2, "x" * 200)):
        world.contact(tenant, f"c{n}", phone=f"+1202555{n:04d}", consents=[("sms", "marketing")])
        world.event(tenant, "cart_abandoned", f"c{n}", {"cart_id": f"k{n}", "value": 150, "note": note})
    world.run(clock.now() + timedelta(days=2))
    by_status = {m.status: m for m in world.messages(channel="sms")}
    assert set(by_status) == {"sent", "blocked"}
    assert by_status["blocked"].rule == "sms_length"
    assert "2 GSM-7 segments" in by_status["blocked"].reason and "limit of 1" in by_status["blocked"].reason
    assert all("x" * 200 not in m.body for m in outbox.sent)
    with world.runtime.factory() as session:
        preview = preview_campaign(
            session,
            world.runtime.definitions,
            world.runtime.settings,
            tenant,
            "cart",
            "c2",
            {"cart_id": "k2", "note": "x" * 200},
        )
    [sms_version] = [v for v in preview.versions if v.channel == "sms" and v.locale == "en"]
    # The preview names the problem as the gate's second phase recorded it when it blocked the message.
    assert sms_version.problems == (by_status["blocked"].reason,)


def test_max_segments_on_an_email_step_fails_validation(tmp_path):
    from outbound.definitions import DefinitionErrors, load_definitions

    from helpers.definitions import write_definitions

    bad = CART.replace("    delay: 1h\n", "    delay: 1h\n    max_segments: 2\n")
    root = write_definitions(tmp_path / "defs", campaigns(cart=bad), CAMPAIGN_TRIGGERS, CAMPAIGN_TEMPLATES)
    try:
        load_definitions(root)
    except DefinitionErrors as errors:
        [error] = errors.errors
        assert "cart.yaml" in str(error) and "max_segments limits SMS steps only" in str(error)
    else:
        raise AssertionError("max_segments on an email step loaded")


def test_an_eu_sms_that_shows_its_unsubscribe_link_carries_a_working_one_and_one_without_it_is_blocked(
    make_world, clock, outbox
):
    from outbound.rendering.links import read_unsubscribe_token

    # Validation's sample sets every attribute, so the file passes; a contact without `tier` gets no opt-out.
    branching = (
        "Your cart {{ event.data.cart_id }} is waiting.{% if contact.attributes.tier is defined %}"
        " Unsubscribe: {{ links.unsubscribe }}{% endif %}"
    )
    world = make_world(
        campaigns(cart=CART.replace('    when: "contact.phone"\n', "")),
        templates=dict(CAMPAIGN_TEMPLATES, **{"cart_note/sms.en.j2": branching}),
    )
    tenant = world.tenant("eu-shop", jurisdiction="EU", timezone="Europe/Berlin")
    for n, attributes in ((1, {"tier": "vip"}), (2, {})):
        world.contact(
            tenant,
            f"c{n}",
            phone=f"+4915112345{n:03d}",
            timezone="Europe/Berlin",
            attributes=attributes,
            consents=[("sms", "marketing"), ("email", "marketing")],
        )
        world.event(tenant, "cart_abandoned", f"c{n}", {"cart_id": f"k{n}", "value": 150})
    world.run(clock.now() + timedelta(days=2))
    by_status = {m.status: m for m in world.messages(channel="sms")}
    assert set(by_status) == {"sent", "blocked"}
    token = by_status["sent"].body.rsplit("/u/", 1)[1]
    assert read_unsubscribe_token(world.runtime.keyring, token, clock.now()) == (
        tenant.id,
        by_status["sent"].contact_id,
        "sms",
        "marketing",
    )
    assert by_status["blocked"].rule == "message_format" and "opt-out" in by_status["blocked"].reason
    assert [m.body for m in outbox.sent if m.channel == "sms"] == [by_status["sent"].body]
