"""Issue #17: the service's own writes into ``default.sqlite`` on the handle store's connection
(the audit log, cursors, handles) do not make a listing of the default database read its
collection's rows again (``sqlite_records.store_commit`` tells them to the adapter's ``Witness``);
a commit of another connection is still seen, even right after one of the store's. Rescans are
counted (``sqlite_records.rescans``), never timed."""

from __future__ import annotations

import gc
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters import sqlite_records
from dbhandles.adapters.sqlite_records import Witness, file_key, store_commit
from dbhandles.security import audit
from dbhandles.settings import Settings
from tests.foreign_rows import open_sqlite, run_sql

#: A text dbhandles would not write (an escape, spaces): a row another tool wrote.
FOREIGN_TEXT = '{"\\u006fwner": "alice", "n": 1}'


@pytest.fixture
def audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """A service with the audit log on, collection ``c`` of its default database holding a0..a9
    (alice) and b0 (bob). The audit rows are written when the test says (``flush``), and a read
    waits for the adapter's lock or a store's ``COMMIT`` as long as it takes: a background write
    (the audit writer's flush, a handle's last use) may hold them past ``COMMIT_WAIT`` on a busy
    machine, and a read that cannot wait looks at every row again (sound, not what is counted)."""
    monkeypatch.setattr(audit, "FLUSH_SECONDS", 3600.0)
    monkeypatch.setattr(sqlite_records, "COMMIT_WAIT", 10.0)
    svc = Service(settings=Settings(home=tmp_path / "home", audit=True))
    try:
        for i in range(10):
            _ask(svc, "data/create", id=f"a{i}", data={"owner": "alice", "n": i})
        _ask(svc, "data/create", id="b0", data={"owner": "bob"})
        svc.audit.flush()
        yield svc
    finally:
        svc.close()


def _ask(service: Service, command: str, **params: Any) -> Any:
    return service.execute(command, {"dbHandle": "default", "collection": "c", **params})


def _alice(service: Service) -> list[str]:
    """The ids a filtered listing of the default database finds (read through ``foreign_rows``)."""
    listed = _ask(service, "data/list", filter={"owner": "alice"}, orderBy="id", limit=500)
    return [r["id"] for r in listed["items"]]


def test_audit_flushes_cause_no_rescan(audited: Service) -> None:
    """Each listing's audit row, written on the store's connection, is not another tool's."""
    assert len(_alice(audited)) == 10
    audited.audit.flush()
    before = sqlite_records.rescans()
    for _ in range(30):
        assert len(_alice(audited)) == 10
        audited.audit.flush()
    assert sqlite_records.rescans() == before


def test_cursor_and_handle_writes_cause_no_rescan(audited: Service, tmp_path: Path) -> None:
    """The other writes of the handle store: a query cursor's rows (open, each next, close), a
    handle opened and closed, between listings of the default database."""
    assert len(_alice(audited)) == 10
    audited.audit.flush()
    before = sqlite_records.rescans()
    for i in range(5):
        opened = _ask(audited, "data/query-open", pageSize=3)
        audited.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
        assert len(_alice(audited)) == 10
        audited.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
        audited.execute("data/query-close", {"queryHandle": opened["queryHandle"]})
        other = open_sqlite(audited, {"path": str(tmp_path / f"o{i}.db"), "mode": "create"})
        assert len(_alice(audited)) == 10
        audited.execute("data/close", {"dbHandle": other})
        audited.audit.flush()
        assert len(_alice(audited)) == 10
    assert sqlite_records.rescans() == before


def test_a_commit_of_another_connection_is_still_seen(audited: Service) -> None:
    """A row a plain ``sqlite3`` connection rewrote between audit flushes is read again and judged
    canonically (its escaped ``owner`` matches the filter); the store's writes after it keep what
    was found (the listing right after may read the rows once more: the epoch its read
    transaction marked predates the witness's first look after the foreign commit)."""
    assert len(_alice(audited)) == 10
    audited.audit.flush()
    before = sqlite_records.rescans()
    run_sql(audited.settings.default_path, f"UPDATE c SET data = '{FOREIGN_TEXT}' WHERE id = 'b0'")
    assert _alice(audited)[-1] == "b0"
    assert sqlite_records.rescans() > before
    audited.audit.flush()
    assert _alice(audited)[-1] == "b0"
    settled = sqlite_records.rescans()
    for _ in range(5):
        audited.audit.flush()
        assert _alice(audited)[-1] == "b0"
    assert sqlite_records.rescans() == settled


def _wal(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def test_the_witness_counts_a_commit_that_follows_the_store_s_at_once(tmp_path: Path) -> None:
    """``Witness.other_commit`` around a store connection's ``COMMIT``: alone, the epoch stays;
    when another connection commits right after it (before the look after it), the epoch moves;
    and a commit of another before the store's transaction is counted too."""
    path = tmp_path / "w.db"
    writer, store = _wal(path), _wal(path)
    try:
        writer.execute("CREATE TABLE t (x)")
        lock = threading.RLock()
        witness = Witness(lock, lambda: writer, lambda: False, str(path))
        first = witness.current()
        assert first is not None

        def store_write(then: str | None = None) -> None:
            store.execute("BEGIN IMMEDIATE")
            store.execute("INSERT INTO t VALUES (1)")
            with store_commit(file_key(str(path)), store):
                store.execute("COMMIT")
                if then is not None:
                    run_sql(path, then)

        for _ in range(3):
            store_write()
        assert witness.current() == first
        store_write(then="INSERT INTO t VALUES (2)")
        second = witness.current()
        assert second is not None and second > first
        run_sql(path, "INSERT INTO t VALUES (3)")
        store_write()
        third = witness.current()
        assert third is not None and third > second
        store_write()
        assert witness.current() == third
    finally:
        writer.close()
        store.close()


def test_a_busy_writer_leaves_the_store_s_commit_counted(tmp_path: Path) -> None:
    """While a session is open on the writer, nothing is told: the store's commit counts as
    another's (a read looks again), never hides one."""
    path = tmp_path / "b.db"
    writer, store = _wal(path), _wal(path)
    try:
        writer.execute("CREATE TABLE t (x)")
        busy = [False]
        witness = Witness(threading.RLock(), lambda: writer, lambda: busy[0], str(path))
        first = witness.current()
        busy[0] = True
        store.execute("BEGIN IMMEDIATE")
        store.execute("INSERT INTO t VALUES (1)")
        with store_commit(file_key(str(path)), store):
            store.execute("COMMIT")
        busy[0] = False
        second = witness.current()
        assert first is not None and second is not None and second > first
    finally:
        writer.close()
        store.close()


def test_a_file_whose_witnesses_are_gone_is_dropped(tmp_path: Path) -> None:
    """The witnesses are found by file (``file_key``): a file whose last witness is gone is
    dropped, when the next witness registers or when a store commit finds none, so the table does
    not keep one entry for every database the process ever opened."""
    first, second, third = (file_key(str(tmp_path / f"{n}.db")) for n in ("a", "b", "c"))
    witness = Witness(threading.RLock(), lambda: None, lambda: False, str(tmp_path / "a.db"))
    assert first in sqlite_records._BY_FILE
    del witness
    gc.collect()
    kept = Witness(threading.RLock(), lambda: None, lambda: False, str(tmp_path / "b.db"))
    assert first not in sqlite_records._BY_FILE and second in sqlite_records._BY_FILE
    later = Witness(threading.RLock(), lambda: None, lambda: False, str(tmp_path / "c.db"))
    del later
    gc.collect()
    conn = sqlite3.connect(":memory:")
    try:
        with store_commit(third, conn):
            pass
    finally:
        conn.close()
    assert third not in sqlite_records._BY_FILE and second in sqlite_records._BY_FILE
    del kept
