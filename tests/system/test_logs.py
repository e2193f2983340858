"""What `outbound serve` writes to its logs: never a link's token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

OUTBOUND = str(Path(sys.executable).parent / "outbound")


def test_the_access_log_shows_unsubscribe_and_survey_paths_without_their_tokens(db_url):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OUTBOUND_DATABASE_URL=db_url, OUTBOUND_DEFINITIONS=str(Path(__file__).resolve().parents[2]))
    server = subprocess.Popen(
        [OUTBOUND, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    token = "IXUuMS4xMDAuZW1haWw.SECRETTOKENPART42"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        httpx.get(f"{base}/u/{token}")
        httpx.get(f"{base}/s/{token}/9")
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "GET /u/… HTTP" in output and "GET /s/…/9 HTTP" in output
    assert "SECRETTOKENPART42" not in output
