"""Delayed messages end to end (enroll → claim → decide → render → provider) against floors of the same database."""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select

from bench.common import T0, Figure, database, seed_contacts, timed
from outbound.bootstrap import build
from outbound.clock import SimulatedClock
from outbound.config import Settings
from outbound.db.models import Contact, Message, Tenant
from outbound.db.session import transaction
from outbound.definitions import load_definitions
from outbound.enrollment.audience_runs import CHUNK
from outbound.enrollment.writer import candidates_without_event, enroll
from outbound.providers import Outbox, TwilioSms

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
    """Enroll the first `count` contacts the way the product enrolls a list of contacts: the one writer, a
    batch run's chunk at a time."""
    campaign = runtime.definitions.campaigns["bench_reminder"]
    now = runtime.clock.now()
    with transaction(runtime.factory) as session:
        tenant = session.scalar(select(Tenant))
        contacts = session.execute(select(Contact.__table__).order_by(Contact.id).limit(count)).all()
        for start in range(0, len(contacts), CHUNK):
            chunk = contacts[start : start + CHUNK]
            enroll(session, tenant, candidates_without_event(campaign, chunk, now, "bench"), now)


def raw_insert_rate(url: str, count: int) -> float:
    """Messages per second for plain batched INSERTs of message rows into the same schema (the floor)."""
    from outbound.db.session import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        contact_id = connection.execute(select(Contact.id).limit(1)).scalar()
        tenant_id = connection.execute(select(Tenant.id)).scalar()
        rows = [
            {
                "tenant_id": tenant_id,
                "contact_id": contact_id,
                "campaign": "raw",
                "step": "s",
                "channel": "sms",
                "purpose": "marketing",
                "template": "t",
                "status": "scheduled",
                "due_at": T0,
                "created_at": T0,
                "updated_at": T0,
                "attempts": 0,
            }
            for _ in range(count)
        ]
        seconds, _ = timed(connection.execute, insert(Message), rows)
    engine.dispose()
    return count / seconds


def contract_writes(url: str, count: int, batch_size: int = 1000) -> tuple[float, float]:
    """Seconds for only the statements the contract makes a delayed message cost, in batches, through the
    engine's own fastest write path (executemany on SQLite, COPY on PostgreSQL): enrolled (its enrollment,
    the message, the message's first transition), claimed and marked `sending` with its transition and
    committed before any provider call (sending is at most once), then `sent` with its transition. No
    context read, no decision, no rendering: the engine can come near this rate, never pass it."""
    from outbound.db.bulk import allocate_ids, insert_rows, update_by_id
    from outbound.db.models import Enrollment, MessageTransition
    from outbound.db.session import make_engine

    engine = make_engine(url)
    messages, transitions = Message.__table__, MessageTransition.__table__
    due, later = T0 + timedelta(hours=1), T0 + timedelta(hours=1, seconds=1)

    def steps(ids, at, from_status, to_status, source, detail):
        return [
            {
                "tenant_id": tenant_id,
                "message_id": i,
                "at": at,
                "from_status": from_status,
                "to_status": to_status,
                "source": source,
                "rule": "consent",
                "reason": "consent on record",
                "detail": detail(i),
            }
            for i in ids
        ]

    with engine.begin() as connection:
        tenant_id = connection.execute(select(Tenant.id)).scalar()
        contacts = connection.execute(select(Contact.id, Contact.phone).order_by(Contact.id).limit(count)).all()
    phones = dict(contacts)
    start = time.perf_counter()
    for first in range(0, len(contacts), batch_size):
        chunk = [contact_id for contact_id, _ in contacts[first : first + batch_size]]
        with engine.begin() as connection:
            enrollment_ids = allocate_ids(connection, Enrollment.__table__, len(chunk))
            insert_rows(
                connection,
                Enrollment.__table__,
                [
                    {
                        "id": e,
                        "tenant_id": tenant_id,
                        "campaign": "bench_reminder",
                        "contact_id": c,
                        "dedupe_key": "",
                        "status": "active",
                        "enrolled_at": T0,
                        "holdout": False,
                    }
                    for e, c in zip(enrollment_ids, chunk, strict=True)
                ],
            )
            message_ids = allocate_ids(connection, messages, len(chunk))
            insert_rows(
                connection,
                messages,
                [
                    {
                        "id": m,
                        "tenant_id": tenant_id,
                        "enrollment_id": e,
                        "contact_id": c,
                        "campaign": "bench_reminder",
                        "step": "sms_1h",
                        "channel": "sms",
                        "purpose": "marketing",
                        "template": "bench_note",
                        "status": "scheduled",
                        "due_at": due,
                        "created_at": T0,
                        "updated_at": T0,
                        "attempts": 0,
                    }
                    for m, e, c in zip(message_ids, enrollment_ids, chunk, strict=True)
                ],
            )
            insert_rows(connection, transitions, steps(message_ids, T0, None, "scheduled", "enrollment", lambda i: {}))
    enrolled = time.perf_counter()
    while True:
        with engine.begin() as connection:
            rows = connection.execute(
                select(messages.c.id, messages.c.contact_id)
                .where(messages.c.status == "scheduled", messages.c.due_at <= due)
                .order_by(messages.c.due_at, messages.c.id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                break
            update_by_id(
                connection,
                messages,
                [
                    {
                        "_id": m,
                        "status": "sending",
                        "updated_at": due,
                        "attempts": 1,
                        "to_address": phones[c],
                        "provider": "outbox",
                        "sender": "+12155550123",
                        "rule": "consent",
                        "reason": "consent on record",
                        "locale": "en",
                        "body": f"Bench Shop: your cart is waiting, c{c}. Reply STOP to opt out",
                    }
                    for m, c in rows
                ],
            )
            insert_rows(
                connection,
                transitions,
                steps([m for m, _ in rows], due, "scheduled", "sending", "worker", lambda i: {}),
            )
        with engine.begin() as connection:  # the provider's answers, recorded
            update_by_id(
                connection,
                messages,
                [
                    {"_id": m, "status": "sent", "updated_at": later, "sent_at": later, "provider_id": f"outbox-{m}"}
                    for m, _ in rows
                ],
            )
            insert_rows(
                connection,
                transitions,
                steps(
                    [m for m, _ in rows],
                    later,
                    "sending",
                    "sent",
                    "worker",
                    lambda i: {"provider": "outbox", "provider_id": f"outbox-{i}"},
                ),
            )
    done = time.perf_counter()
    engine.dispose()
    return enrolled - start, done - enrolled


def bare_sqlite_writes(url: str, count: int, batch_size: int = 1000) -> float:
    """Seconds for the statements of `contract_writes` through `sqlite3` itself, values already in the form
    SQLite stores them: no type processing at all, the most the database could take of them."""
    import sqlite3

    db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA synchronous=NORMAL")
    now, due, later = (
        moment.replace(tzinfo=None).isoformat(" ", "microseconds")
        for moment in (T0, T0 + timedelta(hours=1), T0 + timedelta(hours=1, seconds=1))
    )
    tenant_id = db.execute("SELECT id FROM tenants").fetchone()[0]
    contacts = db.execute("SELECT id, phone FROM contacts ORDER BY id LIMIT ?", (count,)).fetchall()
    phones = dict(contacts)
    step = (
        "INSERT INTO message_transitions (tenant_id, message_id, at, from_status, to_status, source, rule, reason,"
        " detail) VALUES (?, ?, ?, ?, ?, ?, 'consent', 'consent on record', ?)"
    )
    start = time.perf_counter()
    for first in range(0, len(contacts), batch_size):
        chunk = [contact_id for contact_id, _ in contacts[first : first + batch_size]]
        db.execute("BEGIN IMMEDIATE")
        base = db.execute("SELECT coalesce(max(id), 0) + 1 FROM messages").fetchone()[0]
        db.executemany(
            "INSERT INTO enrollments (id, tenant_id, campaign, contact_id, dedupe_key, status, enrolled_at,"
            " holdout) VALUES (?, ?, 'bench_reminder', ?, '', 'active', ?, 0)",
            [(base + i, tenant_id, c, now) for i, c in enumerate(chunk)],
        )
        db.executemany(
            "INSERT INTO messages (id, tenant_id, enrollment_id, contact_id, campaign, step, channel, purpose,"
            " template, status, due_at, created_at, updated_at, attempts) VALUES (?, ?, ?, ?, 'bench_reminder',"
            " 'sms_1h', 'sms', 'marketing', 'bench_note', 'scheduled', ?, ?, ?, 0)",
            [(base + i, tenant_id, base + i, c, due, now, now) for i, c in enumerate(chunk)],
        )
        db.executemany(
            step, [(tenant_id, base + i, now, None, "scheduled", "enrollment", "{}") for i in range(len(chunk))]
        )
        db.execute("COMMIT")
    while True:
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute(
            "SELECT id, contact_id FROM messages WHERE status = 'scheduled' AND due_at <= ?"
            " ORDER BY due_at, id LIMIT ?",
            (due, batch_size),
        ).fetchall()
        if not rows:
            db.execute("COMMIT")
            break
        db.executemany(
            "UPDATE messages SET status = 'sending', updated_at = ?, attempts = 1, to_address = ?,"
            " provider = 'outbox', sender = '+12155550123', rule = 'consent', reason = 'consent on record',"
            " locale = 'en', body = ? WHERE id = ?",
            [(due, phones[c], f"Bench Shop: your cart is waiting, c{c}. Reply STOP to opt out", m) for m, c in rows],
        )
        db.executemany(step, [(tenant_id, m, due, "scheduled", "sending", "worker", "{}") for m, _ in rows])
        db.execute("COMMIT")
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "UPDATE messages SET status = 'sent', updated_at = ?, sent_at = ?, provider_id = ? WHERE id = ?",
            [(later, later, f"outbox-{m}", m) for m, _ in rows],
        )
        db.executemany(
            step,
            [
                (
                    tenant_id,
                    m,
                    later,
                    "sending",
                    "sent",
                    "worker",
                    f'{{"provider": "outbox", "provider_id": "outbox-{m}"}}',
                )
                for m, _ in rows
            ],
        )
        db.execute("COMMIT")
    seconds = time.perf_counter() - start
    db.close()
    return seconds


def run(backend: str, count: int) -> list[Figure]:
    figures = []
    with database(backend) as url:
        enroll_s, dispatch_s = end_to_end(url, count, Outbox())
        floor = raw_insert_rate(url, count)
    with database(backend) as url:
        seed_contacts(url, count, clock=SimulatedClock(T0))
        bare_enroll_s, bare_dispatch_s = contract_writes(url, count)
    bare_driver = None
    if backend == "sqlite":
        with database(backend) as url:
            seed_contacts(url, count, clock=SimulatedClock(T0))
            bare_driver = count / bare_sqlite_writes(url, count)
    rate = count / (enroll_s + dispatch_s)
    bare = "its writes alone: no read, decision, render"
    figures.append(
        Figure(
            f"{backend}: delayed msg end to end (outbox), {count:,}", rate, "msg/s", "raw INSERT of message rows", floor
        )
    )
    figures.append(
        Figure(
            f"{backend}: delayed msg end to end (outbox), {count:,}",
            rate,
            "msg/s",
            bare,
            count / (bare_enroll_s + bare_dispatch_s),
        )
    )
    if bare_driver is not None:
        figures.append(
            Figure(
                f"{backend}: delayed msg end to end (outbox), {count:,}",
                rate,
                "msg/s",
                "the same writes through sqlite3 itself",
                bare_driver,
            )
        )
    figures.append(Figure(f"{backend}:   of which enroll", count / enroll_s, "msg/s", bare, count / bare_enroll_s))
    figures.append(
        Figure(
            f"{backend}:   of which claim→decide→render→send",
            count / dispatch_s,
            "msg/s",
            bare,
            count / bare_dispatch_s,
        )
    )
    return figures


def sdk_figures(count: int) -> list[Figure]:
    """The engine with the real Twilio and SendGrid SDKs against the loopback fake, each against the same
    provider path alone: `send_all` with the same pool on messages rendered beforehand, so the ratio is the
    engine's own cost. The SDK sending one message per request, one request at a time, is printed too."""
    from outbound.providers import SendGridEmail, send_all
    from outbound.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_SENDGRID_API_KEY, FakeProviderProcess

    pool = Settings().provider_concurrency
    figures: list[Figure] = []
    # The fake answers from a process of its own, as a provider would: its work does not count against ours.
    with FakeProviderProcess() as fake:

        def twilio(concurrency: int = pool):
            return TwilioSms(
                DEFAULT_ACCOUNT_SID,
                DEFAULT_AUTH_TOKEN,
                from_number="+12155550123",
                api_base=fake.url,
                concurrency=concurrency,
            )

        def sendgrid(concurrency: int = pool):
            return SendGridEmail(
                DEFAULT_SENDGRID_API_KEY, "hello@bench.example", api_base=fake.url, concurrency=concurrency
            )

        for label, channel, make in (("Twilio", "sms", twilio), ("SendGrid", "email", sendgrid)):
            outgoing = _sdk_rendered(channel, count)
            one_by_one = count / timed(_one_at_a_time, make(1), outgoing)[0]
            alone = count / timed(send_all, {channel: make()}, outgoing)[0]
            fake.reset()
            with database("sqlite") as url:
                enroll_s, dispatch_s = end_to_end(url, count, make(), channel)
            accepted = fake.accepted_count("twilio" if channel == "sms" else "sendgrid")
            assert accepted == count, f"the fake accepted {accepted} of {count}"
            figures.append(
                Figure(
                    f"sqlite: engine + {label} SDK → fake provider, {count:,}",
                    count / (enroll_s + dispatch_s),
                    "msg/s",
                    f"{label} send_all alone, pool of {pool}",
                    alone,
                )
            )
            figures.append(
                Figure(
                    f"sqlite:   of which claim→decide→render→send ({label})",
                    count / dispatch_s,
                    "msg/s",
                    f"{label} send_all alone, pool of {pool}",
                    alone,
                )
            )
            figures.append(Figure(f"{label} SDK alone, one message per request, one at a time", one_by_one, "msg/s"))
    # A provider across a network answers in tens of milliseconds: there, requests in flight side by side count.
    latency, sample = 0.02, min(count, 400)
    with FakeProviderProcess(latency=latency) as fake:
        outgoing = _sdk_rendered("sms", sample)
        sms_one = TwilioSms(
            DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number="+12155550123", api_base=fake.url, concurrency=1
        )
        sms_pool = TwilioSms(
            DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, from_number="+12155550123", api_base=fake.url, concurrency=pool
        )
        one_by_one = sample / timed(_one_at_a_time, sms_one, outgoing)[0]
        pooled = sample / timed(send_all, {"sms": sms_pool}, outgoing)[0]
        # Batches of 100: while one waits for its answers, the engine decides and renders the next.
        with database("sqlite") as url:
            enroll_s, dispatch_s = end_to_end(url, sample, sms_pool, batch_size=100)
    figures.append(
        Figure(
            f"Twilio SDK, {latency * 1000:.0f} ms answers: send_all, pool of {pool}, {sample:,}",
            pooled,
            "msg/s",
            "one request at a time",
            one_by_one,
        )
    )
    figures.append(
        Figure(
            f"sqlite: engine + Twilio SDK, {latency * 1000:.0f} ms answers, {sample:,}",
            sample / (enroll_s + dispatch_s),
            "msg/s",
            "send_all alone, same answers",
            pooled,
        )
    )
    figures.append(
        Figure(
            f"sqlite:   of which claim→decide→render→send ({latency * 1000:.0f} ms answers)",
            sample / dispatch_s,
            "msg/s",
            "send_all alone, same answers",
            pooled,
        )
    )
    return figures


EMAIL_CAMPAIGN = CAMPAIGN.replace("sms_1h", "email_1h").replace("channel: sms", "channel: email")
EMAIL_TEMPLATE = (
    "{% block subject %}Your cart is waiting, {{ contact.external_id }}{% endblock %}"
    "{% block text %}{{ tenant.sender_name }}: your cart is waiting, {{ contact.external_id }}. "
    "{{ tenant.postal_address }}. Unsubscribe: {{ links.unsubscribe }}{% endblock %}"
)


def _one_at_a_time(provider, outgoing: list[tuple]) -> None:
    """Each message in its own request, each request after the last: the SDK as the engine used to call it."""
    for _, out in outgoing:
        provider.send(out)


def end_to_end(url: str, count: int, provider, channel: str = "sms", batch_size: int = 1000) -> tuple[float, float]:
    """Seconds to enroll `count` contacts in a one-step campaign on `channel`, then to dispatch their
    messages once due. No per-sender rate limit: the simulated clock stands still while draining, so a
    limit would hold all but the first second's worth back; the figure is the engine's own pace."""
    clock = SimulatedClock(T0)
    seed_contacts(url, count, clock=clock)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        loaded = definitions(folder)
        if channel == "email":
            (folder / "campaigns" / "bench_reminder.yaml").write_text(EMAIL_CAMPAIGN)
            (folder / "templates" / "bench_note" / "email.en.j2").write_text(EMAIL_TEMPLATE)
            loaded = load_definitions(folder)
        settings = Settings(
            database_url=url, dispatch_batch_size=batch_size, sms_rate_per_second=0, email_rate_per_second=0
        )
        runtime = build(settings, clock=clock, providers={channel: provider}, definitions=loaded)
        enroll_seconds, _ = timed(_enroll_all, runtime, count)
        clock.advance(timedelta(hours=1))
        dispatch_seconds, report = timed(runtime.dispatcher.drain)
        runtime.close()
    assert report.sent == count, f"only {report.sent} of {count} sent: {report.decisions}"
    return enroll_seconds, dispatch_seconds


def _sdk_rendered(channel: str, count: int) -> list[tuple]:
    """Messages as the engine renders them for the bench tenant, ready for a provider: (id, OutgoingMessage)."""
    from outbound.providers import OutgoingMessage

    unsubscribe = "http://localhost:8000/u/" + "t" * 64
    if channel == "sms":
        return [
            (
                i,
                OutgoingMessage(
                    message_id=i,
                    tenant="bench",
                    channel="sms",
                    to=f"+1212555{i % 10000:04d}",
                    sender="+12155550123",
                    subject=None,
                    body=TEMPLATE.replace("{{ tenant.sender_name }}", "Bench Shop").replace(
                        "{{ contact.external_id }}", f"c{i}"
                    ),
                ),
            )
            for i in range(count)
        ]
    return [
        (
            i,
            OutgoingMessage(
                message_id=i,
                tenant="bench",
                channel="email",
                to=f"c{i}@example.com",
                sender="hello@bench.example",
                sender_name="Bench Shop",
                subject=f"Your cart is waiting, c{i}",
                body=f"Bench Shop: your cart is waiting, c{i}. 1 Main St, Springfield, IL. Unsubscribe: {unsubscribe}{i}",
                headers={
                    "List-Unsubscribe": f"<{unsubscribe}{i}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            ),
        )
        for i in range(count)
    ]
