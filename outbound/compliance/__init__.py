"""The compliance gate: pure decisions (allow, defer, block), in two named phases.

1. Before rendering (`decide`): the dispatcher builds `MessageFacts` from the database, picks the
   `Policy` with `policy_for`; a message blocked here is never rendered.
2. On the rendered message (`decide_rendered`): the jurisdiction's advertising format and the SMS
   length, judged on the text as it would be sent.

Nothing here does I/O.
"""

from outbound.compliance.decisions import Allow, Block, Decision, Defer
from outbound.compliance.facts import ConsentRecord, MessageFacts
from outbound.compliance.gate import RULES, GateRule, decide
from outbound.compliance.policy import Policy, policy_for
from outbound.compliance.rendered import RENDERED_RULES, RenderedFacts, decide_rendered
from outbound.compliance.standing import dnc_decision
from outbound.compliance.zones import resolve_jurisdiction, resolve_timezone

__all__ = [
    "Allow",
    "Block",
    "ConsentRecord",
    "Decision",
    "Defer",
    "GateRule",
    "MessageFacts",
    "Policy",
    "RENDERED_RULES",
    "RULES",
    "RenderedFacts",
    "decide",
    "decide_rendered",
    "dnc_decision",
    "policy_for",
    "resolve_jurisdiction",
    "resolve_timezone",
]
