"""What the compliance gate answers: allow, defer until a time, or block, each with its rule and reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from outbound.clock import ensure_utc
from outbound.vocabulary import Rule


@dataclass(frozen=True, kw_only=True)
class Allow:
    """The message may be rendered and sent now."""

    rule: Rule = Rule.ALLOW
    reason: str = "no rule forbids it"


@dataclass(frozen=True, kw_only=True)
class Defer:
    """The message may not go now; ask again at `until` (aware UTC)."""

    until: datetime
    rule: Rule
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "until", ensure_utc(self.until))
        _require_explanation(self.rule, self.reason)


@dataclass(frozen=True, kw_only=True)
class Block:
    """The message must never be sent."""

    rule: Rule
    reason: str

    def __post_init__(self) -> None:
        _require_explanation(self.rule, self.reason)


Decision = Allow | Defer | Block


def _require_explanation(rule: str, reason: str) -> None:
    # A decision nobody can explain is useless to `outbound explain`; refuse it where it is made.
    if not rule or not rule.strip():
        raise ValueError("a compliance decision needs the name of its rule")
    if not reason or not reason.strip():
        raise ValueError(f"a compliance decision of rule {str(rule)!r} needs a reason")
