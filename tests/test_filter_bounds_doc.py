"""docs/filters.md lists every filter bound with its value, and each refusal reads as it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dbhandles import filters
from dbhandles.errors import InvalidFilter
from dbhandles.filters import parse_filter, parse_order_by

DOC = (Path(__file__).parent.parent / "docs" / "filters.md").read_text("utf-8")
BOUNDS = {name: getattr(filters, name) for name in dir(filters) if name.startswith("MAX_")}


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_every_filter_bound_is_documented_with_its_value(name: str) -> None:
    rows = [line for line in DOC.splitlines() if f"(`{name}`)" in line]
    assert rows, f"{name} is missing from docs/filters.md's bounds"
    assert all(re.search(rf"\| {BOUNDS[name]}( levels)? \|", row) for row in rows), rows


@pytest.mark.parametrize(
    ("spec", "message"),
    [({"k": {"$in": [1] * 10_001}}, "filter.k.$in: at most 10000 values"),
     ({"k": {"$nin": [1] * 10_001}}, "filter.k.$nin: at most 10000 values"),
     ({"k": {"$all": [1] * 10_001}}, "filter.k.$all: expects a list of at most 10000 values"),
     ({"k": {"$regex": "a" * 1001}},
      "filter.k.$regex: expects a regular expression of at most 1000 characters")],
)  # fmt: skip
def test_a_filter_past_a_bound_is_refused_as_documented(spec: object, message: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(spec)
    assert str(caught.value) == message
    assert f"`{message.replace('$nin', '$in')}`" in DOC  # one row for both
    parse_filter({"k": {"$in": [1] * 10_000}})  # the bound itself is allowed


def test_an_order_past_the_sort_keys_bound_is_refused_as_documented() -> None:
    with pytest.raises(InvalidFilter, match="orderBy: at most 8 sort keys") as caught:
        parse_order_by([{"field": f"a{i}"} for i in range(9)])
    assert f"`{caught.value}`" in DOC
