"""Rules over standing records rather than the moment: the Do-Not-Call list, the sender's postal address,
the tenant's spam-complaint rate, and the age of a contact's advertising consent.

Same shape as `rules.py`: pure functions of (facts, policy) returning Block or None.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from outbound.compliance.decisions import Allow, Block, Decision
from outbound.compliance.facts import MessageFacts
from outbound.compliance.policy import Policy
from outbound.compliance.rules import months_before
from outbound.vocabulary import Channel, Purpose, Rule, SuppressionReason


def dnc_decision(*, listed: bool, list_date: datetime | None, now: datetime, policy: Policy) -> Decision:
    """COMPLIANCE 9: whether a number may be called: not on the Do-Not-Call list, and (where the policy asks
    for one) the list no older than `policy.dnc_max_age_days`."""
    if listed:
        return Block(rule=Rule.DNC, reason="the number is on the Do-Not-Call list")
    days = policy.dnc_max_age_days
    if days is not None:
        if list_date is None:
            return Block(
                rule=Rule.DNC_STALE,
                reason=(f"no Do-Not-Call list has been imported; calls need one no older than {days} days"),
            )
        age = now - list_date
        if age > timedelta(days=days):
            return Block(
                rule=Rule.DNC_STALE,
                reason=(
                    f"the Do-Not-Call list of {list_date:%Y-%m-%d} is {age.days} days old (more than {days}); "
                    f"import a fresh list before calling"
                ),
            )
    return Allow(reason="not on the Do-Not-Call list, and the list is fresh")


def dnc(facts: MessageFacts, policy: Policy) -> Decision | None:
    """COMPLIANCE 9: calls are scrubbed against a Do-Not-Call list that must be fresh."""
    if facts.channel != Channel.VOICE:
        return None
    decision = dnc_decision(
        listed=SuppressionReason.DNC in facts.suppressions, list_date=facts.dnc_list_date, now=facts.now, policy=policy
    )
    return None if isinstance(decision, Allow) else decision


def postal_address(facts: MessageFacts, policy: Policy) -> Decision | None:
    """COMPLIANCE 10: marketing email carries the sender's postal address; without one it cannot go."""
    if facts.purpose != Purpose.MARKETING or facts.channel != Channel.EMAIL or not policy.require_postal_address:
        return None
    if facts.has_postal_address:
        return None
    return Block(
        rule=Rule.POSTAL_ADDRESS,
        reason=(
            f"marketing email in {facts.jurisdiction} must carry the sender's postal address, and the tenant has "
            f"none (set postal_address)"
        ),
    )


def complaint_breaker(facts: MessageFacts, policy: Policy) -> Decision | None:
    """COMPLIANCE 12: a spam-complaint rate above the pause threshold pauses the tenant's marketing email."""
    limit = policy.complaint_pause_rate
    if facts.purpose != Purpose.MARKETING or facts.channel != Channel.EMAIL or limit is None:
        return None
    if facts.complaint_rate <= limit:
        return None
    return Block(
        rule=Rule.COMPLAINT_BREAKER,
        reason=(
            f"spam complaints are {facts.complaint_rate:.2%} of the tenant's email (over {limit:.1%}): "
            f"marketing email is paused until the rate falls"
        ),
    )


def kr_reconfirmation(facts: MessageFacts, policy: Policy) -> Decision | None:
    """COMPLIANCE 17: advertising consent lapses `reconfirm_months` after it was given unless reconfirmed
    (a newer grant); a lapsed consent stops advertising."""
    months = policy.reconfirm_months
    if facts.purpose != Purpose.MARKETING or months is None:
        return None
    record = facts.latest_consent(facts.channel, Purpose.MARKETING)
    if record is None or not record.granted:
        return None
    lapse = months_before(facts.local_now, months)
    if record.at > lapse:
        return None
    return Block(
        rule=Rule.KR_RECONFIRMATION,
        reason=(
            f"the advertising consent for {facts.channel} given {record.at:%Y-%m-%d %H:%M} UTC is {months} months "
            f"old or more and was not reconfirmed"
        ),
    )
