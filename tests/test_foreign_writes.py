"""Writes to SQLite tables dbhandles did not create (issue 15, step 4): through every write command.

The database is built by the plain ``sqlite3`` module: an integer key with NOT NULL, UNIQUE and a
CHECK, a text key with a FOREIGN KEY, a named CHECK and a ``version`` column, a compound key
(``WITHOUT ROWID``), a table without a key and a view. Every write goes through
``Service.execute`` so permissions, events and the audit log are those of collections.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles.errors import (
    Conflict,
    ConstraintViolation,
    InvalidParams,
    PermissionDenied,
    ReadOnly,
    RecordExists,
)

ADMIN = Context(actor="root", session_id="s-root", is_admin=True, trusted_local=False)

SCHEMA = """
CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                      born INTEGER CHECK (born > 0));
CREATE TABLE books (isbn TEXT PRIMARY KEY, title TEXT NOT NULL,
                    author_id INTEGER REFERENCES authors(id), meta TEXT,
                    price REAL CONSTRAINT price_positive CHECK (price >= 0), owner TEXT,
                    version INTEGER NOT NULL DEFAULT 1, cover BLOB);
CREATE TABLE pairs (a TEXT, b INTEGER, note TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE loose (x, y);
CREATE VIEW titles AS SELECT title FROM books;
INSERT INTO authors (id, name, born) VALUES (1, 'Le Guin', 1929), (2, 'Lem', 1921);
INSERT INTO books (isbn, title, author_id, meta, owner)
    VALUES ('b1', 'The Dispossessed', 1, '{"tags": ["sf", "anarchy"]}', 'alice'),
           ('b2', 'Solaris', 2, NULL, 'bob');
INSERT INTO loose VALUES (1, 2);
"""


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "library.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.close()
    return path


@pytest.fixture
def handle(service: Service, database: Path) -> str:
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(database)}})
    return str(opened["dbHandle"])


def run(service: Service, name: str, handle: str, **params: Any) -> dict[str, Any]:
    return service.execute(name, {"dbHandle": handle, **params})


def rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    """What plain sqlite3 sees in the file (the writes are committed, or not, for real)."""
    conn = sqlite3.connect(database)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def events(service: Service) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    sub = service.events.subscribe("data:*", lambda e: seen.append((e.name, e.payload)))
    try:
        yield seen
    finally:
        sub.close()


def test_create_read_update_delete_through_the_key(
    service: Service, handle: str, database: Path, events: list[tuple[str, dict[str, Any]]]
) -> None:
    created = run(service, "data/create", handle, collection="authors",
                  data={"name": "Tiptree", "born": 1915})  # fmt: skip
    assert created["data"] == {"id": 3, "name": "Tiptree", "born": 1915}  # SQLite picked the id
    assert created["id"] == "3"
    given = run(service, "data/create", handle, collection="authors", id="10",
                data={"name": "Delany"})  # fmt: skip
    assert given["data"] == {"id": 10, "name": "Delany", "born": None}
    read = run(service, "data/read", handle, collection="authors", id="10")
    assert read["found"] and read["data"] == given["data"]
    updated = run(service, "data/update", handle, collection="authors", id="10",
                  data={"born": 1942})  # fmt: skip
    assert updated["data"] == {"id": 10, "name": "Delany", "born": 1942}
    assert updated["previousVersion"] is None and updated["newVersion"] is None
    assert run(service, "data/delete", handle, collection="authors", id="10")["deleted"] is True
    assert run(service, "data/delete", handle, collection="authors", id="10")["found"] is False
    assert rows(database, "SELECT id, name, born FROM authors ORDER BY id") == [
        (1, "Le Guin", 1929), (2, "Lem", 1921), (3, "Tiptree", 1915)
    ]  # fmt: skip
    assert [name for name, _ in events] == [
        "data:authors:created", "data:authors:created", "data:authors:updated",
        "data:authors:deleted",
    ]  # fmt: skip
    assert events[0][1]["record"] == created["data"] and events[0][1]["dbHandle"] == handle


def test_a_field_that_is_not_a_column_is_refused_by_name(
    service: Service, handle: str, database: Path
) -> None:
    with pytest.raises(InvalidParams, match='no column "nickname"') as caught:
        run(service, "data/create", handle, collection="authors",
            data={"name": "X", "nickname": "x"})  # fmt: skip
    assert caught.value.field == "data.nickname"
    with pytest.raises(InvalidParams, match='no column "pages"'):
        run(service, "data/update", handle, collection="books", id="b1", data={"pages": 3})
    with pytest.raises(InvalidParams, match="INTEGER PRIMARY KEY"):
        run(service, "data/create", handle, collection="authors", id="abc", data={"name": "Y"})
    assert rows(database, "SELECT count(*) FROM authors") == [(2,)]


def test_values_are_stored_as_reads_show_them(service: Service, handle: str) -> None:
    data = {"title": "Roadside Picnic", "meta": {"tags": ["sf"], "n": 1}, "price": 2.5,
            "cover": {"$base64": "AAEC"}, "owner": "alice"}  # fmt: skip
    created = run(service, "data/create", handle, collection="books", id="b3", data=data)
    assert created["data"] == {"id": "b3", "isbn": "b3", **data, "author_id": None, "version": 1}
    listed = run(service, "data/list", handle, collection="books", filter={"meta.tags": "sf"})
    assert [r["id"] for r in listed["items"]] == ["b1", "b3"]
    with pytest.raises(InvalidParams, match=r"\$base64"):
        run(service, "data/update", handle, collection="books", id="b3",
            data={"cover": {"$base64": "not base64!"}})  # fmt: skip


def test_text_keys_get_a_new_uuid_and_compound_keys_come_from_their_columns(
    service: Service, handle: str
) -> None:
    book = run(service, "data/create", handle, collection="books", data={"title": "Untitled"})
    assert len(book["id"]) == 36 and book["data"]["isbn"] == book["id"]
    pair = run(service, "data/create", handle, collection="pairs", data={"a": "x", "b": 2})
    assert pair["id"] == '["x",2]' and pair["data"] == {"id": '["x",2]', "a": "x", "b": 2,
                                                         "note": None}  # fmt: skip
    by_id = run(service, "data/create", handle, collection="pairs", id='["y",1]', data={})
    assert by_id["data"]["a"] == "y" and by_id["data"]["b"] == 1
    run(service, "data/update", handle, collection="pairs", id='["x",2]', data={"note": "n"})
    assert (
        run(service, "data/read", handle, collection="pairs", id='["x",2]')["data"]["note"] == "n"
    )
    with pytest.raises(InvalidParams, match="cannot change"):
        run(service, "data/update", handle, collection="pairs", id='["x",2]', data={"b": 5})
    with pytest.raises(InvalidParams, match="compound key"):
        run(service, "data/create", handle, collection="pairs", data={"a": "z"})
    assert run(service, "data/delete", handle, collection="pairs", id='["y",1]')["deleted"]


def _violation(service: Service, handle: str, name: str, **params: Any) -> ConstraintViolation:
    with pytest.raises(ConstraintViolation) as caught:
        run(service, name, handle, **params)
    return caught.value


def test_constraint_violations_name_the_constraint_and_the_field(
    service: Service, handle: str, database: Path
) -> None:
    before = rows(database, "SELECT * FROM books ORDER BY isbn")
    error = _violation(service, handle, "data/create", collection="books", data={"owner": "a"})
    assert (error.code, error.field, error.details["constraint"]) == (
        "constraint_violation", "data.title", "not_null",
    )  # fmt: skip
    assert "NOT NULL" in error.message and '"title"' in error.message
    error = _violation(service, handle, "data/create", collection="authors", data={"name": "Lem"})
    assert (error.field, error.details["constraint"]) == ("data.name", "unique")
    error = _violation(service, handle, "data/update", collection="books", id="b1",
                       data={"price": -1})  # fmt: skip
    assert (error.field, error.details["constraint"], error.details["name"]) == (
        "data.price", "check", "price_positive",
    )  # fmt: skip
    error = _violation(service, handle, "data/create", collection="authors",
                       data={"name": "Z", "born": 0})  # fmt: skip
    assert (error.field, error.details["constraint"]) == ("data.born", "check")
    error = _violation(service, handle, "data/create", collection="books",
                       data={"title": "T", "author_id": 99})  # fmt: skip
    assert (error.field, error.details["constraint"]) == ("data.author_id", "foreign_key")
    error = _violation(service, handle, "data/delete", collection="authors", id="1")
    assert error.details["constraint"] == "foreign_key" and "refer to this record" in error.message
    with pytest.raises(RecordExists):
        run(service, "data/create", handle, collection="books", id="b1", data={"title": "T"})
    assert rows(database, "SELECT * FROM books ORDER BY isbn") == before
    assert rows(database, "SELECT count(*) FROM authors") == [(2,)]


def test_batch_is_all_or_nothing(service: Service, handle: str, database: Path) -> None:
    ops = [
        {"op": "create", "collection": "authors", "data": {"name": "Butler"}},
        {"op": "update", "collection": "books", "id": "b2", "data": {"title": "Solaris (1961)"}},
        {"op": "create", "collection": "books", "data": {"title": "Kindred", "author_id": 77}},
    ]
    with pytest.raises(ConstraintViolation, match=r"operations\[2\].*nothing was applied"):
        run(service, "data/batch", handle, operations=ops)
    assert rows(database, "SELECT count(*) FROM authors") == [(2,)]
    assert rows(database, "SELECT title FROM books WHERE isbn = 'b2'") == [("Solaris",)]
    ops[2]["data"]["author_id"] = 1  # type: ignore[index]
    results = run(service, "data/batch", handle, operations=ops)["results"]
    assert [r["op"] for r in results] == ["create", "update", "create"]
    assert results[1]["newVersion"] == 2 and results[0]["version"] is None


def test_versions_and_expected_version(service: Service, handle: str, database: Path) -> None:
    created = run(service, "data/create", handle, collection="books", id="b9", data={"title": "A"})
    assert created["data"]["version"] == 1
    with pytest.raises(InvalidParams, match="managed by dbhandles"):
        run(service, "data/update", handle, collection="books", id="b9", data={"version": 7})
    updated = run(service, "data/update", handle, collection="books", id="b9",
                  data={"title": "B"}, expectedVersion=1)  # fmt: skip
    assert (updated["previousVersion"], updated["newVersion"]) == (1, 2)
    with pytest.raises(Conflict, match="version 2, not 1"):
        run(service, "data/update", handle, collection="books", id="b9", data={"title": "C"},
            expectedVersion=1)  # fmt: skip
    with pytest.raises(InvalidParams, match="no version column") as caught:
        run(service, "data/update", handle, collection="authors", id="1", data={"born": 1},
            expectedVersion=1)  # fmt: skip
    assert caught.value.field == "expectedVersion"
    assert rows(database, "SELECT title, version FROM books WHERE isbn = 'b9'") == [("B", 2)]


def test_views_and_tables_without_a_key_stay_read_only(service: Service, handle: str) -> None:
    with pytest.raises(ReadOnly, match="a view has no rows of its own"):
        run(service, "data/create", handle, collection="titles", data={"title": "x"})
    with pytest.raises(ReadOnly, match="without a primary key"):
        run(service, "data/update", handle, collection="loose", id="1", data={"x": 5})
    with pytest.raises(ReadOnly, match="without a primary key"):
        run(service, "data/delete", handle, collection="loose", id="1")
    with pytest.raises(ReadOnly, match="view"):
        run(service, "data/truncate", handle, collection="titles")
    assert run(service, "data/list", handle, collection="loose")["items"] == [
        {"id": 1, "x": 1, "y": 2}
    ]


def test_truncate_deletes_every_row(service: Service, handle: str, database: Path) -> None:
    assert run(service, "data/truncate", handle, collection="pairs")["recordsDeleted"] == 0
    run(service, "data/create", handle, collection="pairs", data={"a": "x", "b": 1})
    assert run(service, "data/truncate", handle, collection="pairs")["recordsDeleted"] == 1
    with pytest.raises(ConstraintViolation, match="FOREIGN KEY"):
        run(service, "data/truncate", handle, collection="authors")  # books refer to them
    assert rows(database, "SELECT count(*) FROM authors") == [(2,)]


def test_permissions_cover_tables_and_row_filters_their_columns(
    service: Service, database: Path
) -> None:
    config = {"path": str(database)}
    denied = service.execute("data/open", {"adapter": "sqlite", "config": config,
                                           "permissions": {"deniedCollections": ["authors"]}},
                             context=ADMIN)["dbHandle"]  # fmt: skip
    with pytest.raises(PermissionDenied):
        service.execute("data/create", {"dbHandle": denied, "collection": "authors",
                                        "data": {"name": "N"}}, context=ADMIN)  # fmt: skip
    with pytest.raises(PermissionDenied):
        service.execute("data/list", {"dbHandle": denied, "collection": "authors"}, context=ADMIN)
    mine = service.execute("data/open", {"adapter": "sqlite", "config": config,
                                         "permissions": {"rowFilter": {"owner": "alice"}}},
                           context=ADMIN)["dbHandle"]  # fmt: skip

    def call(name: str, **params: Any) -> dict[str, Any]:
        return service.execute(name, {"dbHandle": mine, **params}, context=ADMIN)

    assert [r["id"] for r in call("data/list", collection="books")["items"]] == ["b1"]
    assert call("data/read", collection="books", id="b2")["found"] is False
    assert call("data/delete", collection="books", id="b2")["found"] is False
    with pytest.raises(PermissionDenied, match="row filter"):
        call("data/create", collection="books", data={"title": "T", "owner": "bob"})
    with pytest.raises(PermissionDenied, match="row filter"):
        call("data/update", collection="books", id="b1", data={"owner": "bob"})
    made = call("data/create", collection="books", data={"title": "Mine", "owner": "alice"})
    assert made["data"]["owner"] == "alice"
    assert rows(database, "SELECT owner, count(*) FROM books GROUP BY owner ORDER BY owner") == [
        ("alice", 2), ("bob", 1)
    ]  # fmt: skip
    audit = service.execute("data/audit", {"actor": "root"}, context=ADMIN)["entries"]
    writes = [(e["command"], e["success"], e["collection"]) for e in audit
              if e["command"] in ("data/create", "data/update")]  # fmt: skip
    assert writes[:3] == [("data/create", True, "books"), ("data/update", False, "books"),
                          ("data/create", False, "books")]  # fmt: skip


def test_readonly_handles_refuse_table_writes(service: Service, database: Path) -> None:
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(database), "mode": "readonly"}}
    )["dbHandle"]
    with pytest.raises(ReadOnly):
        service.execute("data/create", {"dbHandle": handle, "collection": "authors",
                                        "data": {"name": "N"}})  # fmt: skip
    assert rows(database, "SELECT count(*) FROM authors") == [(2,)]
