"""The enrollment plan: for a contact and a campaign, what enrolling it writes. Pure: values in, values out.

Every route that enrolls (a trigger's events, a batch campaign's audience, Korea's consent notices,
an operator's list) plans each enrollment here and hands the plans to the one writer
(`outbound.enrollment.writer`), so they all make the same rows.

A fixed share of each campaign's audience is held out (a hash of tenant, campaign and contact, so
the same contact lands on the same side on every run and every copy of the database): held-out
enrollments are recorded, for attribution, and never messaged. A step with variants sends each
contact one of them, split by weight with the same kind of hash. Offer codes drawn from a pattern
are hashes too, of the enrollment and the draw number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 letters, no 0/O, 1/I: codes are read aloud and typed
CODE_DRAWS = 8  # draws of a pattern code per enrollment before giving up (each one taken already)
NO_STEP = "no step applies to this contact"


class Candidate(NamedTuple):
    """A contact a route wants enrolled in a campaign, before the window, holdout and steps are decided.

    `names` are what conditions see (`event`, `contact`): needed when the campaign's key or a step's
    condition reads them, else None. `start` is when the steps' delays count from (the event's time;
    for a contact enrolled without an event, now). Candidates and plans are named tuples: a batch run
    makes one of each per contact, and a tuple is built in a third of a frozen dataclass's time.
    """

    campaign: Any  # a CampaignDef
    contact_id: int
    external_id: str
    names: dict[str, Any] | None
    start: datetime
    trigger: str | None
    event_id: int | None = None


class Planned(NamedTuple):
    """One enrollment as it will be written: its key, its side of the holdout, the steps it sends."""

    candidate: Candidate
    key: str
    held_out: bool
    steps: tuple[tuple[Any, Any], ...]  # (StepDef, VariantDef or None), in the campaign's order

    @property
    def end_reason(self) -> str | None:
        """Why the enrollment ends as soon as it is written (completed), or None: it is active."""
        campaign = self.candidate.campaign
        if self.held_out:
            return f"held out ({campaign.holdout:.0%} control group): never messaged"
        if not self.steps and campaign.callback is None:
            return NO_STEP
        return None


def reads_contact(campaign: Any) -> bool:
    """Whether the campaign's enrollment key or a step condition reads the contact (or the event)."""
    return has_key(campaign) or any(step.when is not None for step in campaign.steps)


def has_key(campaign: Any) -> bool:
    """Whether the campaign's enrollments are told apart by a key rule (else every key is "")."""
    rule = campaign.enrollment
    return rule is not None and rule.key is not None


def enrollment_key(campaign: Any, names: dict[str, Any] | None) -> str:
    """The campaign's enrollment key for these names ("" without a key rule)."""
    rule = campaign.enrollment
    if rule is None or rule.key is None:
        return ""
    value = rule.key.evaluate(**(names or {}))
    return "" if value is None else str(value)


class Planner:
    """Plans enrollments for one tenant at one moment, caching per campaign what every contact shares."""

    def __init__(self, tenant_slug: str) -> None:
        self.tenant_slug = tenant_slug
        self.held_out = 0  # enrollments planned held out so far
        self._held_out: dict[str, Callable[[str], bool]] = {}
        self._same_steps: dict[str, tuple[tuple[Any, Any], ...] | None] = {}

    def plan(self, candidate: Candidate, key: str) -> Planned:
        """The enrollment `candidate` makes with `key`: held out, or the steps that apply with their variants."""
        campaign = candidate.campaign
        name = campaign.name
        held_out = self._held_out.get(name)
        if held_out is None:
            held_out = self._held_out[name] = holdout_test(self.tenant_slug, name, campaign.holdout)
            # Steps without a condition or variants are the same for every contact: one tuple shared by all.
            self._same_steps[name] = (
                None
                if any(step.when is not None or step.variants for step in campaign.steps)
                else tuple((step, None) for step in campaign.steps)
            )
        if held_out(candidate.external_id):
            self.held_out += 1
            return Planned(candidate, key, True, ())
        steps = self._same_steps[name]
        if steps is None:
            names = candidate.names or {}
            steps = tuple(
                (step, pick_variant(step, self.tenant_slug, name, candidate.external_id))
                for step in campaign.steps
                if step.when is None or step.when.test(**names)
            )
        return Planned(candidate, key, False, steps)


def in_holdout(tenant: str, campaign: str, external_id: str, share: float) -> bool:
    """Whether the contact is in the campaign's control group (pure, stable for the same names)."""
    return share > 0 and _bucket("holdout", tenant, campaign, external_id) < share


def holdout_test(tenant: str, campaign: str, share: float) -> Callable[[str], bool]:
    """`in_holdout(tenant, campaign, external_id, share)` as a function of the external id alone (the same answers).

    The hash input's constant head is encoded once, instead of joined and encoded for every contact.
    """
    if share <= 0:
        return lambda external_id: False
    head, sha256, scale = f"holdout\x1f{tenant}\x1f{campaign}\x1f".encode(), hashlib.sha256, 2**64

    def held_out(external_id: str) -> bool:
        return int.from_bytes(sha256(head + external_id.encode()).digest()[:8], "big") / scale < share

    return held_out


def pick_variant(step: Any, tenant: str, campaign: str, external_id: str) -> Any:
    """The step's variant for this contact, split by weight (pure, stable); None for a step without variants."""
    if not step.variants:
        return None
    point = _bucket("variant", tenant, campaign, step.id, external_id) * sum(v.weight for v in step.variants)
    for variant in step.variants:
        point -= variant.weight
        if point < 0:
            return variant
    return step.variants[-1]


@lru_cache(maxsize=64)
def code_pattern_parts(pattern: str) -> tuple[str, int, str]:
    """A code pattern such as WB-{random:6} as (text before, random characters, text after)."""
    head, _, rest = pattern.partition("{random:")
    length, _, tail = rest.partition("}")
    return head, int(length), tail


def code_seed(tenant: str, campaign: str, external_id: str, enrollment_id: int) -> str:
    """What a pattern code is drawn from: it names the enrollment, so a contact enrolled again draws anew."""
    return f"{tenant}:{campaign}:{external_id}:{enrollment_id}"


def pattern_code(pattern: str, seed: str, draw: int) -> str:
    """Draw number `draw` of a code for a pattern such as BACK-{random:6}, from a hash of `seed` (pure)."""
    head, length, tail = code_pattern_parts(pattern)
    bits = int.from_bytes(hashlib.sha256(f"{seed}:{draw}".encode()).digest(), "big")
    return head + "".join([CODE_ALPHABET[(bits >> shift) & 31] for shift in range(0, 5 * length, 5)]) + tail


def pattern_codes(pattern: str, seeds: dict[int, str], draw: int) -> dict[int, str]:
    """`pattern_code(pattern, seed, draw)` for each of `seeds` (by key), reading only the hash bytes it uses."""
    head, length, tail = code_pattern_parts(pattern)
    width, shifts, sha256, alphabet = (5 * length + 7) // 8, range(0, 5 * length, 5), hashlib.sha256, CODE_ALPHABET
    codes = {}
    for key, seed in seeds.items():
        bits = int.from_bytes(sha256(f"{seed}:{draw}".encode()).digest()[-width:], "big")
        codes[key] = head + "".join([alphabet[(bits >> shift) & 31] for shift in shifts]) + tail
    return codes


def _bucket(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
