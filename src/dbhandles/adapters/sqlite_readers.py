"""The read connections of an SQLite file in WAL mode: a small pool, so one long read never blocks another.

A WAL database has one writer at a time but any number of readers, each reading the last committed
state as of its ``BEGIN``. The adapter's main connection (behind its lock) writes; read sessions
take a connection from this pool instead, opened lazily (at most ``size``), each configured as the
main one is (guard authorizer, pragmas, ``regexp``) with a ``Catalog`` of its own, which checks the
schema version at every ``BEGIN``. A read that finds every connection busy waits for one only as
long as its command's time budget (``dbhandles.budget``) allows, then ends with ``QueryTimeout``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from dbhandles import budget
from dbhandles.adapters.sqlite_errors import translating
from dbhandles.adapters.sqlite_records import watch
from dbhandles.adapters.sqlite_schema import Catalog
from dbhandles.adapters.sqlite_session import SqliteSession

if TYPE_CHECKING:
    from dbhandles.adapters.sqlite import SqliteAdapter

__all__ = ["KEEP_IDLE", "READERS", "ReaderPool", "acquire_within_budget", "pooled_read"]

#: Read connections per SQLite file in WAL mode (besides the writer): how many long reads may run
#: at once before the next one waits. Each keeps its own page cache and statement cache.
READERS = 4
#: Idle read connections kept per file for the next read; one given back past it is closed. Each
#: holds two file descriptors (the file and its WAL), which ``Settings.open_databases_limit``
#: counts: a file's descriptors stay bounded however many reads it once ran at a time.
KEEP_IDLE = 1

#: A connection and its catalog, as the opener gives them.
Reader = tuple[sqlite3.Connection, Catalog]


def acquire_within_budget(lock: threading.RLock | threading.Condition) -> None:
    """Take ``lock``, waiting no longer than the running command's budget allows.

    Raises:
        QueryTimeout: the budget ran out while waiting (the lock is then not held).
    """
    until = budget.deadline()
    if until is None:
        lock.acquire()
        return
    left = until - time.monotonic()
    if left <= 0 or not lock.acquire(timeout=left):
        raise budget.exceeded()


class ReaderPool:
    """Up to ``size`` read connections made by ``opener``, lent one at a time, ``keep`` of them
    kept while idle (thread-safe).

    ``close`` closes the idle ones at once and each lent one when it comes back (a connection is
    closed by the pool only, never while a read uses it).
    """

    def __init__(
        self, opener: Callable[[], Reader], size: int = READERS, keep: int = KEEP_IDLE
    ) -> None:
        self._opener = opener
        self.size = size
        self.keep = keep
        self._ready = threading.Condition(threading.Lock())
        self._idle: list[Reader] = []
        #: Connections of the current generation, idle or lent.
        self._made = 0
        #: Bumped by ``close``: a connection lent before comes back to be closed.
        self._generation = 0
        self._lent: dict[sqlite3.Connection, int] = {}

    def acquire(self) -> Reader:
        """An idle connection, else a new one while fewer than ``size`` exist, else the first one
        given back.

        Raises:
            QueryTimeout: every connection stayed busy until the command's deadline.
            sqlite3.Error, DbHandlesError: opening a new connection failed (the caller translates).
        """
        until = budget.deadline()
        with self._ready:
            while not self._idle and self._made >= self.size:
                if until is None:
                    self._ready.wait()
                    continue
                left = until - time.monotonic()
                if left <= 0:
                    raise budget.exceeded()
                self._ready.wait(left)
            if self._idle:
                reader = self._idle.pop()
                self._lent[reader[0]] = self._generation
                return reader
            self._made += 1
            generation = self._generation
        try:
            reader = self._opener()
        except BaseException:
            with self._ready:
                if generation == self._generation:
                    self._made -= 1
                self._ready.notify()
            raise
        with self._ready:
            self._lent[reader[0]] = generation
        return reader

    def give_back(self, reader: Reader) -> None:
        """Return a lent connection: kept for the next read, or closed after ``close``."""
        conn = reader[0]
        with self._ready:
            generation = self._lent.pop(conn, None)
            keep = (
                generation == self._generation and len(self._idle) < self.keep and _reusable(conn)
            )
            if keep:
                self._idle.append(reader)
            elif generation == self._generation:
                self._made -= 1
            self._ready.notify()
        if not keep:
            _close_quietly(conn)

    def busy(self) -> int:
        """How many connections are lent now."""
        with self._ready:
            return len(self._lent)

    def close(self) -> None:
        """Close the idle connections now and the lent ones as they come back; the pool stays usable
        (the next ``acquire`` opens anew)."""
        with self._ready:
            idle, self._idle = self._idle, []
            self._made = 0
            self._generation += 1
            self._ready.notify_all()
        for conn, _ in idle:
            _close_quietly(conn)


@contextmanager
def pooled_read(adapter: SqliteAdapter, pool: ReaderPool) -> Iterator[SqliteSession]:
    """A read session on a connection of ``pool``: one read transaction (``BEGIN`` ... ``COMMIT``),
    so a page and its count read one snapshot, which includes every write committed before it.

    Raises:
        QueryTimeout: no connection came free within the command's budget.
    """
    with translating(path=adapter.path):
        reader = pool.acquire()
    conn, catalog = reader
    try:
        watch(catalog)  # before the snapshot: what ``foreign_rows`` finds in it (``Witness``)
        with translating(path=adapter.path):
            conn.execute("BEGIN")
            catalog.refresh()
        yield SqliteSession(adapter, conn, catalog, False, pooled=True)
        with translating(path=adapter.path):
            conn.execute("COMMIT")
    finally:
        # The error that got here is the one to report; ``give_back`` closes the connection.
        with suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        pool.give_back(reader)


def _reusable(conn: sqlite3.Connection) -> bool:
    """Open and outside any transaction (a connection a read left otherwise is closed)."""
    try:
        return not conn.in_transaction
    except sqlite3.Error:  # closed under the read
        return False


def _close_quietly(conn: sqlite3.Connection) -> None:
    # A read connection holds no changes: a failure to close it has nothing to report.
    with suppress(sqlite3.Error):
        conn.close()
