"""A throwaway PostgreSQL server in a temporary folder, for the PostgreSQL run of the suite.

Uses the server binaries on PATH (initdb, pg_ctl). PostgreSQL refuses to run as
root, so as root the server runs as the `postgres` user (created by .ci/run).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


class PostgresServer:
    """Start with `start()`, get `url`, stop with `stop()`; the data folder is removed on stop."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="outbound-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://outbound@127.0.0.1:{self.port}/outbound"

    def start(self) -> PostgresServer:
        for tool in ("initdb", "pg_ctl"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not on PATH: install the PostgreSQL server binaries")
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        subprocess.run(
            _as_server_user(
                ["initdb", "-D", str(self.data), "-U", "outbound", "--auth=trust", "--encoding=UTF8", "--locale=C"]
            ),
            check=True,
            capture_output=True,
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_server_user(
                ["pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"]
            ),
            check=True,
            capture_output=True,
        )
        subprocess.run(
            _as_server_user(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "outbound", "outbound"]),
            check=True,
            capture_output=True,
        )
        return self

    def stop(self) -> None:
        subprocess.run(
            _as_server_user(["pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"]), capture_output=True
        )
        shutil.rmtree(self.root, ignore_errors=True)
