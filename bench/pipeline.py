"""Delayed messages end to end (enroll → claim → decide → render → provider) against floors of the same database."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

from bench.common import T0, Figure, database, seed_contacts, timed
from outbound.bootstrap import build
from outbound.clock import SimulatedClock
from outbound.db.models import Contact, Message, Tenant
from outbound.db.session import transaction
from outbound.definitions import load_definitions
from outbound.enrollment import enroll
from outbound.providers import Outbox, TwilioSms
from outbound.settings import Settings

CAMPAIGN = """name: bench_reminder
kind: reminder
purpose: marketing
steps:
  - id: sms_1h
    channel: sms
    delay: 1h
    template: bench_note
"""
TEMPLATE = "{{ tenant.sender_name }}: your cart is waiting, {{ contact.external_id }}. Reply STOP to opt out"


def definitions(folder: Path):
    for sub in ("campaigns", "triggers", "templates/bench_note"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "campaigns" / "bench_reminder.yaml").write_text(CAMPAIGN)
    (folder / "triggers" / "none.yaml").write_text("triggers: []\n")
    (folder / "templates" / "bench_note" / "sms.en.j2").write_text(TEMPLATE)
    return load_definitions(folder)


def _enroll_all(runtime, count: int) -> None:
    campaign = runtime.definitions.campaigns["bench_reminder"]
    with transaction(runtime.factory) as session:
        tenant = session.scalar(select(Tenant))
        for contact in session.scalars(select(Contact).order_by(Contact.id).limit(count)):
            enroll(session, tenant, campaign, contact, None, runtime.clock)


def end_to_end(url: str, count: int, provider) -> tuple[float, float]:
    """Seconds to enroll `count` contacts, then to dispatch their messages once due."""
    clock = SimulatedClock(T0)
    seed_contacts(url, count, clock=clock)
    with tempfile.TemporaryDirectory() as folder:
        runtime = build(Settings(database_url=url, dispatch_batch_size=1000), clock=clock,
                        providers={"sms": provider, "email": provider}, definitions=definitions(Path(folder)))
        enroll_seconds, _ = timed(_enroll_all, runtime, count)
        clock.advance(timedelta(hours=1))
        dispatch_seconds, report = timed(runtime.dispatcher.drain)
        runtime.close()
    assert report.sent == count, f"only {report.sent} of {count} sent: {report.decisions}"
    return enroll_seconds, dispatch_seconds


def raw_insert_rate(url: str, count: int) -> float:
    """Messages per second for plain batched INSERTs of message rows into the same schema (the floor)."""
    from outbound.db.session import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        contact_id = connection.execute(select(Contact.id).limit(1)).scalar()
        tenant_id = connection.execute(select(Tenant.id)).scalar()
        rows = [{"tenant_id": tenant_id, "contact_id": contact_id, "campaign": "raw", "step": "s", "channel": "sms",
                 "purpose": "marketing", "template": "t", "status": "scheduled", "due_at": T0, "created_at": T0,
                 "updated_at": T0, "attempts": 0} for _ in range(count)]
        seconds, _ = timed(connection.execute, insert(Message), rows)
    engine.dispose()
    return count / seconds


def run(backend: str, count: int) -> list[Figure]:
    figures = []
    with database(backend) as url:
        enroll_s, dispatch_s = end_to_end(url, count, Outbox())
        floor = raw_insert_rate(url, count)
    rate = count / (enroll_s + dispatch_s)
    figures.append(Figure(f"{backend}: delayed msg end to end (outbox), {count:,}", rate, "msg/s",
                          "raw INSERT of message rows", floor))
    figures.append(Figure(f"{backend}:   of which enroll", count / enroll_s, "msg/s"))
    figures.append(Figure(f"{backend}:   of which claim→decide→render→send", count / dispatch_s, "msg/s"))
    return figures


def sdk_figures(count: int) -> list[Figure]:
    """The engine with the real Twilio SDK against the loopback fake, against the SDK calls alone."""
    from outbound.providers import OutgoingMessage
    from outbound.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeProviderServer

    with FakeProviderServer() as fake:
        def provider():
            return TwilioSms(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number="+12155550123", api_base=fake.url)

        sms = provider()
        messages = [OutgoingMessage(message_id=i, tenant="bench", channel="sms", to=f"+1212555{i % 10000:04d}",
                                    sender="+12155550123", subject=None, body=TEMPLATE) for i in range(count)]
        alone, _ = timed(lambda: [sms.send(m) for m in messages])
        with database("sqlite") as url:
            enroll_s, dispatch_s = end_to_end(url, count, provider())
    return [Figure(f"sqlite: engine + Twilio SDK → fake provider, {count:,}", count / (enroll_s + dispatch_s), "msg/s",
                   "Twilio SDK calls alone", count / alone)]
