"""The compliance gate: pure decisions (allow, defer, block) over a due message's facts and a policy.

The dispatcher builds `MessageFacts` from the database, picks the `Policy` with
`policy_for`, and calls `decide` before rendering. Nothing here does I/O.
"""

from outbound.compliance.decisions import Allow, Block, Decision, Defer
from outbound.compliance.facts import ConsentRecord, MessageFacts
from outbound.compliance.gate import RULES, Rule, decide
from outbound.compliance.policy import Policy, policy_for
from outbound.compliance.standing import dnc_decision
from outbound.compliance.zones import resolve_jurisdiction, resolve_timezone

__all__ = [
    "Allow",
    "Block",
    "ConsentRecord",
    "Decision",
    "Defer",
    "MessageFacts",
    "Policy",
    "RULES",
    "Rule",
    "decide",
    "dnc_decision",
    "policy_for",
    "resolve_jurisdiction",
    "resolve_timezone",
]
