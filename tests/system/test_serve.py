"""`outbound serve` as an operator runs it: one process with the HTTP API, the scheduler and dispatch."""

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from typer.testing import CliRunner

from outbound.cli import app


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_takes_an_event_over_http_and_its_scheduler_sends_the_message(db_url, tmp_path):
    runner = CliRunner()
    runner.invoke(
        app,
        [
            "tenants",
            "create",
            "maple",
            "--jurisdiction",
            "US",
            "--timezone",
            "America/New_York",
            "--locale",
            "en",
            "--set",
            "support_contact=help@maple.example",
            "--set",
            "postal_address=1 Main St, Springfield",
            "--db",
            db_url,
        ],
        catch_exceptions=False,
    )
    key = runner.invoke(app, ["keys", "create", "--tenant", "maple", "--db", db_url]).output.strip()
    port = _port()
    env = dict(
        os.environ,
        OUTBOUND_DATABASE_URL=db_url,
        OUTBOUND_DISPATCH_INTERVAL_SECONDS="0.2",
        OUTBOUND_DEFINITIONS=str(Path(__file__).resolve().parents[2]),
    )
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "outbound"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/docs").status_code == 200
        envelope = {
            "id": "evt-1",
            "type": "shipping_delayed",
            "occurred_at": datetime.now(UTC).isoformat(),
            "contact": {"external_id": "cust-42", "phone": "+12025550143"},
            "data": {"order_id": "o-1", "new_eta": "2026-11-25"},
        }
        answer = httpx.post(f"{base}/v1/events", json=envelope, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and answer.json()["stored"] == 1
        assert httpx.post(f"{base}/v1/events", json=envelope).status_code == 401
        status = None
        while time.monotonic() < deadline:
            listed = runner.invoke(app, ["messages", "list", "--json", "--db", db_url]).output.strip()
            status = listed and __import__("json").loads(listed.splitlines()[0])["status"]
            if status == "sent":
                break
            time.sleep(0.2)
        assert status == "sent", listed
    finally:
        server.terminate()
        server.wait(timeout=10)
