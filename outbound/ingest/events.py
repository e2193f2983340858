"""Event ingest: store each event once per tenant, record the consents it carries, hand it to the trigger hook.

Envelopes are parsed and checked by `outbound.ingest.envelopes`; a `consent_changed` event's data
is recorded in the contact's consent ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from outbound.clock import Clock
from outbound.db import events as store
from outbound.db.models import Contact, Event, Tenant
from outbound.errors import InvalidInput, OutboundError
from outbound.ingest.contacts import (
    ConsentIn,
    record_consents,
    upsert_contact,
    upsert_contacts,
)
from outbound.ingest.envelopes import (
    EventEnvelope,
    IngestOutcome,
    IngestReport,
    InvalidEnvelope,
    ItemError,
    RequestsReport,
    parse_envelope,
)

log = logging.getLogger(__name__)


OnEvent = Callable[[Session, Tenant, Event, Contact], Any]
"""The trigger hook: called with the session, tenant, stored event and its contact.

A hook may also have a `run(session, tenant, stored)` method: ingest then calls it once for a run
of new events, with their (event, contact) pairs in order, instead of calling the hook for each.
It must do what calling the hook for each pair in turn would do.
"""

# Events written together, with one look-up of ids and contacts and one flush: an import chunk, a request.
RUN_SIZE = 500


def ingest_event(
    session: Session, tenant: Tenant, envelope: EventEnvelope, clock: Clock, on_event: OnEvent | None = None
) -> IngestOutcome:
    """Store one event for the tenant, once per event id, and hand it to `on_event`.

    The contact is upserted (with any consents it carries, and the consent of
    a `consent_changed` event). A duplicate id changes nothing and does not
    call the hook. Everything runs in a savepoint: if anything fails,
    including the hook, no row of this event remains and the error is raised.
    """
    existing = store.find_event(session, tenant.id, envelope.id)
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
        existing = store.find_event(session, tenant.id, envelope.id)
        if existing is None:
            raise
        return IngestOutcome("duplicate", existing)
    return IngestOutcome("stored", event)


def ingest_items(
    session: Session,
    tenant: Tenant,
    raw_items: list[dict | str],
    clock: Clock,
    on_event: OnEvent | None = None,
    *,
    first_index: int = 0,
) -> IngestReport:
    """Validate and ingest each item (a dict or a JSON text); a bad item is reported, the rest go in.

    The outcome is that of `ingest_event` on each valid item in turn; see
    `_ingest_run` for how the items are written together.
    """
    report = IngestReport()
    _ingest_numbered(session, tenant, enumerate(raw_items, start=first_index), clock, on_event, report, "item")
    report.errors.sort(key=lambda error: error.index)  # parse errors come first; keep the order of the items
    return report


def ingest_requests(
    session: Session,
    tenant: Tenant,
    requests: Sequence[Sequence[dict | str | None]],
    clock: Clock,
    on_event: OnEvent | None = None,
) -> list[IngestReport]:
    """`ingest_items` on the items of each request in turn, written as one batch: a report per request.

    The outcome is what the requests one after another would give (an event id
    sent twice is stored by the first and a duplicate for the second), with the
    queries of one batch instead of those of each request.
    """
    report = RequestsReport([len(items) for items in requests])
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
) -> IngestReport:
    """Ingest a JSONL file of envelopes; each error carries its line number ('line 3: field: message').

    Lines are ingested in chunks of RUN_SIZE; `progress`, if given, is called
    after each chunk with the number of bytes of the file read so far.
    """
    report = IngestReport()
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
    report: IngestReport,
    unit: str,
) -> None:
    parsed = []
    for index, raw in numbered:
        envelope = _parse_item(index, raw, report, unit)
        if envelope is not None:
            parsed.append((index, envelope))
    for run in _runs(parsed):
        _ingest_run(session, tenant, run, clock, on_event, report, unit)


def _parse_item(index: int, raw: Any, report: IngestReport, unit: str) -> EventEnvelope | None:
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
    report: IngestReport,
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
    stored = store.stored_event_ids(session, tenant.id, [envelope.id for _, envelope in run])
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
    store.add_events(session, [event for _, event, _ in rows])
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


def _detail(error: InvalidInput) -> str:
    return str(error).removeprefix(f"{error.field}: ") if error.field else str(error)


def _ingest_one(
    session: Session,
    tenant: Tenant,
    index: int,
    envelope: EventEnvelope,
    clock: Clock,
    on_event: OnEvent | None,
    report: IngestReport,
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
