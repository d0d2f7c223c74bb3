"""Point reads of the ``sqlite`` adapter: the statements ``SqliteAdapter.read_one`` keeps per
collection, and how a kept statement's row is read and trusted."""

from __future__ import annotations

import sqlite3

from dbhandles.adapters.base import Record
from dbhandles.adapters.sqlite_foreign import ForeignReader
from dbhandles.adapters.sqlite_foreign_schema import quote
from dbhandles.adapters.sqlite_guard import KEPT_POINT, Guard
from dbhandles.adapters.sqlite_schema import Catalog
from dbhandles.adapters.sqlite_values import check_system, record_data

__all__ = [
    "POINT_COLUMNS",
    "Point",
    "current_statement",
    "point_for",
    "point_statement",
    "run_kept",
]

#: The columns a point read selects: ``data`` as a BLOB, so that text another tool wrote that is
#: not UTF-8 reaches ``sqlite_values.record_data`` (an unreadable record, hidden behind a row
#: filter) rather than failing in ``sqlite3``'s decoding (an error naming the column, which would
#: tell a hidden id exists). orjson reads the bytes as it reads text.
POINT_COLUMNS = "id, CAST(data AS BLOB), created_at, updated_at, version"

#: A kept statement: a collection's (``point_statement``), or a foreign table's with an integer
#: key and its reader (``ForeignReader.point``).
Point = str | tuple[str, ForeignReader]


def current_statement(table: str) -> str:
    """``SqliteSession.get_current``'s statement for the collection stored as ``table``: the
    file's ``schema_version`` and the row of the id bound to it (columns all ``NULL`` when there
    is none), read in one statement."""
    return (
        "SELECT s.schema_version, t.id, CAST(t.data AS BLOB), t.created_at, t.updated_at, "
        "t.version "
        f"FROM pragma_schema_version AS s LEFT JOIN {quote(table)} AS t ON t.id = ?"
    )


def point_statement(table: str) -> str:
    """``SqliteAdapter.read_one``'s kept statement for the collection stored as ``table``: the
    row of the id bound to it (``id, data, created_at, updated_at, version``), nothing else.

    It reads no ``schema_version``: joining ``pragma_schema_version`` made SQLite prepare a
    ``PRAGMA`` (and call the guard, a Python authorizer) on every read, ~2 µs of ~10. The kept
    statement is instead trusted only when SQLite did not prepare it again while it ran (the
    connection's guard counts its calls, ``sqlite_guard.guard_of``): SQLite prepares a statement
    again whenever the schema version it was prepared at is no longer the file's, so a run
    without a preparation read the schema the statement was made for. The text ends with
    ``sqlite_guard.KEPT_POINT`` so that only ``read_one`` ever prepares it."""
    return f"SELECT {POINT_COLUMNS} FROM {quote(table)} WHERE id = ?" + KEPT_POINT


def point_for(catalog: Catalog, collection: str) -> Point | None:
    """The statement ``read_one`` keeps for ``collection`` as ``catalog`` sees it: one of
    dbhandles' own collections', a foreign table's with an integer key (with its reader), else
    ``None`` (nothing kept: a view, another key, no such table)."""
    if (reader := catalog.foreign(collection)) is not None:
        return None if reader.point is None else (reader.point, reader)
    table = catalog.table(collection)
    return None if table is None else point_statement(table)


def run_kept(
    conn: sqlite3.Connection,
    guard: Guard,
    statement: Point,
    collection: str,
    record_id: str,
    known: int,
) -> tuple[int | None, Record | None]:
    """Run the kept ``statement`` for ``record_id``: ``(known, record)`` when SQLite ran it
    without preparing it again (the guard's count did not move: it read the schema at ``known``
    it was prepared for), else ``(None, record)``, which the caller confirms by a refresh.
    ``record`` is ``None`` when no row has that id.

    Raises:
        StorageError: the row's ``data`` is no JSON object dbhandles can read
            (``sqlite_values.record_data``: another tool wrote it).
        sqlite3.Error: untranslated (a stale catalog's statement meets ``SQLITE_ERROR``).
    """
    calls, ran = guard.calls, True
    if isinstance(statement, tuple):  # a foreign table's integer key
        text, reader = statement
        number = reader.integer_id(record_id)
        ran = number is not None
        row = conn.execute(text, (number,)).fetchone() if ran else None
        record = None if row is None else reader.record(row)
    else:
        row = conn.execute(statement, (record_id,)).fetchone()
        if row is not None:
            check_system(collection, row[0], row[2], row[3], row[4])
        record = None if row is None else {
            "id": row[0], **record_data(row[1], collection, row[0]), "createdAt": row[2],
            "updatedAt": row[3], "version": row[4],
        }  # fmt: skip
    return (known if ran and guard.calls == calls else None), record
