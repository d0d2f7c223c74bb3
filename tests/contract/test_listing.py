"""Contract: data/list filters, sorts, projects and pages the same way on every adapter."""

from __future__ import annotations

from typing import Any

import pytest

from dbhandles import InvalidFilter, InvalidParams, Service

PEOPLE = [
    {"id": "p1", "name": "ada", "age": 36, "tags": ["math", "code"], "meta": {"score": 0.9}},
    {"id": "p2", "name": "bob", "age": 25, "tags": ["art"], "meta": {"score": 0.4}},
    {"id": "p3", "name": "cy", "age": None, "tags": [], "meta": {"score": 0.8}},
    {"id": "p4", "name": "dee", "age": "36", "meta": {}},
    {"id": "p5", "name": "Eve", "age": 51, "active": True, "meta": {"score": 0.95}},
    {"id": "p6", "name": "fay", "age": 25.0, "active": False},
]


@pytest.fixture
def people(service: Service, db: str) -> str:
    for person in PEOPLE:
        service.execute("data/create", {"dbHandle": db, "collection": "people", "data": person})
    return db


def ids(service: Service, db: str, **params: Any) -> list[str]:
    result = service.execute("data/list", {"dbHandle": db, "collection": "people", **params})
    return [item["id"] for item in result["items"]]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"name": "ada"}, ["p1"]),
        ({"age": 36}, ["p1"]),
        ({"age": "36"}, ["p4"]),
        ({"age": 25}, ["p2", "p6"]),
        ({"age": None}, ["p3"]),
        ({"age": {"$gt": 30}}, ["p1", "p5"]),
        ({"age": {"$gte": 25, "$lt": 40}}, ["p1", "p2", "p6"]),
        ({"age": {"$ne": 36}}, ["p2", "p3", "p4", "p5", "p6"]),
        ({"age": {"$in": [25, "36"]}}, ["p2", "p4", "p6"]),
        ({"age": {"$in": []}}, []),
        ({"age": {"$nin": [25, 36]}}, ["p3", "p4", "p5"]),
        ({"active": {"$exists": True}}, ["p5", "p6"]),
        ({"active": {"$exists": False}}, ["p1", "p2", "p3", "p4"]),
        ({"active": True}, ["p5"]),
        ({"active": 1}, []),
        ({"name": {"$regex": "^[a-c]"}}, ["p1", "p2", "p3"]),
        ({"name": {"$contains": "e"}}, ["p4", "p5"]),
        ({"tags": {"$contains": "art"}}, ["p2"]),
        ({"meta.score": {"$gte": 0.8}}, ["p1", "p3", "p5"]),
        ({"meta.score": {"$exists": False}}, ["p4", "p6"]),
        ({"$or": [{"name": "ada"}, {"age": 51}]}, ["p1", "p5"]),
        ({"$and": [{"age": {"$gt": 20}}, {"age": {"$lt": 30}}]}, ["p2", "p6"]),
        ({"$not": {"age": {"$gt": 30}}}, ["p2", "p3", "p4", "p6"]),
        ({"age": {"$not": {"$gt": 30}}}, ["p2", "p3", "p4", "p6"]),
        ({"id": {"$in": ["p1", "p3"]}}, ["p1", "p3"]),
        ({"version": 1}, ["p1", "p2", "p3", "p4", "p5", "p6"]),
        ({"version": "1"}, []),
        ({}, ["p1", "p2", "p3", "p4", "p5", "p6"]),
    ],
)
def test_filter_semantics(
    service: Service, people: str, filter_: dict[str, Any], expected: list[str]
) -> None:
    assert ids(service, people, filter=filter_) == expected
    count = service.execute(
        "data/list", {"dbHandle": people, "collection": "people", "filter": filter_}
    )["count"]
    assert count == len(expected)


@pytest.mark.parametrize(
    "bad",
    [
        {"age": {"$foo": 1}},
        {"$where": "1"},
        {"age": {"$gt": None}},
        {"age": {"$in": 5}},
        {"age": {"$regex": "("}},
        {"name": {"$regex": r"(a)\1"}},  # RE2 syntax: no backreferences
        {"name": {"$regex": "a(?=b)"}},  # nor look-around
        {"bad path!": 1},
        {"a..b": 1},
        {"age": {"$gt": [1]}},
        {"age": {"$exists": "yes"}},
        {"age": {"$gt": 1, "plain": 2}},
    ],
)
def test_bad_filters_are_refused_with_the_path(
    service: Service, people: str, bad: dict[str, Any]
) -> None:
    with pytest.raises(InvalidFilter) as info:
        service.execute("data/list", {"dbHandle": people, "collection": "people", "filter": bad})
    assert "filter" in str(info.value)


def test_order_by_with_mixed_types_and_id_tiebreak(service: Service, people: str) -> None:
    # missing/null < numbers < strings; equal ages tie-broken by id.
    assert ids(service, people, orderBy=[{"field": "age", "direction": "asc"}]) == [
        "p3",
        "p2",
        "p6",
        "p1",
        "p5",
        "p4",
    ]
    assert ids(service, people, orderBy=["-age"]) == ["p4", "p5", "p1", "p2", "p6", "p3"]
    assert ids(service, people, orderBy=[{"field": "meta.score", "direction": "desc"}, "name"])[
        :3
    ] == ["p5", "p1", "p3"]
    assert ids(service, people, orderBy="name desc") == ["p6", "p4", "p3", "p2", "p1", "p5"]


def test_projection_keeps_id_and_requested_fields(service: Service, people: str) -> None:
    items = service.execute(
        "data/list",
        {"dbHandle": people, "collection": "people", "fields": ["name", "meta.score"], "limit": 2},
    )["items"]
    assert items == [
        {"id": "p1", "name": "ada", "meta": {"score": 0.9}},
        {"id": "p2", "name": "bob", "meta": {"score": 0.4}},
    ]


def test_keyset_paging_visits_every_row_once(service: Service, people: str) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {
            "dbHandle": people,
            "collection": "people",
            "limit": 4,
            "orderBy": ["-age"],
        }
        if cursor:
            params["cursor"] = cursor
        result = service.execute("data/list", params)
        seen += [i["id"] for i in result["items"]]
        pages += 1
        cursor = result["nextCursor"]
        assert result["hasMore"] is (cursor is not None)
        if not cursor:
            break
    assert pages == 2
    assert seen == ids(service, people, orderBy=["-age"])


def test_cursor_from_another_order_is_refused(service: Service, people: str) -> None:
    first = service.execute(
        "data/list", {"dbHandle": people, "collection": "people", "limit": 2, "orderBy": ["name"]}
    )
    with pytest.raises(InvalidParams, match="orderBy"):
        service.execute(
            "data/list", {"dbHandle": people, "collection": "people", "cursor": first["nextCursor"]}
        )
    with pytest.raises(InvalidParams, match="cursor"):
        service.execute(
            "data/list", {"dbHandle": people, "collection": "people", "cursor": "garbage!!"}
        )


def test_original_key_cursor_form(service: Service, people: str) -> None:
    after = ids(service, people, cursor={"field": "name", "value": "bob", "direction": "after"})
    assert after == ["p3", "p4", "p6"]


def test_limits(service: Service, people: str) -> None:
    result = service.execute("data/list", {"dbHandle": people, "collection": "people", "limit": 0})
    assert result["items"] == [] and result["count"] == 6
    with pytest.raises(InvalidParams, match="limit"):
        service.execute("data/list", {"dbHandle": people, "collection": "people", "limit": 501})
    with pytest.raises(InvalidParams, match="limit"):
        service.execute("data/list", {"dbHandle": people, "collection": "people", "limit": -1})
    assert (
        service.execute(
            "data/list", {"dbHandle": people, "collection": "people", "skipCount": True}
        )["count"]
        is None
    )


def test_list_of_missing_collection_is_empty(service: Service, db: str) -> None:
    result = service.execute("data/list", {"dbHandle": db, "collection": "nothing"})
    assert result["items"] == [] and result["count"] == 0


def test_forged_cursor_positions_are_refused(service: Service, people: str) -> None:
    from dbhandles.filters import parse_order_by
    from dbhandles.paging import encode_token

    order = parse_order_by(["name"])
    forged = encode_token(order, ((2, "not a number"), (3, "p1")))
    with pytest.raises(InvalidParams, match="cursor"):
        service.execute(
            "data/list",
            {"dbHandle": people, "collection": "people", "orderBy": ["name"], "cursor": forged},
        )
