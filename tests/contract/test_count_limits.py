"""Contract: the bounds of data/count, the same on every adapter (issue 14, item 2).

With several ``groupBy`` paths one record may give at most ``MAX_COMBINATIONS`` combinations of
values (the product of its numbers of values); more is ``invalid_params`` on ``groupBy``, checked
before objects are refused. One path has no such bound. The group keys of one answer stop at
``group_bytes.MAX_GROUP_BYTES`` (a page's 128 MiB): ``query_failed`` with the largest ``limit``
that passes.
"""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles import InvalidParams, QueryFailed, Service
from dbhandles.adapters import group_bytes
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


def test_group_keys_past_the_byte_bound_are_refused_with_the_largest_limit(
    service: Service, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Round 15: 23 records of different 9 MiB strings grouped by that field answered 217 MB
    # (4.5 GB with limit 500). The keys of one answer stop at a page's bound, lowered here to
    # three 300-character keys: every adapter refuses the fourth, naming the collection, the
    # bound and the largest limit that passes, which is then served.
    monkeypatch.setattr(group_bytes, "MAX_GROUP_BYTES", 1_000)
    _put(service, db, *({"id": f"r{i}", "s": str(i) * 300, "n": i} for i in range(6)))
    params = {"dbHandle": db, "collection": "wide", "groupBy": "s", "limit": 10}
    with pytest.raises(QueryFailed) as caught:
        service.execute("data/count", params)
    message = caught.value.message
    assert (caught.value.code, caught.value.http_status) == ("query_failed", 409)
    assert '"wide"' in message and '"s"' in message and "passed at its group 4" in message
    assert "ask for at most 3 groups (limit), or group by a shorter field" in message
    served = service.execute("data/count", {**params, "limit": 3})
    assert [g["key"]["s"] for g in served["groups"]] == [str(i) * 300 for i in range(3)]
    assert (served["total"], served["groupCount"]) == (6, 6)
    # Short keys of the same records are no concern: the bound is on what the answer holds.
    assert service.execute("data/count", {**params, "groupBy": "n"})["groupCount"] == 6


def test_one_group_key_past_the_byte_bound_says_to_group_by_a_shorter_field(
    service: Service, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_bytes, "MAX_GROUP_BYTES", 1_000)
    _put(service, db, {"id": "r", "s": "x" * 2_000})
    with pytest.raises(QueryFailed, match="its first group alone passes it: group by a shorter"):
        service.execute("data/count", {"dbHandle": db, "collection": "wide", "groupBy": "s"})
