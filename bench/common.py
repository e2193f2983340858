"""What the benchmarks share: databases on both backends, a tenant with contacts, timing and printing."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from outbound.addresses import address_hash
from outbound.clock import SimulatedClock
from outbound.db.models import Consent, Contact, Tenant
from outbound.db.session import make_engine, session_factory, upgrade

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the throwaway PostgreSQL server lives with the tests

console = Console()
if not console.is_terminal and "COLUMNS" not in os.environ:
    console = Console(width=160)  # figures written to a file keep their rows whole
T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 10:00 in New York: inside every quiet-hours window


@dataclass
class Figure:
    """One measured figure and the floor it is compared with, measured in the same run."""

    name: str
    value: float
    unit: str
    floor_name: str | None = None
    floor: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.value / self.floor if self.floor else None


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


@contextmanager
def database(backend: str) -> Iterator[str]:
    """A fresh migrated database URL on `backend` ('sqlite' or 'postgres'), removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="outbound-bench-") as folder:
            url = f"sqlite:///{folder}/bench.db"
            upgrade(url)
            yield url
        return
    from helpers.postgres_server import PostgresServer

    server = PostgresServer().start()
    try:
        upgrade(server.url)
        yield server.url
    finally:
        server.stop()


def seed_contacts(url: str, count: int, *, clock: SimulatedClock) -> int:
    """A US tenant with `count` contacts, each with a phone, an email and marketing consent on both; returns its id."""
    engine = make_engine(url)
    factory = session_factory(engine)
    now = clock.now()
    with factory() as session, session.begin():
        tenant = Tenant(
            slug="bench",
            name="Bench Shop",
            jurisdiction="US",
            timezone="America/New_York",
            locale="en",
            settings={
                "sender_name": "Bench Shop",
                "postal_address": "1 Main St, Springfield, IL",
                "support_contact": "help@bench.example",
                "sms_from": "+12155550123",
                "email_from": "hello@bench.example",
            },
            created_at=now,
        )
        session.add(tenant)
        session.flush()
        tenant_id = tenant.id
    chunk = 50_000
    with engine.begin() as connection:
        for start in range(0, count, chunk):
            rows = [
                {
                    "tenant_id": tenant_id,
                    "external_id": f"c{i}",
                    "phone": f"+1212555{i % 10000:04d}",
                    "phone_hash": address_hash("sms", f"+1212555{i % 10000:04d}"),
                    "email": f"c{i}@example.com",
                    "timezone": "America/New_York",
                    "locale": "en",
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(start, min(count, start + chunk))
            ]
            connection.execute(insert(Contact), rows)
        first_id = connection.exec_driver_sql("SELECT min(id) FROM contacts").scalar()
        for start in range(0, count, chunk):
            rows = [
                {
                    "tenant_id": tenant_id,
                    "contact_id": first_id + i,
                    "channel": channel,
                    "purpose": "marketing",
                    "granted": True,
                    "night": False,
                    "at": now - timedelta(days=1),
                    "source": "bench",
                    "text": "yes",
                    "recorded_at": now,
                }
                for i in range(start, min(count, start + chunk))
                for channel in ("sms", "email")
            ]
            connection.execute(insert(Consent), rows)
    engine.dispose()
    return tenant_id


RECORDED: list[tuple[str, Figure]] = []  # every figure printed in this run, with its table's title (for --json)


def print_figures(title: str, figures: list[Figure]) -> None:
    RECORDED.extend((title, f) for f in figures)
    table = Table(title=title, title_justify="left")
    for column in ("measure", "value", "floor (same run)", "floor value", "ratio", ""):
        table.add_column(column, justify="right" if column in ("value", "floor value", "ratio") else "left")
    for f in figures:
        table.add_row(
            f.name,
            f"{f.value:,.1f} {f.unit}",
            f.floor_name or "",
            f"{f.floor:,.1f} {f.unit}" if f.floor else "",
            f"{f.ratio:.2f}" if f.ratio else "",
            _bar(f.ratio) if f.ratio else "",
        )
    console.print(table)


def _bar(ratio: float, width: int = 20) -> str:
    """The ratio as a bar against the floor (the floor's own length is marked with |; longer is capped)."""
    filled = round(min(ratio, 1.0) * width)
    return "█" * filled + "·" * (width - filled) + ("|" if ratio <= 1.0 else "+")
