"""Event ingest: over HTTP against an empty endpoint of the same server, and by JSONL import.

The server runs in a process of its own, as `outbound serve` does, and the client sends the
way order systems do: one event per request as events happen, or 100 per request, over one
kept-alive connection; and one event per request from 16 connections at once, as the many
workers of a busy order system post. Each figure's floor is the empty endpoint of the same
server receiving the same bodies over the same connections. The same figures without the
trigger hook (a second server on the same database, `on_event=None`) show how much of the
time triggers and enrollment take.

The load generator writes prepared HTTP/1.1 requests to kept-alive sockets and reads each
answer by its Content-Length: it uses a few percent of a core, so every figure, the empty
endpoint's included, is what the server can do rather than what a client library can send.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import T0, Figure, database, timed
from outbound.bootstrap import SHIPPED_DEFINITIONS, build
from outbound.clock import SimulatedClock
from outbound.config import Settings
from outbound.db.session import transaction
from outbound.ingest.events import import_events
from outbound.providers import Outbox
from outbound.tenancy.keys import create_api_key
from outbound.tenancy.tenants import create_tenant, get_tenant

BATCH = 100
CONNECTIONS = 16


def envelope(i: int) -> dict:
    return {
        "id": f"evt-{i}",
        "type": "cart_abandoned",
        "occurred_at": T0.isoformat(),
        "contact": {"external_id": f"c{i % 5000}", "email": f"c{i % 5000}@example.com"},
        "data": {"cart_id": f"cart-{i}", "value": 120},
    }


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _runtime(url: str):
    clock = SimulatedClock(T0)
    outbox = Outbox()
    return build(
        Settings(database_url=url, definitions=SHIPPED_DEFINITIONS),
        clock=clock,
        providers={"sms": outbox, "email": outbox},
    )


def _serve_forever(url: str, port: int, triggers: bool) -> None:
    """The server process: the app `outbound serve` runs, plus an empty endpoint to measure against."""
    import uvicorn

    from outbound.web.app import create_app

    runtime = _runtime(url)
    app = create_app(runtime) if triggers else create_app(runtime, on_event=None)

    @app.post("/bench/empty")
    def empty() -> dict:
        return {}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


@contextmanager
def _server(url: str, *, triggers: bool) -> Iterator[str]:
    port = _port()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_forever, args=(url, port, triggers), daemon=True
    )
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


class _Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body


def _read_answer(sock: socket.socket, buffer: bytes) -> tuple[_Answer, bytes]:
    # One HTTP/1.1 answer with a Content-Length (as the server gives every JSON answer), and what follows it.
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(
        int(value)
        for name, _, value in (line.partition(b":") for line in lines[1:])
        if name.strip().lower() == b"content-length"
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return _Answer(int(lines[0].split(b" ", 2)[1]), rest[:length]), rest[length:]


def _next(pending, lock: threading.Lock):
    with lock:
        return next(pending, None)


def _post_all(base: str, key: str, path: str, bodies: list[bytes], connections: int = 1) -> tuple[float, list[_Answer]]:
    """Seconds to POST every body to `path` over `connections` kept-alive connections, and the answers."""
    host, port = base.removeprefix("http://").split(":")
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]
    answers: list[_Answer] = []
    pending = iter(requests)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def connection(sock: socket.socket) -> None:
        buffer = b""
        try:
            while (request := _next(pending, lock)) is not None:
                sock.sendall(request)
                answer, buffer = _read_answer(sock, buffer)
                answers.append(answer)
        except BaseException as error:  # reported by the caller
            failures.append(error)

    sockets = [socket.create_connection((host, int(port))) for _ in range(connections)]
    for sock in sockets:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threads = [threading.Thread(target=connection, args=(sock,)) for sock in sockets]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    for sock in sockets:
        sock.close()
    if failures:
        raise failures[0]
    return seconds, answers


def _over_http(base: str, key: str, first: int, count: int, label: str) -> list[Figure]:
    singles = [json.dumps(envelope(first + i)).encode() for i in range(count)]
    batches = [
        json.dumps({"events": [envelope(first + count + i) for i in range(start, start + BATCH)]}).encode()
        for start in range(0, count, BATCH)
    ]
    crowd = [json.dumps(envelope(first + 2 * count + i)).encode() for i in range(count)]
    _post_all(base, key, "/bench/empty", singles[:200], CONNECTIONS)  # the server's first requests, not measured
    empty_s, _ = _post_all(base, key, "/bench/empty", singles)
    one_s, answers = _post_all(base, key, "/v1/events", singles)
    empty_batched_s, _ = _post_all(base, key, "/bench/empty", batches)
    batched_s, batch_answers = _post_all(base, key, "/v1/events", batches)
    empty_crowd_s, _ = _post_all(base, key, "/bench/empty", crowd, CONNECTIONS)
    crowd_s, crowd_answers = _post_all(base, key, "/v1/events", crowd, CONNECTIONS)
    every = answers + batch_answers + crowd_answers
    stored = [json.loads(a.body)["stored"] for a in every if a.status == 200]
    assert sum(stored) == 3 * count, {a.status for a in every}
    floor = "empty endpoint, same server and bodies"
    return [
        Figure(f"POST /v1/events, one event per request{label}", count / one_s, "events/s", floor, count / empty_s),
        Figure(
            f"POST /v1/events, {BATCH} events per request{label}",
            count / batched_s,
            "events/s",
            floor,
            count / empty_batched_s,
        ),
        Figure(
            f"POST /v1/events, one event per request, {CONNECTIONS} connections{label}",
            count / crowd_s,
            "events/s",
            f"{floor} and connections",
            count / empty_crowd_s,
        ),
    ]


def _import(runtime, path: Path, triggers: bool) -> float:
    with transaction(runtime.factory) as session:
        seconds, report = timed(
            import_events,
            session,
            get_tenant(session, "bench"),
            path,
            runtime.clock,
            on_event=runtime.on_event if triggers else None,
        )
    assert report.stored == sum(1 for _ in path.open()), report.errors[:3]
    return seconds


def _warm_up(runtime, count: int) -> None:
    """The tables as a running server has them: events, contacts and enrollments already in, and on
    PostgreSQL the planner's statistics of them, which autovacuum gathers within a minute of a busy
    start. Without them the planner of a seconds-old database reads every event of the tenant to
    find a batch's ids (it still has the statistics of empty tables)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "earlier.jsonl"
        path.write_text("".join(json.dumps(envelope(8 * count + i)) + "\n" for i in range(count)))
        _import(runtime, path, triggers=True)
    if runtime.engine.dialect.name == "postgresql":
        with runtime.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")


def run(backend: str, count: int) -> list[Figure]:
    with database(backend) as url:
        runtime = _runtime(url)
        with transaction(runtime.factory) as session:
            tenant = create_tenant(
                session,
                runtime.clock,
                "bench",
                jurisdiction="US",
                timezone="America/New_York",
                locale="en",
                settings={"support_contact": "help@bench.example", "postal_address": "1 Main St"},
            )
            key = create_api_key(session, tenant, role="ingest", clock=runtime.clock)
        _warm_up(runtime, count)
        figures = []
        with _server(url, triggers=True) as base:
            figures += _over_http(base, key, 0, count, "")
        with _server(url, triggers=False) as base:
            figures += _over_http(base, key, 3 * count, count, ", no triggers")
        with tempfile.TemporaryDirectory() as folder:
            with_triggers, without = Path(folder) / "triggers.jsonl", Path(folder) / "plain.jsonl"
            with_triggers.write_text("".join(json.dumps(envelope(6 * count + i)) + "\n" for i in range(count)))
            without.write_text("".join(json.dumps(envelope(7 * count + i)) + "\n" for i in range(count)))
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
