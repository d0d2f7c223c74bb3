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

from collections.abc import Callable
from typing import Any

from psycopg import Connection

from dbhandles.adapters.foreign_cascades import UNKNOWN

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
#: The SQL condition "function ``p`` of namespace ``fn`` runs code whose reads cannot be known".
OPAQUE_SQL = "(fn.nspname <> 'pg_catalog' OR p.proname = ANY(%s))"
#: The calls of ``SQL_EXECUTING`` functions in the expressions of ``objects(kind, name, tree)``
#: (``tree``: their ``pg_node_tree`` as text), as ``(kind, name, function oid)``. PostgreSQL
#: records no dependency on ``pg_catalog``'s own (pinned) objects, so they are found in the
#: tree, where a call is ``{FUNCEXPR :funcid 2925 ...``.
BUILTIN_CALLS = """SELECT o.kind, o.name, p.oid FROM objects o
    JOIN pg_proc p ON p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY(%s)
        AND strpos(o.tree, ':funcid ' || p.oid::text || ' ') > 0"""


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
#: may run code that is not PostgreSQL's own, as ``(relation, column, its type, why)``. A column's
#: type is walked (``types``): a domain to its base type, an array to its elements, a composite to
#: its fields' types, a range to its subtype, a multirange to its range. Any type of the walk
#: outside ``pg_catalog`` (an enum, a composite or a range someone created: its casts, operator
#: classes and I/O may be anyone's), a cast from or to one that calls a function outside
#: ``pg_catalog`` (``CREATE CAST (int4range AS json) WITH FUNCTION s.leak(...)``: ``to_jsonb``
#: calls it), a default operator class of one outside ``pg_catalog`` (what ``ORDER BY``,
#: ``DISTINCT`` and grouping by the column call), and a range's subtype operator class, its support
#: functions, canonical or subtype-difference function outside ``pg_catalog`` (run on every range
#: value made or compared) are reasons. A class a range names is not one of its subtype's columns'
#: (an ``int4`` column runs ``int4``'s default class; a view making a range of it calls the range's
#: constructor, outside ``pg_catalog``, which ``_READ_CODE`` finds). A domain is walked through,
#: not a reason itself: PostgreSQL ignores casts from or to a domain, and ``to_jsonb``, operator
#: classes and I/O act on its base type; its constraints and default run only on writes
#: (``postgres_foreign_schema.own_code`` names them). Over-refusing is the safe side: a
#: restricted handle reads only columns of types whose every function is PostgreSQL's.
TYPE_CODE = """
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
           'type ' || tn.nspname || '.' || t.typname || ' is not PostgreSQL''s own'
    FROM types JOIN pg_type t ON t.oid = types.oid
    JOIN pg_namespace tn ON tn.oid = t.typnamespace
    WHERE t.typnamespace <> 'pg_catalog'::regnamespace AND t.typtype <> 'd'
    UNION ALL
    SELECT types.rel, types.col, types.top,
           'a cast from ' || format_type(ca.castsource, NULL) || ' to '
           || format_type(ca.casttarget, NULL) || ' calls ' || pn.nspname || '.' || p.proname
           || '()'
    FROM types JOIN pg_cast ca ON (ca.castsource = types.oid OR ca.casttarget = types.oid)
    JOIN pg_proc p ON p.oid = ca.castfunc JOIN pg_namespace pn ON pn.oid = p.pronamespace
    WHERE p.pronamespace <> 'pg_catalog'::regnamespace
    UNION ALL
    SELECT types.rel, types.col, types.top,
           'operator class ' || cn.nspname || '.' || opc.opcname || ' of type '
           || format_type(types.oid, NULL) || ' is not PostgreSQL''s own'
    FROM types JOIN pg_opclass opc ON opc.opcintype = types.oid
    JOIN pg_namespace cn ON cn.oid = opc.opcnamespace
    WHERE opc.opcnamespace <> 'pg_catalog'::regnamespace AND opc.opcdefault
    UNION ALL
    SELECT types.rel, types.col, types.top,
           'range type ' || format_type(r.rngtypid, NULL) || ' orders its bounds by operator class '
           || cn.nspname || '.' || opc.opcname
    FROM types JOIN pg_range r ON r.rngtypid = types.oid
    JOIN pg_opclass opc ON opc.oid = r.rngsubopc JOIN pg_namespace cn ON cn.oid = opc.opcnamespace
    WHERE opc.opcnamespace <> 'pg_catalog'::regnamespace
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
    WHERE p.pronamespace <> 'pg_catalog'::regnamespace)
"""
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
    read (named as ``view_sources`` names them: ``other.t`` outside ``schema``), then the code
    that runs (``opaque``: ``its definition of vleak calls s.peek()``), sorted."""
    rows = execute(_READ_RELATIONS, (oid, oid)).fetchall()
    names = sorted(name if nsp == schema else f"{nsp}.{name}" for name, nsp in rows)
    executing = list(SQL_EXECUTING)
    code = execute(_READ_CODE, (oid, executing, executing)).fetchall()
    types = execute(_READS + ", rels AS (SELECT oid FROM reads)," + TYPE_CODE + _TYPE_CODE_ROWS,
                    (oid,)).fetchall()  # fmt: skip
    return (
        names
        + [opaque(f"{what} of {rel} calls {function}()") for what, rel, function in code]
        + [opaque(type_words(*row)) for row in types]
    )


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
