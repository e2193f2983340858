"""Per-jurisdiction compliance settings: the defaults of COMPLIANCE.md, overridable per tenant."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import time, timedelta
from typing import Any

from outbound.compliance.facts import JURISDICTIONS
from outbound.errors import InvalidInput
from outbound.vocabulary import Channel

Window = tuple[time, time]


@dataclass(frozen=True, kw_only=True)
class Policy:
    """What the gate enforces for one jurisdiction. A `None` window or cap turns that check off."""

    jurisdiction: str
    # Marketing on these channels may only go inside this local window [start, end) (US TCPA 08:00–21:00).
    quiet_hours: Window | None = None
    quiet_hours_channels: tuple[str, ...] = (Channel.SMS, Channel.VOICE)
    # Marketing on these channels inside this local window [start, end) needs night consent (KR 21:00–08:00).
    night_window: Window | None = None
    night_channels: tuple[str, ...] = (Channel.SMS, Channel.VOICE)
    # A purchase this many calendar months back stands in for marketing consent (KR Art. 50①, EU soft opt-in).
    purchase_basis_months: int | None = None
    # A marketing revocation on any channel objects to marketing on all of them (GDPR Art. 21).
    objection_covers_all_channels: bool = False
    # Frequency caps on marketing: per contact across channels, and per contact and channel.
    cap_per_window: int | None = 3
    cap_window: timedelta = timedelta(days=7)
    cap_per_channel: int | None = 1
    cap_channel_window: timedelta = timedelta(hours=24)
    over_cap: str = "defer"  # or "drop": a message over the cap is blocked instead of waiting
    # Marketing email must carry the sender's postal address (US CAN-SPAM, 15 USC 7704).
    require_postal_address: bool = False
    # Spam-complaint rate (complaints / emails sent, rolling) above which marketing email pauses, and warns.
    complaint_pause_rate: float | None = 0.003
    complaint_warn_rate: float | None = 0.001
    # Advertising consent lapses this many calendar months after it was given (KR Art. 50⑧, Decree 62-3).
    reconfirm_months: int | None = None
    # Calls need a Do-Not-Call list published at most this many days ago (US 47 CFR 64.1200(c)(2)).
    dnc_max_age_days: int | None = None


DEFAULTS: dict[str, Policy] = {
    "US": Policy(jurisdiction="US", quiet_hours=(time(8), time(21)), require_postal_address=True, dnc_max_age_days=31),
    "KR": Policy(jurisdiction="KR", night_window=(time(21), time(8)), purchase_basis_months=6, reconfirm_months=24),
    "EU": Policy(jurisdiction="EU", purchase_basis_months=6, objection_covers_all_channels=True),
    "default": Policy(jurisdiction="default"),
}

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_FIELDS = {f.name for f in fields(Policy)} - {"jurisdiction"}


def policy_for(jurisdiction: str, overrides: dict[str, Any] | None = None) -> Policy:
    """The policy for `jurisdiction`, with a tenant's `overrides` applied.

    `overrides` is the tenant's `settings["compliance"]`: top-level keys apply to
    every jurisdiction, and a key naming a jurisdiction (`"US"`, `"KR"`, `"EU"`,
    `"default"`) holds overrides for that one only, applied last. Keys are the
    fields of `Policy`; windows are `"HH:MM-HH:MM"` or a pair of `"HH:MM"` (or
    null to turn them off), durations are hours (`cap_window_hours`,
    `cap_channel_window_hours`). An unknown key or bad value raises InvalidInput
    naming the field.
    """
    if jurisdiction not in DEFAULTS:
        raise InvalidInput(
            f"unknown jurisdiction {jurisdiction!r} (one of {', '.join(JURISDICTIONS)})", field="jurisdiction"
        )
    policy = DEFAULTS[jurisdiction]
    if not overrides:
        return policy
    if not isinstance(overrides, dict):
        raise InvalidInput("must be a mapping of policy settings", field="compliance")
    general = {k: v for k, v in overrides.items() if k not in DEFAULTS}
    specific = overrides.get(jurisdiction) or {}
    if not isinstance(specific, dict):
        raise InvalidInput("must be a mapping of policy settings", field=f"compliance.{jurisdiction}")
    policy = replace(policy, **_parse(general, "compliance"))
    return replace(policy, **_parse(specific, f"compliance.{jurisdiction}"))


def _parse(raw: dict[str, Any], prefix: str) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        field = f"{prefix}.{key}"
        if key in ("quiet_hours", "night_window"):
            parsed[key] = _window(value, field)
        elif key in ("quiet_hours_channels", "night_channels"):
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise InvalidInput("must be a list of channel names", field=field)
            parsed[key] = tuple(value)
        elif key in ("purchase_basis_months", "reconfirm_months", "dnc_max_age_days"):
            parsed[key] = _count(value, field, minimum=0)
        elif key in ("complaint_pause_rate", "complaint_warn_rate"):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1
            ):
                raise InvalidInput(
                    f"must be a fraction from 0 to 1 (0.003 is 0.3%) or null, not {value!r}", field=field
                )
            parsed[key] = None if value is None else float(value)
        elif key in ("cap_per_window", "cap_per_channel"):
            # A cap of 0 would defer forever with no time to wake up at; "no marketing" is a consent matter.
            parsed[key] = _count(value, field, minimum=1)
        elif key in ("cap_window_hours", "cap_channel_window_hours"):
            hours = _count(value, field, minimum=1)
            if hours is None:
                raise InvalidInput("must be a whole number of hours ≥ 1", field=field)
            parsed[key.removesuffix("_hours")] = timedelta(hours=hours)
        elif key in ("objection_covers_all_channels", "require_postal_address"):
            if not isinstance(value, bool):
                raise InvalidInput("must be true or false", field=field)
            parsed[key] = value
        elif key == "over_cap":
            if value not in ("defer", "drop", "block"):
                raise InvalidInput(f"must be 'defer' or 'drop', not {value!r}", field=field)
            parsed[key] = "drop" if value == "block" else value
        else:
            known = sorted(
                (_FIELDS - {"cap_window", "cap_channel_window"}) | {"cap_window_hours", "cap_channel_window_hours"}
            )
            raise InvalidInput(f"unknown setting (known: {', '.join(known)})", field=field)
    return parsed


def _window(value: Any, field: str) -> Window | None:
    if value is None:
        return None
    parts = value.split("-") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or len(parts) != 2:
        raise InvalidInput(f"must be 'HH:MM-HH:MM' or null, not {value!r}", field=field)
    start, end = (_time(str(p).strip(), field) for p in parts)
    if start == end:
        raise InvalidInput("start and end must differ", field=field)
    return start, end


def _time(text: str, field: str) -> time:
    match = _TIME.match(text)
    if not match:
        raise InvalidInput(f"not a time of day: {text!r} (use HH:MM)", field=field)
    return time(int(match.group(1)), int(match.group(2)))


def _count(value: Any, field: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidInput(f"must be a whole number ≥ {minimum} or null, not {value!r}", field=field)
    return value
