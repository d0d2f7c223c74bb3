"""The shape of SQLite's ``data/count`` statement (``adapters/sql_facets.py``): what made it slow must
not come back. Its answers are the contract suite's (``tests/contract/test_counting.py``).

A subquery SQLite materializes into a temporary table, instead of streaming it as a co-routine,
copies every record's columns once more: that was a third of the time of a count. SQLite streams a
subquery only when the next join is a ``CROSS JOIN``, so every level of the statement must keep
streaming, whatever the paths and the filter. With several paths each path's values are read on their
own and joined on the record (issue 14: walking one path once per value of another multiplied the
time), so only those small per-record value tables are kept.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from dbhandles.adapters.sql_compile import Fragment, SqlCompiler
from dbhandles.adapters.sql_facets import (
    postgres_group_count,
    sqlite_group_count,
    sqlite_group_overflow,
)
from dbhandles.adapters.sqlite_compile import SqliteDialect
from dbhandles.filters import parse_filter
from tests.pgserver import require_postgres

GROUP_BYS = [
    (("tags",),),
    (("metadata", "topics"),),
    (("messages", "role"),),
    (("a", "b", "c", "d"),),
    (("metadata", "source"), ("metadata", "topics")),
    (("tags",), ("messages", "role"), ("a", "b", "c")),
    (("a",) * 64,),  # once past SQLite's parser stack (tests/contract/test_count_long_paths.py)
    tuple((name,) * 64 for name in "abcd"),
]
RECORDS = [
    '{"tags": ["x", "y"], "metadata": {"topics": ["t"], "source": "s"}, '
    '"messages": [{"role": "user"}, {"role": "assistant"}], "a": [{"b": [{"c": {"d": 1}}]}]}',
    '{"tags": "x", "messages": [], "a": {"b": {"c": [{"d": [2, 3]}]}}}',
    "{}",
]


def _plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


@pytest.mark.parametrize("group_by", GROUP_BYS, ids=repr)
@pytest.mark.parametrize("filter_", [None, {"metadata.source": "s"}], ids=["all", "filtered"])
def test_every_level_of_a_count_streams(
    group_by: tuple[tuple[str, ...], ...], filter_: dict[str, str] | None
) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", enumerate(RECORDS))
    where = SqlCompiler(SqliteDialect()).where(parse_filter(filter_))
    statements = [sqlite_group_count(where, group_by, 100), sqlite_group_overflow(where, group_by)]
    for statement in statements:
        if statement is None:
            continue
        sql = statement.join('"t"')
        plan = _plan(conn, sql, statement.params)
        # With several paths, each path's distinct values per record (``_dbh_p0``...: an id, a
        # value and counts, never a record's text) and each record's number of values (``c0``...)
        # are kept to be joined on the record.
        several = range(len(group_by)) if len(group_by) > 1 else range(0)
        kept = {f"MATERIALIZE _dbh_{t}{i}" for i in several for t in "pc"}
        assert not [s for s in plan if s.startswith("MATERIALIZE") and s not in kept], plan
        conn.execute(sql, statement.params).fetchall()  # and it runs
    conn.close()


# -- several paths: the work of each path alone -------------------------------------------------

#: Two paths of 59 parts, each through four arrays of two elements (16 values per record), as an
#: outside tester sent them: walking the second path once per value of the first took 16 times the
#: work (a ten-second budget passed on 3,000 records, while each path alone took two seconds).
PARTS = 59
ARRAY_LEVELS = (10, 25, 40, 50)


def _deep(name: str, leaf: object) -> object:
    """The value of ``name`` in a record whose path ``name`` * ``PARTS`` reaches ``leaf`` 16 times."""
    value = leaf
    for level in reversed(range(1, PARTS)):
        value = {name: [value, value] if level in ARRAY_LEVELS else value}
    return value


def _deep_records(count: int) -> list[tuple[str, str]]:
    return [
        (f"r{i}", json.dumps({"b": _deep("b", f"v{i % 7}"), "c": _deep("c", i % 5)}))
        for i in range(count)
    ]


DEEP = (("b",) * PARTS, ("c",) * PARTS)


def _sqlite_steps(conn: sqlite3.Connection, group_by: tuple[tuple[str, ...], ...]) -> int:
    """SQLite virtual-machine steps (in hundreds) a count takes: work, not time."""
    ticks = [0]

    def tick() -> int:
        ticks[0] += 1
        return 0

    where = SqlCompiler(SqliteDialect()).where(parse_filter(None))
    statement = sqlite_group_count(where, group_by, 100)
    conn.set_progress_handler(tick, 100)
    try:
        conn.execute(statement.join('"t"'), statement.params).fetchall()
    finally:
        conn.set_progress_handler(None, 0)
    return ticks[0]


def test_several_paths_cost_the_sum_of_each_alone_on_sqlite() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", _deep_records(30))
    alone = sum(_sqlite_steps(conn, (path,)) for path in DEEP)
    together = _sqlite_steps(conn, DEEP)
    conn.close()
    # Measured: 1.02 times the sum (15.7 times before each path was walked on its own).
    assert together <= 1.3 * alone, (together, alone)


def _postgres_rows(cursor: Any, group_by: tuple[tuple[str, ...], ...], table: str) -> int:
    """Rows every ``jsonb_array_elements`` scan of a count gives, summed over its loops (the plan's
    own counts, ``EXPLAIN ANALYZE``): work, not time."""
    statement = postgres_group_count(Fragment("TRUE", ()), group_by, 100)
    cursor.execute(
        "EXPLAIN (ANALYZE, TIMING OFF, COSTS OFF, FORMAT JSON) " + statement.join(table),
        statement.params,
    )
    plan = cursor.fetchone()[0][0]["Plan"]

    def walk(node: dict[str, Any]) -> int:
        own = 0
        if node["Node Type"] == "Function Scan":
            own = int(node["Actual Rows"]) * int(node["Actual Loops"])
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan)


@pytest.mark.postgres
def test_several_paths_cost_the_sum_of_each_alone_on_postgres() -> None:
    import psycopg

    server = require_postgres()
    with psycopg.connect(server.url, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute("SET jit = off")
        cursor.execute("CREATE TEMPORARY TABLE t (id TEXT PRIMARY KEY, data JSONB NOT NULL)")
        cursor.executemany("INSERT INTO t VALUES (%s, %s::jsonb)", _deep_records(30))
        cursor.execute("ANALYZE t")
        alone = sum(_postgres_rows(cursor, (path,), "t") for path in DEEP)
        together = _postgres_rows(cursor, DEEP, "t")
    assert together <= 1.3 * alone, (together, alone)


def test_several_paths_grow_linearly_with_the_records_on_sqlite() -> None:
    """The join on the record is an index search per record: once it compared every record with
    every other (no automatic index on a table expression with a window function), which 3,000
    records hid and 50,000 made minutes."""
    steps = []
    for count in (400, 800):
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
        rows = [(f"r{i}", json.dumps({"a": [i % 3, i % 5], "b": {"c": f"v{i % 4}"}}))
                for i in range(count)]  # fmt: skip
        conn.executemany("INSERT INTO t VALUES (?, ?)", rows)
        steps.append(_sqlite_steps(conn, (("a",), ("b", "c"))))
        conn.close()
    assert steps[1] <= 2.3 * steps[0], steps
