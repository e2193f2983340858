"""The demo's customers in import shape: names, numbers and e-mail addresses, home time zones and consents.

Pure data from the scenario's random stream: Korean customers on 010 mobiles, mostly in Seoul; American
customers across five time zones on fictional 555-01xx numbers; each with the consents their shop's
checkout and sign-up forms record, worded as those forms word them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from outbound.demo.shops import SHOPPING

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


def korean_customers(rng: random.Random, n: int) -> list[tuple[dict[str, Any], str]]:
    """Korean customers with their home zones: 010 mobiles, Hangul names, mostly in Seoul."""
    people: list[tuple[dict[str, Any], str]] = []
    taken: set[str] = set()
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


def american_customers(rng: random.Random, n: int) -> list[tuple[dict[str, Any], str]]:
    """American customers across five time zones, on fictional 555-01xx numbers."""
    people: list[tuple[dict[str, Any], str]] = []
    taken: set[str] = set()
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


def _unique(taken: set[str], make: Callable[..., str], valid: Callable[[str], bool] = bool) -> str:
    """A fresh, valid value from `make()`; numbers and addresses are never shared between contacts."""
    while (value := make()) in taken or not valid(value):
        pass
    taken.add(value)
    return value


def _dialable(phone: str) -> bool:
    # Some 010 blocks are unassigned; the engine rejects such numbers, so the demo never uses them.
    return phonenumbers.is_valid_number(phonenumbers.parse(phone))
