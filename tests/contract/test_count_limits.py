"""Contract: the bounds of data/count, the same on every adapter (issue 14, item 2).

With several ``groupBy`` paths one record may give at most ``MAX_COMBINATIONS`` combinations of
values (the product of its numbers of values); more is ``invalid_params`` on ``groupBy``, checked
before objects are refused. One path has no such bound.
"""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles import InvalidParams, Service
from dbhandles.adapters.facets import MAX_COMBINATIONS


def _put(service: Service, db: str, *records: dict[str, Any]) -> None:
    ops = [{"op": "create", "collection": "wide", "data": r} for r in records]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})


def _count(service: Service, db: str, group_by: Any) -> dict[str, Any]:
    return service.execute(
        "data/count", {"dbHandle": db, "collection": "wide", "groupBy": group_by, "limit": 1}
    )


def test_combinations_up_to_the_cap_are_counted(service: Service, db: str) -> None:
    assert MAX_COMBINATIONS == 10_000
    _put(service, db, {"id": "r", **{k: list(range(10)) for k in "abcd"}})
    result = _count(service, db, ["a", "b", "c", "d"])
    assert (result["total"], result["groupCount"]) == (1, 10_000)


def test_combinations_past_the_cap_are_refused_naming_group_by(service: Service, db: str) -> None:
    _put(service, db, {"id": "ok", "a": 1}, {"id": "r", **{k: list(range(10)) for k in "abc"},
                                              "d": list(range(11))})  # fmt: skip
    with pytest.raises(InvalidParams, match="more than 10000 combinations") as caught:
        _count(service, db, ["a", "b", "c", "d"])
    assert caught.value.field == "groupBy"


def test_values_through_arrays_of_objects_count_toward_the_cap(service: Service, db: str) -> None:
    # m.k reaches 2 * 101 values, n holds 50: 10,100 combinations.
    _put(service, db, {"id": "r", "m": [{"k": list(range(101))}, {"k": list(range(101))}],
                       "n": list(range(50))})  # fmt: skip
    with pytest.raises(InvalidParams, match="combinations"):
        _count(service, db, ["m.k", "n"])
    assert _count(service, db, ["m.k"])["groupCount"] == 101


def test_the_cap_comes_before_objects(service: Service, db: str) -> None:
    _put(service, db, {"id": "a", "o": {"x": 1}, "p": 1},
         {"id": "b", "o": list(range(101)), "p": list(range(100))})  # fmt: skip
    with pytest.raises(InvalidParams, match="combinations"):
        _count(service, db, ["o", "p"])
    with pytest.raises(InvalidParams, match='"o" holds objects'):
        _count(service, db, "o")


def test_one_path_has_no_cap(service: Service, db: str) -> None:
    _put(service, db, {"id": "r", "a": list(range(MAX_COMBINATIONS + 1))})
    assert _count(service, db, "a")["groupCount"] == MAX_COMBINATIONS + 1


def test_objects_are_named_by_the_first_such_path(service: Service, db: str) -> None:
    _put(service, db, {"id": "a", "o": 1, "p": {"x": 1}}, {"id": "b", "o": {"x": 1}, "p": 1})
    with pytest.raises(InvalidParams, match='groupBy: "o" holds objects'):
        _count(service, db, ["o", "p"])
