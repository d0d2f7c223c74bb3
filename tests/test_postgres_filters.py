"""PostgreSQL-only checks of the compiled SQL: value round trips, regex translation (RE2 is the
oracle), number keys.

The shared properties (filters, sorts, keyset paging against the memory oracle) run for PostgreSQL in
``test_filter_equivalence``, whose ``adapters`` fixture covers every SQL adapter.
"""

from __future__ import annotations

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
from dbhandles.regex import search
from tests.pgserver import postgres_config

# The SQLite suite's strategies, so both SQL dialects face the same inputs.
from tests.test_filter_equivalence import (
    PROPERTY,
    REGEX_ALPHABET,
    REGEX_PATTERNS,
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
#: ``createdAt`` / ``updatedAt`` as dbhandles writes them: another text makes the row unreadable.
STAMP = "2026-01-01T00:00:00.000Z"


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
             "createdAt": STAMP, "updatedAt": STAMP, "version": 1}]  # fmt: skip
    _load(adapters, rows)
    got = _find(adapters[0], Query())[0]
    assert got == rows[0]
    assert [type(v) for v in got["v"]] == [type(v) for v in values]


# -- regexes ----------------------------------------------------------------------------------------

PATTERNS = [
    "^a", "b$", "a|é", ".", "^$", "[0-9]", "A", "^.{2,}$", "(?i)ab", r"\bab\b", r"\w+", r"\d", r"\s",
    "[^a]", "a{,2}b", "a{1,}", "x{}", "(?P<g>a)b", "(?:ab)+", r"\x41", "[]a]", "[a[]", "[.[:]",
    "(?s)a.b", "(?m)^b", "(?m)a$", r"a\z", r"\Aa", "é+", "(?i)É", "a*?b", r"\.", "[a-c]{2}",
    "(?i)k", r"(?i)[^k]", r"(?i)\W", r"\pL", r"\PL", r"(?i)\p{Lu}", r"\B", "(?i)\u017f", r"\Q.*\E",
    "a(?i)b|c", r"\101", "[[:^alpha:]]", "(?i)[[:upper:]]", "(a|a)*$", "(a|aa)+$", "^*a", r"\b*",
    "(?U)a+?", r"(?i)\x{212a}", "{", "a{2", "}", "]", r"$\n", r"\n$",
]  # fmt: skip
TEXTS = st.text(alphabet=REGEX_ALPHABET + ":[]x{},", max_size=6)


@pytest.fixture(scope="module")
def regex_conn(adapters: tuple[Adapter, Adapter]) -> Iterator[Any]:
    postgres = adapters[0]
    postgres.connect()
    with postgres._require_pool().connection() as conn:  # type: ignore[attr-defined]
        yield conn


def _postgres_matches(conn: Any, pattern: str, texts: list[str]) -> list[bool]:
    from dbhandles.adapters.postgres_compile import PostgresDialect
    from dbhandles.adapters.postgres_regex import translate_regex

    test = PostgresDialect().regex("t").replace("%s", "%(pattern)s")
    rows = conn.execute(
        f"SELECT {test} FROM unnest(%(texts)s::text[]) AS t",
        {"pattern": translate_regex(pattern), "texts": texts},
    ).fetchall()
    return [row[0] for row in rows]


@PROPERTY
@given(pattern=st.sampled_from(PATTERNS), texts=st.lists(TEXTS, min_size=1, max_size=6))
def test_translated_regexes_match_like_re2(regex_conn: Any, pattern: str, texts: list[str]) -> None:
    want = [search(pattern, t) for t in texts]
    assert _postgres_matches(regex_conn, pattern, texts) == want


@PROPERTY
@given(pattern=REGEX_PATTERNS, texts=st.lists(TEXTS, min_size=1, max_size=8))
def test_generated_regexes_match_like_re2(regex_conn: Any, pattern: str, texts: list[str]) -> None:
    """RE2 is the oracle: every translated pattern matches exactly the texts RE2 matches."""
    try:
        got: list[bool] | str = _postgres_matches(regex_conn, pattern, texts)
    except InvalidFilter as exc:  # refused is allowed (said so), a different answer is not
        got = str(exc)
    if isinstance(got, str):
        assert "PostgreSQL" in got, got
    else:
        assert got == [search(pattern, t) for t in texts], pattern


def test_every_character_class_is_the_set_re2_defines(regex_conn: Any) -> None:
    """The classes translated without asking RE2 (ASCII, Perl, POSIX, ASCII case folding) hold
    exactly the characters RE2's do, checked over every character that matters to them."""
    from dbhandles.regex import set_members

    classes = [
        "[a-c]", r"[\d]", r"[\D]", r"[\s]", r"[\S]", r"[\w]", r"[\W]", "[^a]", "[[:^alpha:]]",
        *(f"[[:{name}:]]" for name in ("alnum", "alpha", "ascii", "blank", "cntrl", "digit",
                                       "graph", "lower", "print", "punct", "space", "upper",
                                       "word", "xdigit")),
    ]  # fmt: skip
    for text in classes:
        for flags in ("", "(?i)"):
            pattern = f"^{flags}{text}$"
            members = set_members(f"{flags}{text}")
            # Every member range's ends and the characters just outside them, plus all of ASCII.
            probe = {c for lo, hi in members for c in (lo - 1, lo, hi, hi + 1)} | set(range(1, 128))
            probe |= {0x17F, 0x212A}
            texts = [
                chr(c) for c in sorted(probe) if 0 < c <= 0x10FFFF and not 0xD800 <= c <= 0xDFFF
            ]
            want = [search(pattern, t) for t in texts]
            assert _postgres_matches(regex_conn, pattern, texts) == want, pattern


def test_ascii_case_folding_is_what_re2_does() -> None:
    """Folding ASCII adds exactly the Kelvin sign and the long s beyond ASCII (so no scan is needed)."""
    from dbhandles.regex import set_members

    assert set_members(r"(?i)[\x01-\x7f]") == ((1, 127), (0x17F, 0x17F), (0x212A, 0x212A))
    assert set_members("(?i)[k]") == ((75, 75), (107, 107), (0x212A, 0x212A))


_SCRIPTS = ("Greek", "Latin", "Cyrillic", "Arabic", "Hebrew", "Han", "Thai", "Armenian", "Georgian",
            "Hangul", "Hiragana", "Katakana", "Devanagari", "Bengali", "Tamil", "Telugu", "Ethiopic")  # fmt: skip


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("a{256}", "repetition count above 255"),
        ("".join(f"\\p{{{script}}}" for script in _SCRIPTS), "more than 16"),
    ],
)
def test_regexes_postgres_cannot_run_exactly_are_refused(pattern: str, why: str) -> None:
    from dbhandles.adapters.postgres_regex import translate_regex

    with pytest.raises(InvalidFilter, match="PostgreSQL") as caught:
        translate_regex(pattern)
    assert why in str(caught.value)


# -- numbers ----------------------------------------------------------------------------------------


def test_number_keys_order_ints_and_floats_like_python(tmp_path: Path) -> None:
    """Around 2**53 and 2**63 an int and a float compare by exact value, as in Python."""
    from dbhandles.adapters.postgres import PostgresAdapter

    values: list[int | float] = [
        2**53, 2**53 + 1, 9007199254740992.0, 2**63 - 1, -(2**63) + 1, -9.223372036854776e18,
        9.223372036854776e18, 4611686018427387904, 4.611686018427388e18, 4611686018427388000,
        1e16, 10**16, 0.1, -0.0, 0, 1.5e300, 5e-324,
    ]  # fmt: skip
    rows = [
        {"id": f"r{i:02d}", "v": v, "createdAt": STAMP, "updatedAt": STAMP, "version": 1}
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
