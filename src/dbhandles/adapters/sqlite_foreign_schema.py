"""What a table or view dbhandles did not create looks like: its columns, key, indexes and foreign keys.

``describe`` reads an SQLite schema object into a ``ForeignTable``; ``describe_all`` lists every one
of the ``main`` database. Every name is bound as a parameter of a ``pragma_*`` table-valued function
or quoted with ``quote``: a name is never pasted into SQL unquoted. What each kind of object is
served as (docs/foreign-tables.md "Kinds"):

* an ordinary table with a primary key: its key is ``id``; rowid tables without one: the ``rowid``;
* a ``WITHOUT ROWID`` table: served like any table (it always has a primary key);
* a view: read-only, ``id`` is the JSON array of all its columns (a view has no key);
* a virtual table whose module is loaded (FTS5, R*Tree, ...): read-only, by ``rowid``; its hidden
  columns are not shown; its shadow tables (``<name>_data`` ...) are listed as ``shadow`` and refused;
* a virtual table whose module is not loaded: listed with kind ``virtual`` and no columns, refused;
* generated columns are shown and filterable, and never written.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RESERVED_FIELDS",
    "ForeignColumn",
    "ForeignTable",
    "camel",
    "describe",
    "describe_all",
    "field_names",
    "quote",
    "reserved_fields",
    "snake",
]

#: The names SQLite accepts for the rowid, in the order tried (a column may shadow any of them).
_ROWID_NAMES = ("_rowid_", "rowid", "oid")


def quote(name: str) -> str:
    """An SQL identifier: double quotes, inner double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True, slots=True)
class ForeignColumn:
    """One column as ``PRAGMA table_xinfo`` reports it, and the field it is served as."""

    name: str
    field: str
    type: str
    nullable: bool
    default: str | None
    #: Position in the primary key (1-based), 0 when not part of it.
    pk: int
    generated: bool

    def public(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable,
                                "default": self.default}  # fmt: skip
        if self.field != self.name:
            info["field"] = self.field
        if self.generated:
            info["generated"] = True
        return info


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
            return "json_array(" + ", ".join(quote(k) for k in self.key) + ")"
        if self.rowid is not None:
            return self.rowid
        return "json_array(" + ", ".join(quote(c.name) for c in self.columns) + ")"

    @property
    def compound_id(self) -> bool:
        """Whether ``id`` is the JSON text of several values (compound key, or a view)."""
        return len(self.key) > 1 or (not self.key and self.rowid is None)

    def public(self) -> dict[str, Any]:
        """The description ``data/schema`` shows (camelCase keys)."""
        info: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "columns": [c.public() for c in self.columns],
            "primaryKey": list(self.key),
            "id": self._id_doc(),
            "indexes": list(self.indexes),
            "foreignKeys": list(self.foreign_keys),
        }
        if self.without_rowid:
            info["withoutRowid"] = True
        if self.read_only is not None:
            info["readOnly"] = self.read_only
        if self.refused is not None:
            info["refused"] = self.refused
        if self.reserved:
            info["reservedFields"] = sorted(self.reserved)
        return info

    def _id_doc(self) -> str:
        if len(self.key) == 1:
            return f"the value of the primary key column {self.key[0]!r}"
        if self.key:
            return "JSON array of the primary key columns " + ", ".join(self.key)
        if self.rowid is not None:
            return "rowid"
        if self.refused is not None:
            return "none"
        return "JSON array of every column (a view has no key)"


def camel(name: str) -> str:
    """``room_id`` -> ``roomId`` (the original system's rule, continuum-behaviour.md 4.3, reversed);
    a name with a leading, trailing or doubled underscore, or an upper-case letter, is kept as it is."""
    parts = name.split("_")
    if len(parts) == 1 or not all(parts) or name != name.lower():
        return name
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def snake(name: str) -> str:
    """``chatMessages`` -> ``chat_messages``: the original system's table name for a collection
    (continuum-behaviour.md 4.3: ``_`` before each capital, then lower case)."""
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_") or name


#: The reserved fields a table may keep in columns of its own, by the field they are served as.
RESERVED_FIELDS = ("createdAt", "updatedAt", "version")


def reserved_fields(columns: tuple[ForeignColumn, ...], camel_names: bool) -> frozenset[str]:
    """Which reserved fields the table keeps: with ``fieldNames: camel`` the columns served as
    ``createdAt``, ``updatedAt`` and ``version``; otherwise only a ``version`` column declared with
    an integer type (docs/foreign-tables.md "Versions and timestamps")."""
    found = set()
    for column in columns:
        if column.generated or column.pk:
            continue
        if camel_names and column.field in RESERVED_FIELDS:
            found.add(column.field)
        elif column.field == "version" and "INT" in column.type.upper():
            found.add("version")
    return frozenset(found)


def field_names(names: list[str], key: tuple[str, ...], camel_names: bool = False) -> list[str]:
    """The field each column is served as: its name (camelCased with ``fieldNames: camel``; a name
    another column already has is kept as it is), but ``id`` is the record's key, so a column named
    ``id`` that is not the whole key is served as ``_id`` (or ``__id`` ..., the first free)."""
    if camel_names:
        taken = set(names)
        renamed = []
        for name in names:
            wanted = camel(name)
            if wanted != name and wanted not in taken:
                taken.add(wanted)
                name = wanted
            renamed.append(name)
        names = renamed
    taken = set(names)
    fields: list[str] = []
    for name in names:
        if name == "id" and key != ("id",):
            alias = "_id"
            while alias in taken:
                alias = "_" + alias
            taken.add(alias)
            fields.append(alias)
        else:
            fields.append(name)
    return fields


def describe(
    conn: sqlite3.Connection, name: str, kind: str, without_rowid: bool, camel_names: bool = False
) -> ForeignTable:
    """Read one schema object of the ``main`` database (``kind`` as ``PRAGMA table_list`` says);
    ``camel_names`` serves snake_case columns as camelCase fields (``fieldNames: camel``)."""
    if kind == "shadow":
        return ForeignTable(name, kind, (), (), None, False,
                            read_only="the storage of a virtual table",
                            refused=f"{name!r} is the storage of a virtual table; read the virtual "
                                    "table itself")  # fmt: skip
    try:
        rows = conn.execute(
            'SELECT name, type, "notnull", dflt_value, pk, hidden '
            "FROM pragma_table_xinfo(?, 'main') ORDER BY cid",
            (name,),
        ).fetchall()
    except sqlite3.OperationalError as exc:  # a virtual table whose module is not loaded
        return ForeignTable(name, kind, (), (), None, False,
                            read_only=f"a virtual table this SQLite cannot open ({exc})",
                            refused=f"{name!r} is a virtual table whose module is not loaded in "
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
        read_only = "a table without a primary key has no stable id to write through"
    refused = None
    if not key and rowid is None and kind != "view":
        refused = f"{name!r} has no primary key and its columns shadow every name of the rowid"
    return ForeignTable(
        name=name, kind=kind, columns=columns, key=key, rowid=rowid, without_rowid=without_rowid,
        read_only=read_only, refused=refused,
        reserved=reserved_fields(columns, camel_names) if kind == "table" and key else frozenset(),
        indexes=tuple(_indexes(conn, name)) if kind == "table" else (),
        foreign_keys=tuple(_foreign_keys(conn, name)) if kind == "table" else (),
    )  # fmt: skip


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
