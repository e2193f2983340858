"""Statements run straight on the driver, for the paths that run the same few statements many times a second.

Around each statement it runs, SQLAlchemy spends 35 µs (a Core statement on a connection) to 125 µs
(through the ORM session, with an IN list): its execution context, options, events and result objects.
SQLite runs such a statement in 2 µs, so a single-event request spent most of its time there. Here a
Core statement is compiled once per dialect (and per length of its IN lists), and each run binds its
values through the bind processor of each parameter's type and reads each column through the result
processor of its type, the same functions SQLAlchemy applies: the values stored and read are those
`session.execute` would store and read. It runs on the cursor of the session's own connection, inside
the session's transaction. No SQL is written here: the statements are the callers' Core statements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import exc
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

_Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Prepared:
    sql: str
    names: tuple[str, ...]  # parameter names, in order for a positional driver
    binds: tuple[_Processor, ...]
    results: tuple[_Processor, ...]
    positional: bool
    defaults: dict[str, Any]  # the values the statement holds itself (a literal, a LIMIT)
    # Columns left out of an INSERT (or UPDATE) whose default (or onupdate) Python computes, as a flush does.
    fills: tuple[tuple[str, Any], ...] = ()


_CACHE: dict[tuple, _Prepared] = {}


def fetch(
    session: Session, statement: ClauseElement, params: dict[str, Any], columns: Sequence[str] | None = None
) -> list[tuple]:
    """The rows `statement` (a SELECT, or a write with RETURNING) answers for `params`, as tuples.

    An IN list is an expanding bind parameter given as a non-empty list. For an INSERT or UPDATE,
    `columns` names the columns given in `params`, as `column_keys` does in SQLAlchemy's compiler.
    """
    prepared, rows = _run(session, statement, params, columns, lambda on: on.fetchall())
    results = prepared.results
    if not any(results):
        return [tuple(row) for row in rows]
    return [
        tuple(value if fn is None or value is None else fn(value) for fn, value in zip(results, row, strict=True))
        for row in rows
    ]


def execute(
    session: Session, statement: ClauseElement, params: dict[str, Any], columns: Sequence[str] | None = None
) -> int:
    """Run a write without RETURNING for `params`; the number of rows it changed."""
    return _run(session, statement, params, columns, lambda on: on.rowcount)[1]


def _run(
    session: Session,
    statement: ClauseElement,
    params: dict[str, Any],
    columns: Sequence[str] | None,
    answer: Callable[[Any], Any],
) -> tuple[_Prepared, Any]:
    prepared, values = _bound(session, statement, params, columns)
    if session.autoflush:  # the session's pending changes first, as its own statements do
        session.flush()
    return prepared, on_driver(session.connection(), prepared.sql, values, answer=answer)


def on_driver(
    connection: Connection, sql: str, params: Any, *, many: bool = False, answer: Callable[[Any], Any] | None = None
) -> Any:
    """Run `sql` on a cursor of the driver's connection under `connection` (once, or once per parameter set
    with `many`): seen by the engine's listeners, its errors raised as SQLAlchemy raises them. What `answer`
    reads of the cursor, if given."""
    cursor = driver_cursor(connection)
    try:
        announce(connection, cursor, sql, params, many)
        if many:
            cursor.executemany(sql, params)
        elif params == ():  # a statement written out whole (SAVEPOINT): no parameter protocol
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)
        return answer(cursor) if answer is not None else None
    except Exception as error:
        raise wrapped(connection, error, sql, params) from error
    finally:
        cursor.close()


def driver_cursor(connection: Connection) -> Any:
    """A new cursor of the driver's own connection under `connection`."""
    driver = connection.connection.driver_connection
    assert driver is not None, "the connection is closed"
    return driver.cursor()


def announce(connection: Connection, cursor: Any, sql: str, params: Any, many: bool) -> None:
    """Tell the engine's `before_cursor_execute` listeners of a statement run here, as SQLAlchemy would
    (without an execution context): what watches the statements an engine runs sees these too."""
    listeners = connection.dispatch.before_cursor_execute
    if listeners:
        listeners(connection, cursor, sql, params, None, many)


def wrapped(connection: Connection, error: Exception, sql: str, params: Any) -> Exception:
    """The driver's error as SQLAlchemy raises it (IntegrityError, OperationalError, …), so callers catch one
    kind whichever way a statement ran; any other error as it is."""
    dialect = connection.dialect
    base = dialect.loaded_dbapi.Error
    if not isinstance(error, base):
        return error
    hide = connection.engine.hide_parameters  # the engine's promise: no parameter in an error's text
    return exc.DBAPIError.instance(sql, params, error, base, hide_parameters=hide, dialect=dialect)


def _bound(
    session: Session, statement: ClauseElement, params: dict[str, Any], columns: Sequence[str] | None
) -> tuple[_Prepared, Any]:
    lengths = tuple(sorted((name, len(value)) for name, value in params.items() if isinstance(value, (list, tuple))))
    prepared = compiled_for(statement, session.get_bind().dialect, columns, lengths)
    values = []
    given = {**prepared.defaults, **params} if prepared.defaults else params
    for name, default in prepared.fills:
        if name not in params:
            given = {**given, name: default.arg if default.is_scalar else default.arg(None)}
    for name, fn in zip(prepared.names, prepared.binds, strict=True):
        base, _, position = name.rpartition("\0")
        value = given[base][int(position)] if base else given[name]
        values.append(value if fn is None or value is None else fn(value))
    if prepared.positional:
        return prepared, tuple(values)
    return prepared, dict(zip((name.replace("\0", "_") for name in prepared.names), values, strict=True))


def compiled_for(
    statement: ClauseElement, dialect, columns: Sequence[str] | None = None, lengths: tuple[tuple[str, int], ...] = ()
) -> _Prepared:
    """`statement` compiled for `dialect` (with `columns` given, and IN lists of these lengths), with the
    bind processor of each parameter in order and the result processor of each column: made once, kept."""
    key = (statement, dialect.name, lengths, tuple(columns) if columns is not None else None)
    prepared = _CACHE.get(key)
    if prepared is None:
        prepared = _CACHE[key] = _prepare(statement, dialect, dict(lengths), columns)
    return prepared


def _prepare(statement: ClauseElement, dialect, lengths: dict[str, int], columns: Sequence[str] | None) -> _Prepared:
    compiled = cast(
        SQLCompiler, statement.compile(dialect=dialect, column_keys=list(columns) if columns is not None else None)
    )
    positional = bool(compiled.positional)
    order = list(compiled.positiontup or ()) if positional else list(compiled.bind_names.values())
    types = {name: bind.type for name, bind in compiled.binds.items()}
    defaults = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required and name not in lengths
    }
    sql = compiled.string
    names: list[str] = []
    binds: list[_Processor] = []
    for name in order:
        processor = types[name].dialect_impl(dialect).bind_processor(dialect)
        if name not in lengths:
            names.append(name)
            binds.append(processor)
            continue
        count = lengths[name]
        if count == 0:
            raise ValueError(f"the IN list {name!r} is empty: leave the statement out instead")
        # An expanding parameter is compiled to a marker, replaced by one placeholder per value.
        expanded = [f"{name}\0{i}" for i in range(count)]
        placeholders = (
            ", ".join(compiled.bindtemplate % {"name": n.replace("\0", "_")} for n in expanded)
            if not positional
            else ", ".join([_positional_placeholder(compiled)] * count)
        )
        sql = sql.replace(f"__[POSTCOMPILE_{name}]", placeholders)
        names.extend(expanded)
        binds.extend([processor] * count)
    # A SELECT's columns, or what a write RETURNs (none without RETURNING).
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in cast(Any, statement).exported_columns  # a SELECT's, or a write's RETURNING
    )
    fills = tuple(
        (column.key, default)
        for columns_of, attribute in ((compiled.insert_prefetch, "default"), (compiled.update_prefetch, "onupdate"))
        for column in columns_of or ()
        if (default := getattr(column, attribute)) is not None and (default.is_scalar or default.is_callable)
    )
    return _Prepared(sql, tuple(names), tuple(binds), results, positional, defaults, fills)


def _positional_placeholder(compiled) -> str:
    style = compiled.dialect.paramstyle
    if style == "qmark":
        return "?"
    if style == "format":
        return "%s"
    raise NotImplementedError(f"IN lists for the {style!r} parameter style")
