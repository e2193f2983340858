"""Preview: every step of a campaign rendered for one contact per channel and locale, with SMS encoding, segments, cost."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from outbound.authoring.preview import preview_campaign
from outbound.cli import app
from outbound.db.models import Message
from outbound.definitions import load_definitions
from outbound.errors import NotFound

from helpers.campaigns import (  # noqa: F401 - fixture
    CAMPAIGN_TEMPLATES,
    CAMPAIGN_TRIGGERS,
    campaigns,
    make_world_fixture,
)
from helpers.definitions import write_definitions

REPO = Path(__file__).resolve().parents[2]


def _kr_contact(world):
    tenant = world.tenant(
        "shop-kr",
        jurisdiction="KR",
        timezone="Asia/Seoul",
        locale="ko",
        sms_cost_per_segment=13,
        sms_cost_currency="KRW",
    )
    world.contact(tenant, "kim", phone="+821012345678", email="kim@example.com", locale="ko")
    world.event(tenant, "cart_abandoned", "kim", {"cart_id": "k-77", "value": 150})
    return tenant


def test_each_step_is_rendered_in_every_channel_and_locale_with_sms_segments_and_cost(make_world):
    world = make_world()
    tenant = _kr_contact(world)
    before = len(world.messages())
    with world.runtime.factory() as session:
        preview = preview_campaign(session, world.runtime.definitions, world.runtime.settings, tenant, "cart", "kim")
    versions = {(v.step, v.channel, v.locale): v for v in preview.versions}
    assert set(versions) == {
        ("email_1h", "email", "en"),
        ("email_1h", "email", "ko"),
        ("sms_24h", "sms", "en"),
        ("sms_24h", "sms", "ko"),
    }
    assert preview.event.startswith("cart_abandoned") and preview.currency == "KRW"
    korean = versions[("sms_24h", "sms", "ko")]
    assert korean.chosen and korean.text.startswith("(광고) shop-kr 장바구니 k-77")
    assert (korean.sms.encoding, korean.sms.segments) == ("UCS-2", 1) and korean.cost == 13
    english = versions[("sms_24h", "sms", "en")]
    assert not english.chosen and english.sms.encoding == "GSM-7"
    assert versions[("email_1h", "email", "ko")].subject == "(광고) 장바구니 k-77"
    assert len(world.messages()) == before  # a preview stores nothing


def test_the_shipped_batch_win_back_previews_with_an_offer_code_and_korean_advertising_format(make_world):
    from outbound.bootstrap import SHIPPED_DEFINITIONS

    world = make_world()
    tenant = _kr_contact(world)
    shipped = load_definitions(SHIPPED_DEFINITIONS)
    with world.runtime.factory() as session:
        preview = preview_campaign(session, shipped, world.runtime.settings, tenant, "lapsed_winback", "kim")
    sms = next(v for v in preview.versions if v.channel == "sms" and v.chosen)
    assert sms.text.startswith("(광고)") and "무료수신거부 080-123-4567" in sms.text and "BACK-" in sms.text
    english_sms = next(v for v in preview.versions if v.channel == "sms" and v.locale == "en")
    assert english_sms.text.startswith("(광고)") and english_sms.text.endswith("무료수신거부 080-123-4567")


def test_an_unknown_contact_or_campaign_is_a_clear_error(make_world):
    world = make_world()
    tenant = _kr_contact(world)
    with world.runtime.factory() as session:
        with pytest.raises(NotFound, match="no contact 'lee'"):
            preview_campaign(session, world.runtime.definitions, world.runtime.settings, tenant, "cart", "lee")
        with pytest.raises(NotFound, match="no campaign 'nope'"):
            preview_campaign(session, world.runtime.definitions, world.runtime.settings, tenant, "nope", "kim")


def test_the_preview_command_prints_each_version_with_encoding_segments_and_cost(make_world, db_url, tmp_path):
    world = make_world()
    _kr_contact(world)
    before = len(world.messages())
    root = write_definitions(tmp_path / "cli-defs", campaigns(), CAMPAIGN_TRIGGERS, CAMPAIGN_TEMPLATES)
    result = CliRunner().invoke(
        app,
        [
            "campaigns",
            "preview",
            "cart",
            "--contact",
            "kim",
            "--tenant",
            "shop-kr",
            "--db",
            db_url,
            "--definitions",
            str(root),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "sms_24h (+1d) / sms / ko ★ — UCS-2" in result.output and "cost 13.0000 KRW" in result.output
    assert "email_1h (+1h) / email / en" in result.output
    with world.runtime.factory() as session:
        assert session.query(Message).count() == before
