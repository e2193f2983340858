"""Shared fixtures: a real, migrated SQLite database per test and a simulated clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy.orm import Session

from outbound.clock import SimulatedClock
from outbound.db.session import make_engine, session_factory, upgrade

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory):
    """Migrate once; each test copies the file (much faster than migrating per test)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def db_url(tmp_path, migrated_template) -> str:
    import shutil

    path = tmp_path / "outbound.db"
    shutil.copy(migrated_template, path)
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
    from outbound.tenants import create_tenant

    def _make(slug="shop-us", jurisdiction="US", timezone="America/New_York", locale="en", **settings):
        defaults = {
            "sender_name": slug,
            "support_contact": "support@example.com",
            "postal_address": "1 Main St, Springfield, IL 62701, USA",
            "optout_number": "080-123-4567",
        }
        defaults.update(settings)
        return create_tenant(session, clock, slug, jurisdiction=jurisdiction, timezone=timezone,
                             locale=locale, settings=defaults)

    return _make
