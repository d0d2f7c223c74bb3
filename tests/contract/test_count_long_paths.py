"""Contract: ``data/count`` groups by a path of any length a record can hold (1 to
``filters.MAX_PATH_PARTS`` parts), with and without arrays on the way, with the same answer on every
adapter. SQLite once answered ``storage_error`` ("parser stack overflow") from 12 parts through an
array and from 16 without, while the memory adapter answered (docs/counting.md)."""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters.facets import group_counts
from dbhandles.filters import MAX_PATH_PARTS
from dbhandles.values import MAX_DEPTH


def _nest(parts: int, leaf: Any, name: str = "a") -> Any:
    """``leaf`` under ``parts`` levels of ``{name: ...}``."""
    for _ in range(parts):
        leaf = {name: leaf}
    return leaf


def _records(parts: int, arrays: bool, name: str = "a") -> list[dict[str, Any]]:
    """Records for the path of ``parts`` times ``name``: one plain, one missing it and, with
    ``arrays``, one crossing an array at its first step, one at its middle step (where an element
    that is no object reaches nothing: null), and one ending on an array of scalars (each element a
    group)."""
    records: list[dict[str, Any]] = [{"id": "plain", **_nest(parts, "plain", name)}, {"id": "none"}]
    if arrays:
        middle = max(1, parts // 2)
        rest = parts - middle
        records += [
            {"id": "first", name: [_nest(parts - 1, "x", name), _nest(parts - 1, "y", name)]},
            {"id": "middle", **_nest(middle, [_nest(rest, "z", name), 5] if rest else ["z"], name)},
            {"id": "end", **_nest(parts, ["s", "t", True], name)},
        ]
    return records


def _groups(result: dict[str, Any], path: str) -> dict[Any, int]:
    return {orjson_key(g["key"][path]): g["count"] for g in result["groups"]}


def orjson_key(value: Any) -> Any:
    return ("bool", value) if isinstance(value, bool) else value


def _expected(records: list[dict[str, Any]], path: tuple[str, ...]) -> dict[Any, int]:
    found = group_counts(records, (path,), 1000)
    return {orjson_key(key[0]): n for key, n in found.groups}


@pytest.mark.parametrize("arrays", [False, True], ids=["plain", "through arrays"])
def test_a_path_of_every_length_is_counted(service: Service, db: str, arrays: bool) -> None:
    # A record nests at most MAX_DEPTH levels: an array on the way takes one of them.
    longest = MAX_PATH_PARTS if not arrays else MAX_DEPTH - 1
    assert MAX_PATH_PARTS == MAX_DEPTH == 64
    for parts in range(1, longest + 1):
        records = _records(parts, arrays)
        collection = f"p{parts}"
        ops = [{"op": "create", "collection": collection, "data": r} for r in records]
        service.execute("data/batch", {"dbHandle": db, "operations": ops})
        path = ".".join(["a"] * parts)
        result = service.execute(
            "data/count", {"dbHandle": db, "collection": collection, "groupBy": path}
        )
        expected = _expected(records, ("a",) * parts)
        assert _groups(result, path) == expected, parts
        assert result["total"] == len(records)
        want = {"plain", None} | ({"x", "y", "z", "s", "t", ("bool", True)} if arrays else set())
        assert set(expected) == want, parts


def test_several_long_paths_through_arrays_are_counted_together(service: Service, db: str) -> None:
    """Four paths of 60 parts (``MAX_GROUP_FIELDS``), each through arrays: the combinations check
    walks each of them too."""
    parts = 60
    record: dict[str, Any] = {"id": "r"}
    for name in "bcde":
        record |= _nest(parts // 2, [_nest(parts - parts // 2, v, name) for v in (1, 2)], name)
    other = {"id": "o", **_nest(parts, "only", "b")}
    ops = [{"op": "create", "collection": "wide", "data": r} for r in (record, other)]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    paths = [".".join([name] * parts) for name in "bcde"]
    result = service.execute(
        "data/count", {"dbHandle": db, "collection": "wide", "groupBy": paths, "limit": 100}
    )
    expected = group_counts([record, other], tuple((n,) * parts for n in "bcde"), 100)
    got = [(tuple(g["key"][p] for p in paths), g["count"]) for g in result["groups"]]
    assert got == [(key, n) for key, n in expected.groups]
    assert (result["total"], result["groupCount"]) == (2, 17)


def test_several_paths_count_each_combination_of_values_per_record(
    service: Service, db: str
) -> None:
    """Each path's values are read per record on their own and joined on the record (a record
    holding a value twice counts it twice in every combination); the answer is the rule's on every
    adapter. Walking the second path once per value of the first made two 59-part paths through
    four arrays pass the time budget on 3,000 records (tests/test_facets_sql.py bounds the work)."""
    parts = 20
    records: list[dict[str, Any]] = []
    for i in range(12):
        b: Any = f"v{i % 3}"
        c: Any = [i % 2, i % 2, None] if i % 4 else []
        for level in reversed(range(1, parts)):
            b = {"b": [b, f"w{i % 2}"] if level in (5, 12) else b}
            c = {"c": [c, c] if level == 9 else c}
        records.append({"id": f"r{i}", "b": b, "c": c, "keep": i % 5 != 0})
    records.append({"id": "bare", "keep": True})
    ops = [{"op": "create", "collection": "deep", "data": r} for r in records]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    paths = (("b",) * parts, ("c",) * parts)
    names = [".".join(p) for p in paths]
    result = service.execute(
        "data/count",
        {"dbHandle": db, "collection": "deep", "groupBy": names, "filter": {"keep": True},
         "limit": 100},
    )  # fmt: skip
    expected = group_counts([r for r in records if r["keep"]], paths, 100)
    got = [(tuple(orjson_key(g["key"][n]) for n in names), g["count"]) for g in result["groups"]]
    assert got == [(tuple(orjson_key(v) for v in key), n) for key, n in expected.groups]
    assert (result["total"], result["groupCount"]) == (expected.total, expected.group_count)
    assert expected.total == 10 and expected.group_count > 6
