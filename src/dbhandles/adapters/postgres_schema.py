"""Collection tables in a PostgreSQL schema: their DDL, recognising them, and which ones exist.

A collection is a table of exactly this shape, named by the lower-cased collection name (so names are
case-insensitive, as in SQLite; the spelling first used is kept in the table's comment)::

    id text COLLATE "C" PRIMARY KEY, data jsonb NOT NULL, created_at text COLLATE "C" NOT NULL,
    updated_at text COLLATE "C" NOT NULL, version integer NOT NULL

``COLLATE "C"`` makes text order code point order (the oracle's) and lets keyset paging on ``id`` and
``createdAt`` use the indexes. Any other table in the schema is *foreign*: served by ``postgres_foreign``
(docs/foreign-tables.md "PostgreSQL"), never listed or created as a collection.
Every object dbhandles names itself (constraints, indexes) is called ``_dbh_...``, a prefix collection
names cannot take, so it never collides with a collection (PostgreSQL would otherwise name the key
of ``users`` ``users_pkey``, taking a name a collection might want).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from typing import Any

from psycopg import Connection, sql

from dbhandles.adapters.postgres_marks import has_mark, make_mark
from dbhandles.errors import InvalidParams
from dbhandles.filters import SYSTEM_PREFIXES, check_new_collection
from dbhandles.values import json_text

__all__ = ["Catalog", "advisory_key", "is_collection", "object_name", "qualified", "table_name"]

_COLUMNS = (
    'id text COLLATE "C" NOT NULL, data jsonb NOT NULL, created_at text COLLATE "C" NOT NULL, '
    'updated_at text COLLATE "C" NOT NULL, version integer NOT NULL'
)
_SHAPE = frozenset(
    {
        ("id", "text"),
        ("data", "jsonb"),
        ("created_at", "text"),
        ("updated_at", "text"),
        ("version", "integer"),
    }
)
_DESCRIBE = """
SELECT c.relname, c.relkind, obj_description(c.oid, 'pg_class'),
       ARRAY(SELECT a.attname || ' ' || format_type(a.atttypid, NULL) FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s
"""
_MAX_IDENT = 63  # PostgreSQL silently truncates longer identifiers


def _digest(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()


def table_name(collection: str) -> str:
    """The table of a collection: its lower-cased name (hashed down when longer than 63 bytes)."""
    name = collection.lower()
    if len(name) > _MAX_IDENT:
        name = f"{name[:50]}_{_digest(name)[:12]}"
    return name


def object_name(kind: str, *parts: str) -> str:
    """A name for a constraint or index dbhandles creates (unique per schema, never a collection's)."""
    return f"_dbh_{kind}_{_digest(*parts)[:24]}"


def qualified(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def advisory_key(*parts: str) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock`` naming one schema object."""
    return int.from_bytes(
        hashlib.sha1("\x1f".join(parts).encode()).digest()[:8], "big", signed=True
    )


def is_collection(name: str, kind: str, columns: Iterable[str]) -> bool:
    """Whether a relation (its name, ``relkind``, ``"name type"`` columns) is a collection's table:
    the shape of one, under a name ``table_name`` gives. A look-alike another tool made under a
    name holding a capital (``CREATE TABLE "Fl" (LIKE fl INCLUDING ALL)``) is no collection's
    table, since ``table_name("Fl")`` is ``fl``: it is its own foreign table with its own rows
    (it was once listed as ``Fl`` with ``fl``'s count, and answered ``fl``'s rows)."""
    shape = {tuple(c.split(" ", 1)) for c in columns}
    return kind in ("r", "p") and shape == _SHAPE and name == name.lower()


def _display(name: str, comment: str | None) -> str:
    # The comment holds the spelling first used; a comment someone else wrote is not a spelling.
    return comment if comment and table_name(comment) == name else name


class Catalog:
    """Which collection tables a schema holds; the tables known to exist are cached.

    Only existence is cached, and only once it is committed: dbhandles never drops a collection table,
    so a cached table stays valid (``forget`` drops an entry if someone else dropped the table).
    """

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self._known: set[str] = set()
        #: Tables known to carry their partial index of unreadable rows (``postgres_marks``).
        self._marked: set[str] = set()
        #: Tables known to lack it (made by an older version, not upgraded here since).
        self._unmarked: set[str] = set()
        self._lock = threading.Lock()

    def cached(self, collection: str, created: Iterable[str] = ()) -> str | None:
        """The table of ``collection`` if it is known to exist (no query)."""
        name = table_name(collection)
        return name if name in self._known or name in created else None

    def table(
        self, conn: Connection[Any], collection: str, created: Iterable[str] = ()
    ) -> str | None:
        """The table of ``collection`` if it exists (``created``: tables this transaction created).

        Raises:
            InvalidParams: the name is taken by a table, view or index that is not a collection.
        """
        name = table_name(collection)
        if name in self._known or name in created:
            return name
        row = conn.execute(_DESCRIBE + " AND c.relname = %s", (self.schema, name)).fetchone()
        if row is None:
            return None
        _, kind, _, columns = row
        if not is_collection(name, kind, columns):
            raise InvalidParams(
                f"{json_text(name, 80)} in schema {json_text(self.schema, 80)} is not a dbhandles collection (it was not created "
                "by dbhandles); use another collection name",
                field="collection",
            )
        with self._lock:
            self._known.add(name)
        return name

    def create(self, conn: Connection[Any], collection: str, created: list[str]) -> str:
        """The table of ``collection``, created (in the caller's transaction) when missing.

        An advisory lock serialises creators, so two processes creating one collection at once do not
        collide in PostgreSQL's catalog; the second sees the first's table once it commits.
        """
        found = self.table(conn, collection, created)
        if found is not None:
            return found
        check_new_collection(collection)
        name = table_name(collection)
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(self.schema, name),))
        found = self.table(conn, collection, created)
        if found is not None:
            return found
        table = qualified(self.schema, name)
        pk = sql.Identifier(object_name("pk", self.schema, name))
        conn.execute(
            sql.SQL("CREATE TABLE {} ({}, CONSTRAINT {} PRIMARY KEY (id))").format(
                table, sql.SQL(_COLUMNS), pk
            )
        )
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} (created_at)").format(
                sql.Identifier(object_name("ix", self.schema, name, "createdAt")), table
            )
        )
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(collection)))
        make_mark(conn, self.schema, name)
        created.append(name)
        return name

    def marked(self, conn: Connection[Any], name: str, created: Iterable[str] = ()) -> bool:
        """Whether the table ``name`` carries its partial index of unreadable rows
        (``postgres_marks``): known once seen (dbhandles never drops it). A table without it, made
        by an older version, is remembered as such too (no catalog query per count) until it is
        upgraded here (``mark``) or the cache is dropped (``forget``); meanwhile, one another process
        upgraded is only counted the slower way."""
        if name in self._marked or name in created:
            return True
        if name in self._unmarked:
            return False
        found = has_mark(conn, self.schema, name)
        with self._lock:
            (self._marked if found else self._unmarked).add(name)
        return found

    def mark(self, conn: Connection[Any], name: str) -> None:
        """Give the existing table ``name`` its partial index of unreadable rows (an upgrade of a
        collection an older version made; the caller holds the table's advisory lock)."""
        if name not in self._marked:
            make_mark(conn, self.schema, name)
            with self._lock:
                self._unmarked.discard(name)  # asked again: seen once the upgrade committed

    def confirm(self, created: Iterable[str]) -> None:
        """Remember tables whose creating transaction committed."""
        with self._lock:
            self._known.update(created)
            self._marked.update(created)

    def forget(self) -> None:
        """Drop the cache (after PostgreSQL said a cached table does not exist)."""
        with self._lock:
            self._known.clear()
            self._marked.clear()
            self._unmarked.clear()

    def collections(self, conn: Connection[Any]) -> list[str]:
        """Every collection of the schema by its first spelling, sorted; system and foreign tables left out."""
        names = []
        for name, kind, comment, columns in conn.execute(_DESCRIBE, (self.schema,)).fetchall():
            if name.startswith(SYSTEM_PREFIXES) or not is_collection(name, kind, columns):
                continue
            names.append(_display(name, comment))
        return sorted(names)

    def tables(self, conn: Connection[Any]) -> list[str]:
        """Table names of every collection (for vacuum and sizes)."""
        rows = conn.execute(_DESCRIBE, (self.schema,)).fetchall()
        return sorted(
            name for name, kind, _, columns in rows
            if not name.startswith(SYSTEM_PREFIXES) and is_collection(name, kind, columns)
        )  # fmt: skip
