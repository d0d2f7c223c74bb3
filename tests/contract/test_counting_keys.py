"""Contract: ``data/count`` group keys follow one rule on every adapter (docs/counting.md "Group keys"):
numbers group by value, an integral number's key is the integer; the one difference, a float past
2**53 on an adapter without ``Features.exact_large_floats`` (PostgreSQL), is pinned, not hidden."""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles import Service
from tests.contract.conftest import features


def _groups(service: Service, db: str, values: list[Any]) -> list[tuple[Any, int]]:
    ops = [{"op": "create", "collection": "k", "id": f"r{i}", "data": {"n": v}}
           for i, v in enumerate(values)]  # fmt: skip
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    result = service.execute("data/count", {"dbHandle": db, "collection": "k", "groupBy": "n"})
    return [(g["key"]["n"], g["count"]) for g in result["groups"]]


@pytest.mark.parametrize("first", ["float", "int"])
def test_an_integral_number_has_an_integer_key_whichever_came_first(
    service: Service, db: str, first: str
) -> None:
    values: list[Any] = [2.0**53, 2**53, 1.0, 1, -(2.0**60), 2.5]
    if first == "int":
        values = [2**53, 2.0**53, 1, 1.0, -(2.0**60), 2.5]
    groups = _groups(service, db, values)
    assert sorted(groups) == [(-(2**60), 1), (1, 2), (2.5, 1), (2**53, 2)]
    assert sorted((type(k).__name__, k) for k, _ in groups) == [
        ("float", 2.5), ("int", -(2**60)), ("int", 1), ("int", 2**53)]  # fmt: skip


def test_distinct_numbers_past_2_53_are_distinct_groups_where_floats_are_exact(
    service: Service, db: str, adapter_name: str
) -> None:
    big_float = 9223372036854774784.0  # 2**63 - 1024, the float below 2**63
    groups = dict(_groups(service, db, [big_float, 9223372036854775000, 9223372036854774785,
                                        9223372036854775807]))  # fmt: skip
    if features(adapter_name).exact_large_floats:
        assert groups == {9223372036854774784: 1, 9223372036854775000: 1,
                          9223372036854774785: 1, 9223372036854775807: 1}  # fmt: skip
        return
    # PostgreSQL: jsonb holds the float as "9.223372036854775e18", the integer 9223372036854775000.
    # The float and that integer are one group there, its key either number.
    merged = {k: n for k, n in groups.items() if k in (9223372036854774784, 9223372036854775000)}
    assert list(merged.values()) == [2]
    assert {k: n for k, n in groups.items() if k not in merged} == {
        9223372036854774785: 1, 9223372036854775807: 1}  # fmt: skip
