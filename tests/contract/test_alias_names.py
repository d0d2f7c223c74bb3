"""Contract: a collection may be named like any name the SQL compilers give a table expression.

The group and sample statements name their table expressions (``src``, ``s0``, ``p0``, ``c0``,
``w0_0``, ...) ``"_dbh_..."``, a prefix no collection name may start with in any case, so none hides
the collection's table (SQLite compares names without case: ``P0`` too). Each name is tried with
counts of one and several paths, through an array and not, with lists, a sample, a cursor and an
export, on every adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dbhandles import Service

#: Names the compilers give table expressions and aliases (collection names ignore case).
NAMES = ["src", "s", "s0", "S1", "p0", "P1", "c0", "C1", "w0_0", "W0_1", "w1_0", "t", "g", "g0",
         "d0", "e0", "x0", "xf0", "n"]  # fmt: skip

RECORDS = [
    {"id": "r1", "t": "a", "n": 1, "a": [{"b": 1, "c": "x"}, {"b": 2, "c": "x"}]},
    {"id": "r2", "t": "b", "n": 1, "a": {"b": 1, "c": "y"}},
]


def _pairs(result: dict[str, Any]) -> list[tuple[list[Any], int]]:
    return [(list(g["key"].values()), g["count"]) for g in result["groups"]]


def test_collections_named_like_the_compilers_table_expressions_answer(
    service: Service, db: str, tmp_path: Path
) -> None:
    ops = [{"op": "create", "collection": n, "data": r} for n in NAMES for r in RECORDS]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    for name in NAMES:
        base = {"dbHandle": db, "collection": name}
        count = service.execute("data/count", {**base, "groupBy": ["t", "n"]})
        assert _pairs(count) == [(["a", 1], 1), (["b", 1], 1)], name
        count = service.execute("data/count", {**base, "groupBy": "a.b"})
        assert _pairs(count) == [([1], 2), ([2], 1)], name
        count = service.execute("data/count", {**base, "groupBy": ["a.b", "a.c"]})
        assert sorted(_pairs(count)) == [([1, "x"], 2), ([1, "y"], 1), ([2, "x"], 2)], name
        sampled = service.execute("data/list", {**base, "sample": 1, "seed": 3})
        assert len(sampled["items"]) == 1, name
        listed = service.execute("data/list", {**base, "orderBy": ["id"]})
        assert [i["id"] for i in listed["items"]] == ["r1", "r2"], name
        opened = service.execute("data/query-open", {**base, "orderBy": ["n"], "pageSize": 1})
        seen = []
        while True:
            page = service.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
            seen += [i["id"] for i in page["items"]]
            if not page["hasMore"]:
                break
        assert sorted(seen) == ["r1", "r2"], name
        out = tmp_path / f"{name}.jsonl"
        service.execute("data/export", {**base, "output": str(out), "overwrite": True})
        exported = [json.loads(line) for line in out.read_text().splitlines()]
        assert sorted(r["id"] for r in exported) == ["r1", "r2"], name
