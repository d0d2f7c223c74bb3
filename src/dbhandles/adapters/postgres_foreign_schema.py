"""What a PostgreSQL table or view dbhandles did not create looks like: columns, key, indexes, constraints.

``relations`` lists the tables and views of the handle's schema that are not collections;
``resolve`` finds the one a ``collection`` name means; ``describe`` reads one into a ``PgTable``. Names
are always bound as parameters (the catalog is queried by schema name and relation oid), never
pasted. What each kind of relation is served as (docs/foreign-tables.md "PostgreSQL"):

* a table (or partitioned table) with a primary key: read and written through the key;
* a table without a primary key: read-only; like a view its ``id`` is the JSON array of all its
  columns (``ctid`` changes on every update and on ``VACUUM FULL``, so it is no id);
* a view, a materialized view, a foreign table: read-only, ``id`` the JSON array of its columns;
* generated columns are shown and filterable, and never written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from psycopg import Connection

from dbhandles.adapters.foreign_cascades import UNKNOWN, CascadeEdge, reached
from dbhandles.adapters.foreign_common import (
    NO_KEY,
    ForeignColumn,
    field_names,
    key_doc,
    reserved_fields,
    snake,
    table_public,
)
from dbhandles.adapters.postgres_closure import closure_code, write_seeds
from dbhandles.adapters.postgres_closure_cache import cached
from dbhandles.adapters.postgres_reach import (
    OBJECT_CALLS,
    OPAQUE_SQL,
    SQL_EXECUTING,
    descendants,
    type_code,
)
from dbhandles.adapters.postgres_schema import is_collection, table_name
from dbhandles.errors import InvalidParams
from dbhandles.filters import SYSTEM_PREFIXES
from dbhandles.values import json_text

__all__ = [
    "PgColumn",
    "PgTable",
    "Relation",
    "cascade_targets",
    "describe",
    "own_code",
    "relations",
    "resolve",
]

#: ``pg_class.relkind`` -> the ``kind`` ``data/schema`` shows.
KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}
#: Above this many rows (``pg_class.reltuples``) ``data/schema`` shows the estimate, not a count.
ESTIMATE_ABOVE = 100_000

_RELATIONS = """
SELECT c.oid, c.relname, c.relkind, c.reltuples, c.xmin::text,
       ARRAY(SELECT a.attname || ' ' || format_type(a.atttypid, NULL) FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
"""
#: The type ``{of}`` is built on: itself, or a domain's base type (through domains of domains).
_ROOT = """
WITH RECURSIVE chain(oid, depth) AS (
    SELECT {of}, 0
    UNION ALL SELECT ct.typbasetype, chain.depth + 1 FROM chain
    JOIN pg_type ct ON ct.oid = chain.oid WHERE ct.typtype = 'd')
SELECT oid FROM chain ORDER BY depth DESC LIMIT 1
"""
_COLUMNS = f"""
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attgenerated <> '', a.attidentity <> '',
       bt.typname, bt.typcategory,
       (a.attcollation IN (950, 951) OR (a.attcollation = 100 AND EXISTS (
           SELECT 1 FROM pg_database db WHERE db.datname = current_database()
           AND COALESCE(to_jsonb(db) ->> 'datlocprovider', 'c') IN ('c', 'b')
           AND COALESCE(to_jsonb(db) ->> 'datlocale', db.datcollate)
               IN ('C', 'POSIX', 'C.UTF-8', 'C.utf8')))),
       ARRAY(WITH RECURSIVE chain(oid) AS (
                 SELECT x FROM unnest(ARRAY[a.atttypid, t.typelem]) x WHERE x <> 0
                 UNION SELECT ct.typbasetype FROM chain JOIN pg_type ct ON ct.oid = chain.oid
                 WHERE ct.typtype = 'd')
             SELECT dn.nspname || '.' || dt.typname FROM chain
             JOIN pg_type dt ON dt.oid = chain.oid JOIN pg_namespace dn ON dn.oid = dt.typnamespace
             WHERE dt.typtype = 'd')
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN LATERAL ({_ROOT.format(of="a.atttypid")}) r ON true
LEFT JOIN pg_type et ON et.oid = (SELECT typelem FROM pg_type WHERE oid = r.oid AND typcategory = 'A')
LEFT JOIN LATERAL ({_ROOT.format(of="et.oid")}) re ON true
JOIN pg_type bt ON bt.oid = CASE WHEN et.typtype = 'd'
    THEN (SELECT typarray FROM pg_type WHERE oid = re.oid) ELSE r.oid END
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_ATTNAMES = (
    "ARRAY(SELECT a.attname FROM unnest({keys}) WITH ORDINALITY k(n, i) JOIN pg_attribute a "
    "ON a.attrelid = {rel} AND a.attnum = k.n ORDER BY k.i)"
)
_CONSTRAINTS = f"""
SELECT con.conname, con.contype, {_ATTNAMES.format(keys="con.conkey", rel="con.conrelid")},
       fc.relname, fn.nspname,
       {_ATTNAMES.format(keys="con.confkey", rel="con.confrelid")},
       con.confupdtype, con.confdeltype
FROM pg_constraint con
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.conrelid = %s
ORDER BY con.conname
"""
_INDEXES = """
SELECT ic.relname, i.indisunique, i.indisprimary, i.indpred IS NOT NULL,
       ARRAY(SELECT COALESCE(a.attname, '<expression>')
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n AND k.n > 0
             WHERE k.o <= i.indnkeyatts ORDER BY k.o),
       EXISTS (SELECT 1 FROM pg_constraint u WHERE u.conindid = i.indexrelid AND u.contype = 'u')
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = %s
ORDER BY ic.relname
"""
_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_CONSTRAINT_KINDS = {"p": "unique", "u": "unique", "c": "check", "f": "foreign_key",
                     "x": "exclusion"}  # fmt: skip
_INTEGERS = frozenset({"int2", "int4", "int8"})
#: The types besides strings (``typcategory`` ``S``) a ``createdAt``/``updatedAt`` column keeps.
_TIMES = frozenset({"timestamptz", "timestamp"})


class Relation(NamedTuple):
    """A relation as the catalog lists it; ``signature`` changes whenever its definition does."""

    oid: int
    name: str
    relkind: str
    estimate: float
    signature: tuple[str, ...]


def _relation(row: tuple[Any, ...]) -> Relation:
    oid, name, kind, tuples, xmin, columns = row
    return Relation(oid, name, kind, float(tuples), (xmin, *columns))


@dataclass(frozen=True, slots=True)
class PgColumn(ForeignColumn):
    """One column as ``pg_attribute`` reports it (``type`` as ``format_type`` prints it:
    ``numeric(10,2)``, ``text[]``), and the field it is served as."""

    identity: bool
    #: The base type's name (``int4``, ``jsonb``, ``_text`` for ``text[]``; a domain's base type).
    base: str
    #: ``pg_type.typcategory`` of the base type (``A`` arrays, ``E`` enums, ``S`` strings, ...).
    category: str
    #: Whether the column's collation orders text by code point (``"C"``, ``"POSIX"``, or the
    #: database's default when that is libc's or the builtin provider's C or C.UTF-8): ordering
    #: by the bare column is then the order of docs/filters.md, and its indexes serve it.
    codepoint: bool = False
    #: The domains (``schema.name``) its values are checked by: its type's when that is a domain
    #: (and the domains that one is built on), or its elements' type's; what a domain's refusal
    #: (``value for domain ... violates check constraint``) is traced back to the column by.
    domains: tuple[str, ...] = ()

    def public(self) -> dict[str, Any]:
        # ForeignColumn by name: zero-argument super() fails in a slots dataclass before 3.14.
        info = ForeignColumn.public(self)
        if self.identity:
            info["identity"] = True
        return info


@dataclass(frozen=True, slots=True)
class PgTable:
    """A table or view of the handle's schema that is not a dbhandles collection."""

    oid: int
    schema: str
    name: str
    #: ``table``, ``view``, ``materialized view`` or ``foreign table``.
    kind: str
    columns: tuple[PgColumn, ...]
    #: The primary key's columns in key order (empty for views and key-less tables).
    key: tuple[str, ...]
    #: Why nothing may be written here (``None`` when rows may be written through their key).
    read_only: str | None
    #: ``pg_class.reltuples``: PostgreSQL's estimate of the row count (-1 before the first ANALYZE).
    estimate: float
    indexes: tuple[dict[str, Any], ...] = field(default=())
    foreign_keys: tuple[dict[str, Any], ...] = field(default=())
    #: Constraint or unique index name -> (``unique``/``check``/``foreign_key``/``exclusion``,
    #: its columns): what a refused write names.
    constraints: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    #: Which of ``createdAt``, ``updatedAt``, ``version`` columns keep: a ``version`` column of an
    #: integer type, or with ``fieldNames: camel`` the columns served under those names
    #: (docs/foreign-tables.md "Versions and timestamps").
    reserved: frozenset[str] = field(default=frozenset())
    #: Why the handle's role cannot read it (no ``SELECT`` privilege), else ``None``:
    #: ``data/schema`` lists it as ``refused`` with ``recordCount: null``.
    unreadable: str | None = None
    #: An ordinary table (``relkind`` ``r``): read, updated and deleted ``ONLY`` in its own rows,
    #: never its inheritance children's (who may hold the same key).
    only: bool = False
    #: A query finding a row whose key holds NaN or ±Infinity (``postgres_foreign_keys.settle``).
    key_probe: str | None = None

    def column(self, name: str) -> PgColumn:
        return next(c for c in self.columns if c.name == name)

    @property
    def compound_id(self) -> bool:
        """Whether ``id`` is the JSON text of several values (a compound key, or no key)."""
        return len(self.key) != 1

    def public(self) -> dict[str, Any]:
        """The description ``data/schema`` shows (camelCase keys)."""
        large = self.estimate >= ESTIMATE_ABOVE and self.unreadable is None
        flags = {"recordCountEstimate": int(self.estimate)} if large else {}
        return table_public(self, self._id_doc(), flags, self.unreadable)

    def _id_doc(self) -> str:
        if self.key:
            return key_doc(self.key)
        return f"JSON array of every column (a {self.kind} without a primary key has no key)"


_CASCADES = """
SELECT cn.nspname, cc.relname, pn.nspname, pc.relname, con.confdeltype, con.confupdtype
FROM pg_constraint con
JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE con.contype = 'f' AND (con.confdeltype IN ('c', 'n', 'd') OR con.confupdtype IN ('c', 'n', 'd'))
"""


#: The user triggers (enabled, not internal: a foreign key's own are) that a write fires, by the
#: bits of ``pg_trigger.tgtype``: INSERT 4, DELETE 8 (and TRUNCATE 32), UPDATE 16.
_TRIGGERS = """
SELECT t.tgname FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND NOT t.tgisinternal AND t.tgenabled <> 'D'
  AND (t.tgtype::integer & %s) <> 0
ORDER BY t.tgname
"""
_EVENT_BITS = {"insert": 4, "delete": 8 | 32, "update": 16}
#: The rules (``CREATE RULE ... ON INSERT TO t DO ALSO ...``) that rewrite a write into others,
#: by ``pg_rewrite.ev_type``: UPDATE 2, INSERT 3, DELETE 4. Their actions are as opaque to this
#: walk as a trigger's function.
_RULES = """
SELECT r.rulename FROM pg_rewrite r
JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND r.ev_type = %s AND r.ev_enabled <> 'D'
ORDER BY r.rulename
"""
_RULE_TYPES = {"insert": "3", "delete": "4", "update": "2"}
#: SQL of a table's own that a write evaluates, whose functions are as opaque as a trigger's: the
#: functions (``pg_proc``, or an operator's ``oprcode``) outside ``pg_catalog``, or of it that run
#: SQL text (``postgres_reach.SQL_EXECUTING``), that ``pg_depend`` records for its column defaults
#: and generated columns (``pg_attrdef``), its constraints (a CHECK, an exclusion's operators), its
#: indexes' expressions and predicates, its partition key's expressions, its row-level security
#: policies (when enabled), and the constraints and defaults of the domains its columns (their
#: elements, a composite's fields) are built on; and what ``pg_depend`` does not record: the
#: support functions and operators of the operator classes of its indexes and partition key
#: (``pg_amproc``, ``pg_amop``: an index on ``name s.evil_ops`` calls them on every insert), the
#: I/O functions of its columns' types and the casts to them. Collations run no user code (libc
#: or ICU). ``kind`` says which; an insert evaluates them all, an update all but the defaults, a
#: delete only the policies.
_OWN_CODE = f"""
WITH RECURSIVE rel AS (
    SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %s AND c.relname = %s),
types(oid) AS (
    SELECT a.atttypid FROM pg_attribute a JOIN rel ON a.attrelid = rel.oid
    WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION
    SELECT x.oid FROM types JOIN pg_type t ON t.oid = types.oid
    CROSS JOIN LATERAL (
        SELECT t.typbasetype UNION ALL SELECT t.typelem
        UNION ALL SELECT ca.atttypid FROM pg_attribute ca
        WHERE t.typtype = 'c' AND ca.attrelid = t.typrelid AND ca.attnum > 0
          AND NOT ca.attisdropped) x(oid)
    WHERE x.oid <> 0),
objects(classid, objid, kind, name, tree) AS (
    SELECT 'pg_attrdef'::regclass::oid, d.oid,
           CASE WHEN a.attgenerated <> '' THEN 'generated column' ELSE 'default of column' END,
           a.attname::text, d.adbin::text
    FROM pg_attrdef d JOIN rel ON d.adrelid = rel.oid
    JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
    UNION ALL
    SELECT 'pg_constraint'::regclass::oid, con.oid, 'constraint', con.conname::text, con.conbin::text
    FROM pg_constraint con JOIN rel ON con.conrelid = rel.oid
    UNION ALL
    SELECT 'pg_class'::regclass::oid, i.indexrelid, 'index', ic.relname::text,
           concat(i.indexprs::text, i.indpred::text)
    FROM pg_index i JOIN rel ON i.indrelid = rel.oid JOIN pg_class ic ON ic.oid = i.indexrelid
    UNION ALL
    SELECT 'pg_constraint'::regclass::oid, con.oid, 'constraint of domain',
           con.conname || ' of domain ' || dt.typname, con.conbin::text
    FROM types JOIN pg_type dt ON dt.oid = types.oid AND dt.typtype = 'd'
    JOIN pg_constraint con ON con.contypid = dt.oid
    UNION ALL
    SELECT 'pg_type'::regclass::oid, dt.oid, 'default of domain', dt.typname::text,
           dt.typdefaultbin::text
    FROM types JOIN pg_type dt ON dt.oid = types.oid AND dt.typtype = 'd'
    UNION ALL
    SELECT 'pg_policy'::regclass::oid, pol.oid, 'policy', pol.polname::text,
           concat(pol.polqual::text, pol.polwithcheck::text)
    FROM rel JOIN pg_class pc ON pc.oid = rel.oid AND pc.relrowsecurity
    JOIN pg_policy pol ON pol.polrelid = rel.oid
    UNION ALL
    SELECT 'pg_class'::regclass::oid, pc.oid, 'partition key', 'of ' || pc.relname,
           pt.partexprs::text
    FROM rel JOIN pg_class pc ON pc.oid = rel.oid AND pc.relkind = 'p'
    JOIN pg_partitioned_table pt ON pt.partrelid = pc.oid),
classes(name, opclass) AS (
    SELECT 'of index ' || ic.relname, k.opclass
    FROM pg_index i JOIN rel ON i.indrelid = rel.oid JOIN pg_class ic ON ic.oid = i.indexrelid
    CROSS JOIN unnest(i.indclass::oid[]) k(opclass)
    UNION ALL
    SELECT 'of the partition key', k.opclass
    FROM pg_partitioned_table pt JOIN rel ON pt.partrelid = rel.oid
    CROSS JOIN unnest(pt.partclass::oid[]) k(opclass)),
calls(kind, name, proc) AS (
    {OBJECT_CALLS}
    UNION ALL
    SELECT 'operator class', opc.opcname || ' ' || c.name, f.proc
    FROM classes c JOIN pg_opclass opc ON opc.oid = c.opclass
    CROSS JOIN LATERAL (
        SELECT ap.amproc::oid FROM pg_amproc ap WHERE ap.amprocfamily = opc.opcfamily
        UNION ALL
        SELECT o.oprcode::oid FROM pg_amop ao JOIN pg_operator o ON o.oid = ao.amopopr
        WHERE ao.amopfamily = opc.opcfamily) f(proc)
    UNION ALL
    SELECT 'type', t.typname::text, f.proc
    FROM types JOIN pg_type t ON t.oid = types.oid
    CROSS JOIN LATERAL unnest(ARRAY[t.typinput::oid, t.typoutput::oid, t.typreceive::oid,
                                    t.typsend::oid, t.typmodin::oid, t.typmodout::oid]) f(proc)
    UNION ALL
    SELECT 'cast to type', t.typname::text, ca.castfunc
    FROM types JOIN pg_type t ON t.oid = types.oid
    JOIN pg_cast ca ON ca.casttarget = t.oid AND ca.castfunc <> 0)
SELECT DISTINCT c.kind, c.name, fn.nspname || '.' || p.proname
FROM calls c
JOIN pg_proc p ON p.oid = c.proc
JOIN pg_namespace fn ON fn.oid = p.pronamespace
WHERE {OPAQUE_SQL}
ORDER BY 1, 2, 3
"""
#: The kinds of ``_OWN_CODE`` an update does not evaluate (unless a foreign key's ``SET DEFAULT``
#: writes the row: then its column defaults run).
_INSERT_ONLY = frozenset({"default of column", "default of domain"})


def own_code(
    conn: Connection[Any], schema: str, table: str, event: str, defaults: bool = False
) -> list[str]:
    """What a write (``event``: ``insert``, ``update``, ``delete``) of ``table`` evaluates that
    calls a function which is not PostgreSQL's own (``_OWN_CODE``): ``default of column n calls
    s.f()`` and the like, one per default, constraint or index and function. A function's body
    may write any table (PostgreSQL records no dependency on what it writes, and it may run
    dynamic SQL), so a restricted handle may not run it, as with a trigger. ``defaults``: the
    update is a foreign key's ``SET DEFAULT``, which evaluates the column defaults too. A delete
    evaluates only the row-level security policies (their ``USING``). An insert or an update
    also runs the code of its columns' types when that is not all PostgreSQL's own
    (``postgres_reach.type_code``: ``column r of t (type evrange): ...``). Then the rest of the
    ``pg_depend`` closure of what the write evaluates (``postgres_closure.write_seeds``: its
    indexes on every write, the indexes of the tables its foreign keys' checks probe)."""
    executing = list(SQL_EXECUTING)

    def execute(statement: str, params: tuple[Any, ...]) -> Any:
        return conn.execute(statement, params)

    rows = conn.execute(_OWN_CODE, (schema, table, executing, executing)).fetchall()
    found = [
        f"{kind} {name} calls {function}()"
        for kind, name, function in rows
        if kind == "policy"
        or (event == "insert" or (event == "update" and (defaults or kind not in _INSERT_ONLY)))
    ]
    if event in ("insert", "update"):
        # A value written runs its type's code: a range's bounds compared by its subtype's
        # operator class, a cast (``postgres_reach.TYPE_CODE``).
        found += type_code(execute, schema, table)
    # Everything else the write evaluates reaches through pg_depend (postgres_closure): a type
    # used as a constant in a CHECK or a default, a domain's cast, the operator classes of the
    # indexes its foreign keys' checks probe on the other table.
    seeds, params = write_seeds(schema, table, event, defaults)
    found += closure_code(execute, seeds, params, executing)
    return list(dict.fromkeys(found))


def cascade_targets(
    conn: Connection[Any], schema: str, table: str, update: bool, event: str | None = None
) -> list[tuple[str, str]]:
    """The relations a delete from ``table`` of ``schema`` (``update``: a change of its
    referenced keys or any update; ``event``: ``insert``, ``update`` or ``delete``, when given)
    writes through foreign-key actions (``pg_constraint.confdeltype`` and ``confupdtype``) and
    triggers, with how (``foreign_cascades.reached``); named as ``view_sources`` names them,
    schema-qualified (``other.t``) outside ``schema``. A trigger's function is opaque (PostgreSQL
    keeps no record of the tables a function body writes, and it may run dynamic SQL), so what
    it writes is ``foreign_cascades.UNKNOWN``; so is what a rule on the write does (``rule x``),
    and a function's ``INSERT ... ON CONFLICT`` with it (PostgreSQL has no REPLACE constraint:
    its conflicts resolve only as a statement says), and so is what a default, a CHECK, a
    generated column, an index or a domain evaluated by the write runs when it calls a function
    that is not PostgreSQL's own (``own_code``: ``default of column n calls s.f()``). Kept while
    the catalog is unchanged (``postgres_closure_cache``)."""
    return cached(
        lambda statement, params: conn.execute(statement, params),
        ("cascades", schema, table, update, event),
        lambda: _cascade_targets(conn, schema, table, update, event),
    )


def _cascade_targets(
    conn: Connection[Any], schema: str, table: str, update: bool, event: str | None
) -> list[tuple[str, str]]:
    """``cascade_targets`` read from the catalog."""

    def named(nsp: str, rel: str) -> str:
        return rel if nsp == schema else f"{nsp}.{rel}"

    #: Each name ``reached`` may walk to -> (schema, relation): ``a.b`` may be a table of this
    #: schema as well as ``b`` of schema ``a``; the edges say which.
    where: dict[str, tuple[str, str]] = {table: (schema, table)}

    def triggers(name: str, doing: str) -> list[tuple[str, str, str]]:
        nsp, rel = where.get(name, (schema, name))
        rows = conn.execute(_TRIGGERS, (nsp, rel, _EVENT_BITS[doing])).fetchall()
        rules = conn.execute(_RULES, (nsp, rel, _RULE_TYPES[doing])).fetchall()
        code = own_code(conn, nsp, rel, doing, (nsp, rel) in set_default)
        children = []
        for cn, child, kind in descendants(conn, nsp, rel, doing):
            child_name = named(cn, child)
            where.setdefault(child_name, (cn, child))
            # Walked as a trigger's write of the child, then said as what it is (below).
            label = f"{_CHILD}{kind} {child_name} of {name}"
            children.append((label, child_name, doing))
        return (
            [(str(row[0]), UNKNOWN, doing) for row in rows]
            + [(f"rule {row[0]}", UNKNOWN, doing) for row in rules]
            + [(what, UNKNOWN, doing) for what in code]
            + children
        )

    edges = []
    #: Tables a foreign key's ``SET DEFAULT`` writes: their updates evaluate column defaults.
    set_default: set[tuple[str, str]] = set()
    for cn, child, pn, parent, on_delete, on_update in conn.execute(_CASCADES).fetchall():
        where.setdefault(named(cn, child), (cn, child))
        if "d" in (on_delete, on_update):
            set_default.add((cn, child))
        edges.append(
            CascadeEdge(
                named(cn, child), named(pn, parent), _ACTIONS[on_delete], _ACTIONS[on_update]
            )
        )
    found = reached(edges, table, update, triggers=triggers, event=event)
    return [(target, _child_words(how)) for target, how in found]


#: Starts the label of a partition or inheritance child in ``cascade_targets``' walk.
_CHILD = "\x01"


def _child_words(how: str) -> str:
    """``how`` as ``foreign_cascades.reached`` words a write of a partition or inheritance child
    (``trigger "\\u0001partition p1 of t" (on insert into "t")``), said as what it is:
    ``its partition p1 of t (on insert into "t")``; any other ``how`` as it is."""
    start = 'trigger "' + json_text(_CHILD, 8)[1:-1]
    if not how.startswith(start):
        return how
    label, _, rest = how[len(start) :].partition('" (')
    return f"its {label} ({rest}"


def relations(conn: Connection[Any], schema: str) -> list[Relation]:
    """Every table and view of ``schema`` that is neither a collection nor a system table, by name."""
    rows = conn.execute(_RELATIONS + " ORDER BY c.relname", (schema,)).fetchall()
    return [
        _relation(row)
        for row in rows
        if not row[1].lower().startswith(SYSTEM_PREFIXES)
        and not is_collection(row[1], row[2], row[5])
    ]


def resolve(
    conn: Connection[Any], schema: str, collection: str, camel_names: bool = False
) -> Relation | None:
    """The relation ``collection`` names when it is not a collection, else ``None``.

    The relation of exactly that name first; else the one a collection of that name would use
    (its lower-cased name); else the one relation whose name equals it ignoring case. With
    ``camel_names`` (``fieldNames: camel``) a name that finds none finds ``snake(name)`` the same
    way: the original system's table for collection ``chatMessages`` is ``chat_messages``.

    Raises:
        InvalidParams: several relations match ignoring case and none exactly.
    """
    lookup = _RELATIONS + " AND lower(c.relname) = lower(%s)"
    rows = conn.execute(lookup, (schema, collection)).fetchall()
    if not rows and camel_names and snake(collection) != collection:
        collection = snake(collection)
        rows = conn.execute(lookup, (schema, collection)).fetchall()
    if not rows:
        return None
    by_name = {row[1]: row for row in rows}
    row = by_name.get(collection) or by_name.get(table_name(collection))
    if row is None:
        if len(rows) > 1:
            names = ", ".join(sorted(json_text(r[1], 80) for r in rows))
            raise InvalidParams(
                f"collection: {json_text(collection, 80)} matches several tables of schema {json_text(schema, 80)} ignoring "
                f"case ({names}); name one exactly",
                field="collection",
            )
        row = rows[0]
    if row[1].lower().startswith(SYSTEM_PREFIXES) or is_collection(row[1], row[2], row[5]):
        return None
    return _relation(row)


def describe(
    conn: Connection[Any], schema: str, relation: Relation, camel_names: bool = False
) -> PgTable:
    """Read one relation (as ``relations`` or ``resolve`` found it) into a ``PgTable``;
    ``camel_names`` serves snake_case columns as camelCase fields (``fieldNames: camel``)."""
    oid, name, kind, estimate, _ = relation
    cols = conn.execute(_COLUMNS, (oid,)).fetchall()
    constraints = conn.execute(_CONSTRAINTS, (oid,)).fetchall()
    key: tuple[str, ...] = ()
    named: dict[str, tuple[str, tuple[str, ...]]] = {}
    foreign_keys = []
    for cname, contype, columns, target, target_schema, refs, on_update, on_delete in constraints:
        if contype == "p":
            key = tuple(columns)
        if contype in _CONSTRAINT_KINDS:
            named[cname] = (_CONSTRAINT_KINDS[contype], tuple(columns))
        if contype == "f":
            entry = {"name": cname, "columns": list(columns), "table": target,
                     "references": list(refs), "onUpdate": _ACTIONS.get(on_update, on_update),
                     "onDelete": _ACTIONS.get(on_delete, on_delete)}  # fmt: skip
            if target_schema != schema:
                entry["schema"] = target_schema
            foreign_keys.append(entry)
    indexes = []
    for iname, unique, primary, partial, columns, constraint in conn.execute(
        _INDEXES, (oid,)
    ).fetchall():
        origin = "primary key" if primary else "unique constraint" if constraint else "create index"
        indexes.append({"name": iname, "columns": list(columns), "unique": unique,
                        "origin": origin, "partial": partial})  # fmt: skip
        if unique and iname not in named:
            named[iname] = ("unique", tuple(c for c in columns if c != "<expression>"))
    names = [r[0] for r in cols]
    fields = field_names(names, key, camel_names)
    columns_ = tuple(
        PgColumn(name=r[0], field=f, type=r[1], nullable=not r[2] and r[0] not in key,
                 default=r[3], pk=key.index(r[0]) + 1 if r[0] in key else 0, generated=r[4],
                 identity=r[5], base=r[6], category=r[7], codepoint=bool(r[8]),
                 domains=tuple(r[9]))
        for r, f in zip(cols, fields, strict=True)
    )  # fmt: skip
    read_only = None
    if kind in ("v", "m", "f"):
        read_only = f"a {KINDS[kind]} is served read-only (it has no primary key to write through)"
    elif not key:
        read_only = NO_KEY
    reserved = reserved_fields(
        columns_,
        camel_names,
        lambda c: c.base in _INTEGERS,
        lambda c: c.base in _TIMES or c.category == "S",
    )
    # A GRANT or REVOKE rewrites the relation's pg_class row, so its signature (xmin) changes
    # and the catalog describes it again.
    readable = conn.execute("SELECT has_table_privilege(%s::oid, 'SELECT')", (oid,)).fetchone()
    unreadable = None if readable and readable[0] else (
        f"the PostgreSQL role of this handle has no SELECT privilege on {KINDS[kind]} {json_text(name, 80)}"
    )  # fmt: skip
    return PgTable(
        oid=oid, schema=schema, name=name, kind=KINDS[kind], columns=columns_, key=key,
        read_only=read_only, estimate=estimate, indexes=tuple(indexes),
        foreign_keys=tuple(foreign_keys), constraints=named,
        reserved=reserved if read_only is None else frozenset(), unreadable=unreadable,
        only=kind == "r",
    )  # fmt: skip
