"""Collection tables in an SQLite file: their DDL, recognising them, and deciding whether to trust a schema.

A collection is a table of exactly this shape (names are case-insensitive, as everywhere in SQL)::

    id TEXT PRIMARY KEY, data TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, version INTEGER NOT NULL

Any other table or view in the file is *foreign*: ``Catalog.foreign`` hands it to ``sqlite_foreign``,
which serves it (docs/foreign-tables.md); the collection path never touches it.

``trusted_schema`` is OFF on every connection, so a hostile file cannot make its CHECK constraints,
defaults, generated columns, indexes, views or triggers call functions SQLite does not mark
innocuous. SQLite releases before the JSON rewrite (3.40 on Debian 12) do not mark the JSON
functions innocuous, and with ``trusted_schema`` OFF they then refuse every write to a table with a
JSON expression index. On such a build the ``Catalog`` checks the schema itself and turns
``trusted_schema`` ON only while nothing in it could do more than OFF allows, JSON aside: no
trigger on a collection table, collection tables and their indexes exactly as dbhandles writes
them, and every other statement of the schema (foreign tables, which dbhandles also writes, their
indexes, views and triggers) calling no function that is not innocuous and, in a view or trigger,
reading no virtual table (``sqlite_trust.distrust``; ``Catalog.distrust`` keeps why not). A
connection parses its schema trusting it and is made again untrusting when the catalog does not
trust it (``SqliteAdapter._open_connection``).
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache

from dbhandles.adapters.foreign_common import snake
from dbhandles.adapters.sqlite_compile import indexed_paths
from dbhandles.adapters.sqlite_foreign import ForeignReader
from dbhandles.adapters.sqlite_foreign_schema import describe
from dbhandles.adapters.sqlite_guard import refuse_virtual
from dbhandles.adapters.sqlite_trust import distrust
from dbhandles.adapters.sqlite_vtables import VirtualTables, read_virtual_tables
from dbhandles.errors import InvalidParams
from dbhandles.filters import SYSTEM_PREFIXES, check_new_collection
from dbhandles.values import json_text

__all__ = [
    "Catalog",
    "create_table_sql",
    "index_name",
    "index_sql",
    "json_functions_innocuous",
    "name_key",
]

_COLUMNS_SQL = (
    "id TEXT PRIMARY KEY NOT NULL, data TEXT NOT NULL, created_at TEXT NOT NULL, "
    "updated_at TEXT NOT NULL, version INTEGER NOT NULL"
)
#: (name, declared type, part of the primary key, NOT NULL); ``id``'s NOT NULL is not required
#: (tables written by other tools may lack it), so it is compared as False.
_SHAPE = frozenset(
    {
        ("id", "TEXT", True, False),
        ("data", "TEXT", False, True),
        ("created_at", "TEXT", False, True),
        ("updated_at", "TEXT", False, True),
        ("version", "INTEGER", False, True),
    }
)
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_TABLE_RE = re.compile(rf'CREATE TABLE "{_NAME}" \({re.escape(_COLUMNS_SQL)}\)')
_INDEX_RE = re.compile(
    rf'CREATE INDEX "_dbh_ix:[^"]*" ON "{_NAME}" '
    rf"\((?:[a-z_]+|json_extract\(data, '\$(?:\.{_NAME})+'\))\)"
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(collection: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for a collection (SQLite stores it without IF NOT EXISTS)."""
    return f"CREATE TABLE IF NOT EXISTS {_quote(collection)} ({_COLUMNS_SQL})"


def index_name(collection: str, field: str) -> str:
    """Index names share one namespace per file; ':' cannot occur in a collection or a field path."""
    return f"_dbh_ix:{collection.lower()}:{field}"


def index_sql(collection: str, field: str, expression: str) -> str:
    """``CREATE INDEX IF NOT EXISTS`` on ``expression`` (a column or a JSON path expression)."""
    name = _quote(index_name(collection, field))
    return f"CREATE INDEX IF NOT EXISTS {name} ON {_quote(collection)} ({expression})"


@cache
def json_functions_innocuous() -> bool:
    """Whether this SQLite lets a schema with JSON expression indexes be written to untrusted."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("PRAGMA trusted_schema = OFF")
        probe.execute("CREATE TABLE t (d TEXT)")
        probe.execute("CREATE INDEX i ON t (json_extract(d, '$.a'))")
        probe.execute("INSERT INTO t VALUES ('{}')")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


class _Foreign:
    """Marker in the table cache: the name is taken by something that is not a collection."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name


class Catalog:
    """Which collections a connection's file holds, cached until the schema changes.

    ``refresh`` compares ``PRAGMA schema_version`` (bumped by any connection, in any process, that
    changes the schema) with the cached one, so the cache never outlives a change made elsewhere.
    """

    def __init__(
        self, conn: sqlite3.Connection, *, guard_trust: bool, camel_names: bool = False
    ) -> None:
        self.conn = conn
        self.guard_trust = guard_trust
        #: Serve the columns of foreign tables as camelCase fields (``fieldNames: camel``).
        self.camel_names = camel_names
        self.trusted = False
        #: Whether the connection parsed its schema with ``trusted_schema`` ON (``SqliteAdapter``).
        self.started_trusting = False
        #: Why the schema is not trusted (``sqlite_trust.distrust``), ``None`` while it is.
        self.distrust: str | None = None
        self._version: int | None = None
        self._tables: dict[str, str | _Foreign | None] = {}
        self._foreign: dict[str, ForeignReader | None] = {}
        #: The file's virtual tables and what they read (``sqlite_vtables``), as of ``refresh``.
        self.virtual = VirtualTables({}, set())
        #: The JSON paths the file's indexes name (``sqlite_compile.indexed_paths``), as of ``refresh``.
        self.indexed: frozenset[str] | None = None

    def refresh(self) -> None:
        """Drop the cache if the schema changed; re-decide ``trusted_schema`` where needed."""
        version = self.conn.execute("PRAGMA schema_version").fetchone()[0]
        if version == self._version:
            return
        self._tables.clear()
        self._foreign.clear()
        # The guard refuses reading virtual tables that reach pragma tables or the file itself.
        self.virtual = read_virtual_tables(self.conn)
        self.indexed = indexed_paths(self.conn)
        refused = self.virtual.refused()
        refuse_virtual(self.conn, refused)
        if self.guard_trust:
            # A virtual table the guard refuses is refused to every SQL, trusted or not.
            self.distrust = self._distrust(self.virtual.tables.keys() - refused.keys())
            trusted = self.distrust is None
            if trusted != self.trusted:
                self.conn.execute(f"PRAGMA trusted_schema = {'ON' if trusted else 'OFF'}")
                self.trusted = trusted
        self._version = version

    @property
    def version(self) -> int | None:
        """The ``schema_version`` the cache describes (``None`` until ``refresh`` reads one)."""
        return self._version

    def invalidate(self) -> None:
        """Forget everything (after this connection changed the schema itself)."""
        self._version = None
        self._tables.clear()
        self._foreign.clear()
        self.indexed = None

    def foreign(self, name: str) -> ForeignReader | None:
        """The reader of the table or view ``name`` (any case) if it is not a collection, else ``None``
        (a collection, or nothing by that name): what ``SqliteSession`` serves as a foreign table."""
        key = name_key(name)
        if key in self._foreign:
            found = self._foreign[key]
            return None if found is None else found.current(self.conn)  # NULL keys: the rowid
        reader = None
        lookup = (
            "SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' "
            "AND name = ? COLLATE NOCASE AND type IN ('table', 'view', 'virtual', 'shadow')"
        )
        row = self.conn.execute(lookup, (name,)).fetchone()
        if row is None and self.camel_names and snake(name) != name:
            # The original system's table for collection ``chatMessages`` is ``chat_messages``.
            row = self.conn.execute(lookup, (snake(name),)).fetchone()
        # Decided on the name found as well as the one asked for: with ``fieldNames: camel``,
        # ``SqliteSchema`` finds ``sqlite_schema``.
        if (
            row is not None
            and not name.lower().startswith(SYSTEM_PREFIXES)
            and not str(row[0]).lower().startswith(SYSTEM_PREFIXES)
        ):
            stored, kind, without_rowid = row
            if not (kind == "table" and self._has_shape(stored, self._sql(stored))):
                table = describe(self.conn, stored, kind, bool(without_rowid), self.camel_names)
                reader = ForeignReader(table)
        self._foreign[key] = reader
        return None if reader is None else reader.current(self.conn)

    def _sql(self, name: str) -> str | None:
        row = self.conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = ? AND type = 'table'", (name,)
        ).fetchone()
        return None if row is None else row[0]

    def table(self, collection: str) -> str | None:
        """The stored spelling of a collection, ``None`` if missing (any name may be looked up: it
        is bound, never pasted).

        Raises:
            InvalidParams: the name is taken by a table, view or index that is not a collection.
        """
        key = name_key(collection)
        if key not in self._tables:
            self._tables[key] = self._lookup(collection)
        found = self._tables[key]
        if isinstance(found, _Foreign):
            raise InvalidParams(
                f"{found.kind} {json_text(found.name, 80)} is not a dbhandles collection (it was not created by "
                "dbhandles); use another collection name",
                field="collection",
            )
        return found

    def create(self, collection: str) -> str:
        """The collection's stored name, creating its table (and ``created_at`` index) if missing."""
        found = self.table(collection)
        if found is not None:
            return found
        check_new_collection(collection)
        self.conn.execute(create_table_sql(collection))
        self.conn.execute(index_sql(collection, "createdAt", "created_at"))
        self.invalidate()
        return collection

    def collections(self) -> list[str]:
        """Stored names of every collection table, sorted; system and foreign tables left out."""
        rows = self.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
        ).fetchall()
        names = [
            name
            for name, sql in rows
            if not name.lower().startswith(SYSTEM_PREFIXES) and self._has_shape(name, sql)
        ]
        return sorted(names)

    # -- internals ---------------------------------------------------------------------------

    def _lookup(self, collection: str) -> str | _Foreign | None:
        row = self.conn.execute(
            "SELECT type, name, sql FROM sqlite_master "
            "WHERE name = ? COLLATE NOCASE AND type IN ('table', 'view', 'index')",
            (collection,),
        ).fetchone()
        if row is None:
            return None
        kind, name, sql = row
        if kind == "table" and self._has_shape(name, sql):
            return str(name)
        return _Foreign(kind, name)

    def _has_shape(self, name: str, sql: str | None) -> bool:
        # A virtual table's module may not be loaded; its columns cannot be ours anyway.
        if sql is None or sql.upper().startswith("CREATE VIRTUAL"):
            return False
        rows = self.conn.execute(
            'SELECT name, upper(type), pk > 0, "notnull" FROM pragma_table_info(?)', (name,)
        ).fetchall()
        shape = {(n.lower(), t, bool(pk), bool(nn) and n.lower() != "id") for n, t, pk, nn in rows}
        return shape == _SHAPE

    def _distrust(self, virtual: set[str]) -> str | None:
        """Why this file's schema may not run trusted (``None``: it may): see the module docstring
        and ``sqlite_trust.distrust``, which reads every statement dbhandles did not write."""
        rows = self.conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        ours = {
            name.lower()
            for kind, name, _, sql in rows
            if kind == "table" and self._has_shape(name, sql)
        }
        theirs = []
        for kind, name, table, sql in rows:
            # A trigger on a collection fires on dbhandles' own writes.
            if kind == "trigger" and table.lower() in ours:
                return (
                    f"the trigger {json_text(name, 80)} is on the collection {json_text(table, 80)}"
                )
            if kind == "table" and name.lower() in ours:
                if not _TABLE_RE.fullmatch(sql):
                    return f"the collection {json_text(name, 80)} is not as dbhandles creates one"
                continue
            if kind == "index" and table.lower() in ours and sql:
                if not _INDEX_RE.fullmatch(sql):
                    return (
                        f"the index {json_text(name, 80)} of a collection is not one of dbhandles'"
                    )
                continue
            theirs.append((kind, name, table, sql))
        return distrust(theirs, virtual)


def name_key(name: str) -> str:
    """A cache key equal for the names SQLite takes as one: it folds ASCII letters only, so
    ``Café`` and ``CAFÉ`` are two tables (``name.lower()`` would make them one)."""
    if name.isascii():  # the common case, on every lookup of a read: no per-character loop
        return name.lower()
    return "".join(c.lower() if c.isascii() else c for c in name)
