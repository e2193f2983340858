"""The calling rules: whether a customer may be called now.

A task is offered only inside calling hours in the customer's own time zone and never for a number
on the voice suppression list or the Do-Not-Call list (which must itself be fresh). The rules
(`calling_rules`, `decide_call`) are pure: values in, values out. `call_decisions` reads what they
need for a batch of customers from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from outbound.addresses import contact_address_hash
from outbound.clock import parse_duration
from outbound.compliance import (
    Allow,
    Block,
    Decision,
    Defer,
    dnc_decision,
    policy_for,
    resolve_jurisdiction,
    resolve_timezone,
)
from outbound.compliance.rules import inside, next_local
from outbound.db.models import Contact, DncImport, Suppression, Tenant
from outbound.errors import InvalidInput
from outbound.vocabulary import Channel, Rule, SuppressionReason

US_CALLING_HOURS = (time(8), time(21))  # 47 CFR 64.1200(c)(1)
DEFAULT_CALLING_HOURS = US_CALLING_HOURS
DEFAULT_RETRY_DELAY = timedelta(hours=2)
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, kw_only=True)
class CallingRules:
    """A tenant's calling rules for one customer: the local window [start, end), retry delay, attempt limit."""

    window: tuple[time, time] = DEFAULT_CALLING_HOURS
    retry_delay: timedelta = DEFAULT_RETRY_DELAY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS


def calling_rules(settings: dict[str, Any], *, us: bool) -> CallingRules:
    """The rules from a tenant's settings (`calling_hours` "HH:MM-HH:MM", `callback_retry_delay` "2h",
    `callback_max_attempts`); for a US customer the window never reaches outside 08:00–21:00."""
    window = parse_hours(settings.get("calling_hours"), "settings.calling_hours") or DEFAULT_CALLING_HOURS
    if us:
        window = (max(window[0], US_CALLING_HOURS[0]), min(window[1], US_CALLING_HOURS[1]))
    retry = settings.get("callback_retry_delay")
    try:
        retry_delay = parse_duration(retry) if retry is not None else DEFAULT_RETRY_DELAY
    except ValueError as error:
        raise InvalidInput(str(error), field="settings.callback_retry_delay") from None
    attempts = settings.get("callback_max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InvalidInput(f"must be a whole number ≥ 1, not {attempts!r}", field="settings.callback_max_attempts")
    return CallingRules(window=window, retry_delay=retry_delay, max_attempts=attempts)


def parse_hours(value: Any, field: str) -> tuple[time, time] | None:
    """'09:00-20:00' → (09:00, 20:00); None stays None. The window must not span midnight."""
    if value is None:
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in str(value).split("-"))
    except ValueError:
        raise InvalidInput(f"must be 'HH:MM-HH:MM', not {value!r}", field=field) from None
    if not start < end:
        raise InvalidInput(f"the start must be before the end, not {value!r}", field=field)
    return start, end


@dataclass(frozen=True, kw_only=True)
class CallFacts:
    """What decides whether a customer may be called now."""

    now: datetime
    zone: str
    window: tuple[time, time]
    phone: str | None
    suppressions: tuple[str, ...] = ()  # reasons the number is on the voice suppression list
    dnc: Decision = Allow()  # the Do-Not-Call decision for the number (listed, list fresh)


def decide_call(facts: CallFacts) -> Decision:
    """Allow, Defer(until the window opens, rule calling_hours) or Block(no_phone, dnc, suppression, dnc_stale)."""
    if not facts.phone:
        return Block(rule=Rule.NO_PHONE, reason="the customer has no phone number")
    if not isinstance(facts.dnc, Allow):
        return facts.dnc
    if facts.suppressions:
        return Block(
            rule=Rule.SUPPRESSION, reason=f"the number is suppressed for calls ({', '.join(facts.suppressions)})"
        )
    zone = ZoneInfo(facts.zone)
    start, end = facts.window
    local = facts.now.astimezone(zone)
    if not inside(local.time(), start, end):
        return Defer(
            until=next_local(facts.now, zone, start),
            rule=Rule.CALLING_HOURS,
            reason=f"it is {local:%H:%M} for the customer ({facts.zone}); calls only {start:%H:%M}–{end:%H:%M}",
        )
    return Allow(
        rule=Rule.CALLING_HOURS, reason=f"it is {local:%H:%M} for the customer, inside {start:%H:%M}–{end:%H:%M}"
    )


def call_decisions(
    session: Session, tenant: Tenant, contacts: list[Contact], now: datetime
) -> dict[int, tuple[str, Decision]]:
    """Per contact id: the customer's time zone and whether they may be called now. The same Do-Not-Call rule
    as `outbound.ingest.dnc.may_call` (the gate's `dnc_decision`), with one lookup for the whole batch of numbers."""
    hashes = {c.id: contact_address_hash(Channel.VOICE, c) for c in contacts if c.phone}
    reasons: dict[str, list[str]] = {}
    if hashes:
        for digest, reason in session.execute(
            select(Suppression.address_hash, Suppression.reason).where(
                Suppression.tenant_id == tenant.id,
                Suppression.channel == Channel.VOICE,
                Suppression.address_hash.in_(set(hashes.values())),
            )
        ):
            reasons.setdefault(digest, []).append(reason)
    list_date = session.scalar(select(func.max(DncImport.list_date)).where(DncImport.tenant_id == tenant.id))
    settings = tenant.settings or {}
    result = {}
    for contact in contacts:
        zone = resolve_timezone(contact.timezone, contact.phone, tenant.timezone)
        jurisdiction = resolve_jurisdiction(contact.jurisdiction, tenant.jurisdiction)
        us = jurisdiction == "US" or _us_number(contact.phone)
        found = reasons.get(hashes.get(contact.id, ""), [])
        dnc = dnc_decision(
            listed=SuppressionReason.DNC in found,
            list_date=list_date,
            now=now,
            policy=policy_for("US" if us else jurisdiction, settings.get("compliance")),
        )
        facts = CallFacts(
            now=now,
            zone=zone,
            window=calling_rules(settings, us=us).window,
            phone=contact.phone,
            suppressions=tuple(r for r in found if r != SuppressionReason.DNC),
            dnc=dnc,
        )
        result[contact.id] = (zone, decide_call(facts))
    return result


@lru_cache(maxsize=4096)
def _us_number(phone: str | None) -> bool:
    if not phone:
        return False
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(phone, None)) == "US"
    except phonenumbers.NumberParseException:
        return False
