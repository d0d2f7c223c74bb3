"""Events across processes on one SQLite home, through an append-only log in ``<home>/events.sqlite``.

Every ``Service`` on an SQLite default has an ``SqliteEventLog``. Nothing is opened until it is needed:

* **Listening** starts on the bus's first ``subscribe`` (a WebSocket subscriber, the dashboard, a
  Python callback). The process registers in the ``readers`` table and reads the newest event id in
  the same transaction; then a thread polls ``PRAGMA data_version`` on a connection of its own every
  ``poll_seconds`` (5 ms) while rows come, each idle poll doubling the wait up to
  ``IDLE_POLL_SECONDS`` (50 ms: a lone server woke 200 times a second for nothing, each wake a turn
  of the GIL taken from requests). The pragma moves only when another connection committed, so an
  idle poll reads no table. When it moves, the thread publishes the rows after the last id it saw on the local
  bus (``forward=False``: nothing echoes back).
* **Writing.** The log is the bus's sequencer (``EventBus.set_sequencer``): when a write publishes an
  event while another process listens (a ``readers`` row not its own, with a heartbeat younger than
  ``STALE_READER_SECONDS``), the event is appended to the log in the writer's thread, after the
  commit and before the write returns. A lone server, or an in-process ``jtag`` nobody listens to,
  writes nothing.

Ordering: rows get increasing ids under the log's write lock. Before a listening process delivers one
of its own logged events to its own subscribers, it delivers every row of other processes logged
before it, so every process delivers the logged events in the log's order; a write's event is in the
log before the write returns, so a write that a client made after another's response comes later
everywhere.

Retention: the newest ``KEEP_EVENTS`` rows of the last ``KEEP_SECONDS`` seconds are kept. A reader
that finds rows missing between the last id it saw and the next it reads (it was stalled past the
retention) publishes ``events:resumed`` (``mayHaveMissed``, ``missed``, ``downSeconds``) on its bus, as
the PostgreSQL bridge does after a reconnection.

The log is private (``0600``: events carry records), runs in WAL mode with ``synchronous=NORMAL``
(events are notices, not data: a power loss may drop the last ones, never corrupt the file), and is
apart from ``default.sqlite`` so event inserts never queue behind the default database's writes.
A log that cannot be opened (a read-only home) is logged once and events stay in the process.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from dbhandles.dbfiles import connect_sqlite, create_empty
from dbhandles.events.bus import Event, EventBus

__all__ = [
    "BUSY_SECONDS",
    "IDLE_POLL_SECONDS",
    "KEEP_EVENTS",
    "KEEP_SECONDS",
    "LOG_FILE",
    "RESUMED",
    "STALE_READER_SECONDS",
    "SqliteEventLog",
]

log = logging.getLogger(__name__)

#: The log's file name in the home folder.
LOG_FILE = "events.sqlite"
#: Published on the local bus when a reader finds that events it had not read were pruned.
RESUMED = "events:resumed"
#: Retention: at most this many events, none older than ``KEEP_SECONDS``.
KEEP_EVENTS = 10_000
KEEP_SECONDS = 60.0
#: A reader refreshes its ``readers`` row this often; one older than ``STALE_READER_SECONDS`` is
#: a process that died without closing (``kill -9``), and writers stop writing for it.
BEAT_SECONDS = 5.0
STALE_READER_SECONDS = 30.0
#: The longest wait between two polls of a listening process after polls that found nothing: the
#: most another process's first event after a quiet spell waits (``poll_seconds`` after a row).
IDLE_POLL_SECONDS = 0.05
#: How long appending an event waits for another process's insert before the event stays local.
BUSY_SECONDS = 2.0
_VERSION = 1
_PAGE = 500
_PRUNE_EVERY = 1.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "at INTEGER NOT NULL, origin TEXT NOT NULL, name TEXT NOT NULL, payload BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS readers (origin TEXT PRIMARY KEY, pid INTEGER NOT NULL, "
    "beat INTEGER NOT NULL)",
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _transient(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


class SqliteEventLog:
    """Forward a bus's events to other processes on the same home and publish theirs on it.

    Args:
        home: the home folder (the log is ``<home>/events.sqlite``, created private when missing).
        bus: the local event bus (``attach`` hooks the bridge into it).
        poll_seconds: how often a listening process checks the log for new rows.
        origin: this bridge's id (random by default; two services in one process are two origins).
    """

    def __init__(
        self,
        home: Path,
        bus: EventBus,
        *,
        poll_seconds: float = 0.005,
        origin: str | None = None,
    ) -> None:
        self.path = home / LOG_FILE
        self.bus = bus
        self.poll_seconds = poll_seconds
        self.origin = origin or uuid.uuid4().hex
        self._lock = threading.Lock()  # listen / close
        self._read_lock = threading.RLock()  # the read connection and ``_last``
        self._write_lock = threading.Lock()  # the write connection
        self._closed = False
        self._failed = False  # the log could not be opened: events stay in the process
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._write_db: sqlite3.Connection | None = None
        self._read_db: sqlite3.Connection | None = None
        self._last = 0  # the newest id this process's reader has seen
        self._seen: int | None = None  # the log's data_version at the last poll
        self._read_at = time.monotonic()  # when the log was last read without error
        self._others: tuple[int | None, bool] = (None, False)  # (data_version, others listen)
        self._others_at = 0.0
        self._pruned_at = 0.0

    def attach(self) -> SqliteEventLog:
        """Hook into the bus: sequence its events, and listen from its first ``subscribe`` on."""
        self.bus.set_sequencer(self.sequence)
        self.bus.on_subscribe(self.listen)
        return self

    # -- the file ------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        create_empty(str(self.path), 0o600)  # O_EXCL: an existing (live) file is never opened
        conn = connect_sqlite(str(self.path), "rw", timeout=BUSY_SECONDS)
        try:
            deadline = time.monotonic() + 10.0
            while True:  # leaving a rollback journal may answer "locked" at once: ask again
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(0.01)
            conn.execute("PRAGMA synchronous = NORMAL")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > _VERSION:
                raise sqlite3.DatabaseError(f"event log version {version} is newer than this code")
            if version < _VERSION:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {_VERSION}")
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _give_up(self, what: str, exc: BaseException) -> None:
        if _transient(exc):  # another process holds the log's lock for long: try again later
            log.warning("event log %s: %s (%s)", self.path, what, exc)
            return
        if not self._failed:
            log.warning(
                "event log %s: %s (%s); events of this process stay in it", self.path, what, exc
            )
        self._failed = True

    # -- listening -------------------------------------------------------------------------------------

    def listen(self) -> None:
        """Start receiving other processes' events (idempotent; the bus calls it on ``subscribe``).

        Returns once this process is registered as a reader: every event another process publishes
        after that is delivered.
        """
        with self._lock:
            if self._reader is not None or self._closed or self._failed:
                return
            try:
                conn = self._open()
            except (OSError, sqlite3.Error) as exc:
                self._give_up("cannot open it", exc)
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT OR REPLACE INTO readers (origin, pid, beat) VALUES (?, ?, ?)",
                    (self.origin, os.getpid(), _now_ms()),
                )
                self._last = int(
                    conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.close()
                self._give_up("cannot register as a reader (a later subscribe tries again)", exc)
                return
            self._read_db = conn
            self._reader = threading.Thread(
                target=self._read_loop, name="dbhandles-event-log", daemon=True
            )
            self._reader.start()

    def _read_loop(self) -> None:
        conn = self._read_db
        assert conn is not None
        beat_at = time.monotonic()
        wait = self.poll_seconds
        while not self._stop.wait(wait):
            try:
                if time.monotonic() - beat_at >= BEAT_SECONDS:
                    conn.execute(
                        "UPDATE readers SET beat = ? WHERE origin = ?", (_now_ms(), self.origin)
                    )
                    beat_at = time.monotonic()
                moved = self.poll()
                wait = (
                    self.poll_seconds
                    if moved
                    else min(wait * 2, max(IDLE_POLL_SECONDS, self.poll_seconds))
                )
            except sqlite3.Error as exc:
                log.warning("event log %s: reading failed (%s); trying again", self.path, exc)
                self._stop.wait(0.5)
            except Exception:
                log.exception("event log %s: delivering events failed", self.path)

    def poll(self) -> bool:
        """Publish on the bus what other processes logged since the last poll (the listening thread
        calls it every ``poll_seconds`` to ``IDLE_POLL_SECONDS``; call it only while that thread
        waits, as tests do). Returns whether another connection committed to the log since.

        Raises:
            sqlite3.Error: the log cannot be read (the thread logs it and tries again).
        """
        with self._read_lock:
            conn = self._read_db
            if conn is None:
                return False
            now = time.monotonic()
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            moved = version != self._seen
            if moved:
                self._seen = version
                self._drain(conn, now - self._read_at)
            self._read_at = now
            return moved

    def _drain(self, conn: sqlite3.Connection, down: float, before: int | None = None) -> None:
        """Publish the rows after ``_last`` (and before id ``before``), under ``_read_lock``."""
        while True:
            rows = conn.execute(
                "SELECT id, origin, name, payload FROM events WHERE id > ? AND id < ? "
                "ORDER BY id LIMIT ?",
                (self._last, before if before is not None else 2**63 - 1, _PAGE),
            ).fetchall()
            if not rows:
                return
            first = int(rows[0][0])
            if first > self._last + 1:
                # Ids are handed out in order under the log's write lock and only the oldest rows
                # are ever deleted: a gap is events pruned before this process read them.
                self.bus.publish(
                    RESUMED,
                    {"dbHandle": None, "mayHaveMissed": True, "missed": first - self._last - 1,
                     "downSeconds": round(down, 3)},
                    forward=False,
                )  # fmt: skip
            for row_id, origin, name, payload in rows:
                self._last = int(row_id)
                if origin == self.origin:
                    continue
                try:
                    body = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    log.warning(
                        "event log %s: ignored a malformed event (id %s)", self.path, row_id
                    )
                    continue
                self.bus.publish(str(name), body, forward=False)
            if len(rows) < _PAGE:
                return

    # -- writing ---------------------------------------------------------------------------------------

    def sequence(self, event: Event, deliver: Callable[[Event], None]) -> None:
        """Log a locally published event if another process listens, and deliver it to this
        process's subscribers in the log's order (the bus's sequencer; runs in the writer's thread).

        Never raises for the log's sake: an event that cannot be logged is delivered locally.
        """
        logged = self._append(event) if not (self._closed or self._failed) else None
        if self._reader is None:
            deliver(event)
            return
        with self._read_lock:
            conn = self._read_db
            drained = False
            if conn is not None:
                try:
                    # What other processes logged before this event reaches our subscribers first:
                    # nothing when no other connection committed since the last full drain (the
                    # usual case of a lone server with subscribers: no query per write).
                    version = int(conn.execute("PRAGMA data_version").fetchone()[0])
                    if logged is not None or version != self._seen:
                        self._drain(conn, time.monotonic() - self._read_at, before=logged)
                        if logged is None:  # drained to the end: as a poll would have
                            self._seen = version
                    drained = True
                except sqlite3.Error as exc:
                    log.warning("event log %s: reading failed (%s)", self.path, exc)
            deliver(event)
            if logged is not None and drained:
                # Every row before it was delivered: the reader goes on after it. (Otherwise the
                # reader delivers those rows later and skips this one, as one of its own.)
                self._last = max(self._last, logged)

    def _append(self, event: Event) -> int | None:
        """The id of ``event`` in the log, or None when nobody else listens or it failed."""
        with self._write_lock:
            try:
                conn = self._write_db
                if conn is None:
                    conn = self._write_db = self._open()
                if not self._others_listen(conn):
                    return None
                payload = orjson.dumps(event.payload)
                now = _now_ms()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    row_id = conn.execute(
                        "INSERT INTO events (at, origin, name, payload) VALUES (?, ?, ?, ?)",
                        (now, self.origin, event.name, payload),
                    ).lastrowid
                    if time.monotonic() - self._pruned_at >= _PRUNE_EVERY:
                        self._prune(conn, now)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except (OSError, sqlite3.Error) as exc:
                if self._write_db is None:
                    self._give_up("cannot open it", exc)
                else:
                    log.warning("event log %s: %s not logged (%s)", self.path, event.name, exc)
                return None
            except TypeError as exc:  # a payload orjson cannot write
                log.warning("event log %s: %s not logged (%s)", self.path, event.name, exc)
                return None
        return int(row_id) if row_id is not None else None

    def _prune(self, conn: sqlite3.Connection, now: int) -> None:
        # Both are range deletes on the primary key: ``at`` grows with ``id``, so the rows too old
        # are the ones before the first that is young enough (reached by walking only those).
        newest = int(conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])
        conn.execute("DELETE FROM events WHERE id <= ?", (newest - KEEP_EVENTS,))
        conn.execute(
            "DELETE FROM events WHERE id < (SELECT id FROM events WHERE at >= ? ORDER BY id LIMIT 1)",
            (now - int(KEEP_SECONDS * 1000),),
        )
        conn.execute(
            "DELETE FROM readers WHERE beat < ?", (now - int(2 * STALE_READER_SECONDS * 1000),)
        )
        self._pruned_at = time.monotonic()

    def _others_listen(self, conn: sqlite3.Connection) -> bool:
        """Whether another process reads the log. A new reader's registration moves the pragma, so
        the table is read again only then (and once a second, for heartbeats going stale)."""
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        known, listening = self._others
        now = time.monotonic()
        if version == known and now - self._others_at < 1.0:
            return listening
        fresh = _now_ms() - int(STALE_READER_SECONDS * 1000)
        row = conn.execute(
            "SELECT count(*) FROM readers WHERE origin != ? AND beat >= ?", (self.origin, fresh)
        ).fetchone()
        listening = int(row[0]) > 0
        self._others, self._others_at = (version, listening), now
        return listening

    # -- lifecycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening, leave the readers, close the log's connections; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            reader, self._reader = self._reader, None
        self._stop.set()
        if reader is not None:
            reader.join(timeout=15)
        with self._read_lock:
            conn, self._read_db = self._read_db, None
            if conn is not None:
                try:
                    conn.execute("DELETE FROM readers WHERE origin = ?", (self.origin,))
                except sqlite3.Error as exc:
                    log.warning("event log %s: reader row left behind (%s)", self.path, exc)
                conn.close()
        with self._write_lock:
            conn, self._write_db = self._write_db, None
            if conn is not None:
                conn.close()

    @property
    def listening(self) -> bool:
        """Whether this process receives other processes' events."""
        return self._reader is not None

    def info(self) -> dict[str, Any]:
        """What the log holds (for tests and diagnostics): ``events``, ``readers`` (live ones)."""
        conn = self._open()
        try:
            events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
            fresh = _now_ms() - int(STALE_READER_SECONDS * 1000)
            readers = int(
                conn.execute("SELECT count(*) FROM readers WHERE beat >= ?", (fresh,)).fetchone()[0]
            )
        finally:
            conn.close()
        return {"events": events, "readers": readers}
