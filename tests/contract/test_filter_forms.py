"""Contract: filter forms where dbhandles differs from MongoDB (docs/filters.md), the same on every
adapter (issue 14, item 6)."""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles import InvalidFilter, Service


@pytest.fixture
def rows(service: Service, db: str) -> str:
    data = [{"tags": ["a", "b"]}, {"tags": ["a"]}, {"tags": []}, {"tags": [{"k": 1}, "a"]}]
    ops = [
        {"op": "create", "collection": "c", "id": f"r{i}", "data": d} for i, d in enumerate(data)
    ]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


def _ids(service: Service, db: str, filter: dict[str, Any]) -> list[str]:
    page = service.execute("data/list", {"dbHandle": db, "collection": "c", "filter": filter,
                                         "orderBy": "id"})  # fmt: skip
    return [r["id"] for r in page["items"]]


def test_size_takes_integral_floats(service: Service, rows: str) -> None:
    assert _ids(service, rows, {"tags": {"$size": 2.0}}) == ["r0", "r3"]
    assert _ids(service, rows, {"tags": {"$size": 0.0}}) == ["r2"]
    with pytest.raises(InvalidFilter, match="whole number"):
        _ids(service, rows, {"tags": {"$size": 2.5}})


def test_all_takes_scalars_and_says_so(service: Service, rows: str) -> None:
    with pytest.raises(InvalidFilter, match=r"\$all takes scalar values here") as caught:
        _ids(service, rows, {"tags": {"$all": [{"$elemMatch": {"k": 1}}]}})
    assert caught.value.field == "filter.tags.$all[0]"
    with pytest.raises(InvalidFilter, match=r"\$all takes scalar values here"):
        _ids(service, rows, {"tags": {"$all": [["a"]]}})
    both = {"$and": [{"tags": {"$elemMatch": {"k": 1}}}, {"tags": {"$all": ["a"]}}]}
    assert _ids(service, rows, both) == ["r3"]


def test_empty_elem_match_is_refused(service: Service, rows: str) -> None:
    with pytest.raises(InvalidFilter, match="an empty"):
        _ids(service, rows, {"tags": {"$elemMatch": {}}})
