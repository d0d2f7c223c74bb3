"""PostgreSQL-only checks of the compiled SQL: value round trips, regex translation, number keys.

The shared properties (filters, sorts, keyset paging against the memory oracle) run for PostgreSQL in
``test_filter_equivalence``, whose ``adapters`` fixture covers every SQL adapter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles.adapters.base import Adapter, Query
from dbhandles.adapters.memory import MemoryAdapter
from dbhandles.errors import InvalidFilter
from dbhandles.filters import parse_filter, parse_order_by
from tests.pgserver import postgres_config

# The SQLite suite's strategies, so both SQL dialects face the same inputs.
from tests.test_filter_equivalence import (
    PROPERTY,
    SCALARS,
    _find,
    _ids,
    _load,
)

# The strategies draw filters from the stored values; hypothesis warns when their repr gets long.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Adapter, Adapter]]:
    from dbhandles.adapters.postgres import PostgresAdapter

    config = postgres_config(tmp_path_factory.mktemp("pg-equivalence"))
    postgres = PostgresAdapter(PostgresAdapter.prepare(PostgresAdapter.parse_config(config)))
    memory = MemoryAdapter(MemoryAdapter.parse_config({}))
    yield postgres, memory
    postgres.close()
    memory.close()


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
