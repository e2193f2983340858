"""Event ingest: validate envelopes, store each event once per tenant, hand it to the trigger hook.

The envelope and its `contact` are described in DESIGN.md ("Contracts").
Standard types whose `data` is checked: `churn_risk_scored` (`data.score`, a
number from 0 to 1) and `consent_changed` (`data` is a consent item, recorded
in the contact's consent ledger). Every other type, known or not, is stored
with its `data` as given.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db import direct
from outbound.db.bulk import insert_objects
from outbound.db.models import Contact, Event, Tenant
from outbound.errors import InvalidInput, OutboundError
from outbound.ingest.contacts import (
    AwareUTC,
    BoundedStr,
    ConsentIn,
    ContactIn,
    record_consents,
    upsert_contact,
    upsert_contacts,
    validation_problems,
)

log = logging.getLogger(__name__)

STANDARD_TYPES = (
    "order_placed",
    "order_shipped",
    "shipping_delayed",
    "order_delivered",
    "cart_abandoned",
    "churn_risk_scored",
    "lead_created",
    "consent_changed",
)

OnEvent = Callable[[Session, Tenant, Event, Contact], Any]
"""The trigger hook: called with the session, tenant, stored event and its contact.

A hook may also have a `run(session, tenant, stored)` method: ingest then calls it once for a run
of new events, with their (event, contact) pairs in order, instead of calling the hook for each.
It must do what calling the hook for each pair in turn would do.
"""

# Events written together, with one look-up of ids and contacts and one flush: an import chunk, a request.
RUN_SIZE = 500

EventType = Annotated[BoundedStr(64, 1), StringConstraints(pattern=r"^[A-Za-z0-9_.:-]+$")]


class EventEnvelope(BaseModel):
    """One event from an order system: what happened, when, to whom, with what data."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    id: BoundedStr(200, 1)
    type: EventType
    occurred_at: AwareUTC
    contact: ContactIn
    data: dict[str, Any] = {}


class InvalidEnvelope(InvalidInput):
    """An event envelope is invalid; `problems` lists every (field, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        first_field, first_message = problems[0]
        rest = "".join(f"; {f}: {m}" for f, m in problems[1:])
        super().__init__(first_message + rest, field=first_field)


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one event: newly `stored`, or a `duplicate` of one stored before."""

    status: Literal["stored", "duplicate"]
    event: Event


@dataclass(frozen=True)
class ItemError:
    """Why one item of a batch was not stored.

    `index` is the item's position in the batch, or its line number when
    `unit` is "line" (file imports). `internal` marks failures that are not
    the sender's fault, worth retrying. `str()` gives 'line 3: field: message'.
    """

    index: int
    field: str | None
    message: str
    internal: bool = False
    unit: str = "item"

    def __str__(self) -> str:
        return f"{self.unit} {self.index}: {self.field + ': ' if self.field else ''}{self.message}"


@dataclass
class BatchReport:
    """What a batch did: events stored, duplicates skipped, errors per item."""

    stored: int = 0
    duplicates: int = 0
    errors: list[ItemError] = field(default_factory=list)

    def messages(self) -> list[str]:
        """The errors as text, e.g. 'line 4: occurred_at: …' for a file import."""
        return [str(error) for error in self.errors]

    def _count_stored(self, indices: Sequence[int]) -> None:
        self.stored += len(indices)

    def _count_duplicates(self, indices: Sequence[int]) -> None:
        self.duplicates += len(indices)


class _Requests(BatchReport):
    """The report of several requests' items numbered end to end, split into one report per request."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        self.starts = list(accumulate(sizes, initial=0))[:-1]
        self.parts = [BatchReport() for _ in sizes]

    def _request(self, index: int) -> int:
        # The last request starting at or before the index: a request of no items holds no index.
        return bisect_right(self.starts, index) - 1

    def _count_stored(self, indices: Sequence[int]) -> None:
        for index in indices:
            self.parts[self._request(index)].stored += 1

    def _count_duplicates(self, indices: Sequence[int]) -> None:
        for index in indices:
            self.parts[self._request(index)].duplicates += 1

    def split(self) -> list[BatchReport]:
        """One report per request, its errors numbered from 0 within the request, in order."""
        for error in self.errors:
            number = self._request(error.index)
            self.parts[number].errors.append(replace(error, index=error.index - self.starts[number]))
        return self.parts


def parse_envelope(raw: dict | str | bytes) -> EventEnvelope:
    """A validated envelope from a dict or a JSON text; InvalidEnvelope names every bad field."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = loads_json(raw)
        except ValueError as error:
            raise InvalidEnvelope([("body", f"invalid JSON: {error}")]) from None
    if not isinstance(raw, dict):
        raise InvalidEnvelope([("body", "expected an event object")])
    try:
        envelope = EventEnvelope.model_validate(raw)
    except ValidationError as error:
        raise InvalidEnvelope(validation_problems(error)) from None
    problems = check_data(envelope.type, envelope.data)
    if problems:
        raise InvalidEnvelope(problems)
    return envelope


def check_data(event_type: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) pairs for `data` that a standard type does not accept."""
    if event_type == "churn_risk_scored":
        score = data.get("score")
        if score is None:
            return [("data.score", "Field required")]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            return [("data.score", f"must be a number from 0 to 1, found {score!r}")]
    if event_type == "consent_changed":
        try:
            ConsentIn.model_validate(data)
        except ValidationError as error:
            return validation_problems(error, prefix="data")
    return []


def loads_json(text: str | bytes) -> Any:
    """json.loads that refuses NaN and Infinity (no database stores them) and deep nesting."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def ingest_event(
    session: Session, tenant: Tenant, envelope: EventEnvelope, clock: Clock, on_event: OnEvent | None = None
) -> IngestOutcome:
    """Store one event for the tenant, once per event id, and hand it to `on_event`.

    The contact is upserted (with any consents it carries, and the consent of
    a `consent_changed` event). A duplicate id changes nothing and does not
    call the hook. Everything runs in a savepoint: if anything fails,
    including the hook, no row of this event remains and the error is raised.
    """
    existing = _find(session, tenant, envelope.id)
    if existing is not None:
        return IngestOutcome("duplicate", existing)
    try:
        with session.begin_nested():
            contact = upsert_contact(session, tenant, envelope.contact, clock)
            event = _new_event(tenant, envelope, contact, clock)
            session.add(event)
            session.flush()
            _after_insert(session, tenant, envelope, event, contact, clock, on_event)
    except IntegrityError:
        # Another transaction stored the same id between our look-up and insert.
        existing = _find(session, tenant, envelope.id)
        if existing is None:
            raise
        return IngestOutcome("duplicate", existing)
    return IngestOutcome("stored", event)


def _find(session: Session, tenant: Tenant, event_id: str) -> Event | None:
    return session.scalar(select(Event).where(Event.tenant_id == tenant.id, Event.event_id == event_id))


def ingest_batch(
    session: Session,
    tenant: Tenant,
    raw_items: list[dict | str],
    clock: Clock,
    on_event: OnEvent | None = None,
    *,
    first_index: int = 0,
) -> BatchReport:
    """Validate and ingest each item (a dict or a JSON text); a bad item is reported, the rest go in.

    The outcome is that of `ingest_event` on each valid item in turn; see
    `_ingest_run` for how the items are written together.
    """
    report = BatchReport()
    _ingest_numbered(session, tenant, enumerate(raw_items, start=first_index), clock, on_event, report, "item")
    report.errors.sort(key=lambda error: error.index)  # parse errors come first; keep the order of the items
    return report


def ingest_requests(
    session: Session,
    tenant: Tenant,
    requests: Sequence[Sequence[dict | str | None]],
    clock: Clock,
    on_event: OnEvent | None = None,
) -> list[BatchReport]:
    """`ingest_batch` on the items of each request in turn, written as one batch: a report per request.

    The outcome is what the requests one after another would give (an event id
    sent twice is stored by the first and a duplicate for the second), with the
    queries of one batch instead of those of each request.
    """
    report = _Requests([len(items) for items in requests])
    numbered = enumerate(item for items in requests for item in items)
    _ingest_numbered(session, tenant, numbered, clock, on_event, report, "item")
    report.errors.sort(key=lambda error: error.index)
    return report.split()


def import_events(
    session: Session,
    tenant: Tenant,
    path: str | Path,
    clock: Clock,
    on_event: OnEvent | None = None,
    *,
    progress: Callable[[int], Any] | None = None,
) -> BatchReport:
    """Ingest a JSONL file of envelopes; each error carries its line number ('line 3: field: message').

    Lines are ingested in chunks of RUN_SIZE; `progress`, if given, is called
    after each chunk with the number of bytes of the file read so far.
    """
    report = BatchReport()
    chunk: list[tuple[int, str]] = []
    done = 0
    with Path(path).open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            done += len(raw)
            if not raw.strip():
                continue
            try:
                chunk.append((number, raw.decode("utf-8-sig" if number == 1 else "utf-8")))
            except UnicodeDecodeError as error:
                report.errors.append(ItemError(number, None, f"not UTF-8 text: {error}", unit="line"))
            if len(chunk) >= RUN_SIZE:
                _ingest_numbered(session, tenant, chunk, clock, on_event, report, "line")
                chunk = []
                if progress is not None:
                    progress(done)
    _ingest_numbered(session, tenant, chunk, clock, on_event, report, "line")
    if progress is not None:
        progress(done)
    report.errors.sort(key=lambda error: error.index)
    return report


def _ingest_numbered(
    session: Session,
    tenant: Tenant,
    numbered: Iterable[tuple[int, Any]],
    clock: Clock,
    on_event: OnEvent | None,
    report: BatchReport,
    unit: str,
) -> None:
    parsed = []
    for index, raw in numbered:
        envelope = _parse_item(index, raw, report, unit)
        if envelope is not None:
            parsed.append((index, envelope))
    for run in _runs(parsed):
        _ingest_run(session, tenant, run, clock, on_event, report, unit)


def _parse_item(index: int, raw: Any, report: BatchReport, unit: str) -> EventEnvelope | None:
    if not isinstance(raw, (dict, str, bytes)):
        report.errors.append(ItemError(index, None, "expected an event object", unit=unit))
        return None
    try:
        return parse_envelope(raw)
    except InvalidEnvelope as error:
        report.errors.extend(ItemError(index, f, m, unit=unit) for f, m in error.problems)
        return None


def _runs(parsed: list[tuple[int, EventEnvelope]]) -> Iterator[list[tuple[int, EventEnvelope]]]:
    """Consecutive items in which no event id and no contact comes twice, at most RUN_SIZE of them.

    Within such a run, writing every contact and event before calling the hooks
    shows each hook what it would see one event at a time: its own contact as
    its event left it, and the rows the hooks before it wrote.
    """
    run: list[tuple[int, EventEnvelope]] = []
    ids: set[str] = set()
    contacts: set[str] = set()
    for index, envelope in parsed:
        if len(run) >= RUN_SIZE or envelope.id in ids or envelope.contact.external_id in contacts:
            yield run
            run, ids, contacts = [], set(), set()
        run.append((index, envelope))
        ids.add(envelope.id)
        contacts.add(envelope.contact.external_id)
    if run:
        yield run


def _ingest_run(
    session: Session,
    tenant: Tenant,
    run: list[tuple[int, EventEnvelope]],
    clock: Clock,
    on_event: OnEvent | None,
    report: BatchReport,
    unit: str,
) -> None:
    """Ingest a run of valid envelopes with one query per table rather than one per event.

    One query finds the ids already stored, one finds the contacts, one INSERT
    writes the new contacts, one UPDATE the changed ones and one INSERT the
    events, all through the driver (the contacts and events are plain objects,
    outside the session); then each event gets its consents and its hook, in
    order. All of it is one savepoint: if anything in it fails
    (a hook, a concurrent writer of the same id), the run is rolled back and
    done again one event at a time, each in its own savepoint, so that only
    the failing event is left out, as `ingest_event` promises.
    """
    stored = _stored_ids(session, tenant, [envelope.id for _, envelope in run])
    fresh = [(index, envelope) for index, envelope in run if envelope.id not in stored]
    report._count_duplicates([index for index, envelope in run if envelope.id in stored])
    if not fresh:
        return
    try:
        with session.begin_nested():
            written, errors = _write_run(session, tenant, fresh, clock, on_event, unit)
    except Exception:
        for index, envelope in fresh:
            _ingest_one(session, tenant, index, envelope, clock, on_event, report, unit)
        return
    report._count_stored(written)
    report.errors.extend(errors)


def _write_run(
    session: Session,
    tenant: Tenant,
    fresh: list[tuple[int, EventEnvelope]],
    clock: Clock,
    on_event: OnEvent | None,
    unit: str,
) -> tuple[list[int], list[ItemError]]:
    # The indices of the events written, and the errors of those that were not.
    errors: list[ItemError] = []
    contacts = upsert_contacts(session, tenant, [envelope.contact for _, envelope in fresh], clock, attach=False)
    rows: list[tuple[EventEnvelope, Event, Contact]] = []
    written: list[int] = []
    for (index, envelope), contact in zip(fresh, contacts, strict=True):
        if isinstance(contact, InvalidInput):
            errors.append(ItemError(index, contact.field, _detail(contact), unit=unit))
            continue
        rows.append((envelope, _new_event(tenant, envelope, contact, clock), contact))
        written.append(index)
    insert_objects(session, [event for _, event, _ in rows])
    # The consents of the whole run, then the hooks: a run holds each contact once, so each hook still
    # sees its own contact's ledger as one event at a time would leave it.
    record_consents(
        session,
        tenant,
        [entry for envelope, event, contact in rows for entry in _consents(envelope, event, contact)],
        clock,
    )
    run_hook = getattr(on_event, "run", None)
    if run_hook is not None:
        run_hook(session, tenant, [(event, contact) for _, event, contact in rows])
    elif on_event is not None:
        for _, event, contact in rows:
            on_event(session, tenant, event, contact)
    return written, errors


def _new_event(tenant: Tenant, envelope: EventEnvelope, contact: Contact, clock: Clock) -> Event:
    return Event(
        tenant_id=tenant.id,
        event_id=envelope.id,
        type=envelope.type,
        occurred_at=envelope.occurred_at,
        received_at=clock.now(),
        contact_id=contact.id,
        data=envelope.model_dump(mode="json", include={"data"})["data"],
    )


def _after_insert(
    session: Session,
    tenant: Tenant,
    envelope: EventEnvelope,
    event: Event,
    contact: Contact,
    clock: Clock,
    on_event: OnEvent | None,
) -> None:
    # What follows the stored event: the consents it carries, then the trigger hook.
    record_consents(session, tenant, _consents(envelope, event, contact), clock)
    if on_event is not None:
        on_event(session, tenant, event, contact)


def _consents(envelope: EventEnvelope, event: Event, contact: Contact) -> list[tuple[Contact, ConsentIn]]:
    # The consents an event records, in order: those on its contact, then a `consent_changed` event's own.
    entries = [(contact, consent_in) for consent_in in envelope.contact.consents or ()]
    if envelope.type == "consent_changed":
        entries.append((contact, ConsentIn.model_validate(event.data)))
    return entries


# Built once: building the statement costs more than running it for a request of one event.
_STORED_IDS = select(Event.event_id).where(
    Event.tenant_id == bindparam("tenant_id"), Event.event_id.in_(bindparam("event_ids", expanding=True))
)


def _stored_ids(session: Session, tenant: Tenant, event_ids: list[str]) -> set[str]:
    return {row[0] for row in direct.fetch(session, _STORED_IDS, {"tenant_id": tenant.id, "event_ids": event_ids})}


def _detail(error: InvalidInput) -> str:
    return str(error).removeprefix(f"{error.field}: ") if error.field else str(error)


def _ingest_one(
    session: Session,
    tenant: Tenant,
    index: int,
    envelope: EventEnvelope,
    clock: Clock,
    on_event: OnEvent | None,
    report: BatchReport,
    unit: str = "item",
) -> None:
    try:
        outcome = ingest_event(session, tenant, envelope, clock, on_event)
    except InvalidInput as error:
        report.errors.append(ItemError(index, error.field, _detail(error), unit=unit))
        return
    except OutboundError as error:
        report.errors.append(ItemError(index, None, str(error), internal=True, unit=unit))
        return
    except Exception:
        # A failing hook must not sink the batch; its savepoint is already rolled back.
        log.exception("event %r of tenant %s could not be processed", envelope.id, tenant.slug)
        report.errors.append(
            ItemError(index, None, "internal error while processing the event; retry later", internal=True, unit=unit)
        )
        return
    if outcome.status == "stored":
        report._count_stored([index])
    else:
        report._count_duplicates([index])
