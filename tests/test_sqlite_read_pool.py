"""The sqlite adapter's read connections: a long read never blocks another read, waits count against
the budget, writes still take turns, and reads see every committed write."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import budget
from dbhandles.adapters.base import Query, Record
from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.adapters.sqlite_readers import KEEP_IDLE, READERS, ReaderPool
from dbhandles.errors import DbHandlesError, QueryTimeout
from dbhandles.filters import parse_filter

#: A bound on every wait of these tests, so a regression fails instead of hanging.
_WAIT = 30


def record(record_id: str, **fields: Any) -> Record:
    stamp = "2024-01-01T00:00:00.000Z"
    return {"id": record_id, **fields, "createdAt": stamp, "updatedAt": stamp, "version": 1}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteAdapter]:
    config = SqliteAdapter.parse_config({"path": str(tmp_path / "pool.db"), "mode": "create"})
    adapter = SqliteAdapter(SqliteAdapter.prepare(config))
    with adapter.session(write=True) as session:
        session.insert_many("big", [record(str(i), t="a" * 20) for i in range(300)])
    yield adapter
    adapter.close()


class BlockedRead:
    """A read on another thread, held inside a ``count`` (by an ``sqlite3`` progress handler waiting
    on an event) until ``finish``; the connection it holds stays lent meanwhile."""

    def __init__(self, adapter: SqliteAdapter) -> None:
        self.adapter = adapter
        self.inside = threading.Event()
        self.go = threading.Event()
        self.result: int | BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        assert self.inside.wait(_WAIT), "the blocked read never started"

    def _hold(self) -> int:
        self.inside.set()
        self.go.wait(_WAIT)
        return 0

    def _run(self) -> None:
        try:
            with self.adapter.session() as session:
                conn: sqlite3.Connection = session.conn  # type: ignore[attr-defined]
                conn.set_progress_handler(self._hold, 50)
                try:
                    self.result = session.count("big", parse_filter({"t": {"$contains": "a"}}))
                finally:
                    conn.set_progress_handler(None, 0)
        except BaseException as exc:  # handed to the test thread
            self.result = exc

    def finish(self) -> int | BaseException | None:
        self.go.set()
        self.thread.join(_WAIT)
        assert not self.thread.is_alive()
        return self.result


def test_a_read_runs_while_another_read_is_held_mid_query(db: SqliteAdapter) -> None:
    held = BlockedRead(db)
    try:
        with db.session() as session:
            assert session.count("big", None) == 300
            assert len(session.find("big", Query(limit=5))) == 5
        assert db.read_one("big", "7") is not None
        assert held.thread.is_alive() and not held.go.is_set()  # the first is still inside
    finally:
        assert held.finish() == 300


def test_a_read_waiting_for_a_connection_past_its_budget_is_query_timeout(
    db: SqliteAdapter,
) -> None:
    held = [BlockedRead(db) for _ in range(READERS)]
    try:
        with pytest.raises(QueryTimeout) as info, budget.query_budget(50), db.session() as session:
            session.count("big", None)
        assert info.value.code == "query_timeout"
    finally:
        assert [h.finish() for h in held] == [300] * READERS
    with db.session() as session:  # the connections came back
        assert session.count("big", None) == 300


def test_writes_take_turns_and_a_wait_for_the_writer_counts_against_the_budget(
    db: SqliteAdapter,
) -> None:
    inside, go = threading.Event(), threading.Event()

    def write() -> None:
        with db.session(write=True) as session:
            session.insert("big", record("uncommitted"))
            inside.set()
            go.wait(_WAIT)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert inside.wait(_WAIT)
        with (
            pytest.raises(QueryTimeout),
            budget.query_budget(50),
            db.session(write=True) as session,
        ):
            session.insert("big", record("second"))
        # Reads go on meanwhile, on the committed state.
        with db.session() as session:
            assert session.get("big", "uncommitted") is None
            assert session.count("big", None) == 300
    finally:
        go.set()
        writer.join(_WAIT)
    with db.session() as session:  # read-your-writes: a read after the commit sees it
        assert session.get("big", "uncommitted") is not None
        assert session.get("big", "second") is None
    assert db.read_one("big", "uncommitted") is not None


def test_a_read_after_a_write_sees_it_on_every_pooled_connection(db: SqliteAdapter) -> None:
    held = [BlockedRead(db) for _ in range(READERS - 1)]  # the next read opens a new connection
    try:
        for n in range(3):
            with db.session(write=True) as session:
                session.insert("big", record(f"new{n}"))
            with db.session() as session:
                assert session.get("big", f"new{n}") is not None
                assert session.count("big", None) == 301 + n
    finally:
        assert [h.finish() for h in held] == [300] * (READERS - 1)


def test_a_page_and_its_count_read_one_snapshot(db: SqliteAdapter) -> None:
    with db.session() as session:
        before = session.count("big", None)
        done = threading.Event()

        def write() -> None:
            with db.session(write=True) as other:
                other.insert("big", record("meanwhile"))
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert done.wait(_WAIT)  # committed while the read transaction is open
        writer.join(_WAIT)
        assert session.count("big", None) == before
        assert session.get("big", "meanwhile") is None
        assert db.read_one("big", "meanwhile") is None  # a point read inside joins the snapshot


def test_sessions_nested_in_a_pooled_read(db: SqliteAdapter) -> None:
    with db.session() as outer:
        with db.session() as inner:
            assert inner is outer
        with (
            pytest.raises(DbHandlesError, match="nested inside a read session"),
            db.session(write=True),
        ):
            pass


def test_release_closes_the_read_connections_and_reads_reopen(db: SqliteAdapter) -> None:
    with db.session() as session:
        assert session.count("big", None) == 300
    db.release()
    with db.session() as session:
        assert session.count("big", None) == 300


def test_json_indexes_stay_readable_on_new_read_connections(db: SqliteAdapter) -> None:
    db.ensure_indexes("big", [("t",)])
    held = [BlockedRead(db) for _ in range(READERS - 1)]  # the next read opens a new connection
    try:
        with db.session() as session:
            assert session.count("big", parse_filter({"t": "a" * 20})) == 300
    finally:
        assert [h.finish() for h in held] == [300] * (READERS - 1)


def test_the_pool_keeps_one_idle_connection_and_closes_the_rest(tmp_path: Path) -> None:
    opened: list[sqlite3.Connection] = []

    def opener() -> tuple[sqlite3.Connection, Any]:
        conn = sqlite3.connect(tmp_path / "p.db", check_same_thread=False, isolation_level=None)
        opened.append(conn)
        return conn, None

    pool = ReaderPool(opener, size=3)
    lent = [pool.acquire() for _ in range(3)]
    for reader in lent:
        pool.give_back(reader)
    assert len(opened) == 3 and pool.busy() == 0
    kept = [conn for conn in opened if _is_open(conn)]
    assert len(kept) == KEEP_IDLE
    assert pool.acquire()[0] is kept[0] and len(opened) == 3  # reused, none opened
    pool.close()  # a lent connection is closed when it comes back
    pool.give_back((kept[0], None))
    assert not any(_is_open(conn) for conn in opened)


def _is_open(conn: sqlite3.Connection) -> bool:
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return False
    return True
