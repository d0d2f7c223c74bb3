"""Writes to a PostgreSQL table dbhandles did not create: rows through their primary key.

``PostgresSession.table_writer`` hands out a ``PgWriter``; ``documents`` decides what to write and
this module stores it (docs/foreign-tables.md "PostgreSQL writes"):

* a field is a column; a field that is not one, or a generated column, is ``invalid_params`` naming
  it. Values go in as PostgreSQL parses them for the column's type: numbers, booleans and null as
  they are, strings as text PostgreSQL reads by the column's type (``"2024-01-01T10:00:00Z"`` into a
  ``timestamptz``, a UUID's text into ``uuid``, ``"12.50"`` into ``numeric``), objects and arrays as
  JSON into ``json``/``jsonb``, arrays into array columns, ``{"$base64": "..."}`` into ``bytea``;
* ``id`` is the key: omitted, the key column's default (a ``serial`` or identity column) picks it,
  and a text or ``uuid`` key without a default gets a new UUID4;
* every statement ends in ``RETURNING`` the row as reads show it, so a result (and the row filter
  ``documents`` checks on it) is what was stored;
* a refused write is ``constraint_violation`` naming the constraint and the field (``diag`` of the
  server's error), a taken key ``record_exists``, a value the column cannot hold ``invalid_params``;
  the session's transaction is rolled back, so nothing is written.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Json, Jsonb

from dbhandles.adapters.base import Record
from dbhandles.adapters.foreign_values import BLOB_KEY
from dbhandles.adapters.foreign_writer import LABELS, ForeignWriterBase, blame
from dbhandles.adapters.postgres_foreign import PgReader, Run
from dbhandles.adapters.postgres_foreign_schema import PgColumn, PgTable
from dbhandles.adapters.postgres_foreign_sql import quote
from dbhandles.errors import DbHandlesError, InvalidParams

__all__ = ["PgWriter"]

_STATES = {"23502": "not_null", "23505": "unique", "23514": "check", "23503": "foreign_key",
           "23P01": "exclusion"}  # fmt: skip
#: Key types a new record without an id gets a UUID4 in (when the key has no default).
_UUID_KEYS = frozenset({"text", "varchar", "uuid"})
_COLUMN = re.compile(r'column "((?:[^"]|"")+)"')
#: The value an ``invalid input`` message quotes (``... for type date: "abc"``).
_QUOTED = re.compile(r':\s*"((?:[^"]|"")*)"\s*$')
#: Words of PostgreSQL's value errors naming a base type (``integer out of range``).
_TYPE_WORDS = {
    "int2": ("smallint",), "int4": ("integer",), "int8": ("bigint",),
    "numeric": ("numeric",), "float4": ("real",), "float8": ("double precision",),
    "date": ("date",), "timestamp": ("timestamp",), "timestamptz": ("timestamp",),
    "time": ("time",), "timetz": ("time",), "interval": ("interval",), "uuid": ("uuid",),
    "bool": ("boolean",), "json": ("json",), "jsonb": ("json",), "bytea": ("bytea",),
}  # fmt: skip


def _text(value: Any) -> str:
    """A parameter as the text PostgreSQL would quote back in an error."""
    if isinstance(value, Json | Jsonb):
        return str(orjson.dumps(value.obj).decode())
    return str(value)


def _array_literal(value: list[Any]) -> str:
    """A PostgreSQL array literal (``{1,"a b",NULL,{2,3}}``) that the server parses by the
    column's element type."""
    items = []
    for item in value:
        if item is None:
            items.append("NULL")
        elif isinstance(item, list):
            items.append(_array_literal(item))
        else:
            if isinstance(item, bool):
                text = "true" if item else "false"
            elif isinstance(item, dict):
                text = orjson.dumps(item).decode()
            else:
                text = str(item)
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


class PgWriter(ForeignWriterBase[PgColumn]):
    """Rows of one foreign table written inside the session's transaction."""

    engine = "PostgreSQL"
    placeholder = "%s"
    table: PgTable
    reader: PgReader

    def __init__(self, run: Run, reader: PgReader) -> None:
        super().__init__(reader.table, reader)
        self.run = run
        key = self.table.key
        single = self.table.column(key[0]) if len(key) == 1 else None
        #: A key column with a default (``serial``, identity, ``gen_random_uuid()``) picks the id.
        self.generated_id = single is not None and (single.default is not None or single.identity)

    # -- ids and values ---------------------------------------------------------------------------

    def _quote(self, name: str) -> str:
        return quote(name)

    def _value(self, column: PgColumn, value: Any, where: str) -> Any:
        """A JSON value as the parameter PostgreSQL stores in ``column``."""
        if value is None:
            return None
        base = column.base
        if base == "jsonb":
            return Jsonb(value)
        if base == "json":
            return Json(value)
        if base == "bytea":
            text = value.get(BLOB_KEY) if isinstance(value, dict) and len(value) == 1 else None
            try:
                if not isinstance(text, str):
                    raise ValueError(value)
                return base64.b64decode(text.encode("ascii"), validate=True)
            except (ValueError, UnicodeEncodeError) as exc:
                raise InvalidParams(
                    f"{where}: column {column.name!r} is bytea; give {{{BLOB_KEY!r}: "
                    "<standard base64 text>}",
                    field=where,
                ) from exc
        if isinstance(value, list):
            if column.category != "A":
                raise InvalidParams(
                    f"{where}: column {column.name!r} of table {self.name!r} is {column.type}, "
                    "not an array",
                    field=where,
                )
            return _array_literal(value)
        if isinstance(value, dict):
            raise InvalidParams(
                f"{where}: column {column.name!r} of table {self.name!r} is {column.type}, which "
                "holds no objects",
                field=where,
            )
        if isinstance(value, bool) and base != "bool":
            raise InvalidParams(
                f"{where}: column {column.name!r} of table {self.name!r} is {column.type}, not "
                "boolean",
                field=where,
            )
        return value

    def _given_key(self, name: str, value: Any, values: dict[str, Any], record_id: Any) -> Any:
        return self._value(self._by_name[name], value, "id")

    def _new_key(self, values: dict[str, Any]) -> None:
        key = self.table.key[0]
        if self.generated_id:
            return
        if self.table.column(key).base not in _UUID_KEYS:
            raise InvalidParams(
                f"id: the key {key!r} of table {self.name!r} has no default; give an id",
                field="id",
            )
        values[key] = str(uuid.uuid4())

    # -- writes -----------------------------------------------------------------------------------

    def update(self, record_id: str, changes: Record) -> Record | None:
        self.check_writable()
        match = self.reader.key_match(record_id)
        if match is None:
            return None
        values = self._columns(changes)
        if any(name in values for name in self.table.key):
            raise self._key_changed(record_id)
        if not values:
            return self.reader.get(self.run, record_id)
        row = self._update_row(values, match)
        return None if row is None else self.reader.record(row)

    # -- refusals ---------------------------------------------------------------------------------

    def _execute(self, statement: str, params: tuple[Any, ...], values: dict[str, Any]) -> Any:
        try:
            return self.run(sql.SQL(statement), params, False)
        except psycopg.Error as exc:
            failure = self._failure(exc, values)
            if failure is None:
                raise  # not the row's fault: the session's translation names it
            raise failure from exc

    def _value_column(self, message: str, column: str | None, values: dict[str, Any]) -> str | None:
        """The column whose value PostgreSQL could not take: the one its error names (``column``,
        or ``column "x"`` in the message), else the one value the message quotes
        (``invalid input syntax for type date: "abc"``), else the one column of the type it names
        (``integer out of range``, ``numeric field overflow``), else the only value written."""
        found = _COLUMN.search(message)
        if column or found:
            return column or found.group(1).replace('""', '"')  # type: ignore[union-attr]
        quoted = _QUOTED.search(message)
        if quoted is not None:
            # The value itself, else the one value holding it (an array's element).
            text = quoted.group(1)
            shown = {n: _text(v) for n, v in values.items() if v is not None}
            for named in ([n for n, t in shown.items() if t == text],
                          [n for n, t in shown.items() if text in t]):  # fmt: skip
                if len(named) == 1:
                    return named[0]
        lowered = message.lower()
        typed = [
            n for n, _ in values.items()
            if any(word in lowered for word in _TYPE_WORDS.get(self._by_name[n].base.lstrip("_"), ()))
        ] if all(n in self._by_name for n in values) else []  # fmt: skip
        if len(typed) == 1:
            return typed[0]
        return next(iter(values)) if len(values) == 1 else None

    def _failure(self, exc: psycopg.Error, values: dict[str, Any]) -> DbHandlesError | None:
        """The error for a refused write; ``values`` are the columns it tried to set."""
        state = exc.sqlstate or ""
        diag = exc.diag
        kind = _STATES.get(state)
        if kind is None:
            if state.startswith("22") or state in ("42804", "428C9"):
                name = self._value_column(diag.message_primary or "", diag.column_name, values)
                where = f"data.{self._field(name)}" if name else "data"
                return InvalidParams(
                    f"{where}: table {self.name!r} cannot store this value: "
                    f"{diag.message_primary or exc}",
                    field=where,
                )
            return None
        constraint = diag.constraint_name
        if kind == "check" and not constraint and "partition" in (diag.message_primary or ""):
            # "no partition of relation ... found for row": no CHECK of the table refused it.
            return self._violation(
                f"no partition of table {self.name!r} takes this record (its partition key "
                "value is outside every partition's range); nothing was written",
                "partition", [], [], None,
            )  # fmt: skip
        known = self.table.constraints.get(constraint or "")
        columns: list[str] = list(known[1]) if known else []
        if kind == "not_null" and diag.column_name:
            columns = [diag.column_name]
        taken = self._key_taken(kind, columns)
        if taken is not None:
            return taken
        referenced = kind == "foreign_key" and diag.table_name not in (None, self.name)
        fields = [self._field(c) for c in columns]
        if referenced:
            why = f"rows of table {diag.table_name!r} refer to this record"
            fields = []
        elif fields:
            why = blame(fields)
        else:
            why = "the record"
        named = f" {constraint!r}" if constraint else ""
        return self._violation(
            f"the {LABELS[kind]} constraint{named} of table {self.name!r} refused the write "
            f"({why}); nothing was written",
            kind, columns, fields, constraint or None,
        )  # fmt: skip
