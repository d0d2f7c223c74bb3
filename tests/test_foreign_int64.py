"""Filters on a 64-bit integer column of a table dbhandles did not create, at both ends of the range.

SQLite's INTEGER and PostgreSQL's ``bigint`` hold -2**63 .. 2**63 - 1. Every one of those is a filter
value (``dbhandles.values.check_scalar``): equality, ranges, ``$in``/``$nin``, ``$ne`` and the
``{field, value}`` cursor find the row that holds it. Just beyond each end (-2**63 - 1, 2**63) a
filter compares by value on PostgreSQL and is ``invalid_filter`` naming the value and the adapter on
SQLite, which cannot compare it exactly there (docs/filters.md "Values").
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.errors import InvalidFilter
from tests.pgserver import postgres_config

LOW, HIGH = -(2**63), 2**63 - 1
#: (id, n): the ends, their neighbours inside the range, zero and a NULL.
ROWS = [(1, LOW), (2, LOW + 1), (3, 0), (4, HIGH - 1), (5, HIGH), (6, None)]

#: (filter on n, ids of the rows it keeps)
CASES: list[tuple[Any, list[int]]] = [
    (LOW, [1]),
    (HIGH, [5]),
    ({"$eq": LOW}, [1]),
    ({"$ne": LOW}, [2, 3, 4, 5, 6]),
    ({"$lte": LOW}, [1]),
    ({"$lt": LOW}, []),
    ({"$gt": LOW}, [2, 3, 4, 5]),
    ({"$gte": LOW}, [1, 2, 3, 4, 5]),
    ({"$gte": HIGH}, [5]),
    ({"$gt": HIGH}, []),
    ({"$lt": HIGH}, [1, 2, 3, 4]),
    ({"$in": [LOW, HIGH]}, [1, 5]),
    ({"$nin": [LOW, HIGH]}, [2, 3, 4, 6]),
    ({"$gt": -9.3e18}, [1, 2, 3, 4, 5]),  # a float below -2**63 orders below every integer
    ({"$lt": 9.3e18}, [1, 2, 3, 4, 5]),
]
BEYOND = [LOW - 1, HIGH + 1, {"$lt": LOW - 1}, {"$in": [1, HIGH + 1]}, {"$gte": 2**64}]


def _sqlite_handle(service: Service, tmp_path: Path) -> str:
    path = tmp_path / "ends.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE ends (id INTEGER PRIMARY KEY, n INTEGER)")
    conn.executemany("INSERT INTO ends VALUES (?, ?)", ROWS)
    conn.commit()
    conn.close()
    opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})
    return str(opened["dbHandle"])


def _postgres_handle(service: Service, tmp_path: Path) -> str:
    pg = postgres_config(tmp_path)
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(pg["schema"])))
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        conn.execute("CREATE TABLE ends (id integer PRIMARY KEY, n bigint)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO ends VALUES (%s, %s)", ROWS)
    opened = service.execute("data/open", {"adapter": "postgres", "config": pg})
    return str(opened["dbHandle"])


@pytest.fixture(
    params=[
        pytest.param(_sqlite_handle, id="sqlite"),
        pytest.param(_postgres_handle, id="postgres", marks=pytest.mark.postgres),
    ]
)
def handle(request: pytest.FixtureRequest, service: Service, tmp_path: Path) -> str:
    opener: Callable[[Service, Path], str] = request.param
    return opener(service, tmp_path)


def _ids(service: Service, handle: str, **params: Any) -> list[int]:
    listed = service.execute(
        "data/list", {"dbHandle": handle, "collection": "ends", "orderBy": "id", **params}
    )
    return [item["id"] for item in listed["items"]]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=repr)
def test_both_ends_of_a_64_bit_column_are_filter_values(
    service: Service, handle: str, condition: Any, expected: list[int]
) -> None:
    assert _ids(service, handle, filter={"n": condition}) == expected
    counted = service.execute(
        "data/count", {"dbHandle": handle, "collection": "ends", "filter": {"n": condition}}
    )
    assert counted["total"] == len(expected)


@pytest.mark.parametrize("condition", BEYOND, ids=repr)
def test_just_beyond_either_end_is_refused_on_a_sqlite_table(
    service: Service, tmp_path: Path, condition: Any
) -> None:
    """SQLite reads an integer past 64 bits in a table's JSON text as the nearest double, so such
    a filter value cannot be compared exactly there: refused, naming the value and the adapter."""
    handle = _sqlite_handle(service, tmp_path)
    with pytest.raises(InvalidFilter) as caught:
        _ids(service, handle, filter={"n": condition})
    assert caught.value.field is not None and caught.value.field.startswith("filter.n")
    assert "lies outside 64 bits; on a sqlite table" in caught.value.message


#: Beyond the range on PostgreSQL, which compares the integer by value (issue 14).
BEYOND_BY_VALUE = [*((c, []) for c in BEYOND), ({"$gt": LOW - 1}, [1, 2, 3, 4, 5]),
                   ({"$lt": 2**64}, [1, 2, 3, 4, 5]), ({"$ne": HIGH + 1}, [1, 2, 3, 4, 5, 6])]  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize(("condition", "expected"), BEYOND_BY_VALUE, ids=repr)
def test_just_beyond_either_end_compares_by_value_on_a_postgres_table(
    service: Service, tmp_path: Path, condition: Any, expected: list[int]
) -> None:
    handle = _postgres_handle(service, tmp_path)
    assert _ids(service, handle, filter={"n": condition}) == expected


def test_the_cursor_form_pages_from_the_lowest_64_bit_integer(
    service: Service, handle: str
) -> None:
    cursor = {"field": "n", "value": LOW, "direction": "after"}
    listed = service.execute(
        "data/list", {"dbHandle": handle, "collection": "ends", "cursor": cursor, "limit": 10}
    )
    assert [item["id"] for item in listed["items"]] == [2, 3, 4, 5]
    cursor = {"field": "n", "value": HIGH, "direction": "before"}
    listed = service.execute(
        "data/list", {"dbHandle": handle, "collection": "ends", "cursor": cursor, "limit": 10}
    )
    # Descending, null (the lowest of the canonical order) comes after every number.
    assert [item["id"] for item in listed["items"]] == [4, 3, 2, 1, 6]
