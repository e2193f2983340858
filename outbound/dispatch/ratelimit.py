"""Messages-per-second limits per sender (a phone number, a messaging service, an email domain).

A token bucket per sender on the injected clock: `rate` tokens a second, at most one
second's worth saved up. A message that finds no token is not dropped: it gets the time
its token will be there, and dispatch moves its `due_at` to then. Several messages
refused in one tick get successive slots, so the backlog drains at the rate.

The buckets live in the dispatching process: with several workers, each honours the
limit on its own, so set the rate to the provider's limit divided by the worker count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from outbound.vocabulary import Channel


@dataclass
class _Bucket:
    rate: float
    tokens: float
    updated: datetime
    # Slots already promised to refused messages at `updated`, so each gets its own.
    promised: int = 0


class SenderLimiter:
    """Token buckets per sender key; one per dispatcher."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, sender: str, rate: float | None, now: datetime) -> datetime | None:
        """Take a token for one message from `sender`: None when it may go now, else the time it may go.

        A rate of None or ≤ 0 means no limit.
        """
        if rate is None or rate <= 0:
            return None
        bucket = self._buckets.get(sender)
        if bucket is None:
            bucket = self._buckets[sender] = _Bucket(rate=rate, tokens=max(1.0, rate), updated=now)
        elapsed = (now - bucket.updated).total_seconds()
        if elapsed > 0:
            bucket.tokens = min(max(1.0, rate), bucket.tokens + elapsed * rate)
            bucket.updated, bucket.promised = now, 0
        bucket.rate = rate
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        bucket.promised += 1
        wait = (bucket.promised - bucket.tokens) / rate
        return now + timedelta(seconds=wait)


def sender_key(channel: str, sender: str | None, settings: Any) -> str:
    """The sender a limit applies to: the SMS number or messaging service, or the email domain."""
    if channel == Channel.SMS:
        if sender:
            return f"sms:{sender}"
        if settings.twilio_messaging_service_sid:
            return f"sms:{settings.twilio_messaging_service_sid}"
        return f"sms:{settings.twilio_from_number or 'default'}"
    address = sender or settings.sendgrid_from_email or ""
    return f"email:{address.rpartition('@')[2].lower() or 'default'}"


def rate_for(channel: str, tenant_settings: dict[str, Any] | None, settings: Any) -> float | None:
    """Messages per second for a channel: the tenant's `sms_rate_per_second` / `email_rate_per_second`
    setting when present, else OUTBOUND_SMS_RATE_PER_SECOND / OUTBOUND_EMAIL_RATE_PER_SECOND."""
    name = f"{channel}_rate_per_second"
    value = (tenant_settings or {}).get(name)
    if value is None:
        value = getattr(settings, name, None)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return getattr(settings, name, None)
