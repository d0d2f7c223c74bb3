"""Contract: filters, projections and sorts through arrays follow MongoDB's rules on every adapter.

The expected answers are MongoDB's for the same documents and queries (issue 14), except where
docs/filters.md lists a deliberate difference (null is missing for ``$exists``; no whole-array
equality).
"""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles import InvalidFilter, InvalidParams, Service

CHATS = [
    {"id": "c1", "messages": [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "2+2?"},
                              {"role": "assistant", "content": "4"}]},
    {"id": "c2", "messages": [{"role": "user", "content": "hi"}, {"content": "no role"}]},
    {"id": "t1", "tags": ["a", "b"], "f": [None], "n": [3, 1, 7]},
    {"id": "t2", "tags": "a", "n": 5, "f": 1},
    {"id": "t3", "tags": [], "f": None, "n": [[2], {"x": 1}]},
    {"id": "t4", "tags": ["b", None], "n": [10.5, "x"]},
]  # fmt: skip


@pytest.fixture
def chats(service: Service, db: str) -> str:
    for record in CHATS:
        service.execute("data/create", {"dbHandle": db, "collection": "chats", "data": record})
    return db


def listed(service: Service, db: str, **params: Any) -> dict[str, Any]:
    return service.execute("data/list", {"dbHandle": db, "collection": "chats", **params})


def ids(service: Service, db: str, **params: Any) -> list[str]:
    return [item["id"] for item in listed(service, db, **params)["items"]]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        # the issue's chat record
        ({"messages.role": "assistant"}, ["c1"]),
        ({"messages.content": {"$regex": "4"}}, ["c1"]),
        ({"messages.role": None}, ["c2", "t1", "t2", "t3", "t4"]),
        ({"messages.role": {"$ne": None}}, ["c1"]),
        ({"messages.0.role": "system"}, ["c1"]),
        ({"messages.1.role": {"$exists": False}}, ["c2", "t1", "t2", "t3", "t4"]),
        ({"messages": {"$elemMatch": {"role": "user"}}}, ["c1", "c2"]),
        ({"messages": {"$elemMatch": {"role": "user", "content": "4"}}}, []),
        ({"messages": {"$elemMatch": {"role": "assistant", "content": "4"}}}, ["c1"]),
        ({"messages.role": {"$in": ["assistant", "tool"]}}, ["c1"]),
        ({"messages.role": {"$nin": ["user"]}}, ["t1", "t2", "t3", "t4"]),
        ({"messages": {"$size": 2}}, ["c2"]),
        # arrays of scalars
        ({"tags": "a"}, ["t1", "t2"]),
        ({"tags": {"$ne": "a"}}, ["c1", "c2", "t3", "t4"]),
        ({"tags": {"$nin": ["a"]}}, ["c1", "c2", "t3", "t4"]),
        ({"tags": {"$not": {"$eq": "a"}}}, ["c1", "c2", "t3", "t4"]),
        ({"tags": {"$exists": False}}, ["c1", "c2"]),
        ({"tags": {"$regex": "^b"}}, ["t1", "t4"]),
        ({"tags": None}, ["c1", "c2", "t4"]),
        ({"tags": {"$all": ["a", "b"]}}, ["t1"]),
        ({"tags": {"$all": []}}, []),
        ({"tags": {"$size": 0}}, ["t3"]),
        ({"n": {"$gt": 6}}, ["t1", "t4"]),
        ({"n": {"$lt": 2}}, ["t1"]),
        (
            {"n": {"$gt": 2, "$lt": 4}},
            ["t1"],
        ),  # 3 (MongoDB: each bound may hold for another element)
        ({"n": {"$elemMatch": {"$gt": 4, "$lt": 6}}}, []),
        ({"n": {"$elemMatch": {"$gt": 6, "$lt": 8}}}, ["t1"]),
        ({"n": 2}, []),  # nested arrays are not entered
        ({"n.x": 1}, ["t3"]),
        ({"n.0": 3}, ["t1"]),
        ({"f": None}, ["c1", "c2", "t1", "t3", "t4"]),
        ({"f": {"$ne": None}}, ["t2"]),
    ],
)
def test_filters_through_arrays_give_mongodbs_answers(
    service: Service, chats: str, filter_: Any, expected: list[str]
) -> None:
    assert ids(service, chats, filter=filter_) == expected
    negated = [r["id"] for r in CHATS if r["id"] not in expected]
    assert ids(service, chats, filter={"$not": filter_}) == negated


def test_equality_with_a_whole_array_is_refused_clearly(service: Service, chats: str) -> None:
    with pytest.raises(InvalidFilter, match=r"filter\.tags: .*whole-array equality"):
        ids(service, chats, filter={"tags": ["a", "b"]})
    with pytest.raises(InvalidFilter, match=r"\$size: expects a whole number"):
        ids(service, chats, filter={"tags": {"$size": -1}})


def test_projections_through_arrays_keep_the_sub_values(service: Service, chats: str) -> None:
    items = listed(service, chats, filter={"id": "c1"}, fields=["messages.role"])["items"]
    assert items == [
        {"id": "c1", "messages": [{"role": "system"}, {"role": "user"}, {"role": "assistant"}]}
    ]
    items = listed(service, chats, filter={"id": "c2"}, fields=["messages.role", "messages"])[
        "items"
    ]
    assert items == [{"id": "c2", "messages": CHATS[1]["messages"]}]
    items = listed(service, chats, filter={"id": "t3"}, fields=["n.x"])["items"]
    assert items == [{"id": "t3", "n": [[], {"x": 1}]}]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        # MongoDB: ascending by the smallest element, descending by the largest; [] sorts as missing.
        ("n", ["c1", "c2", "t1", "t2", "t4", "t3"]),
        ("-n", ["t3", "t4", "t1", "t2", "c1", "c2"]),
        ("tags", ["c1", "c2", "t3", "t4", "t1", "t2"]),
        ("-tags", ["t1", "t4", "t2", "c1", "c2", "t3"]),
        ("messages.role", ["c2", "t1", "t2", "t3", "t4", "c1"]),
        ("-messages.role", ["c1", "c2", "t1", "t2", "t3", "t4"]),
    ],
)
def test_sorting_through_arrays_takes_the_smallest_or_largest_element_and_pages_exactly(
    service: Service, chats: str, order: str, expected: list[str]
) -> None:
    assert ids(service, chats, orderBy=order) == expected
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"orderBy": order, "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = listed(service, chats, **params)
        seen.extend(item["id"] for item in page["items"])
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    assert seen == expected


def test_sorting_by_an_array_index_is_refused_clearly(service: Service, chats: str) -> None:
    with pytest.raises((InvalidFilter, InvalidParams), match=r"messages\.0\.role"):
        ids(service, chats, orderBy="messages.0.role")
