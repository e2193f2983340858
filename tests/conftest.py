"""Shared fixtures: a real, migrated SQLite database per test and a simulated clock."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from outbound.clock import SimulatedClock
from outbound.db.session import make_engine, session_factory, upgrade

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


BACKEND = os.environ.get("OUTBOUND_TEST_BACKEND", "sqlite")
# The suite runs as an install that set its own secret, made for this run; a test about having none says so.
os.environ.setdefault("OUTBOUND_SECRET_KEY", secrets.token_urlsafe(32))


def pytest_report_header(config):
    return f"database backend: {BACKEND} (set OUTBOUND_TEST_BACKEND=postgres for the PostgreSQL run)"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """SQLite: migrate once; each test copies the file (much faster than migrating per test)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url():
    """PostgreSQL: one real server for the run, migrated once."""
    from helpers.postgres_server import PostgresServer

    server = PostgresServer().start()
    upgrade(server.url)
    yield server.url
    server.stop()


def _empty_postgres(url: str) -> None:
    from outbound.db.models import Base

    engine = make_engine(url, poolclass=NullPool)
    names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        # A session an earlier test left open would hold its locks for ever: fail instead of hanging.
        connection.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
        connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture
def db_url(request, tmp_path) -> str:
    """A migrated, empty database for one test: a SQLite file, or the PostgreSQL server emptied."""
    if BACKEND == "postgres":
        url = request.getfixturevalue("postgres_url")
        _empty_postgres(url)
        return url
    import shutil

    path = tmp_path / "outbound.db"
    shutil.copy(request.getfixturevalue("migrated_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine):
    return session_factory(engine)


@pytest.fixture
def session(factory) -> Session:
    """A session for a test; the test commits what it wants to keep."""
    with factory() as session:
        yield session


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
def make_tenant(session, clock):
    """Create a tenant with sensible sender settings for its jurisdiction."""
    from outbound.tenancy.tenants import create_tenant

    def _make(slug="shop-us", jurisdiction="US", timezone="America/New_York", locale="en", **settings):
        defaults = {
            "sender_name": slug,
            "support_contact": "support@example.com",
            "postal_address": "1 Main St, Springfield, IL 62701, USA",
            "optout_number": "080-123-4567",
        }
        defaults.update(settings)
        return create_tenant(
            session, clock, slug, jurisdiction=jurisdiction, timezone=timezone, locale=locale, settings=defaults
        )

    return _make


@pytest.fixture
def outbox():
    from outbound.providers.outbox import Outbox

    return Outbox()


@pytest.fixture
def runtime(db_url, tmp_path, clock, outbox):
    """The wired engine on the test database, with small test definitions and the outbox provider."""
    from outbound.bootstrap import build
    from outbound.config import Settings

    from helpers.definitions import write_definitions

    definitions = write_definitions(tmp_path / "definitions")
    runtime = build(
        Settings(
            database_url=db_url,
            definitions=definitions,
            base_url="https://ob.example",
            secret_key=secrets.token_urlsafe(32),
        ),
        clock=clock,
        providers={"sms": outbox, "email": outbox},
    )
    yield runtime
    runtime.close()


@pytest.fixture
def world(runtime, clock):
    """Test verbs over the runtime: add contacts with consents, send events, read messages."""
    return World(runtime, clock)


class World:
    """A small vocabulary for tests of the flow: contacts, events, messages."""

    def __init__(self, runtime, clock):
        self.runtime, self.clock = runtime, clock

    def tenant(self, slug="shop-us", jurisdiction="US", timezone="America/New_York", locale="en", **settings):
        from outbound.db.session import transaction
        from outbound.tenancy.tenants import create_tenant

        defaults = {
            "sender_name": slug,
            "support_contact": "support@example.com",
            "postal_address": "1 Main St, Springfield, IL 62701, USA",
            "optout_number": "080-123-4567",
        }
        defaults.update(settings)
        with transaction(self.runtime.factory) as session:
            return create_tenant(
                session,
                self.clock,
                slug,
                jurisdiction=jurisdiction,
                timezone=timezone,
                locale=locale,
                settings=defaults,
            )

    def contact(self, tenant, external_id, *, consents=(), **fields):
        """Upsert a contact; consents are (channel, purpose) or (channel, purpose, night) grants dated an hour ago."""
        from datetime import timedelta

        from outbound.db.session import transaction
        from outbound.ingest.contacts import ConsentIn, ContactIn, record_consent, upsert_contact

        with transaction(self.runtime.factory) as session:
            tenant = session.merge(tenant, load=False)
            contact = upsert_contact(session, tenant, ContactIn(external_id=external_id, **fields), self.clock)
            for consent in consents:
                channel, purpose, *night = consent
                record_consent(
                    session,
                    tenant,
                    contact,
                    ConsentIn(
                        channel=channel,
                        purpose=purpose,
                        granted=True,
                        night=bool(night and night[0]),
                        at=self.clock.now() - timedelta(hours=1),
                        source="test form",
                        text="Yes",
                    ),
                    self.clock,
                )
            return contact

    def event(self, tenant, type, external_id, data=None, *, id=None, occurred_at=None):
        """Ingest one event for a known contact, triggers included; returns the batch report."""
        from outbound.db.session import transaction
        from outbound.ingest.events import ingest_items

        self._n = getattr(self, "_n", 0) + 1
        envelope = {
            "id": id or f"evt-{self._n}",
            "type": type,
            "occurred_at": (occurred_at or self.clock.now()).isoformat(),
            "contact": {"external_id": external_id},
            "data": data or {},
        }
        with transaction(self.runtime.factory) as session:
            tenant = session.merge(tenant, load=False)
            return ingest_items(session, tenant, [envelope], self.clock, on_event=self.runtime.on_event)

    def messages(self, **where):
        from sqlalchemy import select

        from outbound.db.models import Message

        with self.runtime.factory() as session:
            query = select(Message).order_by(Message.due_at, Message.id)
            for name, value in where.items():
                query = query.where(getattr(Message, name) == value)
            return list(session.scalars(query))

    def run(self, until):
        from outbound.jobs.simulation import run_until

        return run_until(self.runtime, self.clock, until)

    def trail(self, message_id):
        from sqlalchemy import select

        from outbound.db.models import MessageTransition

        with self.runtime.factory() as session:
            return [
                (t.to_status, t.rule)
                for t in session.scalars(
                    select(MessageTransition)
                    .where(MessageTransition.message_id == message_id)
                    .order_by(MessageTransition.id)
                )
            ]
