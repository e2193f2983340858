"""The outbox: a provider that records what would be sent, so everything runs without credentials."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

from outbound.providers.base import OutgoingMessage, SendResult


class Outbox:
    """Records every message instead of sending it.

    `sent` holds the messages in the order received; with a `path`, each
    message is also appended to that file as one JSON line (with its provider
    id), and numbering continues after the lines already there so ids stay
    unique across restarts. Safe to share between threads and channels.
    """

    name = "outbox"

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.sent: list[OutgoingMessage] = []
        self._lock = threading.Lock()
        self._count = _count_lines(self.path) if self.path is not None else 0

    def send(self, message: OutgoingMessage) -> SendResult:
        """Record the message and return an id like `outbox-7`."""
        with self._lock:
            self._count += 1
            provider_id = f"outbox-{self._count}"
            if self.path is not None:
                line = {"provider_id": provider_id, **dataclasses.asdict(message)}
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(line, ensure_ascii=False) + "\n")
            self.sent.append(message)
        return SendResult(provider=self.name, provider_id=provider_id, status="recorded")

    def sent_to(self, address: str) -> list[OutgoingMessage]:
        """The recorded messages addressed to one phone number or email address."""
        with self._lock:
            return [message for message in self.sent if message.to == address]


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as file:
        return sum(1 for line in file if line.strip())
