"""Engines, sessions and schema migration. Entry points own transactions; nothing below commits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from outbound.db.direct import on_driver

ALEMBIC_DIR = Path(__file__).resolve().parents[2] / "alembic"


def make_engine(url: str, **kwargs) -> Engine:
    """An engine for `url`; SQLite files get WAL mode, foreign keys and a busy timeout.

    Statement parameters (phone numbers, emails, tokens) never appear in SQLAlchemy's log lines or in
    the text of its errors, at any log level (`hide_parameters`).
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            cursor = dbapi_conn.cursor()
            if url not in ("sqlite://", "sqlite:///:memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()
            # Let SQLAlchemy emit BEGIN IMMEDIATE itself, so SAVEPOINTs nest inside a real transaction
            # and concurrent writers queue for the lock instead of failing to upgrade a read
            # (pysqlite's own transaction handling would commit on the first released savepoint).
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - exercised by every test
            run_on_driver(conn, "BEGIN IMMEDIATE")

    _savepoints_on_driver(engine)
    return engine


def _savepoints_on_driver(engine: Engine) -> None:
    """SAVEPOINT, RELEASE SAVEPOINT and ROLLBACK TO SAVEPOINT run on the driver's cursor.

    SQLAlchemy compiles each of them afresh (a savepoint's name is not cached), which took longer than the
    rest of a single-event request's statements together. These are the dialect's own hooks for them,
    set on this engine's dialect only; the SQL is what SQLAlchemy's compiler writes.
    """
    dialect = engine.dialect
    name_of = dialect.identifier_preparer.quote
    # Set on this one dialect object, not its class: mypy sees a method replaced.
    dialect.do_savepoint = lambda conn, name: run_on_driver(conn, f"SAVEPOINT {name_of(name)}")  # type: ignore[method-assign, assignment]
    dialect.do_release_savepoint = lambda conn, name: run_on_driver(conn, f"RELEASE SAVEPOINT {name_of(name)}")  # type: ignore[method-assign, assignment]
    dialect.do_rollback_to_savepoint = lambda conn, name: run_on_driver(  # type: ignore[method-assign, assignment]
        conn, f"ROLLBACK TO SAVEPOINT {name_of(name)}"
    )


def run_on_driver(connection: Connection, sql: str) -> None:
    """Run one statement without parameters on the driver's cursor of `connection` (see `direct.on_driver`)."""
    on_driver(connection, sql, ())


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commits if the block ends normally, rolls back otherwise."""
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Create or migrate the schema of the database at `url`."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def ping(session: Session) -> None:
    """Ask the database the simplest question: raises SQLAlchemyError when it does not answer."""
    session.execute(text("SELECT 1"))


@contextmanager
def without_jit(connection: Connection) -> Iterator[None]:
    """Within the block, PostgreSQL plans without JIT compilation (elsewhere: nothing changes).

    A batch run issues many statements whose cost estimates cross `jit_above_cost` (an audience page
    ordered by id under a LIMIT, a few thousand ids) but which run in milliseconds: compiling each
    took longer than running it (about 250 ms a statement). The setting is transaction-local and
    put back at the end of the block.
    """
    if connection.dialect.name != "postgresql":
        yield
        return
    previous = connection.execute(text("SELECT current_setting('jit')")).scalar_one()
    connection.execute(text("SELECT set_config('jit', 'off', true)"))
    yield
    connection.execute(text("SELECT set_config('jit', :previous, true)"), {"previous": previous})
