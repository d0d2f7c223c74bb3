"""Foreign tables and columns with names a new collection may not have (issue 15, step 7 "Names").

Tables named with spaces, double and single quotes, non-ASCII letters, mixed case, a reserved word
and an injection attempt are built with plain SQL (``sqlite3``, and psycopg on the suite's PostgreSQL
server); every command goes through ``Service.execute``: schema, read, create, update, delete, list
with filters and orderBy on such columns, count, query cursors, events and permissions. A new
collection under such a name is still refused, with a clear ``invalid_params``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import InvalidFilter, InvalidParams, PermissionDenied

INJECTION = 'x"; DROP TABLE t; --'
#: (table, its key column, a text column): each table is ``key integer PRIMARY KEY, <text> text``.
TABLES = [
    ("Order Items", "Item Id", "Unit Name"),
    ('my"table', 'k"ey', 'col"q'),
    ("it's", "id", "it's col"),
    ("café", "clé", "nämé"),
    ("MixedCase", "Id", "MixedCol"),
    ("select", "from", "order"),
    (INJECTION, "id", 'v"; DROP TABLE t; --'),
]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


SCHEMA = (
    "".join(
        f"CREATE TABLE {_q(t)} ({_q(k)} integer PRIMARY KEY, {_q(c)} text, {_q('Unit Price')} "
        f"double precision, {_q('a.b')} text);\n"
        f"INSERT INTO {_q(t)} VALUES (1, 'one', 2.5, 'x'), (2, 'two', 1.5, 'y'), (3, NULL, 9, NULL);\n"
        for t, k, c in TABLES
    )
    + "CREATE TABLE t (id integer PRIMARY KEY);\nINSERT INTO t VALUES (1);\n"
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def opened(
    request: pytest.FixtureRequest, service: Service, tmp_path: Path
) -> tuple[str, Callable[[str], list[tuple[Any, ...]]]]:
    """A handle on the database above, and a plain-SQL query function on the same database."""
    if request.param == "sqlite":
        path = tmp_path / "names.db"
        conn = sqlite3.connect(path)
        conn.executescript(SCHEMA)
        conn.close()

        def query(text: str) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as plain:
                rows = plain.execute(text).fetchall()
            plain.close()
            return rows

        config: dict[str, Any] = {"path": str(path)}
    else:
        import psycopg
        from psycopg import sql

        from tests.pgserver import postgres_config

        config = postgres_config(tmp_path)
        search = sql.SQL("SET search_path = {}").format(sql.Identifier(config["schema"]))
        with psycopg.connect(config["url"], autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(config["schema"]))
            )
            conn.execute(search)
            for statement in filter(str.strip, SCHEMA.split(";\n")):
                conn.execute(statement.encode())

        def query(text: str) -> list[tuple[Any, ...]]:
            with psycopg.connect(config["url"], autocommit=True) as plain:
                plain.execute(search)
                return plain.execute(text.encode()).fetchall()

    result = service.execute("data/open", {"adapter": request.param, "config": config})
    return str(result["dbHandle"]), query


def run(service: Service, name: str, handle: str, **params: Any) -> dict[str, Any]:
    return service.execute(name, {"dbHandle": handle, **params})


def test_schema_lists_every_name_as_spelled(service: Service, opened: Any) -> None:
    handle, _ = opened
    listed = {c["name"] for c in run(service, "data/schema", handle)["collections"]}
    assert {t for t, _, _ in TABLES} <= listed
    for table, key, column in TABLES:
        one = run(service, "data/schema", handle, collection=table)["table"]
        assert one["primaryKey"] == [key]
        assert [c["name"] for c in one["columns"]] == [key, column, "Unit Price", "a.b"]


@pytest.mark.parametrize(("table", "key", "column"), TABLES)
def test_read_list_count_and_write_through_any_name(
    service: Service, opened: Any, table: str, key: str, column: str
) -> None:
    handle, query = opened
    one = run(service, "data/read", handle, collection=table, id="1")["data"]
    assert one[column] == "one" and one["Unit Price"] == 2.5
    listed = run(service, "data/list", handle, collection=table, filter={column: "two"})
    assert [r["id"] for r in listed["items"]] == [2] and listed["count"] == 1
    ordered = run(
        service, "data/list", handle, collection=table,
        orderBy=[{"field": "Unit Price", "direction": "desc"}],
    )  # fmt: skip
    assert [r["id"] for r in ordered["items"]] == [3, 1, 2]
    assert run(service, "data/count", handle, collection=table,
               filter={"Unit Price": {"$gt": 2}})["total"] == 2  # fmt: skip
    projected = run(service, "data/list", handle, collection=table, fields=[column], limit=1)
    assert projected["items"] == [{"id": 1, column: "one"}]

    run(service, "data/create", handle, collection=table, id="4", data={column: "four"})
    run(service, "data/update", handle, collection=table, id="4", data={"Unit Price": 4.0})
    assert query(
        f"SELECT {_q(column)}, {_q('Unit Price')} FROM {_q(table)} WHERE {_q(key)} = 4"
    ) == [("four", 4.0)]
    assert run(service, "data/delete", handle, collection=table, id="4")["deleted"] is True
    assert query(f"SELECT count(*) FROM {_q(table)}") == [(3,)]
    assert query("SELECT id FROM t") == [(1,)]  # the injection-shaped names did nothing


@pytest.mark.parametrize(("table", "key", "column"), TABLES[:3])
def test_query_cursors_page_through_any_name(
    service: Service, opened: Any, table: str, key: str, column: str
) -> None:
    handle, _ = opened
    cursor = run(
        service, "data/query-open", handle, collection=table, pageSize=2,
        orderBy=[{"field": column}], filter={"Unit Price": {"$exists": True}},
    )["queryHandle"]  # fmt: skip
    seen: list[Any] = []
    while True:
        page = service.execute("data/query-next", {"queryHandle": cursor})
        seen += [r["id"] for r in page["items"]]
        if not page["hasMore"]:
            break
    service.execute("data/query-close", {"queryHandle": cursor})
    assert seen == [3, 1, 2]  # null first, then 'one' < 'two'


def test_list_pages_by_cursor_on_an_odd_column(service: Service, opened: Any) -> None:
    handle, _ = opened
    params = {"collection": "Order Items", "orderBy": [{"field": "Unit Name"}], "limit": 1}
    first = run(service, "data/list", handle, **params)
    second = run(service, "data/list", handle, **params, cursor=first["nextCursor"])
    assert [first["items"][0]["id"], second["items"][0]["id"]] == [3, 1]


def test_events_and_permissions_use_the_name_as_spelled(service: Service, opened: Any) -> None:
    handle, _ = opened
    seen: list[str] = []
    with service.events.subscribe("data:Order Items:*", lambda e: seen.append(e.name)):
        run(service, "data/create", handle, collection="Order Items", id="9", data={})
    assert seen == ["data:Order Items:created"]


def test_permissions_name_odd_tables(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.close()
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(path)},
         "permissions": {"allowedCollections": ["Order Items", "café"],
                         "deniedCollections": ['my"table']}},
    )["dbHandle"]  # fmt: skip
    assert run(service, "data/read", handle, collection="Order Items", id="1")["data"]
    assert run(service, "data/read", handle, collection="café", id="1")["data"]
    for other in ('my"table', "select"):
        with pytest.raises(PermissionDenied):
            run(service, "data/read", handle, collection=other, id="1")
    listed = {c["name"] for c in run(service, "data/schema", handle)["collections"]}
    assert listed == {"Order Items", "café"}


@pytest.mark.parametrize(
    "name", ["Order Lines", 'new"one', "nouveau café", "Sel ect", 'y"; DROP TABLE t; --']
)
def test_a_new_collection_with_such_a_name_is_refused_clearly(
    service: Service, opened: Any, name: str
) -> None:
    handle, query = opened
    with pytest.raises(InvalidParams) as caught:
        run(service, "data/create", handle, collection=name, data={"a": 1})
    assert caught.value.field == "collection"
    assert "a new collection's name is 1-64 letters, digits or underscores" in str(caught.value)
    # Reads of a name that does not exist are simply empty, as for any missing collection.
    assert run(service, "data/list", handle, collection=name)["items"] == []
    assert run(service, "data/read", handle, collection=name, id="1")["found"] is False
    assert query("SELECT id FROM t") == [(1,)]


@pytest.mark.parametrize("adapter", ["memory", "json"])
def test_memory_and_json_refuse_such_a_new_collection_too(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    config = {"path": str(tmp_path / "d.json"), "mode": "create"} if adapter == "json" else {}
    handle = service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"]
    with pytest.raises(InvalidParams, match="a new collection's name"):
        run(service, "data/create", handle, collection="Order Items", data={})
    run(service, "data/create", handle, collection="order_items", data={})


@pytest.mark.parametrize(
    "name", ["sqlite_master", "_dbh_handles", "pg_class", "a\x00b", "a\nb", ""]
)
def test_system_and_control_names_stay_refused(service: Service, opened: Any, name: str) -> None:
    handle, _ = opened
    with pytest.raises(InvalidParams) as caught:
        run(service, "data/list", handle, collection=name)
    assert caught.value.field == "collection"


def test_a_column_with_a_dot_is_named_by_its_name(service: Service, opened: Any) -> None:
    """tests/test_foreign_dotted.py has the rule in full."""
    handle, _ = opened
    found = run(service, "data/list", handle, collection="Order Items", filter={"a.b": "x"})
    assert [r["id"] for r in found["items"]] == [1]
    ordered = run(service, "data/list", handle, collection="Order Items",
                  orderBy=[{"field": "a.b", "direction": "desc"}])  # fmt: skip
    assert [r["id"] for r in ordered["items"]] == [2, 1, 3]
    one = run(service, "data/read", handle, collection="Order Items", id="1")["data"]
    assert one["a.b"] == "x"


def test_text_order_by_with_spaces_says_to_use_the_object_form(
    service: Service, opened: Any
) -> None:
    handle, _ = opened
    with pytest.raises(InvalidFilter, match='"field": "Order'):
        run(service, "data/list", handle, collection="Order Items", orderBy="Unit Price desc")
    with pytest.raises(InvalidFilter, match='"field": "Order'):
        run(service, "data/list", handle, collection="café", orderBy="-nämé")
