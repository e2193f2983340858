"""The compliance gate: run the rules in order over one message's facts; the first answer wins."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from outbound.compliance.decisions import Allow, Decision
from outbound.compliance.facts import MessageFacts
from outbound.compliance.policy import Policy
from outbound.compliance.rules import (
    consent,
    frequency_cap,
    kr_night,
    no_address,
    quiet_hours,
    suppression,
)
from outbound.compliance.standing import complaint_breaker, dnc, kr_reconfirmation, postal_address

# A rule of the first phase: a function of (facts, policy), named for the `Rule` its decisions record.
GateRule = Callable[[MessageFacts, Policy], Decision | None]

# Blocks come before defers, so a message that can never go is not deferred first and blocked later.
RULES: tuple[GateRule, ...] = (
    no_address,
    dnc,
    suppression,
    consent,
    kr_reconfirmation,
    postal_address,
    complaint_breaker,
    quiet_hours,
    kr_night,
    frequency_cap,
)


def decide(facts: MessageFacts, policy: Policy, rules: Sequence[GateRule] = RULES) -> Decision:
    """The gate's decision for one due message: the first rule with an answer, else Allow."""
    for rule in rules:
        decision = rule(facts, policy)
        if decision is not None:
            return decision
    checked = _CHECKED if rules is RULES else _names(rules)
    return Allow(
        reason=f"{facts.purpose} {facts.channel} in {facts.jurisdiction} ({facts.timezone}) "
        f"passed every rule: {checked}"
    )


def _names(rules: Sequence[GateRule]) -> str:
    return ", ".join(getattr(rule, "__name__", repr(rule)) for rule in rules)


_CHECKED = _names(RULES)  # the Allow reason names every rule; worked out once for the standard set
