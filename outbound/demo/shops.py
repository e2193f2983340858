"""The demo's two shops and its calendar: when the story happens, and how each shop's customers look and buy.

Pure data, shared by the customers (`outbound.demo.people`), the event streams
(`outbound.demo.events`) and the scenario that puts them together (`outbound.demo.scenario`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
class Market:
    """How one shop's customers look and buy: numbers and order ids, currency, carriers, lead interests,
    and where they turn off marketing texts."""

    tenant: TenantSpec
    prefix: str
    size: int
    currency: str
    order_prefix: str
    carriers: tuple[str, ...]
    interests: tuple[str, ...]
    revoke_source: str
    revoke_text: str


KR = Market(
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
US = Market(
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
