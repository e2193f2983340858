"""`serve` and `worker` as an operator starts them: without a secret, only a local install starts."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

OUTBOUND = str(Path(sys.executable).parent / "outbound")


def _env(db_url: str, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOUND_")}
    env.update(OUTBOUND_DATABASE_URL=db_url, OUTBOUND_DEFINITIONS=str(Path(__file__).resolve().parents[2]), **values)
    return env


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker", "--once"]])
def test_a_public_install_without_a_secret_refuses_to_start_and_says_what_to_set(db_url, command):
    done = subprocess.run(
        [OUTBOUND, *command],
        env=_env(db_url, OUTBOUND_BASE_URL="https://outbound.example.com"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "OUTBOUND_SECRET_KEY is not set" in done.stderr and "outbound.example.com" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_a_public_install_with_a_secret_starts(db_url):
    done = subprocess.run(
        [OUTBOUND, "worker", "--once"],
        env=_env(
            db_url, OUTBOUND_BASE_URL="https://outbound.example.com", OUTBOUND_SECRET_KEY=secrets.token_urlsafe(32)
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_serving_on_every_interface_with_links_to_localhost_warns_at_start(db_url):
    server = subprocess.Popen(
        [OUTBOUND, "serve", "--host", "0.0.0.0", "--port", str(_port())],
        env=_env(db_url, OUTBOUND_BASE_URL="http://localhost:8000"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, seen = time.monotonic() + 30, ""
        while "public address" not in seen and time.monotonic() < deadline and server.poll() is None:
            seen += server.stderr.readline()
        assert "serving on 0.0.0.0, but links in messages point at http://localhost:8000" in " ".join(seen.split())
    finally:
        server.terminate()
        server.wait(timeout=30)
