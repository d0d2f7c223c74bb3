"""What a table or view dbhandles did not create looks like: its columns, key, indexes and foreign keys.

``describe`` reads an SQLite schema object into a ``ForeignTable``; ``describe_all`` lists every one
of the ``main`` database. Every name is bound as a parameter of a ``pragma_*`` table-valued function
or quoted with ``quote``: a name is never pasted into SQL unquoted. What each kind of object is
served as (docs/foreign-tables.md "Kinds"):

* an ordinary table with a primary key: its key is ``id``; rowid tables without one: the ``rowid``;
* a table whose key holds what no ``id`` can name soundly (``key_probe``): NULL (SQLite allows it
  in a rowid table unless the column is NOT NULL or the ``INTEGER PRIMARY KEY``), a REAL infinity
  (records show it as null), or, in a key of one column, values of more than one kind (numbers,
  text, BLOBs: the integer 1 and the text '1' would share the id text ``1``): served as if it had
  no key (``without_key``: by rowid, or a ``WITHOUT ROWID`` table as a view is) while it does, so
  no row is skipped, no ``id`` is null and no id names two rows;
* a ``WITHOUT ROWID`` table: served like any table (it always has a primary key);
* a view: read-only, ``id`` is the JSON array of all its columns (a view has no key);
* a virtual table whose module is loaded (FTS5, R*Tree, ...): read-only, by ``rowid``; its hidden
  columns are not shown; its shadow tables (``<name>_data`` ...) are listed as ``shadow`` and refused;
* a virtual table whose module is not loaded: listed with kind ``virtual`` and no columns, refused;
* generated columns are shown and filterable, and never written.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any

from dbhandles.adapters.foreign_cascades import EVENTS, UNKNOWN, CascadeEdge, reached
from dbhandles.adapters.foreign_common import (
    NO_KEY,
    ForeignColumn,
    field_names,
    key_doc,
    reserved_fields,
    table_public,
)
from dbhandles.adapters.sqlite_guard import installed, schema_refusal
from dbhandles.adapters.sqlite_replace import replace_constraint, replaces_in_trigger
from dbhandles.adapters.sqlite_values import BASE64_FUNCTION
from dbhandles.adapters.sqlite_vtables import read_virtual_tables
from dbhandles.values import json_text

__all__ = [
    "DUPLICATE",
    "ForeignTable",
    "cascade_targets",
    "derived_from",
    "describe",
    "describe_all",
    "key_item",
    "quote",
    "schema_objects",
    "trigger_writes",
]

#: The names SQLite accepts for the rowid, in the order tried (a column may shadow any of them).
_ROWID_NAMES = ("_rowid_", "rowid", "oid")


def quote(name: str) -> str:
    """An SQL identifier: double quotes, inner double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


#: The largest finite REAL: anything beyond is an infinity, which records show as null.
FINITE = "1.7976931348623157e308"


def key_item(name: str) -> str:
    """SQL of column ``name`` as an item of a compound key's (or a view row's) ``id`` array: its
    value, a BLOB as ``{"$base64": ...}`` (``json_array`` refuses a BLOB; a field shows it so,
    and ``foreign_values.decode_key`` reads it back), a REAL infinity as ``null`` as a field
    shows it (``json_array`` would write ``Inf``, which is no JSON; a key holding one is served
    without it, ``key_probe``, and a view's rows equal but for it are numbered apart)."""
    col = quote(name)
    return (
        f"(CASE WHEN typeof({col}) = 'blob' THEN json_object('$base64', "
        f"{BASE64_FUNCTION}({col})) WHEN typeof({col}) = 'real' AND abs({col}) > {FINITE} "
        f"THEN NULL ELSE {col} END)"
    )


#: The column a view's rows are numbered in among the rows equal to them (``id_sql``).
#: (U+2060 WORD JOINER first: no column a person names has this name.)
DUPLICATE = '"\u2060dbh_duplicate"'


@dataclass(frozen=True, slots=True)
class ForeignTable:
    """A table or view of the ``main`` database that is not a dbhandles collection."""

    name: str
    #: ``table``, ``view``, ``virtual`` or ``shadow`` (the storage tables of a virtual table).
    kind: str
    columns: tuple[ForeignColumn, ...]
    #: The primary key's columns in key order (empty for views, key-less and virtual tables).
    key: tuple[str, ...]
    #: How the rowid is named in SQL, when the table has one that no column shadows.
    rowid: str | None
    without_rowid: bool
    #: Why nothing may be written here (``None`` when rows may be written through their key).
    read_only: str | None
    #: Why it cannot be read at all (``None`` when it can).
    refused: str | None
    indexes: tuple[dict[str, Any], ...] = field(default=())
    foreign_keys: tuple[dict[str, Any], ...] = field(default=())
    #: Which of ``createdAt``, ``updatedAt``, ``version`` columns keep (``reserved_fields``).
    reserved: frozenset[str] = field(default=frozenset())
    #: A query finding a row whose key no ``id`` can name soundly, when the key may hold one
    #: (``key_probe``): the table is then served ``without_key``.
    key_probe: str | None = None
    #: The code a read of it is refused with: ``read_only``, or ``access_denied`` when SQLite
    #: refused what it reads (``sqlite_guard.schema_refusal``).
    refused_code: str = "read_only"

    def without_key(self, fault: str = "") -> ForeignTable:
        """This table served by its rowid (a ``WITHOUT ROWID`` table: by the JSON of its columns,
        numbered among equal rows, as a view), read-only: what its rows are while ``key_probe``
        finds a key no ``id`` can name (NULL names no row and sorts apart from every value; an
        infinity is shown as null; the integer 1 and the text '1' are one id text). The key's
        columns become plain fields (a column named ``id`` is served as ``_id``); ``fault`` is
        what the probe found (``"k" holds NULL``), said first in the ``read_only`` reason."""
        taken = {c.field for c in self.columns}
        alias = "_id"
        while alias in taken:
            alias = "_" + alias
        columns = tuple(
            replace(c, field=alias if c.field == "id" else c.field, pk=0, nullable=True)
            if c.pk else c
            for c in self.columns
        )  # fmt: skip
        keys = ", ".join(self.key)
        found = fault or (
            "it holds NULL or a REAL infinity, or (a key of one column) a BLOB or both numbers "
            "and text, in some rows"
        )
        return replace(
            self, columns=columns, key=(), reserved=frozenset(), key_probe=None,
            read_only=f"its primary key ({keys}) cannot name every row: {found}; no id names "
            "such a row soundly, so the table is served "
            + ("by rowid" if self.rowid is not None else "as a view is (by its columns)")
            + " and read-only until no key holds NULL, an infinity or a BLOB, nor both numbers "
            "and text (docs/foreign-tables.md "
            "\"Keys no id can name\")",
        )  # fmt: skip

    @property
    def integer_key(self) -> str | None:
        """The SQL of a key that is always an integer (the rowid or its alias), else ``None``."""
        if not self.key:
            return self.rowid
        if len(self.key) == 1 and not self.without_rowid:
            column = next(c for c in self.columns if c.name == self.key[0])
            if column.type.upper() == "INTEGER":  # exactly INTEGER: an alias of the rowid
                return quote(column.name)
        return None

    @property
    def id_sql(self) -> str:
        """The SQL expression of a row's ``id`` (see ``foreign_values``)."""
        if self.key:
            if len(self.key) == 1:
                return quote(self.key[0])
            return "json_array(" + ", ".join(key_item(k) for k in self.key) + ")"
        if self.rowid is not None:
            return self.rowid
        # A view: rows equal in every column would share one id, so the 2nd, 3rd ... of them get
        # ``#2``, ``#3`` (``ForeignReader`` numbers them in DUPLICATE) and paging skips none.
        return f"({self.row_json} || CASE WHEN {DUPLICATE} > 1 THEN '#' || {DUPLICATE} ELSE '' END)"

    @property
    def id_alias(self) -> str | None:
        """The name a read selects ``id_sql`` under when it is an expression (a compound key's, a
        view's): ``json_array("x", "y")``, short, where the expression wraps each item for BLOBs
        (``key_item``). Python's sqlite3 cuts its error for text that is not UTF-8 at 200 bytes,
        column name included, and ``sqlite_errors`` names the column from that name and the text."""
        if (self.key and len(self.key) == 1) or (not self.key and self.rowid is not None):
            return None
        names = self.key if self.key else tuple(c.name for c in self.columns)
        listed = "json_array(" + ", ".join(quote(n) for n in names) + ")"
        return listed if self.key else f"({listed})"

    @property
    def row_json(self) -> str:
        """The SQL of the compact JSON array of every column."""
        return "json_array(" + ", ".join(key_item(c.name) for c in self.columns) + ")"

    @property
    def numbered(self) -> bool:
        """Whether rows are told apart by their number among equal rows (a view: ``id_sql``)."""
        return not self.key and self.rowid is None

    @property
    def compound_id(self) -> bool:
        """Whether ``id`` is the JSON text of several values (compound key, or a view)."""
        return len(self.key) > 1 or (not self.key and self.rowid is None)

    def public(self) -> dict[str, Any]:
        """The description ``data/schema`` shows (camelCase keys)."""
        flags = {"withoutRowid": True} if self.without_rowid else {}
        info = table_public(self, self._id_doc(), flags, self.refused)
        if self.refused is not None:
            info["refusedCode"] = self.refused_code
        return info

    def _id_doc(self) -> str:
        if self.key:
            return key_doc(self.key)
        if self.rowid is not None:
            return "rowid"
        if self.refused is not None:
            return "none"
        if self.kind == "table":  # a WITHOUT ROWID table whose key names no row soundly
            return "JSON array of every column (its key names no row soundly: read-only)"
        return "JSON array of every column (a view has no key)"


def _shadow_owner(conn: sqlite3.Connection, name: str) -> str | None:
    """The virtual table whose storage (shadow) table ``name`` is (``f5`` for ``f5_data``)."""
    return read_virtual_tables(conn).shadows.get(name.lower())


def describe(
    conn: sqlite3.Connection, name: str, kind: str, without_rowid: bool, camel_names: bool = False
) -> ForeignTable:
    """Read one schema object of the ``main`` database (``kind`` as ``PRAGMA table_list`` says);
    ``camel_names`` serves snake_case columns as camelCase fields (``fieldNames: camel``)."""
    if kind == "shadow":
        owner = _shadow_owner(conn, name)
        of = f"virtual table {json_text(owner, 80)}" if owner else "a virtual table"
        return ForeignTable(name, kind, (), (), None, False,
                            read_only=f"the storage table of {of}",
                            refused=f"{json_text(name, 80)} is the storage table of {of}; read the "
                                    "virtual table itself")  # fmt: skip
    try:
        rows = conn.execute(
            'SELECT name, type, "notnull", dflt_value, pk, hidden '
            "FROM pragma_table_xinfo(?, 'main') ORDER BY cid",
            (name,),
        ).fetchall()
    except sqlite3.OperationalError as exc:  # a virtual table whose module is not loaded
        modules = {k: v.module for k, v in read_virtual_tables(conn).tables.items()}
        denial = schema_refusal(str(exc), name, modules)
        if denial is not None:  # a view over dbstat, fsdir...: SQLite's own refusal
            return ForeignTable(name, kind, (), (), None, False, read_only=denial.message,
                                refused=denial.message, refused_code=denial.code)  # fmt: skip
        if kind == "view":  # SQL of the file that SQLite cannot run: the schema's fault
            words = (
                "reads a table or column that does not exist"
                if "no such" in str(exc)
                else "cannot be run as written"
            )
            refusal = f"the view {json_text(name, 80)} {words} ({exc})"
            return ForeignTable(name, kind, (), (), None, False, read_only=refusal,
                                refused=refusal, refused_code="query_failed")  # fmt: skip
        return ForeignTable(name, kind, (), (), None, False,
                            read_only=f"a virtual table this SQLite cannot open ({exc})",
                            refused=f"{json_text(name, 80)} is a virtual table whose module is not loaded in "
                                    f"this SQLite ({exc})")  # fmt: skip
    # hidden: 1 a virtual table's hidden column, 2 and 3 generated (virtual, stored).
    visible = [r for r in rows if r[5] != 1]
    key = tuple(r[0] for r in sorted((r for r in visible if r[4] > 0), key=lambda r: r[4]))
    if kind != "table":
        key = ()
    names = [r[0] for r in visible]
    fields = field_names(names, key, camel_names)
    columns = tuple(
        ForeignColumn(name=r[0], field=f, type=r[1] or "", nullable=not r[2] and r[4] == 0,
                      default=r[3], pk=r[4], generated=r[5] in (2, 3))
        for r, f in zip(visible, fields, strict=True)
    )  # fmt: skip
    lowered = {n.lower() for n in names}
    rowid = None
    if kind in ("table", "virtual") and not without_rowid:
        rowid = next((n for n in _ROWID_NAMES if n not in lowered), None)
    read_only = None
    if kind == "view":
        read_only = "a view has no rows of its own to write"
    elif kind == "virtual":
        read_only = "a virtual table is served read-only"
    elif not key:
        read_only = NO_KEY
    refused = None
    if not key and rowid is None and kind != "view":
        refused = f"{json_text(name, 80)} has no primary key and its columns shadow every name of the rowid"
    return ForeignTable(
        name=name, kind=kind, columns=columns, key=key, rowid=rowid, without_rowid=without_rowid,
        read_only=read_only, refused=refused,
        key_probe=key_probe(name, key, rowid, {r[0]: bool(r[2]) for r in visible},
                            {r[0]: r[1] or "" for r in visible}),
        reserved=reserved_fields(columns, camel_names, _integer, _timestamp) if kind == "table" and key
                 else frozenset(),
        indexes=tuple(_indexes(conn, name)) if kind == "table" else (),
        foreign_keys=tuple(_foreign_keys(conn, name)) if kind == "table" else (),
    )  # fmt: skip


def key_probe(
    name: str, key: tuple[str, ...], rowid: str | None, not_null: dict[str, bool],
    types: dict[str, str],
) -> str | None:  # fmt: skip
    """The query finding a row of table ``name`` whose ``key`` no ``id`` can name soundly, ``None``
    when no row can hold one (the ``INTEGER PRIMARY KEY``, the rowid itself, never does). Its one
    row (none while every key is sound) is the text saying which key holds what (``k holds
    NULL``), for the ``read_only`` reason (``ForeignTable.without_key``):

    * NULL, in a rowid table's key column that is not NOT NULL (a ``WITHOUT ROWID`` table
      refuses it): it names no row, and sorts apart from every value;
    * a REAL infinity, in a column without TEXT affinity (which stores a number as text): a
      record shows it as null, so two of them would share an id;
    * in a key of one column, values of two kinds (numbers, text, BLOBs): the integer 1 and the
      text '1' are both the id text ``1``, and a BLOB's ``{"$base64": ...}`` is no key's text.
      (A compound key's id is JSON, typed: ``[1]`` and ``["1"]`` differ.)

    SQLite orders NULL < numbers < text < BLOBs, so each test is a step or two into the key's
    index (its first column's; the later columns of a compound key are scanned)."""
    if not key:
        return None
    if len(key) == 1 and rowid is not None and types[key[0]].upper() == "INTEGER":
        return None
    faults: list[tuple[str, str]] = []  # (the test of one row, what it finds)
    for k in key:
        col = quote(k)
        named = json_text(k, 80).replace("'", "''")
        if rowid is not None and not not_null[k]:
            faults.append((f"{col} IS NULL", f"{named} holds NULL"))
        if _affinity(types[k]) != "text":
            # The IN list's REALs take the column's affinity, which keeps an infinity a REAL.
            faults.append((f"{col} IN (9e999, -9e999)", f"{named} holds a REAL infinity"))
    source = quote(name)
    if len(key) == 1:
        col = quote(key[0])
        named = json_text(key[0], 80).replace("'", "''")
        number = f"EXISTS (SELECT 1 FROM {source} WHERE {col} < '')"
        text = f"EXISTS (SELECT 1 FROM {source} WHERE {col} >= '' AND {col} < x'')"
        blob = f"EXISTS (SELECT 1 FROM {source} WHERE {col} >= x'')"
        whens = [f"WHEN EXISTS (SELECT 1 FROM {source} WHERE {t}) THEN '{f}'" for t, f in faults]
        if _affinity(types[key[0]]) != "text":  # TEXT affinity stores a number as its text
            whens.append(f"WHEN {number} AND {text} THEN '{named} holds both numbers and text'")
        # Every BLOB key is one kind, but its id is an object no read takes back as that key.
        whens.append(f"WHEN {blob} THEN '{named} holds a BLOB'")
        return f"SELECT * FROM (SELECT CASE {' '.join(whens)} END AS fault) WHERE fault IS NOT NULL"
    if not faults:
        return None
    tests = " OR ".join(t for t, _ in faults)
    which = " ".join(f"WHEN {t} THEN '{f}'" for t, f in faults)
    return f"SELECT CASE {which} END FROM {source} WHERE {tests} LIMIT 1"


def _affinity(declared: str) -> str:
    """SQLite's affinity of a column declared ``declared`` (https://sqlite.org/datatype3.html 3.1):
    ``integer``, ``text``, ``blob`` or ``numeric`` (REAL is numeric enough here)."""
    upper = declared.upper()
    if "INT" in upper:
        return "integer"
    if any(k in upper for k in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in upper or not upper:
        return "blob"
    return "numeric"


def _integer(column: ForeignColumn) -> bool:
    """Whether the column's declared type has INTEGER affinity (a ``version`` column it can be)."""
    return "INT" in column.type.upper()


def _timestamp(column: ForeignColumn) -> bool:
    """Whether the column's declared type keeps dbhandles' ISO-8601 text as it is: TEXT affinity,
    no type, or a date/time name (NUMERIC affinity, which stores text that is no number as text)."""
    kind = column.type.upper()
    return not kind or any(word in kind for word in ("CHAR", "CLOB", "TEXT", "DATE", "TIME"))


def _indexes(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    found = []
    for index, unique, origin, partial in conn.execute(
        "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?, 'main') ORDER BY name",
        (table,),
    ).fetchall():
        columns = [
            c if c is not None else "<expression>"
            for (c,) in conn.execute(
                "SELECT name FROM pragma_index_info(?, 'main') ORDER BY seqno", (index,)
            ).fetchall()
        ]
        found.append({"name": index, "columns": columns, "unique": bool(unique),
                      "origin": {"c": "create index", "u": "unique constraint",
                                 "pk": "primary key"}.get(origin, origin),
                      "partial": bool(partial)})  # fmt: skip
    return found


def _foreign_keys(conn: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    keys: dict[int, dict[str, Any]] = {}
    for fk_id, _seq, target, source, to, on_update, on_delete in conn.execute(
        'SELECT id, seq, "table", "from", "to", on_update, on_delete '
        "FROM pragma_foreign_key_list(?, 'main') ORDER BY id, seq",
        (table,),
    ).fetchall():
        entry = keys.setdefault(fk_id, {"columns": [], "table": target, "references": [],
                                        "onUpdate": on_update, "onDelete": on_delete})  # fmt: skip
        entry["columns"].append(source)
        entry["references"].append(to)
    return list(keys.values())


def cascade_targets(
    conn: sqlite3.Connection, table: str, update: bool, event: str | None = None
) -> list[tuple[str, str]]:
    """The tables a delete from ``table`` (``update``: a change of its referenced keys; ``event``:
    ``insert``, ``update`` or ``delete``, when given) writes through foreign-key actions and
    triggers, with how (``foreign_cascades.reached``). Foreign-key actions count only while the
    connection enforces them (``PRAGMA foreign_keys``); triggers always run. An insert or update
    that may resolve a conflict by REPLACE (a constraint declared ``ON CONFLICT REPLACE``, a
    trigger's ``INSERT OR REPLACE``: ``sqlite_replace``) is a delete of its table too."""
    edges: list[CascadeEdge] = []
    if conn.execute("PRAGMA foreign_keys").fetchone()[0]:
        rows = conn.execute(
            'SELECT m.name, f."table", upper(f.on_delete), upper(f.on_update) '
            "FROM sqlite_schema AS m JOIN pragma_foreign_key_list(m.name, 'main') AS f "
            "WHERE m.type = 'table' AND f.seq = 0"
        ).fetchall()
        edges = [CascadeEdge(*row) for row in rows]

    def triggers(name: str, doing: str) -> list[tuple[str, str, str]]:
        return trigger_writes(conn, name, doing)

    def replaces(name: str) -> str | None:
        return replace_constraint(conn, name)

    return reached(edges, table, update, _fold, triggers, event, replaces)


def _fold(name: str) -> str:
    # SQLite compares table names folding ASCII letters only (sqlite_schema.name_key).
    return "".join(c.lower() if c.isascii() else c for c in name)


def derived_from(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    """The other tables whose writes make the database write values into ``table``: a trigger
    on them whose body writes it (at any depth: ``trigger_writes``), or a foreign key of
    ``table`` declared ``ON UPDATE CASCADE`` (it copies the parent's new key); ``(source,
    how)``. A row filter cannot be applied to what those rows were made from (docs/security.md
    "Row filters and views"). A trigger that cannot be compiled on this connection counts when
    its text names ``table``; a table's triggers on itself are left out (its own rows, filtered
    alike)."""
    key = _fold(table)
    found: dict[str, str] = {}
    if conn.execute("PRAGMA foreign_keys").fetchone()[0]:
        for (parent,) in conn.execute(
            "SELECT \"table\" FROM pragma_foreign_key_list(?, 'main') "
            "WHERE upper(on_update) = 'CASCADE' AND seq = 0",
            (table,),
        ).fetchall():
            if _fold(parent) != key:
                found.setdefault(parent, "ON UPDATE CASCADE")
    sources = conn.execute(
        "SELECT DISTINCT tbl_name FROM sqlite_schema WHERE type = 'trigger' ORDER BY tbl_name"
    ).fetchall()
    named = re.compile(r"(?<![\w$])" + re.escape(key) + r"(?![\w$])")
    for (source,) in sources:
        if _fold(source) == key:
            continue
        for event in EVENTS:
            for trigger, target, _ in trigger_writes(conn, source, event):
                if target != UNKNOWN and _fold(target) == key:
                    found.setdefault(source, f"trigger {json_text(trigger, 80)}")
                elif target == UNKNOWN:
                    # Not compiled on this connection (a function its guard refuses in a
                    # trigger, say), yet another connection, the owner's, may run it: a trigger
                    # whose text names the table counts (over-refusing is safe).
                    for name, text in conn.execute(
                        "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' "
                        "AND tbl_name = ? COLLATE NOCASE",
                        (source,),
                    ).fetchall():
                        if named.search(_fold(str(text))):
                            found.setdefault(source, f"trigger {json_text(name, 80)}")
    return list(found.items())


#: The authorizer's actions that write a table, as ``foreign_cascades.EVENTS`` names them.
_WRITES = {
    sqlite3.SQLITE_INSERT: "insert",
    sqlite3.SQLITE_UPDATE: "update",
    sqlite3.SQLITE_DELETE: "delete",
}


def trigger_writes(conn: sqlite3.Connection, table: str, event: str) -> list[tuple[str, str, str]]:
    """What the triggers a write of rows of ``table`` (``event``: ``insert``, ``update`` or
    ``delete``) fires write, at any depth: ``(trigger, table, event)`` (another database's
    table as ``schema.table``), ``[]`` when ``table`` has no trigger. An insert or update by a
    trigger whose body writes with REPLACE is listed again as ``replace``: it may delete rows.

    SQLite resolves it: the write is compiled (``EXPLAIN``, which runs nothing, so a read-only
    file is fine) under an authorizer that notes every write made on behalf of a trigger (its 4th
    argument names the trigger) while SQLite codes the trigger programs in, nested ones too. A
    write that cannot be compiled (the table is a view, or gone) is ``UNKNOWN`` when triggers
    are declared on it: no restricted handle may reach it.
    """
    declared = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = ? COLLATE NOCASE "
        "LIMIT 1",
        (table,),
    ).fetchone()
    if declared is None:
        return []
    name = quote(table)
    if event == "insert":
        statement = f"INSERT INTO {name} DEFAULT VALUES"
    elif event == "update":
        columns = [
            quote(row[0])
            for row in conn.execute(
                "SELECT name FROM pragma_table_xinfo(?, 'main') WHERE hidden = 0", (table,)
            )
        ]
        if not columns:
            return []
        statement = f"UPDATE {name} SET " + ", ".join(f"{c} = {c}" for c in columns)
    else:
        statement = f"DELETE FROM {name}"
    found: dict[tuple[str, str, str], None] = {}

    def note(action: int, target: str | None, _: str | None, schema: str | None,
             trigger: str | None) -> int:  # fmt: skip
        writes = _WRITES.get(action)
        if writes is not None and trigger and target:
            qualified = target if schema in (None, "main") else f"{schema}.{target}"
            found[(trigger, qualified, writes)] = None
        return sqlite3.SQLITE_OK  # nothing runs: EXPLAIN only lists the program

    conn.set_authorizer(note)
    try:
        conn.execute(f"EXPLAIN {statement}").fetchall()
    except sqlite3.Error:
        return [("?", UNKNOWN, event)]
    finally:
        conn.set_authorizer(installed(conn))  # the connection's own guard (sqlite_guard), back
    for trigger, target, writes in list(found):
        if writes != "delete" and replaces_in_trigger(conn, trigger):
            found[(trigger, target, "replace")] = None
    return list(found)


def schema_objects(conn: sqlite3.Connection) -> list[tuple[str, str, bool]]:
    """``(name, kind, without_rowid)`` of every table and view of ``main``, SQLite's own left out."""
    rows = conn.execute(
        "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
    ).fetchall()
    return [(name, kind, bool(wr)) for name, kind, wr in rows]


def describe_all(conn: sqlite3.Connection) -> list[ForeignTable]:
    """Every table and view of ``main`` (collections included: the caller tells them apart)."""
    return [describe(conn, name, kind, wr) for name, kind, wr in schema_objects(conn)]
