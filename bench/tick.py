"""The time of one dispatch tick with a large backlog waiting."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

from bench.common import T0, Figure, database, seed_contacts, timed
from outbound.bootstrap import build
from outbound.clock import SimulatedClock
from outbound.db.models import Contact, Message, Tenant
from outbound.db.session import make_engine
from outbound.providers import Outbox
from outbound.settings import Settings

import tempfile
from pathlib import Path

from bench.pipeline import definitions


def _backlog(url: str, count: int) -> None:
    """`count` due marketing SMS for a few thousand contacts, inserted in chunks."""
    engine = make_engine(url)
    with engine.begin() as connection:
        tenant_id = connection.execute(select(Tenant.id)).scalar()
        contacts = list(connection.execute(select(Contact.id)).scalars())
        chunk = 100_000
        for start in range(0, count, chunk):
            rows = [{"tenant_id": tenant_id, "contact_id": contacts[i % len(contacts)], "campaign": "bench_reminder",
                     "step": "sms_1h", "channel": "sms", "purpose": "marketing", "template": "bench_note",
                     "status": "scheduled", "due_at": T0 - timedelta(seconds=count - i), "created_at": T0,
                     "updated_at": T0, "attempts": 0} for i in range(start, min(count, start + chunk))]
            connection.execute(insert(Message), rows)
    engine.dispose()


def run(backend: str, sizes: list[int]) -> list[Figure]:
    figures = []
    for size in sizes:
        with database(backend) as url, tempfile.TemporaryDirectory() as folder:
            clock = SimulatedClock(T0)
            seed_contacts(url, 5000, clock=clock)
            _backlog(url, size)
            outbox = Outbox()
            runtime = build(Settings(database_url=url, dispatch_batch_size=500), clock=clock,
                            providers={"sms": outbox, "email": outbox}, definitions=definitions(Path(folder)))
            seconds, report = timed(runtime.dispatcher.tick)
            runtime.close()
        figures.append(Figure(f"{backend}: one tick (batch of {report.claimed}) with {size:,} waiting",
                              seconds * 1000, "ms"))
    return figures
