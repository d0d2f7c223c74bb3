"""The shape of SQLite's ``data/count`` statement (``adapters/sql_facets.py``): what made it slow must
not come back. Its answers are the contract suite's (``tests/contract/test_counting.py``).

A subquery SQLite materializes into a temporary table, instead of streaming it as a co-routine,
copies every record's columns once more: that was a third of the time of a count. SQLite streams a
subquery only when the next join is a ``CROSS JOIN``, so every level of the statement must keep
streaming, whatever the paths and the filter.
"""

from __future__ import annotations

import sqlite3

import pytest

from dbhandles.adapters.sql_compile import SqlCompiler
from dbhandles.adapters.sql_facets import sqlite_group_count, sqlite_group_overflow
from dbhandles.adapters.sqlite_compile import SqliteDialect
from dbhandles.filters import parse_filter

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
        assert not [step for step in plan if step.startswith("MATERIALIZE")], plan
        conn.execute(sql, statement.params).fetchall()  # and it runs
    conn.close()
