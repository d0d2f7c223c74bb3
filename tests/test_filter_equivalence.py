"""The SQL compiled for SQLite agrees with the reference semantics (the memory adapter) on random data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbhandles.adapters.base import Adapter, Query, Record
from dbhandles.adapters.memory import MemoryAdapter
from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.errors import InvalidFilter
from dbhandles.evaluate import matches, position_of, sort_records
from dbhandles.filters import parse_filter, parse_order_by
from dbhandles.regex import pattern_problem, search
from dbhandles.values import check_scalar

COLLECTION = "items"
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- values -----------------------------------------------------------------------------------------

#: Characters where regex dialects differ: case folds (K and the Kelvin sign, s and the long s),
#: non-ASCII letters, word and non-word characters, newlines.
REGEX_ALPHABET = "abAkK\u212asS\u017f\u00e9\u00c9 1_-.\n"
REGEX_TEXTS = st.text(alphabet=REGEX_ALPHABET, max_size=5)

# U+0000 is left out: SQLite's json_extract cuts text at the first NUL (a known limit, reported).
_TEXT = st.one_of(
    st.text(alphabet="abAB", max_size=3),
    REGEX_TEXTS,
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        max_size=4,
    ),
)
#: The integers of a record, and of a filter value: strictly between -2**63 and 2**63 (values.py).
_INTS = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**63) + 1, 2**63 - 1),
    st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, -(2**63) + 1]),
)
_FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 2.5, -1.5, 1e16, 9007199254740992.0, 9.3e18]),
    st.floats(allow_nan=False, allow_infinity=False),
)
SCALARS = st.one_of(st.none(), st.booleans(), _INTS, _FLOATS, _TEXT)
NON_NULL = st.one_of(st.booleans(), _INTS, _FLOATS, _TEXT)
LISTS = st.lists(SCALARS, max_size=3)
#: Objects inside arrays, arrays inside arrays and nulls inside both: where MongoDB's path rules
#: (a path crossing an array, numeric segments, leaf arrays) decide the answer.
_INNER = st.fixed_dictionaries({}, optional={"a": st.one_of(SCALARS, LISTS), "b": SCALARS})
MIXED_LISTS = st.lists(st.one_of(SCALARS, _INNER, LISTS), max_size=3)
VALUES = st.one_of(SCALARS, LISTS, MIXED_LISTS)
NESTED = st.one_of(
    st.fixed_dictionaries({}, optional={"a": VALUES, "b": VALUES}),
    st.lists(st.fixed_dictionaries({}, optional={"a": VALUES, "b": VALUES}), max_size=3),
    VALUES,
)
USER_FIELDS = st.fixed_dictionaries(
    {}, optional={"a": VALUES, "b": VALUES, "c": VALUES, "n": NESTED}
)
TIMESTAMPS = st.sampled_from(
    ["2024-01-01T00:00:00.000Z", "2024-01-01T00:00:00.500Z", "2024-06-30T12:00:00.000Z"]
)
#: System fields as dbhandles writes them (SQLite leaves out a row with others: round 20).
_STAMP = "2024-01-01T00:00:00.000Z"
IDS = st.text(alphabet="abzAZ09_é😀", min_size=1, max_size=3)


@st.composite
def records(draw: st.DrawFn) -> list[Record]:
    ids = draw(st.lists(IDS, max_size=12, unique=True))
    result = []
    for record_id in ids:
        record: Record = {"id": record_id}
        record.update(draw(USER_FIELDS))
        record["createdAt"] = draw(TIMESTAMPS)
        record["updatedAt"] = draw(TIMESTAMPS)
        record["version"] = draw(st.integers(1, 3))
        result.append(record)
    return result


# -- filters and orders -----------------------------------------------------------------------------

SORT_PATHS = st.sampled_from(
    ["a", "b", "c", "n", "n.a", "n.b", "a.b", "zz", "id", "version", "createdAt", "updatedAt"]
)
#: Filter paths also index arrays (``n.0.a``).
PATHS = st.one_of(SORT_PATHS, st.sampled_from(["a.0", "n.0", "n.1.a", "n.a.0", "a.0.a", "n.a.b"]))
PATTERNS = st.sampled_from(["^a", "b$", "a|é", ".", "^$", "[0-9]", "A", "^.{2,}$", "(?i)ab"])

# RE2 patterns (docs/filters.md) over a small alphabet: classes, escapes, anchors, word boundaries,
# flags, groups, alternation and repetition, the pieces where PostgreSQL's dialect differs.
_RX_CHARS = ["a", "b", "A", "k", "K", "\u212a", "s", "\u017f", "é", "É", " ", "1", "_", "-",
             "\\.", "\\n", "\\x{e9}", "\\101", "\\-", "\\Q.\\E", "{", "}", "]"]  # fmt: skip
_RX_ITEMS = ["a", "b", "a-c", "A-Z", "\\d", "\\w", "\\s", "\\W", "\\D", "[:alpha:]", "[:^lower:]",
             "[:punct:]", "\\pL", "\\p{Lu}", "é", "É-é", "k", "\\x{212a}", "-", "\\n"]  # fmt: skip
_RX_ATOMS = st.one_of(
    st.sampled_from(_RX_CHARS),
    st.sampled_from(
        ["^", "$", "\\A", "\\z", "\\b", "\\B", ".", "\\d", "\\w", "\\W", "\\s", "\\pL"]
    ),
    st.builds(
        lambda negated, items: f"[{'^' if negated else ''}{''.join(items)}]",
        st.booleans(),
        st.lists(st.sampled_from(_RX_ITEMS), min_size=1, max_size=3),
    ),
)
_RX_QUANTIFIERS = st.sampled_from(["", "", "", "*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "+?"])
_RX_FLAGS = st.sampled_from(["(?i)", "(?m)", "(?s)", "(?-i)"])


def _rx_compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    groups = st.builds(
        lambda wrap, body: wrap.format(body),
        st.sampled_from(["({})", "(?:{})", "(?i:{})", "(?m:{})", "(?s:{})", "(?P<g>{})"]),
        inner,
    )
    pieces = st.one_of(st.tuples(st.one_of(inner, groups), _RX_QUANTIFIERS).map("".join), _RX_FLAGS)
    return st.one_of(
        st.lists(pieces, min_size=1, max_size=4).map("".join),
        st.lists(inner, min_size=2, max_size=3).map("|".join),
    )


REGEX_PATTERNS = st.recursive(_RX_ATOMS, _rx_compound, max_leaves=8).filter(
    lambda pattern: pattern_problem(pattern) is None
)
_ID_LIKE = st.one_of(IDS, TIMESTAMPS)


def _op(name: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return values.map(lambda v: {name: v})


def _pool(rows: list[Record]) -> list[Any]:
    """Scalars stored in ``rows`` (and pieces of their strings): filters that hit real data."""
    found: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif value is not None and check_scalar(value, "") is None:
            # Every scalar a filter takes (-2**63 too, which a foreign 64-bit column may hold).
            found.append(value)
            if isinstance(value, str) and value:
                found.extend([value[:1], value[1:], value[-1:]])

    for row in rows:
        walk(row)
    # 1, 1.0 and True are equal in Python but distinct filter values: dedupe on type and value.
    return list({(type(v), v): v for v in found}.values())


def filters(pool: list[Any]) -> st.SearchStrategy[Any]:
    """Wire filters over ``PATHS``; values are random or taken from ``pool``."""
    # An index into the pool, not sampled_from(pool): hypothesis builds the strategy's repr, and
    # the pool repeated in every operator makes that repr needlessly huge.
    stored = [st.integers(0, len(pool) - 1).map(pool.__getitem__)] if pool else []
    values = st.one_of(SCALARS, _ID_LIKE, *stored)
    orderable = st.one_of(NON_NULL, _ID_LIKE, *stored)
    ops = st.one_of(
        values,  # {"field": value} equality shorthand
        _op("$eq", values),
        _op("$ne", values),
        *(_op(name, orderable) for name in ("$gt", "$gte", "$lt", "$lte")),
        _op("$in", st.lists(values, max_size=4)),
        _op("$nin", st.lists(values, max_size=4)),
        _op("$exists", st.booleans()),
        _op("$regex", st.one_of(PATTERNS, REGEX_PATTERNS)),
        _op("$contains", orderable),
        _op("$size", st.integers(0, 3)),
        _op("$all", st.lists(values, max_size=3)),
    )
    element_tests = st.one_of(
        _op("$elemMatch", ops.filter(lambda spec: isinstance(spec, dict))),
        _op(
            "$elemMatch",
            st.dictionaries(st.sampled_from(["a", "b"]), ops, min_size=1, max_size=2),
        ),
    )
    ops = st.one_of(ops, element_tests)
    field_tests = st.one_of(
        st.builds(lambda path, spec: {path: spec}, PATHS, ops),
        st.builds(
            lambda path, spec: {path: {"$not": spec}},
            PATHS,
            ops.filter(lambda spec: isinstance(spec, dict)),
        ),
    )
    return st.one_of(
        st.none(),
        st.recursive(
            field_tests,
            lambda children: st.one_of(
                st.lists(children, max_size=3).map(lambda xs: {"$and": xs}),
                st.lists(children, max_size=3).map(lambda xs: {"$or": xs}),
                children.map(lambda x: {"$not": x}),
                st.lists(children, min_size=2, max_size=2).map(lambda xs: {**xs[0], **xs[1]}),
            ),
            max_leaves=6,
        ),
    )


ORDERS = st.lists(
    st.builds(
        lambda path, direction: {"field": path, "direction": direction},
        SORT_PATHS,
        st.sampled_from(["asc", "desc"]),
    ),
    max_size=3,
)


# -- fixtures ---------------------------------------------------------------------------------------


# Filters are drawn from the stored values; hypothesis warns when their repr gets long.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


def _sql_adapters() -> list[Any]:
    from tests.conftest import ADAPTERS

    # Every SQL adapter of the contract suite faces the same inputs (PostgreSQL when it is there).
    return [a for a in ADAPTERS if getattr(a, "values", (a,))[0] in ("sqlite", "postgres")]


@pytest.fixture(scope="module", params=_sql_adapters())
def adapters(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Adapter, Adapter]]:
    """(the SQL adapter under test, the memory oracle)."""
    folder = tmp_path_factory.mktemp("equivalence")
    sql: Adapter
    if request.param == "postgres":
        from dbhandles.adapters.postgres import PostgresAdapter
        from tests.pgserver import postgres_config

        config = postgres_config(folder)
        sql = PostgresAdapter(PostgresAdapter.prepare(PostgresAdapter.parse_config(config)))
    else:
        config = {"path": str(folder / "equivalence.db"), "mode": "create", "synchronous": "normal"}
        sql = SqliteAdapter(SqliteAdapter.prepare(SqliteAdapter.parse_config(config)))
    memory = MemoryAdapter(MemoryAdapter.parse_config({}))
    yield sql, memory
    sql.close()
    memory.close()


def _load(adapters: tuple[Adapter, Adapter], rows: list[Record]) -> None:
    for adapter in adapters:
        with adapter.session(write=True) as session:
            session.truncate(COLLECTION)
            session.insert_many(COLLECTION, rows)


def _ids(rows: list[Record]) -> list[str]:
    return [row["id"] for row in rows]


def _find(adapter: Adapter, query: Query) -> list[Record]:
    with adapter.session() as session:
        return session.find(COLLECTION, query)


# -- properties -------------------------------------------------------------------------------------


@PROPERTY
@given(rows=records(), order=ORDERS, data=st.data())
def test_find_and_count_match_the_reference(
    adapters: tuple[Adapter, Adapter], rows: list[Record], order: Any, data: st.DataObject
) -> None:
    spec = data.draw(filters(_pool(rows)), label="filter")
    _load(adapters, rows)
    node, keys = parse_filter(spec), parse_order_by(order)
    sqlite, memory = adapters
    got, want = _find(sqlite, Query(node, keys)), _find(memory, Query(node, keys))
    assert _ids(got) == _ids(want)
    assert got == want
    assert _ids(want) == _ids(sort_records([r for r in rows if matches(node, r)], keys))
    with sqlite.session() as s1, memory.session() as s2:
        assert s1.count(COLLECTION, node) == s2.count(COLLECTION, node) == len(want)


@PROPERTY
@given(
    rows=records(),
    order=ORDERS,
    offset=st.integers(0, 4),
    limit=st.none() | st.integers(0, 5),
    data=st.data(),
)
def test_limit_and_offset_match_the_reference(
    adapters: tuple[Adapter, Adapter],
    rows: list[Record],
    order: Any,
    offset: int,
    limit: int | None,
    data: st.DataObject,
) -> None:
    spec = data.draw(filters(_pool(rows)), label="filter")
    _load(adapters, rows)
    query = Query(parse_filter(spec), parse_order_by(order), limit=limit, offset=offset)
    sqlite, memory = adapters
    assert _ids(_find(sqlite, query)) == _ids(_find(memory, query))


@PROPERTY
@given(rows=records(), order=ORDERS, page_size=st.integers(1, 4), data=st.data())
def test_keyset_paging_visits_the_full_sort(
    adapters: tuple[Adapter, Adapter],
    rows: list[Record],
    order: Any,
    page_size: int,
    data: st.DataObject,
) -> None:
    spec = data.draw(filters(_pool(rows)), label="filter")
    _load(adapters, rows)
    node, keys = parse_filter(spec), parse_order_by(order)
    _, memory = adapters
    full = _ids(_find(memory, Query(node, keys)))
    for adapter in adapters:
        seen: list[str] = []
        after = None
        while True:
            page = _find(adapter, Query(node, keys, limit=page_size, after=after))
            if not page:
                break
            seen.extend(_ids(page))
            assert len(seen) <= len(full), "paging repeats rows"
            # Cursors keep positions as JSON: feed back what a JSON round trip gives (lists).
            after = orjson.loads(orjson.dumps(position_of(page[-1], keys)))
        assert seen == full


@PROPERTY
@given(rows=records(), order=ORDERS, data=st.data())
def test_after_any_row_matches_the_reference(
    adapters: tuple[Adapter, Adapter], rows: list[Record], order: Any, data: st.DataObject
) -> None:
    """Positions of arbitrary rows (not only page ends), as tuples straight from ``position_of``."""
    if not rows:
        return
    _load(adapters, rows)
    keys = parse_order_by(order)
    pivot = data.draw(st.sampled_from(rows))
    query = Query(None, keys, after=position_of(pivot, keys))
    sqlite, memory = adapters
    assert _ids(_find(sqlite, query)) == _ids(_find(memory, query))


@PROPERTY
@given(pattern=REGEX_PATTERNS, texts=st.lists(REGEX_TEXTS, min_size=1, max_size=8))
def test_regexes_match_like_re2(
    adapters: tuple[Adapter, Adapter], pattern: str, texts: list[str]
) -> None:
    """Generated RE2 patterns: the SQL adapter, the oracle and RE2 itself agree (PostgreSQL may
    refuse a pattern it cannot run exactly, never answer differently)."""
    rows: list[Record] = [
        {"id": f"r{i}", "v": text, "createdAt": _STAMP, "updatedAt": _STAMP, "version": 1}
        for i, text in enumerate(texts)
    ]
    _load(adapters, rows)
    node = parse_filter({"v": {"$regex": pattern}})
    want = [row["id"] for row in rows if search(pattern, row["v"])]
    sql, memory = adapters
    assert _ids(_find(memory, Query(node))) == want
    try:
        got: list[str] | str = _ids(_find(sql, Query(node)))
    except InvalidFilter as exc:
        got = str(exc)
    if isinstance(got, str):
        assert "PostgreSQL" in got, got
    else:
        assert got == want, pattern


# -- exhaustive matrix ------------------------------------------------------------------------------

#: One record per kind of stored value, at the top level, nested, and inside lists.
MATRIX_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 2.5, -0.0, 2**63 - 1, -(2**63) + 1, 9.3e18,
    "", "a", "ab", "ba", "B", "é", "😀", "10", "1",
    [], [1], [1.0], ["a"], ["ab"], [True], [False], [None], [1, "a", True], [[1]], [{"a": 1}],
    {}, {"a": 1}, {"a": "ab"}, {"a": None}, {"a": [1, "a"]}, {"b": True},
]  # fmt: skip
MATRIX_PATHS = ["v", "v.a", "v.b", "missing", "id", "version", "createdAt"]
MATRIX_FILTER_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 1.5, 2.5, 2**63 - 1, -(2**63) + 1, -9.3e18, 9.3e18,
    "", "a", "b", "ab", "B", "é", "😀", "1", "r0", "r1", "r10", "2024",
]  # fmt: skip
MATRIX_OPS = ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$contains", "$in", "$nin"]


def _matrix_rows() -> list[Record]:
    rows = []
    for i, value in enumerate(MATRIX_VALUES):
        row: Record = {"id": f"r{i}", "createdAt": f"2024-01-0{1 + i % 3}T00:00:00.000Z",
                       "updatedAt": _STAMP}  # fmt: skip
        if value is not None or i % 2:  # null is stored both as JSON null and as a missing key
            row["v"] = value
        row["version"] = 1 + i % 4
        rows.append(row)
    rows.append({"id": "r-missing", "createdAt": _STAMP, "updatedAt": _STAMP, "version": 1})
    return rows


@pytest.mark.parametrize("op", [*MATRIX_OPS, "$exists", "$regex"])
def test_every_operator_on_every_kind_of_value(adapters: tuple[Adapter, Adapter], op: str) -> None:
    _load(adapters, _matrix_rows())
    if op == "$exists":
        operands: list[Any] = [True, False]
    elif op == "$regex":
        operands = ["^a", "b$", "", "^$", "1", "(?i)^b", "^r1", r"\b", r"\B", r"(?i)\w$", r"\pL"]
    elif op in ("$in", "$nin"):
        operands = [[], [None], [1, "a"], [True, 2.5], ["ab", None, 0]]
    elif op in ("$gt", "$gte", "$lt", "$lte", "$contains"):
        operands = [v for v in MATRIX_FILTER_VALUES if v is not None]
    else:
        operands = MATRIX_FILTER_VALUES
    sqlite, memory = adapters
    for path in MATRIX_PATHS:
        for operand in operands:
            node = parse_filter({path: {op: operand}})
            got, want = _find(sqlite, Query(node)), _find(memory, Query(node))
            assert _ids(got) == _ids(want), f"{path} {op} {operand!r}"


@pytest.mark.parametrize("path", MATRIX_PATHS)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_every_kind_of_value_sorts_like_the_reference(
    adapters: tuple[Adapter, Adapter], path: str, direction: str
) -> None:
    _load(adapters, _matrix_rows())
    keys = parse_order_by([{"field": path, "direction": direction}])
    sqlite, memory = adapters
    assert _ids(_find(sqlite, Query(None, keys))) == _ids(_find(memory, Query(None, keys)))
    for pivot in _find(memory, Query(None, keys)):
        after = position_of(pivot, keys)
        got = _find(sqlite, Query(None, keys, after=after))
        assert _ids(got) == _ids(_find(memory, Query(None, keys, after=after)))
