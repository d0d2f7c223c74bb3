"""PostgreSQL, outside findings of round 18 (issue 12): code run through column types on
restricted handles. A user cast of an enum to ``json`` (``to_jsonb`` calls it), a range type whose
subtype operator class is somebody's, and a view ordering by such a range run code no catalog
records as the relation's: a table or view whose reach has a column of a type that is not all
PostgreSQL's own is refused to a handle with ``allowedCollections``, ``deniedCollections`` or
``rowFilter``. A ``RAISE`` claiming ``25006``/``42501``/``23505`` is ``query_failed``; a short
password is masked only where it stands alone.

Every schema is built with plain SQL through psycopg, on the server the suite starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbhandles import Service
from dbhandles.adapters.postgres_errors import translate_error
from dbhandles.errors import DbHandlesError
from tests.pg_restricted_helpers import (
    EVIL_CMP,
    LEAK_MOOD,
    SECRET,
    create_under_a_raising_default,
    open_postgres,
    query_failed_naming,
    raising_function,
    refused,
    restricted_schema,
    secret_rows,
)
from tests.pgserver import postgres_schema

#: ``secret``, and ``leak(mood)``: a cast of the enum ``mood`` to ``json`` returning ``secret``'s
#: rows, and deleting them when it may write.
LEAK = SECRET + LEAK_MOOD
#: A table (or view) ``t`` whose reach has a ``mood`` column, by how it holds it.
HOLDERS = {
    "enum": [
        "CREATE TABLE t (id integer PRIMARY KEY, m mood)",
        "INSERT INTO t VALUES (1, 'happy')",
    ],
    "composite": [
        "CREATE TYPE wrap AS (m mood)",
        "CREATE TABLE t (id integer PRIMARY KEY, w wrap)",
        "INSERT INTO t VALUES (1, ROW('happy'))",
    ],
    "domain": [
        "CREATE DOMAIN dmood AS mood",
        "CREATE TABLE t (id integer PRIMARY KEY, m dmood)",
        "INSERT INTO t VALUES (1, 'happy')",
    ],
    "array": [
        "CREATE TABLE t (id integer PRIMARY KEY, ms mood[])",
        "INSERT INTO t VALUES (1, '{happy}')",
    ],
    "view": [
        "CREATE TABLE p (id integer PRIMARY KEY, m mood)",
        "INSERT INTO p VALUES (1, 'happy')",
        "CREATE VIEW t AS SELECT p.id, to_jsonb(p.m) AS j FROM p",
    ],
}
#: ``evrange``: a range of ``int4`` ordered by ``evil_int4_ops``, whose compare deletes
#: ``secret`` when it may write and raises with ``secret``'s rows when it may not.
EVIL_RANGE = f"""{SECRET}{EVIL_CMP}\
CREATE TYPE evrange AS RANGE (subtype = int4, subtype_opclass = evil_int4_ops);
CREATE TABLE rt (id integer PRIMARY KEY, owner text, r evrange);
CREATE TABLE mt (id integer PRIMARY KEY, r evmultirange);
"""
RESTRICTIONS = {
    "deniedCollections": {"deniedCollections": ["secret"]},
    "allowedCollections": {"allowedCollections": ["t", "p", "rt", "mt", "vr", "parent", "c"]},
    "rowFilter": {"rowFilter": {"id": {"$gte": 0}}},
}

pytestmark = pytest.mark.postgres


def _refused(service: Service, command: str, params: dict[str, Any]) -> DbHandlesError:
    return refused(service, command, params, unshown="hidden")


# -- 1. a user cast of an enum to json -----------------------------------------------------------


@pytest.mark.parametrize("holder", sorted(HOLDERS))
@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_column_whose_type_has_a_user_cast_is_refused_to_restricted_reads_and_writes(
    service: Service, tmp_path: Path, restriction: str, holder: str
) -> None:
    pg = postgres_schema(tmp_path, LEAK, *HOLDERS[holder])
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    base = {"dbHandle": handle, "collection": "t"}
    error = _refused(service, "data/list", base)
    assert "runs code whose reads dbhandles cannot know" in error.message, error
    assert "mood" in error.message
    _refused(service, "data/read", {**base, "id": "1"})
    _refused(service, "data/count", {**base, "groupBy": "id"})
    if holder != "view":
        _refused(service, "data/create", {**base, "data": {"id": 2}})
        _refused(service, "data/update", {**base, "id": "1", "data": {"id": 1}})
    assert secret_rows(pg) == ["hidden"]


@pytest.mark.parametrize("holder", ["enum", "domain"])
def test_an_enum_is_served_by_its_label_not_through_a_cast_to_json(
    service: Service, tmp_path: Path, holder: str
) -> None:
    pg = postgres_schema(tmp_path, LEAK, *HOLDERS[holder])
    handle = open_postgres(service, pg)
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "t"})
    assert [r["m"] for r in listed["items"]] == ["happy"], listed
    found = service.execute(
        "data/list", {"dbHandle": handle, "collection": "t", "filter": {"m": "happy"}}
    )
    assert len(found["items"]) == 1
    assert secret_rows(pg) == ["hidden"]


# -- 2, 3. a range type whose subtype operator class is somebody's -------------------------------


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
@pytest.mark.parametrize("collection", ["rt", "mt"])
def test_a_range_with_a_user_subtype_opclass_is_refused_to_restricted_writes(
    service: Service, tmp_path: Path, restriction: str, collection: str
) -> None:
    pg, handle = restricted_schema(service, tmp_path, EVIL_RANGE, **RESTRICTIONS[restriction])
    value = "[1,5)" if collection == "rt" else "{[1,5)}"
    error = _refused(service, "data/create", {"dbHandle": handle, "collection": collection,
                                              "data": {"id": 1, "r": value}})  # fmt: skip
    assert "evrange" in error.message or "evmultirange" in error.message, error
    _refused(service, "data/list", {"dbHandle": handle, "collection": collection})
    assert secret_rows(pg) == ["hidden"]


@pytest.mark.parametrize("restriction", sorted(RESTRICTIONS))
def test_a_view_ordering_by_such_a_range_is_refused_to_restricted_reads(
    service: Service, tmp_path: Path, restriction: str
) -> None:
    pg = postgres_schema(
        tmp_path, EVIL_RANGE,
        # Writing the ranges ran evil_cmp, which emptied secret: filled again after.
        "INSERT INTO rt VALUES (1, 'a', '[1,2)'), (2, 'b', '[3,4)')",
        "INSERT INTO secret VALUES ('hidden')",
        "CREATE VIEW vr AS SELECT id, owner FROM rt ORDER BY r",
    )  # fmt: skip
    handle = open_postgres(service, pg, **RESTRICTIONS[restriction])
    error = _refused(service, "data/list", {"dbHandle": handle, "collection": "vr"})
    assert "column r of rt (type " in error.message and ".evrange" in error.message, error


def test_a_cascade_into_a_table_with_such_a_range_is_refused(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path, EVIL_RANGE,
        "CREATE TABLE parent (id integer PRIMARY KEY)",
        "CREATE TABLE c (id integer PRIMARY KEY, "
        "pid integer REFERENCES parent ON DELETE SET NULL, r evrange)",
        "INSERT INTO parent VALUES (1)",
    )  # fmt: skip
    handle = open_postgres(service, pg, deniedCollections=["secret"])
    error = _refused(service, "data/delete", {"dbHandle": handle, "collection": "parent",
                                              "id": "1"})  # fmt: skip
    assert "column r of c" in error.message, error
    assert secret_rows(pg) == ["hidden"]


# -- 4. a RAISE claiming a refusal's SQLSTATE ----------------------------------------------------


@pytest.mark.parametrize("state", ["25006", "42501", "23505", "23503", "23514"])
def test_a_raise_claiming_a_refusal_sqlstate_is_query_failed(
    service: Service, tmp_path: Path, state: str
) -> None:
    pg = postgres_schema(
        tmp_path,
        raising_function(state),
        "CREATE TABLE t (id integer PRIMARY KEY, n integer)",
        "CREATE VIEW vw AS SELECT 1 AS id, boom() AS n",
    )
    handle = open_postgres(service, pg)
    query_failed_naming(service, "data/list", {"dbHandle": handle, "collection": "vw"}, state)


def test_postgresql_s_own_refusal_inside_a_function_keeps_its_code(
    service: Service, tmp_path: Path
) -> None:
    pg = postgres_schema(
        tmp_path,
        "CREATE TABLE t (id integer PRIMARY KEY)",
        "INSERT INTO t VALUES (1)",
        "CREATE FUNCTION dup() RETURNS integer LANGUAGE plpgsql SET search_path FROM CURRENT AS "
        "$$BEGIN INSERT INTO t VALUES (1); RETURN 1; END$$",
        "CREATE TABLE w (id integer PRIMARY KEY, n integer DEFAULT dup())",
    )  # fmt: skip
    handle = open_postgres(service, pg)
    with pytest.raises(DbHandlesError) as caught:
        service.execute("data/create", {"dbHandle": handle, "collection": "w", "data": {"id": 1}})
    # PostgreSQL's own unique violation in the function's INSERT: a refusal, not query_failed.
    assert caught.value.code in ("constraint_violation", "record_exists"), caught.value


# -- 5. masking a short password -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "text", "shown"),
    [
        ("x", 'database "x" does not exist', 'database "***" does not exist'),
        ("x", "x", "***"),
        ("ab", "tab: abc ab", "tab: abc ***"),
        ("hunter22", "password hunter22 and xhunter22y", "password *** and x***y"),
    ],
)
def test_a_password_is_masked_as_a_whole_token_and_a_short_one_never_inside_words(
    secret: str, text: str, shown: str
) -> None:
    error = translate_error(psycopg.OperationalError(text), secret=secret)
    assert shown in error.message, error.message


@pytest.mark.parametrize("state", ["25006", "42501", "23505", "23503", "23514"])
def test_a_raise_claiming_a_refusal_sqlstate_in_a_write_is_query_failed(
    service: Service, tmp_path: Path, state: str
) -> None:
    create_under_a_raising_default(service, tmp_path, state)
