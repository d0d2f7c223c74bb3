"""PostgreSQL, outside findings of round 16 (issue 12): a write through a restricted handle that
runs a function of the table's own SQL (a default, a CHECK, a generated column, an index, a
domain) is refused like a trigger; writes keep the query budget; a foreign table's page is bounded
in bytes; errors raised inside the database's own code are ``query_failed``; numeric ``NaN``.

Every schema is built with plain SQL through psycopg, on the server the suite starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.adapters import sqlite_pages
from dbhandles.errors import DbHandlesError
from dbhandles.settings import Settings
from tests.pg_restricted_helpers import open_postgres, schema_rows
from tests.pgserver import postgres_schema, run_in_schema
from tests.test_security_round13 import pg_write_reaching_tlog

pytestmark = pytest.mark.postgres

#: A function of each language that writes ``victim`` and answers a number.
WRITERS = """
CREATE TABLE victim (m text);
CREATE FUNCTION bump_sql() RETURNS integer LANGUAGE sql SET search_path FROM CURRENT AS
    $$INSERT INTO victim VALUES ('sql'); SELECT 1$$;
CREATE FUNCTION bump_pl(x integer DEFAULT 0) RETURNS integer LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$BEGIN INSERT INTO victim VALUES ('pl'); RETURN 1; END$$;
CREATE FUNCTION bump_ok(x integer) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
    SET search_path FROM CURRENT AS $$BEGIN PERFORM bump_pl(); RETURN true; END$$;
CREATE FUNCTION bump_imm(x integer) RETURNS integer LANGUAGE plpgsql IMMUTABLE
    SET search_path FROM CURRENT AS $$BEGIN RETURN bump_pl(); END$$;
CREATE DOMAIN bumped AS integer CHECK (bump_ok(VALUE));
"""

#: What makes a write of table ``t`` run a function that writes ``victim``, by the name it is
#: refused under, and which writes run it.
OWN_CODE = {
    "sql default": ("t (id integer PRIMARY KEY, n integer DEFAULT bump_sql())",
                    "default of column n", ("create",)),
    "plpgsql default": ("t (id integer PRIMARY KEY, n integer DEFAULT bump_pl())",
                        "default of column n", ("create",)),
    "check": ("t (id integer PRIMARY KEY, n integer, CONSTRAINT c_n CHECK (bump_ok(n)))",
              "constraint c_n", ("create", "update")),
    "generated": ("t (id integer PRIMARY KEY, n integer, "
                  "g integer GENERATED ALWAYS AS (n + bump_imm(n)) STORED)",
                  "generated column g", ("create", "update")),
    "domain": ("t (id integer PRIMARY KEY, n bumped)", "c_dom of domain bumped",
               ("create", "update")),
}  # fmt: skip


def _victims(pg: dict[str, Any]) -> int:
    return int(schema_rows(pg, "SELECT count(*) FROM victim")[0][0])


def _write(service: Service, handle: str, how: str, n: bool = True) -> Any:
    """A create of row 2 (``n`` 5, or left to its default), or an update of row 1's ``n``."""
    params: dict[str, Any] = {"dbHandle": handle, "collection": "t"}
    if how == "create":
        params.update(data={"id": 2, "n": 5} if n else {"id": 2})
    else:
        params.update(id="1", data={"n": 6})
    return service.execute(f"data/{how}", params)


# -- 1. functions of a table's own SQL, on restricted handles --------------------------------------


@pytest.mark.parametrize("restriction", ["deniedCollections", "rowFilter"])
@pytest.mark.parametrize(("case", "how"), [(c, h) for c, v in OWN_CODE.items() for h in v[2]])
def test_a_write_running_a_function_of_the_tables_own_sql_is_refused_on_a_restricted_handle(
    service: Service, tmp_path: Path, case: str, how: str, restriction: str
) -> None:
    ddl, named, _ = OWN_CODE[case]
    domain = "ALTER DOMAIN bumped RENAME CONSTRAINT bumped_check TO c_dom"
    pg = postgres_schema(tmp_path, WRITERS, domain, f"CREATE TABLE {ddl}",
                         "INSERT INTO t (id, n) VALUES (1, 1)", "DELETE FROM victim")  # fmt: skip
    grant = {"deniedCollections": ["victim"]} if restriction == "deniedCollections" else {
        "rowFilter": {"id": {"$gte": 0}}
    }  # fmt: skip
    handle = open_postgres(service, pg, **grant)
    with pytest.raises(DbHandlesError) as caught:
        _write(service, handle, how, "default" not in case)
    assert caught.value.code == "permission_denied", caught.value
    assert named in caught.value.message and '"t"' in caught.value.message
    assert _victims(pg) == 0
    # Through a handle without restrictions the write is the table owner's business.
    _write(service, open_postgres(service, pg), how, "default" not in case)
    assert _victims(pg) > 0


def test_an_index_expression_calling_a_function_is_refused_on_a_restricted_handle(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, WRITERS, "CREATE TABLE t (id integer PRIMARY KEY, n integer)",
                         "CREATE INDEX t_bump ON t ((n + bump_imm(n)))")  # fmt: skip
    run_in_schema(pg, "DELETE FROM victim")
    handle = open_postgres(service, pg, deniedCollections=["victim"])
    with pytest.raises(DbHandlesError) as caught:
        _write(service, handle, "create")
    assert caught.value.code == "permission_denied" and "index t_bump" in caught.value.message
    assert _victims(pg) == 0


def test_a_set_default_cascade_into_a_default_calling_a_function_is_refused(
    service: Service, tmp_path: Path
) -> None:
    # Deleting a parent sets the child's key to its default, which the delete thus evaluates.
    pg = postgres_schema(
        tmp_path, WRITERS,
        "CREATE TABLE parent (id integer PRIMARY KEY)",
        "INSERT INTO parent VALUES (0), (1)",
        "CREATE TABLE kid (id integer PRIMARY KEY, parent integer DEFAULT bump_pl() "
        "REFERENCES parent (id) ON DELETE SET DEFAULT)",
        "INSERT INTO kid VALUES (1, 1)",
    )  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["victim"])
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/delete", {"dbHandle": handle, "collection": "parent", "id": "1"})
    assert caught.value.code == "permission_denied", caught.value
    assert "default of column parent" in caught.value.message
    assert _victims(pg) == 0


def test_a_collections_default_calling_a_function_is_refused_like_its_trigger(
    tmp_path: Path,
) -> None:
    # A collection's table is dbhandles', but another role may add a column with a default.
    error = pg_write_reaching_tlog(
        tmp_path, "create", "CREATE TABLE tlog (m text)",
        "CREATE FUNCTION note() RETURNS integer LANGUAGE sql SET search_path FROM CURRENT AS "
        "$$INSERT INTO tlog VALUES ('x'); SELECT 1$$",
        # Added, then given its default: a volatile default added with the column fills the
        # rows already there at once.
        "ALTER TABLE pub ADD COLUMN extra integer",
        "ALTER TABLE pub ALTER COLUMN extra SET DEFAULT note()",
    )  # fmt: skip
    assert error.code == "permission_denied" and "default of column extra" in error.message


def test_built_in_defaults_and_checks_leave_a_restricted_handle_writable(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path, WRITERS,
        "CREATE TABLE t (id integer PRIMARY KEY, n integer CHECK (n > 0 AND abs(n) < 100), "
        "u uuid DEFAULT gen_random_uuid(), at timestamptz DEFAULT now(), "
        "g integer GENERATED ALWAYS AS (n * 2) STORED)",
        "INSERT INTO t (id, n) VALUES (1, 1)",
    )  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["victim"])
    assert _write(service, handle, "create")["data"]["g"] == 10
    assert _write(service, handle, "update")["data"]["g"] == 12
    # A delete evaluates none of them: even a default calling a function does not refuse it.
    run_in_schema(pg, "ALTER TABLE t ALTER COLUMN n SET DEFAULT bump_pl()")
    service.execute("data/delete", {"dbHandle": handle, "collection": "t", "id": "2"})
    # Nor does an update, which evaluates no default.
    assert _write(service, handle, "update")["data"]["n"] == 6
    assert _victims(pg) == 0


# -- 2. writes keep the query budget ------------------------------------------------------------


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[Service]:
    with Service(settings=Settings(home=tmp_path / "home", query_timeout_ms=300)) as svc:
        yield svc


SLOW = """
CREATE FUNCTION slow() RETURNS integer LANGUAGE sql AS $$SELECT 1 FROM pg_sleep(30)$$;
CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS
    $$BEGIN PERFORM pg_sleep(30); RETURN NEW; END$$;
CREATE TABLE slow_default (id integer PRIMARY KEY, n integer DEFAULT slow());
CREATE TABLE slow_check (id integer PRIMARY KEY, n integer CHECK (n + slow() > 0));
CREATE TABLE slow_trigger (id integer PRIMARY KEY, n integer);
CREATE TRIGGER slow_before BEFORE INSERT OR UPDATE ON slow_trigger
    FOR EACH ROW EXECUTE FUNCTION slow_row();
"""


@pytest.mark.parametrize("table", ["slow_default", "slow_check", "slow_trigger"])
def test_a_slow_write_to_a_foreign_table_ends_at_the_budget(
    quick: Service, tmp_path: Path, table: str
) -> None:
    pg = postgres_schema(tmp_path, SLOW)
    handle = open_postgres(quick, pg)
    with pytest.raises(DbHandlesError) as caught:
        # No ``n``: the default computes it.
        quick.execute("data/create", {"dbHandle": handle, "collection": table,
                                      "data": {"id": 1} if "default" in table else
                                      {"id": 1, "n": 1}})  # fmt: skip
    assert caught.value.code == "query_timeout", caught.value
    found = quick.execute("data/read", {"dbHandle": handle, "collection": table, "id": "1"})
    assert not found["found"]  # rolled back


@pytest.mark.parametrize("how", ["create", "update", "delete"])
def test_a_slow_write_to_a_collection_ends_at_the_budget(
    quick: Service, tmp_path: Path, how: str
) -> None:
    pg = postgres_schema(tmp_path, SLOW)
    handle = open_postgres(quick, pg)
    quick.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "a",
                                  "data": {"n": 1}})  # fmt: skip
    run_in_schema(pg, "CREATE TRIGGER c_slow BEFORE INSERT OR UPDATE OR DELETE ON c "
                      "FOR EACH ROW EXECUTE FUNCTION slow_row()")  # fmt: skip
    params: dict[str, Any] = {"dbHandle": handle, "collection": "c"}
    params.update({"create": {"id": "b", "data": {"n": 2}}, "update": {"id": "a", "data": {"n": 3}},
                   "delete": {"id": "a"}}[how])  # fmt: skip
    with pytest.raises(DbHandlesError) as caught:
        quick.execute(f"data/{how}", params)
    assert caught.value.code == "query_timeout", caught.value
    listed = quick.execute("data/list", {"dbHandle": handle, "collection": "c"})
    assert [(r["id"], r["n"]) for r in listed["items"]] == [("a", 1)]


def test_a_deferred_trigger_running_at_commit_keeps_the_budget(
    quick: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path, SLOW,
        "CREATE FUNCTION slow_after() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN PERFORM pg_sleep(30); RETURN NULL; END$$",
        "CREATE TABLE late (id integer PRIMARY KEY, n integer)",
        "CREATE CONSTRAINT TRIGGER late_slow AFTER INSERT ON late DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW EXECUTE FUNCTION slow_after()",
    )  # fmt: skip
    handle = open_postgres(quick, pg)
    with pytest.raises(DbHandlesError) as caught:
        quick.execute("data/create", {"dbHandle": handle, "collection": "late",
                                      "data": {"id": 1, "n": 1}})  # fmt: skip
    assert caught.value.code == "query_timeout", caught.value
    found = quick.execute("data/read", {"dbHandle": handle, "collection": "late", "id": "1"})
    assert not found["found"]


# -- 3. a foreign table's page is bounded in bytes -----------------------------------------------


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> int:
    bound = 4000
    monkeypatch.setattr(sqlite_pages, "MAX_PAGE_BYTES", bound)
    return bound


@pytest.mark.parametrize(
    ("ddl", "value"),
    [("big (id integer PRIMARY KEY, body text)", "repeat('x', 600)"),
     ("big (id integer PRIMARY KEY, body jsonb)", "jsonb_build_object('k', repeat('y', 600))"),
     ("big (body text)", "repeat('z', 600)")],  # a key-less table: a computed id
)  # fmt: skip
def test_a_foreign_tables_page_past_the_byte_bound_is_refused(
    service: Service, tmp_path: Path, small_pages: int, ddl: str, value: str
) -> None:
    columns = "(id, body)" if "id integer" in ddl else "(body)"
    select = f"g, {value}" if "id integer" in ddl else f"{value} || g"
    pg = postgres_schema(tmp_path, f"CREATE TABLE {ddl}",
                         f"INSERT INTO big {columns} SELECT {select} FROM generate_series(1, 10) g")  # fmt: skip
    handle = open_postgres(service, pg)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", {"dbHandle": handle, "collection": "big", "limit": 8})
    error = caught.value
    assert error.code == "query_failed", error
    assert '"big"' in error.message and "limit" in error.message, error.message
    # A page within the bound answers in the order asked for.
    for order in ("body", "-body"):
        page = service.execute("data/list", {"dbHandle": handle, "collection": "big",
                                             "limit": 2, "orderBy": [order]})  # fmt: skip
        bodies = [str(r["body"]) for r in page["items"]]
        assert len(bodies) == 2 and page["hasMore"]
        assert bodies == sorted(bodies, reverse=order.startswith("-"))


# -- 4. errors raised inside the database's own code -----------------------------------------------


def test_a_self_recursive_rule_is_query_failed(service: Service, tmp_path: Path) -> None:
    pg = postgres_schema(tmp_path, "CREATE TABLE rec (id integer PRIMARY KEY)",
                         "CREATE RULE rec_again AS ON INSERT TO rec DO ALSO "
                         "INSERT INTO rec VALUES (NEW.id + 1)")  # fmt: skip
    handle = open_postgres(service, pg)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/create", {"dbHandle": handle, "collection": "rec", "data": {"id": 1}})
    assert caught.value.code == "query_failed" and "42P17" in caught.value.message, caught.value


def test_a_function_naming_a_missing_table_is_query_failed(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path,
        "CREATE FUNCTION lookup() RETURNS integer LANGUAGE sql AS $$SELECT 1$$",
        "CREATE TABLE t (id integer PRIMARY KEY, n integer DEFAULT lookup())",
        # Replaced once the table exists: its body names a table no search path finds.
        "CREATE TABLE other (n integer)",
        "CREATE OR REPLACE FUNCTION lookup() RETURNS integer LANGUAGE plpgsql AS "
        "$$BEGIN RETURN (SELECT count(*) FROM other); END$$",
    )
    handle = open_postgres(service, pg)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/create", {"dbHandle": handle, "collection": "t", "data": {"id": 1}})
    error = caught.value
    assert error.code == "query_failed" and "42P01" in error.message, error
    assert "disappeared" not in error.message


def test_a_collection_dropped_under_a_command_stays_storage_error(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path)
    handle = open_postgres(service, pg)
    service.execute("data/create", {"dbHandle": handle, "collection": "gone", "id": "a",
                                    "data": {}})  # fmt: skip
    run_in_schema(pg, "DROP TABLE gone")
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/update", {"dbHandle": handle, "collection": "gone", "id": "a",
                                        "data": {"n": 1}})  # fmt: skip
    assert caught.value.code in ("storage_error", "not_found"), caught.value


# -- 5. numeric NaN ----------------------------------------------------------------------------


def test_numeric_nan_reads_as_null_and_a_string_nan_is_refused(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, "CREATE TABLE nums (id integer PRIMARY KEY, n numeric)",
                         "INSERT INTO nums VALUES (1, 'NaN')")  # fmt: skip
    handle = open_postgres(service, pg)
    found = service.execute("data/read", {"dbHandle": handle, "collection": "nums", "id": "1"})
    assert found["data"]["n"] is None
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/create", {"dbHandle": handle, "collection": "nums",
                                        "data": {"id": 2, "n": "NaN"}})  # fmt: skip
    assert caught.value.code == "invalid_params" and "data.n" in caught.value.message


@pytest.mark.parametrize(
    ("column", "value"),
    [("n", "Infinity"), ("f", " nan "), ("r", "-inf"), ("ns", ["1", "NaN"]), ("d", "NaN")],
)
def test_every_non_finite_text_into_a_floating_column_is_refused(
    service: Service, tmp_path: Path, column: str, value: Any
) -> None:
    pg = postgres_schema(tmp_path, "CREATE DOMAIN price AS numeric",
                         "CREATE TABLE nums (id integer PRIMARY KEY, n numeric, f float8, "
                         "r real, ns numeric[], d price, t text)")  # fmt: skip
    handle = open_postgres(service, pg)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/create", {"dbHandle": handle, "collection": "nums",
                                        "data": {"id": 1, column: value}})  # fmt: skip
    assert caught.value.code == "invalid_params", caught.value
    assert f"data.{column}" in caught.value.message
    # A text column takes the word as it is.
    made = service.execute("data/create", {"dbHandle": handle, "collection": "nums",
                                           "data": {"id": 2, "t": "NaN", "n": "12.5"}})  # fmt: skip
    assert made["data"]["t"] == "NaN" and made["data"]["n"] == 12.5
