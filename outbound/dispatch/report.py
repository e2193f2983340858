"""What a dispatch tick did: counts filled in as its messages are decided and as the providers' answers are recorded."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TickReport:
    """What one dispatch tick did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    blocked: int = 0
    failed: int = 0
    retried: int = 0
    rate_limited: int = 0  # over a sender's messages-per-second limit: still due, a moment later
    decisions: dict[str, int] = field(default_factory=dict)

    def add(self, other: TickReport) -> None:
        """Add another report's counts to this one."""
        for name in ("claimed", "sent", "deferred", "blocked", "failed", "retried", "rate_limited"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, count in other.decisions.items():
            self.decisions[key] = self.decisions.get(key, 0) + count
