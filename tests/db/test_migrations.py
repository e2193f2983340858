"""The Alembic migrations are the only source of the schema, and they agree with the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from outbound.db.models import Base
from outbound.db.session import make_engine, upgrade


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
