"""PostgreSQL, outside findings of round 17 (issue 12): the database's own code on restricted
handles. Row-level security policies, operator classes of indexes, partitions and inheritance
children, SQL-executing builtins (``query_to_xml``), event triggers and views reading through
functions are refused to a handle with ``allowedCollections``, ``deniedCollections`` or
``rowFilter``; errors raised by the database's own code are ``query_failed`` whatever SQLSTATE
they claim, and never carry its CONTEXT.

Every schema is built with plain SQL through psycopg, on the server the suite starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.pg_restricted_helpers import (
    create_under_a_raising_default,
    open_postgres,
    refused,
    refused_create,
    schema_rows,
)
from tests.pgserver import postgres_schema, run_in_schema

pytestmark = pytest.mark.postgres

#: ``victim``, and functions that write it (``bump``) or read it (``peek``).
WRITERS = """
CREATE TABLE victim (m text);
INSERT INTO victim VALUES ('secret');
CREATE FUNCTION bump() RETURNS integer LANGUAGE plpgsql SET search_path FROM CURRENT AS
    $$BEGIN INSERT INTO victim VALUES ('bumped'); RETURN 1; END$$;
CREATE FUNCTION peek() RETURNS text LANGUAGE sql STABLE SET search_path FROM CURRENT AS
    $$SELECT string_agg(m, ',') FROM victim$$;
"""
RESTRICTIONS = {
    "deniedCollections": {"deniedCollections": ["victim"]},
    "allowedCollections": {"allowedCollections": ["t", "pt", "parent", "vleak", "vxml"]},
    "rowFilter": {"rowFilter": {"id": {"$gte": 0}}},
}


def _bumped(pg: dict[str, Any]) -> int:
    return int(schema_rows(pg, "SELECT count(*) FROM victim WHERE m <> 'secret'")[0][0])


# -- 1. row-level security policies --------------------------------------------------------------


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_policy_calling_a_function_is_refused_to_restricted_writes_and_reads(
    service: Service, tmp_path: Path, restriction: str
) -> None:
    pg = postgres_schema(
        tmp_path, WRITERS,
        "CREATE TABLE t (id integer PRIMARY KEY, n integer)",
        "INSERT INTO t VALUES (1, 1)",
        "ALTER TABLE t ENABLE ROW LEVEL SECURITY", "ALTER TABLE t FORCE ROW LEVEL SECURITY",
        "CREATE POLICY p_bump ON t USING (true) WITH CHECK (bump() = 1)",
    )  # fmt: skip
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    error = refused_create(service, handle, "t", {"id": 2, "n": 2})
    assert "policy p_bump" in error.message and "bump()" in error.message
    refused(service, "data/list", {"dbHandle": handle, "collection": "t"})
    assert _bumped(pg) == 0
    # Through a handle without restrictions it is the table owner's business (the suite's
    # superuser bypasses row-level security: refused all the same, whichever role runs it).
    plain = open_postgres(service, pg)
    service.execute("data/create", {"dbHandle": plain, "collection": "t", "data": {"id": 2}})


def test_a_policy_reading_a_denied_table_refuses_the_table(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path, WRITERS,
        "CREATE TABLE t (id integer PRIMARY KEY, n integer)",
        "ALTER TABLE t ENABLE ROW LEVEL SECURITY", "ALTER TABLE t FORCE ROW LEVEL SECURITY",
        "CREATE POLICY p_read ON t USING (EXISTS (SELECT 1 FROM victim WHERE m = 'secret'))",
    )  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["victim"])
    error = refused(service, "data/count", {"dbHandle": handle, "collection": "t"})
    assert '"victim"' in error.message


# -- 2. operator classes, SQL-executing builtins -------------------------------------------------


def test_an_index_operator_class_support_function_is_refused(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path, WRITERS,
        "CREATE FUNCTION cmp(a text, b text) RETURNS integer LANGUAGE plpgsql "
        "SET search_path FROM CURRENT AS "
        "$$BEGIN INSERT INTO victim VALUES ('cmp'); RETURN bttextcmp(a, b); END$$",
        "CREATE OPERATOR CLASS evil_ops FOR TYPE text USING btree AS OPERATOR 1 <, "
        "OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 cmp(text, text)",
        "CREATE TABLE t (id integer PRIMARY KEY, name text)",
        "CREATE INDEX t_name ON t (name evil_ops)",
        "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
        "DELETE FROM victim WHERE m <> 'secret'",
    )  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["victim"])
    error = refused_create(service, handle, "t", {"id": 3, "name": "c"})
    assert "operator class evil_ops of index t_name" in error.message, error
    assert "cmp()" in error.message
    assert _bumped(pg) == 0


def test_a_default_running_sql_text_through_query_to_xml_is_refused(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path, WRITERS,
        "CREATE TABLE t (id integer PRIMARY KEY, "
        "x xml DEFAULT query_to_xml('select bump()', true, false, ''))",
    )  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["victim"])
    error = refused_create(service, handle, "t", {"id": 1})
    assert "default of column x calls pg_catalog.query_to_xml()" in error.message
    assert _bumped(pg) == 0


# -- 3. partitions and inheritance children -------------------------------------------------------


PARTITIONS = """
CREATE TABLE pt (id integer PRIMARY KEY, n integer) PARTITION BY RANGE (id);
CREATE TABLE pt_low PARTITION OF pt FOR VALUES FROM (0) TO (100);
CREATE TABLE pt_high PARTITION OF pt FOR VALUES FROM (100) TO (200);
INSERT INTO pt VALUES (1, 1), (150, 1);
"""


@pytest.mark.parametrize("command", ["data/create", "data/list", "data/update", "data/delete"])
def test_a_partitioned_table_with_a_denied_partition_is_refused(
    service: Service, tmp_path: Path, command: str
) -> None:
    pg = postgres_schema(tmp_path, WRITERS, PARTITIONS)
    handle = open_postgres(service, pg, deniedCollections=["pt_high"])
    params: dict[str, Any] = {"dbHandle": handle, "collection": "pt"}
    if command == "data/create":
        params["data"] = {"id": 160, "n": 1}
    elif command != "data/list":
        params["id"] = "150"
        if command == "data/update":
            params["data"] = {"n": 2}
    error = refused(service, command, params)
    assert "pt_high" in error.message
    # Every partition allowed: served.
    other = open_postgres(service, pg, deniedCollections=["victim"])
    assert service.execute("data/count", {"dbHandle": other, "collection": "pt"})["total"] == 2


def test_a_partitions_trigger_is_refused_on_a_write_of_the_parent(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path, WRITERS, PARTITIONS,
        "CREATE FUNCTION bump_row() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT "
        "AS $$BEGIN PERFORM bump(); RETURN NEW; END$$",
        "CREATE TRIGGER high_bump BEFORE INSERT ON pt_high FOR EACH ROW EXECUTE FUNCTION bump_row()",
    )  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["victim"])
    error = refused_create(service, handle, "pt", {"id": 160, "n": 1})
    assert "high_bump" in error.message and "pt_high" in error.message
    assert _bumped(pg) == 0


def test_an_inheritance_parent_with_a_denied_child_is_refused(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path, WRITERS,
        "CREATE TABLE parent (id integer PRIMARY KEY, n integer)",
        "CREATE TABLE kid (secret text) INHERITS (parent)",
        "INSERT INTO kid VALUES (7, 1, 'hidden')",
    )  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["kid"])
    for command, extra in [("data/list", {}), ("data/count", {}),
                           ("data/update", {"id": "7", "data": {"n": 2}}),
                           ("data/delete", {"id": "7"})]:  # fmt: skip
        error = refused(service, command, {"dbHandle": handle, "collection": "parent", **extra})
        assert '"kid"' in error.message or "kid" in error.message


# -- 4. views reading through functions ---------------------------------------------------------


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
@pytest.mark.parametrize(
    ("view", "named"),
    [("CREATE VIEW vleak AS SELECT 1 AS id, peek() AS leaked", "peek()"),
     # The text runs with the reader's search path: it names the schema.
     ("CREATE VIEW vxml AS SELECT 1 AS id, "
      "query_to_xml('select m from {schema}.victim', true, false, '') AS leaked",
      "query_to_xml()")],
)  # fmt: skip
def test_a_view_reading_through_a_function_is_refused(
    service: Service, tmp_path: Path, restriction: str, view: str, named: str
) -> None:
    pg = postgres_schema(tmp_path, WRITERS)
    run_in_schema(pg, view.format(schema=pg["schema"]))
    name = view.split()[2]
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    error = refused(service, "data/list", {"dbHandle": handle, "collection": name})
    assert named in error.message and "secret" not in error.message
    # Without restrictions the view is served.
    plain = open_postgres(service, pg)
    page = service.execute("data/list", {"dbHandle": plain, "collection": name})
    assert "secret" in str(page["items"][0]["leaked"])


# -- 5. event triggers and DDL budgets ----------------------------------------------------------


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A database of its own (event triggers are database-wide), dropped afterwards."""
    pg = postgres_schema(tmp_path)
    name = f"et_{pg['schema']}"[:60]
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(pg["url"])._replace(path=f"/{name}"))
    try:
        yield {**pg, "url": url}
    finally:
        with psycopg.connect(pg["url"], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip


def test_creating_a_collection_under_an_event_trigger_is_refused_on_a_restricted_handle(
    service: Service, own_database: dict[str, Any]
) -> None:
    pg = own_database
    run_in_schema(
        pg, WRITERS,
        "CREATE FUNCTION on_ddl() RETURNS event_trigger LANGUAGE plpgsql "
        "SET search_path FROM CURRENT AS $$BEGIN PERFORM bump(); END$$",
        "CREATE EVENT TRIGGER et_end ON ddl_command_end EXECUTE FUNCTION on_ddl()",
    )  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["victim"])
    error = refused_create(service, handle, "fresh", {"n": 1})
    assert "event trigger" in error.message and "et_end" in error.message
    assert _bumped(pg) == 0
    # Disabled, it runs nothing: the collection is made (run_in_schema's own CREATE SCHEMA IF
    # NOT EXISTS fired it once more before the ALTER).
    run_in_schema(pg, "ALTER EVENT TRIGGER et_end DISABLE")
    before = _bumped(pg)
    service.execute("data/create", {"dbHandle": handle, "collection": "fresh", "data": {"n": 1}})
    assert _bumped(pg) == before


def test_a_slow_event_trigger_on_collection_creation_ends_at_the_budget(
    tmp_path: Path, own_database: dict[str, Any]
) -> None:
    from dbhandles.settings import Settings

    pg = own_database
    run_in_schema(
        pg,
        "CREATE FUNCTION slow_ddl() RETURNS event_trigger LANGUAGE plpgsql AS "
        "$$BEGIN PERFORM pg_sleep(30); END$$",
        "CREATE EVENT TRIGGER et_slow ON ddl_command_end EXECUTE FUNCTION slow_ddl()",
    )
    settings = Settings(home=tmp_path / "quick", query_timeout_ms=300)
    with Service(settings=settings) as quick:
        handle = open_postgres(quick, pg)
        with pytest.raises(DbHandlesError) as caught:
            quick.execute("data/create", {"dbHandle": handle, "collection": "fresh",
                                          "data": {"n": 1}})  # fmt: skip
    assert caught.value.code == "query_timeout", caught.value


# -- 6. errors raised by the database's own code ------------------------------------------------


@pytest.mark.parametrize("state", ["XX000", "53100", "57P01", "08006", "58030",
                                   "40001", "57014", "55P03"])  # fmt: skip
def test_a_raise_claiming_a_server_or_busy_sqlstate_is_query_failed(
    service: Service, tmp_path: Path, state: str
) -> None:
    create_under_a_raising_default(service, tmp_path, state)


def test_the_server_ending_the_connection_inside_a_function_stays_storage_error(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path,
        "CREATE FUNCTION quit() RETURNS integer LANGUAGE plpgsql AS "
        "$$BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN 1; END$$",
        "CREATE TABLE t (id integer PRIMARY KEY, n integer DEFAULT quit())",
    )
    handle = open_postgres(service, pg)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/create", {"dbHandle": handle, "collection": "t", "data": {"id": 1}})
    assert caught.value.code == "storage_error", caught.value


def test_a_read_only_refusal_inside_a_view_shows_no_context(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, WRITERS, "CREATE VIEW vw AS SELECT 1 AS id, bump() AS n")
    handle = open_postgres(service, pg)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", {"dbHandle": handle, "collection": "vw"})
    error = caught.value
    assert "read-only transaction" in error.message, error
    for leaked in ("CONTEXT", "INSERT INTO", "victim", "PL/pgSQL", "line"):
        assert leaked not in error.message, error


# -- 7. a foreign table's grouped count is bounded by its keys ----------------------------------


@pytest.mark.parametrize("collection", ["u", "uv"])
def test_a_foreign_tables_group_count_is_bounded_by_its_group_keys(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collection: str
) -> None:
    from dbhandles.adapters import group_bytes

    # Six keys of 1000 bytes under a 3000-byte bound: the fourth passes it, whatever the limit.
    monkeypatch.setattr(group_bytes, "MAX_GROUP_BYTES", 3_000)
    pg = postgres_schema(
        tmp_path,
        "CREATE TABLE u (id integer PRIMARY KEY, s text, k text)",
        "INSERT INTO u SELECT i, repeat(chr(96 + i), 1000), 'x%' FROM generate_series(1, 6) i",
        "CREATE VIEW uv AS SELECT s, k FROM u",
    )
    handle = open_postgres(service, pg)
    # A filter with values (inlined in the grouped rows) and a '%' in one of them.
    params = {"dbHandle": handle, "collection": collection, "groupBy": "s", "limit": 6,
              "filter": {"k": {"$in": ["x%", "y"]}}}  # fmt: skip
    for limit in (4, 6, 20):
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/count", {**params, "limit": limit})
        message = caught.value.message
        assert caught.value.code == "query_failed", caught.value
        assert "passed at its group 4" in message and "ask for at most 3 groups (limit)" in message
    answer = service.execute("data/count", {**params, "limit": 3})
    assert [g["key"]["s"] for g in answer["groups"]] == [chr(97 + i) * 1000 for i in range(3)]
    assert (answer["total"], answer["groupCount"]) == (6, 6)
    several = service.execute("data/count", {**params, "groupBy": ["k", "s"], "limit": 2})
    assert several["total"] == 6 and len(several["groups"]) == 2
    none = service.execute("data/count", {**params, "filter": {"k": "z"}, "limit": 3})
    assert (none["total"], none["groups"]) == (0, [])
