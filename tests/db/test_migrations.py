"""The Alembic migrations are the only source of the schema, and they agree with the models."""

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.command import downgrade
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect
from sqlalchemy.exc import IntegrityError

from outbound.db.models import Base, InboundMessage, Tenant
from outbound.db.models import table as table_of
from outbound.db.session import alembic_config, make_engine, upgrade


def test_migrated_database_matches_the_models(db_url):
    engine = make_engine(db_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_creates_every_table_and_a_second_upgrade_changes_nothing(db_url):
    url = db_url
    upgrade(url)
    engine = make_engine(url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_every_table_but_tenants_belongs_to_a_tenant():
    for name, table in Base.metadata.tables.items():
        # APScheduler's own table: its job ids name the tenant. The install's own secret belongs to no tenant.
        # Failed logins are counted per address too, before any tenant is known.
        if name in ("tenants", "apscheduler_jobs", "local_secrets", "auth_failures"):
            continue
        assert "tenant_id" in table.columns, f"{name} has no tenant_id"
        assert any(fk.column.table.name == "tenants" for fk in table.columns["tenant_id"].foreign_keys)


def test_sqlite_database_runs_in_wal_mode(tmp_path):
    upgrade(f"sqlite:///{tmp_path / 'wal.db'}")
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_0006_keeps_inbound_sms_and_lets_each_tenant_keep_one_with_the_same_twilio_id(db_url):
    now = datetime(2026, 12, 1, tzinfo=UTC)
    downgrade(alembic_config(db_url), "0005")
    engine = make_engine(db_url)
    try:
        tenant = {
            "name": "x",
            "jurisdiction": "US",
            "timezone": "UTC",
            "locale": "en",
            "settings": {},
            "created_at": now,
        }
        row = {"channel": "sms", "provider_id": "SM1", "kind": "opt_out", "received_at": now}
        with engine.begin() as connection:
            connection.execute(
                insert(table_of(Tenant)), [{"id": 1, "slug": "a", **tenant}, {"id": 2, "slug": "b", **tenant}]
            )
            connection.execute(insert(table_of(InboundMessage)), [{"tenant_id": 1, **row}])
        upgrade(db_url)
        with engine.begin() as connection:
            connection.execute(insert(table_of(InboundMessage)), [{"tenant_id": 2, **row}])
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(insert(table_of(InboundMessage)), [{"tenant_id": 1, **row}])
        with engine.connect() as connection:
            kept = connection.execute(table_of(InboundMessage).select().order_by("tenant_id")).all()
        assert [(r.tenant_id, r.provider_id) for r in kept] == [(1, "SM1"), (2, "SM1")]
    finally:
        engine.dispose()
        upgrade(db_url)
