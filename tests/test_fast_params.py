"""The dispatcher's quick door for params of plain strings, booleans, integers and filters
(commands/fast_params.py) builds exactly the model pydantic builds, and never answers where
pydantic would refuse."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dbhandles.commands import COMMANDS
from dbhandles.commands.fast_params import _plan, build, parse_simple
from dbhandles.commands.records import ReadParams, ReadResult
from dbhandles.documents import MAX_TABLE_ID_LENGTH
from dbhandles.errors import DbHandlesError
from dbhandles.service import Service

COMMANDS.load_all()
#: Every command whose params the quick door can build.
SIMPLE = sorted(name for name in COMMANDS if _plan(COMMANDS[name].params) is not None)

HANDLE_ID = "7c0d6b38-1d3f-4a4e-9d7e-5d3a1e8a9b10"
#: Strings near every rule the checks apply: names, ids, handles, session ids, and their edges.
TEXTS = st.one_of(
    st.sampled_from([
        "", "examples", "training_examples", "Order Items", "café", "_dbh_handles", "sqlite_master",
        "pg_class", "a\x00b", "a\nb", "\ud800", "x" * 255, "x" * 256, "x" * 4097, "default",
        HANDLE_ID, "alias.1", "1alias", "s1", "s:1@x", "-s", "local", "read",
    ]),
    st.text(max_size=12),
)  # fmt: skip
#: Filters pydantic takes and refuses: operators, paths, keys that are no text, nesting.
FILTERS = st.one_of(
    st.sampled_from([
        {}, {"metadata.qualityScore": {"$gte": 0.8}}, {"a": {"$bogus": 1}}, {"$and": []},
        {"$or": [{"a": 1}, {"b": {"$in": [1, "x"]}}]}, {1: 2}, {"a": {"$regex": "("}},
        {"a.": 1}, {"a": float("inf")}, {"a": {"$gt": [1]}}, {"_dbh": {"$exists": True}},
    ]),
    st.dictionaries(TEXTS, st.one_of(st.integers(), st.booleans(), st.none(), TEXTS), max_size=2),
)  # fmt: skip
VALUES = st.one_of(TEXTS, st.integers(), st.integers(-2, 600), st.floats(allow_nan=False),
                   st.booleans(), st.none(), st.just([]), FILTERS)  # fmt: skip


def _validated(model: Any, raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except (ValidationError, DbHandlesError):
        return None


@pytest.mark.parametrize("name", SIMPLE)
# too_slow: the first command's first draw builds hypothesis' Unicode tables (seconds in a fresh
# clone, whose .hypothesis holds none yet), which the health check takes for slow generation.
@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_quick_params_are_the_models_pydantic_builds(name: str, data: st.DataObject) -> None:
    model = COMMANDS[name].params
    aliases = [info.alias or field for field, info in model.model_fields.items()]
    keys = st.sampled_from([*aliases, "db_handle", "extra", "ID"])
    raw = data.draw(st.dictionaries(keys, VALUES, max_size=5))
    quick = parse_simple(model, raw)
    slow = _validated(model, raw)
    if quick is None:
        return  # pydantic decides, as it always did
    assert slow is not None, raw  # never accepted where pydantic refuses
    assert quick == slow
    assert list(quick.__dict__.items()) == list(slow.__dict__.items())
    assert quick.model_fields_set == slow.model_fields_set
    assert quick.model_dump(by_alias=True, exclude_unset=True) == slow.model_dump(
        by_alias=True, exclude_unset=True
    )


def test_a_list_takes_the_quick_door() -> None:
    raw = {"dbHandle": HANDLE_ID, "collection": "examples", "limit": 100, "skipCount": True,
           "filter": {"metadata.qualityScore": {"$gte": 0.8}}}  # fmt: skip
    model = COMMANDS["data/list"].params
    quick = parse_simple(model, raw)
    assert quick is not None and quick == model.model_validate(raw)
    assert quick.filter is not raw["filter"]  # a copy, as pydantic's
    # What pydantic reads otherwise (an integral float, a number as a bool, null) or refuses (a
    # bad operator, a negative limit, a key that is not text) goes to pydantic.
    for other in (
        {**raw, "limit": 100.0}, {**raw, "skipCount": 1}, {**raw, "limit": None},
        {**raw, "limit": -1}, {**raw, "limit": True}, {**raw, "filter": {"a": {"$bogus": 1}}},
        {**raw, "filter": {1: 2}}, {**raw, "filter": None}, {**raw, "cursor": "x"},
    ):  # fmt: skip
        assert parse_simple(model, other) is None, other


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"collection": "examples", "limit": -1}, "limit"),
        ({"collection": "examples", "filter": {"a": {"$bogus": 1}}}, "filter.a.$bogus"),
        ({"collection": "examples", "skipCount": 1}, "skipCount"),
        ({"collection": "examples", "filter": {"a": 1}, "extra": 1}, "extra"),
    ],
)
def test_refused_list_params_keep_their_errors(
    tmp_path: Any, raw: dict[str, Any], field: str
) -> None:
    with Service(home=tmp_path / "home") as service:
        envelope = service.dispatch("data/list", raw)
    assert envelope["success"] is False and envelope["code"] in ("invalid_params", "invalid_filter")
    assert envelope["field"] == field, envelope


def test_a_read_takes_the_quick_door() -> None:
    raw = {"dbHandle": HANDLE_ID, "collection": "examples", "id": "r-1"}
    quick = parse_simple(ReadParams, raw)
    assert quick is not None and quick == ReadParams.model_validate(raw)
    # Numbers, unknown keys and bad names go to pydantic (and get its errors).
    for other in ({**raw, "id": 7}, {**raw, "extra": "x"}, {**raw, "collection": "_dbh_x"}, {}):
        assert parse_simple(ReadParams, other) is None


@pytest.mark.parametrize(
    "record_id",
    ["x" * MAX_TABLE_ID_LENGTH, "x" * (MAX_TABLE_ID_LENGTH + 1), "café", "é" * MAX_TABLE_ID_LENGTH,
     "é" * (MAX_TABLE_ID_LENGTH + 1), "\ud800", "a\x00", "\x00", "", " ", "\n", "7", "-1.5"],
)  # fmt: skip
def test_record_ids_take_the_quick_door_only_where_pydantic_takes_them(record_id: str) -> None:
    # The quick door decides plain ASCII ids itself and hands every other string to the one rule.
    raw = {"dbHandle": HANDLE_ID, "collection": "examples", "id": record_id}
    quick, slow = parse_simple(ReadParams, raw), _validated(ReadParams, raw)
    assert (quick is None) == (slow is None), record_id
    if quick is not None:
        assert list(quick.__dict__.items()) == list(slow.__dict__.items())
        assert quick.model_fields_set == slow.model_fields_set


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"collection": "_dbh_handles", "id": "x"}, "collection"),
        ({"collection": "a\x00", "id": "x"}, "collection"),
        ({"collection": "examples", "id": ""}, "id"),
        ({"collection": "examples", "id": "a\x00"}, "id"),
        ({"collection": "examples", "id": "x" * (MAX_TABLE_ID_LENGTH + 1)}, "id"),
        ({"collection": "examples", "id": "\ud800"}, "id"),
        ({"dbHandle": "1bad", "collection": "examples", "id": "x"}, "dbHandle"),
        ({"collection": "examples"}, "id"),
        ({"collection": "examples", "id": "x", "sessionId": "-bad"}, "sessionId"),
    ],
)
def test_refused_simple_params_keep_their_errors(
    tmp_path: Any, raw: dict[str, Any], field: str
) -> None:
    with Service(home=tmp_path / "home") as service:
        envelope = service.dispatch("data/read", raw)
    assert envelope["success"] is False and envelope["code"] == "invalid_params", envelope
    assert envelope["field"] == field, envelope


@given(
    found=st.booleans(),
    record=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
)
def test_built_results_are_model_construct(found: bool, record: dict[str, Any] | None) -> None:
    values = {"db_handle": HANDLE_ID, "collection": "c", "id": "1", "data": record, "found": found}
    made = build(ReadResult, dict(values))
    constructed = ReadResult.model_construct(**values)
    assert list(made.__dict__.items()) == list(constructed.__dict__.items())
    assert made.model_fields_set == constructed.model_fields_set
    assert made.model_dump(by_alias=True) == constructed.model_dump(by_alias=True)
    partial = {"db_handle": HANDLE_ID, "collection": "c", "id": "1", "found": found}
    assert (
        build(ReadResult, dict(partial)).__dict__ == ReadResult.model_construct(**partial).__dict__
    )
