"""One scheduler leads at a time: a PostgreSQL advisory lock, or a file lock beside a SQLite database.

Leader-only jobs (housekeeping, batch campaigns, consent jobs) run only in the
process that holds the lock; a second scheduler keeps trying and takes over
when the first one's connection or process goes away. The jobs are idempotent,
so a takeover in the middle of one does no harm.
"""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path
from typing import TextIO

from sqlalchemy import Connection, Engine

from outbound.db.locks import advisory_unlock, try_advisory_lock

ADVISORY_KEY = 0x6F7574626F756E64 & 0x7FFFFFFFFFFFFFFF  # "outbound", as a positive bigint


class Leadership:
    """Try to become the leader; once acquired, held until `release()` or the process ends."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        # The lock file held open while leading (True: an in-memory database, which has one process).
        self._file: TextIO | bool | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None

    def acquire(self) -> bool:
        """True if this process leads (now or already); never blocks."""
        with self._lock:
            if self.held:
                return True
            if self.engine.dialect.name == "postgresql":
                connection = self.engine.connect()
                if try_advisory_lock(connection, ADVISORY_KEY):
                    connection.commit()
                    self._connection = connection
                    return True
                connection.close()
                return False
            return self._acquire_file()

    def _acquire_file(self) -> bool:
        database = self.engine.url.database
        if not database or database == ":memory:":
            self._file = True  # a private in-memory database has one process by definition
            return True
        # Held open while this process leads: closing it releases the lock.
        handle = open(Path(database).with_suffix(".leader"), "a+")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        with self._lock:
            if self._connection is not None:
                advisory_unlock(self._connection, ADVISORY_KEY)
                self._connection.close()
                self._connection = None
            if self._file is not None and not isinstance(self._file, bool):
                fcntl.flock(self._file, fcntl.LOCK_UN)
                self._file.close()
            self._file = None
