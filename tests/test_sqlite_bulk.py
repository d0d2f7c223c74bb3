"""SQLite tuning for imports: 8 KiB pages for new files, a rollback journal only during a bulk load."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dbhandles import ReadOnly, Service
from dbhandles.adapters.sqlite import SqliteAdapter

#: System fields as dbhandles writes them (SQLite leaves out a row with others: round 20).
_STAMP = "2024-01-01T00:00:00.000Z"


def pragma(path: Path, name: str) -> object:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        db.close()


def test_new_databases_use_8k_pages_and_wal(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
    )["dbHandle"]
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {}})
    assert pragma(path, "page_size") == 8192
    assert pragma(path, "journal_mode") == "wal"


def test_bulk_load_switches_journal_and_back(service: Service, tmp_path: Path) -> None:
    """Only a handle that asked for WAL explicitly (as every import output does) is switched."""
    path = tmp_path / "bulk.sqlite"
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(path), "mode": "create", "wal": True}},
    )["dbHandle"]
    with service.registry.lease(handle) as (_, adapter):
        with adapter.bulk_load():  # type: ignore[attr-defined]
            assert adapter._conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # type: ignore[attr-defined]
            with adapter.session(write=True) as session:
                session.insert_many(
                    "c",
                    [
                        {"id": str(i), "createdAt": _STAMP, "updatedAt": _STAMP, "version": 1}
                        for i in range(10)
                    ],
                )
        assert adapter._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # type: ignore[attr-defined]
    assert service.execute("data/list", {"dbHandle": handle, "collection": "c"})["count"] == 10


def test_bulk_load_stays_on_wal_when_another_connection_has_the_file(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "shared.sqlite"
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
    )["dbHandle"]
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "data": {}})
    other = sqlite3.connect(path)
    try:
        other.execute("BEGIN")
        other.execute("SELECT count(*) FROM c").fetchone()
        with service.registry.lease(handle) as (_, adapter), adapter.bulk_load():  # type: ignore[attr-defined]
            assert adapter._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # type: ignore[attr-defined]
        other.execute("COMMIT")
    finally:
        other.close()


def row(record_id: str) -> dict[str, object]:
    stamp = "2025-01-01T00:00:00.000Z"
    return {"id": record_id, "n": 1, "createdAt": stamp, "updatedAt": stamp, "version": 1}


def test_the_database_can_be_opened_during_a_bulk_load_and_the_load_still_ends_well(
    tmp_path: Path,
) -> None:
    """During a load the file is in a rollback journal; another opener cannot switch it to WAL
    (busy) and carries on in that mode instead of failing; and a reader holding the file when the
    load ends keeps it from going back to WAL without failing the load (the next open does it)."""
    path = tmp_path / "busy.sqlite"
    config = SqliteAdapter.prepare(
        SqliteAdapter.parse_config({"path": str(path), "mode": "create"})
    )
    impatient = SqliteAdapter.parse_config({"path": str(path), "busyTimeout": 100})
    loader, other = SqliteAdapter(config), SqliteAdapter(impatient)
    try:
        with loader.bulk_load():  # type: ignore[attr-defined]
            with loader.session(write=True) as session:
                session.insert_many("c", [row(str(i)) for i in range(10)])
                other.connect()  # the loader holds the write lock: WAL is refused, not an error
            with other.session() as reader:  # a reader holding the file as the load ends
                assert reader.count("c", None) == 10
                raw = sqlite3.connect(path)
                raw.execute("BEGIN")
                raw.execute("SELECT count(*) FROM c").fetchone()
        raw.execute("COMMIT")
        raw.close()
        with other.session(write=True) as session:
            session.insert_many("c", [row("late")])
    finally:
        loader.close()
        other.close()
    fresh = SqliteAdapter(config)
    try:
        with fresh.session() as reader:
            assert reader.count("c", None) == 11
    finally:
        fresh.close()
    assert pragma(path, "journal_mode") == "wal"


def test_a_killed_bulk_load_then_read_only_open_says_what_to_do(
    service: Service, tmp_path: Path
) -> None:
    """A writer killed mid-transaction on a rollback journal leaves a hot journal: a read-only open
    cannot roll it back, says so, and works once the file was opened read-write."""
    path = tmp_path / "killed.sqlite"
    script = f"""
import os, sqlite3
c = sqlite3.connect({str(path)!r}, isolation_level=None)
c.execute("PRAGMA journal_mode = DELETE")
c.execute("CREATE TABLE c (id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, created_at TEXT NOT NULL, "
          "updated_at TEXT NOT NULL, version INTEGER NOT NULL)")
c.execute("INSERT INTO c VALUES ('kept', '{{}}', {_STAMP!r}, {_STAMP!r}, 1)")
c.execute("PRAGMA cache_size = 10")  # spill to the file before the commit that never comes
c.execute("BEGIN")
for i in range(3000):
    c.execute("INSERT INTO c VALUES (?, ?, {_STAMP!r}, {_STAMP!r}, 1)",
              (str(i), '{{"t": "' + 'y' * 500 + '"}}'))
os._exit(9)
"""
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 9
    assert Path(f"{path}-journal").stat().st_size > 0

    def open_(mode: str) -> str:
        config = {"path": str(path), "mode": mode}
        return str(
            service.execute("data/open", {"adapter": "sqlite", "config": config})["dbHandle"]
        )

    with pytest.raises(ReadOnly, match=r"unfinished transaction.*Open it once with mode readwrite"):
        open_("readonly")
    writable = open_("readwrite")
    service.execute("data/close", {"dbHandle": writable})
    handle = open_("readonly")
    items = service.execute("data/list", {"dbHandle": handle, "collection": "c"})["items"]
    assert [item["id"] for item in items] == ["kept"]
