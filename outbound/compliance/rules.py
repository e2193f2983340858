"""The compliance rules: each a pure function of (facts, policy) that forbids, delays, or has nothing to say.

A rule returns `Block` or `Defer` when it applies and `None` otherwise; the gate
runs them in order and the first answer wins. Rule names (`outbound.vocabulary.Rule`) are the
`rule` of the decisions they make and are stored with each message, so keep them stable.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from outbound.compliance.decisions import Block, Decision, Defer
from outbound.compliance.facts import MessageFacts, latest
from outbound.compliance.policy import Policy
from outbound.vocabulary import Channel, Purpose, Rule, SuppressionReason

# Reasons meaning nothing can reach the address at all, so even transactional and essential messages stop.
UNREACHABLE = frozenset({SuppressionReason.UNDELIVERABLE, SuppressionReason.HARD_BOUNCE, SuppressionReason.BOUNCE})


def no_address(facts: MessageFacts, policy: Policy) -> Decision | None:
    """Block a message whose contact has no address on its channel."""
    if facts.to is None or not facts.to.strip():
        return Block(rule=Rule.NO_ADDRESS, reason=f"the contact has no {_channel(facts.channel)} address")
    return None


def suppression(facts: MessageFacts, policy: Policy) -> Decision | None:
    """COMPLIANCE 1: a suppressed address gets no marketing or survey; an unreachable one gets nothing;
    an SMS opt-out also stops transactional SMS unless the campaign is essential."""
    reasons = sorted(set(facts.suppressions))
    if not reasons:
        return None
    unreachable = [r for r in reasons if r in UNREACHABLE]
    if unreachable:
        return Block(
            rule=Rule.SUPPRESSION,
            reason=(
                f"the {_channel(facts.channel)} address is suppressed as {', '.join(unreachable)}: "
                f"no message of any purpose can reach it"
            ),
        )
    if facts.purpose != Purpose.TRANSACTIONAL:
        return Block(
            rule=Rule.SUPPRESSION,
            reason=(
                f"the {_channel(facts.channel)} address is suppressed ({', '.join(reasons)}): "
                f"no {facts.purpose} messages"
            ),
        )
    # Email unsubscribes and complaints are about bulk mail; order updates still go. A STOP on SMS
    # (or any other SMS suppression) is a refusal of all texts, bar what the tenant marks essential.
    if facts.channel == Channel.EMAIL or facts.essential:
        return None
    return Block(
        rule=Rule.SUPPRESSION,
        reason=(
            f"the {_channel(facts.channel)} address opted out ({', '.join(reasons)}): "
            f"transactional messages stop too unless the campaign is essential"
        ),
    )


def consent(facts: MessageFacts, policy: Policy) -> Decision | None:
    """COMPLIANCE 8, 13, 18, 19: the consent each purpose needs, on the message's channel."""
    if facts.purpose == Purpose.TRANSACTIONAL:
        return _transactional_consent(facts)
    if facts.purpose == Purpose.SURVEY:
        return _survey_consent(facts)
    return _marketing_consent(facts, policy)


def quiet_hours(facts: MessageFacts, policy: Policy) -> Decision | None:
    """COMPLIANCE 7: marketing on the policy's channels only inside its local window; else wait for its start."""
    if (
        facts.purpose != Purpose.MARKETING
        or policy.quiet_hours is None
        or facts.channel not in policy.quiet_hours_channels
    ):
        return None
    start, end = policy.quiet_hours
    local = facts.local_now
    if inside(local.time(), start, end):
        return None
    until = next_local(facts.now, facts.zone, start)
    return Defer(
        until=until,
        rule=Rule.QUIET_HOURS,
        reason=(
            f"quiet hours: {local:%H:%M} in {facts.timezone} is outside {start:%H:%M}–{end:%H:%M} "
            f"for marketing {_channel(facts.channel)}; next allowed {start:%H:%M} local "
            f"({until.astimezone(facts.zone):%Y-%m-%d %H:%M %Z})"
        ),
    )


def kr_night(facts: MessageFacts, policy: Policy) -> Decision | None:
    """COMPLIANCE 14: marketing on the policy's channels inside its night window needs night consent;
    without it, wait for the window's end. Email is exempt."""
    if facts.purpose != Purpose.MARKETING or policy.night_window is None or facts.channel not in policy.night_channels:
        return None
    start, end = policy.night_window
    local = facts.local_now
    if not inside(local.time(), start, end):
        return None
    record = facts.latest_consent(facts.channel, Purpose.MARKETING)
    if record is not None and record.granted and record.night:
        return None
    until = next_local(facts.now, facts.zone, end)
    return Defer(
        until=until,
        rule=Rule.KR_NIGHT,
        reason=(
            f"night-time advertising: {local:%H:%M} in {facts.timezone} is inside {start:%H:%M}–{end:%H:%M} "
            f"and the contact has no night-time consent for marketing {_channel(facts.channel)}; "
            f"next allowed {end:%H:%M} local ({until.astimezone(facts.zone):%Y-%m-%d %H:%M %Z})"
        ),
    )


def frequency_cap(facts: MessageFacts, policy: Policy) -> Decision | None:
    """COMPLIANCE 4: at most N marketing messages per window across channels and M per channel per day.

    Over a cap, wait until enough past messages have aged out of the window
    (with exactly N in it, the oldest one + the window), or drop if the policy says so.
    """
    if facts.purpose != Purpose.MARKETING:
        return None
    waits: list[tuple[datetime, str]] = []
    if policy.cap_per_window is not None:
        sent = [at for _, at in facts.recent_marketing]
        wait = _over_cap(sent, facts.now, policy.cap_per_window, policy.cap_window)
        if wait:
            waits.append(
                (
                    wait,
                    f"{_count_in(sent, facts.now, policy.cap_window)} marketing messages in the last "
                    f"{_span(policy.cap_window)} (cap {policy.cap_per_window})",
                )
            )
    if policy.cap_per_channel is not None:
        sent = [at for channel, at in facts.recent_marketing if channel == facts.channel]
        wait = _over_cap(sent, facts.now, policy.cap_per_channel, policy.cap_channel_window)
        if wait:
            waits.append(
                (
                    wait,
                    f"{_count_in(sent, facts.now, policy.cap_channel_window)} marketing "
                    f"{_channel(facts.channel)} in the last {_span(policy.cap_channel_window)} "
                    f"(cap {policy.cap_per_channel})",
                )
            )
    if not waits:
        return None
    # Wait for the later release, so that at `until` neither cap still holds.
    until = max(at for at, _ in waits)
    over = " and ".join(text for _, text in waits)
    if policy.over_cap == "drop":
        return Block(rule=Rule.FREQUENCY_CAP, reason=f"frequency cap: {over}; the policy drops messages over the cap")
    return Defer(
        until=until, rule=Rule.FREQUENCY_CAP, reason=(f"frequency cap: {over}; next allowed {until:%Y-%m-%d %H:%M} UTC")
    )


# -- consent by purpose ------------------------------------------------------------------------------------


def _transactional_consent(facts: MessageFacts) -> Decision | None:
    # Consent to order updates comes with the order; only an explicit revocation withdraws it.
    record = facts.latest_consent(facts.channel, Purpose.TRANSACTIONAL)
    if record is not None and not record.granted:
        return Block(
            rule=Rule.CONSENT,
            reason=(f"the contact revoked transactional {_channel(facts.channel)} on {_when(record.at)}"),
        )
    return None


def _survey_consent(facts: MessageFacts) -> Decision | None:
    survey = facts.latest_consent(facts.channel, Purpose.SURVEY)
    if survey is not None and not survey.granted:
        # An explicit "no surveys" stands even when marketing is allowed: it is the narrower wish.
        return Block(
            rule=Rule.CONSENT, reason=f"the contact revoked survey {_channel(facts.channel)} on {_when(survey.at)}"
        )
    if survey is not None:
        return None
    marketing = facts.latest_consent(facts.channel, Purpose.MARKETING)
    if marketing is not None and marketing.granted:
        return None
    return Block(rule=Rule.CONSENT, reason=f"no survey or marketing consent for {_channel(facts.channel)}")


def _marketing_consent(facts: MessageFacts, policy: Policy) -> Decision | None:
    records = [
        c
        for c in facts.consents
        if c.purpose == Purpose.MARKETING
        and (c.channel == facts.channel or (policy.objection_covers_all_channels and not c.granted))
    ]
    record = latest(records)
    if record is not None and not record.granted:
        if record.channel != facts.channel:
            return Block(
                rule=Rule.CONSENT,
                reason=(
                    f"the contact objected to marketing on {_channel(record.channel)} on {_when(record.at)}; "
                    f"an objection covers every channel (GDPR Art. 21) until a newer {_channel(facts.channel)} consent"
                ),
            )
        return Block(
            rule=Rule.CONSENT, reason=(f"the contact revoked marketing {_channel(facts.channel)} on {_when(record.at)}")
        )
    if record is not None:
        return None
    # No record either way: a recent purchase may stand in (KR Art. 50①, EU soft opt-in). An explicit
    # revocation, handled above, always beats it.
    months = policy.purchase_basis_months
    if months is not None and facts.last_purchase_at is not None:
        cutoff = months_before(facts.local_now, months)
        if facts.last_purchase_at >= cutoff:
            return None
        return Block(
            rule=Rule.CONSENT,
            reason=(
                f"no marketing consent for {_channel(facts.channel)}, and the last purchase "
                f"({_when(facts.last_purchase_at)}) is more than {months} months ago"
            ),
        )
    return Block(rule=Rule.CONSENT, reason=f"no marketing consent for {_channel(facts.channel)}")


# -- time helpers ------------------------------------------------------------------------------------------


def inside(moment: time, start: time, end: time) -> bool:
    """Whether a local time of day is in [start, end); a window whose end is before its start spans midnight."""
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end


def next_local(now: datetime, zone: ZoneInfo, at: time) -> datetime:
    """The first instant after `now` when the wall clock in `zone` reads `at`, as aware UTC.

    Built from the local date and converted by zoneinfo, so a DST change
    between now and then moves the UTC instant, not the local hour.
    """
    day = now.astimezone(zone).date()
    while True:
        candidate = datetime.combine(day, at, tzinfo=zone).astimezone(UTC)
        if candidate > now:
            return candidate
        day += timedelta(days=1)


def months_before(local: datetime, months: int) -> datetime:
    """The same wall-clock time `months` calendar months earlier, as aware UTC; the day is clamped to
    the shorter month's end (31 August − 6 months = 28 or 29 February)."""
    return months_after(local, -months)


def months_after(local: datetime, months: int) -> datetime:
    """The same wall-clock time `months` calendar months later (earlier when negative), as aware UTC;
    the day is clamped to the shorter month's end."""
    index = local.year * 12 + local.month - 1 + months
    year, month = divmod(index, 12)
    day = min(local.day, monthrange(year, month + 1)[1])
    return local.replace(year=year, month=month + 1, day=day).astimezone(UTC)


def _over_cap(sent: list[datetime], now: datetime, cap: int, window: timedelta) -> datetime | None:
    # Count what is still inside the window (after now - window). With k ≥ cap of them, the
    # (k - cap + 1)-th oldest must age out before one more fits.
    inside_window = sorted(at for at in sent if at > now - window)
    if len(inside_window) < cap:
        return None
    return inside_window[len(inside_window) - cap] + window


def _count_in(sent: list[datetime], now: datetime, window: timedelta) -> int:
    return sum(1 for at in sent if at > now - window)


def _span(window: timedelta) -> str:
    hours = window / timedelta(hours=1)
    if hours > 24 and hours % 24 == 0:
        return f"{hours / 24:g} days"
    return f"{hours:g} h"


def _when(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC"


def _channel(channel: str) -> str:
    return _CHANNEL_NAMES.get(channel, channel)


_CHANNEL_NAMES: dict[str, str] = {Channel.SMS: "SMS", Channel.EMAIL: "email", Channel.VOICE: "voice"}
