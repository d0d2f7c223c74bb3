"""Collection tables in an SQLite file: their DDL, recognising them, and deciding whether to trust a schema.

A collection is a table of exactly this shape (names are case-insensitive, as everywhere in SQL)::

    id TEXT PRIMARY KEY, data TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, version INTEGER NOT NULL

Any other table in the file is *foreign*: never listed, never written.

``trusted_schema`` is OFF on every connection, so a hostile file cannot make its triggers or views call
functions with side effects. SQLite releases before the JSON rewrite (3.40 on Debian 12) do not mark the
JSON functions innocuous, and with ``trusted_schema`` OFF they then refuse every write to a table with a
JSON expression index. On such a build the ``Catalog`` checks the schema itself and turns
``trusted_schema`` ON only while it holds nothing a write to a collection could run except what
dbhandles creates: no triggers on collection tables, which with their indexes must be exactly as
dbhandles writes them. Other tables, their indexes and triggers only run when something writes to them,
and this adapter never does.
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache

from dbhandles.errors import InvalidParams
from dbhandles.filters import SYSTEM_PREFIXES

__all__ = [
    "Catalog",
    "create_table_sql",
    "index_name",
    "index_sql",
    "json_functions_innocuous",
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

    def __init__(self, conn: sqlite3.Connection, *, guard_trust: bool) -> None:
        self.conn = conn
        self.guard_trust = guard_trust
        self.trusted = False
        self._version: int | None = None
        self._tables: dict[str, str | _Foreign | None] = {}

    def refresh(self) -> None:
        """Drop the cache if the schema changed; re-decide ``trusted_schema`` where needed."""
        version = self.conn.execute("PRAGMA schema_version").fetchone()[0]
        if version == self._version:
            return
        self._tables.clear()
        if self.guard_trust:
            trusted = self._schema_is_ours()
            if trusted != self.trusted:
                self.conn.execute(f"PRAGMA trusted_schema = {'ON' if trusted else 'OFF'}")
                self.trusted = trusted
        self._version = version

    def invalidate(self) -> None:
        """Forget everything (after this connection changed the schema itself)."""
        self._version = None
        self._tables.clear()

    def table(self, collection: str) -> str | None:
        """The stored spelling of a collection, ``None`` if missing.

        Raises:
            InvalidParams: the name is taken by a table, view or index that is not a collection.
        """
        _check_name(collection)
        key = collection.lower()
        if key not in self._tables:
            self._tables[key] = self._lookup(collection)
        found = self._tables[key]
        if isinstance(found, _Foreign):
            raise InvalidParams(
                f"{found.kind} {found.name!r} is not a dbhandles collection (it was not created by "
                "dbhandles); use another collection name",
                field="collection",
            )
        return found

    def create(self, collection: str) -> str:
        """The collection's stored name, creating its table (and ``created_at`` index) if missing."""
        found = self.table(collection)
        if found is not None:
            return found
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

    def _schema_is_ours(self) -> bool:
        rows = self.conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
        ours = {
            name.lower()
            for kind, name, _, sql in rows
            if kind == "table" and self._has_shape(name, sql)
        }
        for kind, name, table, sql in rows:
            # A trigger only fires on writes to its own table; dbhandles writes collections only
            # (the handle store's audit triggers live on its own tables, on its own connection).
            if kind == "trigger" and table.lower() in ours:
                return False
            if kind == "table" and name.lower() in ours and not _TABLE_RE.fullmatch(sql):
                return False
            if kind == "index" and table.lower() in ours and sql and not _INDEX_RE.fullmatch(sql):
                return False
        return True


_NAME_RE = re.compile(_NAME)


def _check_name(collection: str) -> None:
    if not isinstance(collection, str) or not _NAME_RE.fullmatch(collection):
        raise InvalidParams(
            f"collection: {collection!r} is not a valid collection name", field="collection"
        )
