"""Contacts and their consent ledger: upsert, normalisation, and file import.

Phone numbers are stored in E.164 (`outbound.addresses`). A number written without a leading `+`
is read as a national number of a default region: the contact's own jurisdiction when it is a
country (`US`, `KR`), else the tenant's, else the country of the tenant's time zone.

`import_contacts` reads `.jsonl` (or `.ndjson`) and `.csv` files.

JSONL: one contact object per line, the event envelope's `contact` fields
(`external_id`, `phone`, `email`, `timezone`, `locale`, `jurisdiction`,
`attributes`) plus `consents`, a list of consent items
(`{"channel", "purpose", "granted", "night", "at", "source", "text"}`).

CSV: a header row, then one contact per row. Columns:

- `external_id` (required), `phone`, `email`, `timezone`, `locale`, `jurisdiction`;
- `consent_<channel>_<purpose>` (e.g. `consent_sms_marketing`,
  `consent_email_marketing`, `consent_sms_transactional`): `true`/`false`
  (also `yes`/`no`, `1`/`0`); an empty cell records nothing;
- `consent_at` (ISO 8601 with an offset; required when a consent cell is
  filled), `consent_source`, `consent_text`, `consent_night` (`true`/`false`,
  KR consent to advertising at night) apply to every consent of the row;
- any other column goes into the contact's `attributes` (empty cells skipped).

An empty cell leaves the stored field as it was. Line numbers in errors are
those of the file (the CSV header is line 1).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from outbound.addresses import default_region, normalise_email, normalise_phone
from outbound.clock import Clock, ensure_utc
from outbound.db import direct
from outbound.db.bulk import assign_ids, insert_objects, update_by_id
from outbound.db.models import Consent, Contact, Tenant
from outbound.errors import InvalidInput

CHANNELS = ("sms", "email", "voice")
PURPOSES = ("marketing", "survey", "transactional")
CONTACT_FIELDS = ("phone", "email", "timezone", "locale", "jurisdiction")
# External ids per look-up query: far below any database's limit on bound parameters.
LOOKUP_CHUNK = 500
IMPORT_CHUNK = 500  # lines of a contacts file written together


def _no_nul(value: str) -> str:
    # PostgreSQL text columns refuse NUL characters; refuse them here with a field name instead.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _real_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must have a time zone offset")
    try:
        return ensure_utc(value)
    except OverflowError:
        raise ValueError("out of range") from None


def BoundedStr(max_length: int, min_length: int = 0) -> Any:  # noqa: N802 - used as a type
    """A stripped string of bounded length without NUL characters."""
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_no_nul),
    ]


AwareUTC = Annotated[datetime, AfterValidator(_aware_utc)]
TimeZoneName = Annotated[BoundedStr(64, 1), AfterValidator(_real_zone)]
Locale = Annotated[BoundedStr(16, 2), StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")]


class ConsentIn(BaseModel):
    """One consent entry as it arrives: granted or revoked, for a channel and purpose, when and how."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["sms", "email", "voice"]
    purpose: Literal["marketing", "survey", "transactional"]
    granted: bool
    night: bool = False
    at: AwareUTC
    source: BoundedStr(200) | None = None
    text: BoundedStr(10_000) | None = None


class ContactIn(BaseModel):
    """A contact as it arrives in an event or an import; only `external_id` is required."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    external_id: BoundedStr(200, 1)
    phone: BoundedStr(64) | None = None
    email: BoundedStr(320) | None = None
    timezone: TimeZoneName | None = None
    locale: Locale | None = None
    jurisdiction: Literal["US", "KR", "EU", "default"] | None = None
    attributes: dict[str, Any] | None = None
    consents: list[ConsentIn] | None = None

    @field_validator("phone", "email", "timezone", "locale", "jurisdiction", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        # Order systems often send "" for unknown; that must not wipe or fail a stored value.
        return None if isinstance(value, str) and not value.strip() else value


@dataclass
class ImportReport:
    """What an import did: contacts created and updated, and one message per bad line."""

    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


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


# Built once: building the statement costs more than running it for a request of one event.
_BY_EXTERNAL_ID = select(Contact).where(
    Contact.tenant_id == bindparam("tenant_id"), Contact.external_id.in_(bindparam("external_ids", expanding=True))
)


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
    wanted = sorted({contact_in.external_id for contact_in in contacts_in})
    known: dict[str, Contact] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        if attach:
            known.update(
                (c.external_id, c)
                for c in session.scalars(_BY_EXTERNAL_ID, {"tenant_id": tenant.id, "external_ids": chunk})
            )
        else:
            known.update(
                (c.external_id, c)
                for c in map(
                    _plain, direct.fetch(session, _ROWS_BY_EXTERNAL_ID, {"tenant_id": tenant.id, "external_ids": chunk})
                )
            )
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
            if attach:
                session.add(contact)
            made.append(contact)
        elif _update(contact, values, contact_in.attributes, now) and contact.id is not None:
            updated[contact.id] = contact
        results.append(contact)
    if attach:
        assign_ids(session, Contact.__table__, made)
    else:
        insert_objects(session, made)
        _write_plain_updates(session, list(updated.values()))
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


def _plain(row: tuple) -> Contact:
    # A contact as read, outside any session: its values set without the change events that setting fires.
    contact = Contact.__mapper__.class_manager.new_instance()
    contact.__dict__.update(zip(_CONTACT_KEYS, row, strict=True))
    return contact


_CONTACT_KEYS = tuple(column.key for column in Contact.__table__.c)
_ROWS_BY_EXTERNAL_ID = select(*Contact.__table__.c).where(
    Contact.tenant_id == bindparam("tenant_id"), Contact.external_id.in_(bindparam("external_ids", expanding=True))
)
# What `_update` may change.
_UPDATED = ("phone", "phone_hash", "email", "timezone", "locale", "jurisdiction", "attributes", "updated_at")


def _write_plain_updates(session: Session, contacts: list[Contact]) -> None:
    """Store what `_update` changed on plain contacts, one UPDATE for all; a copy of one held by the session
    is expired, so it is read again rather than kept as it was."""
    if not contacts:
        return
    update_by_id(
        session,
        Contact.__table__,
        [{"_id": contact.id, **{key: getattr(contact, key) for key in _UPDATED}} for contact in contacts],
    )
    for contact in contacts:
        held = session.identity_map.get(identity_key(Contact, contact.id))
        if held is not None:
            session.expire(held)


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
    same = session.scalar(
        select(Consent)
        .where(
            Consent.tenant_id == tenant.id,
            Consent.contact_id == contact.id,
            Consent.channel == consent_in.channel,
            Consent.purpose == consent_in.purpose,
            Consent.granted == consent_in.granted,
            Consent.night == consent_in.night,
            Consent.at == consent_in.at,
            Consent.source.is_(None) if consent_in.source is None else Consent.source == consent_in.source,
            Consent.text.is_(None) if consent_in.text is None else Consent.text == consent_in.text,
        )
        .limit(1)
    )
    if same is not None:
        return same
    consent = Consent(
        tenant_id=tenant.id,
        contact_id=contact.id,
        channel=consent_in.channel,
        purpose=consent_in.purpose,
        granted=consent_in.granted,
        night=consent_in.night,
        at=consent_in.at,
        source=consent_in.source,
        text=consent_in.text,
        recorded_at=clock.now(),
    )
    session.add(consent)
    session.flush()
    return consent


def record_consents(
    session: Session, tenant: Tenant, entries: Sequence[tuple[Contact, ConsentIn]], clock: Clock
) -> None:
    """`record_consent` for each (contact, consent) in turn, with one query for the ledgers and one flush.

    An entry identical to one in the contact's ledger, or to one before it here, is not added.
    """
    if not entries:
        return
    contact_ids = sorted({contact.id for contact, _ in entries})
    known: set[tuple] = set()
    for start in range(0, len(contact_ids), LOOKUP_CHUNK):
        known.update(
            map(
                tuple,
                session.execute(
                    _LEDGERS, {"tenant_id": tenant.id, "contact_ids": contact_ids[start : start + LOOKUP_CHUNK]}
                ),
            )
        )
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
        added.append(
            Consent(
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
        )
    assign_ids(session, Consent.__table__, added)
    session.add_all(added)
    session.flush()


# Built once, as _BY_EXTERNAL_ID; the columns `record_consent` compares.
_LEDGERS = select(
    Consent.contact_id,
    Consent.channel,
    Consent.purpose,
    Consent.granted,
    Consent.night,
    Consent.at,
    Consent.source,
    Consent.text,
).where(Consent.tenant_id == bindparam("tenant_id"), Consent.contact_id.in_(bindparam("contact_ids", expanding=True)))


def validation_problems(error: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """(field path, message) pairs of a pydantic error, e.g. ('contact.external_id', 'Field required')."""
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = item["msg"].removeprefix("Value error, ")
        problems.append((path or "body", message))
    return problems


def import_contacts(session: Session, tenant: Tenant, path: str | Path, clock: Clock) -> ImportReport:
    """Import a `.jsonl` or `.csv` file of contacts with their consents (formats in the module docstring).

    A bad line is reported as `line N: field: message` and changes nothing; the other lines still
    go in, in file order. Lines are written in chunks of IMPORT_CHUNK, each with a few queries
    (see `upsert_contacts` and `record_consents`) rather than a few per line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(path)
    elif suffix == ".csv":
        rows = _csv_rows(path)
    else:
        raise InvalidInput(f"{path.name}: use a .jsonl or .csv file", field="file")
    report = ImportReport()
    errors: list[tuple[int, str]] = []
    chunk: list[tuple[int, ContactIn]] = []
    for line, row in rows:
        if isinstance(row, InvalidInput):
            errors.append((line, _line_error(line, row.field, _detail(row))))
            continue
        try:
            chunk.append((line, ContactIn.model_validate(row)))
        except ValidationError as error:
            detail = "; ".join(f"{f}: {m}" for f, m in validation_problems(error))
            errors.append((line, f"line {line}: {detail}"))
            continue
        if len(chunk) >= IMPORT_CHUNK:
            _import_chunk(session, tenant, chunk, clock, report, errors)
            chunk = []
    _import_chunk(session, tenant, chunk, clock, report, errors)
    report.errors = [message for _, message in sorted(errors, key=lambda error: error[0])]
    return report


def _import_chunk(
    session: Session,
    tenant: Tenant,
    chunk: list[tuple[int, ContactIn]],
    clock: Clock,
    report: ImportReport,
    errors: list[tuple[int, str]],
) -> None:
    if not chunk:
        return
    made: list[Contact] = []
    results = upsert_contacts(session, tenant, [contact_in for _, contact_in in chunk], clock, created=made)
    fresh = {id(contact) for contact in made}  # a repeated external id: made by its first line, updated after
    consents: list[tuple[Contact, ConsentIn]] = []
    for (line, contact_in), result in zip(chunk, results, strict=True):
        if isinstance(result, InvalidInput):
            errors.append((line, _line_error(line, result.field, _detail(result))))
            continue
        if id(result) in fresh:
            report.created += 1
            fresh.discard(id(result))
        else:
            report.updated += 1
        consents.extend((result, consent_in) for consent_in in contact_in.consents or ())
    record_consents(session, tenant, consents, clock)


def _detail(error: InvalidInput) -> str:
    text = str(error)
    return text.removeprefix(f"{error.field}: ") if error.field else text


def _line_error(line: int, field_name: str | None, message: str) -> str:
    # A contacts file holds contacts, so `contact.phone` reads better as `phone` there.
    if field_name:
        return f"line {line}: {field_name.removeprefix('contact.')}: {message}"
    return f"line {line}: {message}"


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict | InvalidInput]]:
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                # Lines are decoded one by one so a stray byte costs one line, not the file.
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                row = json.loads(text, parse_constant=_refuse_constant)
            except (ValueError, RecursionError) as error:
                yield number, InvalidInput(f"invalid JSON: {error}")
                continue
            if not isinstance(row, dict):
                yield number, InvalidInput("expected a JSON object")
                continue
            yield number, row


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
_CONSENT_EXTRAS = {"consent_at", "consent_source", "consent_text", "consent_night"}


def _csv_rows(path: Path) -> Iterator[tuple[int, dict | InvalidInput]]:
    try:
        yield from _csv_rows_utf8(path)
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name}: not UTF-8 text; save the file as UTF-8", field="file") from None


def _csv_rows_utf8(path: Path) -> Iterator[tuple[int, dict | InvalidInput]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if "external_id" not in header:
            raise InvalidInput(f"{path.name}: line 1: the header has no external_id column", field="external_id")
        consent_columns = {}
        for name in header:
            if name.startswith("consent_") and name not in _CONSENT_EXTRAS:
                channel, _, purpose = name.removeprefix("consent_").partition("_")
                if channel not in CHANNELS or purpose not in PURPOSES:
                    raise InvalidInput(
                        f"{path.name}: line 1: unknown consent column {name!r} "
                        f"(use consent_<{'|'.join(CHANNELS)}>_<{'|'.join(PURPOSES)}>)",
                        field=name,
                    )
                consent_columns[name] = (channel, purpose)
        end = reader.line_num
        while True:
            try:
                cells = next(reader, None)
            except csv.Error as error:
                # The reader cannot be trusted past a broken line; say where it stopped.
                yield end + 1, InvalidInput(f"unreadable CSV, import stopped here: {error}")
                return
            if cells is None:
                return
            start, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                yield start, InvalidInput(f"expected {len(header)} cells, found {len(cells)}")
                continue
            yield start, _csv_contact(dict(zip(header, (cell.strip() for cell in cells), strict=True)), consent_columns)


def _csv_contact(cells: dict[str, str], consent_columns: dict[str, tuple[str, str]]) -> dict | InvalidInput:
    row: dict[str, Any] = {"external_id": cells["external_id"]}
    attributes = {}
    for name, value in cells.items():
        if not value or name == "external_id" or name in consent_columns or name in _CONSENT_EXTRAS:
            continue
        if name in CONTACT_FIELDS:
            row[name] = value
        else:
            attributes[name] = value
    if attributes:
        row["attributes"] = attributes
    consents = []
    for name, (channel, purpose) in consent_columns.items():
        if not cells[name]:
            continue
        granted = _flag(cells[name], name)
        if isinstance(granted, InvalidInput):
            return granted
        consents.append({"channel": channel, "purpose": purpose, "granted": granted})
    if consents:
        night = _flag(cells.get("consent_night") or "false", "consent_night")
        if isinstance(night, InvalidInput):
            return night
        if not cells.get("consent_at"):
            return InvalidInput("required when a consent column is filled", field="consent_at")
        try:
            _aware_utc(datetime.fromisoformat(cells["consent_at"]))
        except ValueError as error:
            return InvalidInput(
                f"{error} (use ISO 8601 with an offset, e.g. 2026-01-05T09:00:00+09:00)", field="consent_at"
            )
        extras = {"night": night, "at": cells["consent_at"]}
        extras.update({k: cells[f"consent_{k}"] for k in ("source", "text") if cells.get(f"consent_{k}")})
        for consent in consents:
            consent.update(extras)
        row["consents"] = consents
    return row


def _flag(value: str, column: str) -> bool | InvalidInput:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    return InvalidInput(f"expected true or false, found {value!r}", field=column)
