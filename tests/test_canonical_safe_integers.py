"""Issue #17: a canonical record text whose integers are all safe ones (within ±(2**53 - 1)) is
read without the byte search for long integers (``sqlite_values._narrow_dumps``); every other
text is judged as before. The rule a read keeps is the one of docs/filters.md "Values": a row
holding an integer literal outside [-2**63, 2**63) is unreadable, every other integer is read
exactly, whatever path decided it."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles.adapters import sqlite_values
from dbhandles.adapters.sqlite_values import Unreadable, load_record

SAFE = 2**53 - 1

#: Canonical texts (orjson's own spelling of what it reads from them) at the edges of both bounds.
EDGES = {
    "safe max": (SAFE, True),
    "safe min": (-SAFE, True),
    "past safe": (SAFE + 1, True),
    "below safe": (-SAFE - 1, True),
    "int64 max": (2**63 - 1, True),
    "int64 min": (-(2**63), True),
    "2**63": (2**63, False),
    "uint64 max": (2**64 - 1, False),
}


def _has_wide(value: Any) -> bool:
    """Whether ``value`` holds an integer outside [-2**63, 2**63) (the rule, by a walk)."""
    if type(value) is int:
        return not -(2**63) <= value < 2**63
    if type(value) is dict:
        return any(_has_wide(item) for item in value.values())
    if type(value) is list:
        return any(_has_wide(item) for item in value)
    return False


@pytest.mark.parametrize("name", EDGES)
@pytest.mark.parametrize("shape", ["top", "nested", "in a list"])
def test_a_canonical_text_is_judged_by_its_integers_at_both_bounds(name: str, shape: str) -> None:
    number, readable = EDGES[name]
    field: Any = {"top": number, "nested": {"a": {"b": number}}, "in a list": [1, [number]]}[shape]
    text = orjson.dumps({"owner": "alice", "n": field, "s": "12345678901234567890123"})
    assert (
        orjson.loads(text)["n"] == field and orjson.dumps(orjson.loads(text)) == text
    )  # canonical
    if readable:
        assert load_record(text) == {"owner": "alice", "n": field, "s": "12345678901234567890123"}
        assert load_record(text.decode()) == load_record(text)
    else:
        with pytest.raises(Unreadable, match="integer outside SQLite's 64 bits"):
            load_record(text)
        assert sqlite_values._record(text) is None  # the SQL function agrees: no record


def test_long_digits_in_strings_and_floats_stay_readable_on_the_short_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A canonical text with only safe integers never reaches the search, whatever digits its
    strings and floats hold; a text with an unsafe one (or not canonical) always does."""
    searched: list[bytes] = []
    real = sqlite_values._wide_integer

    def wide(raw: bytes) -> bool:
        searched.append(raw)
        return real(raw)

    monkeypatch.setattr(sqlite_values, "_wide_integer", wide)
    record = {"s": "9" * 40, "f": 1e20, "g": 123456789.0123456789, "n": [SAFE, -SAFE]}
    assert load_record(orjson.dumps(record)) == record
    assert searched == []
    unsafe = orjson.dumps({"n": SAFE + 1, "s": "1" * 30})
    assert load_record(unsafe) == {"n": SAFE + 1, "s": "1" * 30}
    assert searched == [unsafe]
    spaced = b'{"n": 1, "s": "' + b"1" * 30 + b'"}'  # another tool's spelling: not canonical
    assert load_record(spaced) == {"n": 1, "s": "1" * 30}
    assert searched == [unsafe, spaced]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 + 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="0123456789ab", max_size=25),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet="xyz", max_size=2), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(st.dictionaries(st.text(alphabet="abc", min_size=1, max_size=3), JSON, max_size=4))
def test_any_record_text_is_read_exactly_or_refused_by_the_rule(record: dict[str, Any]) -> None:
    """Texts as orjson writes them (canonical) and as ``json`` spaces them (not canonical):
    unreadable exactly when an integer lies outside [-2**63, 2**63), else read as written."""
    try:
        canonical = orjson.dumps(record)
    except orjson.JSONEncodeError:  # an integer orjson cannot write (past 64 bits)
        canonical = None
    spaced = json.dumps(record).encode()
    for text in (canonical, spaced):
        if text is None:
            continue
        if _has_wide(record):
            with pytest.raises(Unreadable, match="integer outside SQLite's 64 bits"):
                load_record(text)
        else:
            assert load_record(text) == orjson.loads(text)
