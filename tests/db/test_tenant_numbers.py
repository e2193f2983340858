"""A tenant's SMS number (`sms_from`) is its own: a second tenant may not send from it, however it is written."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from outbound.db.models import Tenant
from outbound.errors import InvalidInput
from outbound.tenancy.tenants import update_settings

from helpers.cli import US_SHOP, invoke


@pytest.mark.parametrize("written", ["+12155550123", "+1 (215) 555-0123", "215-555-0123", " +1 215 555 0123 "])
def test_a_second_tenant_cannot_send_from_a_number_another_tenant_uses(make_tenant, session, written):
    make_tenant("maple-secret-client", sms_from="+12155550123")
    with pytest.raises(InvalidInput) as refused:
        make_tenant("birch", sms_from=written)
    assert refused.value.field == "settings.sms_from"
    assert "already used by another tenant" in str(refused.value)
    assert "maple" not in str(refused.value)  # which tenant is none of this one's business
    assert session.scalar(select(Tenant.id).where(Tenant.slug == "birch")) is None


def test_a_korean_number_written_nationally_is_the_same_as_in_e164(make_tenant):
    make_tenant("seoul", jurisdiction="KR", timezone="Asia/Seoul", locale="ko", sms_from="+8215885555")
    with pytest.raises(InvalidInput, match="already used by another tenant"):
        make_tenant("busan", jurisdiction="KR", timezone="Asia/Seoul", locale="ko", sms_from="1588-5555")


def test_a_tenants_number_is_kept_in_e164_and_other_numbers_are_free(make_tenant):
    maple = make_tenant("maple", sms_from="(215) 555-0123")
    birch = make_tenant("birch", sms_from="+12155550124")
    assert (maple.settings["sms_from"], birch.settings["sms_from"]) == ("+12155550123", "+12155550124")
    assert make_tenant("elm").settings.get("sms_from") is None  # sends from the shared number
    assert make_tenant("oak").settings.get("sms_from") is None


def test_changing_a_tenants_settings_to_another_tenants_number_is_refused(make_tenant, session):
    maple = make_tenant("maple", sms_from="+12155550123")
    birch = make_tenant("birch", sms_from="+12155550124")
    with pytest.raises(InvalidInput, match="already used by another tenant"):
        update_settings(session, birch, {"sms_from": "+1 215 555 0123"})
    assert birch.settings["sms_from"] == "+12155550124"
    # Its own number again, or a free one, is fine.
    update_settings(session, maple, {"sms_from": "215-555-0123", "sender_name": "Maple"})
    update_settings(session, birch, {"sms_from": "+12155550125"})
    session.commit()
    assert (maple.settings["sms_from"], maple.settings["sender_name"]) == ("+12155550123", "Maple")
    assert session.get(Tenant, birch.id).settings["sms_from"] == "+12155550125"


def test_changing_settings_still_requires_what_the_jurisdiction_requires(make_tenant, session):
    maple = make_tenant("maple")
    with pytest.raises(InvalidInput, match="postal_address"):
        update_settings(session, maple, {"postal_address": ""})


def test_tenants_create_with_a_number_another_tenant_uses_exits_1_saying_so(db_url):
    assert invoke(*US_SHOP, "--set", "sms_from=+12155550123", "--db", db_url).exit_code == 0
    birch = [*US_SHOP[:2], "birch", *US_SHOP[3:]]
    result = invoke(*birch, "--set", "sms_from=+1 215-555-0123", "--db", db_url)
    said = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "already used by another tenant" in said and "maple" not in said
    assert "birch" not in invoke("tenants", "list", "--db", db_url).output
