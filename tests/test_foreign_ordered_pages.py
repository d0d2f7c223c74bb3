"""Ordered pages of an SQLite table dbhandles did not create use the column's index (issue 15,
outside tester's finding 4): ordering by an indexed column that holds one kind of value in every
row (numbers, or text that cannot be JSON; no NULL) is by the bare column, so SQLite walks the
index instead of sorting the table for every page (``sqlite_foreign_sql.fixed_ranks``).

Checked on the plan (``EXPLAIN QUERY PLAN`` of the statement ``ForeignReader.find`` runs: the
index, no ``TEMP B-TREE FOR ORDER BY``), for first and keyset pages, ascending and descending,
and on the rows: the same as the type-strict order ``evaluate.sort_records`` gives. A column
holding a NULL, a mix of kinds or JSON text keeps the type-strict SQL (and its sort).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters.base import Query
from dbhandles.adapters.sqlite_foreign import ForeignReader
from dbhandles.adapters.sqlite_foreign_schema import describe
from dbhandles.adapters.sqlite_session import SqliteSession
from dbhandles.adapters.sqlite_values import register
from dbhandles.evaluate import position_of, sort_records
from dbhandles.filters import SortKey

SCHEMA = """
CREATE TABLE events (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, name TEXT, score REAL);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_name ON events (name);
CREATE INDEX events_score ON events (score);
CREATE TABLE commits (sha TEXT PRIMARY KEY, n INTEGER);
"""


@pytest.fixture
def conn(tmp_path: Path) -> Any:
    db = sqlite3.connect(tmp_path / "plan.db")
    register(db)  # as every connection the adapter opens (its JSON text test)
    db.executescript(SCHEMA)
    db.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?)",
        [(i, (i * 7919) % 1000, f"n{(i * 31) % 97:03d}", i / 3) for i in range(1, 2001)],
    )
    db.executemany("INSERT INTO commits VALUES (?, ?)",
                   [(f"{(i * 2654435761) % 2**32:08x}", i) for i in range(500)])  # fmt: skip
    db.commit()
    yield db
    db.close()


def plan_of(conn: sqlite3.Connection, table: str, query: Query) -> tuple[list[Any], str]:
    """The records ``find`` returns and the query plan of the statement it ran."""
    reader = ForeignReader(describe(conn, table, "table", False))
    ran: list[str] = []
    conn.set_trace_callback(ran.append)
    try:
        records = reader.find(conn, query, {})
    finally:
        conn.set_trace_callback(None)
    statement = next(s for s in reversed(ran) if "ORDER BY" in s)
    plan = " | ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
    return records, plan


def every(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    reader = ForeignReader(describe(conn, table, "table", False))
    return reader.find(conn, Query(limit=None), {})


@pytest.mark.parametrize(("table", "field", "index"), [
    ("events", "ts", "events_ts"), ("events", "name", "events_name"),
    ("events", "score", "events_score"), ("commits", "id", "sqlite_autoindex_commits_1"),
])  # fmt: skip
@pytest.mark.parametrize("descending", [False, True])
def test_ordered_pages_walk_the_index(
    conn: sqlite3.Connection, table: str, field: str, index: str, descending: bool
) -> None:
    order = (SortKey((field,), descending), SortKey(("id",)))
    expected = sort_records(every(conn, table), order)
    first, plan = plan_of(conn, table, Query(order=order, limit=50))
    assert index in plan and "TEMP B-TREE FOR ORDER BY" not in plan, plan
    assert first == expected[:50]
    after = position_of(first[-1], order)
    page, plan = plan_of(conn, table, Query(order=order, limit=50, after=after))
    assert index in plan and "TEMP B-TREE FOR ORDER BY" not in plan, plan
    assert page == expected[50:100]


@pytest.mark.parametrize(
    "spoiler", ["UPDATE events SET name = NULL WHERE id = 5", "UPDATE events SET name = X'07' WHERE id = 5",
                "UPDATE events SET name = '[1, 2]' WHERE id = 5"],
)  # fmt: skip
def test_a_column_of_mixed_kinds_keeps_the_type_strict_order(
    conn: sqlite3.Connection, spoiler: str
) -> None:
    conn.execute(spoiler)
    order = (SortKey(("name",), True), SortKey(("id",)))
    expected = sort_records(every(conn, "events"), order)
    first, plan = plan_of(conn, "events", Query(order=order, limit=40))
    assert "TEMP B-TREE FOR ORDER BY" in plan
    assert first == expected[:40]
    page, _ = plan_of(conn, "events", Query(order=order, limit=40,
                                            after=position_of(first[-1], order)))  # fmt: skip
    assert page == expected[40:80]


def test_an_index_recreated_by_another_connection_is_seen_at_the_next_page(
    service: Service, tmp_path: Path
) -> None:
    """Which columns lead a BINARY index is read once per schema version (``binary_leading``):
    an index another connection drops and creates again in NOCASE collation (or back) is seen
    by the next listing of the same handle, whose order stays type-strict (code point) either way."""
    path = tmp_path / "coll.db"
    other = sqlite3.connect(path)
    other.executescript("CREATE TABLE ev (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
                        "CREATE INDEX ev_name ON ev (name);")  # fmt: skip
    other.executemany("INSERT INTO ev VALUES (?, ?)", enumerate(["b", "B", "a", "C", "c"], 1))
    other.commit()
    handle = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})[
        "dbHandle"]  # fmt: skip
    ran: list[str] = []

    def listed() -> tuple[list[str], str]:
        ran.clear()
        with service.registry.lease(handle) as (_, adapter), adapter.session() as session:
            assert isinstance(session, SqliteSession)
            session.conn.set_trace_callback(ran.append)
        try:
            items = service.execute("data/list", {"dbHandle": handle, "collection": "ev",
                                                  "orderBy": "name", "limit": 10})["items"]  # fmt: skip
        finally:
            with service.registry.lease(handle) as (_, adapter), adapter.session() as session:
                assert isinstance(session, SqliteSession)
                session.conn.set_trace_callback(None)
        page = next(s for s in ran if s.startswith('SELECT "id", "name"'))
        return [i["name"] for i in items], page

    bare = 'ORDER BY "name" COLLATE BINARY ASC'
    names, page = listed()
    assert names == ["B", "C", "a", "b", "c"] and bare in page
    other.executescript("DROP INDEX ev_name; CREATE INDEX ev_name ON ev (name COLLATE NOCASE);")
    names, page = listed()
    assert names == ["B", "C", "a", "b", "c"] and bare not in page  # no index serves it now
    other.executescript("DROP INDEX ev_name; CREATE INDEX ev_name ON ev (name);")
    names, page = listed()
    assert names == ["B", "C", "a", "b", "c"] and bare in page
    other.close()
