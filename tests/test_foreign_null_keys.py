"""A rowid table whose primary key holds NULL (SQLite allows it unless the column is NOT NULL or
the ``INTEGER PRIMARY KEY``), issue 15: while any key is NULL the table is served by its rowid and
read-only, so paging, cursors, export and copy see every row and no ``id`` is null; once every key
is set it is served by its key again. PostgreSQL keys are never NULL (a primary key is NOT NULL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError


def _db(tmp_path: Path, script: str) -> Path:
    path = tmp_path / "nk.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return path


NK = """CREATE TABLE nk (k TEXT PRIMARY KEY, v TEXT);
INSERT INTO nk VALUES ('a', '1'), (NULL, '2'), ('c', '3'), (NULL, '4'), ('e', '5');"""


def _open(service: Service, path: Path) -> str:
    return str(
        service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})[
            "dbHandle"
        ]
    )


def _pages(service: Service, handle: str, **params: Any) -> list[dict[str, Any]]:
    base = {"dbHandle": handle, "collection": "nk", "limit": 1, **params}
    page = service.execute("data/list", base)
    rows = list(page["items"])
    while page.get("nextCursor"):
        page = service.execute("data/list", {**base, "cursor": page["nextCursor"]})
        rows += page["items"]
    return rows


def test_null_keys_are_served_by_rowid_and_no_row_is_skipped(
    service: Service, tmp_path: Path
) -> None:
    handle = _open(service, _db(tmp_path, NK))
    rows = _pages(service, handle)
    assert [(r["id"], r["k"], r["v"]) for r in rows] == [
        (1, "a", "1"), (2, None, "2"), (3, "c", "3"), (4, None, "4"), (5, "e", "5")]  # fmt: skip
    assert [r["v"] for r in _pages(service, handle, orderBy="k")] == ["2", "4", "1", "3", "5"]
    assert service.execute("data/count", {"dbHandle": handle, "collection": "nk"})["total"] == 5
    query = service.execute("data/query-open", {"dbHandle": handle, "collection": "nk",
                                                "orderBy": "id", "pageSize": 2})["queryHandle"]  # fmt: skip
    seen = []
    while True:
        page = service.execute("data/query-next", {"dbHandle": handle, "queryHandle": query})
        seen += [r["id"] for r in page["items"]]
        if not page["hasMore"]:
            break
    assert seen == [1, 2, 3, 4, 5]
    read = service.execute("data/read", {"dbHandle": handle, "collection": "nk", "id": "2"})
    assert read["data"] == {"id": 2, "k": None, "v": "2"}
    schema = service.execute("data/schema", {"dbHandle": handle, "collection": "nk"})
    described = (
        next(t for t in schema["tables"] if t["name"] == "nk") if "tables" in schema else schema
    )
    assert "holds NULL" in orjson.dumps(described).decode()


def test_a_table_with_null_keys_is_read_only_until_every_key_is_set(
    service: Service, tmp_path: Path
) -> None:
    path = _db(tmp_path, NK)
    handle = _open(service, path)
    for command, params in [("data/update", {"id": "2", "data": {"v": "x"}}),
                            ("data/delete", {"id": "2"}), ("data/create", {"data": {"v": "x"}})]:  # fmt: skip
        with pytest.raises(DbHandlesError) as info:
            service.execute(command, {"dbHandle": handle, "collection": "nk", **params})
        assert info.value.code == "read_only" and "holds NULL" in info.value.message
    conn = sqlite3.connect(path)
    conn.execute("UPDATE nk SET k = 'b' WHERE rowid = 2")
    conn.execute("UPDATE nk SET k = 'd' WHERE rowid = 4")
    conn.commit()
    conn.close()
    assert [r["id"] for r in _pages(service, handle)] == ["a", "b", "c", "d", "e"]
    done = service.execute("data/update", {"dbHandle": handle, "collection": "nk", "id": "b",
                                           "data": {"v": "x"}})  # fmt: skip
    assert done["data"] == {"id": "b", "k": "b", "v": "x"}


def test_a_key_column_named_id_is_served_as_underscore_id_while_null(
    service: Service, tmp_path: Path
) -> None:
    handle = _open(service, _db(tmp_path, "CREATE TABLE nk (id TEXT PRIMARY KEY, v TEXT); "
                                "INSERT INTO nk VALUES ('a', '1'), (NULL, '2');"))  # fmt: skip
    assert [(r["id"], r["_id"]) for r in _pages(service, handle)] == [(1, "a"), (2, None)]


def test_keys_that_cannot_be_null_are_never_probed(service: Service, tmp_path: Path) -> None:
    """NOT NULL keys, the INTEGER PRIMARY KEY and WITHOUT ROWID tables keep their key as the id."""
    handle = _open(
        service,
        _db(
            tmp_path,
            """
        CREATE TABLE nn (k TEXT PRIMARY KEY NOT NULL, v TEXT); INSERT INTO nn VALUES ('a', '1');
        CREATE TABLE ik (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO ik VALUES (NULL, '1');
        CREATE TABLE wr (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID; INSERT INTO wr VALUES ('a', '1');
    """,
        ),
    )
    for name, key in [("nn", "a"), ("ik", 1), ("wr", "a")]:
        page = service.execute("data/list", {"dbHandle": handle, "collection": name})
        assert [r["id"] for r in page["items"]] == [key]


def test_export_and_copy_of_null_keys_carry_rowid_ids(service: Service, tmp_path: Path) -> None:
    handle = _open(service, _db(tmp_path, NK))
    out = tmp_path / "nk.jsonl"
    service.execute("data/export", {"dbHandle": handle, "collection": "nk", "output": str(out)})
    lines = [orjson.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["1", "2", "3", "4", "5"]  # ids as text
    target = str(service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"])
    done = service.execute("data/copy", {"from": {"dbHandle": handle, "collection": "nk"},
                                         "to": {"dbHandle": target}})  # fmt: skip
    assert done["copied"] == 5
    copies = service.execute("data/list", {"dbHandle": target, "collection": "nk"})["items"]
    assert sorted(r["id"] for r in copies) == ["1", "2", "3", "4", "5"]
