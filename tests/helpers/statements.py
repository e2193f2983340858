"""The SQL statements an engine runs while a block is open, for tests that bound queries per batch."""

from __future__ import annotations

from sqlalchemy import event as sa_event


class Statements:
    """Collects each statement, whitespace folded and lower-cased."""

    def __init__(self, engine):
        self.engine, self.seen = engine, []

    def __enter__(self):
        sa_event.listen(self.engine, "before_cursor_execute", self._note)
        return self

    def __exit__(self, *exc):
        sa_event.remove(self.engine, "before_cursor_execute", self._note)

    def _note(self, conn, cursor, statement, parameters, context, executemany):
        self.seen.append(" ".join(statement.split()).lower())

    def selects_from(self, table):
        """Look-ups of rows of `table` (not the drawing of new ids, `select max(id)` on SQLite)."""
        return [s for s in self.seen if s.startswith("select") and f"from {table}" in s and "max(id)" not in s]
