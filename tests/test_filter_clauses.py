"""The bound on one filter's clauses (issue 13): a wide ``$or``/``$and``/``$nor`` or a nested one is
refused ``invalid_filter`` naming the limit before anything costs in proportion to it, on every
adapter; and compiling a filter to SQL counts against the query's time budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, budget
from dbhandles.adapters.sql_compile import SqlCompiler
from dbhandles.adapters.sqlite_compile import SqliteDialect
from dbhandles.errors import InvalidFilter, QueryTimeout
from dbhandles.filter_size import MAX_FILTER_CLAUSES, check_filter_size
from dbhandles.filters import parse_filter

DOC = (Path(__file__).parent.parent / "docs" / "filters.md").read_text("utf-8")
N = MAX_FILTER_CLAUSES


def wide(op: str, n: int) -> dict[str, Any]:
    return {op: [{"s": f"a{i}"} for i in range(n)]}


SHAPES: dict[str, dict[str, Any]] = {
    "or": wide("$or", 10_000),
    "and": wide("$and", N + 1),
    "nor": wide("$nor", N + 1),
    "or-of-ands": {"$or": [{"$and": [{"a": i}, {"b": i}]} for i in range(N // 2)]},
    "and-of-ors": {"$and": [wide("$or", 20) for _ in range(N // 20)]},
    "not-nested": {"$or": [{"s": {"$not": {"$eq": i}}} for i in range(N)]},
    "elem-match": {"m": {"$elemMatch": {f"f{i}": i for i in range(N + 1)}}},
    "many-fields": {f"f{i}": i for i in range(N + 1)},
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_filter_past_the_clause_bound_is_refused_naming_it(shape: str) -> None:
    with pytest.raises(InvalidFilter) as caught:
        parse_filter(SHAPES[shape])
    assert caught.value.code == "invalid_filter"
    assert f"more than {N} clauses" in str(caught.value)
    assert "MAX_FILTER_CLAUSES" in str(caught.value)
    assert caught.value.details == {"limit": N}


def test_the_bound_itself_is_allowed_and_in_values_count_once() -> None:
    parse_filter(wide("$or", N - 1))  # N - 1 objects of one key, plus the $or
    parse_filter({"s": {"$in": [f"a{i}" for i in range(10_000)]}})  # what to use instead
    check_filter_size({"s": {"$in": list(range(10_000))}})


def test_the_bound_is_documented_with_its_value() -> None:
    rows = [line for line in DOC.splitlines() if "(`MAX_FILTER_CLAUSES`)" in line]
    assert rows and all(f"| {N} |" in row for row in rows), rows


def test_every_adapter_refuses_a_wide_filter(service: Service, db: str) -> None:
    service.execute("data/create", {"dbHandle": db, "collection": "c", "id": "r1",
                                    "data": {"s": "a1"}})  # fmt: skip
    for command in ("data/list", "data/count", "data/query-open"):
        params = {"dbHandle": db, "collection": "c", "filter": SHAPES["or"]}
        with pytest.raises(InvalidFilter, match="MAX_FILTER_CLAUSES"):
            service.execute(command, params)
    # Within the bound, it is answered.
    found = service.execute("data/list", {"dbHandle": db, "collection": "c",
                                          "filter": wide("$or", 200)})  # fmt: skip
    assert [r["id"] for r in found["items"]] == ["r1"]


def test_compiling_a_filter_counts_against_the_query_budget() -> None:
    node = parse_filter(wide("$or", 50))
    compiler = SqlCompiler(SqliteDialect())
    with budget.query_budget(60_000):
        budget.spend()  # the budget is over: compiling stops at its next clause
        with pytest.raises(QueryTimeout):
            compiler.where(node)
    compiler.where(node)  # no budget: compiled
