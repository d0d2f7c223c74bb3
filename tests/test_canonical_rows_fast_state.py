"""Issue #14: rows dbhandles wrote are canonical, so a SQLite collection whose rows are all its own
is filtered, counted, faceted and listed with no per-row test (``sqlite_records.foreign_rows``).
That fast state must end the moment another tool writes a row while the handle stays open: the
row is then read exactly as docs/filters.md "Values" says, whatever was listed before."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters.sql_compile import Fragment
from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.adapters.sqlite_records import foreign_rows, read_rows

#: A timestamp as dbhandles writes one (a row with another is unreadable: round 20).
STAMP = "2026-01-01T00:00:00.000Z"

#: What another tool writes: an escaped key, a key twice (the first wins), U+0000 in a string.
#: Another tool's spelling (escaped key letters, spaces): read in full, though not canonical. A
#: key twice or U+0000 would make the row unreadable (tests/test_foreign_rows_round16.py).
FOREIGN = '{"\\u006c\\u0061bel": "b", "n": 5, "t": "x"}'


def _create(service: Service, path: Path) -> str:
    db = str(service.execute("data/open", {"adapter": "sqlite",
                                           "config": {"path": str(path), "mode": "create"}})["dbHandle"])  # fmt: skip
    for i in range(3):
        service.execute("data/create", {"dbHandle": db, "collection": "c", "id": f"r{i}",
                                        "data": {"label": "a", "n": i}})  # fmt: skip
    return db


def _ask(service: Service, db: str, command: str, **params: Any) -> Any:
    return service.execute(command, {"dbHandle": db, "collection": "c", **params})


def test_a_foreign_write_after_the_fast_state_is_read_exactly(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "d.sqlite"
    db = _create(service, path)
    # The fast state: every row is dbhandles', queried through the open handle.
    assert _ask(service, db, "data/count", filter={"label": "a"})["total"] == 3
    assert _ask(service, db, "data/list", filter={"n": 5})["items"] == []
    with sqlite3.connect(path) as conn:  # another tool, while the handle is open
        conn.execute("UPDATE c SET data = ? WHERE id = 'r1'", (FOREIGN,))
    conn.close()
    listed = _ask(service, db, "data/list", filter={"label": "b"})
    assert [(r["id"], r["label"], r["n"], r["t"]) for r in listed["items"]] == [("r1", "b", 5, "x")]
    assert listed["count"] == 1
    assert _ask(service, db, "data/count", filter={"n": 5})["total"] == 1
    assert _ask(service, db, "data/count", filter={"n": 6})["total"] == 0
    assert _ask(service, db, "data/count", filter={"t": "x"})["total"] == 1
    groups = _ask(service, db, "data/count", groupBy=["label"])["groups"]
    assert {g["key"]["label"]: g["count"] for g in groups} == {"a": 2, "b": 1}
    by_label = _ask(service, db, "data/list", orderBy=["-label", "id"])["items"]
    assert [r["id"] for r in by_label] == ["r1", "r0", "r2"]
    assert _ask(service, db, "data/read", id="r1")["data"]["n"] == 5
    # dbhandles writes the row again: canonical once more, read as written.
    _ask(service, db, "data/update", id="r1", data={"label": "c", "n": 7})
    assert _ask(service, db, "data/count", filter={"label": "c"})["total"] == 1


def _adapter(path: Path) -> SqliteAdapter:
    config = {"path": str(path), "mode": "create"}
    return SqliteAdapter(SqliteAdapter.prepare(SqliteAdapter.parse_config(config)))


def test_only_the_rows_another_tool_wrote_are_named(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    adapter = _adapter(path)
    adapter.connect()
    try:
        with adapter.session(write=True) as session:
            for i in range(3):
                session.insert("c", {"id": f"r{i}", "n": i, "t": "\x01",
                                     "createdAt": STAMP, "updatedAt": STAMP, "version": 1})  # fmt: skip
        conn, catalog = adapter._conn, adapter._catalog
        assert conn is not None and catalog is not None
        # dbhandles' own text with an escape (a control character) is canonical: not named.
        assert foreign_rows(conn, catalog, '"c"').rowids == ()
        with sqlite3.connect(path) as other:
            other.execute("UPDATE c SET data = '{\"n\": 1, \"n\": 2}' WHERE id = 'r2'")
        other.close()
        found = foreign_rows(conn, catalog, '"c"')
        assert found.ids == frozenset({"r2"}) and len(found.rowids or ()) == 1
    finally:
        adapter.close()


def test_a_commit_while_a_query_ran_runs_it_again(tmp_path: Path) -> None:
    """Another tool's commit between ``foreign_rows`` and the query's snapshot: the fast answer is
    not trusted, the query runs again with the row named."""
    path = tmp_path / "d.sqlite"
    adapter = _adapter(path)
    adapter.connect()
    try:
        with adapter.session(write=True) as session:
            session.insert("c", {"id": "r0", "n": 1, "createdAt": STAMP, "updatedAt": STAMP,
                                 "version": 1})  # fmt: skip
        conn, catalog = adapter._conn, adapter._catalog
        assert conn is not None and catalog is not None
        tests: list[str] = []

        def run(test: Fragment) -> list[Any]:
            tests.append(test.sql)
            if len(tests) == 1:
                with sqlite3.connect(path) as other:
                    other.execute("UPDATE c SET data = '{\"\\u006e\": 2}'")
                other.close()
            sql = f"SELECT json_extract(data, '$.n') FROM c WHERE {test.sql}"
            return conn.execute(sql, test.params).fetchall()

        where = Fragment("1")
        rows, known = read_rows(conn, catalog, '"c"', (where, where), False, run)
        assert tests[0] == "1" and len(tests) == 2 and "rowid IN" in tests[1]
        assert known is not None and known.ids == frozenset({"r0"})
        assert len(rows) == 1  # readable: the canonical branch judged it
    finally:
        adapter.close()


def test_counts_count_exactly_the_rows_a_listing_returns(service: Service, tmp_path: Path) -> None:
    """One row another tool wrote as no JSON (``{n:1}``) among 3: every count says 2, as the
    listing shows, and the listing and the schema say one row was left out."""
    path = tmp_path / "d.sqlite"
    db = _create(service, path)
    assert _ask(service, db, "data/list")["unreadable"] == 0
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE c SET data = '{n:1}' WHERE id = 'r1'")
    conn.close()
    for door in (service, Service(home=tmp_path / "fresh")):  # the open handle, a fresh one
        h = db if door is service else _open_plain(door, path)
        listed = _ask(door, h, "data/list")
        assert [r["id"] for r in listed["items"]] == ["r0", "r2"]
        assert listed["count"] == 2 and listed["unreadable"] == 1
        assert _ask(door, h, "data/list", skipCount=True)["unreadable"] is None
        assert _ask(door, h, "data/count")["total"] == 2
        assert _ask(door, h, "data/count", filter={"label": "a"})["total"] == 2
        opened = _ask(door, h, "data/query-open", pageSize=1)
        assert opened["totalCount"] == 2
        schema = _ask(door, h, "data/schema")
        assert schema["recordCount"] == 2 and schema["unreadable"] == 1
        whole = door.execute("data/schema", {"dbHandle": h})["collections"]
        assert [(c["recordCount"], c["unreadable"]) for c in whole] == [(2, 1)]
        if door is not service:
            door.close()


def test_a_row_filtered_handle_is_not_told_of_unreadable_rows(
    service: Service, tmp_path: Path
) -> None:
    path = tmp_path / "d.sqlite"
    db = _create(service, path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE c SET data = '{n:1}' WHERE id = 'r1'")
    conn.close()
    limited = str(service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)},
                                                "permissions": {"rowFilter": {"label": "a"}}})["dbHandle"])  # fmt: skip
    listed = _ask(service, limited, "data/list")
    assert listed["count"] == 2 and listed["unreadable"] is None
    assert _ask(service, limited, "data/schema")["unreadable"] is None
    assert _ask(service, db, "data/list")["unreadable"] == 1


def _open_plain(service: Service, path: Path) -> str:
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})
    return str(opened["dbHandle"])


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_a_trigger_writing_inside_our_own_write_ends_the_fast_state(
    service: Service, tmp_path: Path, journal: str
) -> None:
    """Another tool's trigger stores text that is not canonical inside dbhandles' own insert. On a
    rollback-journal file reads share the writer's connection, whose ``data_version`` never moves
    for its own commits: the connection's own changes end the fast state once the schema holds a
    trigger that may write (outside check, issue 14 round 6)."""
    path = tmp_path / "d.sqlite"
    db = _create(service, path)
    service.execute("data/close", {"dbHandle": db})
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.execute(  # an escaped key (read in full, decoded) and a key written twice (unreadable)
            "CREATE TRIGGER tr AFTER INSERT ON c WHEN new.id LIKE 'evil%' BEGIN "
            """UPDATE c SET data = CASE new.id WHEN 'evil1' THEN '{"\u006cabel": "secret", "n": 9}' """
            """ELSE '{"label": "a", "label": "b"}' END WHERE rowid = new.rowid; END"""
        )
    conn.close()
    db = _open_plain(service, path)
    limited = str(service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)},
                                                "permissions": {"rowFilter": {"label": "a"}}})["dbHandle"])  # fmt: skip
    # The fast state, on both handles, before the writes.
    assert _ask(service, db, "data/count", filter={"label": "a"})["total"] == 3
    assert _ask(service, limited, "data/list")["count"] == 3
    _ask(service, db, "data/create", id="evil1", data={"label": "a"})
    assert _ask(service, db, "data/read", id="evil1")["data"]["label"] == "secret"
    assert _ask(service, db, "data/count", filter={"label": "secret"})["total"] == 1
    assert _ask(service, db, "data/count", filter={"label": "a"})["total"] == 3
    assert [r["id"] for r in _ask(service, limited, "data/list")["items"]] == ["r0", "r1", "r2"]
    assert _ask(service, limited, "data/count", filter={"n": 9})["total"] == 0
    _ask(service, db, "data/create", id="evil2", data={"label": "a"})
    listed = _ask(service, db, "data/list")
    assert "evil2" not in [r["id"] for r in listed["items"]] and listed["unreadable"] == 1
    assert _ask(service, db, "data/count", filter={"label": "a"})["total"] == 3
    assert _ask(service, limited, "data/list")["count"] == 3
