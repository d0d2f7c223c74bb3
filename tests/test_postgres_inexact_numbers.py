"""Issue #14: which ``jsonb`` numbers dbhandles' reader keeps exactly, on PostgreSQL.

``postgres_records.inexact_number`` decides in SQL; the oracle here is the reader itself (orjson on
``jsonb``'s text) and the writer (``repr`` of the float read, as dbhandles writes it back). Every
float and every 64-bit int dbhandles writes must stay readable (CI once hid ``7.05109937377281e+16``,
which ``jsonb`` keeps as ``70510993737728100.0``, halfway between two doubles), and a number another
tool wrote that reads back as anything else must not.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from psycopg import sql

from dbhandles.adapters.postgres_compile import dump_document
from dbhandles.adapters.postgres_marks import make_mark, unreadable_call
from dbhandles.adapters.postgres_records import READABLE, inexact_number
from tests.pgserver import postgres_config
from tests.test_filter_equivalence import PROPERTY

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[psycopg.Connection[Any]]:
    config = postgres_config(tmp_path_factory.mktemp("pg-inexact"))
    with psycopg.connect(config["url"], autocommit=True) as connection:
        connection.execute("SET extra_float_digits = 1")  # as the adapter's connections
        # The function of the partial index of unreadable rows (``postgres_marks``), which every
        # check below holds to ``READABLE``; made as on a collection, in a schema of its own.
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(config["schema"])))
        connection.execute(
            sql.SQL(
                "CREATE TABLE {}.marked (id text, data jsonb, created_at text, updated_at text, "
                "version integer)"
            ).format(sql.Identifier(config["schema"]))
        )
        make_mark(connection, config["schema"], "marked")
        connection.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(config["schema"])))
        yield connection


def _readable(conn: psycopg.Connection[Any], document: bytes) -> bool:
    row = conn.execute(
        sql.Composed(
            [
                sql.SQL(f"SELECT {READABLE}, "),
                unreadable_call(_schema(conn)),
                sql.SQL(
                    " FROM (SELECT %s::jsonb AS data, 'r' AS id, 1 AS version, "
                    "'2026-01-01T00:00:00.000Z' AS created_at, "
                    "'2026-01-01T00:00:00.000Z' AS updated_at) AS t"
                ),
            ]
        ),
        (document.decode(),),
    ).fetchone()
    assert row is not None
    assert row[1] is (not row[0]), document  # the index's function is exactly NOT READABLE
    return bool(row[0])


def _schema(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None
    return str(row[0])


def _kept_by_the_reader(text: str, wide_integers: bool = False) -> bool:
    """The oracle: ``jsonb``'s text of the number, read by orjson and written back as dbhandles
    writes it, is the same number (an int within 64 bits, or a float whose ``repr`` is it). With
    ``wide_integers`` (tables dbhandles did not create) an integer is kept as orjson reads it."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    if "." not in text and not wide_integers:  # orjson reads an int past 64 bits as a float
        return isinstance(value, int) and -(2**63) <= value < 2**63
    if isinstance(value, int):
        return True
    return Decimal(repr(value)) == Decimal(text)


@PROPERTY
@given(number=st.floats(allow_nan=False, allow_infinity=False))
@example(number=7.05109937377281e16)
@example(number=1e300)
@example(number=5e-324)
@example(number=0.30000000000000004)
@example(number=-0.0)
@example(number=-1.7976931348623157e308)
@example(number=9.3e18)
def test_every_float_dbhandles_writes_is_readable(
    conn: psycopg.Connection[Any], number: float
) -> None:
    document = dump_document(orjson.dumps({"n": number, "a": [number, {"m": number}]}))
    assert _readable(conn, document), document
    row = conn.execute("SELECT %s::jsonb::text", (document.decode(),)).fetchone()
    assert row is not None and orjson.loads(row[0])["n"] == number


@PROPERTY
@given(number=st.integers(min_value=-(2**63), max_value=2**63 - 1))
@example(number=2**63 - 1)
@example(number=-(2**63))
@example(number=2**53 + 1)
def test_every_64_bit_int_is_readable(conn: psycopg.Connection[Any], number: int) -> None:
    assert _readable(conn, orjson.dumps({"n": [number]}))


#: Decimal texts near doubles: digits, a point somewhere, an exponent.
DECIMALS = st.builds(
    lambda digits, point, exponent, sign: (
        f"{sign}{digits[:point].lstrip('0') or '0'}.{digits[point:] or '0'}e{exponent}"
    ),
    st.text("0123456789", min_size=1, max_size=40),
    st.integers(0, 40),
    st.integers(-340, 320),
    st.sampled_from(["", "-"]),
)
NEAR_FLOATS = st.floats(allow_nan=False, allow_infinity=False).flatmap(
    lambda f: st.sampled_from(
        [
            repr(f),
            f"{Decimal(f):f}",
            f"{Decimal(repr(f)) + Decimal('1e-25'):f}",
            repr(f).replace("e", "0001e") if "e" in repr(f) else f"{f!r}0001",
        ]
    )
)

#: Integers around 64 bits and past them, as another tool may write them (``1e300`` spelled out).
INTEGERS = st.one_of(
    st.integers(-(2**80), 2**80).map(str),
    st.builds(lambda m, k: str(m * 10**k), st.integers(1, 10**17), st.integers(0, 300)),
)


@PROPERTY
@given(text=st.one_of(DECIMALS, NEAR_FLOATS, INTEGERS))
@example(text="1e-400")
@example(text="1.00000000000000000001")
@example(text="9223372036854775808.5")
@example(text="0.1000000000000000000001")
@example(text="70510993737728100.0")
@example(text="70510993737728096.0")
@example(text="70510993737728104.0")
@example(text="9.5e-324")
@example(text="1.797693134862315e308")
@example(text="9007199254740993.0")
@example(text="2e-324")
@example(text="4.9406564584124654e-324")
@example(text="1.7976931348623158e308")
@example(text="18446744073709551616")
@example(text="18446744073709551615")
@example(text="1e300")
@example(text="123456789012345678901234567890")
@example(text="1.50")
def test_the_sql_agrees_with_the_reader(conn: psycopg.Connection[Any], text: str) -> None:
    row = conn.execute(
        f"SELECT j::text, {inexact_number('j::numeric')}, "
        f"{inexact_number('j::numeric', wide_integers=True)} FROM (SELECT %s::jsonb AS j) AS t",
        (text,),
    ).fetchone()
    assert row is not None
    stored, inexact, inexact_wide = row
    assert inexact is not _kept_by_the_reader(stored), (text, stored)
    assert inexact_wide is not _kept_by_the_reader(stored, wide_integers=True), (text, stored)
    # The row holding it is unreadable exactly then, by ``READABLE`` and the index's function.
    assert _readable(conn, f'{{"n": [{stored}]}}'.encode()) is not inexact, (text, stored)


def test_the_issue_numbers_leave_their_row_unreadable(conn: psycopg.Connection[Any]) -> None:
    for text in ["1e-400", "1.00000000000000000001", "9223372036854775808.5",
                 "[0.1000000000000000000001]", "-1e-400", "1e400"]:  # fmt: skip
        assert not _readable(conn, f'{{"n": {text}}}'.encode()), text
    for text in ["70510993737728100.0", "1.50", "0.0", "-0.0", "5e-324", "1e-5", "1e2"]:
        assert _readable(conn, f'{{"n": {text}}}'.encode()), text


#: A table another tool made: ``jsonb``, ``json`` and ``numeric`` columns holding numbers a double
#: rounds, next to numbers the reader keeps (``1e300`` spelled out in ``jsonb`` reads as that float).
FOREIGN = """
CREATE TABLE t (id integer PRIMARY KEY, b jsonb, j json, n numeric);
INSERT INTO t VALUES
  (1, '1e-400', '1e-400', 1e-400),
  (2, '1.00000000000000000001', '[1.00000000000000000001]', 1.00000000000000000001),
  (3, '9223372036854775808.5', '{"x": 9223372036854775808.5}', 9223372036854775808.5),
  (4, '[0.1000000000000000000001]', '0.1000000000000000000001', 0.1000000000000000000001),
  (5, '18446744073709551616', '18446744073709551616', 18446744073709551616),
  (6, '0', '0', 0), (7, '1.0', '1.0', 1.0), (8, '0.1', '[0.1]', 0.1),
  (9, '70510993737728100.0', '70510993737728100.0', 70510993737728100.0),
  (10, '1e300', '0.30000000000000004', 0.30000000000000004), (11, NULL, NULL, NULL);
"""
#: What each row's columns are served as: a value the reader would round is its exact text.
SERVED = {
    1: ("0." + "0" * 399 + "1", "1e-400", "0." + "0" * 399 + "1"),
    2: ("1.00000000000000000001", "[1.00000000000000000001]", "1.00000000000000000001"),
    3: ("9223372036854775808.5", '{"x": 9223372036854775808.5}', "9223372036854775808.5"),
    4: ("[0.1000000000000000000001]", "0.1000000000000000000001", "0.1000000000000000000001"),
    5: ("18446744073709551616", "18446744073709551616", "18446744073709551616"),
    6: (0, 0, 0), 7: (1.0, 1.0, 1.0), 8: (0.1, [0.1], 0.1),
    9: (7.05109937377281e16, 7.05109937377281e16, 7.05109937377281e16),
    10: (1e300, 0.30000000000000004, "0.30000000000000004"), 11: (None, None, None),
}  # fmt: skip


def test_a_foreign_column_serves_a_number_a_double_rounds_as_its_text(tmp_path: Path) -> None:
    """Issue #15: ``jsonb``/``json`` columns as collections' rule (``inexact_number``), ``numeric``
    by its documented 15 digits; each value is what filters, sorts and cursors see, so keyset
    pages over the column equal the whole listing, ascending and descending, 1 to 3 a page."""
    from dbhandles import Service
    from tests.pgserver import postgres_schema

    service = Service()
    try:
        config = postgres_schema(tmp_path, FOREIGN)
        db = service.execute("data/open", {"adapter": "postgres", "config": config})["dbHandle"]

        def ask(command: str, **params: Any) -> dict[str, Any]:
            return service.execute(command, {"dbHandle": db, "collection": "t", **params})

        items = ask("data/list", orderBy="id")["items"]
        got = {r["id"]: (r.get("b"), r.get("j"), r.get("n")) for r in items}
        assert got == SERVED
        assert [type(v) for v in got[7]] == [float, float, float]
        for field in ("b", "j", "n"):
            assert _ids(ask("data/list", filter={field: 0})["items"]) == [6], field
            assert ask("data/count", filter={field: {"$regex": "^[-0-9[{]"}})["total"] == sum(
                isinstance(v[("b", "j", "n").index(field)], str) for v in SERVED.values()
            )
            for direction in ("asc", "desc"):
                order = [{"field": field, "direction": direction}]
                whole = _ids(ask("data/list", orderBy=order)["items"])
                assert sorted(whole) == sorted(SERVED)
                for limit in (1, 2, 3):
                    seen: list[Any] = []
                    cursor = None
                    while True:
                        extra = {"cursor": cursor} if cursor else {}
                        page = ask("data/list", orderBy=order, limit=limit, **extra)
                        seen += _ids(page["items"])
                        assert len(seen) <= len(SERVED), (field, direction, limit)
                        if not (cursor := page.get("nextCursor")):
                            break
                    assert seen == whole, (field, direction, limit)
    finally:
        service.close()


def _ids(items: list[dict[str, Any]]) -> list[Any]:
    return [r["id"] for r in items]
