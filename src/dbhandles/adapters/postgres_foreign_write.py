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

from dbhandles.adapters.base import Record, TableWriter
from dbhandles.adapters.foreign_values import BLOB_KEY, decode_key
from dbhandles.adapters.postgres_foreign import PgReader, Run, read_only_error
from dbhandles.adapters.postgres_foreign_schema import PgColumn
from dbhandles.adapters.postgres_foreign_sql import quote
from dbhandles.errors import ConstraintViolation, DbHandlesError, InvalidParams, RecordExists

__all__ = ["PgWriter"]

_LABELS = {"not_null": "NOT NULL", "unique": "UNIQUE", "check": "CHECK",
           "foreign_key": "FOREIGN KEY", "exclusion": "EXCLUDE"}  # fmt: skip
_STATES = {"23502": "not_null", "23505": "unique", "23514": "check", "23503": "foreign_key",
           "23P01": "exclusion"}  # fmt: skip
#: Key types a new record without an id gets a UUID4 in (when the key has no default).
_UUID_KEYS = frozenset({"text", "varchar", "uuid"})
_COLUMN = re.compile(r'column "((?:[^"]|"")+)"')


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


class PgWriter(TableWriter):
    """Rows of one foreign table written inside the session's transaction."""

    def __init__(self, run: Run, reader: PgReader) -> None:
        self.run = run
        self.reader = reader
        self.table = reader.table
        self.name = self.table.name
        self.reserved = self.table.reserved
        key = self.table.key
        single = self.table.column(key[0]) if len(key) == 1 else None
        #: A key column with a default (``serial``, identity, ``gen_random_uuid()``) picks the id.
        self.generated_id = single is not None and (single.default is not None or single.identity)
        self._by_field = {c.field: c for c in self.table.columns}
        self._by_name = {c.name: c for c in self.table.columns}

    def check_writable(self) -> None:
        if self.table.read_only is not None:
            raise read_only_error(self.table)

    # -- values -----------------------------------------------------------------------------------

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

    def _columns(self, record: Record) -> dict[str, Any]:
        """The record's fields (``id`` aside) as column name -> parameter."""
        out: dict[str, Any] = {}
        for field, value in record.items():
            if field == "id":
                continue
            column = self._by_field.get(field)
            if column is None:
                known = ", ".join(c.field for c in self.table.columns if not c.generated)
                raise InvalidParams(
                    f"data.{field}: table {self.name!r} has no column {field!r} (its fields: "
                    f"{known})",
                    field=f"data.{field}",
                )
            if column.generated:
                raise InvalidParams(
                    f"data.{field}: {column.name!r} is a generated column of table {self.name!r}; "
                    "PostgreSQL computes it",
                    field=f"data.{field}",
                )
            out[column.name] = self._value(column, value, f"data.{field}")
        return out

    def _key_values(self, record_id: str) -> dict[str, Any]:
        key = self.table.key
        if len(key) == 1:
            return {key[0]: record_id}
        values = decode_key(record_id, len(key))
        if values is None:
            raise InvalidParams(
                f"id: {record_id!r} is not a key of table {self.name!r}: its key is compound, and "
                f"an id is the JSON array of the values of {', '.join(key)} in that order "
                '(for example ["a",1])',
                field="id",
            )
        return dict(zip(key, values, strict=True))

    # -- writes -----------------------------------------------------------------------------------

    def insert(self, record: Record) -> Record:
        self.check_writable()
        values = self._columns(record)
        key = self.table.key
        if "id" in record:
            for name, value in self._key_values(str(record["id"])).items():
                column = self._by_name[name]
                values[name] = self._value(column, value, "id")
        elif not all(name in values for name in key):
            if len(key) > 1:
                fields = ", ".join(self._by_name[n].field for n in key)
                raise InvalidParams(
                    f"id: table {self.name!r} has a compound key; give its fields ({fields}) in "
                    "data, or id as the JSON array of their values",
                    field="id",
                )
            if not self.generated_id and self.table.column(key[0]).base in _UUID_KEYS:
                values[key[0]] = str(uuid.uuid4())
            elif not self.generated_id:
                raise InvalidParams(
                    f"id: the key {key[0]!r} of table {self.name!r} has no default; give an id",
                    field="id",
                )
        source, select = self.reader.source, self.reader.select
        if values:
            columns = ", ".join(quote(n) for n in values)
            marks = ", ".join("%s" for _ in values)
            statement = f"INSERT INTO {source} ({columns}) VALUES ({marks}) RETURNING {select}"
        else:
            statement = f"INSERT INTO {source} DEFAULT VALUES RETURNING {select}"
        row = self._execute(statement, tuple(values.values()), values).fetchone()
        return self.reader.record(row)

    def update(self, record_id: str, changes: Record) -> Record | None:
        self.check_writable()
        match = self.reader.key_match(record_id)
        if match is None:
            return None
        values = self._columns(changes)
        if any(name in values for name in self.table.key):
            raise InvalidParams(
                f"data: the key of a record cannot change (record {record_id!r} of table "
                f"{self.name!r}); delete it and create the new one",
                field="data",
            )
        if not values:
            return self.reader.get(self.run, record_id)
        where, params = match
        sets = ", ".join(f"{quote(n)} = %s" for n in values)
        row = self._execute(
            f"UPDATE {self.reader.source} SET {sets} WHERE {where} RETURNING {self.reader.select}",
            (*values.values(), *params),
            values,
        ).fetchone()
        return None if row is None else self.reader.record(row)

    def delete(self, record_id: str) -> bool:
        """Delete the row ``record_id``; ``False`` when there is none."""
        self.check_writable()
        match = self.reader.key_match(record_id)
        if match is None:
            return False
        where, params = match
        cursor = self._execute(f"DELETE FROM {self.reader.source} WHERE {where}", params, {})
        return bool(cursor.rowcount > 0)

    def truncate(self) -> int:
        """Delete every row (``DELETE``, so foreign keys and triggers apply); return how many."""
        self.check_writable()
        return int(self._execute(f"DELETE FROM {self.reader.source}", (), {}).rowcount)

    # -- refusals ---------------------------------------------------------------------------------

    def _execute(self, statement: str, params: tuple[Any, ...], values: dict[str, Any]) -> Any:
        try:
            return self.run(sql.SQL(statement), params, False)
        except psycopg.Error as exc:
            failure = self._failure(exc, values)
            if failure is None:
                raise  # not the row's fault: the session's translation names it
            raise failure from exc

    def _field(self, column: str) -> str:
        found = self._by_name.get(column)
        return column if found is None else found.field

    def _failure(self, exc: psycopg.Error, values: dict[str, Any]) -> DbHandlesError | None:
        """The error for a refused write; ``values`` are the columns it tried to set."""
        state = exc.sqlstate or ""
        diag = exc.diag
        kind = _STATES.get(state)
        if kind is None:
            if state.startswith("22") or state in ("42804", "428C9"):
                # A value the column cannot hold: PostgreSQL names the column in most messages.
                found = _COLUMN.search(diag.message_primary or "")
                name = diag.column_name or (found.group(1).replace('""', '"') if found else None)
                if name is None and len(values) == 1:
                    name = next(iter(values))
                where = f"data.{self._field(name)}" if name else "data"
                return InvalidParams(
                    f"{where}: table {self.name!r} cannot store this value: "
                    f"{diag.message_primary or exc}",
                    field=where,
                )
            return None
        constraint = diag.constraint_name
        known = self.table.constraints.get(constraint or "")
        columns: list[str] = list(known[1]) if known else []
        if kind == "not_null" and diag.column_name:
            columns = [diag.column_name]
        if kind == "unique" and columns and set(columns) == set(self.table.key):
            return RecordExists(
                f"a record with this id already exists in table {self.name!r}", field="id"
            )
        referenced = kind == "foreign_key" and diag.table_name not in (None, self.name)
        fields = [self._field(c) for c in columns]
        details: dict[str, Any] = {"constraint": kind, "table": self.name, "columns": columns}
        if constraint:
            details["name"] = constraint
        if referenced:
            why = f"rows of table {diag.table_name!r} refer to this record"
            fields = []
        elif fields:
            why = "field " + ", ".join(repr(f) for f in fields)
        else:
            why = "the record"
        named = f" {constraint!r}" if constraint else ""
        return ConstraintViolation(
            f"the {_LABELS[kind]} constraint{named} of table {self.name!r} refused the write "
            f"({why}); nothing was written",
            field=f"data.{fields[0]}" if fields else None,
            details=details,
        )
