"""One clock passed in everywhere: the system's, or a simulated one for tests and the demo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = ensure_utc(start)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        when = ensure_utc(when)
        if when < self._now:
            raise ValueError(f"a simulated clock does not go back ({when} < {self._now})")
        self._now = when

    def advance(self, by: timedelta) -> datetime:
        self._now += by
        return self._now


def ensure_utc(value: datetime) -> datetime:
    """A naive datetime is refused; an aware one is converted to UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value!r} has no time zone")
    return value.astimezone(UTC)


LONGEST_DURATION = timedelta(days=3660)  # ten years: no delay, window or look-back is longer


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '1h', '2d', '1w', '1h30m' → timedelta."""
    import re

    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    text = str(text).strip()
    parts = re.findall(r"(\d+)\s*([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", text):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 1h, 2d, 1h30m)")
    total = timedelta()
    for number, unit in parts:
        if len(number) > 9:  # past any calendar: refused before the arithmetic overflows
            raise ValueError(f"not a duration: {text!r} is longer than {LONGEST_DURATION.days} days")
        total += timedelta(**{units[unit]: int(number)})
    if total > LONGEST_DURATION:
        raise ValueError(f"not a duration: {text!r} is longer than {LONGEST_DURATION.days} days")
    return total
