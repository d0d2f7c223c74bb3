"""Restricted handles to a PostgreSQL schema another tool built: the opening, the refusals and the
look behind dbhandles' back that the tests of the database's own code share (rounds 16 to 21 and
``test_postgres_closure_cache.py``), with the SQL that plants ``secret`` and the user code
(``leak(mood)``, ``wipe(integer)``, ``evil_cmp``) that would read or wipe it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import DbHandlesError

#: ``secret``, one row ``hidden``: what code a restricted handle must not run would read or delete.
SECRET = """
CREATE TABLE secret (s text);
INSERT INTO secret VALUES ('hidden');
"""
#: ``leak(mood)``: a cast of the enum ``mood`` to ``json`` returning ``secret``'s rows, and
#: deleting them when it may write.
LEAK_MOOD = """\
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE FUNCTION leak(mood) RETURNS json LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_read_only') = 'off' THEN DELETE FROM secret; END IF;
    RETURN to_json((SELECT coalesce(string_agg(s, ','), 'none') FROM secret));
END$$;
CREATE CAST (mood AS json) WITH FUNCTION leak(mood);
"""
#: ``wipe(integer)``, a check: deletes ``secret``'s rows when it may write, raises with them when not.
WIPE = """\
CREATE FUNCTION wipe(integer) RETURNS boolean LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_read_only') = 'off' THEN DELETE FROM secret;
    ELSE RAISE EXCEPTION 'leak %', (SELECT string_agg(s, ',') FROM secret); END IF;
    RETURN true;
END$$;
"""
#: ``evil_cmp``, the compare function of operator class ``evil_int4_ops``: deletes ``secret``'s
#: rows when it may write, raises with them when not.
EVIL_CMP = """\
CREATE FUNCTION evil_cmp(a int4, b int4) RETURNS integer LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF current_setting('transaction_read_only') = 'off' THEN DELETE FROM secret;
    ELSE RAISE EXCEPTION 'leak %', (SELECT string_agg(s, ',') FROM secret); END IF;
    RETURN btint4cmp(a, b);
END$$;
CREATE OPERATOR CLASS evil_int4_ops FOR TYPE int4 USING btree AS OPERATOR 1 <, OPERATOR 2 <=,
    OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 evil_cmp(int4, int4);
"""
#: ``secret`` filled again after a statement of the test's own ran ``evil_cmp`` (building an index).
REFILL = "INSERT INTO secret SELECT 'hidden' WHERE NOT EXISTS (SELECT 1 FROM secret)"


def open_postgres(service: Service, pg: dict[str, Any], **permissions: Any) -> str:
    """A handle to the ``postgres`` adapter config ``pg`` (with ``permissions``, if any)."""
    params: dict[str, Any] = {"adapter": "postgres", "config": pg}
    if permissions:
        params["permissions"] = permissions
    return str(service.execute("data/open", params)["dbHandle"])


def schema_rows(pg: dict[str, Any], query: str) -> list[tuple[Any, ...]]:
    """The rows ``query`` gives in the schema of ``pg``, read with plain psycopg in autocommit
    (another tool, not dbhandles): what a refused statement would have changed."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(pg["schema"])))
        return list(conn.execute(query).fetchall())


def refused(
    service: Service, command: str, params: dict[str, Any], *, unshown: str | None = None
) -> DbHandlesError:
    """The ``permission_denied`` error ``command`` raises for ``params``; fails if it succeeds,
    raises another code, or quotes ``unshown`` (a secret the refused code would have read)."""
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, params)
    assert caught.value.code == "permission_denied", caught.value
    if unshown is not None:
        assert unshown not in caught.value.message
    return caught.value


def secret_rows(pg: dict[str, Any]) -> list[str]:
    """The texts left in ``secret`` of ``pg``'s schema (``["hidden"]`` while no code wiped it)."""
    return [str(row[0]) for row in schema_rows(pg, "SELECT s FROM secret")]


def refused_unknowable(service: Service, command: str, params: dict[str, Any]) -> DbHandlesError:
    """:func:`refused` for code whose reads or writes dbhandles cannot know (the words of a read:
    "... whose reads dbhandles cannot know", of a write: "... whose writes ..."), never quoting
    ``secret``'s ``hidden``."""
    error = refused(service, command, params, unshown="hidden")
    assert "dbhandles cannot know" in error.message, error
    return error


def raising_function(state: str) -> str:
    """SQL making ``boom()``, a PL/pgSQL function raising ``boom`` with the SQLSTATE ``state``."""
    return (
        "CREATE FUNCTION boom() RETURNS integer LANGUAGE plpgsql AS "
        f"$$BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '{state}'; END$$"
    )


def query_failed_naming(
    service: Service, command: str, params: dict[str, Any], state: str
) -> DbHandlesError:
    """The ``query_failed`` error ``command`` raises for ``params``: it names the SQLSTATE
    ``state`` the database's own code claimed, and not the PL/pgSQL context."""
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, params)
    error = caught.value
    assert error.code == "query_failed" and state in error.message, error
    assert "PL/pgSQL" not in error.message
    return error


def create_under_a_raising_default(service: Service, tmp_path: Path, state: str) -> DbHandlesError:
    """The ``query_failed`` error of a ``data/create`` in ``t``, a table whose column default is
    ``boom()`` raising with the SQLSTATE ``state`` (:func:`query_failed_naming`)."""
    from tests.pgserver import postgres_schema

    pg = postgres_schema(
        tmp_path,
        raising_function(state),
        "CREATE TABLE t (id integer PRIMARY KEY, n integer DEFAULT boom())",
    )
    handle = open_postgres(service, pg)
    return query_failed_naming(
        service, "data/create", {"dbHandle": handle, "collection": "t", "data": {"id": 1}}, state
    )


def restricted_schema(
    service: Service, tmp_path: Path, *statements: str, **permissions: Any
) -> tuple[dict[str, Any], str]:
    """A schema another tool built with ``statements`` (``postgres_schema``) and a handle to it
    with ``permissions`` (:func:`open_postgres`): the config and the handle."""
    from tests.pgserver import postgres_schema

    pg = postgres_schema(tmp_path, *statements)
    return pg, open_postgres(service, pg, **permissions)


def refused_create(
    service: Service, handle: str, collection: str, data: dict[str, Any]
) -> DbHandlesError:
    """:func:`refused` for a ``data/create`` of ``data`` in ``collection`` on ``handle``."""
    params = {"dbHandle": handle, "collection": collection, "data": data}
    return refused(service, "data/create", params)
