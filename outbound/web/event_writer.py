"""The API's event writes: one thread, and one transaction for the requests that wait together.

Order systems post events as they happen, often from many workers at once.
Written one transaction per request, those requests would queue for the
database's write lock (SQLite has one writer) and each pay for its own
commit and its own queries. Here a request hands its key and body to the
writer and waits. The writer takes every request waiting when it is free
(up to `GROUP_BYTES` of bodies) and writes them in one transaction: each
request is checked on its own (key, JSON, shape), the events of a tenant's
requests go in as one batch, and each request gets the answer it would have
got alone. A request that arrives while the writer is idle is written at
once, so a lone request waits for nothing.

If the group's transaction fails as a whole (its commit, or a check that
reads the database), nothing of it is kept and each of its requests is
written again in a transaction of its own, so that a failure takes only its
own request down.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from outbound.db.models import Tenant
from outbound.db.session import transaction
from outbound.ingest.envelopes import IngestReport, ItemError, loads_json
from outbound.ingest.events import ingest_requests
from outbound.tenancy.keys import KeyCache
from outbound.web.api import MAX_EVENTS, result, unauthorized

log = logging.getLogger(__name__)

# A group stops taking requests once their bodies pass this; a larger request is a group of its own.
GROUP_BYTES = 1024 * 1024


@dataclass
class _Request:
    token: str
    body: bytes
    future: asyncio.Future[JSONResponse]
    answer: JSONResponse | None = None
    refusal: BaseException | None = None

    def settle(self) -> None:
        # Hand the answer (or the refusal) to the request; one whose client went away is gone already.
        if self.future.done():
            return
        if isinstance(self.refusal, asyncio.CancelledError):
            self.future.cancel()
        elif self.refusal is not None:
            self.future.set_exception(self.refusal)
        else:
            assert self.answer is not None, "the writer gives each request an answer or a refusal"
            self.future.set_result(self.answer)


class EventWriter:
    """Writes `POST /v1/events` requests, the waiting ones together (see the module's docstring).

    `state` is the app's state: its `factory`, `clock`, `on_event` and `keys` are
    read at each write. Requests and the writer meet on the event loop; the
    database work runs on the writer's one thread.
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        self._waiting: list[_Request] = []
        self._draining = False
        self._thread: ThreadPoolExecutor | None = None
        self.groups = 0  # transactions committed

    @property
    def waiting(self) -> int:
        """How many requests wait for the writer."""
        return len(self._waiting)

    async def submit(self, token: str, body: bytes) -> JSONResponse:
        """The answer to one request, once its events are committed; refusals are raised as HTTPException."""
        loop = asyncio.get_running_loop()
        request = _Request(token, body, loop.create_future())
        self._waiting.append(request)
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        return await request.future

    def close(self) -> None:
        """Wait for the group being written, then let the thread go; a later request starts a new one."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        group: list[_Request] = []
        try:
            while self._waiting:
                group = self._take()
                if self._thread is None:
                    self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbound-events")
                await loop.run_in_executor(self._thread, self._write, group)
                for request in group:
                    request.settle()
                group = []
        except BaseException as error:  # the loop is closing: no request is left waiting forever
            for request in group + self._waiting:
                request.refusal = request.refusal or error
                request.settle()
            self._waiting = []
            raise
        finally:
            self._draining = False

    def _take(self) -> list[_Request]:
        size, taken = 0, 0
        for request in self._waiting:
            if taken and size + len(request.body) > GROUP_BYTES:
                break
            size += len(request.body)
            taken += 1
        group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return group

    def _write(self, group: list[_Request]) -> None:
        # On the writer's thread: each request of the group gets its answer or its refusal.
        try:
            with transaction(self.state.factory) as session:
                self._write_together(session, group)
            self.groups += 1
        except Exception as error:
            if len(group) == 1:
                group[0].answer, group[0].refusal = None, error
                return
            log.warning("a group of %d event requests failed as one; each is written alone", len(group), exc_info=True)
            for request in group:
                self._write([request])

    def _write_together(self, session: Session, group: list[_Request]) -> None:
        state = self.state
        tenants: dict[int, Tenant] = {}
        # Requests past their checks, by tenant: their items, and whether each sent a single envelope.
        ready: dict[int, list[tuple[_Request, list[Any], bool]]] = defaultdict(list)
        for request in group:
            request.answer, request.refusal = None, None
            try:
                checked = _check(session, state.keys, request)
            except HTTPException as refusal:
                request.refusal = refusal
                continue
            if isinstance(checked, JSONResponse):
                request.answer = checked
                continue
            tenant, items, single = checked
            tenants[tenant.id] = tenant
            ready[tenant.id].append((request, items, single))
        for tenant_id, entries in ready.items():
            reports = ingest_requests(
                session, tenants[tenant_id], [items for _, items, _ in entries], state.clock, state.on_event
            )
            for (request, _, single), report in zip(entries, reports, strict=True):
                request.answer = _answer(report, single)


def _check(session: Session, keys: KeyCache, request: _Request) -> tuple[Tenant, list[Any], bool] | JSONResponse:
    """The request's tenant, its items and whether it sent one envelope; or the answer that refuses it.

    In the order a client can rely on: the key (401), the JSON (400), the number of events (413),
    the shape (422).
    """
    found = keys.authenticate(session, request.token)
    if found is None:
        raise unauthorized("unknown or revoked API key", error="invalid_token")
    tenant, _role = found
    try:
        payload = loads_json(request.body)
    except ValueError as error:
        raise HTTPException(400, f"invalid JSON: {error}") from None
    if isinstance(payload, dict) and "events" in payload:
        items = payload["events"]
        if not isinstance(items, list):
            return result(IngestReport(errors=[ItemError(0, "events", "expected a list of events")]), 422)
        if len(items) > MAX_EVENTS:
            raise HTTPException(413, f"at most {MAX_EVENTS} events per request, found {len(items)}")
        # Items must be objects here; a JSON text inside JSON is not an event.
        return tenant, [item if isinstance(item, dict) else None for item in items], False
    if not isinstance(payload, dict):
        problem = ItemError(0, "body", 'expected an event envelope or {"events": [...]}')
        return result(IngestReport(errors=[problem]), 422)
    return tenant, [payload], True


def _answer(report: IngestReport, single: bool) -> JSONResponse:
    if single and report.errors:
        return result(report, 500 if any(e.internal for e in report.errors) else 422)
    return result(report)
