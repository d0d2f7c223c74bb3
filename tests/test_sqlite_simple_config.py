"""``simple_config`` (the sqlite adapter's config made without pydantic's validator) is the model's.

The model (``SqliteConfig``) stays the one source of truth: ``simple_config`` reads its keys and
choices off the model's fields, and here every config it answers is compared with what the model
makes of it, field by field and in order, with the fields set; every config it declines is one the
model reads itself (so the errors are the model's, word for word).
"""

from __future__ import annotations

import typing
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbhandles.adapters.base import AdapterConfig
from dbhandles.adapters.sqlite import SqliteAdapter
from dbhandles.adapters.sqlite_config import SqliteConfig, _simple_keys, simple_config
from dbhandles.errors import InvalidConfig


def _same(made: AdapterConfig, expected: AdapterConfig) -> None:
    assert type(made) is type(expected)
    assert list(made.__dict__.items()) == list(expected.__dict__.items())
    assert made.model_fields_set == expected.model_fields_set
    assert made == expected


@pytest.mark.parametrize(
    "raw",
    [
        {"path": "/tmp/x.db"},
        {"path": "/tmp/x.db", "mode": "create"},
        {"mode": "readonly", "path": "relative/x.db"},
        {"path": "~/x.db", "mode": "readwrite", "synchronous": "full"},
        {"path": "/tmp/x.db", "fieldNames": "camel"},
        {"path": "/tmp/x.db", "field_names": "columns", "synchronous": "normal"},
    ],
)
def test_a_config_of_text_values_is_made_as_the_model_makes_it(raw: dict[str, Any]) -> None:
    made = simple_config(raw)
    assert made is not None
    _same(made, SqliteConfig.model_validate(raw))
    _same(SqliteAdapter.parse_config(raw), SqliteConfig.model_validate(raw))


@pytest.mark.parametrize(
    "raw",
    [
        {},  # no path
        {"path": ""},
        {"path": "/tmp/x\x00.db"},
        {"path": "/tmp/"},
        {"path": "/tmp/x.db", "mode": "bogus"},
        {"path": "/tmp/x.db", "mode": "READONLY"},
        {"path": 5},
        {"path": "/tmp/x.db", "mode": None},
        {"path": "/tmp/x.db", "wal": True},
        {"path": "/tmp/x.db", "busyTimeout": 10},
        {"filename": "/tmp/x.db"},
        {"path": "/tmp/x.db", "fieldNames": "camel", "field_names": "columns"},
        {"path": "/tmp/x.db", "nope": "x"},
    ],
)
def test_any_other_config_is_read_by_the_model_with_its_own_errors(raw: dict[str, Any]) -> None:
    assert simple_config(raw) is None
    # The base class's parse_config: the model, and nothing else.
    by_model = super(SqliteAdapter, SqliteAdapter).parse_config
    expected: AdapterConfig | InvalidConfig
    got: AdapterConfig | InvalidConfig
    try:
        expected = by_model(raw)
    except InvalidConfig as exc:
        expected = exc
    try:
        got = SqliteAdapter.parse_config(raw)
    except InvalidConfig as exc:
        got = exc
    if isinstance(expected, InvalidConfig):
        assert isinstance(got, InvalidConfig)
        assert (got.code, got.message, got.field) == (
            expected.code,
            expected.message,
            expected.field,
        )
    else:
        assert isinstance(got, AdapterConfig)
        _same(got, expected)


def test_the_keys_and_choices_are_the_models() -> None:
    keys = _simple_keys()
    # None would mean: the model gained a validator simple_config does not know, and every config
    # now takes the slow door; teach simple_config what the validator does (or that it is harmless).
    assert keys is not None
    fields = SqliteConfig.model_fields
    for key, (name, choices) in keys.items():
        assert key in (name, fields[name].alias)
        if choices is not None:
            assert choices == set(typing.get_args(fields[name].annotation))
    literal_fields = {
        n for n, f in fields.items() if typing.get_origin(f.annotation) is typing.Literal
    }
    assert {name for name, _ in keys.values()} == literal_fields | {"path"}


_KEYS = ["path", "mode", "synchronous", "fieldNames", "field_names", "wal", "filename", "x"]
_VALUES = st.one_of(
    st.sampled_from(
        ["create", "readwrite", "readonly", "normal", "full", "columns", "camel", "", "/", "a/"]
    ),
    st.text(max_size=12),
    st.booleans(),
    st.integers(-1, 10),
    st.none(),
)


@given(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=5))
def test_simple_config_agrees_with_the_model_on_any_config(raw: dict[str, Any]) -> None:
    made = simple_config(raw)
    try:
        expected = SqliteConfig.model_validate(raw)
    except ValueError:  # pydantic's ValidationError
        assert made is None, raw
        return
    if made is not None:
        _same(made, expected)
    elif set(raw) <= {"path", "mode", "synchronous", "fieldNames", "field_names"} and all(
        type(v) is str for v in raw.values()
    ):
        # Valid, text only, and no key given twice: simple_config must have taken it.
        assert "fieldNames" in raw and "field_names" in raw, raw
