"""The handle store on the default SQLite database: the system tables live in ``default.sqlite``."""

from __future__ import annotations

import functools
import itertools
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from dbhandles.adapters.sqlite_records import file_key, store_commit
from dbhandles.dbfiles import connect_sqlite, create_empty
from dbhandles.errors import StorageBusy, StorageError
from dbhandles.store.migrations import STEPS, Step, is_current, upgrade
from dbhandles.store.schema import AUDIT, SQLITE
from dbhandles.store.sql import SqlHandleStore

__all__ = ["SqliteHandleStore", "create_private"]


def create_private(path: Path) -> None:
    """Create the default database file (and its folder) readable by its owner only, if missing.

    It holds token hashes and the audit log. Called before anything else creates the file: SQLite
    and the sqlite adapter create files readable by everyone (the umask permitting).
    """
    if not path.parent.exists():  # exist_ok: another process starting on the same home
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    create_empty(str(path), 0o600)  # O_EXCL: an existing (maybe live) file is never opened


class SqliteHandleStore(SqlHandleStore):
    """The handle tables in the default SQLite database, on a connection of their own.

    Args:
        path: the default database file (created, private, when missing).
        steps: the schema upgrade steps (``migrations.STEPS``; tests add their own).

    Raises:
        StorageError: the file cannot be opened, or its tables cannot be created or upgraded.
        StateTooNew: a newer dbhandles upgraded the file's tables.
    """

    dialect = SQLITE

    #: A local file in WAL mode (set in ``__init__``): reading the handle table never waits.
    local: ClassVar[bool] = True

    def __init__(self, path: Path, *, steps: Sequence[Step] = STEPS) -> None:
        create_private(path)
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._version: int | None = None
        self._version_at = float("-inf")
        try:
            self._path = str(path)
            #: The file as ``store_commit`` knows it, walked once (not at every commit).
            self._file = file_key(self._path)
            self._db = connect_sqlite(str(path), "rwc", timeout=10.0)
            try:
                self._start(f"the default database {path}", steps)
                # Reads on a connection of their own: in WAL mode they never wait for a write,
                # and a write holds ``_lock`` through its fsync (synchronous=FULL), which a read
                # on the same connection would wait out on the hot path of every command.
                self._reader = connect_sqlite(str(path), "rw", timeout=10.0)
                self._reader.execute("PRAGMA busy_timeout = 10000")
            except BaseException:
                self._db.close()
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the default database at {path}: {exc}") from exc

    def _start(self, where: str, steps: Sequence[Step]) -> None:
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._turn_wal_on()
        # FULL: handles, tokens and the audit log survive power loss too (NORMAL in WAL mode may
        # lose the last commits, https://www.sqlite.org/pragma.html#pragma_synchronous); they are
        # small writes, so the extra fsync per commit is cheap (benchmarks/durability.py).
        self._db.execute("PRAGMA synchronous = FULL")
        # Most starts find the tables current: one read, no write lock to wait for. Otherwise the
        # check is repeated under the lock (another process may have upgraded them meanwhile).
        if not is_current(self._db, SQLITE, where=where, steps=steps):
            with self._tx() as tx:
                upgrade(tx, SQLITE, where=where, steps=steps)

    def own_bytes(self) -> int:
        """The pages of the ``_dbh_*`` tables and their indexes (SQLite's ``dbstat`` table), and
        the write-ahead log: the audit rows go through it, and the default database's own pages in
        it count once a checkpoint (automatic, every 1000 pages) moves them into the file. Where
        ``dbstat`` is missing (an SQLite built without it), the WAL alone.

        Raises:
            StorageError: the store cannot be read.
        """
        try:
            wal = os.path.getsize(f"{self._path}-wal")
        except OSError:
            wal = 0
        try:
            with self._read_lock:
                row = self._reader.execute(_OWN_PAGES).fetchone()
        except sqlite3.OperationalError as exc:
            if "dbstat" not in str(exc):
                raise StorageError(f"cannot measure the handle tables: {exc}") from exc
            return wal
        return int(row[0] or 0) + wal

    def append_audit_values(self, rows: list[tuple[Any, ...]]) -> None:
        """``SqlHandleStore.append_audit_values`` without ``sqlite3``'s adaptation of ``None`` and
        ``bool``: it binds only exact ``int``, ``float``, ``str`` and ``bytes`` as they are, and
        looks every other value up as a candidate for adaptation (attribute lookups that raise
        inside the type's ``getattr``), which cost about as much as writing the rest of the row
        (``benchmarks/inprocess.py``). So each run of consecutive rows alike in where their
        ``None`` values are and in their ``success`` is written by one statement with ``NULL``
        and ``1`` or ``0`` there, binding only their texts: the same rows, in the same order,
        stored as before (SQLite stores a bound ``bool`` as that integer too)."""
        if not rows:
            return
        with self._tx() as tx:
            for (types, success), run in itertools.groupby(rows, _audit_shape):
                statement, taken = _audit_insert(types, success)
                tx.executemany(statement, map(taken, run))

    def _turn_wal_on(self) -> None:
        # Leaving a rollback journal takes an exclusive lock. Where waiting for it could deadlock
        # (another process starting on the same new home holds a shared lock and wants the same),
        # SQLite answers "locked" at once instead of waiting out the busy timeout: ask again.
        deadline = time.monotonic() + 10.0
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                # Told to the default database's adapter (``sqlite_records.Witness``): to its
                # reads this commit is not another tool's, which would make them re-read rows.
                with store_commit(self._file, self._db):
                    self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise StorageBusy(f"the default database is busy: {exc}") from exc
                raise StorageError(f"handle table: {exc}") from exc
            except sqlite3.Error as exc:
                raise StorageError(f"handle table: {exc}") from exc

    def _read(self, statement: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            try:
                return self._reader.execute(statement, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise StorageBusy(f"the default database is busy: {exc}") from exc
                raise StorageError(f"handle table: {exc}") from exc

    def version(self) -> int | None:
        # data_version moves when any *other* connection commits (the reader sees the writer's
        # commits too; our own writes also invalidate the registry's cache explicitly). One command asks twice (token, then handle): a reading at most
        # a millisecond old is as good as a fresh one, since another process's commit could as well
        # have landed just after this command started.
        now = time.monotonic()
        if now - self._version_at < 0.001:
            return self._version
        version = int(self._read("PRAGMA data_version")[0][0])
        self._version, self._version_at = version, now
        return version

    def close(self) -> None:
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._db.close()


#: Bytes of the pages of the store's own tables and their indexes (``own_bytes``).
_OWN_PAGES = (
    "SELECT sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_schema "
    "WHERE tbl_name LIKE '\\_dbh\\_%' ESCAPE '\\')"
)

#: Where ``success`` is among an audit row's values (``HandleStore.append_audit_values``).
_SUCCESS = [c.name for c in SQLITE.row_columns(AUDIT)].index("success")


def _audit_shape(row: tuple[Any, ...]) -> tuple[tuple[type, ...], object]:
    """What ``_audit_insert`` writes a row by: the types of its values and its ``success``."""
    return tuple(map(type, row)), row[_SUCCESS]


@functools.lru_cache(maxsize=256)
def _audit_insert(
    types: tuple[type, ...], success: object
) -> tuple[str, Callable[[tuple[Any, ...]], tuple[Any, ...]]]:
    """The audit table's INSERT for rows of ``types`` with ``success``: ``NULL`` for each ``None``,
    ``success`` as a literal, a parameter elsewhere; and what takes those parameters from a row."""
    places = []
    taken = []
    for i, kind in enumerate(types):
        if kind is type(None):
            places.append("NULL")
        elif i == _SUCCESS and type(success) is bool:
            places.append(str(int(success)))
        else:
            places.append("?")
            taken.append(i)
    statement = f"INSERT INTO {AUDIT.name} ({SQLITE.names(AUDIT)}) VALUES ({', '.join(places)})"
    return statement, _taker(taken)


def _taker(places: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """A function taking the values at ``places`` from a row, as a tuple."""
    if not places:
        return lambda row: ()
    if len(places) == 1:
        place = places[0]
        return lambda row: (row[place],)
    return operator.itemgetter(*places)
