"""The shops' order events during the demo's window, as their systems send them.

Pure data from the scenario's random stream: carts abandoned and recovered, orders and their parcels,
leads, churn scores, consent changes; a few events broken on purpose, and one order sent twice.
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from outbound.demo.shops import BUSINESS, EVENT_SPAN, SHOPPING, START, Market


class _Stream:
    """Collects one tenant's events as (instant, envelope) while the story is told."""

    def __init__(self, rng: random.Random, market: Market, homes: dict[str, str]) -> None:
        self.rng = rng
        self.market = market
        self.homes = homes  # where each contact lives, even when no time zone is stored
        self.lo = START
        self.hi = START + EVENT_SPAN
        self.items: list[tuple[datetime, int, dict[str, Any]]] = []
        self.broken: set[int] = set()
        self.orders = 0

    def add(self, at: datetime, contact: dict[str, Any], kind: str, data: dict[str, Any], *, full: bool = False) -> int:
        """Add an event if it falls inside the event window; return its position, or -1."""
        if not self.lo <= at < self.hi:
            return -1
        who = {"external_id": contact["external_id"]}
        if full:  # an order carries the customer's details, as order systems send them
            who.update({k: contact[k] for k in ("phone", "email", "timezone", "locale") if k in contact})
        envelope = {"id": "", "type": kind, "occurred_at": self.local(at, contact), "contact": who, "data": data}
        self.items.append((at, len(self.items), envelope))
        return len(self.items) - 1

    def zone(self, contact: dict[str, Any]) -> ZoneInfo:
        """The contact's home time zone."""
        return ZoneInfo(self.homes[contact["external_id"]])

    def local(self, at: datetime, contact: dict[str, Any]) -> str:
        """An ISO time with the contact's own UTC offset, as a local order system writes it."""
        return at.astimezone(self.zone(contact)).isoformat(timespec="seconds")

    def pick(self, weights: tuple[float, ...], lo: datetime, hi: datetime, contact: dict[str, Any]) -> datetime:
        """A moment in [lo, hi) drawn with the contact's local hour-of-day weights."""
        zone = self.zone(contact)
        span = int((hi - lo).total_seconds())
        top = max(weights)
        for _ in range(200):
            at = lo + timedelta(seconds=self.rng.randrange(max(span, 1)))
            if self.rng.random() * top < weights[at.astimezone(zone).hour]:
                return at
        return at

    def order(self, contact: dict[str, Any], placed: datetime, cart_id: str, value: Any) -> None:
        """An order and what happens to its parcel (shipped, then delayed or delivered)."""
        self.orders += 1
        m, rng = self.market, self.rng
        order_id = f"{m.order_prefix}-{100000 + self.orders * 7 + rng.randrange(7)}"
        data = {"order_id": order_id, "cart_id": cart_id, "value": value, "currency": m.currency}
        self.add(placed, contact, "order_placed", data | {"items": rng.randint(1, 4)}, full=True)
        shipped = self.pick(BUSINESS, placed + timedelta(hours=3), placed + timedelta(hours=30), contact)
        carrier = rng.choice(m.carriers)
        self.add(shipped, contact, "order_shipped", {"order_id": order_id, "carrier": carrier})
        if rng.random() < 0.18:
            delayed = self.pick(BUSINESS, shipped + timedelta(hours=2), shipped + timedelta(hours=36), contact)
            eta = delayed.astimezone(self.zone(contact)).date() + timedelta(days=rng.randint(2, 5))
            reason = rng.choice(("carrier backlog", "weather", "address check"))
            data = {"order_id": order_id, "new_eta": eta.isoformat(), "reason": reason}
            self.add(delayed, contact, "shipping_delayed", data)
        else:
            delivered = self.pick(BUSINESS, shipped + timedelta(hours=16), shipped + timedelta(hours=60), contact)
            self.add(delivered, contact, "order_delivered", {"order_id": order_id, "carrier": carrier})


def event_stream(
    rng: random.Random, m: Market, people: list[tuple[dict[str, Any], str]]
) -> tuple[list[dict[str, Any]], frozenset[str], frozenset[str]]:
    """One tenant's event stream, sorted by time, with its broken and repeated ids."""
    s = _Stream(rng, m, {c["external_id"]: home for c, home in people})
    contacts = [c for c, _ in people]
    carts: list[tuple[datetime, dict[str, Any], str, Any]] = []
    scored: list[dict[str, Any]] = []
    for c in contacts:
        if rng.random() < 0.07:
            data = {"source": rng.choice(("webinar", "pricing page")), "interest": rng.choice(m.interests)}
            s.add(s.pick(BUSINESS, s.lo, s.hi, c), c, "lead_created", data)
            continue
        for _ in range(rng.choices((0, 1, 2), (55, 35, 10))[0]):
            cart_id = f"cart-{m.prefix}-{len(carts) + 1:04d}"
            carts.append((s.pick(SHOPPING, s.lo, s.hi - timedelta(minutes=40), c), c, cart_id, _value(rng, m)))
        for _ in range(rng.choices((0, 1, 2), (70, 25, 5))[0]):
            placed = s.pick(SHOPPING, s.lo, s.hi, c)
            s.order(c, placed, f"cart-{m.prefix}-d{rng.randrange(10**6):06d}", _value(rng, m))
        if rng.random() < 0.35:  # an order placed before the window whose parcel moves now
            placed = s.pick(SHOPPING, s.lo - timedelta(days=3), s.lo, c)
            s.order(c, placed, f"cart-{m.prefix}-p{rng.randrange(10**6):06d}", _value(rng, m))
        if rng.random() < 0.3:
            scored.append(c)
    # Exactly 40% of abandoned carts are bought later, so cart reminders have something to cancel.
    recovered = set(rng.sample(range(len(carts)), round(0.4 * len(carts))))
    for i, (at, c, cart_id, value) in enumerate(carts):
        s.add(at, c, "cart_abandoned", {"cart_id": cart_id, "value": value, "currency": m.currency})
        if i in recovered:
            room = (s.hi - at).total_seconds() - 60
            delay = min(rng.uniform(20 * 60, 6 * 3600), room)
            s.order(c, at + timedelta(seconds=delay), cart_id, value)
    _churn(s, scored)
    _consent_changes(s, contacts)
    _break_some(s, contacts)
    return _finish(s)


def _churn(s: _Stream, scored: list[dict[str, Any]]) -> None:
    """Nightly model runs at 03:00 shop time; a third of the scores are high."""
    zone = ZoneInfo(s.market.tenant.timezone)
    first = s.lo.astimezone(zone).date()
    runs = [datetime.combine(first + timedelta(days=k), time(3), zone).astimezone(UTC) for k in (1, 2)]
    high = set(s.rng.sample(range(len(scored)), round(len(scored) / 3)))
    for i, c in enumerate(scored):
        score = s.rng.uniform(0.70, 0.98) if i in high else s.rng.uniform(0.03, 0.69)
        at = s.rng.choice(runs) + timedelta(seconds=s.rng.randrange(1800))
        s.add(at, c, "churn_risk_scored", {"score": round(score, 2), "model": "churn-v3"})


def _consent_changes(s: _Stream, contacts: list[dict[str, Any]]) -> None:
    """Three customers turn off marketing texts in their account during the window."""
    granted = [c for c in contacts if _sms_marketing_granted(c)]
    for c in s.rng.sample(granted, 3):
        at = s.pick(SHOPPING, s.lo, s.hi, c)
        data = {
            "channel": "sms", "purpose": "marketing", "granted": False, "night": False,
            "at": s.local(at, c), "source": s.market.revoke_source, "text": s.market.revoke_text,
        }  # fmt: skip
        s.add(at, c, "consent_changed", data)


def _break_some(s: _Stream, contacts: list[dict[str, Any]]) -> None:
    """Three broken events: no external id, a time without offset, a score that is not a number."""
    rng, m = s.rng, s.market
    a, b, c = rng.sample(contacts, 3)
    data = {"order_id": f"{m.order_prefix}-999001", "value": _value(rng, m), "currency": m.currency}
    i = s.add(s.pick(SHOPPING, s.lo, s.hi, a), a, "order_placed", data)
    s.items[i][2]["contact"] = {k: a[k] for k in ("email", "phone") if k in a}
    at = s.pick(SHOPPING, s.lo, s.hi, b)
    data = {"cart_id": f"cart-{m.prefix}-x0001", "value": _value(rng, m), "currency": m.currency}
    i = s.add(at, b, "cart_abandoned", data)
    s.items[i][2]["occurred_at"] = at.astimezone(s.zone(b)).replace(tzinfo=None).isoformat(timespec="seconds")
    s.add(s.pick(SHOPPING, s.lo, s.hi, c), c, "churn_risk_scored", {"score": "high", "model": "churn-v3"})
    s.broken.update(range(len(s.items) - 3, len(s.items)))


def _finish(s: _Stream) -> tuple[list[dict[str, Any]], frozenset[str], frozenset[str]]:
    """Sort by time, number the ids in time order, and send one order event twice."""
    ordered = sorted(s.items, key=lambda item: (item[0], item[1]))
    events, broken = [], set()
    for n, (_, pos, envelope) in enumerate(ordered, start=1):
        envelope["id"] = f"evt-{s.market.prefix}-{n:05d}"
        events.append(envelope)
        if pos in s.broken:
            broken.add(envelope["id"])
    # The order system retries an order_placed it thinks timed out: same id, same body.
    placed = [i for i, e in enumerate(events) if e["type"] == "order_placed" and e["id"] not in broken]
    i = placed[len(placed) // 2]
    events.insert(i + 1, copy.deepcopy(events[i]))
    return events, frozenset(broken), frozenset({events[i]["id"]})


def _value(rng: random.Random, m: Market) -> Any:
    """An order or cart value in the shop's currency (whole won; dollars and cents)."""
    if m.currency == "KRW":
        return rng.randrange(89, 3900) * 100
    return round(rng.uniform(12, 240), 2)


def _sms_marketing_granted(contact: dict[str, Any]) -> bool:
    items = [i for i in contact.get("consents", []) if (i["channel"], i["purpose"]) == ("sms", "marketing")]
    return bool(items) and items[-1]["granted"]
