"""Contact files: `outbound contacts import` of `.jsonl` and `.csv` files, consents included.

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
those of the file (the CSV header is line 1). The CSV is read strictly
(`outbound.ingest.csv_files`): a quote never closed costs the line it opens on,
not the rows after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db.models import Contact, Tenant
from outbound.errors import InvalidInput
from outbound.ingest.contacts import (
    CHANNELS,
    CONTACT_FIELDS,
    PURPOSES,
    ConsentIn,
    ContactIn,
    aware_utc,
    record_consents,
    upsert_contacts,
    validation_problems,
)
from outbound.ingest.csv_files import Record, csv_records

# External ids per look-up query: far below any database's limit on bound parameters.
IMPORT_CHUNK = 500  # lines of a contacts file written together


@dataclass
class ImportReport:
    """What an import did: contacts created and updated, and one message per bad line."""

    created: int = 0
    updated: int = 0
    errors: list[str] = field(default_factory=list)


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
        records = csv_records(handle)
        first = next(records, Record(1, 1, []))
        if first.cells is None:
            raise InvalidInput(f"{path.name}: line 1: {first.unreadable} (the header)", field="file")
        header = [name.strip() for name in first.cells]
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
        for record in records:
            if record.cells is None:
                yield record.first, InvalidInput(record.unreadable or "unreadable CSV")
                continue
            if not any(cell.strip() for cell in record.cells):
                continue
            if len(record.cells) != len(header):
                yield (
                    record.first,
                    InvalidInput(f"expected {len(header)} cells, found {len(record.cells)}{record.span}"),
                )
                continue
            cells = dict(zip(header, (cell.strip() for cell in record.cells), strict=True))
            yield record.first, _csv_contact(cells, consent_columns)


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
            aware_utc(datetime.fromisoformat(cells["consent_at"]))
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
