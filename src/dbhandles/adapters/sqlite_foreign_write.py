"""Writes to an SQLite table dbhandles did not create: rows through their primary key.

``SqliteSession.table_writer`` hands out a ``ForeignWriter`` for a foreign table; ``documents``
decides what to write (ids, timestamps, versions, row filters) and this module stores it
(docs/foreign-tables.md "Writes"):

* a field is a column (``ForeignColumn.field``); a field that is not one, or a generated column, is
  ``invalid_params`` naming it; values become SQLite values by ``foreign_values.sqlite_value``;
* ``id`` is the key: an integer for an ``INTEGER PRIMARY KEY`` (omitted, SQLite picks the next
  rowid), the text of any other single-column key (omitted, a new UUID4), the JSON array of a
  compound key's values (or those columns given as fields);
* every statement ends in ``RETURNING`` the row as reads show it, so a result (and the row filter
  ``documents`` checks on it) is what was stored, after column affinities and defaults;
* a broken constraint is ``constraint_violation`` naming the constraint and the field (a taken key
  is ``record_exists``); SQLite undoes the failed statement, the session rolls back the rest.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from typing import Any

from dbhandles.adapters.base import Record, TableWriter
from dbhandles.adapters.foreign_values import decode_key, sqlite_value
from dbhandles.adapters.sqlite_errors import constraint_failure
from dbhandles.adapters.sqlite_foreign import ForeignReader, read_only_error
from dbhandles.adapters.sqlite_foreign_schema import ForeignColumn, quote
from dbhandles.errors import (
    ConstraintViolation,
    DbHandlesError,
    InvalidParams,
    RecordExists,
)

__all__ = ["ForeignWriter"]

_LABELS = {"not_null": "NOT NULL", "unique": "UNIQUE", "check": "CHECK",
           "foreign_key": "FOREIGN KEY"}  # fmt: skip
#: ``cannot store TEXT value in INTEGER column t.c`` (STRICT tables).
_STRICT = re.compile(r"cannot store (\w+) value in (\w+) column .*\.([^.]+)$")


class ForeignWriter(TableWriter):
    """Rows of one foreign table written on one connection, inside the session's transaction."""

    def __init__(self, conn: sqlite3.Connection, reader: ForeignReader) -> None:
        self.conn = conn
        self.reader = reader
        self.table = reader.table
        self.name = self.table.name
        self.reserved = self.table.reserved
        self._by_field: dict[str, ForeignColumn] = {c.field: c for c in self.table.columns}
        self._by_name: dict[str, ForeignColumn] = {c.name: c for c in self.table.columns}

    def check_writable(self) -> None:
        if self.table.read_only is not None:
            raise read_only_error(self.table)

    # -- ids and fields ---------------------------------------------------------------------------

    def _key_values(self, record_id: str) -> dict[str, Any]:
        """The key's columns and values that ``record_id`` stands for (column name -> value)."""
        table = self.table
        if len(table.key) == 1:
            if table.integer_key is None:
                return {table.key[0]: record_id}
            try:
                number = int(record_id)
            except ValueError:
                number = None
            if number is None or str(number) != record_id:
                raise InvalidParams(
                    f"id: {record_id!r} is not an integer, and the key of table {self.name!r} "
                    f"({table.key[0]!r}) is an INTEGER PRIMARY KEY",
                    field="id",
                )
            return {table.key[0]: number}
        values = decode_key(record_id, len(table.key))
        if values is None:
            raise InvalidParams(
                f"id: {record_id!r} is not a key of table {self.name!r}: its key is compound, and "
                f"an id is the JSON array of the values of {', '.join(table.key)} in that order "
                '(for example ["a",1])',
                field="id",
            )
        return dict(zip(table.key, values, strict=True))

    def _columns(self, record: Record) -> dict[str, Any]:
        """The record's fields (``id`` aside) as column name -> SQLite value."""
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
                    "SQLite computes it",
                    field=f"data.{field}",
                )
            out[column.name] = sqlite_value(value, f"data.{field}")
        return out

    # -- writes -----------------------------------------------------------------------------------

    def insert(self, record: Record) -> Record:
        self.check_writable()
        values = self._columns(record)
        key = self.table.key
        if "id" in record:
            for name, value in self._key_values(str(record["id"])).items():
                given = values.get(name, value)
                if given != value:
                    field = self._by_name[name].field
                    raise InvalidParams(
                        f"data.{field}: {given!r} is not the key value the id {record['id']!r} "
                        "gives it",
                        field=f"data.{field}",
                    )
                values[name] = value
        elif not all(name in values for name in key):
            if len(key) > 1:
                fields = ", ".join(self._by_name[n].field for n in key)
                raise InvalidParams(
                    f"id: table {self.name!r} has a compound key; give its fields ({fields}) in "
                    "data, or id as the JSON array of their values",
                    field="id",
                )
            if self.table.integer_key is None:
                values[key[0]] = str(uuid.uuid4())
            # An INTEGER PRIMARY KEY left out: SQLite picks the next rowid.
        names = list(values)
        if names:
            columns = ", ".join(quote(n) for n in names)
            marks = ", ".join("?" for _ in names)
            sql = f"INSERT INTO {self.reader.source} ({columns}) VALUES ({marks})"
        else:
            sql = f"INSERT INTO {self.reader.source} DEFAULT VALUES"
        row = self._run(f"{sql} RETURNING {self.reader.select}", tuple(values.values()), values)
        return self.reader.record(row)

    def update(self, record_id: str, changes: Record) -> Record | None:
        self.check_writable()
        match = self.reader.key_match(record_id)
        if match is None:
            return None
        values = self._columns(changes)
        if not values:
            return self.reader.get(self.conn, record_id)
        where, params = match
        sets = ", ".join(f"{quote(n)} = ?" for n in values)
        row = self._run(
            f"UPDATE {self.reader.source} SET {sets} WHERE {where} RETURNING {self.reader.select}",
            (*values.values(), *params),
            values,
        )
        if row is None:
            return None
        record = self.reader.record(row)
        if any(name in values for name in self.table.key) and str(record["id"]) != record_id:
            raise InvalidParams(
                f"data: the key of a record cannot change (record {record_id!r} of table "
                f"{self.name!r}); delete it and create the new one",
                field="data",
            )
        return record

    def delete(self, record_id: str) -> bool:
        """Delete the row ``record_id``; ``False`` when there is none."""
        self.check_writable()
        match = self.reader.key_match(record_id)
        if match is None:
            return False
        where, params = match
        cursor = self._execute(f"DELETE FROM {self.reader.source} WHERE {where}", params, {})
        return cursor.rowcount > 0

    def truncate(self) -> int:
        """Delete every row; return how many."""
        self.check_writable()
        return self._execute(f"DELETE FROM {self.reader.source}", (), {}).rowcount

    # -- constraints ------------------------------------------------------------------------------

    def _run(self, sql: str, params: tuple[Any, ...], values: dict[str, Any]) -> Any:
        return self._execute(sql, params, values).fetchone()

    def _execute(self, sql: str, params: tuple[Any, ...], values: dict[str, Any]) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise self._failure(exc, values) from exc

    def _failure(self, exc: sqlite3.IntegrityError, values: dict[str, Any]) -> DbHandlesError:
        """The error for a refused write; ``values`` are the columns it tried to set."""
        strict = _STRICT.search(str(exc))
        if strict is not None or "datatype mismatch" in str(exc):
            name = strict.group(3) if strict is not None else self.table.key[0]
            field = self._field(name)
            what = (
                f"a {strict.group(1)} value"
                if strict is not None
                else "a value that is not an integer"
            )
            return InvalidParams(
                f"data.{field}: column {name!r} of table {self.name!r} cannot store {what}",
                field=f"data.{field}",
            )
        parts = constraint_failure(exc)
        if parts is None:
            raise exc  # not a constraint: the session's translation names it
        kind, columns, detail = parts
        if kind == "unique" and columns and set(columns) == set(self.table.key):
            return RecordExists(f"a record with this id already exists in table {self.name!r}",
                                field="id")  # fmt: skip
        if kind == "foreign_key":
            columns = self._broken_reference(values)
        elif kind == "check":
            expression = self._check_expression(detail)
            columns = [
                c.name for c in self.table.columns
                if re.search(r"(?<![\w\"])" + re.escape(c.name) + r"(?![\w\"])", expression)
            ]  # fmt: skip
        fields = [self._field(c) for c in columns]
        details: dict[str, Any] = {"constraint": kind, "table": self.name, "columns": columns}
        if kind == "check":
            details["name"] = detail
        if kind == "foreign_key" and not values:
            why = "rows of another table refer to this record"
        elif fields:
            why = "field " + ", ".join(repr(f) for f in fields)
        else:
            why = detail or "the record"
        return ConstraintViolation(
            f"a {_LABELS[kind]} constraint of table {self.name!r} refused the write ({why}"
            f"{': ' + detail if kind == 'check' else ''}); nothing was written",
            field=f"data.{fields[0]}" if fields else None,
            details=details,
        )

    def _check_expression(self, detail: str) -> str:
        """The expression of the CHECK SQLite reported: ``detail`` is it, or the constraint's
        name, whose expression is then read from the table's ``CREATE TABLE`` text."""
        row = self.conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (self.name,)
        ).fetchone()
        found = None if row is None else re.search(
            r"CONSTRAINT\s+[\"`\[]?" + re.escape(detail) + r"[\"`\]]?\s+CHECK\s*\(", row[0], re.I
        )  # fmt: skip
        if found is None:
            return detail
        sql: str = row[0]
        depth, start = 1, found.end()
        for end in range(start, len(sql)):
            depth += {"(": 1, ")": -1}.get(sql[end], 0)
            if depth == 0:
                return sql[start:end]
        return detail

    def _field(self, column: str) -> str:
        found = self._by_name.get(column)
        return column if found is None else found.field

    def _broken_reference(self, values: dict[str, Any]) -> list[str]:
        """The columns of the first foreign key whose new values have no parent row."""
        for key in self.table.foreign_keys:
            columns: list[str] = key["columns"]
            if not all(values.get(c) is not None for c in columns):
                continue
            parent: str = key["table"]
            references: list[str | None] = key["references"]
            if any(r is None for r in references):  # REFERENCES parent: its primary key
                references = [
                    name for (name,) in self.conn.execute(
                        "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (parent,)
                    )
                ]  # fmt: skip
            tests = " AND ".join(f"{quote(str(r))} = ?" for r in references)
            try:
                found = self.conn.execute(
                    f"SELECT 1 FROM {quote(parent)} WHERE {tests} LIMIT 1",
                    tuple(values[c] for c in columns),
                ).fetchone()
            except sqlite3.Error:
                continue  # a parent that is not there at all: keep looking, then say less
            if found is None:
                return columns
        return []
