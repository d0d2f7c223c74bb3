"""A field path is split and checked once, not once by the params and again by the handler
(issue 14: ``metadata.a.b`` was parsed twice per call); the answers stay the same, and a refused
path is refused every time, naming each call's own field."""

from __future__ import annotations

import collections
from typing import Any

import pytest

from dbhandles import Service, filters
from dbhandles.byte_cache import NAME_CACHE_BYTES, ByteCache
from dbhandles.errors import InvalidFilter


@pytest.fixture
def splits(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    counted: collections.Counter[str] = collections.Counter()
    split = filters._split_path

    def counting(path: object, field: str, indexes: bool) -> tuple[str, ...]:
        counted[str(path)] += 1
        return split(path, field, indexes)

    monkeypatch.setattr(filters, "_split_path", counting)
    monkeypatch.setattr(filters, "_PATHS", ByteCache(NAME_CACHE_BYTES))
    return counted


def test_a_dotted_path_is_split_once_per_call(
    service: Service, splits: collections.Counter[str]
) -> None:
    db = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    for i, b in enumerate([3, 1, 2]):
        service.execute("data/create", {"dbHandle": db, "collection": "c", "id": f"r{i}",
                                        "data": {"metadata": {"a": {"b": b}}}})  # fmt: skip
    base: dict[str, Any] = {"dbHandle": db, "collection": "c"}
    listed = service.execute("data/list", {**base, "filter": {"metadata.a.b": {"$gte": 2}},
                                           "orderBy": [{"field": "metadata.a.b"}]})  # fmt: skip
    assert [r["id"] for r in listed["items"]] == ["r2", "r0"]
    counted = service.execute("data/count", {**base, "filter": {"metadata.a.b": {"$gte": 2}}})
    assert counted["total"] == 2
    assert splits["metadata.a.b"] <= 2  # one with indexes (filters), one without (orderBy)
    before = dict(splits)
    service.execute("data/list", {**base, "filter": {"metadata.a.b": 1},
                                  "orderBy": [{"field": "metadata.a.b"}]})  # fmt: skip
    assert dict(splits) == before


def test_a_refused_path_names_each_call_s_field(splits: collections.Counter[str]) -> None:
    for field in ("filter", "orderBy[0]"):
        with pytest.raises(InvalidFilter) as caught:
            filters.validate_path("metadata.$a.b", field)
        assert caught.value.field == field
    assert splits["metadata.$a.b"] == 2
