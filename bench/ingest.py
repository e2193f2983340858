"""Event ingest: over HTTP against an empty endpoint of the same server, and by JSONL import.

The server runs in a process of its own, as `outbound serve` does, and the client sends the
way an order system would: over one kept-alive connection, either one event per request as
events happen, or 100 per request. Each figure's floor is the empty endpoint of the same
server receiving the same bodies. The same figures without the trigger hook (a second server
on the same database, `on_event=None`) show how much of the time triggers and enrollment take.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from bench.common import T0, Figure, database, timed
from outbound.bootstrap import SHIPPED_DEFINITIONS, build
from outbound.clock import SimulatedClock
from outbound.db.session import transaction
from outbound.events import import_events
from outbound.keys import create_api_key
from outbound.providers import Outbox
from outbound.settings import Settings
from outbound.tenants import create_tenant, get_tenant

BATCH = 100


def envelope(i: int) -> dict:
    return {"id": f"evt-{i}", "type": "cart_abandoned", "occurred_at": T0.isoformat(),
            "contact": {"external_id": f"c{i % 5000}", "email": f"c{i % 5000}@example.com"},
            "data": {"cart_id": f"cart-{i}", "value": 120}}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _runtime(url: str):
    clock = SimulatedClock(T0)
    outbox = Outbox()
    return build(Settings(database_url=url, definitions=SHIPPED_DEFINITIONS), clock=clock,
                 providers={"sms": outbox, "email": outbox})


def _serve_forever(url: str, port: int, triggers: bool) -> None:
    """The server process: the app `outbound serve` runs, plus an empty endpoint to measure against."""
    import uvicorn

    from outbound.web.app import create_app

    runtime = _runtime(url)
    app = create_app(runtime.factory, runtime.clock, on_event=runtime.on_event if triggers else None)

    @app.post("/bench/empty")
    def empty() -> dict:
        return {}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def _server(url: str, *, triggers: bool) -> Iterator[str]:
    port = _port()
    process = multiprocessing.get_context("spawn").Process(target=_serve_forever, args=(url, port, triggers),
                                                           daemon=True)
    process.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not process.is_alive():
                raise RuntimeError("the bench server did not start")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.join(10)


def _post_all(client: httpx.Client, path: str, bodies: list[bytes]) -> tuple[float, list[httpx.Response]]:
    return timed(lambda: [client.post(path, content=body, headers={"Content-Type": "application/json"})
                          for body in bodies])


def _over_http(base: str, key: str, first: int, count: int, label: str) -> list[Figure]:
    singles = [json.dumps(envelope(first + i)).encode() for i in range(count)]
    batches = [json.dumps({"events": [envelope(first + count + i) for i in range(start, start + BATCH)]}).encode()
               for start in range(0, count, BATCH)]
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:  # one connection
        empty_s, _ = _post_all(client, "/bench/empty", singles)
        one_s, answers = _post_all(client, "/v1/events", singles)
        empty_batched_s, _ = _post_all(client, "/bench/empty", batches)
        batched_s, batch_answers = _post_all(client, "/v1/events", batches)
    stored = [a.json()["stored"] for a in answers + batch_answers if a.status_code == 200]
    assert sum(stored) == 2 * count, {a.status_code for a in answers + batch_answers}
    return [
        Figure(f"POST /v1/events, one event per request{label}", count / one_s, "events/s",
               "empty endpoint, same server and bodies", count / empty_s),
        Figure(f"POST /v1/events, {BATCH} events per request{label}", count / batched_s, "events/s",
               "empty endpoint, same server and bodies", count / empty_batched_s),
    ]


def _import(runtime, path: Path, triggers: bool) -> float:
    with transaction(runtime.factory) as session:
        seconds, report = timed(import_events, session, get_tenant(session, "bench"), path, runtime.clock,
                                on_event=runtime.on_event if triggers else None)
    assert report.stored == sum(1 for _ in path.open()), report.errors[:3]
    return seconds


def run(backend: str, count: int) -> list[Figure]:
    with database(backend) as url:
        runtime = _runtime(url)
        with transaction(runtime.factory) as session:
            tenant = create_tenant(session, runtime.clock, "bench", jurisdiction="US", timezone="America/New_York",
                                   locale="en", settings={"support_contact": "help@bench.example",
                                                          "postal_address": "1 Main St"})
            key = create_api_key(session, tenant, role="ingest", clock=runtime.clock)
        figures = []
        with _server(url, triggers=True) as base:
            figures += _over_http(base, key, 0, count, "")
        with _server(url, triggers=False) as base:
            figures += _over_http(base, key, 2 * count, count, ", no triggers")
        with tempfile.TemporaryDirectory() as folder:
            with_triggers, without = Path(folder) / "triggers.jsonl", Path(folder) / "plain.jsonl"
            with_triggers.write_text("".join(json.dumps(envelope(4 * count + i)) + "\n" for i in range(count)))
            without.write_text("".join(json.dumps(envelope(5 * count + i)) + "\n" for i in range(count)))
            import_s = _import(runtime, with_triggers, triggers=True)
            plain_s = _import(runtime, without, triggers=False)
        runtime.close()
    figures += [
        Figure("outbound events import (JSONL)", count / import_s, "events/s"),
        Figure("outbound events import (JSONL), no triggers", count / plain_s, "events/s"),
    ]
    for figure in figures:
        figure.name = f"{backend}: {figure.name}"
    return figures
