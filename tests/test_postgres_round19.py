"""PostgreSQL, outside findings of round 19 (issue 12): one rule for all code a statement can
reach on a restricted handle. A user type used as a constant in a view, a CHECK, a default or a
domain; a cast to a domain whose CHECK calls a function, an I/O cast to a range type; an index's
operator class (on reads too); the indexes a foreign key's check probes on the other table; a
sort ``USING`` a user operator: each is in the ``pg_depend`` closure of what the statement
evaluates (``adapters/postgres_closure.py``), so a handle with ``allowedCollections``,
``deniedCollections`` or ``rowFilter`` is refused. A cast from ``integer`` to somebody's enum
refuses no ``integer`` column, and a user ``=`` operator is never what dbhandles' filters pick. A
``RAISE`` text is never quoted in ``query_failed``.

Every schema is built with plain SQL through psycopg, on the server the suite starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError
from tests.pg_restricted_helpers import (
    EVIL_CMP,
    LEAK_MOOD,
    REFILL,
    SECRET,
    WIPE,
    open_postgres,
    refused_unknowable,
    secret_rows,
)
from tests.pgserver import postgres_schema, run_in_schema

pytestmark = pytest.mark.postgres

#: ``secret``; ``leak(mood)``, a cast of the enum ``mood`` to ``json``; ``wipe(int)``, a check;
#: ``evil_cmp``, the compare function of operator class ``evil_int4_ops``. Each deletes
#: ``secret``'s rows when it may write, and returns (or raises with) them when it may not.
SETUP = f"""{SECRET}{LEAK_MOOD}{WIPE}{EVIL_CMP}\
CREATE TABLE t (id integer PRIMARY KEY, n integer);
INSERT INTO t VALUES (1, 3);
"""
RESTRICTIONS = {
    "deniedCollections": {"deniedCollections": ["secret"]},
    "rowFilter": {"rowFilter": {"id": {"$gte": 0}}},
    "allowedCollections": {"allowedCollections": ["t", "v", "w", "p", "c", "things", "kid"]},
}
#: Route 1 and 3: views whose only reach is ``t``, evaluating code through a constant or a cast.
VIEWS = {
    "enum constant": "CREATE VIEW v AS SELECT id, to_jsonb('happy'::mood) AS m FROM t",
    "domain cast": "CREATE DOMAIN pos AS integer CHECK (wipe(VALUE)); "
    "CREATE VIEW v AS SELECT id, n::pos AS p FROM t",
    "range I/O cast": "CREATE TYPE evrange AS RANGE (subtype = int4, "
    "subtype_opclass = evil_int4_ops); "
    "CREATE VIEW v AS SELECT id, ('[' || id || ',5)')::evrange::text AS r FROM t",
    "sort using": "CREATE OPERATOR <<< (function = int4lt, leftarg = int4, rightarg = int4); "
    "CREATE OPERATOR CLASS evil_lt_ops FOR TYPE int4 USING btree AS OPERATOR 1 <<<, "
    "OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 evil_cmp(int4, int4); "
    "CREATE VIEW v AS SELECT id, n FROM t ORDER BY n USING <<<",
}
#: Route 2 and 3: a table ``w`` whose create evaluates such code.
WRITTEN = {
    "enum constant in a CHECK": "CREATE TABLE w (id integer PRIMARY KEY, "
    "n integer CHECK (to_jsonb('happy'::mood) IS NOT NULL))",
    "enum constant in a DEFAULT": "CREATE TABLE w (id integer PRIMARY KEY, "
    "j jsonb DEFAULT to_jsonb('sad'::mood))",
    "enum constant in a domain's CHECK": "CREATE DOMAIN dn AS integer "
    "CHECK (to_jsonb('happy'::mood) IS NOT NULL); "
    "CREATE TABLE w (id integer PRIMARY KEY, n dn)",
    "cast to a domain in a CHECK": "CREATE DOMAIN pos AS integer CHECK (wipe(VALUE)); "
    "CREATE TABLE w (id integer PRIMARY KEY, n integer CHECK ((n::pos) IS NOT NULL))",
}


# -- 1, 3, 6. a view reaching code through a constant, a cast or a sort ------------------------


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_view_reaching_user_code_through_its_expressions_isrefused_unknowable(
    service: Service, tmp_path: Path, restriction: str, view: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP, VIEWS[view])
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    base = {"dbHandle": handle, "collection": "v"}
    error = refused_unknowable(service, "data/list", base)
    assert any(f"{f}()" in error.message for f in ("leak", "wipe", "evil_cmp")), error
    refused_unknowable(service, "data/count", base)
    assert secret_rows(pg) == ["hidden"]


# -- 2, 3. a create evaluating such code -------------------------------------------------------


@pytest.mark.parametrize("table", sorted(WRITTEN))
@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_create_reaching_user_code_through_a_constant_or_a_domain_isrefused_unknowable(
    service: Service, tmp_path: Path, restriction: str, table: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP, WRITTEN[table])
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    # A row filter refuses an id the writer chose before anything else: none is given there.
    data: dict[str, Any] = {"n": 1} if restriction == "rowFilter" else {"id": 1, "n": 1}
    if "j jsonb" in WRITTEN[table]:
        data.pop("n")  # the default runs when the record gives no value
    error = refused_unknowable(
        service, "data/create", {"dbHandle": handle, "collection": "w", "data": data}
    )
    assert "w" in error.message, error
    assert secret_rows(pg) == ["hidden"]


# -- 4. an index's operator class runs on reads --------------------------------------------------


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_read_of_a_table_with_a_user_operator_class_index_isrefused_unknowable(
    service: Service, tmp_path: Path, restriction: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP, "CREATE INDEX t_n ON t (n evil_int4_ops)", REFILL)
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    base = {"dbHandle": handle, "collection": "t"}
    error = refused_unknowable(service, "data/list", {**base, "filter": {"n": 3}})
    assert "of index t_n" in error.message and "evil_cmp()" in error.message, error
    refused_unknowable(service, "data/delete", {**base, "id": "1"})
    refused_unknowable(service, "data/update", {**base, "id": "1", "data": {"n": 4}})
    assert secret_rows(pg) == ["hidden"]


# -- 5. the indexes a foreign key's check probes on the other table ----------------------------


@pytest.mark.parametrize("action", ["NO ACTION", "RESTRICT"])
@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_foreign_key_check_probing_the_referencing_table_s_operator_class_isrefused_unknowable(
    service: Service, tmp_path: Path, restriction: str, action: str
) -> None:
    pg = postgres_schema(
        tmp_path, SETUP,
        "CREATE TABLE p (id integer PRIMARY KEY)",
        f"CREATE TABLE c (id integer PRIMARY KEY, pid integer REFERENCES p ON DELETE {action})",
        "INSERT INTO p VALUES (1), (2)",
        "CREATE INDEX c_pid ON c (pid evil_int4_ops)",
    )  # fmt: skip
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    error = refused_unknowable(
        service, "data/delete", {"dbHandle": handle, "collection": "p", "id": "2"}
    )
    assert "index c_pid of c" in error.message, error
    assert secret_rows(pg) == ["hidden"]


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_foreign_key_check_probing_the_referenced_table_s_operator_class_isrefused_unknowable(
    service: Service, tmp_path: Path, restriction: str
) -> None:
    pg = postgres_schema(
        tmp_path, SETUP,
        "CREATE TABLE p (id integer PRIMARY KEY)",
        "CREATE TABLE c (id integer PRIMARY KEY, pid integer REFERENCES p)",
        "INSERT INTO p VALUES (1), (2)",
        # Made after the rows: building it ran evil_cmp (as the test's superuser).
        "CREATE UNIQUE INDEX p_evil ON p (id evil_int4_ops)",
        REFILL,
    )  # fmt: skip
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    data: dict[str, Any] = {"pid": 1} if restriction == "rowFilter" else {"id": 1, "pid": 1}
    error = refused_unknowable(
        service, "data/create", {"dbHandle": handle, "collection": "c", "data": data}
    )
    assert "index p_evil of p" in error.message, error
    assert secret_rows(pg) == ["hidden"]


@pytest.mark.parametrize("restriction", ["deniedCollections", "rowFilter"])
def test_a_foreign_key_onto_a_collection_probing_a_user_operator_class_isrefused_unknowable(
    service: Service, tmp_path: Path, restriction: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    owner = open_postgres(service, pg)
    service.execute("data/create", {"dbHandle": owner, "collection": "things",
                                    "data": {"id": "a", "x": 1}})  # fmt: skip
    run_in_schema(
        pg,
        "CREATE FUNCTION evil_tcmp(a text, b text) RETURNS integer LANGUAGE plpgsql "
        "SET search_path FROM CURRENT AS $$BEGIN DELETE FROM secret; RETURN bttextcmp(a, b); "
        "END$$",
        "CREATE OPERATOR CLASS evil_text_ops FOR TYPE text USING btree AS OPERATOR 1 <, "
        "OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, "
        "FUNCTION 1 evil_tcmp(text, text)",
        "CREATE TABLE kid (id integer PRIMARY KEY, tid text REFERENCES things (id))",
        "CREATE INDEX kid_tid ON kid (tid evil_text_ops)",
    )
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    error = refused_unknowable(
        service, "data/delete", {"dbHandle": handle, "collection": "things", "id": "a"}
    )
    assert "kid_tid" in error.message, error
    assert secret_rows(pg) == ["hidden"]


# -- 7. no over-refusal ------------------------------------------------------------------------


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_plain_tables_views_and_foreign_keys_stay_served_beside_a_cast_to_a_user_enum(
    service: Service, tmp_path: Path, restriction: str
) -> None:
    pg = postgres_schema(
        tmp_path, SETUP,
        "CREATE FUNCTION to_mood(integer) RETURNS mood LANGUAGE sql AS $$SELECT 'happy'::mood$$",
        "CREATE CAST (integer AS mood) WITH FUNCTION to_mood(integer)",
        "CREATE TABLE p (id integer PRIMARY KEY, label text)",
        "CREATE TABLE c (id integer PRIMARY KEY, pid integer REFERENCES p ON DELETE RESTRICT, "
        "n bigint CHECK (n >= 0) DEFAULT 0)",
        "CREATE INDEX c_pid ON c (pid)",
        "INSERT INTO p VALUES (1, 'one'), (2, 'two')",
        "CREATE VIEW v AS SELECT c.id, p.label, to_jsonb(c.n) AS j FROM c JOIN p ON p.id = c.pid "
        "ORDER BY c.id",
    )  # fmt: skip
    # A row filter refuses ids chosen by the writer: the owner makes the row.
    service.execute("data/create", {"dbHandle": open_postgres(service, pg), "collection": "c",
                                    "data": {"id": 1, "pid": 1}})  # fmt: skip
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    base = {"dbHandle": handle}
    if restriction != "rowFilter":
        service.execute("data/create", {**base, "collection": "c", "data": {"id": 3, "pid": 1}})
        service.execute("data/delete", {**base, "collection": "c", "id": "3"})
    service.execute("data/update", {**base, "collection": "c", "id": "1", "data": {"n": 4}})
    listed = service.execute("data/list", {**base, "collection": "t", "filter": {"n": 3}})
    assert [r["n"] for r in listed["items"]] == [3]
    if restriction != "rowFilter":  # a view is never served under a row filter
        rows = service.execute("data/list", {**base, "collection": "v"})["items"]
        assert [(r["label"], r["j"]) for r in rows] == [("one", 4)]
    service.execute("data/delete", {**base, "collection": "p", "id": "2"})
    service.execute("data/delete", {**base, "collection": "c", "id": "1"})
    assert secret_rows(pg) == ["hidden"]


# -- filters pick PostgreSQL's own operators ---------------------------------------------------


@pytest.mark.parametrize("restriction", [None, "deniedCollections", "rowFilter"])
def test_a_user_equality_operator_is_never_what_a_filter_picks(
    service: Service, tmp_path: Path, restriction: str | None
) -> None:
    pg = postgres_schema(
        tmp_path, SETUP,
        "CREATE TABLE s (id integer PRIMARY KEY, name text)",
        "INSERT INTO s VALUES (1, 'a'), (2, 'b')",
        "CREATE FUNCTION evil_eq(a int4, b int4) RETURNS boolean LANGUAGE plpgsql "
        "SET search_path FROM CURRENT AS $$BEGIN DELETE FROM secret; RETURN true; END$$",
        "CREATE FUNCTION evil_teq(a text, b text) RETURNS boolean LANGUAGE plpgsql "
        "SET search_path FROM CURRENT AS $$BEGIN DELETE FROM secret; RETURN true; END$$",
        "CREATE OPERATOR = (function = evil_eq, leftarg = int4, rightarg = int4)",
        "CREATE OPERATOR = (function = evil_teq, leftarg = text, rightarg = text)",
    )  # fmt: skip
    permissions = {} if restriction is None else RESTRICTIONS[restriction]
    handle = open_postgres(service, pg, **permissions)
    base = {"dbHandle": handle, "collection": "s"}
    by_id = service.execute("data/list", {**base, "filter": {"id": 2}})["items"]
    assert [r["id"] for r in by_id] == [2]
    named = service.execute("data/list", {**base, "filter": {"name": "a"}})["items"]
    assert [r["id"] for r in named] == [1]
    assert service.execute("data/read", {**base, "id": "1"})["data"]["name"] == "a"
    service.execute("data/update", {**base, "id": "2", "data": {"name": "c"}})
    assert secret_rows(pg) == ["hidden"]


# -- a RAISE's text is not quoted ----------------------------------------------------------------


def test_query_failed_names_the_sqlstate_and_the_function_not_the_raise_text(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, SETUP, "CREATE VIEW v AS SELECT id, wipe(n) AS ok FROM t")
    handle = open_postgres(service, pg)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", {"dbHandle": handle, "collection": "v"})
    error = caught.value
    assert error.code == "query_failed" and "P0001" in error.message, error
    assert "hidden" not in error.message and "leak" not in error.message, error
    assert "wipe" in error.message, error
    assert secret_rows(pg) == ["hidden"]


def test_query_failed_never_quotes_a_value_a_function_met(service: Service, tmp_path: Path) -> None:
    pg = postgres_schema(
        tmp_path, SETUP,
        "CREATE FUNCTION peek_int() RETURNS integer LANGUAGE plpgsql SET search_path FROM CURRENT "
        "AS $$BEGIN RETURN (SELECT s FROM secret LIMIT 1)::integer; END$$",
        "CREATE VIEW v AS SELECT id, peek_int() AS x FROM t",
    )  # fmt: skip
    handle = open_postgres(service, pg)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", {"dbHandle": handle, "collection": "v"})
    error = caught.value
    assert error.code == "query_failed" and "22P02" in error.message, error
    assert "hidden" not in error.message and "peek_int" in error.message, error
