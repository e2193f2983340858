"""The demo scenario: deterministic, well-formed where it should be, broken only on purpose."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, time
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from phonenumbers import timezone as phone_zones

from outbound.demo import Scenario, build_scenario

SEEDS = (7, 1, 2024)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario()


def well_formed(scenario: Scenario, slug: str) -> list[dict]:
    return [e for e in scenario.events[slug] if e["id"] not in scenario.malformed[slug]]


def test_the_same_seed_builds_the_same_scenario_and_another_seed_a_different_one():
    assert build_scenario(7) == build_scenario(7)
    assert build_scenario(7).events != build_scenario(8).events


def test_start_is_aware_utc_and_the_run_outlasts_the_events(scenario):
    assert scenario.start.utcoffset().total_seconds() == 0
    assert scenario.start < scenario.events_until < scenario.end
    assert (scenario.events_until - scenario.start).days == 2


def test_tenants_are_a_korean_and_an_american_shop_with_sender_details(scenario):
    kr, us = scenario.tenant("seoul-shop"), scenario.tenant("maple-goods")
    assert (kr.jurisdiction, kr.timezone, kr.locale) == ("KR", "Asia/Seoul", "ko")
    assert (us.jurisdiction, us.timezone, us.locale) == ("US", "America/New_York", "en")
    assert kr.settings["optout_number"] == "080-555-0100"
    assert "Philadelphia" in us.settings["postal_address"]
    for t in scenario.tenants:
        assert phonenumbers.is_valid_number(phonenumbers.parse(t.settings["sms_from"]))


@pytest.mark.parametrize("seed", SEEDS)
def test_every_well_formed_event_has_the_envelope_shape_and_a_known_contact(seed):
    scenario = build_scenario(seed)
    for slug, contacts in scenario.contacts.items():
        known = {c["external_id"] for c in contacts}
        for e in well_formed(scenario, slug):
            assert set(e) == {"id", "type", "occurred_at", "contact", "data"}
            assert datetime.fromisoformat(e["occurred_at"]).tzinfo is not None, e
            assert e["contact"]["external_id"] in known, e


def test_well_formed_events_are_in_time_order_inside_the_event_window(scenario):
    for slug in scenario.contacts:
        times = [datetime.fromisoformat(e["occurred_at"]) for e in well_formed(scenario, slug)]
        assert times == sorted(times)
        assert scenario.start <= times[0] and times[-1] < scenario.events_until


def test_events_carry_the_contacts_own_utc_offset(scenario):
    for slug, contacts in scenario.contacts.items():
        zones = {c["external_id"]: c.get("timezone") for c in contacts}
        for e in well_formed(scenario, slug):
            zone = zones[e["contact"]["external_id"]]
            if zone:
                at = datetime.fromisoformat(e["occurred_at"])
                assert at.utcoffset() == at.astimezone(ZoneInfo(zone)).utcoffset()


@pytest.mark.parametrize("seed", SEEDS)
def test_every_phone_number_is_valid_and_unique_per_tenant(seed):
    scenario = build_scenario(seed)
    for contacts in scenario.contacts.values():
        phones = [c["phone"] for c in contacts if "phone" in c]
        assert len(phones) == len(set(phones))
        for phone in phones:
            assert phonenumbers.is_valid_number(phonenumbers.parse(phone)), phone


def test_american_area_codes_match_the_stored_time_zone(scenario):
    contacts = scenario.contacts["maple-goods"]
    zones = {c.get("timezone") for c in contacts}
    assert {"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Pacific/Honolulu"} <= zones
    for c in contacts:
        if "phone" in c and "timezone" in c:
            assert c["timezone"] in phone_zones.time_zones_for_number(phonenumbers.parse(c["phone"])), c


def test_some_contacts_lack_a_phone_or_an_email_but_none_lack_both(scenario):
    for contacts in scenario.contacts.values():
        assert any("phone" not in c for c in contacts)
        assert any("email" not in c for c in contacts)
        assert all("phone" in c or "email" in c for c in contacts)


def test_contact_names_are_hangul_for_the_korean_shop_and_latin_for_the_american(scenario):
    assert all("가" <= c["attributes"]["name"][0] <= "힣" for c in scenario.contacts["seoul-shop"])
    assert all(c["attributes"]["name"].replace(" ", "").isascii() for c in scenario.contacts["maple-goods"])


def test_every_consent_has_an_aware_time_and_known_channel_and_purpose(scenario):
    for contacts in scenario.contacts.values():
        for c in contacts:
            for item in c["consents"]:
                assert datetime.fromisoformat(item["at"]).tzinfo is not None
                assert item["channel"] in {"sms", "email", "voice"}
                assert item["purpose"] in {"marketing", "survey", "transactional"}
                assert item["source"] and item["text"]


def test_korean_contacts_mix_night_consent_revocations_and_no_sms_marketing(scenario):
    def sms_marketing(c):
        return [i for i in c["consents"] if (i["channel"], i["purpose"]) == ("sms", "marketing")]

    contacts = scenario.contacts["seoul-shop"]
    assert any(i["night"] for c in contacts for i in sms_marketing(c))
    assert any(i["granted"] and not i["night"] for c in contacts for i in sms_marketing(c))
    assert any(not sms_marketing(c) for c in contacts)
    revoked = [c for c in contacts if [i["granted"] for i in sms_marketing(c)] == [True, False]]
    assert revoked
    for c in revoked:
        grant, revoke = sms_marketing(c)
        assert datetime.fromisoformat(grant["at"]) < datetime.fromisoformat(revoke["at"])


def test_american_marketing_texts_have_written_consent_from_the_checkout_form(scenario):
    grants = [
        i
        for c in scenario.contacts["maple-goods"]
        for i in c["consents"]
        if (i["channel"], i["purpose"], i["granted"]) == ("sms", "marketing", True)
    ]
    assert grants and all(i["source"] == "checkout form" and "text me offers" in i["text"] for i in grants)
    assert any(not c["consents"] for c in scenario.contacts["maple-goods"])


@pytest.mark.parametrize("seed", SEEDS)
def test_about_forty_percent_of_abandoned_carts_are_ordered_later_with_the_same_cart(seed):
    scenario = build_scenario(seed)
    for slug in scenario.contacts:
        events = well_formed(scenario, slug)
        abandoned = {
            e["data"]["cart_id"]: datetime.fromisoformat(e["occurred_at"])
            for e in events
            if e["type"] == "cart_abandoned"
        }
        ordered = {
            e["data"]["cart_id"]
            for e in events
            if e["type"] == "order_placed" and e["data"]["cart_id"] in abandoned
            and datetime.fromisoformat(e["occurred_at"]) > abandoned[e["data"]["cart_id"]]
        }  # fmt: skip
        assert 0.25 <= len(ordered) / len(abandoned) <= 0.55, (slug, len(ordered), len(abandoned))


def test_ids_are_unique_except_the_one_event_sent_twice(scenario):
    for slug, events in scenario.events.items():
        counts = Counter(e["id"] for e in events)
        twice = {i for i, n in counts.items() if n > 1}
        assert twice == scenario.duplicates[slug] and len(twice) == 1
        copies = [e for e in events if e["id"] in twice]
        assert copies[0] == copies[1]
    all_ids = [e["id"] for events in scenario.events.values() for e in events]
    assert len(set(all_ids)) == len(all_ids) - 2


def test_each_malformed_event_breaks_exactly_the_rule_it_is_meant_to(scenario):
    for slug in scenario.contacts:
        broken = [e for e in scenario.events[slug] if e["id"] in scenario.malformed[slug]]
        assert len(broken) == 3
        assert sum("external_id" not in e["contact"] for e in broken) == 1
        assert sum(datetime.fromisoformat(e["occurred_at"]).tzinfo is None for e in broken) == 1
        assert sum(e["data"].get("score") == "high" for e in broken) == 1


def test_shoppers_are_active_late_at_night_in_their_own_time(scenario):
    late = (time(21), time(1))
    for slug in scenario.contacts:
        shopping = [e for e in well_formed(scenario, slug) if e["type"] in {"cart_abandoned", "order_placed"}]
        at_night = [e for e in shopping if not late[1] <= datetime.fromisoformat(e["occurred_at"]).time() < late[0]]
        assert len(at_night) >= 10, slug


def test_a_third_of_churn_scores_are_high(scenario):
    for slug in scenario.contacts:
        scores = [e["data"]["score"] for e in well_formed(scenario, slug) if e["type"] == "churn_risk_scored"]
        assert all(0 <= s <= 1 for s in scores)
        assert abs(sum(s >= 0.7 for s in scores) / len(scores) - 1 / 3) < 0.05


def test_the_stream_holds_every_event_type_in_a_realistic_volume(scenario):
    kinds = {
        "order_placed", "order_shipped", "shipping_delayed", "order_delivered", "cart_abandoned",
        "churn_risk_scored", "lead_created", "consent_changed",
    }  # fmt: skip
    for events in scenario.events.values():
        assert {e["type"] for e in events} == kinds
    assert 600 <= sum(len(events) for events in scenario.events.values()) <= 1200
    assert 300 <= sum(len(contacts) for contacts in scenario.contacts.values()) <= 400


def test_consent_changes_revoke_sms_marketing_in_the_consent_item_shape(scenario):
    for slug in scenario.contacts:
        changes = [e for e in well_formed(scenario, slug) if e["type"] == "consent_changed"]
        assert changes
        for e in changes:
            assert (e["data"]["channel"], e["data"]["purpose"], e["data"]["granted"]) == ("sms", "marketing", False)
            assert e["data"]["at"] == e["occurred_at"]


def test_jsonl_lines_read_back_as_the_same_contacts_and_events(scenario):
    for slug in scenario.contacts:
        assert [json.loads(line) for line in scenario.contacts_jsonl(slug).splitlines()] == scenario.contacts[slug]
        assert [json.loads(line) for line in scenario.events_jsonl(slug).splitlines()] == scenario.events[slug]


def test_describe_gives_a_short_summary_with_counts_per_tenant(scenario):
    text = scenario.describe()
    assert 3 <= len(text.splitlines()) <= 5
    for slug, events in scenario.events.items():
        line = next(line for line in text.splitlines() if line.startswith(slug))
        assert f"{len(scenario.contacts[slug])} contacts" in line and f"{len(events)} events" in line
        assert f"cart_abandoned {sum(e['type'] == 'cart_abandoned' for e in events)}" in line
