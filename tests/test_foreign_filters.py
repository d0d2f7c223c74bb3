"""Filters, orders and keyset paging on tables dbhandles did not create agree with ``evaluate.py``.

The tables are written with the plain ``sqlite3`` module (columns of no declared type keep every
storage class as given, and one ``TEXT COLLATE NOCASE`` column converts numbers to text and would
compare case-insensitively if the SQL let it). The expected records are what the rows hold, read
back with plain ``sqlite3`` and turned into JSON by the documented rules (``foreign_values``); the
reference is ``evaluate.matches`` / ``sort_records`` over them.

TEXT columns hold JSON objects and arrays too (nested in each other, with nulls), so the array rules
of docs/filters.md (paths through arrays, numeric segments, ``$size``, ``$all``, ``$elemMatch``,
sorting by the smallest element) are checked on foreign tables as on collections.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from dbhandles.adapters.base import Query, Record
from dbhandles.adapters.foreign_values import encode_key, id_value, json_value
from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.adapters.sqlite_session import SqliteSession
from dbhandles.evaluate import matches, position_of, sort_records
from dbhandles.filters import parse_filter, parse_order_by
from tests.test_filter_equivalence import PATTERNS, REGEX_PATTERNS, _pool

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

PROPERTY = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: How the table is keyed: what its ``id`` is.
KEYS = ("integer", "text", "compound", "rowid")
TABLE = "Things"

_TEXT = st.one_of(
    st.text(alphabet="abAB", max_size=3),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=4,
    ),
    st.sampled_from(['{"a": 1, "b": "x"}', "[x", "{}", "{bad", '{"a": {"b": null}}', "[]", "[1,]"]),
    # JSON SQLite's functions take but the reader serves as the plain string it is (a number past
    # a double, a lone surrogate, U+0000, too deep): a string to every filter and sort too.
    st.sampled_from(
        [
            "[1e400]",
            "[-1e400]",
            '{"a": 2E+999}',
            '["\\ud800"]',
            '["a\\u0000b"]',
            '{"a": "x\\u0000y"}',
            "[" * 300 + "]" * 300,
            '{"a": 1, "a": [2]}',
        ]
    ),
)
#: Hundreds of digits and no exponent of three digits: past a double (served as the string it is,
#: so a string to every filter, sort and keyset position) or a number every reader reads alike.
_LONG_DIGITS = st.sampled_from(
    [
        "[17976931348623159" + "0" * 292 + "]",
        "[1" + "0" * 250 + "e99]",
        '{"a": -1' + "0" * 320 + "}",
        "[1" + "0" * 300 + "]",
        '{"a": [1.' + "0" * 300 + "1]}",
        '["' + "9" * 250 + '"]',
    ]
)
_NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([0.0, 1.0, 2.5, -1.5, 1e16, float("inf"), float("-inf")]),
    st.floats(allow_nan=False, allow_infinity=False),
)
_JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.5, -0.5]),
              st.text(alphabet="abA", max_size=2)),
    lambda inner: st.one_of(st.fixed_dictionaries({}, optional={"a": inner, "b": inner}),
                            st.lists(inner, max_size=3)),
    max_leaves=6,
)  # fmt: skip
STORED = st.one_of(
    st.none(),
    _NUMBERS,
    _TEXT,
    _LONG_DIGITS,
    st.binary(max_size=3),
    _JSON_VALUES.filter(lambda v: isinstance(v, dict | list)).map(
        lambda v: orjson.dumps(v).decode()
    ),
)
SORT_PATHS = st.sampled_from(["a", "b", "c", "n", "n.a", "n.b", "a.b", "zz", "id", "k", "k2"])
#: Filter paths also index arrays (``n.0.a``).
PATHS = st.one_of(SORT_PATHS, st.sampled_from(["a.0", "n.0", "n.1.a", "n.a.0", "a.0.a", "n.a.b"]))
_VALUES = st.one_of(st.none(), st.booleans(), _NUMBERS.filter(lambda v: v - v == 0), _TEXT)
_ORDERABLE = _VALUES.filter(lambda v: v is not None)


def _filters(pool: list[Any]) -> st.SearchStrategy[Any]:
    stored = [st.integers(0, len(pool) - 1).map(pool.__getitem__)] if pool else []
    values = st.one_of(_VALUES, *stored)
    orderable = st.one_of(_ORDERABLE, *stored)
    ops = st.one_of(
        values,
        *(values.map(lambda v, op=op: {op: v}) for op in ("$eq", "$ne")),
        *(orderable.map(lambda v, op=op: {op: v}) for op in ("$gt", "$gte", "$lt", "$lte")),
        *(st.lists(values, max_size=4).map(lambda v, op=op: {op: v}) for op in ("$in", "$nin")),
        st.booleans().map(lambda v: {"$exists": v}),
        st.one_of(PATTERNS, REGEX_PATTERNS).map(lambda v: {"$regex": v}),
        orderable.map(lambda v: {"$contains": v}),
        st.integers(0, 3).map(lambda v: {"$size": v}),
        st.lists(values, max_size=3).map(lambda v: {"$all": v}),
    )
    element_tests = st.one_of(
        ops.filter(lambda spec: isinstance(spec, dict)).map(lambda v: {"$elemMatch": v}),
        st.dictionaries(st.sampled_from(["a", "b"]), ops, min_size=1, max_size=2).map(
            lambda v: {"$elemMatch": v}
        ),
    )
    tests = st.builds(lambda path, spec: {path: spec}, PATHS, st.one_of(ops, element_tests))
    return st.one_of(
        st.none(),
        st.recursive(
            tests,
            lambda children: st.one_of(
                st.lists(children, max_size=3).map(lambda xs: {"$and": xs}),
                st.lists(children, max_size=3).map(lambda xs: {"$or": xs}),
                children.map(lambda x: {"$not": x}),
            ),
            max_leaves=5,
        ),
    )


ORDERS = st.lists(
    st.builds(
        lambda p, d: {"field": p, "direction": d}, SORT_PATHS, st.sampled_from(["asc", "desc"])
    ),
    max_size=3,
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[str, list[tuple[Any, ...]]]:
    """A key kind and rows ``(k1, k2, a, b, c, n)`` (k1, k2 unused by the kinds that need fewer)."""
    kind = draw(st.sampled_from(KEYS))
    size = draw(st.integers(0, 10))
    if kind == "integer":
        keys = draw(st.lists(st.integers(-5, 10**12), min_size=size, max_size=size, unique=True))
        pairs = [(k, None) for k in keys]
    elif kind == "text":
        keys = draw(st.lists(_TEXT, min_size=size, max_size=size, unique=True))
        pairs = [(k, None) for k in keys]
    elif kind == "compound":
        pairs = draw(
            st.lists(
                st.tuples(st.sampled_from(["x", "y", "Z"]), st.integers(0, 3)),
                min_size=size, max_size=size, unique=True,
            )
        )  # fmt: skip
    else:
        pairs = [(None, None)] * size
    rows = [(*pair, *draw(st.tuples(STORED, STORED, STORED, STORED))) for pair in pairs]
    return kind, rows


_DDL = {
    "integer": 'CREATE TABLE "Things" (k INTEGER PRIMARY KEY, a, b TEXT COLLATE NOCASE, c, n)',
    "text": 'CREATE TABLE "Things" (k TEXT PRIMARY KEY NOT NULL, a, b TEXT COLLATE NOCASE, c, n)',
    "compound": 'CREATE TABLE "Things" (k TEXT, k2 INTEGER, a, b TEXT COLLATE NOCASE, c, n, '
    "PRIMARY KEY (k, k2))",
    "rowid": 'CREATE TABLE "Things" (a, b TEXT COLLATE NOCASE, c, n)',
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("foreign")


@pytest.fixture(scope="module")
def counter() -> list[int]:
    return [0]


def _build(folder: Path, counter: list[int], kind: str, rows: list[tuple[Any, ...]]) -> Path:
    """A new file per example, written by plain sqlite3; returns its path."""
    counter[0] += 1
    path = folder / f"things-{counter[0]}.db"
    conn = sqlite3.connect(path)
    conn.execute(_DDL[kind])
    # Indexed columns: the reader probes them for JSON arrays and drops their array branch.
    conn.execute('CREATE INDEX things_a ON "Things" (a)')
    conn.execute('CREATE INDEX things_n ON "Things" (n, c)')
    if kind == "rowid":
        conn.executemany('INSERT INTO "Things" VALUES (?, ?, ?, ?)', [r[2:] for r in rows])
    elif kind == "compound":
        conn.executemany('INSERT INTO "Things" VALUES (?, ?, ?, ?, ?, ?)', rows)
    else:
        conn.executemany(
            'INSERT INTO "Things" VALUES (?, ?, ?, ?, ?)', [(r[0], *r[2:]) for r in rows]
        )
    conn.commit()
    conn.close()
    return path


def _expected(path: Path, kind: str) -> list[Record]:
    """The records by the documented rules, from what plain sqlite3 reads back."""
    conn = sqlite3.connect(path)
    try:
        if kind == "rowid":
            raw = conn.execute('SELECT rowid, a, b, c, n FROM "Things"').fetchall()
            keyed = [(r[0], r[1:], {}) for r in raw]
        elif kind == "compound":
            raw = conn.execute('SELECT k, k2, a, b, c, n FROM "Things"').fetchall()
            keyed = [(encode_key(r[:2]), r[2:], {"k": r[0], "k2": r[1]}) for r in raw]
        else:
            raw = conn.execute('SELECT k, a, b, c, n FROM "Things"').fetchall()
            keyed = [(id_value(r[0]), r[1:], {"k": json_value(r[0])}) for r in raw]
    finally:
        conn.close()
    return [
        {
            "id": key,
            **extra,
            **{name: json_value(v) for name, v in zip("abcn", values, strict=True)},
        }
        for key, values, extra in keyed
    ]


def _open(path: Path) -> SqliteAdapter:
    config = SqliteAdapter.parse_config({"path": str(path), "mode": "readonly"})
    return SqliteAdapter(SqliteAdapter.prepare(config))


def _ids(rows: list[Record]) -> list[Any]:
    return [row["id"] for row in rows]


@PROPERTY
@given(table=tables(), order=ORDERS, data=st.data())
def test_foreign_find_count_and_paging_match_the_reference(
    folder: Path, counter: list[int], table: tuple[str, list[tuple[Any, ...]]], order: Any,
    data: st.DataObject,
) -> None:  # fmt: skip
    kind, rows = table
    path = _build(folder, counter, kind, rows)
    records = _expected(path, kind)
    spec = data.draw(_filters(_pool(records)), label="filter")
    page_size = data.draw(st.integers(1, 4), label="page size")
    note(f"kind={kind} rows={rows!r} order={order!r}")
    node, keys = parse_filter(spec), parse_order_by(order)
    want = sort_records([r for r in records if matches(node, r)], keys)
    adapter = _open(path)
    try:
        with adapter.session() as session:
            assert session.find(TABLE, Query(node, keys)) == want
            assert session.count(TABLE, node) == len(want)
            # The name is found in any case, as collection names are.
            assert session.count(TABLE.upper(), node) == len(want)
            seen: list[Any] = []
            after = None
            while True:
                page = session.find(TABLE, Query(node, keys, limit=page_size, after=after))
                if not page:
                    break
                seen.extend(_ids(page))
                assert len(seen) <= len(want), "paging repeats rows"
                after = orjson.loads(orjson.dumps(position_of(page[-1], keys)))
            assert seen == _ids(want)
            for record in want[:3]:
                key = record["id"]
                if isinstance(key, str | int):
                    assert session.get(TABLE, str(key)) == record
    finally:
        adapter.close()


def _tagged(tmp_path: Path) -> SqliteAdapter:
    path = tmp_path / "tagged.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE t (k INTEGER PRIMARY KEY, tag TEXT); CREATE INDEX t_tag ON t (tag);"
        "INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'x');"
    )
    conn.close()
    return SqliteAdapter(SqliteAdapter.prepare(SqliteAdapter.parse_config({"path": str(path)})))


def test_a_read_transaction_probes_an_indexed_column_once(tmp_path: Path) -> None:
    """Whether an indexed column holds JSON arrays holds for a read transaction's snapshot: its
    page and its count share one probe (``SqliteSession._probed``)."""
    adapter = _tagged(tmp_path)
    node = parse_filter({"tag": "x"})
    try:
        with adapter.session() as session:
            assert isinstance(session, SqliteSession)
            statements: list[str] = []
            session.conn.set_trace_callback(statements.append)
            assert _ids(session.find("t", Query(filter=node))) == [1, 3]
            assert session.count("t", node) == 2
            session.conn.set_trace_callback(None)
        assert len([s for s in statements if "'['" in s]) == 1, statements
    finally:
        adapter.close()


def test_a_write_session_sees_the_arrays_it_writes(tmp_path: Path) -> None:
    """A write session probes for every query: an array it writes into an indexed column that held
    none is matched by the array rules at once."""
    adapter = _tagged(tmp_path)
    node = parse_filter({"tag": "x"})
    try:
        with adapter.session(write=True) as session:
            assert session.count("t", node) == 2
            assert isinstance(session, SqliteSession)
            session.conn.execute("""INSERT INTO t VALUES (4, '["x", "z"]')""")
            assert _ids(session.find("t", Query(filter=node))) == [1, 3, 4]
            assert session.count("t", node) == 3
        with adapter.session() as session, adapter.session() as nested:
            assert nested.count("t", node) == 3
            assert _ids(session.find("t", Query(filter=node))) == [1, 3, 4]
    finally:
        adapter.close()
