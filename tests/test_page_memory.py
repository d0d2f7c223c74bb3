"""The memory a page may take is bounded: rows handed to Python stop at ``MAX_PAGE_BYTES``, SQLite's
own memory at its ``hard_heap_limit``; either answers ``query_failed`` naming the collection."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.adapters import sqlite_pages
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with Service(settings=Settings(home=tmp_path / "home")) as svc:
        svc.tokens.create("alice")
        yield svc


def _wide(service: Service, value_bytes: int) -> tuple[str, str]:
    """Alice's handle to a file with a view ``v`` and a table ``t`` of 20 rows of ``value_bytes``
    of text each, and a handle to an empty database to copy into."""
    space = service.settings.space_root() / "alice"
    space.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(space / "wide.sqlite")
    rows = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 20) "
    conn.execute(
        f"CREATE VIEW v AS {rows} SELECT i AS id, hex(zeroblob({value_bytes // 2})) AS z FROM r"
    )
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, z TEXT)")
    conn.execute(f"INSERT INTO t {rows} SELECT i, hex(zeroblob({value_bytes // 2})) FROM r")
    conn.commit()
    conn.close()
    handles = []
    for config in ({"path": "wide.sqlite"}, {"path": "target.sqlite", "mode": "create"}):
        opened = service.execute(
            "data/open", {"adapter": "sqlite", "config": config}, context=ALICE
        )
        handles.append(str(opened["dbHandle"]))
    return handles[0], handles[1]


def _pages(handle: str, target: str, collection: str) -> dict[str, tuple[str, dict[str, Any]]]:
    base = {"dbHandle": handle, "collection": collection}
    return {
        "list": ("data/list", {**base, "limit": 20}),
        "export": ("data/export", {**base, "output": f"{collection}.jsonl"}),
        "copy": ("data/copy", {"from": base, "to": {"dbHandle": target, "collection": "got"}}),
        "cursor": ("data/query-open", {**base, "pageSize": 20}),
    }


@pytest.mark.parametrize("collection", ["t", "v"])
@pytest.mark.parametrize("command", ["list", "export", "copy", "cursor"])
def test_a_page_past_the_byte_bound_is_refused(
    service: Service, monkeypatch: pytest.MonkeyPatch, collection: str, command: str
) -> None:
    # The bound lowered to five 100 KB values: every command that reads a page of them stops
    # there (a table's row counts its JSON, 100 KB; a view's its id and its column, twice that).
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", 500_000)
    handle, target = _wide(service, 100_000)
    name, params = _pages(handle, target, collection)[command]
    if command == "cursor":  # the open reads nothing yet: its first page does
        opened = service.execute(name, params, context=ALICE)
        name, params = "data/query-next", {"queryHandle": opened["queryHandle"]}
    with pytest.raises(DbHandlesError) as caught:
        service.execute(name, params, context=ALICE)
    error = caught.value
    assert (error.code, error.http_status) == ("query_failed", 409), error
    assert f'"{collection}"' in error.message and "(limit)" in error.message, error.message
    assert (
        "ask for at most 4 (limit)" in error.message or "ask for at most 2 (limit)" in error.message
    )


def test_a_page_within_the_bound_is_served(service: Service) -> None:
    handle, _ = _wide(service, 100_000)
    for collection in ("t", "v"):
        listed = service.execute("data/list", {"dbHandle": handle, "collection": collection,
                                               "limit": 20}, context=ALICE)  # fmt: skip
        assert len(listed["items"]) == 20


def test_sqlite_memory_past_its_bound_is_query_failed(service: Service) -> None:
    # A view ordered by its computed id makes SQLite sort every row, whatever the limit: that
    # memory is SQLite's, bounded by the process's hard_heap_limit (lowered here, then restored).
    handle, _ = _wide(service, 2_000_000)
    # Connections earlier tests left to the garbage collector hold page caches: SQLite's memory
    # is the process's, and memory others hold is storage_busy, not this query's fault.
    gc.collect()
    probe = sqlite3.connect(":memory:")
    before = probe.execute("PRAGMA hard_heap_limit").fetchone()[0]
    try:
        probe.execute(f"PRAGMA hard_heap_limit = {16 << 20}")
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/list", {"dbHandle": handle, "collection": "v", "limit": 1},
                            context=ALICE)  # fmt: skip
    finally:
        # The pragma may only lower the bound: put back through the C API (soft follows hard).
        lib = sqlite_pages._sqlite_library()
        if lib is not None:
            lib.sqlite3_hard_heap_limit64(before)
        probe.close()
    error = caught.value
    assert (error.code, error.http_status) == ("query_failed", 409), error
    assert '"v"' in error.message and "more memory than SQLite may use" in error.message


def test_the_sqlite_heap_is_bounded_once_a_database_is_open(service: Service) -> None:
    _wide(service, 10)
    probe = sqlite3.connect(":memory:")
    try:
        limit = probe.execute("PRAGMA hard_heap_limit").fetchone()[0]
    finally:
        probe.close()
    assert 0 < limit <= sqlite_pages.SQLITE_HEAP_BYTES
