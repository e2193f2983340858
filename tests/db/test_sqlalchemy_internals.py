"""The parts of SQLAlchemy outside its public API that outbound's fast paths rely on, each checked as we use it.

pyproject.toml bounds SQLAlchemy to one minor series because of these. Before moving the bound, run this
file against the new release: each failure names the internal that changed and the module relying on it.

Internal → the module that relies on it:

- `Compiled.positional` and `Compiled.positiontup` (the order of `?` parameters) → outbound/db/direct.py
- `Compiled.bind_names` and `Compiled.binds` (each parameter's name, BindParameter and type) → outbound/db/direct.py
- `BindParameter.required` and `BindParameter.effective_value` (the values a statement holds) → outbound/db/direct.py
- the `__[POSTCOMPILE_name]` marker of an expanding (IN list) parameter → outbound/db/direct.py
- `Compiled.bindtemplate` (a named placeholder) → outbound/db/direct.py
- `Dialect.paramstyle` of pysqlite and psycopg → outbound/db/direct.py
- bind names of an INSERT / UPDATE compiled with `column_keys` are the column keys → outbound/db/bulk.py
- `TypeEngine.dialect_impl(dialect).bind_processor(dialect)` / `.result_processor(dialect, coltype)`
  → outbound/db/direct.py (and bulk.py through it)
- `statement.exported_columns` (the columns of each row read) → outbound/db/direct.py
- statements hashable by identity (the key of direct's cache) → outbound/db/direct.py
- `Connection.connection.driver_connection` → outbound/db/direct.py, outbound/db/bulk.py
- `Connection.dispatch.before_cursor_execute` (the listener collection, called directly) → outbound/db/direct.py
- `Dialect.loaded_dbapi` and `exc.DBAPIError.instance(...)` → outbound/db/direct.py
- the dialect hooks `do_savepoint` / `do_release_savepoint` / `do_rollback_to_savepoint`, replaced per engine
  → outbound/db/session.py
- the `begin` event with pysqlite's no-op `Dialect.do_begin` (our BEGIN IMMEDIATE) → outbound/db/session.py
- `IdentifierPreparer.quote` / `.format_table` → outbound/db/session.py, outbound/db/bulk.py
- a `ColumnElement` subclass with `_traverse_internals` / `InternalTraversal.dp_clauseelement` and
  `inherit_cache` (SQL compilation caching) → outbound/db/bulk_sql.py
- `_is_implicitly_boolean` on that element → outbound/db/bulk_sql.py
- `@compiles` per dialect for that element → outbound/db/bulk_sql.py
- `sqlalchemy.orm.util.identity_key` and `Session.identity_map` → outbound/db/contacts.py
- `Mapper.class_manager.new_instance()` and an ORM object's `__dict__` set directly (plain objects)
  → outbound/db/contacts.py
- an ORM object's `__dict__` holding what was set, and `ColumnDefault.is_scalar` / `.is_callable` / `.arg(None)`
  → outbound/db/bulk.py (insert_objects, used by outbound/db/events.py and contacts.py)
- arbitrary attributes (`_audience_kind`) set on SQL expression objects → outbound/db/audience.py

Dialect-level checks compile on the SQLite and PostgreSQL dialects without a server; the rest run on the
test database (SQLite, or PostgreSQL with OUTBOUND_TEST_BACKEND=postgres).
"""

from __future__ import annotations

import re
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import BACKEND
from sqlalchemy import (
    BigInteger,
    String,
    bindparam,
    create_engine,
    event,
    exc,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import object_session
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.expression import ReleaseSavepointClause, RollbackToSavepointClause, SavepointClause

from outbound.db import direct
from outbound.db.models import Contact, Enrollment, Event, Message, MessageTransition
from outbound.db.session import make_engine

from helpers.statements import Statements

KST = timezone(timedelta(hours=9))
T = datetime(2026, 11, 20, tzinfo=UTC)

DIALECTS = {"sqlite": sqlite.pysqlite.dialect, "postgresql": postgresql.psycopg.dialect}

# A look-up as the fast paths write them: given values, an IN list, a literal the statement holds, a LIMIT.
BY_IDS = (
    select(Contact.id, Contact.external_id, Contact.created_at, Contact.attributes)
    .where(
        Contact.tenant_id == bindparam("tenant_id"),
        Contact.external_id.in_(bindparam("ids", expanding=True)),
        Contact.locale == "en",
    )
    .order_by(Contact.id)
    .limit(10)
)
MARKER = re.compile(r"__\[POSTCOMPILE_(\w+)\]")


@contextmanager
def relied_on(internal: str, module: str, purpose: str) -> Iterator[None]:
    """Any failure in the block is reported as a change of `internal`, naming the module that relies on it."""
    try:
        yield
    except Exception as error:
        pytest.fail(
            f"SQLAlchemy changed {internal}, which {module} relies on to {purpose}: "
            f"check the fast path before upgrading.\n  {type(error).__name__}: {error}"
        )


@pytest.fixture(params=sorted(DIALECTS))
def dialect(request):
    """A dialect of each backend, without a server."""
    return DIALECTS[request.param]()


@pytest.fixture
def bare_url(request, tmp_path) -> str:
    """The test backend without our schema: an empty SQLite file, or the PostgreSQL server."""
    return request.getfixturevalue("postgres_url") if BACKEND == "postgres" else f"sqlite:///{tmp_path / 'bare.db'}"


@pytest.fixture
def bare_engine(bare_url):
    """A plain engine on it: setting it up runs none of the internals checked here (nor our hooks, which use some)."""
    engine = create_engine(bare_url)
    yield engine
    engine.dispose()


def _update_by_id(table):
    # The statement outbound.db.bulk.update_by_id compiles.
    return update(table).where(table.c.id == bindparam("_id", type_=table.c.id.type))


def _tenant_and_contact(session, make_tenant, clock, external_id="c0"):
    tenant = make_tenant()
    contact = Contact(
        tenant_id=tenant.id,
        external_id=external_id,
        email=f"{external_id}@example.com",
        locale="en",
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    session.add(contact)
    session.flush()
    return tenant, contact


# outbound/db/direct.py: compiling a statement once and running it on the driver.


def test_positiontup_lists_the_positional_parameters_in_the_order_of_the_sql():
    from outbound.db.enrollments import _WITHIN_WINDOWS

    with relied_on(
        "Compiled.positional / Compiled.positiontup", "outbound/db/direct.py", "order positional parameters"
    ):
        compiled = BY_IDS.compile(dialect=sqlite.pysqlite.dialect())
        assert compiled.positional is True
        order = list(compiled.positiontup)
        # One entry per `?`, and one for an IN list where its marker stands, in the order of the text.
        slots = [match.group(1) or "?" for match in re.finditer(r"\?|__\[POSTCOMPILE_(\w+)\]", compiled.string)]
        assert len(order) == len(slots), (order, compiled.string)
        assert [name for name, slot in zip(order, slots, strict=True) if slot != "?"] == ["ids"]
        assert order[:2] == ["tenant_id", "ids"], order
        held = [compiled.binds[name].value for name in order[2:]]
        assert held == ["en", 10, 0], held  # `locale = ?`, then `LIMIT ? OFFSET ?`, as in the text
        assert list(_WITHIN_WINDOWS.compile(dialect=sqlite.pysqlite.dialect()).positiontup) == [
            "tenant_id",
            "campaigns",
            "contact_ids",
            "since",
        ]


def test_bind_names_and_binds_name_and_type_every_parameter(dialect):
    with relied_on(
        "Compiled.bind_names / Compiled.binds",
        "outbound/db/direct.py",
        "find each parameter's name, BindParameter and type (for its bind processor)",
    ):
        compiled = BY_IDS.compile(dialect=dialect)
        names = list(compiled.bind_names.values())
        assert all(isinstance(bind, BindParameter) for bind in compiled.bind_names)
        for name in names:
            assert isinstance(compiled.binds[name], BindParameter), name
        # Every parameter of the text, an IN list's among them, has its name there.
        lists = {name for name in names if compiled.binds[name].expanding}
        assert lists == {"ids"}
        if dialect.name == "postgresql":
            assert set(names) - lists == set(re.findall(r"%\((\w+)\)s", compiled.string)), compiled.string
        else:
            assert len(names) - len(lists) == compiled.string.count("?"), compiled.string
        assert isinstance(compiled.binds["tenant_id"].type, BigInteger)
        assert isinstance(compiled.binds["ids"].type, String) and compiled.binds["ids"].type.length == 200


def test_required_and_effective_value_tell_given_values_from_those_the_statement_holds(dialect):
    with relied_on(
        "BindParameter.required / BindParameter.effective_value",
        "outbound/db/direct.py",
        "bind the values a statement holds itself (a literal, a LIMIT) besides those given",
    ):
        compiled = BY_IDS.compile(dialect=dialect)
        binds = {name: compiled.binds[name] for name in compiled.bind_names.values()}
        assert binds["tenant_id"].required is True and binds["ids"].required is True
        held = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
        # The literal and the LIMIT (SQLite writes an OFFSET of 0 with it).
        expected = {"sqlite": ["en", 10, 0], "postgresql": ["en", 10]}[dialect.name]
        assert sorted(held.values(), key=str) == sorted(expected, key=str), held
        # As direct.py gathers them: over all of `binds` (anonymous keys too), IN lists left out.
        defaults = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required and name != "ids"
        }
        assert {name: defaults[name] for name in held} == held
        assert "tenant_id" not in defaults
        # An UPDATE by id holds nothing: every value is given.
        table = Message.__table__
        compiled = _update_by_id(table).compile(dialect=dialect, column_keys=["status", "updated_at"])
        assert all(compiled.binds[name].required for name in compiled.bind_names.values())


def test_an_in_list_compiles_to_a_postcompile_marker_replaced_by_one_placeholder_per_value(dialect):
    with relied_on(
        "the __[POSTCOMPILE_name] marker of an expanding parameter",
        "outbound/db/direct.py",
        "write an IN list of a given length",
    ):
        compiled = BY_IDS.compile(dialect=dialect)
        assert MARKER.findall(compiled.string) == ["ids"], compiled.string
        assert "contacts.external_id IN (__[POSTCOMPILE_ids])" in compiled.string, compiled.string
        if dialect.name == "sqlite":
            # Replaced as direct.py replaces it, it gives the statement SQLAlchemy writes for three values.
            ours = compiled.string.replace("__[POSTCOMPILE_ids]", ", ".join(["?"] * 3))
            own = BY_IDS.params(tenant_id=1, ids=["a", "b", "c"]).compile(
                dialect=dialect, compile_kwargs={"render_postcompile": True}
            )
            assert ours == own.string, (ours, own.string)


def test_bindtemplate_writes_the_named_placeholder_the_compiled_text_uses():
    with relied_on(
        "Compiled.bindtemplate", "outbound/db/direct.py", "write the placeholders of an IN list on PostgreSQL"
    ):
        compiled = BY_IDS.compile(dialect=postgresql.psycopg.dialect())
        assert compiled.positional is False and compiled.positiontup is None
        assert compiled.bindtemplate % {"name": "ids_0"} == "%(ids_0)s"
        assert compiled.bindtemplate % {"name": "tenant_id"} in compiled.string


def test_paramstyle_is_one_the_fast_paths_write(dialect):
    with relied_on(
        "Dialect.paramstyle (qmark for pysqlite, pyformat for psycopg)",
        "outbound/db/direct.py",
        "choose positional or named placeholders",
    ):
        compiled = BY_IDS.compile(dialect=dialect)
        expected = {"sqlite": ("qmark", True), "postgresql": ("pyformat", False)}[dialect.name]
        assert (dialect.paramstyle, bool(compiled.positional)) == expected
        if compiled.positional:
            placeholder = direct._positional_placeholder(compiled)
            assert compiled.string.count(placeholder) == len(compiled.bind_names) - 1  # all but the IN list


def test_an_in_list_statement_runs_on_the_driver_as_sqlalchemy_runs_it(session, make_tenant, clock, engine):
    with relied_on(
        "Compiled.positiontup / bind_names / bindtemplate / the __[POSTCOMPILE_name] marker",
        "outbound/db/direct.py",
        "run a compiled statement with an IN list on the driver",
    ):
        assert engine.dialect.paramstyle == {"sqlite": "qmark", "postgresql": "pyformat"}[engine.dialect.name]
        tenant, _ = _tenant_and_contact(session, make_tenant, clock, "c0")
        for i in (1, 2, 3):
            session.add(
                Contact(
                    tenant_id=tenant.id,
                    external_id=f"c{i}",
                    locale="en" if i % 2 else "ko",
                    attributes={"tier": i},
                    created_at=clock.now() + timedelta(minutes=i),
                    updated_at=clock.now(),
                )
            )
        session.flush()
        for ids in (["c1"], ["c0", "c1", "c3", "nobody"], ["c2"]):
            params = {"tenant_id": tenant.id, "ids": ids}
            expected = [tuple(row) for row in session.execute(BY_IDS, params)]
            assert direct.fetch(session, BY_IDS, params) == expected, ids
        assert [row[1] for row in direct.fetch(session, BY_IDS, {"tenant_id": tenant.id, "ids": ["c0", "c3"]})] == [
            "c0",
            "c3",
        ]


def test_insert_and_update_bind_their_values_under_the_column_keys(dialect):
    with relied_on(
        "the bind names of an INSERT / UPDATE compiled with column_keys",
        "outbound/db/bulk.py",
        "take each row's value by column key (insert_rows, update_by_id)",
    ):
        table = MessageTransition.__table__
        columns = [column.key for column in table.c if column.key != "id"]
        compiled = insert(table).compile(dialect=dialect, column_keys=columns)
        assert sorted(compiled.bind_names.values()) == sorted(columns)
        table = Message.__table__
        compiled = _update_by_id(table).compile(dialect=dialect, column_keys=["status", "updated_at"])
        assert sorted(compiled.bind_names.values()) == ["_id", "status", "updated_at"]
        if compiled.positional:
            assert compiled.string == "UPDATE messages SET status=?, updated_at=? WHERE messages.id = ?"
        else:
            assert "status=%(status)s" in compiled.string and "messages.id = %(_id)s" in compiled.string


def test_type_processors_are_the_functions_sqlalchemy_applies(session, make_tenant, clock, engine):
    with relied_on(
        "TypeEngine.dialect_impl(dialect).bind_processor(dialect) / .result_processor(dialect, coltype)",
        "outbound/db/direct.py (and outbound/db/bulk.py through it)",
        "store and read the values SQLAlchemy would store and read",
    ):
        dialect = engine.dialect
        tenant, contact = _tenant_and_contact(session, make_tenant, clock)
        at = datetime(2026, 11, 20, 21, 0, 0, 123456, tzinfo=KST)  # not UTC, with microseconds
        # Rows with their keys in the order of the table's columns, as SQLAlchemy orders an INSERT's.
        rows = {
            Contact.__table__: {
                "tenant_id": tenant.id,
                "external_id": "김-1",
                "phone": "+15555550100",
                "phone_hash": "h",
                "email": "x@example.com",
                "timezone": "Asia/Seoul",
                "locale": "ko",
                "jurisdiction": "KR",
                "attributes": {"tier": 2, "name": "김철수", "tags": [1, None]},
                "created_at": at,
                "updated_at": at,
                "erased_at": None,
            },
            Enrollment.__table__: {
                "tenant_id": tenant.id,
                "campaign": "winback",
                "contact_id": contact.id,
                "dedupe_key": "k",
                "trigger": None,
                "event_id": None,
                "status": "active",
                "enrolled_at": at,
                "ended_at": None,
                "end_reason": None,
                "holdout": True,
            },
        }
        connection = session.connection()
        for table, row in rows.items():
            # Each value through its column type's bind processor, as direct.py binds it.
            ours = {}
            for name, value in row.items():
                processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                ours[name] = value if processor is None or value is None else processor(value)
            seen = []

            def note(conn, cursor, sql, parameters, context, many, seen=seen, table=table):
                if sql.startswith(f"INSERT INTO {table.name}"):
                    seen.append(parameters)

            event.listen(engine, "before_cursor_execute", note)
            try:
                new_id = connection.execute(insert(table).returning(table.c.id), row).scalar_one()
            finally:
                event.remove(engine, "before_cursor_execute", note)
            (theirs,) = seen
            if not isinstance(theirs, dict):  # positional: in the order of the columns
                theirs = dict(zip(row, theirs, strict=True))
            assert _comparable(ours) == _comparable(theirs), (ours, theirs)
            # What the driver gives back, through each column type's result processor, is what SQLAlchemy reads.
            names = [column.name for column in table.c]
            raw = connection.exec_driver_sql(
                f"SELECT {', '.join(names)} FROM {table.name} WHERE id = {int(new_id)}"
            ).one()
            read = []
            for column, value in zip(table.c, raw, strict=True):
                processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
                read.append(value if processor is None or value is None else processor(value))
            expected = connection.execute(select(*table.c).where(table.c.id == new_id)).one()
            assert tuple(read) == tuple(expected), (read, expected)
            stamp = {"contacts": "created_at", "enrollments": "enrolled_at"}[table.name]
            assert dict(zip(names, read, strict=True))[stamp] == at  # the same instant, in UTC


def _comparable(values: dict) -> dict:
    # psycopg's JSON wrapper has no equality of its own: compare its type and what it wraps.
    return {
        name: (type(value).__name__, value.obj) if hasattr(value, "obj") else value for name, value in values.items()
    }


def test_exported_columns_are_the_columns_of_each_row_read(session, make_tenant, clock):
    from outbound.db.bulk import insert_returning_id
    from outbound.db.campaign_states import _STORED_STATES
    from outbound.db.contacts import _ROWS_BY_EXTERNAL_ID
    from outbound.db.enrollments import _WITHIN_WINDOWS
    from outbound.db.events import _STORED_IDS

    with relied_on(
        "Executable.exported_columns", "outbound/db/direct.py", "pick the result processor of each column read"
    ):
        tenant, contact = _tenant_and_contact(session, make_tenant, clock)
        statements = [
            (_STORED_IDS, {"tenant_id": tenant.id, "event_ids": ["e"]}),
            (_ROWS_BY_EXTERNAL_ID, {"tenant_id": tenant.id, "external_ids": [contact.external_id]}),
            (_STORED_STATES, {"tenant_id": tenant.id}),
            (
                _WITHIN_WINDOWS,
                {"tenant_id": tenant.id, "campaigns": ["c"], "contact_ids": [contact.id], "since": clock.now()},
            ),
        ]
        for statement, params in statements:
            result = session.execute(statement, params)
            assert [column.key for column in statement.exported_columns] == list(result.keys())
        table = Message.__table__
        assert list(insert_returning_id(table).exported_columns) == [table.c.id]
        assert list(insert(table).exported_columns) == [] and list(_update_by_id(table).exported_columns) == []


def test_statements_are_dictionary_keys_by_identity():
    with relied_on(
        "hashing and equality of Core statements", "outbound/db/direct.py", "key its cache of compiled statements"
    ):
        twin = select(Contact.id).where(Contact.tenant_id == bindparam("tenant_id"))
        again = select(Contact.id).where(Contact.tenant_id == bindparam("tenant_id"))
        cache = {(twin, "sqlite"): 1}
        assert cache[(twin, "sqlite")] == 1 and (again, "sqlite") not in cache
        assert (twin == again) is False


def test_the_driver_connection_is_the_connections_own_within_its_transaction(bare_engine):
    with (
        relied_on(
            "Connection.connection.driver_connection",
            "outbound/db/direct.py and outbound/db/bulk.py",
            "run statements on the driver's cursor of the session's connection, inside its transaction",
        ),
        bare_engine.connect() as connection,
    ):
        connection.exec_driver_sql("CREATE TEMPORARY TABLE internals_rows (id INTEGER PRIMARY KEY)")
        connection.commit()
        driver = connection.connection.driver_connection
        assert isinstance(driver, connection.dialect.loaded_dbapi.Connection), type(driver)
        connection.execute(text("INSERT INTO internals_rows VALUES (1), (2)"))
        cursor = driver.cursor()
        cursor.execute("SELECT count(*) FROM internals_rows")
        assert cursor.fetchone()[0] == 2  # the connection's uncommitted rows: the same transaction
        cursor.execute("DELETE FROM internals_rows WHERE id = 1")
        cursor.close()
        assert connection.execute(text("SELECT count(*) FROM internals_rows")).scalar() == 1
        connection.rollback()
        assert connection.execute(text("SELECT count(*) FROM internals_rows")).scalar() == 0
        connection.rollback()


def test_before_cursor_execute_listeners_are_a_collection_called_directly(bare_engine):
    with relied_on(
        "Connection.dispatch.before_cursor_execute",
        "outbound/db/direct.py",
        "tell the engine's listeners of the statements it runs on the driver",
    ):
        heard = []
        with bare_engine.connect() as connection:
            assert not connection.dispatch.before_cursor_execute
            direct.announce(connection, "cursor", "SELECT 1", (), False)  # no listener: nothing to call
        listener = lambda *args: heard.append(args)  # noqa: E731
        event.listen(bare_engine, "before_cursor_execute", listener)
        try:
            with bare_engine.connect() as connection:
                assert connection.dispatch.before_cursor_execute
                direct.announce(connection, "cursor", "SELECT 2", {"a": 1}, True)
                assert heard == [(connection, "cursor", "SELECT 2", {"a": 1}, None, True)]
                connection.exec_driver_sql("SELECT 3")  # and SQLAlchemy's own statements still reach it
                assert heard[-1][0] is connection and heard[-1][2] == "SELECT 3"
                connection.rollback()
        finally:
            event.remove(bare_engine, "before_cursor_execute", listener)


def test_driver_errors_are_wrapped_as_sqlalchemy_wraps_them(bare_engine):
    with relied_on(
        "Dialect.loaded_dbapi / exc.DBAPIError.instance",
        "outbound/db/direct.py",
        "raise a driver's error as SQLAlchemy raises it (IntegrityError, …)",
    ):
        twice = "INSERT INTO internals_check VALUES (1)"
        dbapi = bare_engine.dialect.loaded_dbapi
        with bare_engine.connect() as connection:
            connection.exec_driver_sql("CREATE TEMPORARY TABLE internals_check (id INTEGER PRIMARY KEY)")
            connection.exec_driver_sql(twice)
            connection.commit()
            with pytest.raises(exc.DBAPIError) as by_sqlalchemy:
                connection.exec_driver_sql(twice)
            connection.rollback()
            cursor = connection.connection.cursor()
            with pytest.raises(dbapi.Error) as raised:
                cursor.execute(twice)
            cursor.close()
            connection.rollback()
            ours = direct.wrapped(connection, raised.value, twice, ())
        assert type(ours) is type(by_sqlalchemy.value) is exc.IntegrityError
        assert ours.orig is raised.value and isinstance(ours.orig, dbapi.IntegrityError)
        assert ours.statement == twice
        assert direct.wrapped(connection, ValueError("x"), twice, ()).args == ("x",)  # not the driver's: as it is


# outbound/db/session.py: savepoints and SQLite's BEGIN on the driver.


def test_sqlalchemy_runs_savepoints_through_the_dialect_hooks_of_the_engine(session, make_tenant, clock, engine):
    with relied_on(
        "Dialect.do_savepoint / do_release_savepoint / do_rollback_to_savepoint (set on the dialect instance)",
        "outbound/db/session.py",
        "run SAVEPOINT statements on the driver",
    ):
        dialect = engine.dialect
        hooks = ("do_savepoint", "do_rollback_to_savepoint", "do_release_savepoint")
        assert all(hook in vars(dialect) for hook in hooks)  # make_engine set them on this dialect
        calls = []
        originals = {hook: getattr(dialect, hook) for hook in hooks}

        def recording(hook):
            def call(connection, name):
                calls.append((hook, connection, name))
                originals[hook](connection, name)

            return call

        for hook in hooks:
            setattr(dialect, hook, recording(hook))
        try:
            tenant = make_tenant()
            session.commit()
            with Statements(engine) as statements:
                with session.begin_nested() as savepoint:
                    session.add(
                        Contact(tenant_id=tenant.id, external_id="x", created_at=clock.now(), updated_at=clock.now())
                    )
                    session.flush()
                    savepoint.rollback()
                with session.begin_nested():
                    session.add(
                        Contact(tenant_id=tenant.id, external_id="y", created_at=clock.now(), updated_at=clock.now())
                    )
                    session.flush()
        finally:
            for hook in hooks:
                setattr(dialect, hook, originals[hook])
        assert [hook for hook, _, _ in calls] == [
            "do_savepoint",
            "do_rollback_to_savepoint",
            "do_savepoint",
            "do_release_savepoint",
        ], calls
        connection = session.connection()
        assert all(isinstance(conn, Connection) and conn is connection for _, conn, _ in calls)
        first, second = calls[0][2], calls[2][2]
        assert calls[1][2] == first and calls[3][2] == second and first != second
        said = [s for s in statements.seen if "savepoint" in s]
        assert said == [
            f"savepoint {first}",
            f"rollback to savepoint {first}",
            f"savepoint {second}",
            f"release savepoint {second}",
        ], statements.seen
        assert session.scalars(select(Contact.external_id)).all() == ["y"]  # x rolled back, y released


def test_the_savepoint_sql_of_the_hooks_is_what_sqlalchemys_compiler_writes(engine):
    from sqlalchemy import event

    with relied_on(
        "SavepointClause / ReleaseSavepointClause / RollbackToSavepointClause and IdentifierPreparer.quote",
        "outbound/db/session.py",
        "write the savepoint statements SQLAlchemy would write",
    ):
        dialect = engine.dialect
        written: list[str] = []

        def note(connection, cursor, statement, parameters, context, executemany):
            written.append(statement)

        with engine.connect() as connection, connection.begin():
            event.listen(engine, "before_cursor_execute", note)
            try:
                for name in ("sa_savepoint_1", "Odd Name"):
                    del written[:]
                    # Run for real on this backend by the hooks `make_engine` set, seen by the engine's listeners.
                    dialect.do_savepoint(connection, name)
                    dialect.do_rollback_to_savepoint(connection, name)
                    dialect.do_release_savepoint(connection, name)
                    expected = [
                        str(clause(name).compile(dialect=dialect))
                        for clause in (SavepointClause, RollbackToSavepointClause, ReleaseSavepointClause)
                    ]
                    assert written == expected
            finally:
                event.remove(engine, "before_cursor_execute", note)


def test_sqlite_transactions_begin_with_our_begin_immediate_alone(bare_url):
    if BACKEND != "sqlite":
        pytest.skip("the BEGIN hook is SQLite's")
    engine = make_engine(bare_url)  # with our connect and begin listeners, on an empty file
    try:
        with (
            relied_on(
                "the `begin` event before a no-op Dialect.do_begin, and do_commit / do_rollback under pysqlite autocommit",
                "outbound/db/session.py",
                "start each SQLite transaction with BEGIN IMMEDIATE (holding the write lock) and end it",
            ),
            Statements(engine) as statements,
            engine.connect() as connection,
        ):
            driver = connection.connection.driver_connection
            assert driver.isolation_level is None  # set by our connect listener, left alone since
            transaction = connection.begin()
            assert driver.in_transaction
            assert [s for s in statements.seen if "begin" in s] == ["begin immediate"], statements.seen
            other = sqlite3.connect(engine.url.database, timeout=0)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("BEGIN IMMEDIATE")
            finally:
                other.close()
            connection.exec_driver_sql("CREATE TEMPORARY TABLE internals_tx (id INTEGER)")
            transaction.rollback()
            assert not driver.in_transaction
            with connection.begin():
                assert connection.exec_driver_sql("SELECT count(*) FROM sqlite_temp_master").scalar() == 0
                connection.exec_driver_sql("CREATE TEMPORARY TABLE internals_tx (id INTEGER)")
            assert not driver.in_transaction
            with connection.begin():
                assert connection.exec_driver_sql("SELECT count(*) FROM sqlite_temp_master").scalar() == 1
            assert [s for s in statements.seen if "begin" in s] == ["begin immediate"] * 3
    finally:
        engine.dispose()


def test_identifier_preparer_writes_names_as_the_compiler_does(dialect):
    with relied_on(
        "IdentifierPreparer.quote / IdentifierPreparer.format_table",
        "outbound/db/bulk.py (COPY on PostgreSQL) and outbound/db/session.py",
        "write table and column names",
    ):
        preparer = dialect.identifier_preparer
        table = MessageTransition.__table__
        assert preparer.quote("order") == '"order"' and preparer.quote("to_status") == "to_status"
        names = [column.name for column in table.c]
        compiled = insert(table).compile(dialect=dialect, column_keys=names)
        columns = ", ".join(preparer.quote(name) for name in names)
        assert compiled.string.startswith(f"INSERT INTO {preparer.format_table(table)} ({columns}) VALUES")


# outbound/db/bulk_sql.py: `among`, a ColumnElement of our own.


def test_among_compiles_per_dialect_through_compiles():
    from outbound.db.bulk_sql import among

    with relied_on(
        "@compiles (sqlalchemy.ext.compiler) per dialect",
        "outbound/db/bulk_sql.py",
        "write `among` as json_each on SQLite and = ANY on PostgreSQL",
    ):
        statement = select(Contact.id).where(among(Contact.id, [1, 2]))
        on_sqlite = str(statement.compile(dialect=sqlite.pysqlite.dialect()))
        on_postgresql = str(statement.compile(dialect=postgresql.psycopg.dialect()))
        assert "WHERE contacts.id IN (SELECT value FROM json_each(?))" in on_sqlite, on_sqlite
        assert "WHERE contacts.id = ANY(%(param_1)s::BIGINT[])" in on_postgresql, on_postgresql


def test_among_is_a_test_not_a_value_compared_with_true(dialect):
    from sqlalchemy import and_

    from outbound.db.bulk_sql import among

    with relied_on(
        "ColumnElement._is_implicitly_boolean",
        "outbound/db/bulk_sql.py",
        "keep `among` from being written as `… = 1` where booleans are integers",
    ):
        dialect.supports_native_boolean = False  # as SQLite
        for where in (among(Contact.id, [1]), and_(among(Contact.id, [1]), Contact.tenant_id == 3)):
            sql = str(select(Contact.id).where(where).compile(dialect=dialect))
            assert "= 1" not in sql and "= true" not in sql.lower(), sql


def test_among_is_cached_by_structure_with_its_list_as_a_parameter():
    from outbound.db.bulk_sql import _AmongIntegers, among

    with relied_on(
        "ColumnElement._traverse_internals / InternalTraversal.dp_clauseelement / inherit_cache",
        "outbound/db/bulk_sql.py",
        "let SQLAlchemy cache the compiled `among` (one SQL text for any list)",
    ):
        assert _AmongIntegers.inherit_cache is True
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "will not make use of SQL compilation caching"
            one = select(Contact.id).where(among(Contact.id, [1, 2]))._generate_cache_key()
            two = select(Contact.id).where(among(Contact.id, [3]))._generate_cache_key()
            other = select(Contact.id).where(among(Contact.tenant_id, [3]))._generate_cache_key()
        assert one is not None and two is not None
        assert one.key == two.key and hash(one.key) == hash(two.key)
        assert other.key != two.key  # the column is part of the structure
        assert [bind.value for bind in one.bindparams] == [[1, 2]]
        assert [bind.value for bind in two.bindparams] == [[3]]


def test_among_selects_the_listed_rows_through_sqlalchemys_statement_cache(session, make_tenant, clock):
    from outbound.db.bulk_sql import among

    with relied_on(
        "ColumnElement._traverse_internals / inherit_cache (the parameters of a cached statement)",
        "outbound/db/bulk_sql.py",
        "run `among` with each list's own values",
    ):
        tenant, first = _tenant_and_contact(session, make_tenant, clock, "c0")
        more = [
            Contact(tenant_id=tenant.id, external_id=f"c{i}", created_at=clock.now(), updated_at=clock.now())
            for i in (1, 2)
        ]
        session.add_all(more)
        session.flush()
        ids = [first.id, *(contact.id for contact in more)]
        for chosen in ([ids[0], ids[2]], [ids[1]], ids, [ids[2]]):
            found = session.scalars(select(Contact.id).where(among(Contact.id, chosen)).order_by(Contact.id))
            assert list(found) == sorted(chosen)


# outbound/db/contacts.py and outbound/db/bulk.py: plain ORM objects outside the session.


def test_identity_key_finds_the_sessions_copy_of_a_plain_contact(session, make_tenant, clock):
    with relied_on(
        "sqlalchemy.orm.util.identity_key / Session.identity_map",
        "outbound/db/contacts.py",
        "expire the session's copy of a contact written through the driver",
    ):
        from sqlalchemy.orm.util import identity_key

        from outbound.db import contacts

        _, held = _tenant_and_contact(session, make_tenant, clock)
        key = identity_key(Contact, held.id)
        assert key == inspect(held).identity_key
        assert session.identity_map.get(key) is held
        assert session.identity_map.get(identity_key(Contact, held.id + 1000)) is None
        # A plain copy of the same row changed and written through the driver.
        plain = contacts._plain(tuple(getattr(held, name) for name in contacts._CONTACT_KEYS))
        plain.email = "new@example.com"
        contacts.write_plain_updates(session, [plain])
        assert "email" in inspect(held).unloaded  # expired: the session reads it again
        assert held.email == "new@example.com"  # and reads what was written


def test_new_instance_with_its_dict_set_is_a_plain_contact():
    from outbound.db.contacts import _CONTACT_KEYS, _plain

    with relied_on(
        "Mapper.class_manager.new_instance() and an ORM object's __dict__ set directly",
        "outbound/db/contacts.py",
        "make plain contacts from rows read on the driver",
    ):
        bare = Contact.__mapper__.class_manager.new_instance()
        assert isinstance(bare, Contact) and not set(vars(bare)) & set(_CONTACT_KEYS)  # __init__ not run
        row = (7, 1, "c7", "+15555550100", "h", "a@example.com", "UTC", "en", "US", {"tier": 1}, T, T, None)
        contact = _plain(row)
        assert tuple(getattr(contact, key) for key in _CONTACT_KEYS) == row
        state = inspect(contact)
        assert state.transient and object_session(contact) is None
        assert not state.attrs.email.history.has_changes()  # set without the change events
        contact.email = "b@example.com"
        assert contact.email == "b@example.com" and state.attrs.email.history.added == ["b@example.com"]


def test_values_of_a_new_orm_object_are_those_a_flush_stores(session, make_tenant, clock):
    from outbound.db.bulk import _values

    with relied_on(
        "an ORM object's __dict__ and ColumnDefault.is_scalar / .is_callable / .arg(None)",
        "outbound/db/bulk.py (insert_objects, for outbound/db/events.py and contacts.py)",
        "insert new ORM objects through the driver with the values a flush would store",
    ):
        tenant, contact = _tenant_and_contact(session, make_tenant, clock)
        data = Event.__table__.c.data.default
        attempts = Message.__table__.c.attempts.default
        assert data.is_callable and not data.is_scalar and data.arg(None) == {}
        assert attempts.is_scalar and not attempts.is_callable and attempts.arg == 0
        assert _values(Message(tenant_id=tenant.id), Message.__table__)["attempts"] == 0

        def new(event_id, **more):
            return Event(
                tenant_id=tenant.id,
                event_id=event_id,
                type="order_placed",
                occurred_at=clock.now(),
                received_at=clock.now(),
                contact_id=contact.id,
                **more,
            )

        for given in ({}, {"data": {"total": 3}}):
            plain = new("e", **given)
            assert vars(plain)["event_id"] == "e" and ("data" in vars(plain)) == bool(given)
            values = _values(plain, Event.__table__)
            flushed = new(f"flushed-{len(given)}", **given)
            session.add(flushed)
            session.flush()
            table = Event.__table__
            stored = session.execute(select(*table.c).where(table.c.id == flushed.id)).one()._asdict()
            del stored["id"]
            assert values == {**stored, "event_id": "e"}, (values, stored)


# outbound/db/audience.py: marks set on expression objects.


def test_expression_objects_keep_the_audience_kind_set_on_them():
    with relied_on(
        "attributes set on SQL expression objects (BinaryExpression, ScalarSelect)",
        "outbound/db/audience.py",
        "mark a JSON attribute or a count for the comparison that follows",
    ):
        from outbound.db.audience import compile_audience

        json_path = Contact.attributes["tier"]
        json_path._audience_kind = "json"
        assert json_path._audience_kind == "json"
        counted = select(func.count(Event.id)).scalar_subquery()
        counted._audience_kind = "number"
        assert counted._audience_kind == "number"
        now = datetime(2026, 1, 1, tzinfo=UTC)
        for name in sorted(DIALECTS):
            on = DIALECTS[name]()
            typed = str(compile_audience("contact.attributes.tier > 2").where(1, now).compile(dialect=on))
            assert "AS FLOAT" in typed, typed  # read as a number, as the constant compared with
            counts = str(compile_audience('count("order_placed")').where(1, now).compile(dialect=on))
            assert "IS NOT NULL" not in counts, counts  # a count is a test as `> 0`
