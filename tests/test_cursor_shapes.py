"""Query cursors and ``nextCursor`` tokens over a table dbhandles did not create notice that the
table changed under them (issue 15): replaced by a view, a sorted column dropped, dropped and
re-created with another key. The next page is ``conflict`` (``reason``: ``schema_changed``), never
rows served twice or silently skipped. Another connection (the engine's own tool) alters the table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.conftest import adapter_config
from tests.foreign_rows import run_sql
from tests.pgserver import run_in_schema

PG = pytest.mark.postgres
ENGINES = ["sqlite", pytest.param("postgres", marks=PG)]

CREATE = "CREATE TABLE t (k integer PRIMARY KEY, b integer, c text)"
ROWS = "INSERT INTO t VALUES " + ", ".join(f"({i}, {100 - i}, 'c{i}')" for i in range(1, 11))

#: What another program does between two pages, as SQL both engines run.
CHANGES = {
    "renamed-and-view": ["ALTER TABLE t RENAME TO t_old", "CREATE VIEW t AS SELECT * FROM t_old"],
    "sorted-column-dropped": ["ALTER TABLE t DROP COLUMN b"],
    "re-created-with-another-key": ["DROP TABLE t", "CREATE TABLE t (k text PRIMARY KEY, b integer, c text)",
                                    "INSERT INTO t VALUES ('1', 1, 'x')"],
}  # fmt: skip


def _runner(adapter: str, folder: Path) -> Callable[[list[str]], None]:
    """Run statements through a connection of the engine's own driver (another process's view)."""
    if adapter == "sqlite":
        return lambda statements: run_sql(folder / "db.sqlite", *statements)
    pg = adapter_config("postgres", folder)
    return lambda statements: run_in_schema(pg, *statements)


def _open(
    service: Service, tmp_path: Path, adapter: str
) -> tuple[str, Callable[[list[str]], None]]:
    folder = tmp_path / "db"
    folder.mkdir()
    run = _runner(adapter, folder)
    run([CREATE, ROWS])
    config = adapter_config(adapter, folder)
    config.pop("mode", None)
    if adapter == "sqlite":
        config = {"path": str(folder / "db.sqlite")}
    handle = str(service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"])
    return handle, run


def _next(service: Service, handle: str, query: str) -> dict[str, Any]:
    return service.execute("data/query-next", {"dbHandle": handle, "queryHandle": query})


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("adapter", ENGINES)
def test_a_query_cursor_refuses_the_page_after_its_table_changed(
    service: Service, tmp_path: Path, adapter: str, change: str
) -> None:
    handle, run = _open(service, tmp_path, adapter)
    opened = service.execute("data/query-open", {"dbHandle": handle, "collection": "t",
                                                 "orderBy": "b", "pageSize": 3})  # fmt: skip
    query = opened["queryHandle"]
    assert [r["k"] for r in _next(service, handle, query)["items"]] == [10, 9, 8]
    run(CHANGES[change])
    with pytest.raises(DbHandlesError) as info:
        _next(service, handle, query)
    assert (info.value.code, info.value.field) == ("conflict", "queryHandle")
    assert (
        info.value.details["reason"] == "schema_changed" and "open it again" in info.value.message
    )
    with pytest.raises(DbHandlesError) as gone:  # the cursor was closed
        _next(service, handle, query)
    assert gone.value.code == "cursor_not_found"


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("adapter", ENGINES)
def test_a_next_cursor_token_is_refused_after_its_table_changed(
    service: Service, tmp_path: Path, adapter: str, change: str
) -> None:
    handle, run = _open(service, tmp_path, adapter)
    params = {"dbHandle": handle, "collection": "t", "orderBy": "b", "limit": 3}
    first = service.execute("data/list", params)
    run(CHANGES[change])
    with pytest.raises(DbHandlesError) as info:
        service.execute("data/list", {**params, "cursor": first["nextCursor"]})
    assert (info.value.code, info.value.field) == ("conflict", "cursor")


@pytest.mark.parametrize("adapter", ENGINES)
def test_changes_that_keep_the_keyset_meaning_keep_cursors_working(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    """An index, an unrelated column, new rows: every row is still served exactly once."""
    handle, run = _open(service, tmp_path, adapter)
    opened = service.execute("data/query-open", {"dbHandle": handle, "collection": "t",
                                                 "orderBy": "b", "pageSize": 4})  # fmt: skip
    params = {"dbHandle": handle, "collection": "t", "orderBy": "b", "limit": 4}
    listed = service.execute("data/list", params)
    seen = [r["k"] for r in _next(service, handle, opened["queryHandle"])["items"]]
    run(["CREATE INDEX t_c ON t (c)", "ALTER TABLE t ADD COLUMN d integer"])
    while True:
        page = _next(service, handle, opened["queryHandle"])
        seen += [r["k"] for r in page["items"]]
        if not page["hasMore"]:
            break
    assert seen == list(range(10, 0, -1))
    token_seen = [r["k"] for r in listed["items"]]
    while listed.get("nextCursor"):
        listed = service.execute("data/list", {**params, "cursor": listed["nextCursor"]})
        token_seen += [r["k"] for r in listed["items"]]
    assert token_seen == list(range(10, 0, -1))


def test_collection_cursors_carry_no_fingerprint(service: Service) -> None:
    service.execute("data/batch", {"operations": [
        {"op": "create", "collection": "notes", "id": f"n{i}", "data": {"i": i}} for i in range(5)]})  # fmt: skip
    first = service.execute("data/list", {"collection": "notes", "orderBy": "i", "limit": 2})
    import base64
    import json

    token = first["nextCursor"]
    assert "s" not in json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    rest = service.execute("data/list", {"collection": "notes", "orderBy": "i", "cursor": token})
    assert [r["i"] for r in rest["items"]] == [2, 3, 4]
