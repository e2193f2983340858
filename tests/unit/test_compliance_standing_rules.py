"""The standing rules at their boundaries: KR 2-year reconfirmation, US postal address, the complaint breaker,
Do-Not-Call freshness; and the order in which the gate asks them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from outbound.compliance import Allow, Block, ConsentRecord, MessageFacts, decide, dnc_decision, policy_for
from outbound.compliance.gate import RULES
from outbound.errors import InvalidInput

UTC = UTC
SEOUL = ZoneInfo("Asia/Seoul")
CHICAGO = ZoneInfo("America/Chicago")


def local(zone, *parts) -> datetime:
    return datetime(*parts, tzinfo=zone).astimezone(UTC)


def facts(**changes) -> MessageFacts:
    """A KR marketing SMS at noon in Seoul, 20 Nov 2026, to a contact who granted SMS marketing on 20 Nov 2024 noon."""
    values = dict(
        channel="sms",
        purpose="marketing",
        to="+821012345678",
        jurisdiction="KR",
        timezone="Asia/Seoul",
        now=local(SEOUL, 2026, 11, 20, 12, 0),
        consents=(
            ConsentRecord(channel="sms", purpose="marketing", granted=True, at=local(SEOUL, 2024, 11, 20, 12, 1)),
        ),
    )
    values.update(changes)
    return MessageFacts(**values)


def gate(f: MessageFacts, **overrides):
    return decide(f, policy_for(f.jurisdiction, overrides or None))


def grant(at: datetime, channel="sms") -> ConsentRecord:
    return ConsentRecord(channel=channel, purpose="marketing", granted=True, at=at)


# -- kr_reconfirmation --------------------------------------------------------------------------------------


def test_kr_advertising_consent_a_minute_short_of_two_years_still_counts():
    assert isinstance(gate(facts()), Allow)


def test_kr_advertising_consent_exactly_two_years_old_has_lapsed():
    decision = gate(facts(consents=(grant(local(SEOUL, 2024, 11, 20, 12, 0)),)))
    assert isinstance(decision, Block) and decision.rule == "kr_reconfirmation"
    assert "2024-11-20" in decision.reason


def test_a_reconfirmed_consent_counts_again():
    old, renewed = grant(local(SEOUL, 2023, 1, 1, 9, 0)), grant(local(SEOUL, 2026, 10, 1, 9, 0))
    assert isinstance(gate(facts(consents=(old, renewed))), Allow)


def test_reconfirmation_is_a_kr_rule_only():
    f = facts(jurisdiction="EU", timezone="Europe/Berlin", consents=(grant(local(SEOUL, 2020, 1, 1, 9, 0)),))
    assert isinstance(gate(f), Allow)


def test_reconfirmation_leaves_transactional_messages_alone():
    f = facts(purpose="transactional", consents=(grant(local(SEOUL, 2020, 1, 1, 9, 0)),))
    assert isinstance(gate(f), Allow)


# -- postal_address (US rule 10) ----------------------------------------------------------------------------


def us_email(**changes) -> MessageFacts:
    values = dict(
        channel="email",
        to="a@example.com",
        jurisdiction="US",
        timezone="America/Chicago",
        now=local(CHICAGO, 2026, 11, 20, 12, 0),
        consents=(grant(local(CHICAGO, 2026, 1, 1, 9, 0), "email"),),
    )
    values.update(changes)
    return facts(**values)


def test_us_marketing_email_without_a_postal_address_is_blocked():
    decision = gate(us_email(has_postal_address=False))
    assert isinstance(decision, Block) and decision.rule == "postal_address"


def test_us_marketing_email_with_a_postal_address_goes():
    assert isinstance(gate(us_email(has_postal_address=True)), Allow)


def test_a_transactional_email_needs_no_postal_address():
    assert isinstance(gate(us_email(purpose="transactional", has_postal_address=False)), Allow)


# -- complaint_breaker (rule 12) ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate, blocked", [(0.0, False), (0.001, False), (0.003, False), (0.0031, True), (0.5, True)])
def test_marketing_email_pauses_only_above_three_per_thousand_complaints(rate, blocked):
    decision = gate(us_email(complaint_rate=rate))
    assert (isinstance(decision, Block) and decision.rule == "complaint_breaker") is blocked


def test_the_breaker_leaves_sms_and_transactional_email_alone():
    assert isinstance(gate(us_email(purpose="transactional", complaint_rate=0.9)), Allow)
    sms = facts(
        jurisdiction="US",
        timezone="America/Chicago",
        to="+15125550100",
        now=local(CHICAGO, 2026, 11, 20, 12, 0),
        consents=(grant(local(CHICAGO, 2026, 1, 1)),),
        complaint_rate=0.9,
    )
    assert isinstance(gate(sms), Allow)


def test_a_tenant_can_move_the_breaker_threshold():
    assert isinstance(gate(us_email(complaint_rate=0.004), complaint_pause_rate=0.01), Allow)
    with pytest.raises(InvalidInput, match="compliance.complaint_pause_rate"):
        policy_for("US", {"complaint_pause_rate": 3})


# -- dnc (rule 9) -------------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "age, rule", [(timedelta(days=31), "allow"), (timedelta(days=31, seconds=1), "dnc_stale"), (timedelta(0), "allow")]
)
def test_a_us_call_needs_a_dnc_list_no_older_than_31_days(age, rule):
    assert dnc_decision(listed=False, list_date=NOW - age, now=NOW, policy=policy_for("US")).rule == rule


def test_a_us_call_without_any_dnc_list_is_blocked():
    decision = dnc_decision(listed=False, list_date=None, now=NOW, policy=policy_for("US"))
    assert decision.rule == "dnc_stale" and "no Do-Not-Call list" in decision.reason


def test_a_listed_number_is_never_called():
    for jurisdiction in ("US", "KR", "EU", "default"):
        assert dnc_decision(listed=True, list_date=NOW, now=NOW, policy=policy_for(jurisdiction)).rule == "dnc"


def test_the_gate_blocks_a_voice_message_to_a_listed_number_with_the_dnc_rule():
    f = facts(
        channel="voice",
        jurisdiction="US",
        timezone="America/Chicago",
        to="+15125550100",
        now=local(CHICAGO, 2026, 11, 20, 12, 0),
        consents=(grant(local(CHICAGO, 2026, 1, 1), "voice"),),
        suppressions=("dnc",),
        dnc_list_date=NOW - timedelta(days=3),
    )
    decision = gate(f)
    assert isinstance(decision, Block) and decision.rule == "dnc"
    stale = gate(MessageFacts(**{**f.__dict__, "suppressions": (), "dnc_list_date": NOW - timedelta(days=40)}))
    assert isinstance(stale, Block) and stale.rule == "dnc_stale"


# -- order --------------------------------------------------------------------------------------------------


def test_blocks_come_before_deferrals_in_the_rule_order():
    names = [rule.__name__ for rule in RULES]
    for block in ("dnc", "suppression", "consent", "kr_reconfirmation", "postal_address", "complaint_breaker"):
        for defer in ("quiet_hours", "kr_night", "frequency_cap"):
            assert names.index(block) < names.index(defer)


def test_a_lapsed_consent_at_night_is_blocked_not_deferred():
    f = facts(now=local(SEOUL, 2026, 11, 20, 22, 0), consents=(grant(local(SEOUL, 2023, 1, 1, 9, 0)),))
    assert gate(f).rule == "kr_reconfirmation"
