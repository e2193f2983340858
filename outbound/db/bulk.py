"""Many rows at once through the driver's executemany, for the paths that write thousands a second.

`session.execute(insert(table), rows)` builds SQLAlchemy's parameter set for every row (a dict per row,
each value through its type, then the driver's format): as much time as the database's own work for
the narrow rows dispatch writes. Here the statement is compiled once per dialect and set of columns,
and each value goes through the bind processor of its column's type, the same function SQLAlchemy
applies: what is stored is what `session.execute` would have stored, casts included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import MetaData, Table, bindparam, insert, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from outbound.db import direct

_Prepared = tuple[str, tuple[str, ...], tuple[Callable[[Any], Any] | None, ...], bool, tuple[tuple[str, Any], ...]]
_STATEMENTS: dict[tuple[str, str], Any] = {}  # each table's INSERT, INSERT … RETURNING id and UPDATE by id
PG_COPY_UPDATE = 50  # rows from which an update on PostgreSQL goes through COPY and one UPDATE … FROM


def allocate_ids(session: Session | Connection, table: Table, count: int) -> list[int]:
    """`count` new ids for rows of `table` that the caller inserts with them in this transaction.

    PostgreSQL draws them from the column's sequence, as a default would. SQLite has no sequence
    here (the id is the rowid, one past the largest): the transaction holds SQLite's write lock
    (BEGIN IMMEDIATE), so no one else can take the ids past the largest before the caller inserts.
    """
    if count <= 0:
        return []
    connection = session.connection() if isinstance(session, Session) else session
    if connection.dialect.name == "postgresql":
        return list(
            connection.exec_driver_sql(
                f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, {int(count)})"
            ).scalars()
        )
    top = connection.exec_driver_sql(f"SELECT max(id) FROM {table.name}").scalar() or 0
    return list(range(top + 1, top + 1 + count))


def assign_ids(session: Session, table: Table, objects: Sequence[Any]) -> None:
    """Give new ORM objects of `table` ids drawn ahead, so their flush is one executemany: without
    them SQLite takes one INSERT … RETURNING per row. A single object keeps its database default."""
    if len(objects) > 1:
        for obj, new_id in zip(objects, allocate_ids(session, table, len(objects)), strict=True):
            obj.id = new_id


def insert_returning_id(table: Table):
    """`INSERT INTO table … RETURNING id`, built once per table: building it costs more than running it
    for the one row of a single-event request."""
    key = ("returning id", table.name)
    if key not in _STATEMENTS:
        _STATEMENTS[key] = insert(table).returning(table.c.id)
    return _STATEMENTS[key]


def insert_returning_ids(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """INSERT each of `rows` with its own INSERT … RETURNING id, run on the driver: for the few rows of a
    single-event request, where one statement costs less than drawing ids ahead. Their ids, in row order."""
    statement = insert_returning_id(table)
    return [direct.fetch(session, statement, row, columns=tuple(row))[0][0] for row in rows]


def insert_objects(session: Session, objects: Sequence[Any]) -> None:
    """INSERT new ORM objects of one class through the driver and give each its id, leaving them out of
    the session: plain objects holding what was stored, for a caller that only reads them (a run of
    ingested events and its hooks). Nothing of them stays in the session's identity map, so a savepoint
    rolled back around them leaves no object claiming a row that is gone."""
    if not objects:
        return
    table = type(objects[0]).__table__
    ids = insert_with_ids(session, table, [_values(obj, table) for obj in objects])
    for obj, new_id in zip(objects, ids, strict=True):
        obj.id = new_id


def _values(obj: Any, table: Table) -> dict[str, Any]:
    # Every column but the id: as set on the object, else the column's default as a flush would apply it.
    row = {}
    for column in table.c:
        if column.key == "id":
            continue
        if column.key in obj.__dict__:
            row[column.key] = obj.__dict__[column.key]
        elif column.default is not None and column.default.is_scalar:
            row[column.key] = cast(Any, column.default).arg
        elif column.default is not None and column.default.is_callable:
            row[column.key] = cast(Any, column.default).arg(None)
        else:
            row[column.key] = None
    return row


def insert_with_ids(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
    """INSERT `rows` into `table`; their new ids, in row order. One row: one INSERT … RETURNING. More: ids
    drawn ahead and one executemany (RETURNING many rows would not say which id is whose on SQLite)."""
    if not rows:
        return []
    if len(rows) == 1:
        return insert_returning_ids(session, table, rows)
    session.flush()  # ids are drawn past the largest written: ORM rows waiting to be flushed go in first
    ids = allocate_ids(session, table, len(rows))
    insert_rows(session, table, [{**row, "id": row_id} for row_id, row in zip(ids, rows, strict=True)])
    return ids


def insert_rows(session: Session | Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT `rows` (dicts with the same keys) into `table` with one executemany."""
    if rows:
        _run(session, table, "insert", tuple(rows[0]), rows)


def update_by_id(session: Session | Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE `table` SET the other keys of each row WHERE id = its `_id`; rows have the same keys."""
    if rows:
        _run(session, table, "update", tuple(k for k in rows[0] if k != "_id"), rows)


def _run(
    session: Session | Connection, table: Table, kind: str, columns: tuple[str, ...], rows: Sequence[dict[str, Any]]
) -> None:
    connection = session.connection() if isinstance(session, Session) else session
    sql, names, processors, positional, fills = _prepare(connection, table, kind, columns)
    missing = [(name, default) for name, default in fills if name not in columns]
    if missing:  # columns left out whose default (or onupdate) Python computes, as a flush does
        rows = [
            {**row, **{name: default.arg if default.is_scalar else default.arg(None) for name, default in missing}}
            for row in rows
        ]
    # Column by column: a batch's rows mostly share their values (`now`, an empty detail), and each
    # distinct one goes through its processor once per call.
    values = [
        [row[name] for row in rows] if fn is None else list(map(_memo(fn), [row[name] for row in rows]))
        for name, fn in zip(names, processors, strict=True)
    ]
    params: list = list(zip(*values, strict=True))
    if connection.dialect.name == "postgresql" and (kind == "insert" or len(params) >= PG_COPY_UPDATE):
        # COPY: one stream for all the rows, about twice as fast as an execution per row; an update
        # goes through a temporary table the connection keeps (its rows dropped at each commit).
        if kind == "insert":
            _copy(connection, table, names, params)
        else:
            _update_from_copy(connection, table, names, params)
        return
    if not positional:
        params = [dict(zip(names, row, strict=True)) for row in params]
    # On the driver's own cursor: SQLAlchemy's execution around one statement costs more than
    # SQLite's work for the one or two rows of a single-event request.
    direct.on_driver(connection, sql, params, many=True)


def _copy(connection: Connection, table: Table, names: tuple[str, ...], rows: list[tuple]) -> None:
    preparer = connection.dialect.identifier_preparer
    columns = ", ".join(preparer.quote(name) for name in names)
    cursor = direct.driver_cursor(connection)
    with cursor.copy(f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _update_from_copy(connection: Connection, table: Table, names: tuple[str, ...], rows: list[tuple]) -> None:
    preparer = connection.dialect.identifier_preparer
    columns = [name for name in names if name != "_id"]
    staging = f"bulk_{table.name}_{hashlib.sha1(','.join(names).encode()).hexdigest()[:12]}"
    listed = ", ".join(preparer.quote(name) for name in columns)
    # Made once per connection (a no-op after that, also after a rollback undid its making).
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
        f"SELECT id AS _id, {listed} FROM {preparer.format_table(table)} WITH NO DATA"
    )
    connection.exec_driver_sql(f"DELETE FROM {staging}")  # left by an earlier update in this transaction
    _copy(connection, Table(staging, MetaData()), names, rows)
    target = preparer.format_table(table)
    sets = ", ".join(f"{preparer.quote(name)} = v.{preparer.quote(name)}" for name in columns)
    connection.exec_driver_sql(f"UPDATE {target} SET {sets} FROM {staging} AS v WHERE {target}.id = v._id")


def _memo(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    seen: dict[Any, Any] = {}

    def processed(value: Any) -> Any:
        try:
            return seen[value]
        except KeyError:
            seen[value] = result = fn(value)
            return result
        except TypeError:  # unhashable: a JSON document, the same when empty
            if value:
                return fn(value)
            key = ("empty", type(value))
            if key not in seen:
                seen[key] = fn(value)
            return seen[key]

    return processed


def _prepare(connection: Connection, table: Table, kind: str, columns: tuple[str, ...]) -> _Prepared:
    key = (kind, table.name)
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = (
            insert(table)
            if kind == "insert"
            else update(table).where(table.c.id == bindparam("_id", type_=table.c.id.type))
        )
    prepared = direct.compiled_for(statement, connection.dialect, columns)
    return prepared.sql, prepared.names, prepared.binds, prepared.positional, prepared.fills
