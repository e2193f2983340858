"""The shipped demo scenario: two shops, their customers and two days of order events.

Pure data, no I/O: `build_scenario(seed)` returns the same values for the same seed,
so the demo report and its tests are reproducible. A few events are broken on
purpose, and one per shop is sent twice, so the demo shows ingest errors and idempotency
without losing the rest of the batch.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

START = datetime(2026, 11, 23, tzinfo=UTC)
EVENT_SPAN = timedelta(days=2)
# Delayed steps (reminders, surveys after delivery) need room after the last event.
RUN_SPAN = timedelta(days=5)

# Relative weight of each local hour of the day: evening shopping peaks, with
# late-night traffic on purpose so quiet hours (21:00-08:00) have work to do.
SHOPPING = (3, 1.5, 0.5, 0.3, 0.2, 0.3, 0.8, 1.5, 2.5, 3.5, 4.5, 5, 6, 5, 4.5, 4.5, 5, 5.5, 6.5, 8, 9, 10, 9, 6)
# Warehouses and carriers scan parcels in the daytime.
BUSINESS = (0, 0, 0, 0, 0, 0, 0.5, 2, 5, 6, 6, 6, 5, 6, 6, 6, 5, 4, 3, 2, 1, 0.5, 0, 0)


@dataclass(frozen=True, kw_only=True)
class TenantSpec:
    """A shop to create for the demo, with the sender details its messages need."""

    slug: str
    name: str
    jurisdiction: str
    timezone: str
    locale: str
    settings: dict[str, Any]


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


@dataclass(frozen=True, kw_only=True)
class _Market:
    """How one shop's customers look and buy; private to the generator."""

    tenant: TenantSpec
    prefix: str
    size: int
    currency: str
    order_prefix: str
    carriers: tuple[str, ...]
    interests: tuple[str, ...]
    revoke_source: str
    revoke_text: str


def build_scenario(seed: int = 7) -> Scenario:
    """Build the demo scenario; the same seed always gives the same scenario."""
    rng = random.Random(seed)
    people = {KR.tenant.slug: _kr_contacts(rng, KR.size), US.tenant.slug: _us_contacts(rng, US.size)}
    contacts = {slug: [c for c, _ in pairs] for slug, pairs in people.items()}
    events: dict[str, list[dict[str, Any]]] = {}
    malformed: dict[str, frozenset[str]] = {}
    duplicates: dict[str, frozenset[str]] = {}
    for market in (KR, US):
        slug = market.tenant.slug
        events[slug], malformed[slug], duplicates[slug] = _events(rng, market, people[slug])
    from outbound.demo.history import closed_tickets, order_history

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


KR = _Market(
    tenant=TenantSpec(
        slug="seoul-shop",
        name="서울상점",
        jurisdiction="KR",
        timezone="Asia/Seoul",
        locale="ko",
        settings={
            "sender_name": "서울상점",
            "support_contact": "02-555-0100",
            "optout_number": "080-555-0100",
            "email_from": "hello@seoul-shop.example",
            "sms_from": "+8215885555",
            "postal_address": "서울특별시 성동구 성수이로 77, 3층 (04790)",
        },
    ),
    prefix="kr",
    size=180,
    currency="KRW",
    order_prefix="SS",
    carriers=("CJ대한통운", "한진택배", "롯데택배"),
    interests=("기업 선물 세트", "정기 배송", "대량 구매"),
    revoke_source="마이페이지",
    revoke_text="광고성 문자 수신 동의를 철회합니다",
)
US = _Market(
    tenant=TenantSpec(
        slug="maple-goods",
        name="Maple Goods",
        jurisdiction="US",
        timezone="America/New_York",
        locale="en",
        settings={
            "sender_name": "Maple Goods",
            "support_contact": "help@maple-goods.example / +1 800 555 0199",
            "postal_address": "500 Market St, Suite 210, Philadelphia, PA 19106, USA",
            "email_from": "hello@maple-goods.example",
            "sms_from": "+12155550123",
        },
    ),
    prefix="us",
    size=160,
    currency="USD",
    order_prefix="MG",
    carriers=("UPS", "USPS", "FedEx"),
    interests=("wholesale", "corporate gifting", "gift cards"),
    revoke_source="account settings",
    revoke_text="Turned off promotional texts",
)


class _Stream:
    """Collects one tenant's events as (instant, envelope) while the story is told."""

    def __init__(self, rng: random.Random, market: _Market, homes: dict[str, str]) -> None:
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


def _events(
    rng: random.Random, m: _Market, people: list[tuple[dict[str, Any], str]]
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


def _value(rng: random.Random, m: _Market) -> Any:
    """An order or cart value in the shop's currency (whole won; dollars and cents)."""
    if m.currency == "KRW":
        return rng.randrange(89, 3900) * 100
    return round(rng.uniform(12, 240), 2)


def _sms_marketing_granted(contact: dict[str, Any]) -> bool:
    items = [i for i in contact.get("consents", []) if (i["channel"], i["purpose"]) == ("sms", "marketing")]
    return bool(items) and items[-1]["granted"]


# Names as (written, romanised for the e-mail address).
KR_SURNAMES = [tuple(p.split(":")) for p in ["김:kim", "이:lee", "박:park", "최:choi", "정:jung", "강:kang", "조:cho", "윤:yoon", "장:jang", "임:lim", "한:han", "오:oh", "서:seo", "신:shin", "권:kwon", "황:hwang", "안:ahn", "송:song", "류:ryu", "홍:hong"]]  # fmt: skip
KR_GIVEN = [tuple(p.split(":")) for p in ["민준:minjun", "서연:seoyeon", "지호:jiho", "하은:haeun", "도윤:doyoon", "지우:jiwoo", "서준:seojun", "수아:sua", "예준:yejun", "지민:jimin", "현우:hyunwoo", "유진:yujin", "준서:junseo", "채원:chaewon", "시우:siwoo", "다은:daeun", "은우:eunwoo", "소윤:soyoon", "건우:gunwoo", "하린:harin", "우진:woojin", "예린:yerin", "선영:sunyoung", "영호:youngho", "미경:mikyung", "정훈:junghoon", "성민:sungmin", "혜진:hyejin"]]  # fmt: skip
US_FIRST = ["Emma", "Olivia", "Ava", "Sophia", "Mia", "Isabella", "Amelia", "Harper", "Evelyn", "Abigail", "Liam", "Noah", "Oliver", "Elijah", "James", "William", "Benjamin", "Lucas", "Henry", "Theodore", "Maria", "Jose", "Daniel", "Grace", "Chloe", "Ethan", "Jacob", "Michael", "Sarah", "Jessica", "David", "Aaliyah", "Jamal", "Priya", "Wei", "Carlos", "Sofia"]  # fmt: skip
US_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Patel", "Kim", "Chen"]  # fmt: skip
# Area codes that match each zone, so a phone-derived time zone agrees with the stored one.
US_ZONES = {
    "America/New_York": ((212, 646, 215, 617, 404, 305, 202), 40),
    "America/Chicago": ((312, 773, 214, 512, 612), 25),
    "America/Denver": ((303, 720, 801, 505), 12),
    "America/Los_Angeles": ((213, 310, 415, 206, 503), 18),
    "Pacific/Honolulu": ((808,), 5),
}
DOMAINS = ("example.com", "example.org", "example.net")
KR_TEXT = {
    ("sms", "transactional"): ("주문서", "주문·배송 안내 문자를 받겠습니다"),
    ("sms", "marketing"): ("회원가입", "(선택) 할인·이벤트 등 광고성 정보를 문자로 받겠습니다"),
    ("sms", "night"): ("회원가입", "(선택) 광고성 정보 문자 수신 및 야간(21시~08시) 수신에 동의합니다"),
    ("sms", "revoke"): ("080 수신거부", "080-555-0100 수신거부 요청"),
    ("sms", "survey"): ("주문서", "배송 후 만족도 조사 문자를 받겠습니다"),
    ("email", "marketing"): ("회원가입", "(선택) 광고성 정보를 이메일로 받겠습니다"),
}
US_TEXT = {
    ("sms", "transactional"): ("checkout form", "Text me order and delivery updates."),
    ("sms", "marketing"): (
        "checkout form",
        "Yes, text me offers from Maple Goods. Up to 4 msgs/week. Msg & data rates may apply. Reply STOP to opt out.",
    ),  # fmt: skip
    ("sms", "revoke"): ("reply STOP", "STOP"),
    ("sms", "survey"): ("checkout form", "Text me a short survey after delivery."),
    ("email", "marketing"): ("newsletter signup", "Send me deals and new arrivals by email."),
    ("email", "survey"): ("account settings", "Ask me about my orders by email."),
}


def _kr_contacts(rng: random.Random, n: int) -> list[tuple[dict[str, Any], str]]:
    """Korean customers with their home zones: 010 mobiles, Hangul names, mostly in Seoul."""
    people, taken = [], set()
    for k in range(1, n + 1):
        (sur, sur_r), (given, given_r) = rng.choice(KR_SURNAMES), rng.choice(KR_GIVEN)
        home = rng.choices(("Asia/Seoul", "America/Los_Angeles"), (96, 4))[0]
        phone = _unique(taken, lambda: f"+8210{rng.randint(2000, 9999)}{rng.randrange(10000):04d}", valid=_dialable)
        email = _unique(
            taken, lambda given_r=given_r, sur_r=sur_r: f"{given_r}.{sur_r}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
        )
        c = _contact(rng, f"kr-cust-{k:04d}", phone, email, home, rng.choices(("ko", "en"), (88, 12))[0])
        c["attributes"] = {"name": sur + given, "tier": rng.choices(("regular", "vip"), (80, 20))[0]}
        if home == "Asia/Seoul" and rng.random() < 0.06:
            del c["timezone"]  # left to be derived from the phone number
        c["consents"] = _kr_consents(rng, c, ZoneInfo(home))
        people.append((c, home))
    return people


def _us_contacts(rng: random.Random, n: int) -> list[tuple[dict[str, Any], str]]:
    """American customers across five time zones, on fictional 555-01xx numbers."""
    people, taken = [], set()
    zones = list(US_ZONES)
    for k in range(1, n + 1):
        first, last = rng.choice(US_FIRST), rng.choice(US_LAST)
        home = rng.choices(zones, [US_ZONES[z][1] for z in zones])[0]
        area = rng.choice(US_ZONES[home][0])
        phone = _unique(taken, lambda area=area: f"+1{area}555{rng.randrange(100, 200):04d}", valid=_dialable)
        email = _unique(
            taken, lambda first=first, last=last: f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}".lower()
        )
        c = _contact(rng, f"us-cust-{k:04d}", phone, email, home, rng.choices(("en", "es"), (94, 6))[0])
        c["attributes"] = {"name": f"{first} {last}", "tier": rng.choices(("regular", "vip"), (80, 20))[0]}
        if rng.random() < 0.06:
            del c["timezone"]  # the area code tells
        c["consents"] = [] if rng.random() < 0.1 else _us_consents(rng, c, ZoneInfo(home))
        people.append((c, home))
    return people


def _contact(rng: random.Random, external_id: str, phone: str, email: str, home: str, locale: str) -> dict[str, Any]:
    """A contact in import shape; a few have no phone, a few more no e-mail, none lack both."""
    c: dict[str, Any] = {"external_id": external_id}
    roll = rng.random()
    if roll >= 0.04:
        c["phone"] = phone
    if roll < 0.04 or rng.random() >= 0.08:
        c["email"] = email
    c.update(timezone=home, locale=locale)
    return c


def _kr_consents(rng: random.Random, c: dict[str, Any], zone: ZoneInfo) -> list[dict[str, Any]]:
    """Checkout and sign-up consents; some with night-time consent, some lapsed after 2 years, some revoked."""
    lapsed = rng.random() < 0.06  # given before late 2024: re-confirmation is overdue
    first, last = (date(2023, 5, 1), date(2024, 10, 31)) if lapsed else (date(2025, 1, 1), date(2026, 11, 15))
    signed = _moment(rng, zone, first, last)
    items = []
    if "phone" in c:
        if rng.random() < 0.9:
            items.append(_item("sms", "transactional", True, signed, KR_TEXT[("sms", "transactional")]))
        if rng.random() < 0.65:
            night = rng.random() < 0.4
            how = KR_TEXT[("sms", "night" if night else "marketing")]
            items.append(_item("sms", "marketing", True, signed, how, night=night))
            if rng.random() < 0.12:
                later = _moment(rng, zone, signed.date() + timedelta(days=1), date(2026, 11, 20))
                items.append(_item("sms", "marketing", False, later, KR_TEXT[("sms", "revoke")]))
        if rng.random() < 0.3:
            items.append(_item("sms", "survey", True, signed, KR_TEXT[("sms", "survey")]))
    if "email" in c and rng.random() < 0.5:
        items.append(_item("email", "marketing", True, signed, KR_TEXT[("email", "marketing")]))
    return sorted(items, key=lambda i: datetime.fromisoformat(i["at"]))


def _us_consents(rng: random.Random, c: dict[str, Any], zone: ZoneInfo) -> list[dict[str, Any]]:
    """Written consent for marketing texts at checkout, e-mail sign-ups, survey opt-ins, a few STOPs."""
    signed = _moment(rng, zone, date(2024, 3, 1), date(2026, 11, 15))
    items = []
    if "phone" in c:
        if rng.random() < 0.85:
            items.append(_item("sms", "transactional", True, signed, US_TEXT[("sms", "transactional")]))
        if rng.random() < 0.55:
            items.append(_item("sms", "marketing", True, signed, US_TEXT[("sms", "marketing")]))
            if rng.random() < 0.1:
                later = _moment(rng, zone, signed.date() + timedelta(days=1), date(2026, 11, 20))
                items.append(_item("sms", "marketing", False, later, US_TEXT[("sms", "revoke")]))
        if rng.random() < 0.2:
            items.append(_item("sms", "survey", True, signed, US_TEXT[("sms", "survey")]))
    if "email" in c:
        for purpose, share in (("marketing", 0.6), ("survey", 0.4)):
            if rng.random() < share:
                items.append(_item("email", purpose, True, signed, US_TEXT[("email", purpose)]))
    return sorted(items, key=lambda i: datetime.fromisoformat(i["at"]))


def _item(
    channel: str, purpose: str, granted: bool, at: datetime, how: tuple[str, str], *, night: bool = False
) -> dict[str, Any]:
    """One consent item in the shape `consent_changed` and contact import share."""
    source, text = how
    return {"channel": channel, "purpose": purpose, "granted": granted, "night": night,
            "at": at.isoformat(timespec="seconds"), "source": source, "text": text}  # fmt: skip


def _moment(rng: random.Random, zone: ZoneInfo, first: date, last: date) -> datetime:
    """A local moment on a day in [first, last], at a likely hour for shopping."""
    day = first + timedelta(days=rng.randrange(max((last - first).days, 0) + 1))
    hour = rng.choices(range(24), SHOPPING)[0]
    return datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)), zone)


def _unique(taken: set[str], make: Any, valid: Any = bool) -> str:
    """A fresh, valid value from `make`; numbers and addresses are never shared between contacts."""
    while (value := make()) in taken or not valid(value):
        pass
    taken.add(value)
    return value


def _dialable(phone: str) -> bool:
    # Some 010 blocks are unassigned; the engine rejects such numbers, so the demo never uses them.
    return phonenumbers.is_valid_number(phonenumbers.parse(phone))
