"""The domain's words are spelled once, in `outbound.vocabulary`: the code names them, the stored strings
stay as they are, and a rule recorded as a bare string is caught here."""

from __future__ import annotations

import ast
import json
from enum import StrEnum
from pathlib import Path
from typing import get_args

import pytest

import outbound
from outbound import vocabulary
from outbound.compliance import RENDERED_RULES, RULES
from outbound.compliance.facts import CHANNELS, PURPOSES
from outbound.definitions.schema import CampaignDef, StepDef
from outbound.delivery.status import SENDGRID_STATUS, SENDGRID_SUPPRESSIONS, SUPPRESSING_CODES, TWILIO_STATUS
from outbound.ingest.contacts import ConsentIn
from outbound.vocabulary import (
    CampaignState,
    Channel,
    EnrollmentStatus,
    MessageStatus,
    Purpose,
    Rule,
    Source,
    SuppressionReason,
    TaskStatus,
)

PACKAGE = Path(outbound.__file__).parent
ENUMS = [value for value in vars(vocabulary).values() if isinstance(value, type) and issubclass(value, StrEnum)]
# Keyword arguments (and dict keys) that take a word of the vocabulary, with the words each takes.
# `rule` takes nothing spelled out at all; the others also take free text (a consent's source, a reason).
WORDS_BY_KEYWORD: dict[str, frozenset[str]] = {
    "source": frozenset(Source),
    "status": frozenset(MessageStatus) | frozenset(EnrollmentStatus) | frozenset(TaskStatus),
    "to_status": frozenset(MessageStatus),
    "state": frozenset(CampaignState),
    "channel": frozenset(Channel),
    "purpose": frozenset(Purpose),
    "reason": frozenset(SuppressionReason),
}
# The stored rule names: `outbound explain`, the reports and the stored trails read them, so none changes.
STORED_RULES = {
    "allow",
    "no_address",
    "dnc",
    "dnc_stale",
    "suppression",
    "consent",
    "kr_reconfirmation",
    "postal_address",
    "complaint_breaker",
    "quiet_hours",
    "kr_night",
    "frequency_cap",
    "message_format",
    "sms_length",
    "no_phone",
    "calling_hours",
    "definitions",
    "render",
    "provider",
    "provider_retry",
    "provider_ambiguous",
    "sending_expired",
    "fallback",
    "exit",
    "erasure",
}


def _spelled_out(value: ast.expr, key: str) -> str | None:
    """The word of the vocabulary `value` writes as a bare string for `key`, if it does."""
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        return None
    return value.value if key == "rule" or value.value in WORDS_BY_KEYWORD.get(key, frozenset()) else None


def _names_rule(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "rule") or (
        isinstance(node, ast.Attribute) and node.attr == "rule"
    )


def bare_words(source: str, name: str) -> list[str]:
    """Where `source` spells a word of the vocabulary as a bare string: `rule="…"`, `"rule": "…"`,
    `rule == "…"` (or `in ("…", …)`), `rule: str = "…"`, `source="worker"`, `status="sent"` and the like."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        pairs: list[tuple[str, ast.expr]] = []
        if isinstance(node, ast.keyword) and node.arg:
            pairs = [(node.arg, node.value)]
        elif isinstance(node, ast.Dict):
            pairs = [
                (key.value, value)
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            ]
        elif isinstance(node, ast.Compare) and _names_rule(node.left):
            for compared in node.comparators:
                items = compared.elts if isinstance(compared, ast.Tuple | ast.List | ast.Set) else [compared]
                pairs += [("rule", item) for item in items]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            pairs = [(node.target.id, node.value)]
        found += [f"{where} {key}: {word!r}" for key, value in pairs if (word := _spelled_out(value, key))]
    return found


# Modules that write other systems' documents: the fake provider servers speak the providers' words, and
# the demo's shops write their contact files and events as JSON, as an order system would send them.
NOT_OURS = {"vocabulary.py", "demo/events.py", "demo/people.py"}


def _ours() -> list[Path]:
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] != "testing" and path.relative_to(PACKAGE).as_posix() not in NOT_OURS
    ]


def test_no_rule_status_channel_purpose_or_source_is_spelled_as_a_bare_string_outside_the_vocabulary():
    found = [hit for path in _ours() for hit in bare_words(path.read_text("utf-8"), str(path.relative_to(PACKAGE)))]
    assert found == []


@pytest.mark.parametrize(
    "line",
    [
        'Defer(until=until, rule="quiet_hours", reason="night")',
        'move(message, S.SENT, at=now, source="worker")',
        'rows.append({"rule": "fallback", "to_status": "scheduled"})',
        'ok = decision.rule == "allow"',
        'close = decision.rule in ("no_phone", "dnc")',
        'rule: str = "allow"',
        'suppress(session, 1, "sms", phone, reason="opt_out", source=SOURCE, at=now)',
    ],
)
def test_the_scan_catches_a_word_spelled_out_again(line):
    assert bare_words(line, "example") != []


@pytest.mark.parametrize(
    "line",
    [
        'Block(rule=Rule.QUIET_HOURS, reason="the contact has no SMS address")',
        'Consent(source="inbound SMS", text="STOP")',
        'suppress(session, 1, Channel.SMS, phone, reason=SuppressionReason.OPT_OUT, source="DNC list 2026")',
    ],
)
def test_the_scan_leaves_free_text_alone(line):
    assert bare_words(line, "example") == []


@pytest.mark.parametrize("enum", ENUMS, ids=lambda enum: enum.__name__)
def test_each_word_has_one_member_and_one_member_one_word(enum):
    # A StrEnum member repeating a value would silently become an alias of the first.
    assert len(enum.__members__) == len(list(enum))
    assert len({member.value for member in enum}) == len(enum)
    assert all(member.value == member.name.lower() for member in enum)


def test_the_stored_rule_names_stay_as_they_are():
    assert {rule.value for rule in Rule} == STORED_RULES


def test_each_rule_of_the_gate_records_its_own_name():
    names = {rule.__name__ for rule in (*RULES, *RENDERED_RULES)}
    assert names <= set(Rule)


def test_a_member_reaches_text_json_and_comparisons_as_its_plain_word():
    assert f"{Rule.QUIET_HOURS}" == str(Rule.QUIET_HOURS) == "quiet_hours"
    assert f"{MessageStatus.SENT:<6}|" == "sent  |"
    assert json.dumps({Channel.SMS: [MessageStatus.DEFERRED]}) == '{"sms": ["deferred"]}'
    assert {"sent": 1}[MessageStatus.SENT] == 1 and MessageStatus.SENT == "sent"


def test_the_files_and_imports_accept_exactly_the_words_of_the_vocabulary():
    # The schemas spell their words as Literals, so pydantic's messages list the plain words.
    assert set(get_args(CampaignDef.model_fields["purpose"].annotation)) == set(Purpose)
    assert set(get_args(StepDef.model_fields["channel"].annotation)) == {Channel.SMS, Channel.EMAIL}
    assert set(get_args(CampaignDef.model_fields["state"].annotation)) <= set(CampaignState)
    assert set(get_args(ConsentIn.model_fields["channel"].annotation)) == set(Channel)
    assert set(get_args(ConsentIn.model_fields["purpose"].annotation)) == set(Purpose)
    assert set(CHANNELS) == set(Channel) and set(PURPOSES) == set(Purpose)


def test_a_providers_word_is_mapped_to_ours():
    assert all(isinstance(status, MessageStatus) for status in (*TWILIO_STATUS.values(), *SENDGRID_STATUS.values()))
    reasons = (*SUPPRESSING_CODES.values(), *SENDGRID_SUPPRESSIONS.values())
    assert all(isinstance(reason, SuppressionReason) for reason in reasons)
