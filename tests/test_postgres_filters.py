"""The SQL compiled for PostgreSQL agrees with the reference semantics (the memory adapter) on random data.

The same properties and strategies as ``test_filter_equivalence`` (SQLite), run against a schema of the
throwaway server; plus the regex translation and the number keys on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles.adapters.base import Adapter, Query, Record
from dbhandles.adapters.memory import MemoryAdapter
from dbhandles.errors import InvalidFilter
from dbhandles.evaluate import position_of
from dbhandles.filters import parse_filter, parse_order_by
from tests.pgserver import postgres_config

# The SQLite suite's strategies, so both SQL dialects face the same inputs.
from tests.test_filter_equivalence import (
    MATRIX_FILTER_VALUES,
    MATRIX_OPS,
    MATRIX_PATHS,
    ORDERS,
    PROPERTY,
    SCALARS,
    _matrix_rows,
    _pool,
    filters,
    records,
)

# The strategies draw filters from the stored values; hypothesis warns when their repr gets long.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

COLLECTION = "items"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Adapter, Adapter]]:
    from dbhandles.adapters.postgres import PostgresAdapter

    config = postgres_config(tmp_path_factory.mktemp("pg-equivalence"))
    postgres = PostgresAdapter(PostgresAdapter.prepare(PostgresAdapter.parse_config(config)))
    memory = MemoryAdapter(MemoryAdapter.parse_config({}))
    yield postgres, memory
    postgres.close()
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


@PROPERTY
@given(rows=records(), order=ORDERS, data=st.data())
def test_find_and_count_match_the_reference(
    adapters: tuple[Adapter, Adapter], rows: list[Record], order: Any, data: st.DataObject
) -> None:
    spec = data.draw(filters(_pool(rows)), label="filter")
    _load(adapters, rows)
    node, keys = parse_filter(spec), parse_order_by(order)
    postgres, memory = adapters
    got, want = _find(postgres, Query(node, keys)), _find(memory, Query(node, keys))
    assert _ids(got) == _ids(want)
    assert got == want
    with postgres.session() as s1, memory.session() as s2:
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
    postgres, memory = adapters
    assert _ids(_find(postgres, query)) == _ids(_find(memory, query))


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
    postgres, memory = adapters
    full = _ids(_find(memory, Query(node, keys)))
    seen: list[str] = []
    after = None
    while True:
        page = _find(postgres, Query(node, keys, limit=page_size, after=after))
        if not page:
            break
        seen.extend(_ids(page))
        assert len(seen) <= len(full), "paging repeats rows"
        after = orjson.loads(orjson.dumps(position_of(page[-1], keys)))
    assert seen == full


@PROPERTY
@given(rows=records(), order=ORDERS, data=st.data())
def test_after_any_row_matches_the_reference(
    adapters: tuple[Adapter, Adapter], rows: list[Record], order: Any, data: st.DataObject
) -> None:
    if not rows:
        return
    _load(adapters, rows)
    keys = parse_order_by(order)
    pivot = data.draw(st.sampled_from(rows))
    query = Query(None, keys, after=position_of(pivot, keys))
    postgres, memory = adapters
    assert _ids(_find(postgres, query)) == _ids(_find(memory, query))


@PROPERTY
@given(values=st.lists(SCALARS, max_size=8))
def test_values_read_back_equal_and_of_the_same_type(
    adapters: tuple[Adapter, Adapter], values: list[Any]
) -> None:
    """A float stays a float (``1e16`` is not read back as an integer), nested or not."""
    rows = [{"id": "r", "v": values, "n": {"x": values[0] if values else None},
             "createdAt": "t", "updatedAt": "t", "version": 1}]  # fmt: skip
    _load(adapters, rows)
    got = _find(adapters[0], Query())[0]
    assert got == rows[0]
    assert [type(v) for v in got["v"]] == [type(v) for v in values]


@pytest.mark.parametrize("op", [*MATRIX_OPS, "$exists", "$regex"])
def test_every_operator_on_every_kind_of_value(adapters: tuple[Adapter, Adapter], op: str) -> None:
    _load(adapters, _matrix_rows())
    if op == "$exists":
        operands: list[Any] = [True, False]
    elif op == "$regex":
        operands = ["^a", "b$", "", "^$", "1", "(?i)^b", "^r1", ".", r"\w$"]
    elif op in ("$in", "$nin"):
        operands = [[], [None], [1, "a"], [True, 2.5], ["ab", None, 0]]
    elif op in ("$gt", "$gte", "$lt", "$lte", "$contains"):
        operands = [v for v in MATRIX_FILTER_VALUES if v is not None]
    else:
        operands = MATRIX_FILTER_VALUES
    postgres, memory = adapters
    for path in MATRIX_PATHS:
        for operand in operands:
            node = parse_filter({path: {op: operand}})
            got, want = _find(postgres, Query(node)), _find(memory, Query(node))
            assert _ids(got) == _ids(want), f"{path} {op} {operand!r}"


@pytest.mark.parametrize("path", MATRIX_PATHS)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_every_kind_of_value_sorts_like_the_reference(
    adapters: tuple[Adapter, Adapter], path: str, direction: str
) -> None:
    _load(adapters, _matrix_rows())
    keys = parse_order_by([{"field": path, "direction": direction}])
    postgres, memory = adapters
    assert _ids(_find(postgres, Query(None, keys))) == _ids(_find(memory, Query(None, keys)))
    for pivot in _find(memory, Query(None, keys)):
        after = position_of(pivot, keys)
        got = _find(postgres, Query(None, keys, after=after))
        assert _ids(got) == _ids(_find(memory, Query(None, keys, after=after)))


# -- regexes ----------------------------------------------------------------------------------------

PATTERNS = [
    "^a", "b$", "a|é", ".", "^$", "[0-9]", "A", "^.{2,}$", "(?i)ab", r"\bab\b", r"\w+", r"\d", r"\s",
    "[^a]", "a{,2}b", "a{1,}", "x{}", "(?P<g>a)b", "(?:ab)+", "a(?=b)", "(?<!a)b", r"\x41", "[]a]",
    "[a[]", "[.[:]", "(?s)a.b", "(?m)^b", "(?m)a$", r"a\Z", r"\Aa", "é+", "(?i)É", "a*?b", r"\.", "[a-c]{2}",
]  # fmt: skip
TEXTS = st.text(alphabet="abAB\n é:É1_.x[]", max_size=5)


@pytest.fixture(scope="module")
def regex_conn(adapters: tuple[Adapter, Adapter]) -> Iterator[Any]:
    postgres = adapters[0]
    postgres.connect()
    with postgres._require_pool().connection() as conn:  # type: ignore[attr-defined]
        yield conn


@PROPERTY
@given(pattern=st.sampled_from(PATTERNS), texts=st.lists(TEXTS, min_size=1, max_size=6))
def test_translated_regexes_match_like_python(
    adapters: tuple[Adapter, Adapter], regex_conn: Any, pattern: str, texts: list[str]
) -> None:
    from dbhandles.adapters.postgres_compile import translate_regex

    collation = adapters[0].dialect.regex_collation  # type: ignore[attr-defined]
    translated = translate_regex(pattern)
    rows = regex_conn.execute(
        f'SELECT t COLLATE "{collation}" ~ %s FROM unnest(%s::text[]) AS t', (translated, texts)
    ).fetchall()
    want = [re.search(pattern, t) is not None for t in texts]
    assert [r[0] for r in rows] == want, translated


@pytest.mark.parametrize(
    "pattern", ["(?P<a>x)(?P=a)", "(?>ab)", "a++", "(?i:a)b", r"\N{DASH}", "(?x)a b"]
)
def test_regexes_postgres_cannot_express_are_refused(pattern: str) -> None:
    from dbhandles.adapters.postgres_compile import translate_regex

    with pytest.raises(InvalidFilter, match="PostgreSQL"):
        translate_regex(pattern)


# -- numbers ----------------------------------------------------------------------------------------


def test_number_keys_order_ints_and_floats_like_python(tmp_path: Path) -> None:
    """Around 2**53 and 2**63 an int and a float compare by exact value, as in Python."""
    from dbhandles.adapters.postgres import PostgresAdapter

    values: list[int | float] = [
        2**53, 2**53 + 1, 9007199254740992.0, 2**63 - 1, -(2**63), -9.223372036854776e18,
        9.223372036854776e18, 4611686018427387904, 4.611686018427388e18, 4611686018427388000,
        1e16, 10**16, 0.1, -0.0, 0, 1.5e300, 5e-324,
    ]  # fmt: skip
    rows = [
        {"id": f"r{i:02d}", "v": v, "createdAt": "t", "updatedAt": "t", "version": 1}
        for i, v in enumerate(values)
    ]
    adapter = PostgresAdapter(PostgresAdapter.parse_config(postgres_config(tmp_path)))
    memory = MemoryAdapter(MemoryAdapter.parse_config({}))
    try:
        _load((adapter, memory), rows)
        for value in values:
            for op in ("$eq", "$gt", "$lte"):
                query = Query(parse_filter({"v": {op: value}}), parse_order_by(["v"]))
                assert _ids(_find(adapter, query)) == _ids(_find(memory, query)), (op, value)
    finally:
        adapter.close()
        memory.close()
