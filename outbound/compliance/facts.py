"""The values the compliance gate decides on, built by the dispatcher from the database."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from outbound.clock import ensure_utc
from outbound.errors import InvalidInput
from outbound.vocabulary import Channel, Purpose

CHANNELS = (Channel.SMS, Channel.EMAIL, Channel.VOICE)
PURPOSES = (Purpose.TRANSACTIONAL, Purpose.SURVEY, Purpose.MARKETING)
JURISDICTIONS = ("US", "KR", "EU", "default")


@dataclass(frozen=True, kw_only=True)
class ConsentRecord:
    """One entry of a contact's consent ledger: granted or revoked, for a channel and purpose, at a time."""

    channel: str
    purpose: str
    granted: bool
    night: bool = False
    at: datetime
    source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", ensure_utc(self.at))


@dataclass(frozen=True, kw_only=True)
class MessageFacts:
    """Everything the gate needs to know about one due message, its contact and the time now."""

    channel: str
    purpose: str
    essential: bool = False
    to: str | None
    jurisdiction: str
    timezone: str
    now: datetime
    consents: tuple[ConsentRecord, ...] = ()
    suppressions: tuple[str, ...] = ()
    recent_marketing: tuple[tuple[str, datetime], ...] = ()
    last_purchase_at: datetime | None = None
    # The tenant has a postal address for its marketing email (US CAN-SPAM); the dispatcher fills it in.
    has_postal_address: bool = True
    # The tenant's rolling spam-complaint rate on email (complaints / emails sent), 0.0 to 1.0.
    complaint_rate: float = 0.0
    # When the tenant's newest Do-Not-Call list was published (calls only); None when none was imported.
    dnc_list_date: datetime | None = None

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise InvalidInput(f"unknown channel {self.channel!r} (one of {', '.join(CHANNELS)})", field="channel")
        if self.purpose not in PURPOSES:
            raise InvalidInput(f"unknown purpose {self.purpose!r} (one of {', '.join(PURPOSES)})", field="purpose")
        if self.jurisdiction not in JURISDICTIONS:
            raise InvalidInput(
                f"unknown jurisdiction {self.jurisdiction!r} (one of {', '.join(JURISDICTIONS)})", field="jurisdiction"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise InvalidInput(f"unknown time zone {self.timezone!r}", field="timezone") from None
        object.__setattr__(self, "now", ensure_utc(self.now))
        object.__setattr__(self, "consents", tuple(self.consents))
        object.__setattr__(self, "suppressions", tuple(self.suppressions))
        object.__setattr__(
            self,
            "recent_marketing",
            tuple((channel, ensure_utc(sent_at)) for channel, sent_at in self.recent_marketing),
        )
        if self.last_purchase_at is not None:
            object.__setattr__(self, "last_purchase_at", ensure_utc(self.last_purchase_at))
        if self.dnc_list_date is not None:
            object.__setattr__(self, "dnc_list_date", ensure_utc(self.dnc_list_date))

    @property
    def zone(self) -> ZoneInfo:
        """The contact's time zone."""
        return ZoneInfo(self.timezone)

    @property
    def local_now(self) -> datetime:
        """The time now on the contact's wall clock."""
        return self.now.astimezone(self.zone)

    def latest_consent(self, channel: str, purpose: str) -> ConsentRecord | None:
        """The ledger entry that counts for `channel` and `purpose`: the newest; on a tie, a revocation."""
        return latest(c for c in self.consents if c.channel == channel and c.purpose == purpose)


def latest(records: Iterable[ConsentRecord]) -> ConsentRecord | None:
    """The newest of `records`; at the same instant a revocation outranks a grant, and a grant without
    night-time consent outranks one with it, so doubt never sends."""
    return max(records, key=lambda c: (c.at, not c.granted, not c.night), default=None)
