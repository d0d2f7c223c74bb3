"""Contract: data/count groups, samples and splits, and the original's cursor, the same on every adapter.

Expected answers come from the Python rules (``adapters.facets.group_counts``,
``adapters.sampling.select``) applied to the same records, and for the small cases are spelled out.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from dbhandles import InvalidParams, Service
from dbhandles.adapters.facets import group_counts
from dbhandles.adapters.sampling import Sampling, sample_hash, select, split_bounds

CHATS = [
    {"id": "c1", "topics": ["python", "testing"], "source": "git", "quality": 0.9,
     "messages": [{"role": "system"}, {"role": "user"}, {"role": "assistant"}]},
    {"id": "c2", "topics": ["python"], "source": "git", "quality": 0.5,
     "messages": [{"role": "user"}, {"content": "no role"}]},
    {"id": "c3", "topics": [], "source": "chat", "quality": 1, "messages": "not a list"},
    {"id": "c4", "source": None, "quality": 1.0, "flag": True},
    {"id": "c5", "topics": ["rust", "python", "python"], "source": "git", "flag": 1,
     "messages": [[{"role": "user"}], {"role": "user"}]},
]  # fmt: skip


@pytest.fixture
def chats(service: Service, db: str) -> str:
    ops = [{"op": "create", "collection": "chats", "data": c} for c in CHATS]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


def count(service: Service, db: str, **params: Any) -> dict[str, Any]:
    return service.execute("data/count", {"dbHandle": db, "collection": "chats", **params})


def pairs(result: dict[str, Any]) -> list[tuple[list[Any], int]]:
    return [(list(g["key"].values()), g["count"]) for g in result["groups"]]


def test_count_without_group_by_is_the_number_of_matches(service: Service, chats: str) -> None:
    assert count(service, chats)["total"] == 5
    result = count(service, chats, filter={"source": "git"})
    assert (result["total"], result["groups"], result["groupCount"]) == (3, [], 0)


def test_count_per_array_element_most_frequent_first(service: Service, chats: str) -> None:
    result = count(service, chats, groupBy="topics")
    # c5 holds python twice: each element counts; c3 (empty) and c4 (missing) count under null.
    assert pairs(result) == [(["python"], 4), ([None], 2), (["rust"], 1), (["testing"], 1)]
    assert result["total"] == 5 and result["groupCount"] == 4


def test_count_through_an_array_of_objects(service: Service, chats: str) -> None:
    result = count(service, chats, groupBy="messages.role")
    # c2's second message has no role, c3's messages is a string, c4 has none, and c5's nested
    # array is an element that is not an object: each of those is one null.
    assert pairs(result) == [([None], 4), (["user"], 3), (["assistant"], 1), (["system"], 1)]


def test_count_keeps_types_apart_and_numbers_by_value(service: Service, chats: str) -> None:
    assert pairs(count(service, chats, groupBy="quality")) == [
        ([1], 2), ([None], 1), ([0.5], 1), ([0.9], 1),
    ]  # fmt: skip
    assert pairs(count(service, chats, groupBy=["flag"])) == [([None], 3), ([True], 1), ([1], 1)]


def test_count_several_fields_filter_and_limit(service: Service, chats: str) -> None:
    result = count(service, chats, groupBy=["source", "topics"], filter={"source": {"$ne": "chat"}},
                   limit=2)  # fmt: skip
    assert result["total"] == 4 and result["groupCount"] == 4
    assert pairs(result) == [(["git", "python"], 4), ([None, None], 1)]


def test_count_refuses_objects_and_system_fields(service: Service, chats: str) -> None:
    with pytest.raises(InvalidParams, match='"messages" holds objects'):
        count(service, chats, groupBy="messages")
    with pytest.raises(InvalidParams, match="system field"):
        count(service, chats, groupBy="createdAt")
    with pytest.raises(InvalidParams):
        count(service, chats, groupBy=["a", "b", "c", "d", "e"])


@pytest.mark.requires("durable")  # a second handle on the same data (a memory handle is its own)
def test_count_respects_the_row_filter(service: Service, chats: str) -> None:
    entry = service.registry.resolve(chats)
    narrowed = service.execute(
        "data/open", {"adapter": entry.adapter_name, "config": entry.config.public(),
                      "permissions": {"rowFilter": {"source": "git"}}},
    )["dbHandle"]  # fmt: skip
    result = count(service, narrowed, groupBy="source")
    assert pairs(result) == [(["git"], 3)] and result["total"] == 3


def _random_records(rng: random.Random, n: int) -> list[dict[str, Any]]:
    values: list[Any] = [None, True, False, 0, 1, 2.5, -3, "a", "b", "B", "", [], ["a"], ["a", 1]]
    out = []
    for i in range(n):
        record: dict[str, Any] = {"id": f"r{i:03d}"}
        for name in ("x", "y"):
            if rng.random() < 0.8:
                record[name] = rng.choice(values)
        if rng.random() < 0.5:
            record["nest"] = rng.choice([[{"x": rng.choice(values)} for _ in range(rng.randint(0, 3))],
                                         {"x": rng.choice(values)}, "s", None])  # fmt: skip
        out.append(record)
    return out


@pytest.mark.parametrize("group_by", [("x",), ("x", "y"), ("nest.x",), ("nest.x", "x")])
def test_count_agrees_with_the_rule_on_varied_records(
    service: Service, db: str, group_by: tuple[str, ...]
) -> None:
    records = _random_records(random.Random(14), 120)
    ops = [{"op": "create", "collection": "mixed", "data": r} for r in records]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    paths = tuple(tuple(p.split(".")) for p in group_by)
    expected = group_counts(records, paths, 500)
    result = service.execute(
        "data/count",
        {"dbHandle": db, "collection": "mixed", "groupBy": list(group_by), "limit": 500},
    )
    assert result["total"] == expected.total == 120
    assert result["groupCount"] == expected.group_count
    got = [(tuple(g["key"][p] for p in group_by), g["count"]) for g in result["groups"]]
    assert [(list(k), n) for k, n in got] == [(list(k), n) for k, n in expected.groups]
    # A bool and a number never share a group (True == 1 in Python).
    assert all(type(a) is type(b) for (k, _), (e, _) in zip(got, expected.groups, strict=True)
               for a, b in zip(k, e, strict=True))  # fmt: skip


# -- samples and splits ----------------------------------------------------------------------------


@pytest.fixture
def rows(service: Service, db: str) -> str:
    ops = [
        {"op": "create", "collection": "rows", "id": f"id-{i:03d}", "data": {"n": i % 5}}
        for i in range(200)
    ]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    return db


ALL_IDS = [f"id-{i:03d}" for i in range(200)]
FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def listed(service: Service, db: str, **params: Any) -> dict[str, Any]:
    return service.execute(
        "data/list", {"dbHandle": db, "collection": "rows", "limit": 500, **params}
    )


def test_sample_is_the_smallest_hashes_and_same_everywhere(service: Service, rows: str) -> None:
    result = listed(service, rows, sample=17, seed=7)
    expected = select([{"id": i} for i in ALL_IDS], Sampling(size=17, seed=7))
    assert [r["id"] for r in result["items"]] == [r["id"] for r in expected]
    assert result["count"] == 17
    ranked = sorted(ALL_IDS, key=lambda i: sample_hash("sample", 7, i))[:17]
    assert sorted(ranked) == [r["id"] for r in result["items"]]
    assert listed(service, rows, sample=17, seed=8)["items"] != result["items"]


def test_sample_within_a_filter_and_ordered(service: Service, rows: str) -> None:
    result = listed(service, rows, sample=10, seed=1, filter={"n": 3}, orderBy="-id")
    matching = [i for k, i in enumerate(ALL_IDS) if k % 5 == 3]
    expected = [r["id"] for r in select([{"id": i} for i in matching], Sampling(size=10, seed=1))]
    assert [r["id"] for r in result["items"]] == sorted(expected, reverse=True)


def test_split_parts_cover_everything_once(service: Service, rows: str) -> None:
    seen: list[str] = []
    for name in FRACTIONS:
        split = {"name": name, "fractions": FRACTIONS, "seed": 7}
        result = listed(service, rows, split=split)
        low, high = split_bounds(FRACTIONS, name)
        expected = [i for i in ALL_IDS if low <= sample_hash("split", 7, i) < high]
        assert [r["id"] for r in result["items"]] == expected and result["count"] == len(expected)
        seen += expected
    assert sorted(seen) == ALL_IDS
    train = listed(service, rows, split={"name": "train", "fractions": FRACTIONS, "seed": 7})
    assert 140 <= train["count"] <= 180


def test_split_and_sample_page_with_next_cursor(service: Service, rows: str) -> None:
    split = {"name": "train", "fractions": FRACTIONS, "seed": 3}
    whole = [r["id"] for r in listed(service, rows, split=split, sample=50, seed=2)["items"]]
    paged: list[str] = []
    cursor = None
    while True:
        page = listed(service, rows, split=split, sample=50, seed=2, limit=7,
                      **({"cursor": cursor} if cursor else {}))  # fmt: skip
        paged += [r["id"] for r in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert paged == whole and len(whole) == 50


def test_query_cursor_pages_a_sample(service: Service, rows: str) -> None:
    opened = service.execute("data/query-open", {
        "dbHandle": rows, "collection": "rows", "sample": 30, "seed": 5, "pageSize": 8,
        "orderBy": ["n"],
    })  # fmt: skip
    assert opened["totalCount"] == 30
    seen: list[str] = []
    while True:
        page = service.execute("data/query-next", {"queryHandle": opened["queryHandle"]})
        seen += [r["id"] for r in page["items"]]
        if not page["hasMore"]:
            break
    expected = select([{"id": i} for i in ALL_IDS], Sampling(size=30, seed=5))
    assert sorted(seen) == sorted(r["id"] for r in expected) and len(seen) == 30


@pytest.mark.parametrize(
    "params",
    [
        {"orderBy": "random"},
        {"orderBy": ["-RANDOM"]},
        {"orderBy": "shuffle desc"},
        {"split": {"name": "dev", "fractions": FRACTIONS}},
        {"split": {"name": "train", "fractions": {"train": 0.8, "test": 0.1}}},
        {"seed": 3},
        {"sample": 0},
    ],
)
def test_bad_sampling_and_random_order_are_refused(
    service: Service, rows: str, params: dict[str, Any]
) -> None:
    with pytest.raises(InvalidParams):
        listed(service, rows, **params)


# -- the original's cursor -------------------------------------------------------------------------


def test_legacy_cursor_with_id_pages_shared_values_exactly(service: Service, db: str) -> None:
    # One import: every record shares createdAt.
    ops = [{"op": "create", "collection": "batch", "id": f"b{i:02d}", "data": {"i": i}}
           for i in range(50)]  # fmt: skip
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    for direction in ("after", "before"):
        seen: list[str] = []
        cursor: dict[str, Any] | None = None
        while True:
            params: dict[str, Any] = {"dbHandle": db, "collection": "batch", "limit": 7}
            if cursor is not None:
                params["cursor"] = cursor
            else:
                params["orderBy"] = [
                    {"field": "createdAt", "direction": "asc" if direction == "after" else "desc"}
                ]
            page = service.execute("data/list", params)
            if not page["items"]:
                break
            seen += [r["id"] for r in page["items"]]
            last = page["items"][-1]
            cursor = {"field": "createdAt", "value": last["createdAt"], "direction": direction,
                      "id": last["id"]}  # fmt: skip
        assert sorted(seen) == sorted(o["id"] for o in ops) and len(seen) == 50


def test_legacy_cursor_without_id_is_refused_on_shared_values(service: Service, db: str) -> None:
    ops = [{"op": "create", "collection": "batch", "data": {"k": i // 3, "i": i}} for i in range(9)]
    service.execute("data/batch", {"dbHandle": db, "operations": ops})
    with pytest.raises(InvalidParams, match="cannot say where"):
        service.execute("data/list", {"dbHandle": db, "collection": "batch", "limit": 2,
                                      "cursor": {"field": "k", "value": 0}})  # fmt: skip
    # Unique values page exactly without an id; a null value sorts first.
    rows = service.execute("data/list", {"dbHandle": db, "collection": "batch",
                                         "cursor": {"field": "i", "value": 6}})  # fmt: skip
    assert [r["i"] for r in rows["items"]] == [7, 8] and rows["count"] == 9
    every = sorted(r["id"] for r in service.execute(
        "data/list", {"dbHandle": db, "collection": "batch"})["items"])  # fmt: skip
    rows = service.execute("data/list", {"dbHandle": db, "collection": "batch", "cursor": {
        "field": "missing", "value": None, "id": every[3]}})  # fmt: skip
    assert [r["id"] for r in rows["items"]] == every[4:]
    with pytest.raises(InvalidParams, match="pages a list ordered by"):
        service.execute("data/list", {"dbHandle": db, "collection": "batch", "orderBy": "-k",
                                      "cursor": {"field": "k", "value": 0, "direction": "after"}})  # fmt: skip
