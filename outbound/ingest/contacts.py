"""Contacts and their consent ledger: upsert by external id, normalised addresses, consents appended.

Phone numbers are stored in E.164 (`outbound.addresses`). A number written without a leading `+`
is read as a national number of a default region: the contact's own jurisdiction when it is a
country (`US`, `KR`), else the tenant's, else the country of the tenant's time zone. Files of
contacts are read by `outbound.ingest.contact_files`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator
from sqlalchemy.orm import Session

from outbound.addresses import default_region, normalise_email, normalise_phone
from outbound.clock import Clock, ensure_utc
from outbound.compliance.zones import real_zone
from outbound.db import contacts as store
from outbound.db.models import Consent, Contact, Tenant
from outbound.errors import InvalidInput
from outbound.ingest.text import Storable, storable_json
from outbound.vocabulary import Channel, Purpose

CHANNELS = tuple(Channel)
PURPOSES = tuple(Purpose)
CONTACT_FIELDS = ("phone", "email", "timezone", "locale", "jurisdiction")


EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


def aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must have a time zone offset")
    try:
        value = ensure_utc(value)
    except OverflowError:
        raise ValueError("out of range") from None
    if not EARLIEST <= value < LATEST:  # any delay or window added to it must stay a date
        raise ValueError(f"out of range: must be from {EARLIEST.year} to {LATEST.year - 1}")
    return value


def bounded(max_length: int, min_length: int = 0) -> StringConstraints:
    """A string stripped of surrounding white space, of bounded length."""
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


AwareUTC = Annotated[datetime, AfterValidator(aware_utc)]
JsonObject = Annotated[dict[str, Any], AfterValidator(storable_json)]  # attributes, event data
ExternalId = Annotated[str, bounded(200, 1), Storable]
Label = Annotated[str, bounded(200), Storable]  # a consent's source: "checkout form"
LongText = Annotated[str, bounded(10_000), Storable]  # the wording a consent was given to
PhoneText = Annotated[str, bounded(64), Storable]
EmailText = Annotated[str, bounded(320), Storable]
TimeZoneName = Annotated[str, bounded(64, 1), Storable, AfterValidator(real_zone)]
Locale = Annotated[str, bounded(16, 2), Storable, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]


class ConsentIn(BaseModel):
    """One consent entry as it arrives: granted or revoked, for a channel and purpose, when and how."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms", "email", "voice"]
    purpose: Literal["marketing", "survey", "transactional"]
    granted: bool
    night: bool = False
    at: AwareUTC
    source: Label | None = None
    text: LongText | None = None


class ContactIn(BaseModel):
    """A contact as it arrives in an event or an import; only `external_id` is required."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    external_id: ExternalId
    phone: PhoneText | None = None
    email: EmailText | None = None
    timezone: TimeZoneName | None = None
    locale: Locale | None = None
    jurisdiction: Literal["US", "KR", "EU", "default"] | None = None
    attributes: JsonObject | None = None
    consents: list[ConsentIn] | None = None

    @field_validator("phone", "email", "timezone", "locale", "jurisdiction", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        # Order systems often send "" for unknown; that must not wipe or fail a stored value.
        return None if isinstance(value, str) and not value.strip() else value


def upsert_contact(session: Session, tenant: Tenant, contact_in: ContactIn, clock: Clock) -> Contact:
    """Create or update the tenant's contact by external id.

    Fields given overwrite; absent (or null) fields keep what is stored;
    attributes are merged key by key. Consents in `contact_in` are not
    recorded here (see `record_consent`). InvalidInput names a bad phone or email.
    """
    (result,) = upsert_contacts(session, tenant, [contact_in], clock)
    if isinstance(result, InvalidInput):
        raise result
    return result


def upsert_contacts(
    session: Session,
    tenant: Tenant,
    contacts_in: Sequence[ContactIn],
    clock: Clock,
    *,
    created: list[Contact] | None = None,
    attach: bool = True,
) -> list[Contact | InvalidInput]:
    """`upsert_contact` for each item in turn, with one query to find them all and one flush to write them.

    An item whose phone or email is invalid gets its InvalidInput in its place
    and changes nothing; a repeated external id sees what the items before it set.

    `created`, when given, receives the contacts this call made (once each, in order).
    With `attach=False` the contacts are read and written through the driver and kept out of the session
    (see `insert_objects`), for a caller that only reads them: plain objects holding what was stored.
    """
    known = store.find_contacts(session, tenant.id, [c.external_id for c in contacts_in], attach=attach)
    now = clock.now()
    updated: dict[int, Contact] = {}
    results: list[Contact | InvalidInput] = []
    made: list[Contact] = []
    for contact_in in contacts_in:
        contact = known.get(contact_in.external_id)
        try:
            values = _given_fields(tenant, contact_in, contact)
        except InvalidInput as error:
            results.append(error)
            continue
        if contact is None:
            contact = known[contact_in.external_id] = Contact(
                tenant_id=tenant.id,
                external_id=contact_in.external_id,
                attributes=dict(contact_in.attributes or {}),
                created_at=now,
                updated_at=now,
                **values,
            )
            made.append(contact)
        elif _update(contact, values, contact_in.attributes, now) and contact.id is not None:
            updated[contact.id] = contact
        results.append(contact)
    store.add_contacts(session, made, attach=attach)
    if not attach:
        store.write_plain_updates(session, list(updated.values()))
    session.flush()
    if created is not None:
        created.extend(made)
    return results


def _given_fields(tenant: Tenant, contact_in: ContactIn, contact: Contact | None) -> dict[str, Any]:
    # The stored fields `contact_in` sets, normalised; InvalidInput names a bad phone or email.
    values: dict[str, Any] = {}
    for name in ("timezone", "locale", "jurisdiction"):
        if getattr(contact_in, name) is not None:
            values[name] = getattr(contact_in, name)
    if contact_in.email is not None:
        values["email"] = normalise_email(contact_in.email)
    if contact_in.phone is not None:
        # A contact's own country beats the tenant's when reading a national number.
        jurisdiction = values.get("jurisdiction") or (contact.jurisdiction if contact else None)
        region = default_region(jurisdiction, None) or default_region(tenant.jurisdiction, tenant.timezone)
        values["phone"] = normalise_phone(contact_in.phone, region)
    return values


def _update(contact: Contact, values: dict[str, Any], attributes: dict[str, Any] | None, now: datetime) -> bool:
    """Set the given values on `contact`; whether any changed."""
    changed = False
    for name, value in values.items():
        if getattr(contact, name) != value:
            setattr(contact, name, value)
            changed = True
    if attributes:
        merged = {**(contact.attributes or {}), **attributes}
        if merged != contact.attributes:
            contact.attributes = merged  # a new dict, so the JSON column is seen as changed
            changed = True
    if changed:
        contact.updated_at = now
    return changed


def record_consent(session: Session, tenant: Tenant, contact: Contact, consent_in: ConsentIn, clock: Clock) -> Consent:
    """Append one entry to the contact's consent ledger; old entries are never changed.

    An entry identical to one already in the ledger (same channel, purpose,
    granted, night, time, source and text) is not added twice, so importing
    the same file again leaves the ledger as it was; the existing entry is returned.
    """
    same = store.same_consent(session, tenant.id, contact.id, consent_in.model_dump())
    if same is not None:
        return same
    consent = _ledger_entry(tenant, contact, consent_in, clock.now())
    store.add_consents(session, [consent])
    return consent


def _ledger_entry(tenant: Tenant, contact: Contact, consent_in: ConsentIn, now: datetime) -> Consent:
    return Consent(
        tenant_id=tenant.id,
        contact_id=contact.id,
        channel=consent_in.channel,
        purpose=consent_in.purpose,
        granted=consent_in.granted,
        night=consent_in.night,
        at=consent_in.at,
        source=consent_in.source,
        text=consent_in.text,
        recorded_at=now,
    )


def record_consents(
    session: Session, tenant: Tenant, entries: Sequence[tuple[Contact, ConsentIn]], clock: Clock
) -> None:
    """`record_consent` for each (contact, consent) in turn, with one query for the ledgers and one flush.

    An entry identical to one in the contact's ledger, or to one before it here, is not added.
    """
    if not entries:
        return
    known = store.consent_ledgers(session, tenant.id, [contact.id for contact, _ in entries])
    now = clock.now()
    added: list[Consent] = []
    for contact, consent_in in entries:
        entry = (
            contact.id,
            consent_in.channel,
            consent_in.purpose,
            consent_in.granted,
            consent_in.night,
            consent_in.at,
            consent_in.source,
            consent_in.text,
        )
        if entry in known:
            continue
        known.add(entry)
        added.append(_ledger_entry(tenant, contact, consent_in, now))
    store.add_consents(session, added)


def validation_problems(error: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(field path, message) pairs of a pydantic error, e.g. ('contact.external_id', 'Field required')."""
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = item["msg"].removeprefix("Value error, ")
        problems.append((path or "body", message))
    return problems
