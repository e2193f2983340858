"""Which time zone and jurisdiction a contact is in, for the gate's local-time rules."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TypeGuard
from zoneinfo import available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezones

from outbound.compliance.facts import JURISDICTIONS

# Names that load as a zone on a server but are no place: the server's own clock, the zone of devices not yet
# set up, and the file of default rules. A contact's quiet hours must never depend on how the server is set.
_NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})


@cache  # reading the zone folders takes tens of milliseconds: once, when a zone is first checked
def real_zones() -> frozenset[str]:
    """The IANA time zone names (with their links, e.g. US/Eastern), without the names that are no place."""
    return frozenset(available_timezones()) - _NOT_PLACES


def real_zone(name: str) -> str:
    """`name` if it is an IANA time zone (Asia/Seoul, America/New_York, UTC); ValueError saying so otherwise."""
    if name not in real_zones():
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as America/New_York or Asia/Seoul)")
    return name


@lru_cache(maxsize=65536)  # pure, and parsing the phone number is the costly part of a decision
def resolve_timezone(contact_tz: str | None, phone: str | None, tenant_tz: str) -> str:
    """The IANA zone to evaluate local-time rules in for a contact.

    In order: the contact's stored zone (when it is a real zone); else the zone
    of the phone number (E.164) when the numbering plan names exactly one; when
    it names several (a US toll-free or mobile range, an Australian mobile), the
    tenant's zone if it is one of them, else the first listed (phonenumbers lists
    them alphabetically, so this is arbitrary but stable — store the contact's
    zone to be exact); else the tenant's zone; else UTC if even that is unknown.
    """
    if _is_zone(contact_tz):
        return contact_tz
    candidates = _phone_zones(phone)
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        return tenant_tz if tenant_tz in candidates else candidates[0]
    return tenant_tz if _is_zone(tenant_tz) else "UTC"


def resolve_jurisdiction(contact_j: str | None, tenant_j: str) -> str:
    """The contact's own jurisdiction when set and known, else the tenant's, else `default`."""
    for value in (contact_j, tenant_j):
        normalised = _jurisdiction(value)
        if normalised:
            return normalised
    return "default"


def _jurisdiction(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.lower() == "default":
        return "default"
    return text.upper() if text.upper() in JURISDICTIONS else None


def _is_zone(name: str | None) -> TypeGuard[str]:
    # A zone stored before names were checked (`localtime`) is not trusted: the phone's or the tenant's is used.
    return isinstance(name, str) and name in real_zones()


def _phone_zones(phone: str | None) -> list[str]:
    if not phone:
        return []
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return []
    return [zone for zone in phone_timezones.time_zones_for_number(number) if _is_zone(zone)]
