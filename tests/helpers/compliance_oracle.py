"""The compliance oracle: COMPLIANCE.md read plainly, without the rule functions, for the property tests of the
gate (on its own and end to end through the dispatcher)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from outbound.compliance import MessageFacts

# Local times on either side of the quiet-hours and night-window edges, and some in the middle of the night.
EDGES = [(7, 59), (8, 0), (20, 59), (21, 0), (0, 0), (2, 30), (12, 0)]


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
