"""Journal modes of the ``sqlite`` adapter: entering WAL, and a connection tuned for a long import."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dbhandles.adapters.sqlite_errors import translating

if TYPE_CHECKING:
    from dbhandles.adapters.sqlite import SqliteAdapter

__all__ = ["bulk_load", "enter_wal"]

_BULK_CACHE_KIB = 64 * 1024
_DEFAULT_CACHE = -2000  # SQLite's default: 2000 KiB
_DEFAULT_AUTOCHECKPOINT = 1000
_SQLITE_BUSY = 5


def enter_wal(conn: sqlite3.Connection, busy_timeout: int) -> None:
    """Switch the file to WAL if nobody is in the way, without waiting; then wait ``busy_timeout``
    ms again, as the connection is configured to.

    While another connection uses the file in a rollback journal (a bulk import in progress), or
    reads it as an import ends, the switch is refused as busy: carry on in the current mode, which
    works, only with less concurrency; the next open that finds the file free switches it.

    Raises:
        sqlite3.Error: any failure but busy (the caller translates).
    """
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorcode", None) != _SQLITE_BUSY:
            raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout)}")


def _is_wal(conn: sqlite3.Connection) -> bool:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"


@contextmanager
def bulk_load(adapter: SqliteAdapter) -> Iterator[None]:
    """Tune ``adapter``'s connection for a long import: a bigger page cache, WAL checkpoints deferred.

    Each batch is still its own durable transaction; only the checkpoint (copying the WAL into
    the main file) waits, once, until the load ends. The lock is not held in between, so other
    users of the adapter carry on.
    """
    with adapter._lock:
        conn, _ = adapter._require()
        adapter._readers.close()  # idle read connections would keep the file in WAL
        with translating(path=adapter.path):
            conn.execute(f"PRAGMA cache_size = {-_BULK_CACHE_KIB}")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            rollback_journal = _leave_wal(adapter, conn)
    try:
        yield
    finally:
        with adapter._lock:
            current = adapter._conn
            if current is not None:  # released meanwhile: a fresh connection has the defaults
                with translating(path=adapter.path):
                    current.execute(f"PRAGMA cache_size = {_DEFAULT_CACHE}")
                    current.execute(f"PRAGMA wal_autocheckpoint = {_DEFAULT_AUTOCHECKPOINT}")
                    if rollback_journal and not adapter._active:
                        # Busy: the next open switches it back.
                        enter_wal(current, adapter.settings.busy_timeout)
                        adapter._wal = _is_wal(current)
                    elif not adapter._active:
                        current.execute("PRAGMA wal_checkpoint(PASSIVE)")


def _leave_wal(adapter: SqliteAdapter, conn: sqlite3.Connection) -> bool:
    """During a bulk load, use a rollback journal instead of WAL when nobody else has the file open
    and the handle asked for WAL explicitly (the next such open restores WAL if this load cannot).

    WAL writes every page twice (log, then checkpoint); a rollback journal writes new pages once
    and is just as crash-safe (a killed load rolls back its open batch on the next open). Measured:
    the SQLite share of an import halves. If another connection has the file open (a read session
    of the adapter's pool included), SQLite refuses the switch and the load stays on WAL.
    """
    if not adapter.settings.wal or not adapter._wal or adapter._active:
        # Only a database opened with "wal": true (so the journal mode is ours to manage, as
        # for every import output) is switched for the load, and switched back afterwards.
        return False
    try:
        mode = conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    except sqlite3.OperationalError:
        return False
    adapter._wal = str(mode).lower() == "wal"
    return not adapter._wal
