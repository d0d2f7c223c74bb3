"""Many rows of a collection's table in one statement per batch: the import's writes on
PostgreSQL (``insert_many`` / ``insert_many_raw``, an ``INSERT ... SELECT FROM unnest``) and its
read-back of skipped ids (``get_many``, ``importer/collisions.py``).

The columns go as five **binary** array parameters (``%b``). In text form psycopg quotes and
escapes every element of an array literal in Python (a regular expression per element: 2.2 of
4.9 s of a 10,000-record import, issues #15/#17); in binary form each element is its length and
its UTF-8 bytes, which PostgreSQL takes as they are. ``data`` is sent as ``text[]`` and cast to
``jsonb[]`` on the server: the same ``jsonb`` input function as before parses each element, so
the values stored, and the refusal of ``\\u0000`` (SQLSTATE 22P05), are unchanged.

Not a ``COPY`` into a staging table (``psycopg``'s recommended bulk load): creating even a
temporary table is DDL, which runs the database's event triggers, so a restricted handle would
have to refuse the import wherever another role has one (``postgres_reach.refuse_event_triggers``).
In a driver-level trial (10,000 rows of 2.4 KB, ``ON CONFLICT DO NOTHING``, one run each, load
average ~3) ``COPY`` and a staging table took 0.62 s, binary arrays 0.68-0.75 s, text arrays
1.7-1.9 s: the DDL would buy little.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any

import psycopg
from psycopg import sql

from dbhandles.adapters.base import RawRow, Record
from dbhandles.adapters.postgres_compile import dump_document
from dbhandles.adapters.postgres_records import READABLE
from dbhandles.adapters.record_rows import storage_fields

__all__ = ["BATCH", "encode", "insert_rows", "read_rows"]

#: Rows per statement: a few MB of parameters, within one round trip.
BATCH = 5000
_COLUMNS = "id, data, created_at, updated_at, version"
_UNNEST = (
    f" ({_COLUMNS}) SELECT * FROM unnest(%b::text[], %b::text[]::jsonb[], %b::text[], "
    "%b::text[], %b::int4[])"
)
#: What psycopg says of a NUL in a text parameter (as text); binary parameters reach the server,
#: which words it otherwise (SQLSTATE 22021): raised here, so the error is translated as before.
_NUL = "PostgreSQL text fields cannot contain NUL (0x00) bytes"

Run = Callable[[sql.Composed, Sequence[Any]], psycopg.Cursor[Any]]


def encode(record: Record) -> RawRow:
    """A record as a storage row, ``data`` written as ``jsonb`` keeps a float a float.

    Raises:
        InvalidParams: a system field is missing, the id is no string, or a value is no JSON.
    """
    record_id, data, created_at, updated_at, version = storage_fields(record)
    return (record_id, dump_document(data).decode(), created_at, updated_at, version)


def _columns(rows: list[RawRow]) -> list[list[Any]]:
    """The five column arrays of ``rows``, ``data`` written as ``jsonb`` keeps a float a float
    (``dump_document``).

    Raises:
        psycopg.DataError: a text holds U+0000 (PostgreSQL text cannot).
    """
    ids, documents, created, updated, versions = (list(c) for c in zip(*rows, strict=True))
    for i, document in enumerate(documents):
        if "e+" in document:  # orjson writes 1e16 as 1e+16, which jsonb would store as an integer
            documents[i] = dump_document(document.encode()).decode()
    for texts in (ids, documents, created, updated):
        if any("\x00" in text for text in texts):
            raise psycopg.DataError(_NUL)
    return [ids, documents, created, updated, versions]


def insert_rows(
    run: Run, table: Callable[[], sql.Composed], rows: Iterable[RawRow], *, skip_existing: bool
) -> int:
    """Insert ``rows`` into a collection's table, ``BATCH`` rows per statement.

    Args:
        run: runs one statement of the session (its time budget).
        table: the qualified table name, asked for only when there is a row (it may make the
            table: no row makes nothing).
        rows: ``(id, data JSON text, createdAt, updatedAt, version)``, in order: with
            ``skip_existing`` the first row of an id is stored and later ones skipped.
        skip_existing: an id already stored (or earlier in ``rows``) is skipped
            (``ON CONFLICT (id) DO NOTHING``); otherwise it raises the driver's unique violation.

    Returns:
        How many rows were inserted (the statements' row counts: exact).

    Raises:
        psycopg.Error: the driver's error, for the caller to translate.
    """
    conflict = " ON CONFLICT (id) DO NOTHING" if skip_existing else ""
    statement: sql.Composed | None = None
    inserted = 0
    source = iter(rows)
    while batch := list(islice(source, BATCH)):
        if statement is None:
            statement = sql.SQL("INSERT INTO ") + table() + sql.SQL(_UNNEST + conflict)
        inserted += run(statement, _columns(batch)).rowcount
    return inserted


def read_rows(
    run: Run, table: sql.Composed, record_ids: Sequence[str], lock: bool
) -> list[tuple[Any, ...]]:
    """The readable rows (``postgres_records.READABLE``) of ``table`` whose id is one of
    ``record_ids``, ``BATCH`` ids per statement (one round trip each, where a point read per id
    made a re-run of 10,000 lines 10,000 round trips).

    Args:
        run: runs one statement of the session.
        table: the qualified table name.
        record_ids: the ids; those not stored, or stored as no record, give no row.
        lock: ``FOR UPDATE``, as a write session's point read locks its row.

    Returns:
        ``(id, data, created_at, updated_at, version)`` per row found, in no given order.

    Raises:
        psycopg.Error: the driver's error (a NUL in an id as the text parameter's), for the
            caller to translate.
    """
    after = f" WHERE id = ANY(%b::text[]) AND {READABLE}{' FOR UPDATE' if lock else ''}"
    statement = sql.SQL(f"SELECT {_COLUMNS} FROM ") + table + sql.SQL(after)
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(record_ids), BATCH):
        ids = list(record_ids[start : start + BATCH])
        if any("\x00" in record_id for record_id in ids):
            raise psycopg.DataError(_NUL)
        rows.extend(run(statement, (ids,)).fetchall())
    return rows
