"""Addresses: phone numbers in E.164, email addresses, and the hash suppressions and lists are kept by.

Pure: text in, text out. A number written without a leading `+` is read as a national number of a
default region: the contact's own jurisdiction when it is a country (`US`, `KR`), else the country of
its time zone (from the IANA `zone.tab`, e.g. `Europe/Berlin` → `DE`).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from typing import Protocol

import phonenumbers

from outbound.errors import InvalidInput


def normalise_phone(raw: str, default_region: str | None) -> str:
    """`raw` in E.164; a number without `+` is read in `default_region`. InvalidInput if not a real number."""
    text = (raw or "").strip()
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        hint = "" if text.startswith("+") or default_region else " (write it with + and the country code)"
        raise InvalidInput(f"not a valid phone number: {raw!r}{hint}", field="contact.phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def sender_number(raw: str | None, default_region: str | None) -> str | None:
    """A number messages are sent from or to, as compared: E.164 when it is a phone number (one written
    without `+` read in `default_region`), else its text without spaces (a short code, a sender id).
    None when there is none."""
    text = "".join((raw or "").split())
    if not text:
        return None
    try:
        return normalise_phone(text, default_region)
    except InvalidInput:
        return text


def is_sender_id(raw: str | None) -> bool:
    """Whether `raw` is an alphanumeric sender id ("VERIFY", "SHOP24"): a name shown in place of a number,
    which cannot be texted back. Phone numbers and short codes have no letters; a `channel:` address
    (whatsapp:+1…) is not a sender id either."""
    text = raw or ""
    return any(c.isalpha() for c in text) and ":" not in text


def normalise_email(raw: str) -> str:
    """`raw` trimmed and lower-cased; InvalidInput unless it has one `@` and a dotted domain."""
    text = (raw or "").strip().lower()
    local, _, domain = text.partition("@")
    if (
        text.count("@") != 1
        or not local
        or "." not in domain
        or domain.startswith(".")
        or domain.endswith(".")
        or any(c.isspace() for c in text)
    ):
        raise InvalidInput(f"not a valid email address: {raw!r}", field="contact.email")
    return text


class ContactAddresses(Protocol):
    """What `contact_address_hash` reads of a contact (a Contact row has these)."""

    @property
    def phone(self) -> str | None: ...

    @property
    def phone_hash(self) -> str | None: ...

    @property
    def email(self) -> str | None: ...


@lru_cache(maxsize=65536)  # pure, and dispatch asks it for every message of every batch
def address_hash(channel: str, address: str) -> str:
    """SHA-256 hex of the normalised address: E.164 phone for sms/voice, lower-case email.

    It never refuses a non-empty address, because suppressions must be kept
    even for numbers no one can parse (e.g. one a provider called invalid):
    such a phone is reduced to its digits and `+`, such an email to lower case.
    """
    text = (address or "").strip()
    if channel == "email":
        normalised = text.lower()
    elif channel in ("sms", "voice"):
        try:
            normalised = normalise_phone(text, None)
        except InvalidInput:
            normalised = "".join(c for c in text if c.isdigit() or c == "+")
            if not any(c.isdigit() for c in normalised):
                # An alphanumeric sender id ("VERIFY"): its letters are what tells it apart.
                normalised = "".join(text.split()).casefold()
    else:
        raise InvalidInput(f"unknown channel {channel!r}", field="channel")
    if not normalised:
        raise InvalidInput("an address is required", field="address")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def contact_address_hash(channel: str, contact: ContactAddresses) -> str:
    """`address_hash` of a contact's address on `channel` (which it must have), from the phone's stored
    hash when the row holds one (see Contact.phone_hash): no number parsed for each message or call."""
    if channel in ("sms", "voice"):
        return contact.phone_hash or address_hash(channel, contact.phone)
    return address_hash(channel, contact.email)


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    text = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    countries: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            countries[parts[2]] = parts[0]
    return countries


def default_region(jurisdiction: str | None, timezone: str | None) -> str | None:
    """The region for numbers written without `+`: a country jurisdiction, else the time zone's country."""
    if jurisdiction in ("US", "KR"):
        return jurisdiction
    return _zone_countries().get(timezone or "")
