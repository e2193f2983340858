"""More of the demo's story, from the shops' other systems: past orders and closed support tickets.

Pure data, like the scenario: past orders (backfilled from the order system before the replay) give
the daily batch win-back someone to find — customers who ordered at least twice but not for 90
days — and tickets closed by the help desk during the window start the CSAT email survey. A
separate random stream keeps the scenario's own events exactly as they were.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

TOPICS = {
    "KRW": ("배송 지연 문의", "교환 요청", "쿠폰 적용 오류", "영수증 재발행"),
    "USD": ("late delivery", "exchange request", "coupon not applied", "invoice copy"),
}


def order_history(
    seed: int, slug: str, contacts: list[dict[str, Any]], events: list[dict[str, Any]], start: datetime, currency: str
) -> list[dict[str, Any]]:
    """Past `order_placed` events (before `start`) for a fifth of the customers who do not order in the window."""
    rng = random.Random(f"{seed}:{slug}:history")
    ordering = {e["contact"].get("external_id") for e in events if e["type"] in ("order_placed", "lead_created")}
    quiet = [c for c in contacts if c["external_id"] not in ordering]
    history = []
    for contact in quiet:
        roll = rng.random()
        if roll < 0.22:  # lapsed regulars: two to four orders, the latest 95 to 300 days ago
            ages = sorted((rng.randint(95, 300) for _ in range(rng.randint(2, 4))), reverse=True)
        elif roll < 0.30:  # still active: an order within the last 90 days as well
            ages = [rng.randint(120, 400), rng.randint(10, 80)]
        elif roll < 0.36:  # one-time buyers
            ages = [rng.randint(95, 400)]
        else:
            continue
        for age in ages:
            history.append((start - timedelta(days=age, minutes=rng.randrange(600, 1300)), contact, currency, rng))
    history.sort(key=lambda item: item[0])
    envelopes = []
    for n, (at, contact, currency, rng_) in enumerate(history, start=1):
        value = rng_.randrange(89, 3900) * 100 if currency == "KRW" else round(rng_.uniform(12, 240), 2)
        envelopes.append(
            {
                "id": f"hist-{slug}-{n:05d}",
                "type": "order_placed",
                "occurred_at": at.isoformat(timespec="seconds"),
                "contact": {"external_id": contact["external_id"]},
                "data": {
                    "order_id": f"H-{slug[:2].upper()}-{n:05d}",
                    "value": value,
                    "currency": currency,
                    "source": "backfill",
                },
            }
        )
    return envelopes


def closed_tickets(
    seed: int, slug: str, contacts: list[dict[str, Any]], start: datetime, span: timedelta, currency: str
) -> list[dict[str, Any]]:
    """`ticket_closed` events from the help desk for about one customer in ten, in the daytime of the window."""
    rng = random.Random(f"{seed}:{slug}:tickets")
    tickets = []
    for contact in contacts:
        if "email" not in contact or rng.random() >= 0.12:
            continue
        day = rng.randrange(max(span.days, 1))
        at = start + timedelta(days=day, hours=rng.uniform(1, 20))
        tickets.append((at, contact))
    tickets.sort(key=lambda item: item[0])
    return [
        {
            "id": f"tkt-{slug}-{n:04d}",
            "type": "ticket_closed",
            "occurred_at": at.isoformat(timespec="seconds"),
            "contact": {"external_id": contact["external_id"]},
            "data": {"ticket_id": f"T-{n:05d}", "topic": rng.choice(TOPICS[currency]), "channel": "chat"},
        }
        for n, (at, contact) in enumerate(tickets, start=1)
    ]
