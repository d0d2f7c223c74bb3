"""The memory a page may take is bounded: rows handed to Python stop at ``MAX_PAGE_BYTES``, SQLite's
own memory at its ``hard_heap_limit``; either answers ``query_failed`` naming the collection."""

from __future__ import annotations

import gc
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.adapters import group_bytes, sqlite_pages
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
    assert f'"{collection}"' in error.message, error.message
    # The advice names the page size of the command called (issue 12): a cursor's and an
    # export's pageSize, a copy's batchSize, a listing's limit.
    parameter = {"list": "(limit:", "cursor": "(pageSize:", "export": "(pageSize)",
                 "copy": "(batchSize)"}[command]  # fmt: skip
    assert parameter in error.message, error.message
    assert "fields do not lower this bound" in error.message


@pytest.mark.parametrize("collection", ["t", "v"])
def test_the_advised_limit_is_the_largest_that_passes(
    service: Service, monkeypatch: pytest.MonkeyPatch, collection: str
) -> None:
    # Round 15: "ask for at most 14" refused limit=14 too (the row read past the limit for
    # hasMore counts). The advice is exact: that limit is served, one more is refused, on a
    # listing and on a cursor's page alike.
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", 500_000)
    handle, _ = _wide(service, 100_000)
    base = {"dbHandle": handle, "collection": collection}
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", {**base, "limit": 20}, context=ALICE)
    found = re.search(r"ask for at most (\d+) \(limit", caught.value.message)
    assert found is not None, caught.value.message
    advised = int(found.group(1))
    assert advised >= 1
    listed = service.execute("data/list", {**base, "limit": advised}, context=ALICE)
    assert len(listed["items"]) == advised and listed["hasMore"]
    with pytest.raises(DbHandlesError) as again:
        service.execute("data/list", {**base, "limit": advised + 1}, context=ALICE)
    assert f"ask for at most {advised} (limit" in again.value.message
    opened = service.execute("data/query-open", {**base, "pageSize": advised}, context=ALICE)
    page = service.execute("data/query-next", {"queryHandle": opened["queryHandle"]},
                           context=ALICE)  # fmt: skip
    assert len(page["items"]) == advised
    # A projection reads whole records: it is refused the same, and says fields do not help.
    with pytest.raises(DbHandlesError) as projected:
        service.execute("data/list", {**base, "limit": 20, "fields": ["id"]}, context=ALICE)
    assert "fields do not lower this bound" in projected.value.message


def test_the_advice_for_one_record_too_large_to_list_with_another(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two rows pass the bound: no limit of one or more passes with the row read for hasMore.
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", 150_000)
    handle, _ = _wide(service, 100_000)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", {"dbHandle": handle, "collection": "t", "limit": 20},
                        context=ALICE)  # fmt: skip
    assert "ask for at most" not in caught.value.message
    assert "read them one by one (data/read)" in caught.value.message


def test_a_page_within_the_bound_is_served(service: Service) -> None:
    handle, _ = _wide(service, 100_000)
    for collection in ("t", "v"):
        listed = service.execute("data/list", {"dbHandle": handle, "collection": collection,
                                               "limit": 20}, context=ALICE)  # fmt: skip
        assert len(listed["items"]) == 20


@pytest.mark.parametrize(("collection", "order", "kind"),
                         [("v", None, "view"), ("t", ["z"], "table"), ("c", ["z"], "collection")])  # fmt: skip
def test_sqlite_memory_past_its_bound_is_query_failed(
    service: Service, collection: str, order: list[str] | None, kind: str
) -> None:
    # A view ordered by its computed id makes SQLite sort every row, whatever the limit: that
    # memory is SQLite's, bounded by the process's hard_heap_limit (lowered here, then restored).
    # A table or a collection sorted by a huge field meets the same bound; only a view is told
    # about views (round 15: a plain collection was blamed on "a view computing huge values").
    handle, _ = _wide(service, 2_000_000)
    if collection == "c":
        for i in range(12):
            service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": f"r{i}",
                                            "data": {"z": f"{i}" * 2_000_000}}, context=ALICE)  # fmt: skip
    params: dict[str, Any] = {"dbHandle": handle, "collection": collection, "limit": 1}
    if order is not None:
        params["orderBy"] = order
    # Connections earlier tests left to the garbage collector hold page caches: SQLite's memory
    # is the process's, and memory others hold is storage_busy, not this query's fault.
    gc.collect()
    probe = sqlite3.connect(":memory:")
    before = probe.execute("PRAGMA hard_heap_limit").fetchone()[0]
    try:
        probe.execute(f"PRAGMA hard_heap_limit = {16 << 20}")
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/list", params, context=ALICE)
    finally:
        # The pragma may only lower the bound: put back through the C API (soft follows hard).
        lib = sqlite_pages._sqlite_library()
        if lib is not None:
            lib.sqlite3_hard_heap_limit64(before)
        probe.close()
    error = caught.value
    assert (error.code, error.http_status) == ("query_failed", 409), error
    assert f'"{collection}"' in error.message, error.message
    assert "more memory than SQLite may use" in error.message
    assert ("a view computing huge values" in error.message) is (kind == "view"), error.message
    if kind != "view":
        assert f"at once in this {kind}" in error.message, error.message


def test_the_sqlite_heap_is_bounded_once_a_database_is_open(service: Service) -> None:
    _wide(service, 10)
    probe = sqlite3.connect(":memory:")
    try:
        limit = probe.execute("PRAGMA hard_heap_limit").fetchone()[0]
    finally:
        probe.close()
    assert 0 < limit <= sqlite_pages.SQLITE_HEAP_BYTES


@pytest.mark.parametrize("collection", ["u", "w"])
def test_a_count_of_a_table_or_view_by_a_huge_field_is_bounded(
    service: Service, monkeypatch: pytest.MonkeyPatch, collection: str
) -> None:
    # A table or view dbhandles did not create is counted in Python (``Session.group_count``):
    # its group keys meet the same bound as a collection's (``group_bytes``).
    monkeypatch.setattr(group_bytes, "MAX_GROUP_BYTES", 250_000)
    handle, _ = _wide(service, 10)
    conn = sqlite3.connect(service.settings.space_root() / "alice" / "wide.sqlite")
    conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, z TEXT)")
    conn.execute("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r LIMIT 6) "
                 "INSERT INTO u SELECT i, i || hex(zeroblob(50000)) FROM r")  # fmt: skip
    conn.execute("CREATE VIEW w AS SELECT id, z FROM u")
    conn.commit()
    conn.close()
    params = {"dbHandle": handle, "collection": collection, "groupBy": "z", "limit": 20}
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/count", params, context=ALICE)
    assert caught.value.code == "query_failed"
    assert f'"{collection}"' in caught.value.message
    assert "ask for at most 2 groups (limit)" in caught.value.message
    counted = service.execute("data/count", {**params, "limit": 2}, context=ALICE)
    assert counted["total"] == 6 and counted["groupCount"] == 6 and len(counted["groups"]) == 2
