"""Columns whose names hold '.' on tables dbhandles did not create (issue 15, "Names").

Paths split on '.', and on such a table the longest leading parts that join into a column's name
are that column (``foreign_common.ColumnPaths``): ``a.b`` is the column ``a.b`` even beside a
column ``a`` holding ``{"b": ...}``, ``m.n.k`` is the key ``k`` inside the column ``m.n``, and
``a.c`` is still the key ``c`` inside ``a``. Filters, ``orderBy`` (with cursor paging),
projections, counts, ``groupBy``, samples and splits and ``data/copy`` agree, on SQLite
(``sqlite3``) and PostgreSQL (plain SQL); a row filter naming such a column is refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters.sampling import sample_hash, split_bounds
from dbhandles.errors import PermissionDenied

#: Rows: id, a (JSON object), "a.b" (text), "m.n" (JSON object), "x.y" (integer).
ROWS = [
    (
        i,
        f'{{"b": "inside{i}", "c": {i % 3}}}',
        f"col{i % 2}",
        f'{{"k": {i}, "t": ["s{i}"]}}',
        10 - i,
    )
    for i in range(1, 8)
]
SQLITE = 'CREATE TABLE dots (id INTEGER PRIMARY KEY, a TEXT, "a.b" TEXT, "m.n" TEXT, "x.y" INTEGER)'
PG = 'CREATE TABLE dots (id integer PRIMARY KEY, a jsonb, "a.b" text, "m.n" jsonb, "x.y" integer)'


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """``data/open`` params (adapter and config) of a database holding the table ``dots``."""
    if request.param == "sqlite":
        path = tmp_path / "dots.db"
        conn = sqlite3.connect(path)
        conn.execute(SQLITE)
        conn.executemany("INSERT INTO dots VALUES (?, ?, ?, ?, ?)", ROWS)
        conn.commit()
        conn.close()
        config: dict[str, Any] = {"path": str(path)}
    else:
        import psycopg
        from psycopg import sql

        from tests.pgserver import postgres_config

        config = postgres_config(tmp_path)
        with psycopg.connect(config["url"], autocommit=True) as conn:
            schema = sql.Identifier(config["schema"])
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(sql.SQL("SET search_path = {}").format(schema))
            conn.execute(PG)
            with conn.cursor() as cursor:
                cursor.executemany("INSERT INTO dots VALUES (%s, %s, %s, %s, %s)", ROWS)
    return {"adapter": request.param, "config": config}


@pytest.fixture
def handle(service: Service, database: dict[str, Any]) -> str:
    return str(service.execute("data/open", database)["dbHandle"])


def ids(service: Service, handle: str, **params: Any) -> list[Any]:
    page = service.execute("data/list", {"dbHandle": handle, "collection": "dots", **params})
    return [r["id"] for r in page["items"]]


def test_a_dotted_name_that_is_a_column_is_that_column(service: Service, handle: str) -> None:
    assert ids(service, handle, filter={"a.b": "col1"}) == [1, 3, 5, 7]
    assert ids(service, handle, filter={"a.b": "inside1"}) == []  # not the key b inside a
    assert ids(service, handle, filter={"a.c": 0}) == [3, 6]  # no column a.c: inside a
    assert ids(service, handle, filter={"m.n.k": {"$gte": 6}}) == [6, 7]
    assert ids(service, handle, filter={"m.n.t": "s2"}) == [2]  # arrays inside the column
    assert ids(service, handle, filter={"x.y": {"$lt": 5}}) == [6, 7]
    assert ids(service, handle, filter={"$or": [{"a.b": "col0"}, {"x.y": 9}]}) == [1, 2, 4, 6]
    count = service.execute("data/count", {"dbHandle": handle, "collection": "dots",
                                           "filter": {"a.b": "col0", "m.n.k": {"$gt": 2}}})  # fmt: skip
    assert count["total"] == 2


def test_order_by_and_cursor_paging_on_a_dotted_column(service: Service, handle: str) -> None:
    seen: list[Any] = []
    params: dict[str, Any] = {"dbHandle": handle, "collection": "dots", "limit": 2,
                              "orderBy": [{"field": "a.b", "direction": "desc"}, {"field": "x.y"}]}  # fmt: skip
    while True:
        page = service.execute("data/list", params)
        seen += [r["id"] for r in page["items"]]
        if not page.get("nextCursor"):
            break
        params["cursor"] = page["nextCursor"]
    assert seen == [7, 5, 3, 1, 6, 4, 2]  # col1 first, then by x.y ascending (10 - id)
    assert ids(service, handle, orderBy=[{"field": "m.n.k", "direction": "desc"}], limit=3) == [
        7,
        6,
        5,
    ]


def test_fields_project_a_dotted_column(service: Service, handle: str) -> None:
    page = service.execute("data/list", {"dbHandle": handle, "collection": "dots",
                                         "filter": {"id": 2}, "fields": ["a.b", "m.n.k", "a.c"]})  # fmt: skip
    assert page["items"] == [{"id": 2, "a.b": "col0", "m.n": {"k": 2}, "a": {"c": 2}}]


def test_copy_orders_and_filters_by_a_dotted_column(service: Service, handle: str) -> None:
    archive = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    result = service.execute("data/copy", {
        "from": {"dbHandle": handle, "collection": "dots", "filter": {"a.b": "col1"},
                 "orderBy": [{"field": "x.y"}]},
        "to": {"dbHandle": archive}, "batchSize": 1, "move": True})  # fmt: skip
    assert (result["copied"], result["deleted"], result["batches"]) == (4, 4, 4)
    assert ids(service, handle) == [2, 4, 6]
    copies = service.execute("data/list", {"dbHandle": archive, "collection": "dots"})["items"]
    assert sorted(r["x.y"] for r in copies) == [3, 5, 7, 9]


def groups(service: Service, handle: str, group_by: Any, **params: Any) -> list[tuple[Any, int]]:
    result = service.execute("data/count", {"dbHandle": handle, "collection": "dots",
                                            "groupBy": group_by, **params})  # fmt: skip
    return [(tuple(g["key"].values()), g["count"]) for g in result["groups"]]


def test_group_by_a_dotted_column(service: Service, handle: str) -> None:
    assert groups(service, handle, "a.b") == [(("col1",), 4), (("col0",), 3)]
    assert groups(service, handle, "a.c") == [((1,), 3), ((0,), 2), ((2,), 2)]  # inside a
    assert groups(service, handle, "m.n.t", filter={"x.y": {"$gte": 7}}) == [
        (("s1",), 1),
        (("s2",), 1),
        (("s3",), 1),
    ]
    both = groups(service, handle, ["a.b", "x.y"], filter={"a.b": "col0"})
    assert both == [(("col0", 4), 1), (("col0", 6), 1), (("col0", 8), 1)]
    result = service.execute("data/count", {"dbHandle": handle, "collection": "dots",
                                            "groupBy": "a.b"})  # fmt: skip
    assert result["groups"][0]["key"] == {"a.b": "col1"}


def smallest(seed: int, candidates: list[int], size: int) -> set[int]:
    """The ``size`` ids of ``candidates`` a sample keeps (``sampling.select``, written out)."""
    ranked = sorted(candidates, key=lambda i: (sample_hash("sample", seed, str(i)), str(i)))
    return set(ranked[:size])


def test_a_sample_orders_and_projects_a_dotted_column(service: Service, handle: str) -> None:
    col1 = [1, 3, 5, 7]
    chosen = smallest(4, col1, 3)
    order = [{"field": "x.y"}]
    found = ids(service, handle, filter={"a.b": "col1"}, sample=3, seed=4, orderBy=order)
    assert found == sorted(chosen, reverse=True)  # x.y is 10 - id
    by_column = ids(service, handle, sample=7, orderBy=[{"field": "a.b", "direction": "desc"},
                                                         {"field": "x.y"}])  # fmt: skip
    assert by_column == [7, 5, 3, 1, 6, 4, 2]
    page = service.execute("data/list", {"dbHandle": handle, "collection": "dots", "sample": 2,
                                         "filter": {"id": {"$in": [2, 3]}},
                                         "fields": ["a.b", "m.n.k"]})  # fmt: skip
    assert page["items"] == [
        {"id": 2, "a.b": "col0", "m.n": {"k": 2}},
        {"id": 3, "a.b": "col1", "m.n": {"k": 3}},
    ]


def test_a_split_pages_by_a_dotted_column(service: Service, handle: str) -> None:
    fractions = {"train": 0.5, "test": 0.5}
    low, high = split_bounds(fractions, "train")
    train = [i for i in range(1, 8) if low <= sample_hash("split", 7, str(i)) < high]
    split = {"name": "train", "fractions": fractions, "seed": 7}
    params: dict[str, Any] = {"dbHandle": handle, "collection": "dots", "split": split, "limit": 2,
                              "orderBy": [{"field": "a.b"}, {"field": "x.y", "direction": "desc"}]}  # fmt: skip
    seen: list[Any] = []
    while True:
        page = service.execute("data/list", params)
        seen += [r["id"] for r in page["items"]]
        if not page.get("nextCursor"):
            break
        params["cursor"] = page["nextCursor"]
    # col0 (even ids) first, then col1; within each by x.y descending (id ascending).
    assert seen == sorted(train, key=lambda i: (i % 2, i))
    counted = ids(service, handle, split=split, filter={"a.b": "col1"})
    assert counted == [i for i in train if i % 2]


def test_a_row_filter_naming_a_dotted_column_is_refused(
    service: Service, database: dict[str, Any]
) -> None:
    # A row filter is also tested in Python on each record, where ``a.b`` is the path a -> b:
    # refused (fail closed) rather than read two ways, even though the table has a column ``a``.
    for row_filter in ({"a.b": "col1"}, {"m.n.k": 1}, {"$or": [{"id": 1}, {"x.y": 9}]}):
        handle = service.execute(
            "data/open", {**database, "permissions": {"rowFilter": row_filter}}
        )
        for command in ("data/list", "data/count"):
            with pytest.raises(PermissionDenied, match=r"holds '\.'"):
                service.execute(command, {"dbHandle": handle["dbHandle"], "collection": "dots"})
    handle = service.execute("data/open", {**database, "permissions": {"rowFilter": {"a.c": 1}}})
    assert ids(service, handle["dbHandle"]) == [1, 4, 7]  # a.c: inside a, no column named so


def test_a_column_whose_part_after_a_dot_is_a_number_is_named_in_filters_only(
    service: Service, database: dict[str, Any]
) -> None:
    """``v1.2`` (docs/foreign-tables.md "Names"): outside filters a numeric part would be an
    array index, which fields, orderBy and groupBy do not take, so they refuse the path with an
    error saying so; writes name the column as a key of ``data``, so create and update work."""
    from dbhandles.errors import InvalidFilter

    alter = 'ALTER TABLE dots ADD COLUMN "v1.2" integer'
    fill = 'UPDATE dots SET "v1.2" = id * 10'
    config = database["config"]
    if database["adapter"] == "sqlite":
        conn = sqlite3.connect(config["path"])
        conn.execute(alter)
        conn.execute(fill)
        conn.commit()
        conn.close()
    else:
        import psycopg
        from psycopg import sql

        with psycopg.connect(config["url"], autocommit=True) as pg:
            pg.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(config["schema"])))
            pg.execute(alter)
            pg.execute(fill)
    handle = str(service.execute("data/open", database)["dbHandle"])
    assert ids(service, handle, filter={"v1.2": {"$gte": 60}}) == [6, 7]
    clearly = r"is not a valid field path here: .* array index .* which only filters take"
    for params in ({"fields": ["v1.2"]}, {"orderBy": [{"field": "v1.2"}]}, {"orderBy": "-v1.2"}):
        with pytest.raises(InvalidFilter, match=clearly):
            ids(service, handle, **params)
    with pytest.raises(InvalidFilter, match=clearly):
        service.execute("data/count", {"dbHandle": handle, "collection": "dots", "groupBy": "v1.2"})
    # Writes take the column's name as a key of ``data``: no path is parsed.
    updated = service.execute("data/update", {"dbHandle": handle, "collection": "dots", "id": "7",
                                              "data": {"v1.2": 5, "a.b": "w"}})  # fmt: skip
    assert updated["data"]["v1.2"] == 5 and updated["data"]["a.b"] == "w"
    service.execute("data/create", {"dbHandle": handle, "collection": "dots",
                                    "data": {"id": 8, "v1.2": 80, "x.y": 2}})  # fmt: skip
    assert ids(service, handle, filter={"v1.2": {"$gte": 60}}) == [6, 8]
