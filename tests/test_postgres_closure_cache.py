"""PostgreSQL restricted handles keep what their catalog checks found (``postgres_closure_cache``)
only while the catalog is unchanged: each kind of DDL that adds code a read or a write reaches,
made between two commands of one restricted handle, makes the second refuse. A collection's own
table is checked on reads too: an index with a user operator class, or a child table, another
role added there refuses a restricted handle's reads of the collection.

Every schema is built with plain SQL through psycopg, on the server the suite starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbhandles import Service
from dbhandles.adapters.postgres_closure_cache import FINGERPRINT
from dbhandles.errors import DbHandlesError
from tests.pg_restricted_helpers import (
    EVIL_CMP,
    REFILL,
    SECRET,
    WIPE,
    open_postgres,
    refused_unknowable,
    restricted_schema,
    secret_rows,
)
from tests.pgserver import postgres_schema, run_in_schema

pytestmark = pytest.mark.postgres

#: ``secret``; ``wipe(int)`` and ``evil_cmp`` (the compare function of operator class
#: ``evil_int4_ops``) delete ``secret``'s rows when they may write and raise with them when not;
#: ``harmless(int)`` is a user function that reads nothing; ``t``, a plain table.
SETUP = f"""{SECRET}{WIPE}{EVIL_CMP}\
CREATE FUNCTION evil_tcmp(a text, b text) RETURNS integer LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_read_only') = 'off' THEN DELETE FROM secret;
    ELSE RAISE EXCEPTION 'leak %', (SELECT string_agg(s, ',') FROM secret); END IF;
    RETURN bttextcmp(a, b);
END$$;
CREATE OPERATOR CLASS evil_text_ops FOR TYPE text USING btree AS OPERATOR 1 <, OPERATOR 2 <=,
    OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 evil_tcmp(text, text);
CREATE FUNCTION harmless(integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$SELECT $1$$;
CREATE DOMAIN posint AS integer CHECK (VALUE >= 0);
CREATE FUNCTION leak_posint(posint) RETURNS json LANGUAGE plpgsql SET search_path FROM CURRENT
AS $$BEGIN RETURN to_json((SELECT string_agg(s, ',') FROM secret)); END$$;
CREATE TABLE t (id integer PRIMARY KEY, n posint);
INSERT INTO t VALUES (1, 3);
"""
RESTRICTIONS = {
    "deniedCollections": {"deniedCollections": ["secret"]},
    "rowFilter": {"rowFilter": {"id": {"$gte": 0}}},
    "allowedCollections": {"allowedCollections": ["t", "things"]},
}
#: A DDL made between two reads of ``t`` (``data/list`` filtered on ``n``): the first is served,
#: the second refused.
READ_DDL = {
    "a cast": "CREATE CAST (posint AS json) WITH FUNCTION leak_posint(posint)",
    "an index with a user operator class": f"CREATE INDEX t_n ON t ((n::integer) evil_int4_ops); "
    f"{REFILL}",
    "a policy": "ALTER TABLE t ENABLE ROW LEVEL SECURITY; CREATE POLICY p ON t USING (wipe(n))",
    "a generated column": "ALTER TABLE t ADD COLUMN g integer GENERATED ALWAYS AS "
    "(harmless(id)) STORED",
}
#: A DDL made between two creates in ``t``: the first is served, the second refused.
WRITE_DDL = {
    "a trigger": "CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS "
    "$$BEGIN DELETE FROM secret; RETURN NEW; END$$; "
    "CREATE TRIGGER t_added BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION trg()",
    "a rule": "CREATE RULE t_also AS ON INSERT TO t DO ALSO DELETE FROM secret",
    "a default calling a user function": "ALTER TABLE t ALTER COLUMN n SET DEFAULT harmless(0)",
    "a domain constraint calling a function": "ALTER DOMAIN posint ADD CONSTRAINT w "
    "CHECK (wipe(VALUE)) NOT VALID",
    "an index with a user operator class": f"CREATE INDEX t_n ON t ((n::integer) evil_int4_ops); "
    f"{REFILL}",
}


def _fingerprint(pg: dict[str, Any]) -> tuple[Any, ...]:
    with psycopg.connect(pg["url"], autocommit=True) as conn:
        return tuple(conn.execute(FINGERPRINT).fetchone() or ())


# -- each kind of DDL between two commands of one handle ----------------------------------------


@pytest.mark.parametrize("ddl", sorted(READ_DDL))
@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_ddl_between_two_reads_makes_the_second_refuse(
    service: Service, tmp_path: Path, restriction: str, ddl: str
) -> None:
    pg, handle = restricted_schema(service, tmp_path, SETUP, **RESTRICTIONS[restriction])
    params = {"dbHandle": handle, "collection": "t", "filter": {"n": 3}}
    for _ in range(2):  # the second answer is the kept one
        assert [r["id"] for r in service.execute("data/list", params)["items"]] == [1]
    run_in_schema(pg, READ_DDL[ddl])
    refused_unknowable(service, "data/list", params)
    assert secret_rows(pg) == ["hidden"]


@pytest.mark.parametrize("ddl", sorted(WRITE_DDL))
@pytest.mark.parametrize("restriction", ["allowedCollections", "deniedCollections"])
def test_a_ddl_between_two_creates_makes_the_second_refuse(
    service: Service, tmp_path: Path, restriction: str, ddl: str
) -> None:
    pg, handle = restricted_schema(service, tmp_path, SETUP, **RESTRICTIONS[restriction])
    base = {"dbHandle": handle, "collection": "t"}
    for i in (2, 3):
        service.execute("data/create", {**base, "data": {"id": i, "n": i}})
    run_in_schema(pg, WRITE_DDL[ddl])
    refused_unknowable(service, "data/create", {**base, "data": {"id": 4, "n": 4}})
    assert secret_rows(pg) == ["hidden"]
    assert [r["id"] for r in service.execute("data/list", _plain(service, pg))["items"]] == [
        1, 2, 3
    ]  # fmt: skip


def _plain(service: Service, pg: dict[str, Any]) -> dict[str, Any]:
    return {"dbHandle": open_postgres(service, pg), "collection": "t", "orderBy": "id"}


#: DDL that changes no outcome of these tests' schema but must change the fingerprint: a
#: function's body replaced, made ``SECURITY DEFINER``, a table made a child of another, row-level
#: security switched on, a column's type changed to a domain, a schema renamed, a cast dropped.
FINGERPRINTED = {
    "CREATE OR REPLACE FUNCTION": "CREATE OR REPLACE FUNCTION harmless(integer) RETURNS integer "
    "LANGUAGE sql IMMUTABLE AS $$SELECT $1 + (SELECT count(*)::integer FROM secret)$$",
    "SECURITY DEFINER": "ALTER FUNCTION harmless(integer) SECURITY DEFINER",
    "INHERIT": "CREATE TABLE kid (id integer NOT NULL, n posint); ALTER TABLE kid INHERIT t",
    "ROW LEVEL SECURITY": "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
    "ALTER COLUMN TYPE": "ALTER TABLE secret ALTER COLUMN s TYPE varchar(20)",
    "a trigger disabled": "CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS "
    "$$BEGIN RETURN NEW; END$$; CREATE TRIGGER t_added BEFORE INSERT ON t FOR EACH ROW "
    "EXECUTE FUNCTION trg(); SELECT 1",
    "DROP CAST": "CREATE CAST (posint AS json) WITH FUNCTION leak_posint(posint); SELECT 1",
}
#: The second step of a ``FINGERPRINTED`` entry whose first step set the stage.
SECOND = {
    "a trigger disabled": "ALTER TABLE t DISABLE TRIGGER t_added",
    "DROP CAST": "DROP CAST (posint AS json)",
}


@pytest.mark.parametrize("ddl", sorted(FINGERPRINTED))
def test_each_kind_of_ddl_changes_the_catalog_fingerprint(tmp_path: Path, ddl: str) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    if ddl in SECOND:
        run_in_schema(pg, FINGERPRINTED[ddl])
        before = _fingerprint(pg)
        run_in_schema(pg, SECOND[ddl])
    else:
        before = _fingerprint(pg)
        run_in_schema(pg, FINGERPRINTED[ddl])
    assert _fingerprint(pg) != before
    assert _fingerprint(pg) == _fingerprint(pg)  # and nothing else moves it


# -- a collection's own table on reads ---------------------------------------------------------


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_user_operator_class_index_on_a_collection_s_table_refuses_its_reads(
    service: Service, tmp_path: Path, restriction: str
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    owner = open_postgres(service, pg)
    for i, name in enumerate(("ann", "bob")):
        service.execute("data/create", {"dbHandle": owner, "collection": "things",
                                        "data": {"id": f"r{i}", "name": name}})  # fmt: skip
    permissions = dict(RESTRICTIONS[restriction])
    if restriction == "rowFilter":
        permissions = {"rowFilter": {"name": {"$ne": "zed"}}}
    handle = open_postgres(service, pg, **permissions)
    base = {"dbHandle": handle, "collection": "things"}
    listed = service.execute("data/list", {**base, "filter": {"name": "bob"}})["items"]
    assert [r["id"] for r in listed] == ["r1"]  # a plain collection is served
    run_in_schema(
        pg, "CREATE INDEX things_name ON things ((data ->> 'name') evil_text_ops)", REFILL
    )
    error = refused_unknowable(service, "data/list", {**base, "filter": {"name": "bob"}})
    assert "things_name" in error.message and "evil_tcmp()" in error.message, error
    refused_unknowable(service, "data/read", {**base, "id": "r1"})
    refused_unknowable(service, "data/count", base)
    assert secret_rows(pg) == ["hidden"]
    # The owner's unrestricted handle still reads it (and runs the class: its own choice).
    assert service.execute("data/read", {"dbHandle": owner, "collection": "things",
                                         "id": "r1"})["data"]["name"] == "bob"  # fmt: skip


def test_a_child_table_of_a_collection_s_table_is_what_its_reads_reach(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(tmp_path, SETUP)
    owner = open_postgres(service, pg)
    service.execute("data/create", {"dbHandle": owner, "collection": "things",
                                    "data": {"id": "r0", "name": "ann"}})  # fmt: skip
    handle = open_postgres(service, pg, allowedCollections=["things"])
    base = {"dbHandle": handle, "collection": "things"}
    assert [r["id"] for r in service.execute("data/list", base)["items"]] == ["r0"]
    # Its rows are read by every read of things (no ONLY): a table the handle may not read.
    run_in_schema(pg, "CREATE TABLE hidden_kid () INHERITS (things)")
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/list", base)
    assert caught.value.code == "permission_denied", caught.value
    assert "hidden_kid" in caught.value.message, caught.value
