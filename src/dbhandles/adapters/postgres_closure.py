"""The code a PostgreSQL statement can reach, as the closure of what ``pg_depend`` records.

A restricted handle (``allowedCollections``, ``deniedCollections``, ``rowFilter``) may not run
code whose reads or writes cannot be known (docs/security.md "Cascades on restricted handles").
Instead of predicting each route by which code runs (round 19 found seven around the round-18
checks), one rule: PostgreSQL records in ``pg_depend`` what every view rule, constraint, default,
index, policy, domain and type depends on (a type used as a constant, an operator of ``ORDER BY
... USING``, a function, an operator class, the index a foreign key uses). From the objects a
statement evaluates (``read_seeds``, ``write_seeds``: the rules, policies, generated columns,
indexes and column types of the relations a read reaches; a write's defaults, constraints,
indexes, partition key, policies and column types, and the indexes of the tables on the other
side of its foreign keys), the closure follows ``pg_depend`` from each object to what it depends
on (``objid`` -> ``refobjid``) and what the catalog holds outside ``pg_depend``:

* a type to its input, output, receive, send, typmod and analyze functions, its base type (a
  domain) and the domain's constraints, its element type, a composite's relation (its fields'
  types), a range's subtype, subtype operator class, canonical and subtype-difference functions,
  a multirange's range, its default ``btree`` and ``hash`` operator classes (what ``ORDER BY``,
  ``DISTINCT``, grouping and comparisons pick), and, for a type someone created (``oid >=
  16384``: ``to_jsonb`` looks for casts only of those, and only the owner of one of its two
  types may create a cast), the casts from it and to it;
* an operator class outside ``pg_catalog`` to its family, a family outside ``pg_catalog`` to its
  support functions (``pg_amproc``) and operators (``pg_amop``), an operator outside
  ``pg_catalog`` to its function, selectivity estimators, commutator, negator and the families
  holding it (a sort ``USING`` it calls its family's compare function).

The closure holds code a restricted handle may not run when it holds a function outside
``pg_catalog``, one of ``pg_catalog``'s that runs SQL text (``postgres_reach.SQL_EXECUTING``), a
``SECURITY DEFINER`` function, a built-in function changed after initdb
(``postgres_closure_cache.CHANGED_AFTER_INITDB``), or an operator class or family outside
``pg_catalog``. A cast from
``integer`` to somebody's enum counts only where the enum is in the closure, so it refuses no
``integer`` column. ``pg_catalog``'s own objects are not walked (only a superuser changes them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dbhandles.adapters.postgres_closure_cache import CHANGED_AFTER_INITDB
from dbhandles.adapters.postgres_marks import OWN_FUNCTION

#: Runs a catalog query: ``(statement, params)`` -> a cursor (``postgres_reach.Execute``).
Execute = Callable[[str, tuple[Any, ...]], Any]

__all__ = ["CLOSURE", "READ_SEEDS", "closure_code", "read_seeds", "write_seeds"]

#: ``closure(root, classid, objid)``: every object the objects of ``seeds(root, classid, objid)``
#: (a CTE the statement defines first) reach, each with the seed (``root``: words naming it) it
#: was reached from. See the module's docstring for the edges.
CLOSURE = """
closure(root, checks, classid, objid) AS (
    SELECT root, checks, classid, objid FROM seeds
    UNION
    SELECT c.root, c.checks, x.classid, x.objid FROM closure c CROSS JOIN LATERAL (
        SELECT d.refclassid, d.refobjid FROM pg_depend d
        WHERE d.classid = c.classid AND d.objid = c.objid
          AND c.classid <> 'pg_proc'::regclass
          AND d.refclassid NOT IN ('pg_namespace'::regclass, 'pg_extension'::regclass)
          AND NOT EXISTS (SELECT 1 FROM pg_class r WHERE d.refclassid = 'pg_class'::regclass
                          AND r.oid = d.refobjid AND r.relkind NOT IN ('c', 'i', 'I'))
        UNION ALL
        SELECT 'pg_proc'::regclass::oid, f.oid FROM pg_type t
        CROSS JOIN LATERAL unnest(ARRAY[t.typinput::oid, t.typoutput::oid, t.typreceive::oid,
            t.typsend::oid, t.typmodin::oid, t.typmodout::oid, t.typanalyze::oid]) f(oid)
        WHERE c.classid = 'pg_type'::regclass AND t.oid = c.objid AND f.oid <> 0
        UNION ALL
        SELECT 'pg_type'::regclass::oid, f.oid FROM pg_type t
        CROSS JOIN LATERAL unnest(ARRAY[t.typbasetype, t.typelem]) f(oid)
        WHERE c.classid = 'pg_type'::regclass AND t.oid = c.objid AND f.oid <> 0
        UNION ALL
        SELECT 'pg_class'::regclass::oid, t.typrelid FROM pg_type t
        WHERE c.classid = 'pg_type'::regclass AND t.oid = c.objid AND t.typtype = 'c'
          AND t.typrelid <> 0
        UNION ALL
        SELECT 'pg_constraint'::regclass::oid, con.oid FROM pg_constraint con
        WHERE c.classid = 'pg_type'::regclass AND con.contypid = c.objid AND c.checks
        UNION ALL
        SELECT f.classid, f.oid FROM pg_range r
        CROSS JOIN LATERAL (VALUES ('pg_type'::regclass::oid, r.rngsubtype::oid),
            ('pg_opclass'::regclass::oid, r.rngsubopc::oid),
            ('pg_proc'::regclass::oid, r.rngcanonical::oid),
            ('pg_proc'::regclass::oid, r.rngsubdiff::oid)) f(classid, oid)
        WHERE c.classid = 'pg_type'::regclass AND r.rngtypid = c.objid AND f.oid <> 0
        UNION ALL
        SELECT 'pg_type'::regclass::oid, r.rngtypid FROM pg_range r
        WHERE c.classid = 'pg_type'::regclass AND r.rngmultitypid = c.objid
        UNION ALL
        SELECT 'pg_opclass'::regclass::oid, opc.oid FROM pg_opclass opc
        JOIN pg_am am ON am.oid = opc.opcmethod AND am.amname IN ('btree', 'hash')
        WHERE c.classid = 'pg_type'::regclass AND opc.opcintype = c.objid AND opc.opcdefault
        UNION ALL
        SELECT 'pg_cast'::regclass::oid, ca.oid FROM pg_cast ca
        WHERE c.classid = 'pg_type'::regclass AND c.objid >= 16384
          AND (ca.castsource = c.objid OR ca.casttarget = c.objid)
        UNION ALL
        SELECT 'pg_opfamily'::regclass::oid, opc.opcfamily FROM pg_opclass opc
        WHERE c.classid = 'pg_opclass'::regclass AND opc.oid = c.objid
          AND opc.oid >= 16384
        UNION ALL
        SELECT 'pg_proc'::regclass::oid, ap.amproc::oid FROM pg_amproc ap
        JOIN pg_opfamily opf ON opf.oid = ap.amprocfamily
        WHERE c.classid = 'pg_opfamily'::regclass AND ap.amprocfamily = c.objid
          AND opf.oid >= 16384
        UNION ALL
        SELECT 'pg_operator'::regclass::oid, ao.amopopr FROM pg_amop ao
        JOIN pg_opfamily opf ON opf.oid = ao.amopfamily
        WHERE c.classid = 'pg_opfamily'::regclass AND ao.amopfamily = c.objid
          AND opf.oid >= 16384
        UNION ALL
        SELECT f.classid, f.oid FROM pg_operator o
        CROSS JOIN LATERAL (VALUES ('pg_proc'::regclass::oid, o.oprcode::oid),
            ('pg_proc'::regclass::oid, o.oprrest::oid), ('pg_proc'::regclass::oid, o.oprjoin::oid),
            ('pg_operator'::regclass::oid, o.oprcom), ('pg_operator'::regclass::oid, o.oprnegate)
            ) f(classid, oid)
        WHERE c.classid = 'pg_operator'::regclass AND o.oid = c.objid
          AND o.oid >= 16384 AND f.oid <> 0
        UNION ALL
        SELECT 'pg_opfamily'::regclass::oid, ao.amopfamily FROM pg_amop ao
        JOIN pg_operator o ON o.oid = ao.amopopr
        WHERE c.classid = 'pg_operator'::regclass AND ao.amopopr = c.objid
          AND o.oid >= 16384) x(classid, objid))
"""
#: What of ``closure`` no restricted handle may run: ``(root, what, qualified function or None)``.
_REFUSED = (
    """
SELECT DISTINCT c.root, pg_describe_object(c.classid, c.objid, 0),
       CASE WHEN c.classid = 'pg_proc'::regclass THEN pn.nspname || '.' || p.proname END
FROM closure c
LEFT JOIN pg_proc p ON c.classid = 'pg_proc'::regclass AND p.oid = c.objid
LEFT JOIN pg_namespace pn ON pn.oid = p.pronamespace
LEFT JOIN pg_opclass opc ON c.classid = 'pg_opclass'::regclass AND opc.oid = c.objid
LEFT JOIN pg_opfamily opf ON c.classid = 'pg_opfamily'::regclass AND opf.oid = c.objid
WHERE (p.oid IS NOT NULL AND (p.oid >= 16384
                              OR p.proname = ANY(%s) OR p.prosecdef OR """
    + CHANGED_AFTER_INITDB.format("p")
    + f""") AND NOT {OWN_FUNCTION})
   OR opc.oid >= 16384 OR opf.oid >= 16384
ORDER BY 1, 2
"""
)

#: The objects a read of the relations of ``reads(oid)`` (a CTE defined first) evaluates: each
#: view's ``SELECT`` rule, each enabled policy, generated column and index (a filter on an indexed
#: column may run its operator class), and each column's type (serving a value runs its output
#: function, ``to_jsonb`` a cast of it, ordering its default operator class).
READ_SEEDS = """
seeds(root, checks, classid, objid) AS (
    SELECT 'its definition of ' || c.relname, true, 'pg_rewrite'::regclass::oid, r.oid
    FROM reads JOIN pg_rewrite r ON r.ev_class = reads.oid AND r.ev_type = '1'
    JOIN pg_class c ON c.oid = r.ev_class
    UNION ALL
    SELECT 'policy ' || pol.polname || ' of ' || pc.relname, true, 'pg_policy'::regclass::oid,
           pol.oid
    FROM reads JOIN pg_class pc ON pc.oid = reads.oid AND pc.relrowsecurity
    JOIN pg_policy pol ON pol.polrelid = reads.oid
    UNION ALL
    SELECT 'generated column ' || a.attname || ' of ' || c.relname, true,
           'pg_attrdef'::regclass::oid, ad.oid
    FROM reads JOIN pg_attrdef ad ON ad.adrelid = reads.oid JOIN pg_class c ON c.oid = ad.adrelid
    JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
        AND a.attgenerated <> ''
    UNION ALL
    SELECT 'operator class ' || opc.opcname || ' of index ' || ic.relname, true,
           'pg_opclass'::regclass::oid, opc.oid
    FROM reads JOIN pg_index i ON i.indrelid = reads.oid JOIN pg_class ic ON ic.oid = i.indexrelid
    CROSS JOIN unnest(i.indclass::oid[]) k(opclass) JOIN pg_opclass opc ON opc.oid = k.opclass
    UNION ALL
    SELECT 'the expressions of index ' || ic.relname || ' of ' || c.relname, true,
           'pg_class'::regclass::oid, i.indexrelid
    FROM reads JOIN pg_index i ON i.indrelid = reads.oid
    JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
    UNION ALL
    SELECT 'column ' || a.attname || ' of ' || c.relname || ' (type '
           || format_type(a.atttypid, NULL) || ')', false, 'pg_type'::regclass::oid, a.atttypid
    FROM reads JOIN pg_class c ON c.oid = reads.oid
    JOIN pg_attribute a ON a.attrelid = reads.oid AND a.attnum > 0 AND NOT a.attisdropped),
"""

#: The objects a write of table ``%(schema)s.%(table)s`` evaluates. Flags (booleans, in order):
#: ``values`` (an insert or an update: its column types, constraints, indexes, partition key and
#: the referenced tables' indexes its foreign keys' checks probe), ``defaults`` (its column
#: defaults: an insert, or a foreign key's ``SET DEFAULT``), ``keys`` (an update or a delete: the
#: indexes of the tables referencing it, which the checks of their foreign keys probe). Every
#: write runs its indexes (a row is found by its key) and its policies.
_WRITE_SEEDS = """
WITH RECURSIVE rel AS (
    SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %s AND c.relname = %s),
flags(vals, defaults, keys) AS (SELECT %s::boolean, %s::boolean, %s::boolean),
partners(root, oid) AS (
    SELECT 'foreign key ' || con.conname || ' of ' || rel.relname, con.confrelid
    FROM rel JOIN pg_constraint con ON con.conrelid = rel.oid AND con.contype = 'f'
    CROSS JOIN flags WHERE flags.vals
    UNION ALL
    SELECT 'foreign key ' || con.conname || ' of ' || cc.relname, con.conrelid
    FROM rel JOIN pg_constraint con ON con.confrelid = rel.oid AND con.contype = 'f'
    JOIN pg_class cc ON cc.oid = con.conrelid CROSS JOIN flags WHERE flags.keys),
seeds(root, checks, classid, objid) AS (
    SELECT 'its table ' || rel.relname, true, 'pg_class'::regclass::oid, rel.oid
    FROM rel CROSS JOIN flags WHERE flags.vals
    UNION ALL
    SELECT 'column ' || a.attname || ' of ' || rel.relname || ' (type '
           || format_type(a.atttypid, NULL) || ')', true, 'pg_type'::regclass::oid, a.atttypid
    FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
    CROSS JOIN flags WHERE flags.vals
    UNION ALL
    SELECT CASE WHEN a.attgenerated <> '' THEN 'generated column ' ELSE 'default of column ' END
           || a.attname || ' of ' || rel.relname, true, 'pg_attrdef'::regclass::oid, ad.oid
    FROM rel JOIN pg_attrdef ad ON ad.adrelid = rel.oid
    JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum CROSS JOIN flags
    WHERE flags.vals AND (flags.defaults OR a.attgenerated <> '')
    UNION ALL
    SELECT 'constraint ' || con.conname || ' of ' || rel.relname, true,
           'pg_constraint'::regclass::oid, con.oid
    FROM rel JOIN pg_constraint con ON con.conrelid = rel.oid CROSS JOIN flags WHERE flags.vals
    UNION ALL
    SELECT 'operator class of the partition key of ' || rel.relname, true,
           'pg_opclass'::regclass::oid, k.opclass
    FROM rel JOIN pg_partitioned_table pt ON pt.partrelid = rel.oid
    CROSS JOIN unnest(pt.partclass::oid[]) k(opclass) CROSS JOIN flags WHERE flags.vals
    UNION ALL
    SELECT 'index ' || ic.relname || ' of ' || rel.relname, true, 'pg_class'::regclass::oid,
           i.indexrelid
    FROM rel JOIN pg_index i ON i.indrelid = rel.oid JOIN pg_class ic ON ic.oid = i.indexrelid
    UNION ALL
    SELECT 'policy ' || pol.polname || ' of ' || rel.relname, true, 'pg_policy'::regclass::oid,
           pol.oid
    FROM rel JOIN pg_class pc ON pc.oid = rel.oid AND pc.relrowsecurity
    JOIN pg_policy pol ON pol.polrelid = rel.oid
    UNION ALL
    SELECT p.root, true, 'pg_constraint'::regclass::oid, con.oid
    FROM partners p JOIN pg_constraint con ON con.contype = 'f'
    JOIN rel ON (con.conrelid = rel.oid AND con.confrelid = p.oid)
             OR (con.confrelid = rel.oid AND con.conrelid = p.oid)
    UNION ALL
    SELECT p.root || ' (index ' || ic.relname || ' of ' || pc.relname || ')', true,
           'pg_class'::regclass::oid, i.indexrelid
    FROM partners p JOIN pg_index i ON i.indrelid = p.oid
    JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class pc ON pc.oid = p.oid),
"""


def closure_code(
    execute: Execute, seeds: str, params: tuple[object, ...], executing: Sequence[str]
) -> list[str]:
    """The code no restricted handle may run that the objects of ``seeds`` reach (``CLOSURE``),
    in words, sorted: ``index t_m of t calls s.cmp()``, ``its definition of v uses operator class
    s.evil_ops for access method btree``; one per seed and object. ``seeds`` is the statement's
    ``WITH RECURSIVE ...`` up to and including the ``seeds`` CTE and a trailing comma, ``params``
    its parameters; ``executing``: the ``pg_catalog`` functions that run SQL text
    (``postgres_reach.SQL_EXECUTING``)."""
    rows = execute(seeds + CLOSURE + _REFUSED, (*params, list(executing))).fetchall()
    return [
        f"{root} calls {function}()" if function else f"{root} uses {what}"
        for root, what, function in rows
    ]


def read_seeds(reads: str) -> str:
    """``READ_SEEDS`` after ``reads``: the statement's ``WITH RECURSIVE reads(oid) AS (...)``."""
    return reads + ",\n" + READ_SEEDS


def write_seeds(
    schema: str, table: str, event: str, defaults: bool = False
) -> tuple[str, tuple[object, ...]]:
    """The seeds of a write (``event``: ``insert``, ``update``, ``delete``) of ``table`` of
    ``schema`` and their parameters, for ``closure_code``. ``defaults``: an update by a foreign
    key's ``SET DEFAULT`` (its column defaults run)."""
    values = event in ("insert", "update")
    with_defaults = event == "insert" or (event == "update" and defaults)
    keys = event in ("update", "delete")
    return _WRITE_SEEDS, (schema, table, values, with_defaults, keys)
