"""SQLite tuning for imports: 8 KiB pages for new files, a rollback journal only during a bulk load."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dbhandles import Service


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
    path = tmp_path / "bulk.sqlite"
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
    )["dbHandle"]
    with service.registry.lease(handle) as (_, adapter):
        with adapter.bulk_load():  # type: ignore[attr-defined]
            assert adapter._conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # type: ignore[attr-defined]
            with adapter.session(write=True) as session:
                session.insert_many(
                    "c",
                    [
                        {"id": str(i), "createdAt": "t", "updatedAt": "t", "version": 1}
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
