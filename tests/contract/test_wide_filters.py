"""Contract: wide ``$or`` / ``$and`` filters give the same answer on every adapter (issue 14, item 4):
the SQL adapters write long conjunctions and disjunctions as balanced trees, so SQLite's expression
depth limit (1000) is never reached by their width."""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles import Service


@pytest.fixture
def rows(service: Service, db: str) -> str:
    ops = [{"op": "create", "collection": "c", "id": f"r{i}", "data": {"n": i, "tags": [i, -i]}}
           for i in range(20)]  # fmt: skip
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


def _ids(service: Service, db: str, filter: dict[str, Any]) -> list[str]:
    page = service.execute("data/list", {"dbHandle": db, "collection": "c", "filter": filter,
                                         "orderBy": "n"})  # fmt: skip
    return [r["id"] for r in page["items"]]


@pytest.mark.parametrize("width", [33, 1000])
def test_wide_or_and_and(service: Service, rows: str, width: int) -> None:
    branches = [{"n": i * 7} for i in range(width)]  # 0, 7, 14 match
    assert _ids(service, rows, {"$or": branches}) == ["r0", "r7", "r14"]
    nots = [{"n": {"$ne": i * 7}} for i in range(width)]
    assert _ids(service, rows, {"$and": nots}) == [f"r{i}" for i in range(20) if i % 7]
    # Branches through arrays (each one a subquery on the SQL adapters).
    arrays = [{"tags": -i * 7} for i in range(width)]
    assert _ids(service, rows, {"$or": arrays}) == ["r0", "r7", "r14"]
