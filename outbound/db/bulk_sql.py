"""SQL for set-based writes that differs by dialect: lists bound as one parameter, no JIT for a long run.

Lists: `column.in_([...])` binds one parameter per value (SQLite allows 32,766 of them; building each costs
Python time), and writing the values into the SQL text makes every statement unique, so neither the
statement cache of SQLAlchemy nor that of the driver helps and the driver's cache holds on to the
largest texts. Here the list travels as a single parameter — a PostgreSQL array, a JSON array on
SQLite — and the SQL text stays the same for any list, so it is compiled and prepared once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Boolean, ColumnElement, Text, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator


class _Integers(TypeDecorator):
    """A list of integers as one parameter: BIGINT[] on PostgreSQL, JSON text elsewhere."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect):
        return dialect.type_descriptor(ARRAY(BigInteger) if dialect.name == "postgresql" else Text())

    def process_bind_param(self, value: Sequence[int] | None, dialect) -> Any:
        values = [int(item) for item in value or ()]
        return values if dialect.name == "postgresql" else json.dumps(values)


class _AmongIntegers(ColumnElement[bool]):
    """`column IN (the list)`, the list bound as one parameter."""

    type = Boolean()
    _is_implicitly_boolean = True  # a test, like a comparison: not rendered as `… = 1` where booleans are integers
    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("values", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column, values) -> None:
        self.column, self.values = column, values


@compiles(_AmongIntegers)
def _among_json(element: _AmongIntegers, compiler, **kw) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} IN (SELECT value FROM json_each({values}))"


@compiles(_AmongIntegers, "postgresql")
def _among_array(element: _AmongIntegers, compiler, **kw) -> str:
    column, values = compiler.process(element.column, **kw), compiler.process(element.values, **kw)
    return f"{column} = ANY({values})"


def among(column, values: Sequence[int]) -> ColumnElement[bool]:
    """`column IN (values)` for integer values (ids), bound as one parameter: the same SQL text for any list."""
    return _AmongIntegers(column, bindparam(None, list(values), type_=_Integers()))


def code_rows(dialect_name: str, codes: Sequence[str], ids: Sequence[int]) -> tuple[str, dict[str, Any]]:
    """A FROM item `v` with columns `code` (text) and `id` (integer), one row per pair, and its parameters.

    For a statement written as text (`INSERT … SELECT … FROM {this} …`); the pairs are bound, never
    written into the SQL.
    """
    if dialect_name == "postgresql":
        return (
            "unnest(CAST(:v_codes AS TEXT[]), CAST(:v_ids AS BIGINT[])) AS v(code, id)",
            {"v_codes": list(codes), "v_ids": [int(item) for item in ids]},
        )
    pairs = json.dumps([[code, int(item)] for code, item in zip(codes, ids, strict=True)])
    return "(SELECT value ->> 0 AS code, value ->> 1 AS id FROM json_each(:v_pairs)) AS v", {"v_pairs": pairs}
