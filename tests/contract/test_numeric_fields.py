"""Contract: a top-level field named by digits (``"0"``, ``"7"``) is not an identifier, so it is
``invalid_filter`` in ``filter``, ``orderBy`` and ``groupBy`` on every adapter (docs/filters.md
"Field names"); a digit part after the first still indexes an array."""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles import InvalidFilter, Service


@pytest.fixture
def rows(service: Service, db: str) -> str:
    data = [{"0": "v", "7": 5, "a": [{"b": 1}, {"b": 2}]}, {"0": "w", "7": 1, "a": [{"b": 3}]}]
    ops = [
        {"op": "create", "collection": "c", "id": f"r{i}", "data": d} for i, d in enumerate(data)
    ]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


@pytest.mark.parametrize(
    "params",
    [
        {"filter": {"0": "v"}},
        {"filter": {"7": {"$gt": 2}}},
        {"filter": {"7.1": 1}},
        {"filter": {"$or": [{"a.0.b": 1}, {"0": "v"}]}},
        {"filter": {"7": {"$elemMatch": {"$gt": 1}}}},
        {"orderBy": ["7"]},
        {"orderBy": [{"field": "0", "direction": "desc"}]},
    ],
)
def test_numeric_top_level_fields_are_invalid_filters(
    service: Service, rows: str, params: dict[str, Any]
) -> None:
    for command in ("data/list", "data/count"):
        if command == "data/count" and "orderBy" in params:
            continue
        with pytest.raises(InvalidFilter, match=r'"[07]'):
            service.execute(command, {"dbHandle": rows, "collection": "c", **params})


@pytest.mark.parametrize("group_by", [["0"], ["7"], ["a", "7"]])
def test_numeric_top_level_group_fields_are_invalid_filters(
    service: Service, rows: str, group_by: list[str]
) -> None:
    with pytest.raises(InvalidFilter, match="not a valid field path"):
        service.execute("data/count", {"dbHandle": rows, "collection": "c", "groupBy": group_by})


def test_an_index_after_the_first_part_still_reaches_into_arrays(
    service: Service, rows: str
) -> None:
    page = service.execute(
        "data/list", {"dbHandle": rows, "collection": "c", "filter": {"a.0.b": 3}}
    )
    assert [r["id"] for r in page["items"]] == ["r1"]
