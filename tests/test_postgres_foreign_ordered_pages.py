"""Ordered pages of a PostgreSQL table dbhandles did not create use its indexes (issue 15, outside
tester's finding 4): on a database whose collation orders text by code point (the suite's server
is initialised with C.UTF-8), a text key is ordered bare, without ``::text`` and ``COLLATE "C"``,
so the primary key serves the default order; a NOT NULL integer or text column with an index
serves ``orderBy`` on it, first and keyset pages alike. Checked on ``EXPLAIN`` of the statement
``PgReader.find`` runs, and on the rows (``evaluate.sort_records``' order).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles.adapters.base import Query
from dbhandles.adapters.postgres_foreign import PgReader
from dbhandles.adapters.postgres_foreign_schema import describe, resolve
from dbhandles.evaluate import position_of, sort_records
from dbhandles.filters import SortKey
from tests.pgserver import postgres_config

pytestmark = pytest.mark.postgres

#: A sort of every row found (an ``Incremental Sort`` only orders ties of the index's key: the
#: ``id`` that breaks them, within a page).
FULL_SORT = re.compile(r"(?<!Incremental )Sort  \(")

SCHEMA = """
CREATE TABLE commits (sha text PRIMARY KEY, n integer NOT NULL, author text NOT NULL, note text);
CREATE INDEX commits_n ON commits (n);
CREATE INDEX commits_author ON commits (author);
INSERT INTO commits SELECT md5(i::text), (i * 7919) % 1000, 'a' || (i % 97), NULL
FROM generate_series(1, 3000) AS i;
ANALYZE commits;
"""


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[psycopg.Connection[Any]]:
    pg = postgres_config(tmp_path)
    with psycopg.connect(pg["url"], autocommit=True) as db:
        db.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(pg["schema"])))
        db.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        db.execute(SCHEMA)
        db.execute("SET enable_seqscan = off")  # a tiny table: make a sort the only alternative
        yield db
        db.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(pg["schema"])))


def reader_of(conn: psycopg.Connection[Any]) -> PgReader:
    schema = conn.execute("SELECT current_schema()").fetchone()[0]  # type: ignore[index]
    relation = resolve(conn, schema, "commits")
    assert relation is not None
    return PgReader(describe(conn, schema, relation))


def find(conn: psycopg.Connection[Any], query: Query) -> tuple[list[Any], str]:
    """The records ``find`` returns and the plan of the statement it ran."""
    ran: list[tuple[Any, tuple[Any, ...]]] = []

    def run(statement: Any, params: tuple[Any, ...], _timed: bool) -> Any:
        ran.append((statement, params))
        return conn.execute(statement, params)

    records = reader_of(conn).find(run, query)
    statement, params = ran[-1]
    plan = conn.execute(sql.SQL("EXPLAIN ") + statement, params).fetchall()
    return records, " | ".join(r[0] for r in plan)


@pytest.mark.parametrize("field", ["id", "n", "author"])
@pytest.mark.parametrize("descending", [False, True])
def test_ordered_pages_use_the_index(
    conn: psycopg.Connection[Any], field: str, descending: bool
) -> None:
    order = (SortKey((field,), descending), SortKey(("id",)))
    if field == "id":
        order = (SortKey(("id",), descending),)
    everything, _ = find(conn, Query(limit=None))
    expected = sort_records(everything, order)
    first, plan = find(conn, Query(order=order, limit=50))
    assert "Index" in plan and not FULL_SORT.search(plan), plan
    assert first == expected[:50]
    page, plan = find(conn, Query(order=order, limit=50, after=position_of(first[-1], order)))
    assert "Index" in plan and not FULL_SORT.search(plan), plan
    assert page == expected[50:100]


def test_a_nullable_column_keeps_the_type_strict_order(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE commits SET note = 'x' || n WHERE n % 3 = 0")
    order = (SortKey(("note",), True), SortKey(("id",)))
    everything, _ = find(conn, Query(limit=None))
    first, _ = find(conn, Query(order=order, limit=40))
    assert first == sort_records(everything, order)[:40]
