"""The fake provider in a process of its own, for benchmarks (`FakeProviderProcess`).

The child runs a `FakeProviderServer`, prints its URL, then answers one command per line on stdin
(`count [service]`, `reset`, `stop`), so the parent can ask what was accepted without sharing memory.
"""

from __future__ import annotations

import subprocess
import sys

from outbound.testing.server import FakeProviderServer


class FakeProviderProcess:
    """A `FakeProviderServer` in a process of its own, for benchmarks: its request handling then runs on
    another core instead of taking turns with the client for this process's interpreter lock.
    Use as a context manager; `url` as for the server; `accepted_count` and `reset` ask the child."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = latency
        self._child: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> FakeProviderProcess:
        """Start the child and wait until it listens."""
        self._child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from outbound.testing.process import _serve_over_pipes; _serve_over_pipes({self.latency!r})",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self._read()
        return self

    def accepted_count(self, service: str | None = None) -> int:
        """How many messages the child's server accepted, optionally for one service only."""
        return int(self._ask(f"count {service or ''}"))

    def reset(self) -> None:
        """Forget what the child's server recorded."""
        self._ask("reset")

    def stop(self) -> None:
        """Stop the child's server and wait for the child to end."""
        if self._child is not None:
            self._ask("stop")
            self._child.wait(timeout=30)
            self._child = None

    def __enter__(self) -> FakeProviderProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _ask(self, command: str) -> str:
        assert self._child is not None and self._child.stdin is not None, "the fake provider process is not running"
        self._child.stdin.write(command + "\n")
        self._child.stdin.flush()
        return self._read()

    def _read(self) -> str:
        assert self._child is not None and self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError("the fake provider process ended")
        return line.strip()


def _serve_over_pipes(latency: float = 0.0) -> None:
    """The child of `FakeProviderProcess`: serve, print the URL, then answer one command per stdin line."""
    with FakeProviderServer(latency=latency) as server:
        print(server.url, flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "count":
                print(len(server.accepted(argument or None)), flush=True)
            elif command == "reset":
                server.reset()
                print("ok", flush=True)
            else:
                print("ok", flush=True)
                return
