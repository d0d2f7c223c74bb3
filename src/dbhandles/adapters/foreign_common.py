"""What every engine's tables dbhandles did not create share: field names, reserved fields, descriptions.

``sqlite_foreign_schema`` and ``postgres_foreign_schema`` read their catalogs into a table and its
columns; the rules that do not depend on the engine are here (docs/foreign-tables.md):

* the field a column is served as (``field_names``; ``camel``/``snake`` for ``fieldNames: camel``);
* which column a dotted field path names (``ColumnPaths``: a column whose name holds '.');
* which of ``createdAt``, ``updatedAt``, ``version`` a table keeps in columns (``reserved_fields``);
* a column (``ForeignColumn``, which PostgreSQL's ``PgColumn`` extends) and the description
  ``data/schema`` shows (``ForeignColumn.public``, ``table_public``, ``key_doc``);
* the ``read_only`` error of a write the table cannot take (``read_only_error``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from dbhandles.errors import ReadOnly
from dbhandles.filters import And, Compare, ElemMatch, FilterNode, Not, Or, SortKey
from dbhandles.values import json_text

__all__ = [
    "NO_KEY",
    "RESERVED_FIELDS",
    "ColumnPaths",
    "DescribedTable",
    "ForeignColumn",
    "camel",
    "field_names",
    "key_doc",
    "read_only_error",
    "reserved_fields",
    "snake",
    "table_public",
]

#: Why a table without a primary key is read-only.
NO_KEY = "a table without a primary key has no stable id to write through"
#: The reserved fields a table may keep in columns of its own, by the field they are served as.
RESERVED_FIELDS = ("createdAt", "updatedAt", "version")


@dataclass(frozen=True, slots=True)
class ForeignColumn:
    """One column as the engine's catalog reports it, and the field it is served as."""

    name: str
    field: str
    #: The declared type (SQLite: as written, ``""`` when none; PostgreSQL: ``format_type``'s text).
    type: str
    nullable: bool
    default: str | None
    #: Position in the primary key (1-based), 0 when not part of it.
    pk: int
    generated: bool

    def public(self) -> dict[str, Any]:
        """The column as ``data/schema`` shows it; ``field`` only when it differs from the name."""
        info: dict[str, Any] = {"name": self.name, "type": self.type, "nullable": self.nullable,
                                "default": self.default}  # fmt: skip
        if self.field != self.name:
            info["field"] = self.field
        if self.generated:
            info["generated"] = True
        return info


class DescribedTable(Protocol):
    """A foreign table or view, as either engine describes it."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def columns(self) -> Sequence[ForeignColumn]: ...
    @property
    def key(self) -> tuple[str, ...]: ...
    @property
    def read_only(self) -> str | None: ...
    @property
    def indexes(self) -> tuple[dict[str, Any], ...]: ...
    @property
    def foreign_keys(self) -> tuple[dict[str, Any], ...]: ...
    @property
    def reserved(self) -> frozenset[str]: ...


ColumnT = TypeVar("ColumnT", bound=ForeignColumn)


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


class ColumnPaths:
    """Field paths as the columns of one table read them (docs/foreign-tables.md "Names").

    A path is parsed by splitting on '.', so ``{"a.b": 1}`` is the path ``a`` -> ``b``. On a table
    with a column whose name (as served) holds '.', the longest leading parts of a path that join
    into such a name are that column, and the rest of the path reaches into its JSON: with a
    column ``a.b``, ``a.b`` is that column and ``a.b.c`` the key ``c`` inside it, whether or not
    there is a column ``a`` too (the exact name wins over splitting). On a table without such
    columns every path is left as it is.
    """

    __slots__ = ("dotted",)

    def __init__(self, fields: Iterable[str]) -> None:
        #: The fields whose names hold '.'.
        self.dotted = frozenset(f for f in fields if "." in f)

    @classmethod
    def of(cls, description: dict[str, Any] | None) -> ColumnPaths:
        """The paths of the table ``Session.table`` described (``None``: a collection, whose
        paths always split on '.')."""
        if description is None:
            return cls(())
        return cls(str(c.get("field", c["name"])) for c in description["columns"])

    def path(self, path: tuple[str, ...]) -> tuple[str, ...]:
        """``path`` with the parts that name a dotted column joined into one (see the class)."""
        if len(path) < 2 or not self.dotted:
            return path
        for end in range(len(path), 1, -1):
            name = ".".join(path[:end])
            if name in self.dotted:
                return (name, *path[end:])
        return path

    def filter(self, node: FilterNode | None) -> FilterNode | None:
        """``node`` with every field path read by ``path`` (inside ``$elemMatch``, paths are of
        the array's elements and stay as they are)."""
        if node is None or not self.dotted:
            return node
        if isinstance(node, Compare | ElemMatch):
            path = self.path(node.path)
            return node if path == node.path else replace(node, path=path)
        if isinstance(node, And | Or):
            return type(node)(tuple(self._child(c) for c in node.children))
        return Not(self._child(node.child))

    def _child(self, node: FilterNode) -> FilterNode:
        found = self.filter(node)
        assert found is not None
        return found

    def order(self, keys: tuple[SortKey, ...]) -> tuple[SortKey, ...]:
        """Sort keys with their paths read by ``path``."""
        if not self.dotted:
            return keys
        return tuple(SortKey(self.path(k.path), k.descending) for k in keys)

    def groups(self, paths: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        """``groupBy`` paths read by ``path``."""
        if not self.dotted:
            return paths
        return tuple(self.path(p) for p in paths)

    def fields(
        self, paths: tuple[tuple[str, ...], ...] | None
    ) -> tuple[tuple[str, ...], ...] | None:
        """A projection's paths read by ``path``."""
        if paths is None or not self.dotted:
            return paths
        return tuple(self.path(p) for p in paths)


def reserved_fields(
    columns: Iterable[ColumnT],
    camel_names: bool,
    integer: Callable[[ColumnT], bool],
    timestamp: Callable[[ColumnT], bool],
) -> frozenset[str]:
    """Which reserved fields the table keeps: a ``version`` column of an integer type, and with
    ``fieldNames: camel`` the columns served as ``createdAt`` and ``updatedAt`` whose type takes
    dbhandles' ISO-8601 text (``integer`` and ``timestamp`` tell, by the engine's types;
    docs/foreign-tables.md "Versions and timestamps"). A column so named of another type is plain
    data: a result's ``version`` is an integer, and writing a time into another program's REAL
    or INTEGER column would replace its values with text. Key and generated columns keep none."""
    found = set()
    for column in columns:
        if column.generated or column.pk:
            continue
        if column.field == "version" and integer(column):
            found.add("version")
        elif camel_names and column.field in ("createdAt", "updatedAt") and timestamp(column):
            found.add(column.field)
    return frozenset(found)


def key_doc(key: tuple[str, ...]) -> str:
    """What a record's ``id`` is for a table with the primary key ``key`` (not empty), in words."""
    if len(key) == 1:
        return f"the value of the primary key column {json_text(key[0], 80)}"
    return "JSON array of the primary key columns " + ", ".join(key)


def table_public(
    table: DescribedTable, id_doc: str, flags: dict[str, Any], refused: str | None = None
) -> dict[str, Any]:
    """The description ``data/schema`` shows (camelCase keys): what every engine shows, then the
    engine's own ``flags``, then why it is read-only or ``refused`` and its reserved fields."""
    info: dict[str, Any] = {
        "name": table.name,
        "kind": table.kind,
        "columns": [c.public() for c in table.columns],
        "primaryKey": list(table.key),
        "id": id_doc,
        "indexes": list(table.indexes),
        "foreignKeys": list(table.foreign_keys),
        **flags,
    }
    if table.read_only is not None:
        info["readOnly"] = table.read_only
    if refused is not None:
        info["refused"] = refused
    if table.reserved:
        info["reservedFields"] = sorted(table.reserved)
    return info


#: A table's kind (``PRAGMA table_list``'s word) in an error message.
_KIND_WORDS = {"virtual": "virtual table", "shadow": "storage table of a virtual table"}


def read_only_error(table: DescribedTable) -> ReadOnly:
    """The ``read_only`` error for a write to ``table`` (or one by a path that cannot write it)."""
    kind = _KIND_WORDS.get(table.kind, table.kind)
    if table.read_only is None:
        return ReadOnly(
            f"{kind} {json_text(table.name, 80)} was not created by dbhandles: its rows are written by "
            "data/create, data/update, data/delete, data/batch and data/truncate only (not by "
            "imports, data/clear or index commands)",
            field="collection",
        )
    return ReadOnly(
        f"{kind} {json_text(table.name, 80)} was not created by dbhandles and is read-only here: "
        f"{table.read_only}",
        field="collection",
    )
