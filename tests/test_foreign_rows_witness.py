"""Issue #13/#17: a read connection of a SQLite file in WAL mode reads a collection's rows again
(``sqlite_records.foreign_rows``) only after a commit of another tool, never after the adapter's
own writer committed (``sqlite_records.Witness``); a write of another connection or process is
still seen. Rescans are counted (``sqlite_records.rescans``), never timed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters import sqlite_records
from dbhandles.adapters.sqlite_records import Witness
from tests.foreign_rows import open_sqlite, run_sql

#: A text dbhandles would not write (an escape, spaces): a row another tool wrote.
FOREIGN_TEXT = '{"\\u006fwner": "alice", "n": 1}'


def _ask(service: Service, db: str, command: str, **params: Any) -> Any:
    return service.execute(command, {"dbHandle": db, "collection": "c", **params})


def _alice(service: Service, db: str) -> list[str]:
    """The ids a filtered listing finds (it reads through ``foreign_rows``)."""
    listed = _ask(service, db, "data/list", filter={"owner": "alice"}, orderBy="id", limit=500)
    return [r["id"] for r in listed["items"]]


def _wal_database(service: Service, path: Path) -> str:
    db = open_sqlite(service, {"path": str(path), "mode": "create"})
    _ask(service, db, "data/create", id="a0", data={"owner": "alice"})
    (mode,) = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"
    return db


def test_own_writes_from_the_writer_cause_no_rescan(service: Service, tmp_path: Path) -> None:
    """300 writes through the adapter's writer, each followed by a filtered read on a pooled read
    connection (whose ``data_version`` moves at each of them): the rows are read again once."""
    db = _wal_database(service, tmp_path / "own.db")
    assert _alice(service, db) == ["a0"]
    before = sqlite_records.rescans()
    for i in range(1, 301):
        _ask(service, db, "data/create", id=f"a{i:03d}", data={"owner": "alice", "n": i})
        if i % 3 == 0:
            _ask(service, db, "data/update", id=f"a{i:03d}", data={"n": -i})
        assert len(_alice(service, db)) == i + 1
    assert sqlite_records.rescans() == before


def test_a_write_of_another_connection_is_seen(service: Service, tmp_path: Path) -> None:
    """A row another ``sqlite3`` connection rewrote between the writer's own writes is read again:
    its text is judged canonically (the escaped ``owner`` matches the filter)."""
    path = tmp_path / "other.db"
    db = _wal_database(service, path)
    _ask(service, db, "data/create", id="b1", data={"owner": "bob"})
    assert _alice(service, db) == ["a0"]
    _ask(service, db, "data/create", id="a1", data={"owner": "alice"})
    before = sqlite_records.rescans()
    run_sql(path, f"UPDATE c SET data = '{FOREIGN_TEXT}' WHERE id = 'b1'")
    _ask(service, db, "data/create", id="a2", data={"owner": "alice"})
    assert _alice(service, db) == ["a0", "a1", "a2", "b1"]
    assert sqlite_records.rescans() == before + 1
    # Own writes after it keep what was found: no second rescan, the row still counted.
    _ask(service, db, "data/create", id="a3", data={"owner": "alice"})
    assert _alice(service, db) == ["a0", "a1", "a2", "a3", "b1"]
    assert sqlite_records.rescans() == before + 1


def test_a_write_of_another_process_is_seen(service: Service, tmp_path: Path) -> None:
    """The same for a row inserted by another process, after the writer's last write."""
    path = tmp_path / "process.db"
    db = _wal_database(service, path)
    assert _alice(service, db) == ["a0"]
    _ask(service, db, "data/create", id="a1", data={"owner": "alice"})
    assert _alice(service, db) == ["a0", "a1"]
    insert = (
        "INSERT INTO c (id, data, created_at, updated_at, version) "
        "SELECT 'p1', ?, created_at, updated_at, 1 FROM c WHERE id = 'a0'"
    )
    script = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        f"c.execute({insert!r}, (sys.argv[2],)); c.commit(); c.close()"
    )
    subprocess.run([sys.executable, "-c", script, str(path), FOREIGN_TEXT], check=True)
    assert _alice(service, db) == ["a0", "a1", "p1"]


def test_the_witness_counts_commits_of_other_connections_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Witness.epoch`` moves for another connection's commit, not for the writer's own; while
    the writer holds a write transaction (``hold``) the epoch is current without its lock, and
    while it is in use otherwise ``current`` cannot tell (``None``)."""
    path = tmp_path / "w.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (x)")
    lock = threading.RLock()
    busy = [False]
    witness = Witness(lock, lambda: writer, lambda: busy[0])
    first = witness.current()
    assert first is not None
    for i in range(5):
        writer.execute("INSERT INTO t VALUES (?)", (i,))
    assert witness.current() == first
    run_sql(path, "INSERT INTO t VALUES (99)")
    second = witness.current()
    assert second is not None and second > first
    # Held: the look happened inside the write transaction, so no other commit can come.
    writer.execute("BEGIN IMMEDIATE")
    witness.hold(writer)
    seen: list[int | None] = []
    with lock:
        thread = threading.Thread(target=lambda: seen.append(witness.current()))
        thread.start()
        thread.join()
    assert seen == [second]
    # From its COMMIT to the look after it, ``current`` waits for that look (another connection
    # may commit as soon as the write lock is let go): here one does, and is counted.
    witness.committing()
    writer.execute("COMMIT")
    # Long enough for ``run_sql`` below, whatever the machine's load (``current`` waits for the
    # look after the COMMIT only that long, then cannot tell).
    monkeypatch.setattr(sqlite_records, "COMMIT_WAIT", 60.0)
    with lock:
        thread = threading.Thread(target=lambda: seen.append(witness.current()))
        thread.start()
        while not witness._changed._waiters:  # type: ignore[attr-defined]  # until it waits
            time.sleep(0.001)
        run_sql(path, "INSERT INTO t VALUES (100)")
        witness.release(writer)
        thread.join()
    third = seen[-1]
    assert third is not None and third > second
    monkeypatch.undo()
    seen.clear()
    busy[0] = True
    assert witness.current() is None
    busy[0] = False
    with lock:
        thread = threading.Thread(target=lambda: seen.append(witness.current()))
        thread.start()
        thread.join()
    assert seen == [None]
    writer.close()
