"""Event ingest: over HTTP against an empty endpoint of the same server, and by JSONL import."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from bench.common import T0, Figure, database, timed
from outbound.bootstrap import SHIPPED_DEFINITIONS, build
from outbound.clock import SimulatedClock
from outbound.db.session import transaction
from outbound.events import import_events
from outbound.keys import create_api_key
from outbound.providers import Outbox
from outbound.settings import Settings
from outbound.tenants import create_tenant, get_tenant
from outbound.web.app import create_app


def envelope(i: int) -> dict:
    return {"id": f"evt-{i}", "type": "cart_abandoned", "occurred_at": T0.isoformat(),
            "contact": {"external_id": f"c{i % 5000}", "email": f"c{i % 5000}@example.com"},
            "data": {"cart_id": f"cart-{i}", "value": 120}}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(app) -> tuple[uvicorn.Server, str]:
    port = _port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{port}"


def run(backend: str, count: int) -> list[Figure]:
    with database(backend) as url:
        clock = SimulatedClock(T0)
        outbox = Outbox()
        runtime = build(Settings(database_url=url, definitions=SHIPPED_DEFINITIONS), clock=clock,
                        providers={"sms": outbox, "email": outbox})
        with transaction(runtime.factory) as session:
            tenant = create_tenant(session, clock, "bench", jurisdiction="US", timezone="America/New_York", locale="en",
                                   settings={"support_contact": "help@bench.example", "postal_address": "1 Main St"})
            key = create_api_key(session, tenant, role="ingest", clock=clock)
        app = create_app(runtime.factory, clock, on_event=runtime.on_event)

        @app.post("/bench/empty")
        def empty() -> dict:
            return {}

        server, base = _serve(app)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers) as client:
            empty_s, _ = timed(lambda: [client.post("/bench/empty", json=envelope(i)) for i in range(count)])
            http_s, answers = timed(lambda: [client.post("/v1/events", json=envelope(i)) for i in range(count)])
            batch = [envelope(count + i) for i in range(count)]
            batched_s, _ = timed(lambda: [client.post("/v1/events", json={"events": batch[i:i + 100]})
                                          for i in range(0, count, 100)])
        server.should_exit = True
        assert all(a.status_code == 200 for a in answers), {a.status_code for a in answers}
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "events.jsonl"
            path.write_text("".join(json.dumps(envelope(2 * count + i)) + "\n" for i in range(count)))
            with transaction(runtime.factory) as session:
                import_s, report = timed(import_events, session, get_tenant(session, "bench"), path, clock,
                                         on_event=runtime.on_event)
        assert report.stored == count, report.errors[:3]
        runtime.close()
    return [
        Figure(f"{backend}: POST /v1/events, one event per request", count / http_s, "events/s",
               "empty endpoint, same server", count / empty_s),
        Figure(f"{backend}: POST /v1/events, 100 events per request", count / batched_s, "events/s"),
        Figure(f"{backend}: outbound events import (JSONL)", count / import_s, "events/s"),
    ]
