"""Whatever the consents, suppressions, zones and clock: the gate allows exactly what a plain reading of
COMPLIANCE.md allows, explains every refusal, and its deferrals make progress."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from outbound.compliance import (
    Allow,
    Block,
    ConsentRecord,
    Defer,
    MessageFacts,
    decide,
    policy_for,
)

from helpers.compliance_oracle import EDGES, oracle_allows, six_months_before

UTC = UTC
ZONES = [
    "America/Chicago",
    "America/New_York",
    "America/Los_Angeles",
    "America/Phoenix",
    "Pacific/Honolulu",
    "America/Sao_Paulo",
    "Asia/Seoul",
    "Asia/Kolkata",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "UTC",
]
REASONS = ["opt_out", "hard_bounce", "spam_report", "undeliverable", "unsubscribe"]
RULE_NAMES = {
    "no_address",
    "suppression",
    "consent",
    "quiet_hours",
    "kr_night",
    "frequency_cap",
    "kr_reconfirmation",
    "postal_address",
    "complaint_breaker",
    "dnc",
    "dnc_stale",
}
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- random facts ---------------------------------------------------------------------------------------------


@st.composite
def message_facts(draw) -> MessageFacts:
    zone_name = draw(st.sampled_from(ZONES))
    zone = ZoneInfo(zone_name)
    if draw(st.booleans()):
        day = draw(st.dates(min_value=datetime(2025, 1, 1).date(), max_value=datetime(2028, 12, 31).date()))
        hour, minute = draw(st.sampled_from(EDGES))
        now = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)
    else:
        now = draw(
            st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))
        )
    channel = draw(st.sampled_from(["sms", "email"]))
    # Marketing is where most rules apply, so it comes up more often.
    purpose = draw(st.sampled_from(["transactional", "survey", "marketing", "marketing", "marketing"]))
    # A small pool of instants, so grants and revocations often tie.
    ago = st.one_of(st.sampled_from([0, 1, 60, 1440, 10_080]), st.integers(0, 2_000_000)).map(
        lambda minutes: now - timedelta(minutes=minutes)
    )
    record = st.builds(
        ConsentRecord,
        channel=st.sampled_from(["sms", "email"]),
        purpose=st.sampled_from(["marketing", "survey", "transactional"]),
        granted=st.booleans(),
        night=st.booleans(),
        at=ago,
        source=st.none(),
    )
    consents = draw(st.lists(record, max_size=4))
    if draw(st.booleans()):
        # Often a grant for this very message, so that the later rules get their turn.
        consents.append(
            draw(
                st.builds(
                    ConsentRecord,
                    channel=st.just(channel),
                    purpose=st.just(purpose),
                    granted=st.just(True),
                    night=st.booleans(),
                    at=ago,
                    source=st.none(),
                )
            )
        )
    purchase = draw(
        st.one_of(
            st.none(),
            st.integers(0, 400 * 1440).map(lambda minutes: now - timedelta(minutes=minutes)),
            st.sampled_from([-timedelta(days=1), -timedelta(minutes=1), timedelta(0), timedelta(minutes=1)]).map(
                lambda shift: six_months_before(now, zone) + shift
            ),
        )
    )
    sent = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["sms", "email"]),
                st.one_of(st.integers(0, 20 * 1440), st.sampled_from([1440, 7 * 1440])).map(
                    lambda minutes: now - timedelta(minutes=minutes)
                ),
            ),
            max_size=4,
        )
    )
    suppressed = draw(st.sampled_from([False, False, False, True]))
    return MessageFacts(
        channel=channel,
        purpose=purpose,
        essential=draw(st.booleans()),
        to=draw(st.sampled_from(["+15125550100"] * 8 + [None, " "])),
        jurisdiction=draw(st.sampled_from(["US", "KR", "EU", "default"])),
        timezone=zone_name,
        now=now,
        consents=tuple(consents),
        suppressions=tuple(draw(st.lists(st.sampled_from(REASONS), min_size=1, max_size=2))) if suppressed else (),
        recent_marketing=tuple(sent),
        last_purchase_at=purchase,
    )


def gate(f: MessageFacts):
    return decide(f, policy_for(f.jurisdiction))


# -- properties -----------------------------------------------------------------------------------------------


@FAST
@given(message_facts())
def test_the_gate_allows_exactly_what_no_rule_forbids(f):
    decision = gate(f)
    event(f"{f.purpose} → {decision.rule}")
    if isinstance(decision, Allow):
        assert oracle_allows(f), f"the gate allowed what a rule forbids: {decision}"
    else:
        assert not oracle_allows(f), f"the gate refused what no rule forbids: {decision}"


@FAST
@given(message_facts())
def test_every_defer_and_block_names_its_rule_and_reason_and_defers_into_the_future(f):
    decision = gate(f)
    if isinstance(decision, Defer):
        assert decision.until > f.now and decision.until.tzinfo == UTC
    if isinstance(decision, (Defer, Block)):
        assert decision.rule in RULE_NAMES and decision.reason.strip()


@FAST
@given(message_facts())
def test_deferring_makes_progress_until_the_message_is_allowed_or_blocked(f):
    decision, steps = gate(f), 0
    while isinstance(decision, Defer):
        later = gate(replace(f, now=decision.until))
        if isinstance(later, Defer):
            assert later.until > decision.until, f"{later} does not move past {decision}"
        decision, f, steps = later, replace(f, now=decision.until), steps + 1
        assert steps < 10, "deferrals keep coming"
