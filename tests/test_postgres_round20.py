"""PostgreSQL, outside findings of round 20 (issue 12): what a restricted handle's reads of a
collection's own table run, errors quoting values, foreign tables, functions a superuser put in
``pg_catalog``, enums served, and the words of errors raised while reading.

1. A row-level security policy (enabled, forced or not) or an index with somebody's operator class
   on a collection's table is walked as any table's: reads are refused.
2. On a restricted handle, a data error (SQLSTATE class 22) or a ``regclass`` cast's error never
   quotes a value, whatever raised it.
3. A foreign table (``file_fdw``) in a read's reach is refused.
4. A function a superuser created in ``pg_catalog`` is somebody's (oid >= 16384), not PostgreSQL's.
5. An enum, an array of it, a composite of it and a view over them are served; a user cast of the
   enum to ``json`` refuses them.
6. A domain's CHECK failing on a read is no refused write; a relation missing in a ``RAISE``'s
   argument is no ``RAISE``.

Every schema is built with plain SQL through psycopg, on the server the suite starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.pg_restricted_helpers import open_postgres, refused_unknowable, secret_rows
from tests.pgserver import postgres_schema, run_in_schema

pytestmark = pytest.mark.postgres

#: ``secret``; ``leak()`` deletes its rows when it may write and returns them when it may not.
SETUP = """
CREATE TABLE secret (s text);
INSERT INTO secret VALUES ('hidden');
CREATE TABLE stolen (s text);
CREATE FUNCTION leak() RETURNS text LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_read_only') = 'off' THEN
        INSERT INTO stolen SELECT s FROM secret; DELETE FROM secret;
    END IF;
    RETURN (SELECT coalesce(string_agg(s, ','), 'none') FROM secret);
END$$;
CREATE FUNCTION evil_cmp(a int4, b int4) RETURNS integer LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_read_only') = 'off' THEN DELETE FROM secret; END IF;
    RETURN btint4cmp(a, b);
END$$;
CREATE OPERATOR CLASS evil_int4_ops FOR TYPE int4 USING btree AS OPERATOR 1 <, OPERATOR 2 <=,
    OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 evil_cmp(int4, int4);
CREATE TABLE t (id integer PRIMARY KEY, n integer, s text);
INSERT INTO t VALUES (1, 3, 'hidden');
"""
RESTRICTIONS = {
    "deniedCollections": {"deniedCollections": ["secret", "stolen"]},
    "rowFilter": {"rowFilter": {"id": {"$gte": 0}}},
}


def _failed(service: Service, command: str, params: dict[str, Any]) -> DbHandlesError:
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, params)
    assert caught.value.code == "query_failed", caught.value
    return caught.value


def _reads(base: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every read command of ``base``'s collection: listed (filtered or not), read, counted by
    group, opened as a cursor, described."""
    yield "data/list", base
    yield "data/list", {**base, "filter": {"n": 1}}
    yield "data/read", {**base, "id": "1"}
    yield "data/count", {**base, "groupBy": "n"}
    yield "data/query-open", base
    yield "data/schema", base


def _collection(service: Service, pg: dict[str, Any], *statements: str) -> None:
    """Collection ``notes`` with one record, made by dbhandles, then ``statements`` run by the
    database's owner (another tool) on its table."""
    admin = open_postgres(service, pg)
    service.execute(
        "data/create", {"dbHandle": admin, "collection": "notes", "data": {"id": "1", "n": 1}}
    )
    run_in_schema(pg, *statements)


# -- 1. a collection's own table: its policies and its indexes' operator classes ----------------

POLICIES = {
    "enabled": ["ALTER TABLE notes ENABLE ROW LEVEL SECURITY"],
    "forced": ["ALTER TABLE notes ENABLE ROW LEVEL SECURITY",
               "ALTER TABLE notes FORCE ROW LEVEL SECURITY"],
}  # fmt: skip


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_policy_on_a_collections_own_table_is_refused_on_every_read(
    service: Service, tmp_path: Path, restriction: str, policy: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    _collection(
        service, pg, *POLICIES[policy], "CREATE POLICY p ON notes USING (leak() IS NOT NULL)"
    )
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    for command, params in _reads({"dbHandle": handle, "collection": "notes"}):
        error = refused_unknowable(service, command, params)
        assert "policy p of notes calls" in error.message and "leak()" in error.message, error
    assert secret_rows(pg) == ["hidden"]


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_an_index_with_a_user_operator_class_on_a_collections_table_is_refused_on_reads(
    service: Service, tmp_path: Path, restriction: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    _collection(service, pg, "CREATE INDEX notes_evil ON notes (((data->>'n')::int) evil_int4_ops)")
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    for command, params in _reads({"dbHandle": handle, "collection": "notes"}):
        error = refused_unknowable(service, command, params)
        assert "evil_cmp()" in error.message or "evil_int4_ops" in error.message, error
    assert secret_rows(pg) == ["hidden"]


def test_a_collection_without_code_of_another_role_stays_served(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    _collection(service, pg, "CREATE INDEX notes_n ON notes (((data->>'n')::int))")
    handle = open_postgres(service, pg, **RESTRICTIONS["deniedCollections"])
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "notes"})
    assert [r["id"] for r in listed["items"]] == ["1"]


# -- 2. a value quoted by an error on a restricted handle -----------------------------------------

QUOTING = {
    "invalid integer": "CREATE VIEW v AS SELECT id, s::integer AS x FROM t",
    "invalid date": "CREATE VIEW v AS SELECT id, s::date AS x FROM t",
    "regclass": "CREATE VIEW v AS SELECT id, s::regclass::text AS x FROM t",
    "xml": "CREATE VIEW v AS SELECT id, ('<' || s)::xml::text AS x FROM t",
}


@pytest.mark.parametrize("view", sorted(QUOTING))
def test_an_error_of_a_restricted_read_never_quotes_a_value(
    service: Service, tmp_path: Path, view: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP, QUOTING[view])
    handle = open_postgres(service, pg, **RESTRICTIONS["deniedCollections"])
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", {"dbHandle": handle, "collection": "v"})
    error = caught.value
    assert error.code in ("query_failed", "invalid_params", "storage_error"), error
    assert "hidden" not in error.message and "SQLSTATE" in error.message, error
    assert "not shown" in error.message, error


def test_an_unrestricted_handle_still_reads_postgresql_s_text(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, SETUP, QUOTING["invalid integer"])
    handle = open_postgres(service, pg)
    error = _failed(service, "data/list", {"dbHandle": handle, "collection": "v"})
    assert "invalid input syntax" in error.message and "22P02" in error.message, error


# -- 3. foreign tables -----------------------------------------------------------------------------


def _file_fdw(pg: dict[str, Any]) -> None:
    """``ft``: a ``file_fdw`` table whose rows a shell command prints, and ``vf``, a view of it."""
    server = "srv_" + pg["schema"]
    # Another test may make the extension at the same moment.
    with (
        psycopg.connect(pg["url"], autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.UniqueViolation),
    ):
        conn.execute("CREATE EXTENSION IF NOT EXISTS file_fdw")
    run_in_schema(
        pg,
        f"CREATE SERVER {server} FOREIGN DATA WRAPPER file_fdw",
        f"CREATE FOREIGN TABLE ft (id integer, n integer) SERVER {server} "
        "OPTIONS (program 'echo 1,2', format 'csv')",
        "CREATE VIEW vf AS SELECT id, n FROM ft",
    )


@pytest.mark.parametrize("collection", ["ft", "vf"])
@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_foreign_table_is_refused_to_restricted_reads(
    service: Service, tmp_path: Path, restriction: str, collection: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    _file_fdw(pg)
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    base = {"dbHandle": handle, "collection": collection}
    error = refused_unknowable(service, "data/list", base)
    assert "foreign table ft" in error.message and "file_fdw" in error.message, error
    refused_unknowable(service, "data/count", base)
    plain = open_postgres(service, pg)
    listed = service.execute("data/list", {"dbHandle": plain, "collection": collection})
    assert [r["n"] for r in listed["items"]] == [2]


# -- 4. a function a superuser created in pg_catalog ---------------------------------------------


@pytest.fixture
def catalog_function(tmp_path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    """A schema with ``t`` and a function ``pg_catalog.zz_leak_<schema>()`` calling ``leak()``."""
    pg = postgres_schema(tmp_path, SETUP)
    name = "zz_leak_" + pg["schema"]
    run_in_schema(
        pg,
        f"CREATE FUNCTION pg_catalog.{name}() RETURNS text LANGUAGE sql "
        f"AS 'SELECT {pg['schema']}.leak()'",
    )
    try:
        yield pg, name
    finally:
        with psycopg.connect(pg["url"], autocommit=True) as conn:
            conn.execute(f"DROP FUNCTION pg_catalog.{name}() CASCADE")


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_function_a_superuser_put_in_pg_catalog_isrefused_unknowable(
    service: Service, catalog_function: tuple[dict[str, Any], str], restriction: str
) -> None:
    pg, name = catalog_function
    run_in_schema(
        pg,
        f"CREATE VIEW v AS SELECT id, pg_catalog.{name}() AS x FROM t",
        f"CREATE TABLE w (id integer PRIMARY KEY, x text CHECK (pg_catalog.{name}() <> ''))",
    )
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    error = refused_unknowable(service, "data/list", {"dbHandle": handle, "collection": "v"})
    assert name in error.message, error
    with pytest.raises(DbHandlesError) as caught:
        service.execute(
            "data/create", {"dbHandle": handle, "collection": "w", "data": {"id": 1, "x": "a"}}
        )
    assert caught.value.code == "permission_denied" and name in caught.value.message
    assert secret_rows(pg) == ["hidden"]


# -- 5. enums ------------------------------------------------------------------------------------

ENUMS = """
CREATE TYPE color AS ENUM ('red', 'blue');
CREATE TYPE pair AS (c color, k integer);
CREATE TABLE e (id integer PRIMARY KEY, c color, cs color[], p pair);
INSERT INTO e VALUES (1, 'red', '{red,blue}', ROW('blue', 2));
CREATE VIEW ve AS SELECT id, c, cs, p FROM e;
"""
CAST = """
CREATE FUNCTION color_json(color) RETURNS json LANGUAGE sql AS 'SELECT to_json(leak())';
CREATE CAST (color AS json) WITH FUNCTION color_json(color);
"""


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_an_enum_its_array_and_a_composite_of_it_are_served_to_restricted_handles(
    service: Service, tmp_path: Path, restriction: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP, ENUMS)
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "e"})
    assert [r["c"] for r in listed["items"]] == ["red"], listed
    if restriction == "deniedCollections":  # a view is never served under a row filter
        viewed = service.execute("data/list", {"dbHandle": handle, "collection": "ve"})
        assert [r["cs"] for r in viewed["items"]] == [["red", "blue"]], viewed
    base = {"dbHandle": handle, "collection": "e"}
    service.execute("data/update", {**base, "id": "1", "data": {"c": "blue", "cs": ["blue"]}})
    if restriction == "deniedCollections":  # a row filter chooses new records' ids itself
        service.execute("data/create", {**base, "data": {"id": 2, "c": "red", "cs": ["red"]}})
    counted = service.execute("data/count", {**base, "groupBy": "c"})
    assert counted["total"] == (2 if restriction == "deniedCollections" else 1), counted


@pytest.mark.parametrize("collection", ["e", "ve"])
@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_an_enum_with_a_user_cast_to_json_isrefused_unknowable(
    service: Service, tmp_path: Path, restriction: str, collection: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP, ENUMS, CAST)
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    base = {"dbHandle": handle, "collection": collection}
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", base)
    assert caught.value.code == "permission_denied", caught.value
    if collection == "e":
        assert "color_json()" in caught.value.message, caught.value
        with pytest.raises(DbHandlesError) as written:
            service.execute("data/create", {**base, "data": {"id": 2, "c": "blue"}})
        assert written.value.code == "permission_denied"
    assert secret_rows(pg) == ["hidden"]


# -- 6. the words of an error raised while reading ------------------------------------------------

DOMAIN_VIEW = (
    "CREATE DOMAIN big AS integer CHECK (VALUE > 100); "
    "CREATE VIEW v AS SELECT id, n::big AS b FROM t"
)
MISSING_IN_RAISE = """
CREATE FUNCTION boom() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'x %', (SELECT count(*) FROM no_such_table);
END$$;
CREATE VIEW v AS SELECT id, boom() AS b FROM t;
"""


@pytest.mark.parametrize("restriction", [None, "deniedCollections"])
def test_a_domain_check_failing_on_a_read_is_no_refused_write(
    service: Service, tmp_path: Path, restriction: str | None
) -> None:
    pg = postgres_schema(tmp_path, SETUP, DOMAIN_VIEW)
    handle = open_postgres(service, pg, **(RESTRICTIONS[restriction] if restriction else {}))
    error = _failed(service, "data/list", {"dbHandle": handle, "collection": "v"})
    assert "on a read" in error.message and "23514" in error.message, error
    assert "write" not in error.message and "nothing was written" not in error.message, error


def test_a_relation_missing_in_a_raise_argument_is_no_raise(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, SETUP, MISSING_IN_RAISE)
    handle = open_postgres(service, pg)
    error = _failed(service, "data/list", {"dbHandle": handle, "collection": "v"})
    assert "RAISE" not in error.message and "42P01" in error.message, error
    assert "no_such_table" in error.message, error


@pytest.fixture
def role_pg(tmp_path: Path) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(owner's config, config of a role of its own)``: the role is no superuser and owns
    nothing, so a policy of a table runs on its reads; it may read ``notes``."""
    pg = postgres_schema(tmp_path, SETUP)
    role = "r_" + pg["schema"]
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        yield pg, {**pg, "url": pg["url"].replace("postgres@", f"{role}@", 1), "mode": "readwrite"}
    finally:
        with psycopg.connect(pg["url"], autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(pg["schema"])))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_a_policy_s_data_error_is_not_quoted_to_a_row_filtered_role(
    service: Service, role_pg: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    owner, as_role = role_pg
    admin = open_postgres(service, owner)
    for record in ({"id": "1", "n": 1, "s": "7"}, {"id": "2", "n": 2, "s": "hidden"}):
        service.execute("data/create", {"dbHandle": admin, "collection": "notes", "data": record})
    role = sql.Identifier("r_" + owner["schema"])
    with psycopg.connect(owner["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(owner["schema"])))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
            sql.Identifier(owner["schema"]), role))  # fmt: skip
        conn.execute(sql.SQL("GRANT SELECT ON notes TO {}").format(role))
        conn.execute("ALTER TABLE notes ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY p ON notes USING ((data->>'s')::integer > 0)")
    # PostgreSQL evaluates a policy before a filter that is not leakproof: on row 2 too.
    handle = open_postgres(service, as_role, rowFilter={"n": 1})
    error = _failed(service, "data/list", {"dbHandle": handle, "collection": "notes"})
    assert "hidden" not in error.message and "22P02" in error.message, error
    assert "not shown" in error.message, error
