"""Every cursor dbhandles hands out over a table it did not create is taken back and resumes at
exactly the next row (issue #14), whatever the sort keys hold: both ends of the 64-bit range,
unsigned 64-bit numbers in JSON text (SQLite) and ``jsonb`` (PostgreSQL, also as the key), floats
with -0.0 and the infinities, NULL, text that looks like a number, text long enough that the
cursor names its row (``paging.RowPosition``), and blobs. A ``nextCursor`` once ended on an
integer of 2**63 .. 2**64 - 1 that the next call refused (``after[0]: integer ... is outside the
64-bit range``, or ``cursor: malformed position`` for such a key).

The oracle is the unpaged listing: random rows, a random ``orderBy`` and page size, paged by
``data/list``'s ``nextCursor`` and by a query cursor; the pages joined are that listing, nothing
refused, repeated or skipped, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from dbhandles import Service
from tests.pgserver import postgres_config

LOW, HIGH = -(2**63), 2**63 - 1
U64 = 2**64 - 1
_RUNS = itertools.count()
#: Past ``paging.MAX_POSITION_BYTES``: the cursor names its last row instead of its values.
LONG = "y" * 1100

INTS = st.sampled_from([LOW, LOW + 1, -1, 0, 1, HIGH - 1, HIGH]) | st.integers(LOW, HIGH)
FLOATS = st.sampled_from([-0.0, 0.0, 1.5, -1e308, 1e308, float("inf"), float("-inf")]) | st.floats()
TEXTS = st.sampled_from(["", "0", "-0", "01", "1e5", "9223372036854775808", "x", "é", LONG])
#: JSON texts a TEXT column may hold, reached by the dotted path ``j.n``.
JSON_TEXTS = st.sampled_from([
    '{"n": 18446744073709551615}', '{"n": 9223372036854775808}', '{"n": -9223372036854775808}',
    '{"n": 9223372036854775807}', '{"n": -0.0}', '{"n": 1e308}', '{"n": [18446744073709551615, 1]}',
    '{"n": null}', '{"n": "12"}', '{"n": 123456789012345678901234567890}', '{"m": 1}', "[1, 2]",
])  # fmt: skip
BLOBS = st.sampled_from([b"", b"\x00", b"\x00\x01", b"\xff"])
SQLITE_VALUES = st.none() | INTS | FLOATS | TEXTS | BLOBS | JSON_TEXTS

#: (orderBy field, descending): up to two keys, ``id`` among them or not.
SORT_FIELDS = ["a", "b", "j", "j.n", "id"]
ORDERS = st.lists(
    st.tuples(st.sampled_from(SORT_FIELDS), st.booleans()),
    min_size=1,
    max_size=2,
    unique_by=lambda k: k[0],
)
EXAMPLES = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def order_by(keys: list[tuple[str, bool]]) -> list[dict[str, str]]:
    return [{"field": f, "direction": "desc" if d else "asc"} for f, d in keys]


def check_pages(service: Service, db: str, table: str, order: Any, limit: int) -> None:
    """Page ``table`` by ``limit`` both ways; each must give the unpaged listing exactly."""
    base = {"dbHandle": db, "collection": table, "orderBy": order}
    whole = service.execute("data/list", {**base, "limit": 500})
    assert not whole["hasMore"]
    expected = [r["id"] for r in whole["items"]]
    assert len(set(map(repr, expected))) == len(expected) == whole["count"]
    seen: list[Any] = []
    cursor = None
    for _ in range(len(expected) + 1):
        page = service.execute("data/list", {**base, "limit": limit,
                                             **({"cursor": cursor} if cursor else {})})  # fmt: skip
        seen += [r["id"] for r in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == expected, order
    opened = service.execute("data/query-open", {**base, "pageSize": limit})
    queried: list[Any] = []
    for _ in range(len(expected) + 1):
        page = service.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
        queried += [r["id"] for r in page["items"]]
        if not page["hasMore"]:
            break
    service.execute("data/query-close", {"queryHandle": opened["queryHandle"]})
    assert queried == expected, order


# -- SQLite ------------------------------------------------------------------------------------

#: Key shape -> the table (row i of a compound key is (drawn value, i)).
SQLITE_TABLES: dict[str, str] = {
    "integer": "CREATE TABLE t (k INTEGER PRIMARY KEY, a, b, j TEXT)",
    "text": "CREATE TABLE t (k TEXT PRIMARY KEY, a, b, j TEXT)",
    "compound": "CREATE TABLE t (k, k2 INTEGER, a, b, j TEXT, PRIMARY KEY (k, k2)) WITHOUT ROWID",
    "rowid": "CREATE TABLE t (k, a, b, j TEXT)",
    "real": "CREATE TABLE t (k REAL PRIMARY KEY, a, b, j TEXT)",
}
SQLITE_KEYS: dict[str, st.SearchStrategy[Any]] = {
    "integer": INTS,
    "text": TEXTS | st.text(max_size=3),
    "compound": INTS | TEXTS | BLOBS,
    "rowid": SQLITE_VALUES,
    # Not an infinity: a REAL key holding one is served as ``id: null`` (JSON has no infinity),
    # so its rows share an id; left open (the report of issue #14's cursor round).
    "real": st.floats(allow_infinity=False) | st.sampled_from([-0.0, 5e-324, 1e308, -1e308]),
}


def sqlite_rows(shape: str) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    row = st.tuples(SQLITE_KEYS[shape], SQLITE_VALUES, SQLITE_VALUES | INTS, JSON_TEXTS | st.none())
    return st.lists(row, min_size=1, max_size=9, unique_by=lambda r: (type(r[0]), r[0]))


@pytest.mark.parametrize("shape", list(SQLITE_TABLES))
def test_sqlite_pages_of_extreme_values_are_the_unpaged_listing(
    service: Service, tmp_path: Path, shape: str
) -> None:
    @EXAMPLES
    @given(rows=sqlite_rows(shape), keys=ORDERS, limit=st.integers(1, 3))
    def run(rows: list[tuple[Any, ...]], keys: list[tuple[str, bool]], limit: int) -> None:
        path = tmp_path / f"t{next(_RUNS)}.db"
        conn = sqlite3.connect(path)
        try:
            conn.execute(SQLITE_TABLES[shape])
            if shape == "compound":
                conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                                 [(k, i, a, b, j) for i, (k, a, b, j) in enumerate(rows)])  # fmt: skip
            else:
                conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
            conn.commit()
        finally:
            conn.close()
        opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})
        db = opened["dbHandle"]
        try:
            check_pages(service, db, "t", order_by(keys), limit)
        finally:
            service.execute("data/close", {"dbHandle": db})

    run()


def test_a_sqlite_cursor_past_an_unsigned_64_bit_json_number_goes_on(
    service: Service, tmp_path: Path
) -> None:
    """The case found first: ``j.n`` sorted, a page ending on 18446744073709551615."""
    path = tmp_path / "u64.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, a, b, j TEXT)")
    texts = ['{"n": 18446744073709551615}', '{"n": -9223372036854775808}', '{"n": 1}', '{"n": 2}']
    conn.executemany("INSERT INTO t (k, j) VALUES (?, ?)", list(enumerate(texts)))
    conn.commit()
    conn.close()
    db = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}})[
        "dbHandle"
    ]
    for direction in ("asc", "desc"):
        check_pages(service, db, "t", [{"field": "j.n", "direction": direction}], 1)


# -- PostgreSQL --------------------------------------------------------------------------------

PG_KEYS: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "bigint": ("bigint", INTS),
    "text": ("text", st.sampled_from(["", "0", "01", "1e5", "x", LONG])),
    "jsonb": (
        "jsonb",
        st.sampled_from([U64, 2**63, LOW, HIGH, 0, -1, 1.5, "x", "18446744073709551615"]),
    ),
    "numeric": ("numeric", st.sampled_from([U64, LOW, 0, 1.5, 10**25, -(10**20)])),
}
PG_JSON = st.sampled_from([U64, 2**63, LOW, HIGH, -0.0, 1e308, None, "12", [U64, 1], {"n": U64},
                           {"n": LOW}, {"n": "x"}, {"m": 1}, 123456789012345678901234567890])  # fmt: skip


def pg_rows(key: st.SearchStrategy[Any]) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    row = st.tuples(key, st.none() | INTS, st.none() | FLOATS, st.none() | TEXTS,
                    st.none() | st.builds(Jsonb, PG_JSON), st.none() | BLOBS)  # fmt: skip
    return st.lists(row, min_size=1, max_size=8, unique_by=lambda r: (type(r[0]), r[0]))


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[tuple[dict[str, Any], psycopg.Connection[Any]]]:
    config = postgres_config(tmp_path)
    schema = sql.Identifier(config["schema"])
    with psycopg.connect(config["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        conn.execute(sql.SQL("SET search_path = {}").format(schema))
        yield {k: v for k, v in config.items() if k != "mode"}, conn
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))


@pytest.mark.postgres
@pytest.mark.parametrize("shape", list(PG_KEYS))
def test_postgres_pages_of_extreme_values_are_the_unpaged_listing(
    service: Service, pg: tuple[dict[str, Any], psycopg.Connection[Any]], shape: str
) -> None:
    config, conn = pg
    key_type, keys_of = PG_KEYS[shape]
    pg_fields = ["a", "f", "s", "j", "j.n", "b", "id"]
    pg_orders = st.lists(st.tuples(st.sampled_from(pg_fields), st.booleans()),
                         min_size=1, max_size=2, unique_by=lambda k: k[0])  # fmt: skip

    @EXAMPLES
    @given(rows=pg_rows(keys_of), keys=pg_orders, limit=st.integers(1, 3))
    def run(rows: list[tuple[Any, ...]], keys: list[tuple[str, bool]], limit: int) -> None:
        if shape == "jsonb":
            rows = [(Jsonb(r[0]), *r[1:]) for r in rows]
        table = f"t{next(_RUNS)}"
        name = sql.Identifier(table)
        conn.execute(sql.SQL("CREATE TABLE {} (k {} PRIMARY KEY, a bigint, f float8, s text, "
                             "j jsonb, b bytea)").format(name, sql.SQL(key_type)))  # fmt: skip
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s)").format(name), rows
            )
        db = service.execute("data/open", {"adapter": "postgres", "config": config})["dbHandle"]
        try:
            check_pages(service, db, table, order_by(keys), limit)
        finally:
            service.execute("data/close", {"dbHandle": db})
            conn.execute(sql.SQL("DROP TABLE {}").format(name))

    run()


@pytest.mark.postgres
def test_a_postgres_cursor_naming_a_jsonb_key_past_64_bits_or_a_float_key_goes_on(
    service: Service, pg: tuple[dict[str, Any], psycopg.Connection[Any]]
) -> None:
    """Sort values too long to carry make the cursor name its last row's id: the number
    18446744073709551615 (named by its text, and not confused with the text key of the same
    digits) and 1.5 (a float id, once ``malformed position``)."""
    config, conn = pg
    conn.execute("CREATE TABLE w (k jsonb PRIMARY KEY, s text)")
    keys = [U64, str(U64), 2**63, 1.5, "x", LOW]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO w VALUES (%s, %s)",
                        [(Jsonb(k), LONG + str(i % 2)) for i, k in enumerate(keys)])  # fmt: skip
    db = service.execute("data/open", {"adapter": "postgres", "config": config})["dbHandle"]
    for order in (["s"], ["-s"], ["s", "-id"], ["id"], ["-id"]):
        for limit in (1, 2):
            check_pages(service, db, "w", order, limit)
