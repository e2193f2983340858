"""The gate's second phase: rules over the rendered message, just before it is sent.

The first phase (`outbound.compliance.gate.decide`) runs before rendering, so a message it blocks
is never rendered. What can only be judged on the text runs here, on the message as rendered with
the tenant's real settings and links:

- `message_format`: the advertising format of the jurisdiction (COMPLIANCE 10, 15, 18):
  - KR: an SMS starts with `(광고)` exactly (not `[광고]`, not `(광 고)`), an email subject starts
    with `(광고)`; the message names the sender and a way to reach it, and ends with a free
    opt-out: `무료수신거부 080-…`;
  - US: a marketing email carries the sender's postal address and the unsubscribe link;
  - EU: every marketing message offers an opt-out (the unsubscribe link, STOP, 수신거부…);
- `sms_length`: an SMS needing more segments than its step allows (COMPLIANCE 22).

The same format rules check every template when definitions load, rendered with a sample tenant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from outbound.compliance.decisions import Allow, Block, Decision
from outbound.rendering.templates import Rendered, sms_segments
from outbound.vocabulary import Channel, Purpose, Rule

AD_MARK = "(광고)"
_FAKE_MARK = re.compile(r"^\s*[\[\(（【]\s*광\s*고\s*[\]\)）】]")
_FREE_OPTOUT_END = re.compile(
    r"(무료\s*수신\s*거부|무료\s*거부|수신\s*거부\s*무료)[^\n]*?080[-\s.]?\d{3,4}[-\s.]?\d{4}\s*$"
)
_OPT_OUT_WORDS = re.compile(r"\bSTOP\b|unsubscribe|opt[ -]?out|수신\s*거부", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class RenderedFacts:
    """A message as rendered, with what the second phase's rules judge it by."""

    rendered: Rendered
    channel: str
    purpose: str
    jurisdiction: str
    tenant: Mapping[str, object]  # the tenant's settings as templates see them
    unsubscribe_url: str  # the link the message carries ("\0" when no template read it: never found)
    max_segments: int | None = None  # the step's limit for an SMS


RenderedRule = Callable[[RenderedFacts], Decision | None]


def message_format(facts: RenderedFacts) -> Decision | None:
    """Block a marketing message that breaks its jurisdiction's advertising format."""
    if facts.purpose != Purpose.MARKETING:
        return None
    problems = format_problems_of(
        facts.rendered, facts.channel, facts.jurisdiction, facts.tenant, facts.unsubscribe_url
    )
    return Block(rule=Rule.MESSAGE_FORMAT, reason="; ".join(problems)) if problems else None


def sms_length(facts: RenderedFacts) -> Decision | None:
    """Block an SMS that needs more segments than its step allows."""
    if facts.channel != Channel.SMS or facts.max_segments is None:
        return None
    info = sms_segments(facts.rendered.text)
    if info.segments <= facts.max_segments:
        return None
    return Block(
        rule=Rule.SMS_LENGTH,
        reason=f"{info.segments} {info.encoding} segments ({info.characters} characters) "
        f"exceed the step's limit of {facts.max_segments}",
    )


RENDERED_RULES: tuple[RenderedRule, ...] = (message_format, sms_length)


def decide_rendered(facts: RenderedFacts, rules: tuple[RenderedRule, ...] = RENDERED_RULES) -> Decision:
    """The second phase's decision for a rendered message: the first rule that blocks it, else Allow."""
    for rule in rules:
        decision = rule(facts)
        if decision is not None:
            return decision
    return Allow(reason="the rendered message passed " + ", ".join(rule.__name__ for rule in rules))


def format_problems_of(
    rendered: Rendered,
    channel: str,
    jurisdiction: str,
    tenant: Mapping[str, object],
    unsubscribe_url: str,
) -> list[str]:
    """Every way a rendered marketing message breaks the format of `jurisdiction` (empty: none).

    `tenant` and `unsubscribe_url` are what the message was rendered with: sample ones when
    definitions load (`outbound.definitions.formats`), the real ones at dispatch."""
    text = rendered.text.strip()
    whole = "\n".join(part for part in (rendered.subject, rendered.text, rendered.html) if part)
    problems: list[str] = []
    if jurisdiction == "KR":
        opening = (rendered.subject or "") if channel == Channel.EMAIL else text
        where = "the email subject" if channel == Channel.EMAIL else "the message"
        if not opening.strip().startswith(AD_MARK):
            fake = _FAKE_MARK.match(opening)
            found = f" (found {fake.group(0).strip()!r})" if fake and not opening.strip().startswith(AD_MARK) else ""
            problems.append(f"KR advertising: {where} must start with {AD_MARK!r} exactly{found}")
        if str(tenant.get("sender_name") or tenant.get("name")) not in text:
            problems.append("KR advertising must name the sender (tenant.sender_name)")
        contacts = ("support_contact", "sms_from", "email_from", "postal_address", "optout_number")
        if not any(tenant.get(key) and str(tenant[key]) in text for key in contacts):
            problems.append("KR advertising must give the sender's contact (e.g. tenant.support_contact)")
        if not _FREE_OPTOUT_END.search(text):
            problems.append(
                "KR advertising must end with a free opt-out, e.g. '무료수신거부 {{ tenant.optout_number }}'"
            )
    if jurisdiction == "US" and channel == Channel.EMAIL:
        if not tenant.get("postal_address") or str(tenant["postal_address"]) not in whole:
            problems.append("US marketing email must carry the sender's postal address (tenant.postal_address)")
        if unsubscribe_url not in whole:
            problems.append("US marketing email must carry the unsubscribe link (links.unsubscribe)")
    if jurisdiction == "EU" and unsubscribe_url not in whole and not _OPT_OUT_WORDS.search(whole):
        problems.append("EU marketing must offer an opt-out in every message (links.unsubscribe, or 'Reply STOP')")
    return problems
