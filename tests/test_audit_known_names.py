"""The table an audit row names is the one the command reached, also when another connection
changed the schema since the last row named it (``SqliteAdapter.known_collection`` remembers its
answers for one schema version only)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles import Context, Service
from tests.foreign_rows import another_connection

ADMIN = Context(actor="admin", is_admin=True)
SHAPE = (
    "(id TEXT PRIMARY KEY, data TEXT NOT NULL, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL, version INTEGER NOT NULL)"
)
STAMP = "2024-01-01T00:00:00.000Z"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with Service(home=tmp_path / "home") as svc:
        yield svc


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "shared.db"


@pytest.fixture
def other(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the file: its DDL moves the schema version as another process's."""
    with another_connection(path) as conn:
        yield conn


def _named(service: Service, handle: str) -> list[str | None]:
    """The collections the audit rows of ``data/read`` on ``handle`` name, oldest first."""
    service.audit.flush()
    entries = service.execute("data/audit", {"handle": handle, "limit": 1000}, context=ADMIN)
    rows = [e for e in entries["entries"] if e["command"] == "data/read"]
    return [e["collection"] for e in reversed(rows)]


@pytest.mark.parametrize("mode", ["readwrite", "readonly"])
def test_a_name_reaching_another_table_after_a_schema_change_is_audited_as_that_table(
    service: Service, path: Path, other: sqlite3.Connection, mode: str
) -> None:
    other.execute(f'CREATE TABLE "Notes" {SHAPE}')
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": mode}}
    )["dbHandle"]
    read = {"dbHandle": handle, "collection": "notes", "id": "n1"}
    service.execute("data/read", read)
    service.execute("data/read", read)  # answered from what the adapter remembers
    # Another connection replaces the collection by a table of another spelling (and kind).
    other.execute('DROP TABLE "Notes"')
    other.execute('CREATE TABLE "NOTES" (id TEXT PRIMARY KEY, body TEXT)')
    other.execute("INSERT INTO \"NOTES\" VALUES ('n1', 'hello')")
    assert service.execute("data/read", read)["data"] == {"id": "n1", "body": "hello"}
    service.execute("data/read", read)
    other.execute('DROP TABLE "NOTES"')
    assert service.execute("data/read", read)["found"] is False
    assert _named(service, handle) == ["Notes", "Notes", "NOTES", "NOTES", "notes"]


def test_a_collection_this_handle_creates_is_audited_by_its_stored_name(
    service: Service, path: Path
) -> None:
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
    )["dbHandle"]
    read = {"dbHandle": handle, "collection": "Tasks", "id": "t1"}
    service.execute("data/read", read)  # missing: the name as sent
    service.execute("data/create", {"dbHandle": handle, "collection": "tasks", "id": "t1",
                                    "data": {"done": False}})  # fmt: skip
    assert service.execute("data/read", read)["found"] is True
    service.execute("data/read", read)
    assert _named(service, handle) == ["Tasks", "tasks", "tasks"]
