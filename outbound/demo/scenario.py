"""The shipped demo scenario: two shops, their customers and two days of order events.

Pure data, no I/O: `build_scenario(seed)` returns the same values for the same seed,
so the demo report and its tests are reproducible. A few events are broken on
purpose, and one per shop is sent twice, so the demo shows ingest errors and idempotency
without losing the rest of the batch.

The parts: the shops and their calendar (`outbound.demo.shops`); the customers
(`outbound.demo.people`) and the events of the window (`outbound.demo.events`), drawn in that
order from the one random stream; past orders and closed tickets (`outbound.demo.history`),
from streams of their own.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from outbound.demo.events import event_stream
from outbound.demo.history import closed_tickets, order_history
from outbound.demo.people import american_customers, korean_customers
from outbound.demo.shops import EVENT_SPAN, KR, RUN_SPAN, START, US, TenantSpec


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """Tenants, contacts (import shape) and event envelopes (ingest shape) for the demo.

    `malformed` and `duplicates` hold, per tenant slug, the ids of the events that
    are broken on purpose and of the one event that appears twice.
    """

    start: datetime
    end: datetime
    events_until: datetime
    tenants: tuple[TenantSpec, ...]
    contacts: dict[str, list[dict[str, Any]]]
    events: dict[str, list[dict[str, Any]]]
    malformed: dict[str, frozenset[str]] = field(default_factory=dict)
    duplicates: dict[str, frozenset[str]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # past orders, ingested first
    helpdesk: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # tickets closed during the window

    def tenant(self, slug: str) -> TenantSpec:
        """The tenant named `slug`."""
        return next(t for t in self.tenants if t.slug == slug)

    def contacts_jsonl(self, slug: str) -> str:
        """One tenant's contacts, one JSON object per line, as `contacts import` reads them."""
        return "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in self.contacts[slug])

    def events_jsonl(self, slug: str) -> str:
        """One tenant's events, one envelope per line, as `events import` reads them."""
        return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.events[slug])

    def describe(self) -> str:
        """A short plain summary: the time span, then counts per tenant and event type."""
        lines = [
            f"Scenario {self.start:%Y-%m-%d %H:%M} UTC to {self.end:%Y-%m-%d %H:%M} UTC, "
            f"events during the first {(self.events_until - self.start).days} days."
        ]
        for t in self.tenants:
            counts = Counter(e["type"] for e in self.events[t.slug])
            kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
            lines.append(
                f"{t.slug} ({t.name}, {t.jurisdiction}, {t.timezone}): {len(self.contacts[t.slug])} contacts, "
                f"{len(self.events[t.slug])} events: {kinds}."
            )
        bad = sum(len(ids) for ids in self.malformed.values())
        dup = sum(len(ids) for ids in self.duplicates.values())
        lines.append(f"On purpose: {bad} malformed events and {dup} sent twice.")
        return "\n".join(lines)


def build_scenario(seed: int = 7) -> Scenario:
    """Build the demo scenario; the same seed always gives the same scenario."""
    rng = random.Random(seed)
    people = {KR.tenant.slug: korean_customers(rng, KR.size), US.tenant.slug: american_customers(rng, US.size)}
    contacts = {slug: [c for c, _ in pairs] for slug, pairs in people.items()}
    events: dict[str, list[dict[str, Any]]] = {}
    malformed: dict[str, frozenset[str]] = {}
    duplicates: dict[str, frozenset[str]] = {}
    for market in (KR, US):
        slug = market.tenant.slug
        events[slug], malformed[slug], duplicates[slug] = event_stream(rng, market, people[slug])
    markets = {m.tenant.slug: m for m in (KR, US)}
    return Scenario(
        start=START,
        end=START + RUN_SPAN,
        events_until=START + EVENT_SPAN,
        tenants=(KR.tenant, US.tenant),
        contacts=contacts,
        events=events,
        malformed=malformed,
        duplicates=duplicates,
        history={
            slug: order_history(seed, slug, contacts[slug], events[slug], START, m.currency)
            for slug, m in markets.items()
        },
        helpdesk={
            slug: closed_tickets(seed, slug, contacts[slug], START, EVENT_SPAN, m.currency)
            for slug, m in markets.items()
        },
    )
