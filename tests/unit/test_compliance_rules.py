"""Each compliance rule at its boundaries, through the gate as the dispatcher calls it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from outbound.compliance import (
    Allow,
    Block,
    ConsentRecord,
    Defer,
    MessageFacts,
    decide,
    policy_for,
    resolve_jurisdiction,
    resolve_timezone,
)
from outbound.compliance.gate import RULES
from outbound.errors import InvalidInput

UTC = UTC
CHICAGO = ZoneInfo("America/Chicago")
SEOUL = ZoneInfo("Asia/Seoul")
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)


def local(zone: ZoneInfo, *parts: int) -> datetime:
    """A wall-clock time in `zone`, as aware UTC."""
    return datetime(*parts, tzinfo=zone).astimezone(UTC)


def consent(channel="sms", purpose="marketing", *, granted=True, night=False, at=LONG_AGO) -> ConsentRecord:
    return ConsentRecord(channel=channel, purpose=purpose, granted=granted, night=night, at=at, source="test")


def facts(**changes) -> MessageFacts:
    """A US marketing SMS at noon in Chicago to a contact who granted SMS marketing long ago."""
    values = dict(
        channel="sms",
        purpose="marketing",
        essential=False,
        to="+15125550100",
        jurisdiction="US",
        timezone="America/Chicago",
        now=local(CHICAGO, 2026, 11, 20, 12, 0),
        consents=(consent(),),
    )
    values.update(changes)
    return MessageFacts(**values)


def kr_facts(**changes) -> MessageFacts:
    """A KR marketing SMS at noon in Seoul to a contact with day-time SMS marketing consent."""
    values = dict(jurisdiction="KR", timezone="Asia/Seoul", to="+821012345678", now=local(SEOUL, 2026, 11, 20, 12, 0))
    values.update(changes)
    return facts(**values)


def gate(f: MessageFacts, **overrides) -> Allow | Defer | Block:
    return decide(f, policy_for(f.jurisdiction, overrides or None))


# -- no_address ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("to", [None, "", "   "])
def test_a_message_without_an_address_is_blocked(to):
    decision = gate(facts(to=to))
    assert isinstance(decision, Block) and decision.rule == "no_address"


# -- suppression --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("purpose", ["marketing", "survey"])
@pytest.mark.parametrize("reason", ["opt_out", "spam_report", "unsubscribe"])
def test_any_suppression_blocks_marketing_and_survey(purpose, reason):
    decision = gate(facts(purpose=purpose, suppressions=(reason,), consents=(consent(purpose=purpose),)))
    assert isinstance(decision, Block) and decision.rule == "suppression" and reason in decision.reason


def test_an_sms_opt_out_blocks_transactional_sms():
    decision = gate(facts(purpose="transactional", suppressions=("opt_out",), consents=()))
    assert isinstance(decision, Block) and decision.rule == "suppression"


def test_an_essential_transactional_sms_still_goes_after_stop():
    assert isinstance(gate(facts(purpose="transactional", essential=True, suppressions=("opt_out",))), Allow)


@pytest.mark.parametrize("reason", ["undeliverable", "hard_bounce"])
@pytest.mark.parametrize("channel", ["sms", "email"])
def test_an_unreachable_address_blocks_even_essential_transactional_messages(reason, channel):
    decision = gate(facts(channel=channel, purpose="transactional", essential=True, suppressions=(reason,)))
    assert isinstance(decision, Block) and decision.rule == "suppression"


@pytest.mark.parametrize("reason", ["unsubscribe", "spam_report"])
def test_an_email_unsubscribe_does_not_stop_transactional_email(reason):
    assert isinstance(
        gate(facts(channel="email", to="a@example.com", purpose="transactional", suppressions=(reason,))), Allow
    )


# -- consent ------------------------------------------------------------------------------------------------


def test_marketing_without_consent_is_blocked():
    decision = gate(facts(consents=()))
    assert isinstance(decision, Block) and decision.rule == "consent"


def test_marketing_consent_on_another_channel_does_not_count():
    assert isinstance(gate(facts(consents=(consent("email"),))), Block)


def test_revocation_after_grant_blocks():
    ledger = (consent(at=LONG_AGO), consent(granted=False, at=LONG_AGO + timedelta(days=1)))
    decision = gate(facts(consents=tuple(reversed(ledger))))
    assert isinstance(decision, Block) and decision.rule == "consent" and "revoked" in decision.reason


def test_grant_after_revocation_allows():
    ledger = (consent(granted=False, at=LONG_AGO), consent(at=LONG_AGO + timedelta(days=1)))
    assert isinstance(gate(facts(consents=ledger)), Allow)


def test_a_revocation_at_the_same_instant_as_a_grant_wins():
    assert isinstance(gate(facts(consents=(consent(), consent(granted=False)))), Block)


def test_kr_purchase_exactly_six_months_ago_counts_as_consent():
    now = local(SEOUL, 2026, 11, 20, 12, 0)
    assert isinstance(gate(kr_facts(consents=(), now=now, last_purchase_at=local(SEOUL, 2026, 5, 20, 12, 0))), Allow)


def test_kr_purchase_six_months_and_a_day_ago_does_not_count():
    now = local(SEOUL, 2026, 11, 20, 12, 0)
    decision = gate(kr_facts(consents=(), now=now, last_purchase_at=local(SEOUL, 2026, 5, 19, 12, 0)))
    assert isinstance(decision, Block) and decision.rule == "consent" and "6 months" in decision.reason


def test_the_purchase_window_counts_calendar_months_clamped_to_month_end():
    # 31 August minus six months is the last day of February, not 3 March.
    now = local(SEOUL, 2026, 8, 31, 12, 0)
    assert isinstance(gate(kr_facts(consents=(), now=now, last_purchase_at=local(SEOUL, 2026, 2, 28, 12, 0))), Allow)
    assert isinstance(gate(kr_facts(consents=(), now=now, last_purchase_at=local(SEOUL, 2026, 2, 27, 12, 0))), Block)


def test_kr_revocation_beats_a_recent_purchase():
    now = local(SEOUL, 2026, 11, 20, 12, 0)
    decision = gate(kr_facts(consents=(consent(granted=False),), now=now, last_purchase_at=now - timedelta(days=3)))
    assert isinstance(decision, Block) and decision.rule == "consent"


def test_us_marketing_does_not_accept_a_purchase_instead_of_consent():
    assert isinstance(gate(facts(consents=(), last_purchase_at=facts().now - timedelta(days=3))), Block)


def test_eu_soft_opt_in_allows_marketing_email_to_a_recent_customer():
    f = facts(
        jurisdiction="EU",
        timezone="Europe/Berlin",
        channel="email",
        to="a@example.com",
        consents=(),
        last_purchase_at=facts().now - timedelta(days=30),
    )
    assert isinstance(gate(f), Allow)


def test_eu_objection_on_sms_blocks_marketing_email_too():
    ledger = (consent("email"), consent("sms", granted=False, at=LONG_AGO + timedelta(days=1)))
    decision = gate(
        facts(
            jurisdiction="EU",
            timezone="Europe/Berlin",
            channel="email",
            to="a@example.com",
            consents=ledger,
            last_purchase_at=facts().now,
        )
    )
    assert isinstance(decision, Block) and decision.rule == "consent" and "GDPR" in decision.reason


def test_eu_email_consent_newer_than_an_sms_objection_allows_email():
    ledger = (consent("sms", granted=False), consent("email", at=LONG_AGO + timedelta(days=1)))
    assert isinstance(
        gate(facts(jurisdiction="EU", timezone="Europe/Berlin", channel="email", to="a@example.com", consents=ledger)),
        Allow,
    )


def test_outside_the_eu_a_revocation_on_sms_leaves_email_consent_alone():
    ledger = (consent("email"), consent("sms", granted=False, at=LONG_AGO + timedelta(days=1)))
    assert isinstance(gate(facts(channel="email", to="a@example.com", consents=ledger)), Allow)


@pytest.mark.parametrize("purpose", ["survey", "marketing"])
def test_a_survey_goes_with_survey_or_marketing_consent(purpose):
    assert isinstance(gate(facts(purpose="survey", consents=(consent(purpose=purpose),))), Allow)


def test_a_survey_without_consent_is_blocked():
    assert isinstance(gate(facts(purpose="survey", consents=())), Block)


def test_a_survey_revocation_stands_even_with_marketing_consent():
    ledger = (consent(purpose="survey", granted=False), consent(at=LONG_AGO + timedelta(days=1)))
    assert isinstance(gate(facts(purpose="survey", consents=ledger)), Block)


def test_transactional_needs_no_recorded_consent():
    assert isinstance(gate(facts(purpose="transactional", consents=())), Allow)


def test_a_revoked_transactional_consent_blocks_until_granted_again():
    revoked = consent(purpose="transactional", granted=False)
    assert isinstance(gate(facts(purpose="transactional", consents=(revoked,))), Block)
    regranted = consent(purpose="transactional", at=LONG_AGO + timedelta(hours=1))
    assert isinstance(gate(facts(purpose="transactional", consents=(revoked, regranted))), Allow)


# -- quiet_hours (US) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("hour, minute, allowed", [(20, 59, True), (21, 0, False), (7, 59, False), (8, 0, True)])
def test_us_marketing_sms_goes_only_between_eight_and_nine_local(hour, minute, allowed):
    decision = gate(facts(now=local(CHICAGO, 2026, 11, 20, hour, minute)))
    if allowed:
        assert isinstance(decision, Allow)
    else:
        assert isinstance(decision, Defer) and decision.rule == "quiet_hours"
        next_eight = local(CHICAGO, 2026, 11, 21 if hour >= 21 else 20, 8, 0)
        assert decision.until == next_eight and decision.until.tzinfo == UTC


def test_the_quiet_hours_reason_names_the_local_time_zone_and_window():
    decision = gate(facts(now=local(CHICAGO, 2026, 11, 20, 21, 30)))
    assert "21:30 in America/Chicago is outside 08:00–21:00 for marketing SMS" in decision.reason
    assert "next allowed 08:00 local" in decision.reason


def test_quiet_hours_defer_to_eight_local_when_dst_ends_overnight():
    # 31 Oct 2026 21:30 CDT (UTC-5); clocks fall back at 02:00, so 08:00 on 1 Nov is CST (UTC-6) = 14:00Z.
    decision = gate(facts(now=datetime(2026, 11, 1, 2, 30, tzinfo=UTC)))
    assert decision.until == datetime(2026, 11, 1, 14, 0, tzinfo=UTC)


def test_quiet_hours_defer_to_eight_local_when_dst_starts_overnight():
    # 7 Mar 2026 22:00 CST (UTC-6); clocks spring forward, so 08:00 on 8 Mar is CDT (UTC-5) = 13:00Z.
    decision = gate(facts(now=datetime(2026, 3, 8, 4, 0, tzinfo=UTC)))
    assert decision.until == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)


def test_quiet_hours_leave_marketing_email_and_transactional_sms_alone():
    night = local(CHICAGO, 2026, 11, 20, 23, 0)
    assert isinstance(gate(facts(now=night, channel="email", to="a@example.com", consents=(consent("email"),))), Allow)
    assert isinstance(gate(facts(now=night, purpose="transactional")), Allow)


def test_a_tenant_can_narrow_the_quiet_hours_window():
    decision = gate(facts(now=local(CHICAGO, 2026, 11, 20, 8, 30)), US={"quiet_hours": "09:00-20:00"})
    assert isinstance(decision, Defer) and decision.until == local(CHICAGO, 2026, 11, 20, 9, 0)


# -- kr_night -----------------------------------------------------------------------------------------------


def test_kr_marketing_sms_at_nine_pm_without_night_consent_defers_to_eight():
    decision = gate(kr_facts(now=local(SEOUL, 2026, 11, 20, 21, 0)))
    assert isinstance(decision, Defer) and decision.rule == "kr_night"
    assert decision.until == local(SEOUL, 2026, 11, 21, 8, 0)


def test_kr_marketing_sms_at_nine_pm_with_night_consent_goes():
    assert isinstance(gate(kr_facts(now=local(SEOUL, 2026, 11, 20, 21, 0), consents=(consent(night=True),))), Allow)


@pytest.mark.parametrize("hour, minute, allowed", [(20, 59, True), (7, 59, False), (8, 0, True)])
def test_kr_night_window_edges(hour, minute, allowed):
    decision = gate(kr_facts(now=local(SEOUL, 2026, 11, 20, hour, minute)))
    assert isinstance(decision, Allow) is allowed


def test_kr_marketing_email_at_night_is_exempt():
    f = kr_facts(
        now=local(SEOUL, 2026, 11, 20, 23, 0), channel="email", to="a@example.kr", consents=(consent("email"),)
    )
    assert isinstance(gate(f), Allow)


def test_a_newer_day_only_consent_replaces_an_older_night_consent():
    ledger = (consent(night=True), consent(night=False, at=LONG_AGO + timedelta(days=1)))
    assert isinstance(gate(kr_facts(now=local(SEOUL, 2026, 11, 20, 23, 0), consents=ledger)), Defer)


def test_a_purchase_basis_is_not_night_consent():
    now = local(SEOUL, 2026, 11, 20, 23, 0)
    decision = gate(kr_facts(now=now, consents=(), last_purchase_at=now - timedelta(days=10)))
    assert isinstance(decision, Defer) and decision.rule == "kr_night"


# -- frequency_cap ------------------------------------------------------------------------------------------


def test_two_marketing_messages_in_a_week_leave_room_for_a_third():
    now = facts().now
    sent = (("email", now - timedelta(days=6)), ("sms", now - timedelta(days=2)))
    assert isinstance(gate(facts(recent_marketing=sent)), Allow)


def test_three_marketing_messages_in_a_week_defer_until_the_oldest_is_a_week_old():
    now = facts().now
    oldest = now - timedelta(days=6)
    sent = (("sms", now - timedelta(days=2)), ("email", oldest), ("email", now - timedelta(days=3)))
    decision = gate(facts(recent_marketing=sent))
    assert isinstance(decision, Defer) and decision.rule == "frequency_cap"
    assert decision.until == oldest + timedelta(days=7)


def test_four_in_a_week_wait_until_two_have_aged_out():
    now = facts().now
    sent = tuple(("email", now - timedelta(days=d)) for d in (6, 5, 4, 3))
    assert gate(facts(recent_marketing=sent)).until == now - timedelta(days=5) + timedelta(days=7)


def test_one_sms_within_a_day_defers_the_next_sms_until_a_day_after_it():
    now = facts().now
    decision = gate(facts(recent_marketing=(("sms", now - timedelta(hours=23)),)))
    assert isinstance(decision, Defer) and decision.until == now + timedelta(hours=1)


def test_when_both_caps_hold_the_message_waits_for_the_later_release():
    now = facts().now
    sent = (("email", now - timedelta(days=6)), ("email", now - timedelta(days=3)), ("sms", now - timedelta(hours=1)))
    decision = gate(facts(recent_marketing=sent))
    assert decision.until == now + timedelta(days=1) and "cap 3" in decision.reason and "cap 1" in decision.reason


def test_the_daily_cap_is_per_channel_and_ends_after_exactly_a_day():
    now = facts().now
    assert isinstance(gate(facts(recent_marketing=(("email", now - timedelta(hours=1)),))), Allow)
    assert isinstance(gate(facts(recent_marketing=(("sms", now - timedelta(hours=24)),))), Allow)


def test_a_tenant_can_drop_messages_over_the_cap():
    now = facts().now
    decision = gate(facts(recent_marketing=(("sms", now - timedelta(hours=1)),)), over_cap="drop")
    assert isinstance(decision, Block) and decision.rule == "frequency_cap"


def test_transactional_ignores_quiet_hours_and_caps():
    now = local(CHICAGO, 2026, 11, 20, 23, 30)
    sent = tuple(("sms", now - timedelta(hours=h)) for h in (1, 2, 3, 4))
    assert isinstance(gate(facts(purpose="transactional", now=now, recent_marketing=sent)), Allow)


# -- the gate, policies, zones ------------------------------------------------------------------------------


def test_a_further_rule_plugs_in_after_the_shipped_ones():
    def postal_address(f, policy):
        return Block(rule="postal_address", reason="the tenant has no postal address") if f.channel == "email" else None

    rules = (*RULES, postal_address)
    email = facts(channel="email", to="a@example.com", consents=(consent("email"),))
    assert decide(email, policy_for("US"), rules).rule == "postal_address"
    assert decide(facts(consents=()), policy_for("US"), rules).rule == "consent"


def test_an_allow_says_which_rules_it_passed():
    decision = gate(facts())
    assert decision.rule == "allow" and "quiet_hours" in decision.reason and "frequency_cap" in decision.reason


def test_decisions_refuse_naive_times_and_missing_reasons():
    with pytest.raises(ValueError):
        Defer(until=datetime(2026, 1, 1), rule="quiet_hours", reason="x")
    with pytest.raises(ValueError):
        Block(rule="suppression", reason=" ")


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"quiet_hours": "8am-9pm"}, "compliance.quiet_hours"),
        ({"cap_per_window": 0}, "compliance.cap_per_window"),
        ({"US": {"frequency": 2}}, "compliance.US.frequency"),
        ({"over_cap": "ignore"}, "compliance.over_cap"),
    ],
)
def test_a_bad_tenant_override_names_its_field(overrides, field):
    with pytest.raises(InvalidInput) as error:
        policy_for("US", overrides)
    assert error.value.field == field


def test_jurisdiction_specific_overrides_apply_only_to_that_jurisdiction():
    overrides = {"cap_per_window": 5, "KR": {"cap_per_window": 2}}
    assert policy_for("US", overrides).cap_per_window == 5
    assert policy_for("KR", overrides).cap_per_window == 2


@pytest.mark.parametrize(
    "stored, phone, tenant, expected",
    [
        ("Asia/Seoul", "+15125550100", "UTC", "Asia/Seoul"),
        (None, "+15125550100", "Asia/Seoul", "America/Chicago"),
        ("Not/AZone", "+821012345678", "UTC", "Asia/Seoul"),
        (None, "+18005550100", "America/Denver", "America/Denver"),  # toll-free: the tenant's zone is a candidate
        (None, "+18005550100", "Asia/Seoul", "America/Adak"),  # else the first candidate listed
        (None, "not a number", "Europe/Berlin", "Europe/Berlin"),
        (None, None, "Nowhere/Atall", "UTC"),
    ],
)
def test_the_contact_time_zone_is_stored_else_from_the_phone_else_the_tenants(stored, phone, tenant, expected):
    assert resolve_timezone(stored, phone, tenant) == expected


@pytest.mark.parametrize(
    "contact, tenant, expected",
    [
        ("kr", "US", "KR"),
        (None, "EU", "EU"),
        ("mars", "US", "US"),
        ("", "nowhere", "default"),
        ("Default", "US", "default"),
    ],
)
def test_the_contact_jurisdiction_overrides_the_tenants(contact, tenant, expected):
    assert resolve_jurisdiction(contact, tenant) == expected
