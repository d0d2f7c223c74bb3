"""A listing of a foreign table builds its records column by column (``foreign_values.RecordLayout``,
``rows_records``): the records must be exactly those ``id_value`` and ``json_value`` give value by
value, a key column selected once and read twice (as ``id`` and as its field) included."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles.adapters import foreign_values
from dbhandles.adapters.foreign_values import (
    RecordLayout,
    id_value,
    json_value,
    records_builder,
    row_values,
    rows_records,
)

KEYS = ("id", "a", "b", "c")

#: What ``sqlite3`` hands back: NULL, INTEGER, REAL (infinities included; NaN is NULL in
#: SQLite but is tested too), TEXT (some of it JSON, some only looking like it) and BLOB.
VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "x", "{", "[", '{"a": 1}', "[1, 2]", "{not json", " {}", "null", "12"]),
    st.text(max_size=5),
    st.binary(max_size=4),
)


def _one_by_one(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(KEYS, [id_value(row[0]), *row_values(row, 1)], strict=True)) for row in rows]


def _same(a: Any, b: Any) -> bool:
    # NaN never reaches a record (it becomes null), so == is the test, with NaN flagged.
    if isinstance(a, float) and math.isnan(a):
        return False
    return bool(a == b and type(a) is type(b))


@given(st.lists(st.tuples(VALUES, VALUES, VALUES, VALUES), max_size=6))
def test_column_by_column_gives_the_records_of_value_by_value(rows: list[tuple[Any, ...]]) -> None:
    built = rows_records(KEYS, rows)
    expected = _one_by_one(rows)
    assert len(built) == len(expected)
    for got, want in zip(built, expected, strict=True):
        assert list(got) == list(KEYS)
        assert all(_same(got[k], want[k]) for k in KEYS), (got, want)


def test_each_kind_of_column() -> None:
    rows = [
        ("k1", 1, "plain", 1.5),
        ("{k2", None, '{"x": [1]}', math.inf),
        (b"\x00", 3, None, None),
    ]
    assert rows_records(KEYS, rows) == [
        {"id": "k1", "a": 1, "b": "plain", "c": 1.5},
        # An id is never parsed as JSON; a field's JSON text is; an infinity is null.
        {"id": "{k2", "a": None, "b": {"x": [1]}, "c": None},
        {"id": {"$base64": "AA=="}, "a": 3, "b": None, "c": None},
    ]
    assert rows_records(KEYS, []) == []
    assert json_value("[1") == "[1"  # invalid JSON text stays text, by row or by column
    assert rows_records(KEYS, [(1, "[1", "{}", 0.0)]) == [{"id": 1, "a": "[1", "b": {}, "c": 0.0}]


#: A column of text and null (a JSON column): parsed in one loop unless some text is no JSON.
TEXTS = st.one_of(
    st.none(),
    st.sampled_from(["", "x", "{", "[", '{"a": [1]}', "[1, 2]", "{not json", "[]", ' {"a": 1}']),
    st.text(max_size=5),
)


@given(st.lists(st.tuples(VALUES, TEXTS, TEXTS, TEXTS), max_size=6))
def test_json_columns_give_the_records_of_value_by_value(rows: list[tuple[Any, ...]]) -> None:
    built = rows_records(KEYS, rows)
    expected = _one_by_one(rows)
    assert len(built) == len(expected)
    for got, want in zip(built, expected, strict=True):
        assert all(_same(got[k], want[k]) for k in KEYS), (got, want)


# -- the layout of one table: a key column selected once and read twice --------------------------

#: ``(id, b, c)`` selected; the record is ``id``, then ``a`` (the key column again), ``b``, ``c``.
LAYOUT = RecordLayout(KEYS, (0, 0, 1, 2), integer_id=False)


def _by_layout(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """What the layout stands for, value by value: the id as ``id_value``, every field (the key
    column's too) as ``json_value``."""
    return [
        dict(zip(KEYS, [id_value(r[0]), json_value(r[0]), json_value(r[1]), json_value(r[2])],
                 strict=True))
        for r in rows
    ]  # fmt: skip


@given(st.lists(st.tuples(VALUES, VALUES, TEXTS), max_size=6))
def test_a_key_column_read_twice_is_the_id_and_its_field(rows: list[tuple[Any, ...]]) -> None:
    expected = _by_layout(rows)
    for built in (LAYOUT.records(rows), [LAYOUT.record(r) for r in rows]):
        assert len(built) == len(expected)
        for got, want in zip(built, expected, strict=True):
            assert list(got) == list(KEYS)
            assert all(_same(got[k], want[k]) for k in KEYS), (got, want)


def test_a_text_key_read_twice_is_text_as_the_id_and_json_as_the_field() -> None:
    rows = [('{"k": 1}', "x", None), ("plain", '["y"]', "[1]")]
    assert LAYOUT.records(rows) == [
        {"id": '{"k": 1}', "a": {"k": 1}, "b": "x", "c": None},
        {"id": "plain", "a": "plain", "b": ["y"], "c": [1]},
    ]
    assert [LAYOUT.record(r) for r in rows] == LAYOUT.records(rows)


@given(st.lists(st.tuples(st.integers(min_value=-(2**63), max_value=2**63 - 1), VALUES, VALUES),
                max_size=6))  # fmt: skip
def test_an_integer_key_is_taken_as_it_is(rows: list[tuple[Any, ...]]) -> None:
    layout = RecordLayout(KEYS, (0, 0, 1, 2), integer_id=True)
    assert layout.records(rows) == _by_layout(rows)
    assert [layout.record(r) for r in rows] == _by_layout(rows)


def test_a_layout_has_one_source_per_key_the_ids_first() -> None:
    with pytest.raises(ValueError, match="one source per key"):
        RecordLayout(KEYS, (1, 0, 1, 2), integer_id=False)
    with pytest.raises(ValueError, match="one source per key"):
        RecordLayout(KEYS, (0, 1), integer_id=False)


@given(st.lists(st.tuples(st.integers(min_value=-(2**63), max_value=2**63 - 1), VALUES, VALUES,
                          VALUES), max_size=6))  # fmt: skip
def test_a_read_by_an_integer_key_gives_the_values_of_value_by_value(
    rows: list[tuple[Any, ...]],
) -> None:
    """``record`` (a read by key) with every value selected once: one comprehension takes the
    common values as they are, and must give exactly ``json_value``'s (types compared too)."""
    layout = RecordLayout(KEYS, (0, 1, 2, 3), integer_id=True)
    for row in rows:
        got, want = layout.record(row), _one_by_one([row])[0]
        assert list(got) == list(KEYS)
        assert all(_same(got[k], want[k]) for k in KEYS), (got, want)


# -- records built by generated code, JSON columns parsed as a whole ------------------------------

#: Column names another program may choose, some of them Python or SQL text.
ODD_NAMES = ["id", 'a"}', "r[0]", "__import__('os')", "k0", "", "x\ny", "}]:pass"]


def test_a_builder_takes_names_as_values_never_as_code() -> None:
    build = records_builder(ODD_NAMES, [0, 0, 1, 2, 3, 4, 5, 6])
    rows = [(1, "b", 2.5, None, "e", [1], {"k": 2}), (2, "", 0, "t", b"x", "q", None)]
    assert build(rows) == [dict(zip(ODD_NAMES, [r[0], r[0], *r[1:]], strict=True)) for r in rows]
    assert [list(record) for record in build(rows)] == [ODD_NAMES, ODD_NAMES]
    assert build([]) == []
    with pytest.raises(ValueError, match="one source per key"):
        records_builder(ODD_NAMES, [0, 1])


def test_a_builder_of_more_keys_than_it_writes_out_zips() -> None:
    keys = [f"c{i}" for i in range(foreign_values._BUILT_KEYS + 5)]
    row = tuple(range(len(keys)))
    for width in (len(keys), foreign_values._BUILT_KEYS):
        built = records_builder(keys[:width], range(width))([row[:width]])
        assert built == [dict(zip(keys[:width], row[:width], strict=True))]


#: JSON texts as orjson writes them (the column's fast path) and as other tools do: spacing, a key
#: written twice (its first value counts, as in SQLite), U+0000 (a string cut there), escapes,
#: numbers orjson writes otherwise, nesting deeper than orjson writes; and text that only starts
#: like JSON.
JSON_TEXTS = st.one_of(
    st.none(),
    st.sampled_from(
        [
            '{"a":1}',
            "[1,2]",
            "[]",
            "{}",
            '{"a":[1,{"b":null}]}',
            '{"a":1,"a":2}',
            '[{"k":1,"k":2}]',
            '{"t":"a\\u0000b"}',
            '{"t":"\\u00e9"}',
            "[1.0,1e5]",
            '{"a": 1}',
            "[1 ]",
            "{",
            "[x",
            "[" * 300 + "]" * 300,
            # Either side of MAX_DEPTH (64): a column of texts all shorter than 63 characters
            # skips the bracket count (``_json_texts``), one this long does not.
            "[" * 31 + "]" * 31,
            "[" * 62 + "]" * 62,
            "[" * 63 + "]" * 63,
            "[" * 64 + "]" * 64,
            '{"a":' * 63 + "1" + "}" * 63,
            "plain",
            "",
        ]
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=3),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
        ),
        max_leaves=6,
    ).map(lambda v: orjson.dumps(v).decode()),
)


@given(st.lists(JSON_TEXTS, max_size=8))
def test_a_json_column_as_a_whole_is_each_text_by_itself(column: list[str | None]) -> None:
    def value(text: str | None) -> Any:
        try:
            return json_value(text)
        except TypeError:  # nested past orjson's writing depth: sqlite_values.loads (not here)
            return TypeError

    expected = [value(text) for text in column]
    if TypeError in expected:
        with pytest.raises(TypeError):
            rows_records(("id", "j"), [(i, text) for i, text in enumerate(column)])
        return
    built = rows_records(("id", "j"), [(i, text) for i, text in enumerate(column)])
    assert [record["j"] for record in built] == expected
    assert [record["id"] for record in built] == list(range(len(column)))
