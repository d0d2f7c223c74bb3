"""Whether a PostgreSQL table's primary key can be its rows' ``id``, and the table served without it.

An ``id`` must be JSON, never null, one per row, and read back as the row's key
(docs/foreign-tables.md "Keys no id can name"). A key column of a type whose value a record shows
as no number or string (``bytea`` as ``{"$base64": ...}``, ``json``/``jsonb``, ``boolean``, arrays,
composites) names its rows by nothing a read takes back: such a table is served as a table
without a key always (``settle``). A ``real``, ``double precision`` or ``numeric`` key may hold NaN
or ±Infinity, which a record shows as ``null``: while one does (``PgTable.key_probe``, asked per
command in its snapshot), the table is served so too (``without_key``). Served without its key,
a table's ``id`` is the JSON of all its columns, numbered among equal rows, and it is read-only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from psycopg import Connection

from dbhandles.adapters.postgres_foreign_schema import PgColumn, PgTable
from dbhandles.adapters.postgres_foreign_sql import quote

__all__ = ["holds_odd_key", "settle", "without_key"]

#: Base types whose values a record shows as an object, an array or a boolean.
_UNNAMEABLE = frozenset({"bytea", "json", "jsonb", "bool"})
#: ``pg_type.typcategory`` of arrays and composite types (shown as JSON arrays and objects).
_CONTAINERS = frozenset({"A", "C"})
#: Base types that hold NaN (and ±Infinity: ``numeric`` since PostgreSQL 14).
_FLOATS = frozenset({"float4", "float8", "numeric"})


def _unnameable(column: PgColumn) -> bool:
    return column.base in _UNNAMEABLE or column.category in _CONTAINERS


def settle(table: PgTable, server_version: int) -> PgTable:
    """``table`` with its key checked: served ``without_key`` when a key column's type cannot name
    a row; with ``key_probe`` set when a key column may hold NaN or ±Infinity (the probe asks the
    key's index for one: ``k IN ('NaN', 'Infinity', '-Infinity')``, cast to the column's base
    type so a domain's CHECK does not refuse the constant)."""
    if not table.key:
        return table
    columns = [table.column(k) for k in table.key]
    odd = [c.name for c in columns if _unnameable(c)]
    if odd:
        names = ", ".join(odd)
        return without_key(
            table,
            f"its primary key's column {names} is of a type whose values a record shows as no "
            "number or string, which no id can name, so the table is served as one without a "
            'key: by all its columns, read-only (docs/foreign-tables.md "Keys no id can name")',
        )
    tests = []
    for c in columns:
        if c.base not in _FLOATS:
            continue
        odd_values = ["NaN"]
        if c.base != "numeric" or server_version >= 140000:
            odd_values += ["Infinity", "-Infinity"]
        listed = ", ".join(f"'{v}'::{c.base}" for v in odd_values)
        tests.append(f"{quote(c.name)} IN ({listed})")
    if not tests:
        return table
    source = f"{'ONLY ' if table.only else ''}{quote(table.schema)}.{quote(table.name)}"
    return replace(table, key_probe=f"SELECT 1 FROM {source} WHERE {' OR '.join(tests)} LIMIT 1")


def without_key(table: PgTable, why: str | None = None) -> PgTable:
    """``table`` served as a table without a primary key: ``id`` is the JSON of all its columns
    (``postgres_foreign_sql.id_scalar``), read-only, its key columns plain fields (a column named
    ``id`` served as ``_id``, the first free name); ``why`` is the ``read_only`` reason (default:
    its key holds NaN or ±Infinity now)."""
    taken = {c.field for c in table.columns}
    alias = "_id"
    while alias in taken:
        alias = "_" + alias
    columns = tuple(
        replace(c, field=alias if c.field == "id" else c.field, pk=0, nullable=True) if c.pk else c
        for c in table.columns
    )
    keys = ", ".join(table.key)
    reason = why or (
        f"its primary key ({keys}) holds NaN or Infinity in some rows, which a record shows as "
        "null, so no id names such a row: the table is served as one without a key (by all its "
        "columns) and read-only until no key holds one "
        '(docs/foreign-tables.md "Keys no id can name")'
    )
    return replace(
        table, columns=columns, key=(), read_only=reason, reserved=frozenset(), key_probe=None
    )


def holds_odd_key(table: PgTable, conn: Connection[Any]) -> bool:
    """Whether a key of ``table`` holds NaN or ±Infinity now (``key_probe``, in ``conn``'s
    transaction: such a key may be written at any time). A table the role cannot read is left to
    its read, which says so."""
    probe = table.key_probe
    if probe is None or table.unreadable is not None:
        return False
    return conn.execute(probe).fetchone() is not None
