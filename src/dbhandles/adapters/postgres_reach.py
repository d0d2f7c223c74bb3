"""What reading or writing a PostgreSQL relation reaches that ``pg_depend`` does not spell out.

A restricted handle (``allowedCollections``, ``deniedCollections``, ``rowFilter``) is decided on
the tables a command reaches (docs/security.md "Cascades on restricted handles"). Besides the
relations a view's rule names, a read reaches:

* the partitions and inheritance children of a table (``pg_inherits``, at any depth): a read of
  the parent reads their rows;
* what a row-level security policy of a table with ``relrowsecurity`` reads (its ``USING``);
* the types of their columns when they are not all PostgreSQL's own (``TYPE_CODE``): a cast of an
  enum to ``json`` that ``to_jsonb`` calls, a range type's subtype operator class, canonical or
  difference function, run by reading, comparing or writing a value, and recorded nowhere in
  ``pg_depend`` as the relation's;
* the code any of those call: a function outside ``pg_catalog`` (its body may read any table,
  through dynamic SQL too, and PostgreSQL records no dependency on what it reads), or one of
  ``pg_catalog``'s own that runs SQL handed to it as text or a relation (``SQL_EXECUTING``:
  ``query_to_xml('select ...')`` hides a call in a string). Such code is listed as a source named
  ``UNKNOWN`` followed by what runs it, which no restricted handle may read.

And a write reaches, besides its own table, the partitions (of a partitioned table, on every
write) and inheritance children (on updates and deletes) of the table, with their triggers, rules
and own code (``descendants``); a write creating a collection's table runs the database's event
triggers (``event_triggers``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from psycopg import Connection

from dbhandles import budget
from dbhandles.adapters.foreign_cascades import UNKNOWN
from dbhandles.adapters.postgres_closure import closure_code, read_seeds
from dbhandles.adapters.postgres_closure_cache import CHANGED_AFTER_INITDB, cached, state
from dbhandles.adapters.postgres_marks import OWN_FUNCTION
from dbhandles.adapters.postgres_reach_locks import lock_all
from dbhandles.adapters.reach_guard import Guard
from dbhandles.errors import PermissionDenied
from dbhandles.values import json_text

__all__ = [
    "BUILTIN_CALLS",
    "OBJECT_CALLS",
    "OPAQUE_SQL",
    "SQL_EXECUTING",
    "TYPE_CODE",
    "Execute",
    "descendants",
    "event_triggers",
    "opaque",
    "read_reach",
    "recheck",
    "refuse_event_triggers",
    "table_reach",
    "type_code",
]

#: Runs a catalog query: ``(statement, params)`` -> a cursor.
Execute = Callable[[str, tuple[Any, ...]], Any]

#: ``pg_catalog`` functions that run SQL (or read a relation) named by an argument: a dependency
#: on them is as opaque as one on a user function.
SQL_EXECUTING = (
    "query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema",
    "cursor_to_xml", "cursor_to_xmlschema",
    "table_to_xml", "table_to_xml_and_xmlschema", "table_to_xmlschema",
    "schema_to_xml", "schema_to_xml_and_xmlschema", "schema_to_xmlschema",
    "database_to_xml", "database_to_xml_and_xmlschema", "database_to_xmlschema",
    "ts_stat", "ts_rewrite",
)  # fmt: skip
#: The SQL condition "function ``p`` runs code whose reads cannot be known": somebody's (``oid >=
#: 16384``, wherever it lives: a superuser may create one in ``pg_catalog``), a built-in one
#: changed after initdb (``CHANGED_AFTER_INITDB``: ``ALTER FUNCTION pg_catalog.lower(text)
#: SECURITY DEFINER``, ``CREATE OR REPLACE`` of its body), a ``SECURITY DEFINER`` one, or a
#: SQL-executing builtin; never dbhandles' own test of rows (``postgres_marks.OWN_FUNCTION``).
OPAQUE_SQL = (
    f"((p.oid >= 16384 OR p.proname = ANY(%s) OR p.prosecdef "
    f"OR {CHANGED_AFTER_INITDB.format('p')}) AND NOT {OWN_FUNCTION})"
)
#: The calls of ``SQL_EXECUTING`` functions in the expressions of ``objects(kind, name, tree)``
#: (``tree``: their ``pg_node_tree`` as text), as ``(kind, name, function oid)``. PostgreSQL
#: records no dependency on ``pg_catalog``'s own (pinned) objects, so they are found in the
#: tree, where a call is ``{FUNCEXPR :funcid 2925 ...`` (an operator's ``:opfuncid``); so are the
#: built-in functions changed after initdb, and any ``SECURITY DEFINER`` one
#: (``CHANGED_AFTER_INITDB``).
BUILTIN_CALLS = f"""SELECT o.kind, o.name, p.oid FROM objects o
    JOIN pg_proc p ON ((p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY(%s))
                       OR (p.oid < 16384 AND (p.prosecdef OR {CHANGED_AFTER_INITDB.format("p")})))
        AND (strpos(o.tree, ':funcid ' || p.oid::text || ' ') > 0
             OR strpos(o.tree, ':opfuncid ' || p.oid::text || ' ') > 0)"""


#: The functions the objects of ``objects(classid, objid, kind, name, tree)`` call, as ``(kind,
#: name, function oid)``: what ``pg_depend`` records (a function, or an operator's function) and
#: the ``SQL_EXECUTING`` builtins found in their trees (``BUILTIN_CALLS``).
OBJECT_CALLS = f"""SELECT o.kind, o.name,
           CASE WHEN dep.refclassid = 'pg_proc'::regclass THEN dep.refobjid
                ELSE op.oprcode::oid END
    FROM objects o
    JOIN pg_depend dep ON dep.classid = o.classid AND dep.objid = o.objid
        AND dep.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass)
    LEFT JOIN pg_operator op ON dep.refclassid = 'pg_operator'::regclass AND op.oid = dep.refobjid
    UNION ALL
    {BUILTIN_CALLS}"""

#: The columns of the relations of ``rels(oid)`` (a CTE the statement defines first) whose types
#: may run code that is not PostgreSQL's own, as ``(relation, column, its type, why)``; PostgreSQL's
#: own is ``oid < 16384`` (``FirstNormalObjectId``: what initdb made; a superuser may create
#: functions in ``pg_catalog``). A column's type is walked (``types``): a domain to its base type,
#: an array to its elements, a composite to its fields' types, a range to its subtype, a
#: multirange to its range. Reasons: a type of the walk whose I/O, receive, send, typmod or
#: analyze function is somebody's (an enum's ``enum_in``/``enum_out``, a composite's
#: ``record_in``, an array's ``array_in`` are PostgreSQL's: an enum, an array and a composite of
#: them are served); a cast from or to a type someone created (``oid >= 16384``: ``to_jsonb``
#: looks up casts of those only, and a cast needs its creator to own one of its types, so a cast
#: from ``integer`` to somebody's enum refuses no ``integer`` column) calling somebody's function
#: (``CREATE CAST (mood AS json) WITH FUNCTION s.leak(...)``: ``to_jsonb`` calls it); somebody's
#: default ``btree`` or ``hash`` operator class of one (what ``ORDER BY``, ``DISTINCT`` and
#: grouping by the column call; ``btree_gist``'s default ``gist`` classes run only in indexes,
#: which ``postgres_closure`` follows); a range's subtype operator class, its support functions,
#: canonical or subtype-difference function that are somebody's (run on every range value made
#: or compared). A class a range names is not one of its subtype's columns' (an ``int4`` column
#: runs ``int4``'s default class; a view making a range of it calls the range's constructor,
#: which ``_READ_CODE`` finds). A domain is walked through, not a reason itself: PostgreSQL
#: ignores casts from or to a domain, and ``to_jsonb``, operator classes and I/O act on its base
#: type; its constraints and default run only on writes (``postgres_foreign_schema.own_code``
#: names them).
TYPE_CODE = (
    """
types(rel, col, top, oid) AS (
    SELECT c.relname::text, a.attname::text, a.atttypid, a.atttypid FROM rels
    JOIN pg_class c ON c.oid = rels.oid
    JOIN pg_attribute a ON a.attrelid = rels.oid AND a.attnum > 0 AND NOT a.attisdropped
    UNION
    SELECT types.rel, types.col, types.top, x.oid FROM types
    JOIN pg_type t ON t.oid = types.oid
    CROSS JOIN LATERAL (
        SELECT t.typbasetype UNION ALL SELECT t.typelem
        UNION ALL SELECT ca.atttypid FROM pg_attribute ca
        WHERE t.typtype = 'c' AND ca.attrelid = t.typrelid AND ca.attnum > 0
          AND NOT ca.attisdropped
        UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = t.oid
        UNION ALL SELECT r.rngtypid FROM pg_range r WHERE r.rngmultitypid = t.oid) x(oid)
    WHERE x.oid <> 0),
type_code(rel, col, top, why) AS (
    SELECT types.rel, types.col, types.top,
           'type ' || format_type(t.oid, NULL) || ' calls ' || pn.nspname || '.' || p.proname
           || '()'
    FROM types JOIN pg_type t ON t.oid = types.oid
    CROSS JOIN LATERAL unnest(ARRAY[t.typinput::oid, t.typoutput::oid, t.typreceive::oid,
        t.typsend::oid, t.typmodin::oid, t.typmodout::oid, t.typanalyze::oid]) f(proc)
    JOIN pg_proc p ON p.oid = f.proc JOIN pg_namespace pn ON pn.oid = p.pronamespace
    WHERE p.oid >= 16384 OR p.prosecdef OR """
    + CHANGED_AFTER_INITDB.format("p")
    + """
    UNION ALL
    SELECT types.rel, types.col, types.top,
           'a cast from ' || format_type(ca.castsource, NULL) || ' to '
           || format_type(ca.casttarget, NULL) || ' calls ' || pn.nspname || '.' || p.proname
           || '()'
    FROM types JOIN pg_cast ca ON (ca.castsource = types.oid OR ca.casttarget = types.oid)
    JOIN pg_proc p ON p.oid = ca.castfunc JOIN pg_namespace pn ON pn.oid = p.pronamespace
    WHERE p.oid >= 16384 AND types.oid >= 16384
    UNION ALL
    SELECT types.rel, types.col, types.top,
           'operator class ' || cn.nspname || '.' || opc.opcname || ' of type '
           || format_type(types.oid, NULL) || ' is not PostgreSQL''s own'
    FROM types JOIN pg_opclass opc ON opc.opcintype = types.oid
    JOIN pg_namespace cn ON cn.oid = opc.opcnamespace
    JOIN pg_am am ON am.oid = opc.opcmethod AND am.amname IN ('btree', 'hash')
    WHERE opc.oid >= 16384 AND opc.opcdefault
    UNION ALL
    SELECT types.rel, types.col, types.top,
           'range type ' || format_type(r.rngtypid, NULL) || ' orders its bounds by operator class '
           || cn.nspname || '.' || opc.opcname
    FROM types JOIN pg_range r ON r.rngtypid = types.oid
    JOIN pg_opclass opc ON opc.oid = r.rngsubopc JOIN pg_namespace cn ON cn.oid = opc.opcnamespace
    WHERE opc.oid >= 16384
    UNION ALL
    SELECT types.rel, types.col, types.top,
           'range type ' || format_type(r.rngtypid, NULL) || ' calls ' || pn.nspname || '.'
           || p.proname || '()'
    FROM types JOIN pg_range r ON r.rngtypid = types.oid
    JOIN pg_opclass opc ON opc.oid = r.rngsubopc
    CROSS JOIN LATERAL (
        SELECT r.rngcanonical::oid UNION ALL SELECT r.rngsubdiff::oid
        UNION ALL SELECT ap.amproc::oid FROM pg_amproc ap
        WHERE ap.amprocfamily = opc.opcfamily) f(proc)
    JOIN pg_proc p ON p.oid = f.proc JOIN pg_namespace pn ON pn.oid = p.pronamespace
    WHERE p.oid >= 16384)
"""
)
_TYPE_CODE_ROWS = """
SELECT DISTINCT rel, col, format_type(top, NULL), why FROM type_code ORDER BY 1, 2, 3, 4
"""

#: Every relation a read of ``%s`` (an oid) reaches, itself first: through the ``SELECT`` rules
#: of views, the policies of tables with row-level security, and ``pg_inherits``.
_READS = """
WITH RECURSIVE reads(oid) AS (
    SELECT %s::oid
    UNION
    SELECT x.oid FROM reads CROSS JOIN LATERAL (
        SELECT d.refobjid FROM pg_rewrite r
        JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
            AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
        WHERE r.ev_class = reads.oid AND r.ev_type = '1'
        UNION ALL
        SELECT d.refobjid FROM pg_policy pol
        JOIN pg_class pc ON pc.oid = pol.polrelid AND pc.relrowsecurity
        JOIN pg_depend d ON d.classid = 'pg_policy'::regclass AND d.objid = pol.oid
            AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> pol.polrelid
        WHERE pol.polrelid = reads.oid
        UNION ALL
        SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = reads.oid) x(oid))
"""
_READ_RELATIONS = (
    _READS
    + """
SELECT DISTINCT c.relname, n.nspname FROM reads
JOIN pg_class c ON c.oid = reads.oid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE reads.oid <> %s::oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""
)
#: The code a read of those relations runs (or ran to make what is read: a materialized view's
#: query, a generated column, recomputed by every write of its row): ``(what, of relation,
#: function)``. A column default is not: it runs only when a write gives no value, which the
#: writer chose (and a restricted handle's writes that run it are refused: ``own_code``).
_READ_CODE = (
    _READS
    + f""",
objects(classid, objid, kind, name, tree) AS (
    SELECT 'pg_rewrite'::regclass::oid, r.oid, 'its definition', c.relname::text,
           r.ev_action::text
    FROM reads JOIN pg_rewrite r ON r.ev_class = reads.oid AND r.ev_type = '1'
    JOIN pg_class c ON c.oid = r.ev_class
    UNION ALL
    SELECT 'pg_policy'::regclass::oid, pol.oid, 'policy ' || pol.polname, pc.relname::text,
           concat(pol.polqual::text, pol.polwithcheck::text)
    FROM reads JOIN pg_class pc ON pc.oid = reads.oid AND pc.relrowsecurity
    JOIN pg_policy pol ON pol.polrelid = reads.oid
    UNION ALL
    SELECT 'pg_attrdef'::regclass::oid, ad.oid, 'generated column ' || a.attname,
           c.relname::text, ad.adbin::text
    FROM reads JOIN pg_attrdef ad ON ad.adrelid = reads.oid
    JOIN pg_class c ON c.oid = ad.adrelid
    JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
        AND a.attgenerated <> ''),
calls(kind, name, proc) AS (
    {OBJECT_CALLS})
SELECT DISTINCT c.kind, c.name, fn.nspname || '.' || p.proname
FROM calls c JOIN pg_proc p ON p.oid = c.proc
JOIN pg_namespace fn ON fn.oid = p.pronamespace
WHERE {OPAQUE_SQL}
ORDER BY 1, 2, 3
"""
)
#: The foreign tables (``relkind`` ``'f'``) of the relations a read reaches, itself included:
#: ``(relation, foreign-data wrapper, server)``. Their rows come from outside what grants and
#: permission lists describe (a file, a program ``file_fdw`` runs, another server), and their
#: wrapper's handler runs code on every read.
_FOREIGN = (
    _READS
    + """
SELECT DISTINCT c.relname, w.fdwname, s.srvname FROM reads
JOIN pg_class c ON c.oid = reads.oid AND c.relkind = 'f'
JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
JOIN pg_foreign_server s ON s.oid = ft.ftserver
JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
ORDER BY 1, 2, 3
"""
)
#: The oid of table ``%s``.``%s`` (a collection's), if it exists.
_TABLE_OID = """
SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
"""
#: The direct partitions and inheritance children of table ``%s``.``%s``: name, schema,
#: whether it is a partition.
_CHILDREN = """
SELECT c.relname, n.nspname, c.relispartition FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE pn.nspname = %s AND pc.relname = %s
ORDER BY c.relname
"""
_EVENT_TRIGGERS = """
SELECT evtname FROM pg_event_trigger WHERE evtenabled <> 'D' AND evtevent <> 'sql_drop'
ORDER BY evtname
"""


def opaque(what: str) -> str:
    """A source of a read that runs code whose reads cannot be known (``what`` says which: ``policy
    p of t calls s.f()``): ``UNKNOWN`` followed by ``what``, refused to every restricted handle."""
    return UNKNOWN + what


def read_reach(execute: Execute, oid: int, schema: str) -> list[str]:
    """What a read of relation ``oid`` (of ``schema``) reaches besides itself, at any depth: the
    relations views read, partitions and inheritance children, what row-level security policies
    read (named as ``view_sources`` names them: ``other.t`` outside ``schema``), sorted, then the
    code that runs (``opaque``: ``its definition of vleak calls s.peek()``): what the named
    checks find, then the rest of the ``pg_depend`` closure of what the read evaluates
    (``postgres_closure``: a type used as a constant in a view, an index's operator class). Kept
    while the catalog is unchanged (``postgres_closure_cache``)."""
    return cached(execute, ("read", oid, schema), lambda: _read_reach(execute, oid, schema))


def _read_reach(execute: Execute, oid: int, schema: str) -> list[str]:
    rows = execute(_READ_RELATIONS, (oid, oid)).fetchall()
    names = sorted(name if nsp == schema else f"{nsp}.{name}" for name, nsp in rows)
    executing = list(SQL_EXECUTING)
    code = execute(_READ_CODE, (oid, executing, executing)).fetchall()
    types = execute(_READS + ", rels AS (SELECT oid FROM reads)," + TYPE_CODE + _TYPE_CODE_ROWS,
                    (oid,)).fetchall()  # fmt: skip
    reached = closure_code(execute, read_seeds(_READS), (oid,), executing)
    foreign = execute(_FOREIGN, (oid,)).fetchall()
    found = (
        [
            f"foreign table {rel} reads through foreign-data wrapper {wrapper} (server "
            f"{server}): rows from outside the database, made by the wrapper's code"
            for rel, wrapper, server in foreign
        ]
        + [f"{what} of {rel} calls {function}()" for what, rel, function in code]
        + [type_words(*row) for row in types]
        + reached
    )
    return names + [opaque(what) for what in dict.fromkeys(found)]


def table_reach(execute: Execute, schema: str, table: str) -> list[str]:
    """``read_reach`` of ``table`` of ``schema`` (a collection's own table: an index, a policy, a
    child table or a column type another role added there runs or is read by every read of it);
    ``[]`` when there is no such table. Kept while the catalog is unchanged."""

    def reach() -> list[str]:
        row = execute(_TABLE_OID, (schema, table)).fetchone()
        return [] if row is None else _read_reach(execute, int(row[0]), schema)

    return cached(execute, ("table", schema, table), reach)


def type_words(relation: str, column: str, type_name: str, why: str) -> str:
    """What a column of a type that may run code not PostgreSQL's own says (``TYPE_CODE``):
    ``column m of t (type mood): type s.mood is not PostgreSQL's own``."""
    return f"column {column} of {relation} (type {type_name}): {why}"


def type_code(execute: Execute, schema: str, table: str) -> list[str]:
    """The columns of ``table`` of ``schema`` whose types may run code that is not PostgreSQL's
    own (``TYPE_CODE``), in ``type_words``' words, sorted: what writing a value of them (input,
    casts, comparisons of a range's bounds) or serving one (``to_jsonb`` through a cast to
    ``json``) may run."""
    rels = """WITH RECURSIVE rels(oid) AS (
        SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = %s AND c.relname = %s),"""
    rows = execute(rels + TYPE_CODE + _TYPE_CODE_ROWS, (schema, table)).fetchall()
    return [type_words(*row) for row in rows]


def descendants(
    conn: Connection[Any], schema: str, table: str, event: str
) -> list[tuple[str, str, str]]:
    """The direct partitions and inheritance children a write (``event``: ``insert``, ``update``,
    ``delete``) of ``table`` reaches: ``(schema, name, "partition"/"inheritance child")``. An
    insert into a partitioned table stores its row in one of its partitions (which, cannot be
    told before the row is routed: any of them); an insert into an inheritance parent stays in
    the parent, and an update or a delete of either reaches every descendant's rows."""
    rows = conn.execute(_CHILDREN, (schema, table)).fetchall()
    return [
        (nsp, name, "partition" if partition else "inheritance child")
        for name, nsp, partition in rows
        if event != "insert" or partition
    ]


def event_triggers(conn: Connection[Any]) -> list[str]:
    """The enabled event triggers of the database that creating a table or an index fires
    (``ddl_command_start``, ``ddl_command_end``, ``table_rewrite``), by name: their functions
    are as opaque as a trigger's."""
    return [str(row[0]) for row in conn.execute(_EVENT_TRIGGERS).fetchall()]


def recheck(session: Any, guards: Sequence[Guard]) -> None:
    """Check again, first thing in ``session``'s transaction, what the access decisions found
    (``guards``: ``reach_guard``): lock each relation it found reached as the statements will (``ROW
    EXCLUSIVE`` in a write session, else ``ACCESS SHARE``; a view's lock takes its base
    relations', a table's its children's) before any snapshot is taken, so a DDL still
    uncommitted commits or aborts first and the catalog read next shows it; then read the
    catalog's fingerprint (``postgres_closure_cache.state``) and, for each decision that did not
    read that same state throughout, what each name reaches again. Waiting for a lock is bounded by the command's budget (``lock_timeout``).

    Raises:
        QueryTimeout: a lock was held past the command's budget.
        PermissionDenied: what a name reaches changed since the decision (run the command again).
    """
    conn = session.conn
    mode = "ROW EXCLUSIVE" if session.write else "ACCESS SHARE"
    relations = list(dict.fromkeys(n for guard in guards for n in guard.relations))
    lock_all(conn, session.adapter.schema, relations, mode, budget.remaining_ms())
    # One fingerprint, read now the locks are held: a decision that read this same catalog
    # state would find what it found (``reach_guard.Guard.unchanged``); the others read again.
    database, now = state(lambda statement, params: conn.execute(statement, params))
    stale = [guard for guard in guards if not guard.unchanged(database, now)]
    changed = sorted({n for guard in stale for n in guard.changed(session)})
    if changed:
        names = ", ".join(json_text(n, 80) for n in changed)
        raise PermissionDenied(
            f"Permission denied: what {names} reaches changed while this command was being "
            "checked (another session's change to the database committed meanwhile); run it "
            "again"
        )


def refuse_event_triggers(conn: Connection[Any], what: str) -> None:
    """Refuse a DDL made on a restricted handle's behalf (``what`` it does, in words: creating a
    collection's table, its declared indexes) when an enabled event trigger would run
    (``event_triggers``: ``CREATE TABLE``, even ``CREATE INDEX IF NOT EXISTS`` of an index already
    there, fires ``ddl_command_start``): its function's reads cannot be known.

    Raises:
        PermissionDenied: an enabled event trigger exists.
    """
    triggers = event_triggers(conn)
    if triggers:
        names = ", ".join(json_text(t, 80) for t in triggers)
        raise PermissionDenied(
            f"Permission denied: {what} runs the database's event trigger {names}, code whose "
            "reads dbhandles cannot know, and this handle may reach only some tables or rows "
            "(do it through a handle without allowedCollections, deniedCollections or rowFilter)"
        )
