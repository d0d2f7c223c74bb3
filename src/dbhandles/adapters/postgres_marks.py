"""The partial index that marks a collection's unreadable rows, so counting the rest is cheap.

``postgres_records.READABLE`` walks every row's ``jsonb``: counting an unfiltered collection with it
cost 47-86 times ``count(*)`` (issue #14, ``benchmarks/postgres_readable_rows.py``). Rows dbhandles
writes are readable; only rows another tool writes can fail the test, and they are rare. So each
collection dbhandles creates carries a partial index of its **unreadable** rows
(``... ON t (id) WHERE <schema>.<UNREADABLE_FUNCTION>(id, data, created_at, updated_at, version)``):
PostgreSQL evaluates the predicate on every row written, by dbhandles or by any other tool (no
trigger, nothing to trust), and keeps the index exact in the writer's own transaction. An
unfiltered count is then ``count(*)`` less the index's rows, and ``unreadable`` the index's rows:
both the very test of ``READABLE`` (the function returns ``NOT READABLE``), in one snapshot.

The function is ``IMMUTABLE`` (an index predicate must be): it pins ``extra_float_digits`` (the
text of a ``float8``, which ``inexact_number`` reads, depends on it) and ``search_path``. It is
PL/pgSQL, whose statements are planned once per session (an SQL function's body, not inlined in an
index predicate, was planned again for every ``INSERT``: 2 ms a row). Its name carries a digest of
its body, so a dbhandles that tests rows otherwise makes a new function and looks for a new index:
an index made by another version is never taken for this one's. A collection without the index (made
by a version before it, or whose index someone dropped) is counted with ``READABLE`` as before,
and gets the index when its indexes are ensured (``PostgresSession.ensure_indexes``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from psycopg import Connection, sql

from dbhandles.adapters.postgres_records import FIRST_LOOK, READABLE, SUSPECT_ROW

__all__ = [
    "OWN_FUNCTION",
    "UNREADABLE_FUNCTION",
    "has_mark",
    "make_mark",
    "mark_name",
    "unreadable_call",
]

#: ``NOT READABLE``, in steps: the tests PL/pgSQL runs as simple expressions (no executor per
#: call) first, and ``READABLE`` itself, with its subquery, only for a row holding a number or
#: nesting its walk could not settle. A NULL column makes a step NULL, which goes on to
#: ``READABLE`` (never NULL).
_BODY = (
    f"BEGIN IF NOT {FIRST_LOOK} THEN RETURN TRUE; END IF; "
    f"IF NOT {SUSPECT_ROW} THEN RETURN FALSE; END IF; "
    f"RETURN NOT {READABLE}; END"
)
#: The function's name: a digest of what it tests.
UNREADABLE_FUNCTION = f"_dbh_unreadable_{hashlib.sha1(_BODY.encode()).hexdigest()[:16]}"
_ARGUMENTS = "id text, data jsonb, created_at text, updated_at text, version integer"
#: ``COST``: the planner weighs a call as 1000 operators, so it counts the index, never a scan
#: calling the function on every row.
_FUNCTION = (
    f"CREATE FUNCTION {{}}({_ARGUMENTS}) RETURNS boolean LANGUAGE plpgsql IMMUTABLE "
    "PARALLEL SAFE COST 1000 SET extra_float_digits = 1 SET search_path = pg_catalog "
    "AS {}"
)
#: The SQL condition "function ``p`` is dbhandles' test of rows, as this version made it": its
#: name, its body (``md5`` of ``prosrc``), PostgreSQL's own PL/pgSQL, no ``SECURITY DEFINER`` and
#: the settings above. It reads no table (only its arguments), so the checks of restricted handles
#: (``postgres_reach.OPAQUE_SQL``, ``postgres_closure``) take it as PostgreSQL's own code rather
#: than refuse every collection for the index calling it; a function of that name with any other
#: body or setting is somebody's, as before.
OWN_FUNCTION = (
    f"(p.proname = '{UNREADABLE_FUNCTION}' AND md5(p.prosrc) = "
    f"'{hashlib.md5(_BODY.encode()).hexdigest()}' AND NOT p.prosecdef AND p.pronargs = 5 "
    "AND p.prolang = (SELECT l.oid FROM pg_catalog.pg_language l WHERE l.lanname = 'plpgsql' "
    "AND l.oid < 16384) "
    "AND p.proconfig = ARRAY['extra_float_digits=1', 'search_path=pg_catalog']::text[])"
)
_FUNCTION_EXISTS = (
    "SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "WHERE n.nspname = %s AND p.proname = %s"
)
#: A valid index of that name on that table (an index another tool named so on another table, or
#: one a failed ``CREATE INDEX CONCURRENTLY`` left invalid, is no mark).
_INDEX_EXISTS = (
    "SELECT FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid "
    "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
    "WHERE n.nspname = %s AND t.relname = %s AND x.relname = %s AND i.indisvalid"
)


def mark_name(schema: str, table: str) -> str:
    """The name of ``table``'s partial index of unreadable rows (``_dbh_``, as every object
    dbhandles names; the function's name in it, so another version's index is not this one)."""
    digest = hashlib.sha1("\x1f".join((schema, table, UNREADABLE_FUNCTION)).encode())
    return f"_dbh_ur_{digest.hexdigest()[:24]}"


def unreadable_call(schema: str) -> sql.Composed:
    """SQL true for a row of a collection's table that is no record (exactly ``NOT READABLE``)."""
    return sql.SQL("{}.{}(id, data, created_at, updated_at, version)").format(
        sql.Identifier(schema), sql.Identifier(UNREADABLE_FUNCTION)
    )


def has_mark(conn: Connection[Any], schema: str, table: str) -> bool:
    """Whether ``table`` carries its (valid) partial index of unreadable rows."""
    found = conn.execute(_INDEX_EXISTS, (schema, table, mark_name(schema, table))).fetchone()
    return found is not None


def make_mark(conn: Connection[Any], schema: str, table: str) -> None:
    """Create the function (once per schema) and ``table``'s partial index, in the caller's
    transaction; the caller holds the table's advisory lock (``postgres_schema.advisory_key``).
    On a table of many rows this reads them all once (the test of each)."""
    # One creator of the function at a time: two would collide in PostgreSQL's catalog.
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{schema}\x1f{_BODY}",))
    if conn.execute(_FUNCTION_EXISTS, (schema, UNREADABLE_FUNCTION)).fetchone() is None:
        conn.execute(
            sql.SQL(_FUNCTION).format(
                sql.Identifier(schema, UNREADABLE_FUNCTION), sql.Literal(_BODY)
            )
        )
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (id) WHERE {}").format(
            sql.Identifier(mark_name(schema, table)),
            sql.Identifier(schema, table),
            unreadable_call(schema),
        )
    )
