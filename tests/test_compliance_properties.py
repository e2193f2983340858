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
# Local times on either side of the quiet-hours and night-window edges, and some in the middle of the night.
EDGES = [(7, 59), (8, 0), (20, 59), (21, 0), (0, 0), (2, 30), (12, 0)]
FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the oracle: COMPLIANCE.md read plainly, without the rule functions --------------------------------------


def newest(records):
    """The ledger entry that counts; at the same instant a revocation is taken as the later one."""
    ordered = sorted(records, key=lambda c: (c.at, 1 if not c.granted else 0, 0 if c.night else 1))
    return ordered[-1] if ordered else None


def six_months_before(now: datetime, zone: ZoneInfo) -> datetime:
    return months_before_plainly(now, zone, 6)


def months_before_plainly(now: datetime, zone: ZoneInfo, months: int) -> datetime:
    wall = now.astimezone(zone)
    year, month = wall.year, wall.month
    for _ in range(months):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    last_day = 31
    while True:
        try:
            return wall.replace(year=year, month=month, day=min(wall.day, last_day)).astimezone(UTC)
        except ValueError:
            last_day -= 1


def oracle_allows(f: MessageFacts) -> bool:
    """Whether any shipped rule forbids sending this message now."""
    zone = ZoneInfo(f.timezone)
    wall = f.now.astimezone(zone)
    if not f.to or not f.to.strip():
        return False
    found = set(f.suppressions)
    if found & {"undeliverable", "hard_bounce"}:
        return False
    if found and f.purpose in ("marketing", "survey"):
        return False
    if found and f.purpose == "transactional" and f.channel == "sms" and not f.essential:
        return False

    on_channel = [c for c in f.consents if c.channel == f.channel]
    if f.purpose == "transactional":
        latest = newest([c for c in on_channel if c.purpose == "transactional"])
        return latest is None or latest.granted
    if f.purpose == "survey":
        survey = newest([c for c in on_channel if c.purpose == "survey"])
        marketing = newest([c for c in on_channel if c.purpose == "marketing"])
        if survey is not None:
            return survey.granted
        return marketing is not None and marketing.granted

    # Marketing from here on.
    marketing_here = [c for c in on_channel if c.purpose == "marketing"]
    if f.jurisdiction == "EU":
        marketing_here += [
            c for c in f.consents if c.purpose == "marketing" and not c.granted and c.channel != f.channel
        ]
    latest = newest(marketing_here)
    if latest is None:
        if f.jurisdiction not in ("KR", "EU") or f.last_purchase_at is None:
            return False
        if f.last_purchase_at < six_months_before(f.now, zone):
            return False
    elif not latest.granted:
        return False
    elif f.jurisdiction == "KR" and latest.channel == f.channel and latest.at <= months_before_plainly(f.now, zone, 24):
        # An advertising consent two years old or more has lapsed unless reconfirmed.
        return False

    if f.jurisdiction == "US" and f.channel == "sms" and not (8 <= wall.hour < 21):
        return False
    if f.jurisdiction == "KR" and f.channel == "sms" and (wall.hour >= 21 or wall.hour < 8):
        sms_marketing = newest([c for c in on_channel if c.purpose == "marketing"])
        if sms_marketing is None or not sms_marketing.granted or not sms_marketing.night:
            return False

    in_week = [at for _, at in f.recent_marketing if at > f.now - timedelta(days=7)]
    in_day_here = [at for channel, at in f.recent_marketing if channel == f.channel and at > f.now - timedelta(days=1)]
    return len(in_week) < 3 and len(in_day_here) < 1


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
