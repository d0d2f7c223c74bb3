"""Filters on a two-part path ``f.k`` read ``f`` once (``SqliteDialect.rows_of``) where no index
names the path, keep the branches an index serves where one does, and give the oracle's answers
either way, for every shape ``f`` and ``f.k`` can take."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles.adapters.base import Query, Record
from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.evaluate import matches
from dbhandles.filters import parse_filter

COLLECTION = "chats"
STAMP = "2024-01-01T00:00:00.000Z"

#: Every shape of ``messages`` and of ``messages.role``: arrays of objects, scalars, arrays and
#: nulls; an object whose ``role`` is a scalar, an array, null or missing; a scalar; null; missing.
SHAPES: list[Any] = [
    [{"role": "system"}, {"role": "user", "content": "handle registry"}],
    [{"role": "tool"}, "user", ["user"], None, 3],
    [{"role": ["user", "tool"]}, {"role": [["user"]]}],
    [{"role": None}, {"content": "x"}],
    [[{"role": "user"}]],
    [],
    {"role": "user", "content": "sqlite adapter"},
    {"role": ["assistant", "user"]},
    {"role": [["user"]]},
    {"role": None},
    {"role": {"user": 1}},
    {"content": "y"},
    {"0": {"role": "user"}},
    "user",
    3,
    None,
    "missing",
]

FILTERS: list[dict[str, Any]] = [
    {"messages.role": "user"},
    {"messages.role": "nobody"},
    {"messages.role": None},
    {"messages.role": {"$ne": "user"}},
    {"messages.role": {"$ne": None}},
    {"messages.role": {"$in": ["tool", None]}},
    {"messages.role": {"$nin": ["user", "tool"]}},
    {"messages.role": {"$exists": True}},
    {"messages.role": {"$exists": False}},
    {"messages.role": {"$gt": "t"}},
    {"messages.role": {"$regex": "^us"}},
    {"messages.role": {"$size": 2}},
    {"messages.role": {"$elemMatch": {"$eq": "user"}}},
    {"messages.role": {"$contains": "ser"}},
    {"messages.role": {"$not": {"$eq": "user"}}},
    {"messages.content": {"$regex": "handle registry|sqlite adapter"}},
    {"messages.role": "user", "messages.content": {"$exists": True}},
    {"$or": [{"messages.role": "tool"}, {"messages.content": "y"}]},
]


def _records() -> list[Record]:
    rows: list[Record] = []
    for i, shape in enumerate(SHAPES):
        fields = {} if shape == "missing" else {"messages": shape}
        rows.append(
            {"id": f"r{i:02d}", **fields, "createdAt": STAMP, "updatedAt": STAMP, "version": 1}
        )
    return rows


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[SqliteAdapter]:
    config = {"path": str(tmp_path / "chats.db"), "mode": "create"}
    opened = SqliteAdapter(SqliteAdapter.prepare(SqliteAdapter.parse_config(config)))
    with opened.session(write=True) as session:
        session.insert_many(COLLECTION, _records())
    yield opened
    opened.close()


def _answers(adapter: SqliteAdapter, spec: dict[str, Any]) -> tuple[list[str], int]:
    node = parse_filter(spec)
    with adapter.session() as session:
        found = [row["id"] for row in session.find(COLLECTION, Query(node, ()))]
        return found, session.count(COLLECTION, node)


def _expected(spec: dict[str, Any]) -> list[str]:
    node = parse_filter(spec)
    return [row["id"] for row in _records() if matches(node, row)]


def _sql(adapter: SqliteAdapter, spec: dict[str, Any]) -> str:
    """The SQL ``find`` and ``count`` run for ``spec`` in a new session."""
    with adapter.session() as session:
        return adapter.where(parse_filter(spec), session.catalog).sql  # type: ignore[attr-defined]


def _plan(adapter: SqliteAdapter, spec: dict[str, Any]) -> str:
    with adapter.session() as session:
        where = adapter.where(parse_filter(spec), session.catalog)  # type: ignore[attr-defined]
        rows = session.conn.execute(  # type: ignore[attr-defined]
            f'EXPLAIN QUERY PLAN SELECT id FROM "{COLLECTION}" WHERE {where.sql}', where.params
        ).fetchall()
    return " | ".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("spec", FILTERS, ids=[str(f) for f in FILTERS])
def test_one_pass_matches_the_oracle(adapter: SqliteAdapter, spec: dict[str, Any]) -> None:
    found, count = _answers(adapter, spec)
    assert found == _expected(spec)
    assert count == len(found)


def test_without_an_index_the_field_is_read_once(adapter: SqliteAdapter) -> None:
    sql = _sql(adapter, {"messages.role": "user"})
    # One json_each over the field, its rows' keys telling its shape; no json_type of it first.
    assert sql.count("json_each(data, '$.messages')") == 1
    assert "typeof(_a0_1.key) = 'integer'" in sql
    assert sql.index("json_each(data") < sql.index("json_type(data, '$.messages')")


@pytest.mark.parametrize("spec", FILTERS, ids=[str(f) for f in FILTERS])
def test_an_indexed_path_keeps_its_branches_and_answers(
    adapter: SqliteAdapter, spec: dict[str, Any]
) -> None:
    adapter.ensure_indexes(COLLECTION, [("messages", "role"), ("messages", "content")])
    found, count = _answers(adapter, spec)
    assert found == _expected(spec)
    assert count == len(found)
    sql = _sql(adapter, spec)
    assert "typeof(_a0_1.key)" not in sql


def test_an_index_keeps_serving_a_path_through_arrays(adapter: SqliteAdapter) -> None:
    """The index on ``messages.role`` still answers ``{"messages.role": ...}`` (every branch of the
    ``OR`` names it); a path no index names is read in one pass."""
    adapter.ensure_indexes(COLLECTION, [("messages", "role")])
    assert "_dbh_ix:chats:messages.role" in _plan(adapter, {"messages.role": "user"})
    other = _sql(adapter, {"messages.content": "x"})
    assert "typeof(_a0_1.key) = 'integer'" in other


def test_an_index_another_tool_made_is_seen(adapter: SqliteAdapter, tmp_path: Path) -> None:
    """An index made by another connection (any name) on the same expression: the next session's
    catalog sees the schema change and the filter keeps the branches that index serves."""
    assert "typeof(_a0_1.key)" in _sql(adapter, {"messages.role": "user"})
    conn = sqlite3.connect(tmp_path / "chats.db", isolation_level=None)
    conn.execute(f"CREATE INDEX by_role ON {COLLECTION} (json_extract(data, '$.messages.role'))")
    conn.close()
    assert "by_role" in _plan(adapter, {"messages.role": "user"})
    found, _ = _answers(adapter, {"messages.role": "user"})
    assert found == _expected({"messages.role": "user"})
