"""A raw U+0000 another tool wrote into a table dbhandles did not create (issue 15): an id or a
filter value the database itself holds is usable through every id door and in every filter, sort
and cursor (SQLite binds text holding it in full); where dbhandles writes (a collection's ids and
filters, a new key, a grant's row filter) it stays refused, and PostgreSQL, whose text cannot hold
it, refuses it saying so (docs/foreign-tables.md "Values", docs/filters.md "Values")."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.conftest import adapter_config

#: Keys and values another tool wrote with a raw U+0000 (not the ``\u0000`` escape), and
#: neighbours that sort right before and after them byte by byte.
ROWS = [("a", "x", 1), ("d\x00e", "y\x00z", 2), ("d", "y", 3), ("d\x00", "y\x00", 4),
        ("e", "y\x00z", 5)]  # fmt: skip


def _open(service: Service, tmp_path: Path) -> str:
    path = tmp_path / "nul.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE f (k TEXT PRIMARY KEY, v TEXT, n INTEGER)")
        conn.executemany("INSERT INTO f VALUES (?, ?, ?)", ROWS)
    conn.close()
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})
    return str(opened["dbHandle"])


def run(service: Service, name: str, db: str, **params: Any) -> dict[str, Any]:
    return service.execute(name, {"dbHandle": db, **params})


def _error(service: Service, name: str, db: str, **params: Any) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        run(service, name, db, **params)
    return caught.value


def _ids(service: Service, db: str, **params: Any) -> list[str]:
    return [r["id"] for r in run(service, "data/list", db, collection="f", **params)["items"]]


def test_every_id_door_takes_an_id_holding_a_raw_nul(service: Service, tmp_path: Path) -> None:
    db = _open(service, tmp_path)
    read = run(service, "data/read", db, collection="f", id="d\x00e")
    assert read["found"] and read["data"] == {"id": "d\x00e", "k": "d\x00e", "v": "y\x00z", "n": 2}
    # Exactly that key: "d" and "d\x00" are other rows, "d\x00" is not cut to "d".
    assert run(service, "data/read", db, collection="f", id="d\x00")["data"]["n"] == 4
    assert not run(service, "data/read", db, collection="f", id="d\x00x")["found"]
    updated = run(service, "data/update", db, collection="f", id="d\x00e", data={"n": 20})
    assert updated["id"] == "d\x00e" and updated["data"]["n"] == 20
    batch = run(service, "data/batch", db, operations=[
        {"op": "update", "collection": "f", "id": "d\x00", "data": {"n": 40}},
        {"op": "delete", "collection": "f", "id": "d\x00e"},
    ])  # fmt: skip
    assert [r["id"] for r in batch["results"]] == ["d\x00", "d\x00e"]
    assert batch["results"][1]["deleted"]
    assert run(service, "data/read", db, collection="f", id="d\x00")["data"]["n"] == 40
    deleted = run(service, "data/delete", db, collection="f", id="d\x00")
    assert deleted["deleted"] and deleted["id"] == "d\x00"
    assert sorted(_ids(service, db)) == ["a", "d", "e"]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"v": "y\x00z"}, ["d\x00e", "e"]),
        ({"id": "d\x00e"}, ["d\x00e"]),
        ({"k": {"$in": ["d\x00", "a"]}}, ["a", "d\x00"]),
        ({"v": {"$gt": "y\x00"}}, ["d\x00e", "e"]),
        ({"v": {"$gte": "y", "$lt": "y\x00z"}}, ["d", "d\x00"]),
        ({"v": {"$ne": "y\x00z"}}, ["a", "d", "d\x00"]),
        ({"v": {"$nin": ["y\x00", "y\x00z"]}}, ["a", "d"]),
        ({"v": {"$contains": "\x00z"}}, ["d\x00e", "e"]),
        ({"$or": [{"k": "d\x00"}, {"n": 1}]}, ["a", "d\x00"]),
        ({"$not": {"k": {"$lte": "d\x00"}}}, ["d\x00e", "e"]),
    ],
)
def test_a_filter_value_holding_a_raw_nul_compares_the_whole_text(
    service: Service, tmp_path: Path, filter_: dict[str, Any], expected: list[str]
) -> None:
    db = _open(service, tmp_path)
    assert _ids(service, db, filter=filter_, orderBy="k") == expected
    counted = run(service, "data/count", db, collection="f", filter=filter_)
    assert counted["total"] == len(expected)
    opened = run(service, "data/query-open", db, collection="f", filter=filter_, orderBy="k",
                 pageSize=1)  # fmt: skip
    seen: list[str] = []
    for _ in range(10):
        page = service.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
        seen += [r["id"] for r in page["items"]]
        if not page["hasMore"]:
            break
    assert seen == expected


def test_a_sorted_filtered_listing_pages_past_nul_rows(service: Service, tmp_path: Path) -> None:
    db = _open(service, tmp_path)
    for direction in ("asc", "desc"):
        order = [{"field": "v", "direction": direction}]
        whole = _ids(service, db, filter={"v": {"$gte": "y"}}, orderBy=order)
        assert len(whole) == 4
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = run(service, "data/list", db, collection="f", filter={"v": {"$gte": "y"}},
                       orderBy=order, limit=1, **({"cursor": cursor} if cursor else {}))  # fmt: skip
            seen += [r["id"] for r in page["items"]]
            cursor = page["nextCursor"]
            if not cursor:
                break
        assert seen == whole


def test_where_dbhandles_writes_u0000_stays_refused(service: Service, tmp_path: Path) -> None:
    db = _open(service, tmp_path)
    # A new key is dbhandles' to write, so are values (docs/filters.md "Values").
    error = _error(service, "data/create", db, collection="f", id="n\x00", data={"n": 9})
    assert (error.code, error.field) == ("invalid_params", "id") and "U+0000" in error.message
    error = _error(service, "data/update", db, collection="f", id="a", data={"v": "q\x00"})
    assert error.code == "invalid_params" and "U+0000" in error.message
    # Copied out of the table, into a collection, a row keyed with it is refused by name.
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/copy", {
            "from": {"dbHandle": db, "collection": "f", "filter": {"id": {"$in": ["d\x00e"]}}},
            "to": {"dbHandle": db, "collection": "copied"}})  # fmt: skip
    error = caught.value
    assert error.code == "invalid_params" and "U+0000" in error.message, error.message
    assert "copied" not in [c["name"] for c in run(service, "data/schema", db)["collections"]]


@pytest.mark.parametrize("adapter", ["memory", "json", "sqlite"])
def test_a_collection_refuses_u0000_in_ids_and_filters(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    opened = service.execute("data/open", {"adapter": adapter,
                                           "config": adapter_config(adapter, tmp_path)})  # fmt: skip
    db = str(opened["dbHandle"])
    run(service, "data/create", db, collection="c", id="a", data={"t": "x", "tags": ["x"]})
    doors: list[tuple[str, dict[str, Any]]] = [
        ("data/read", {"collection": "c", "id": "a\x00"}),
        ("data/update", {"collection": "c", "id": "a\x00", "data": {"t": "y"}}),
        ("data/delete", {"collection": "c", "id": "a\x00"}),
        ("data/batch", {"operations": [{"op": "delete", "collection": "c", "id": "a\x00"}]}),
        ("data/create", {"collection": "c", "id": "b\x00", "data": {}}),
    ]
    for name, params in doors:
        error = _error(service, name, db, **params)
        assert error.code == "invalid_params" and "U+0000" in error.message, (name, error.message)
    filters: list[tuple[dict[str, Any], str]] = [
        ({"t": "x\x00"}, "filter.t"),
        ({"t": {"$in": ["x", "x\x00"]}}, "filter.t.$in[1]"),
        ({"$or": [{"t": "x"}, {"t": {"$gt": "\x00"}}]}, "filter.$or[1].t.$gt"),
        ({"tags": {"$elemMatch": {"$eq": "x\x00"}}}, "filter.tags.$elemMatch.$eq"),
        ({"id": "a\x00"}, "filter.id"),
    ]
    for filter_, field in filters:
        for name in ("data/list", "data/count"):
            error = _error(service, name, db, collection="c", filter=filter_)
            assert (error.code, error.field) == ("invalid_filter", field), (filter_, error.message)
            assert "U+0000" in error.message
    assert _ids_of(service, db) == ["a"]


def _ids_of(service: Service, db: str) -> list[str]:
    return [r["id"] for r in run(service, "data/list", db, collection="c")["items"]]


def test_a_grants_row_filter_refuses_u0000(service: Service, tmp_path: Path) -> None:
    db = _open(service, tmp_path)
    error = _error(service, "data/grant", db, actor="alice", access="read",
                   permissions={"rowFilter": {"v": "y\x00z"}})  # fmt: skip
    assert error.code == "invalid_filter" and "U+0000" in error.message, error.message
    assert error.field == "permissions.rowFilter.v"


@pytest.mark.postgres
def test_postgresql_refuses_u0000_saying_its_text_cannot_hold_it(
    service: Service, tmp_path: Path
) -> None:
    from tests.pgserver import postgres_schema

    config = postgres_schema(tmp_path, "CREATE TABLE f (k TEXT PRIMARY KEY, v TEXT)",
                             "INSERT INTO f VALUES ('a', 'x')")  # fmt: skip
    db = str(service.execute("data/open", {"adapter": "postgres", "config": config})["dbHandle"])
    for name, params in [
        ("data/read", {"collection": "f", "id": "a\x00"}),
        ("data/update", {"collection": "f", "id": "a\x00", "data": {"v": "y"}}),
        ("data/delete", {"collection": "f", "id": "a\x00"}),
        ("data/list", {"collection": "f", "filter": {"v": "x\x00"}}),
        ("data/count", {"collection": "f", "filter": {"k": {"$in": ["a\x00"]}}}),
    ]:
        error = _error(service, name, db, **params)
        assert error.code in ("invalid_params", "invalid_filter"), (name, error.message)
        assert "PostgreSQL" in error.message and "U+0000" in error.message, (name, error.message)
    assert _ids(service, db) == ["a"]
