"""Ids of rows of tables dbhandles did not create, on every key shape (issue 15, tester's findings 1,
3, 7, 8, 12): the id ``data/list`` shows goes everywhere an id goes.

``id`` in a record is the key's value (a number for a numeric key); every command that takes an id
takes that number or its text (``documents.id_text``: ``3.0`` is ``"3"``); results, events,
``data/copy`` into a collection and ``data/export`` carry the text. Each shape runs list -> read ->
update -> batch -> copy into a collection -> export -> import -> delete. The databases are built with
plain ``sqlite3`` and plain SQL (PostgreSQL, on the suite's server).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.adapters.sqlite_foreign import ForeignReader
from dbhandles.adapters.sqlite_foreign_schema import describe
from dbhandles.adapters.sqlite_foreign_write import ForeignWriter
from dbhandles.documents import id_text
from dbhandles.errors import InvalidParams, ReadOnly

SQLITE_SCHEMA = """
CREATE TABLE ints (r REAL, id INTEGER PRIMARY KEY, name TEXT, n INT);
CREATE TABLE reals (k REAL PRIMARY KEY, name TEXT);
CREATE TABLE texts (url TEXT PRIMARY KEY, name TEXT);
CREATE TABLE pairs (a TEXT, b INTEGER, name TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE plain (name TEXT, n INTEGER);
CREATE VIEW named AS SELECT name, n FROM plain;
INSERT INTO ints VALUES (1.5, 1, 'one', 10), (2.5, 2, 'two', 20);
INSERT INTO reals VALUES (2.5, 'two and a half'), (3.0, 'three');
INSERT INTO texts VALUES ('https://example.org/a', 'a'), ('b', 'bee');
INSERT INTO pairs VALUES ('x', 1, 'x1'), ('x', 2, 'x2');
INSERT INTO plain VALUES ('p', 1), ('q', 2);
"""

#: table -> whether it is written through its key
SQLITE_TABLES = {"ints": True, "reals": True, "texts": True, "pairs": True, "plain": False,
                 "named": False}  # fmt: skip


def run(service: Service, name: str, handle: str, **params: Any) -> dict[str, Any]:
    return service.execute(name, {"dbHandle": handle, **params})


@pytest.fixture
def sqlite_handle(service: Service, tmp_path: Path) -> str:
    path = tmp_path / "legacy.db"
    conn = sqlite3.connect(path)
    conn.executescript(SQLITE_SCHEMA)
    conn.close()
    return str(service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})[
        "dbHandle"])  # fmt: skip


def round_trip(service: Service, handle: str, table: str, writable: bool, tmp_path: Path) -> None:
    """list -> read (the JSON value and its text) -> update -> batch -> copy -> export -> import ->
    delete, for every row of ``table``."""
    items = run(service, "data/list", handle, collection=table, limit=100)["items"]
    assert len(items) == 2
    for item in items:
        for given in (item["id"], id_text(item["id"])):
            read = run(service, "data/read", handle, collection=table, id=given)
            assert read["found"] and read["data"] == item
            assert read["id"] == id_text(item["id"])
    target = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    copied = service.execute(
        "data/copy",
        {
            "from": {"dbHandle": handle, "collection": table},
            "to": {"dbHandle": target, "collection": "copies"},
        },
    )
    assert copied["copied"] == 2 and copied["conflicts"] == 0
    again = service.execute(
        "data/copy",
        {
            "from": {"dbHandle": handle, "collection": table},
            "to": {"dbHandle": target, "collection": "copies"},
        },
    )
    assert again["skipped"] == 2 and again["copied"] == 0
    for item in items:
        copy = run(service, "data/read", target, collection="copies", id=item["id"])["data"]
        assert copy["id"] == id_text(item["id"])
    out = tmp_path / f"{table}.jsonl"
    run(service, "data/export", handle, collection=table, output=str(out))
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(id_text(i["id"]) for i in items)
    imported = run(service, "data/import", target, collection="imported", input=str(out))
    assert imported["imported"] == 2
    if not writable:
        with pytest.raises(ReadOnly):
            run(service, "data/update", handle, collection=table, id=items[0]["id"],
                data={"name": "z"})  # fmt: skip
        return
    first, second = items
    updated = run(service, "data/update", handle, collection=table, id=first["id"],
                  data={"name": "renamed"})  # fmt: skip
    assert updated["data"] == {**first, "name": "renamed"}
    assert updated["id"] == id_text(first["id"])
    batch = run(service, "data/batch", handle, operations=[
        {"op": "update", "collection": table, "id": second["id"], "data": {"name": "b"}},
        {"op": "delete", "collection": table, "id": first["id"]},
    ])["results"]  # fmt: skip
    assert [r["id"] for r in batch] == [id_text(second["id"]), id_text(first["id"])]
    assert batch[1]["deleted"] is True
    deleted = run(service, "data/delete", handle, collection=table, id=second["id"])
    assert deleted["deleted"] is True
    assert run(service, "data/count", handle, collection=table)["total"] == 0


@pytest.mark.parametrize("table", sorted(SQLITE_TABLES))
def test_sqlite_ids_round_trip(
    service: Service, sqlite_handle: str, table: str, tmp_path: Path
) -> None:
    round_trip(service, sqlite_handle, table, SQLITE_TABLES[table], tmp_path)


def test_sqlite_writes_return_the_row_as_stored(service: Service, sqlite_handle: str) -> None:
    """SQLite 3.40's RETURNING gives an INTEGER PRIMARY KEY after a REAL column back as 3.0: the
    row is selected again, so the result is what a read shows."""
    created = run(service, "data/create", sqlite_handle, collection="ints",
                  data={"r": 0.5, "name": "three", "n": "30"})  # fmt: skip
    assert created["id"] == "3"
    assert created["data"] == {"id": 3, "r": 0.5, "name": "three", "n": 30}
    assert type(created["data"]["id"]) is int and type(created["data"]["n"]) is int
    updated = run(service, "data/update", sqlite_handle, collection="ints", id=3, data={"n": "31"})
    assert updated["data"] == {"id": 3, "r": 0.5, "name": "three", "n": 31}
    batch = run(service, "data/batch", sqlite_handle, operations=[
        {"op": "create", "collection": "ints", "data": {"name": "four"}},
        {"op": "create", "collection": "reals", "id": 4.5, "data": {"name": "4.5"}},
        {"op": "create", "collection": "pairs", "data": {"a": "y", "b": "7", "name": "y7"}},
    ])["results"]  # fmt: skip
    assert [r["id"] for r in batch] == ["4", "4.5", '["y",7]']
    assert run(service, "data/read", sqlite_handle, collection="pairs", id='["y",7]')["found"]
    # Setting a key column to its own value is no change; a new value is refused, nothing written.
    same = run(service, "data/update", sqlite_handle, collection="pairs", id='["y",7]',
               data={"b": 7, "name": "again"})  # fmt: skip
    assert same["data"]["name"] == "again"
    with pytest.raises(InvalidParams, match="key of a record cannot change"):
        run(service, "data/update", sqlite_handle, collection="pairs", id='["y",7]',
            data={"b": 8})  # fmt: skip
    assert run(service, "data/read", sqlite_handle, collection="pairs", id='["y",7]')["found"]


def test_long_ids_are_read_and_written(service: Service, sqlite_handle: str) -> None:
    """A text key longer than a collection's 512 characters is an id like any other; copying it
    into a collection is a clear error naming the row."""
    long_id = "https://example.org/" + "x" * 600
    created = run(service, "data/create", sqlite_handle, collection="texts", id=long_id,
                  data={"name": "long"})  # fmt: skip
    assert created["id"] == long_id
    assert run(service, "data/read", sqlite_handle, collection="texts", id=long_id)["found"]
    run(service, "data/update", sqlite_handle, collection="texts", id=long_id, data={"name": "l"})
    with pytest.raises(InvalidParams, match="at most 512"):
        run(service, "data/create", sqlite_handle, collection="notes", id=long_id, data={})
    with pytest.raises(InvalidParams, match=r'cannot hold the id of row "https://example\.org/xx'):
        service.execute(
            "data/copy",
            {
                "from": {"dbHandle": sqlite_handle, "collection": "texts"},
                "to": {"dbHandle": sqlite_handle, "collection": "notes"},
            },
        )
    assert run(service, "data/delete", sqlite_handle, collection="texts", id=long_id)["deleted"]


def test_a_numeric_id_reaches_collections_as_its_text(service: Service, sqlite_handle: str) -> None:
    run(service, "data/create", sqlite_handle, collection="notes", id=7, data={"t": 1})
    assert run(service, "data/read", sqlite_handle, collection="notes", id="7")["data"]["id"] == "7"
    run(service, "data/create", sqlite_handle, collection="notes", data={"id": 8.0, "t": 2})
    assert run(service, "data/read", sqlite_handle, collection="notes", id=8)["found"]
    with pytest.raises(InvalidParams, match="id"):
        run(service, "data/read", sqlite_handle, collection="notes", id=True)


def test_a_database_that_is_not_writable_is_read_only_for_every_write(tmp_path: Path) -> None:
    """A connection that turns out not to write ("attempt to write a readonly database": here
    ``PRAGMA query_only``, as a file on a read-only mount): create and update are ``read_only``,
    as delete and truncate are, never an internal error."""
    path = tmp_path / "ro.db"
    conn = sqlite3.connect(path)
    conn.executescript(SQLITE_SCHEMA)
    conn.execute("PRAGMA query_only = 1")
    try:
        table = describe(conn, "ints", "table", False)
        writer = ForeignWriter(conn, ForeignReader(table))
        for write in (
            lambda: writer.insert({"name": "x"}),
            lambda: writer.update("1", {"name": "x"}),
            lambda: writer.delete("1"),
            writer.truncate,
        ):
            with pytest.raises(ReadOnly, match="read-only"):
                write()
    finally:
        conn.close()


# -- PostgreSQL ---------------------------------------------------------------------------------------

PG_SCHEMA = """
CREATE TABLE ints (r real, id serial PRIMARY KEY, name text);
CREATE TABLE reals (k double precision PRIMARY KEY, name text);
CREATE TABLE texts (url text PRIMARY KEY, name text);
CREATE TABLE pairs (a text, b integer, name text, PRIMARY KEY (a, b));
CREATE TABLE uuids (u uuid PRIMARY KEY, name text);
CREATE TABLE plain (name text, n integer);
CREATE VIEW named AS SELECT name, n FROM plain;
INSERT INTO ints (r, name) VALUES (1.5, 'one'), (2.5, 'two');
INSERT INTO reals VALUES (2.5, 'two and a half'), (3.0, 'three');
INSERT INTO texts VALUES ('https://example.org/a', 'a'), ('b', 'bee');
INSERT INTO pairs VALUES ('x', 1, 'x1'), ('x', 2, 'x2');
INSERT INTO uuids VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'a'),
                         ('b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12', 'b');
INSERT INTO plain VALUES ('p', 1), ('q', 2);
"""

PG_TABLES = {**SQLITE_TABLES, "uuids": True}


def pg_sql(pg: dict[str, Any], script: str) -> None:
    """Run ``script`` in the test's schema with plain psycopg (not through dbhandles)."""
    from tests.pgserver import run_in_schema

    run_in_schema(pg, script)


@pytest.fixture
def pg(tmp_path: Path) -> dict[str, Any]:
    from tests.pgserver import postgres_config

    config = postgres_config(tmp_path)
    pg_sql(config, PG_SCHEMA)
    return config


@pytest.fixture
def pg_handle(service: Service, pg: dict[str, Any]) -> str:
    return str(service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"])


@pytest.mark.postgres
@pytest.mark.parametrize("table", sorted(PG_TABLES))
def test_postgres_ids_round_trip(
    service: Service, pg_handle: str, table: str, tmp_path: Path
) -> None:
    round_trip(service, pg_handle, table, PG_TABLES[table], tmp_path)


@pytest.mark.postgres
def test_postgres_ids_in_other_spellings(service: Service, pg_handle: str) -> None:
    """A uuid key is found by any spelling PostgreSQL reads (upper case); a serial key's id is a
    number in records and text in results; a float key by its number."""
    upper = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"
    read = run(service, "data/read", pg_handle, collection="uuids", id=upper)
    assert read["found"] and read["data"]["id"] == upper.lower()
    created = run(service, "data/create", pg_handle, collection="ints", data={"name": "three"})
    assert created["id"] == "3" and created["data"]["id"] == 3
    batch = run(service, "data/batch", pg_handle, operations=[
        {"op": "create", "collection": "ints", "data": {"name": "four"}},
        {"op": "update", "collection": "reals", "id": 3.0, "data": {"name": "3"}},
    ])["results"]  # fmt: skip
    assert [r["id"] for r in batch] == ["4", "3"]


@pytest.mark.postgres
def test_postgres_rows_equal_in_every_column_each_have_an_id(
    service: Service, pg: dict[str, Any], pg_handle: str
) -> None:
    """A table without a key (and a view over it) holding equal rows: each has its own id
    (``[..]``, ``[..]#2``, ...), so paging one row at a time never skips one, and each reads."""
    pg_sql(pg, "INSERT INTO plain VALUES ('p', 1), ('p', 1), (NULL, NULL), (NULL, NULL)")
    for table in ("plain", "named"):
        seen: list[Any] = []
        after: Any = None
        while True:
            params: dict[str, Any] = {"collection": table, "limit": 1, "orderBy": "name"}
            if after is not None:
                params["cursor"] = after
            page = run(service, "data/list", pg_handle, **params)
            seen += [item["id"] for item in page["items"]]
            after = page.get("nextCursor")
            if not page["items"] or after is None:
                break
        assert len(seen) == 6 == len(set(seen)), seen
        assert '["p",1]#3' in seen and "[null,null]#2" in seen
        for record_id in seen:
            assert run(service, "data/read", pg_handle, collection=table, id=record_id)["found"]
        assert run(service, "data/count", pg_handle, collection=table)["total"] == 6


def test_sqlite_view_rows_equal_in_every_column_each_have_an_id(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "dups.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE t (name TEXT, n INTEGER); CREATE VIEW v AS SELECT name, n FROM t;"
        "INSERT INTO t VALUES ('p#', 1), ('p#', 1), ('p#', 1), (NULL, NULL), (NULL, NULL), ('q', 2);"
    )
    conn.close()
    handle = str(service.execute("data/open", {"adapter": "sqlite",
                                               "config": {"path": str(path)}})["dbHandle"])  # fmt: skip
    seen: list[Any] = []
    after: Any = None
    while True:
        params: dict[str, Any] = {"collection": "v", "limit": 1, "orderBy": "name"}
        if after is not None:
            params["cursor"] = after
        page = run(service, "data/list", handle, **params)
        seen += [item["id"] for item in page["items"]]
        after = page.get("nextCursor")
        if not page["items"] or after is None:
            break
    assert sorted(seen) == sorted(['["p#",1]', '["p#",1]#2', '["p#",1]#3', "[null,null]",
                                   "[null,null]#2", '["q",2]'])  # fmt: skip
    for record_id in seen:
        assert run(service, "data/read", handle, collection="v", id=record_id)["found"]
    assert not run(service, "data/read", handle, collection="v", id='["p#",1]#4')["found"]
    assert run(service, "data/count", handle, collection="v")["total"] == 6
    assert (
        run(service, "data/count", handle, collection="v", filter={"id": '["p#",1]#2'})["total"]
        == 1
    )
