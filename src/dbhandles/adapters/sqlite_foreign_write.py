"""Writes to an SQLite table dbhandles did not create: rows through their primary key.

``SqliteSession.table_writer`` hands out a ``ForeignWriter`` for a foreign table; ``documents``
decides what to write (ids, timestamps, versions, row filters) and this module stores it
(docs/foreign-tables.md "Writes"):

* a field is a column (``ForeignColumn.field``); a field that is not one, or a generated column, is
  ``invalid_params`` naming it; values become SQLite values by ``foreign_values.sqlite_value``;
* ``id`` is the key: an integer for an ``INTEGER PRIMARY KEY`` (omitted, SQLite picks the next
  rowid), the text of any other single-column key (omitted, a new UUID4), the JSON array of a
  compound key's values (or those columns given as fields);
* after a write the row is selected again (by its rowid, else by its key), so a result (and the
  row filter ``documents`` checks on it) is what was stored, after column affinities and defaults:
  ``RETURNING`` is not used, since SQLite 3.40 hands its values back with the affinity of the
  table's column at the same position (an ``INTEGER PRIMARY KEY`` after a REAL column comes back
  as ``3.0``);
* a broken constraint is ``constraint_violation`` naming the constraint and the field (a taken key
  is ``record_exists``); SQLite undoes the failed statement, the session rolls back the rest.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from typing import Any

from dbhandles.adapters.base import Record
from dbhandles.adapters.foreign_common import ForeignColumn
from dbhandles.adapters.foreign_numbers import (
    key_number_problem,
    sqlite_number,
    sqlite_number_problem,
    sqlite_text_problem,
)
from dbhandles.adapters.foreign_values import inexact_value, sqlite_value
from dbhandles.adapters.foreign_writer import LABELS, ForeignWriterBase, blame
from dbhandles.adapters.sqlite_errors import DRIVER_ERRORS, constraint_failure, translate_error
from dbhandles.adapters.sqlite_foreign import ForeignReader
from dbhandles.adapters.sqlite_foreign_schema import ForeignTable, quote
from dbhandles.errors import DbHandlesError, InvalidParams
from dbhandles.values import json_text

__all__ = ["ForeignWriter"]

#: ``cannot store TEXT value in INTEGER column t.c`` (STRICT tables).
_STRICT = re.compile(r"cannot store (\w+) value in (\w+) column .*\.([^.]+)$")


class ForeignWriter(ForeignWriterBase[ForeignColumn]):
    """Rows of one foreign table written on one connection, inside the session's transaction."""

    engine = "SQLite"
    placeholder = "?"
    table: ForeignTable
    reader: ForeignReader

    def __init__(self, conn: sqlite3.Connection, reader: ForeignReader) -> None:
        super().__init__(reader.table, reader)
        self.conn = conn

    # -- ids and values ---------------------------------------------------------------------------

    def _quote(self, name: str) -> str:
        return quote(name)

    def _value(self, column: ForeignColumn, value: Any, where: str) -> Any:
        if column.pk:
            self._check_key(column, value, where)
        problem = sqlite_number_problem(value, column.type)
        if problem is None and not column.pk and type(value) is str and not self.converting:
            # A key's text is its id's (docs/foreign-tables.md "One rule for ids"): "42" is 42.
            problem = sqlite_text_problem(value, column.type, self._strict(column))
        if problem is not None:
            raise InvalidParams(
                f"{where}: column {json_text(column.name, 80)} of table {json_text(self.name, 80)} is "
                f"declared {json_text(column.type, 40)}, and {json_text(value, 80)} is {problem}; "
                "nothing was written",
                field=where,
            )
        return sqlite_value(sqlite_number(value, column.type), where)

    def _strict(self, column: ForeignColumn) -> bool:
        """Whether the table is ``STRICT``, asked only for a column declared ``ANY`` (which keeps
        text as it is there, and has NUMERIC affinity in any other table)."""
        if column.type.strip().upper() != "ANY":
            return False
        row = self.conn.execute(
            "SELECT strict FROM pragma_table_list WHERE schema = 'main' AND name = ?", (self.name,)
        ).fetchone()
        return bool(row and row[0])

    def _check_key(self, column: ForeignColumn, value: Any, where: str) -> None:
        """Refuse a key value the column's affinity would not store as a key of its type
        (``abc`` or ``1.5`` for a key declared ``int``: stored as text or a REAL, a row no id of
        the table reads as docs/foreign-tables.md "Writes" has it)."""
        problem = None if value is None else key_number_problem(value, column.type)
        if problem is not None:
            raise InvalidParams(
                f"{where}: {json_text(value, 80)} is {problem}, and the key column "
                f"{json_text(column.name, 80)} of table {json_text(self.name, 80)} is declared "
                f"{json_text(column.type, 40)}; give its value as the column's type holds it",
                field=where,
            )

    def _single_key(self, record_id: str) -> Any:
        table = self.table
        if table.integer_key is None:
            self._check_key(self._by_name[table.key[0]], record_id, "id")
            return record_id
        try:
            number = int(record_id)
        except ValueError:
            number = None
        if number is None or str(number) != record_id:
            raise InvalidParams(
                f"id: {json_text(record_id, 80)} is not an integer, and the key of table {json_text(self.name, 80)} "
                f"({json_text(table.key[0], 80)}) is an INTEGER PRIMARY KEY",
                field="id",
            )
        return number

    def _given_key(self, name: str, value: Any, values: dict[str, Any], record_id: Any) -> Any:
        self._check_key(self._by_name[name], value, "id")
        given = values.get(name, value)
        if given != value:
            raise self._key_contradicted(name, given, record_id)
        return value

    def _new_key(self, values: dict[str, Any]) -> None:
        if self.table.integer_key is None:
            values[self.table.key[0]] = str(uuid.uuid4())
        # An INTEGER PRIMARY KEY left out: SQLite picks the next rowid.

    def inexact(self, record_id: str) -> tuple[str, Any, str] | None:
        """The first column of row ``record_id`` its record does not show exactly
        (``foreign_values.inexact_value``): ``(field, stored value as JSON, why)``."""
        match = self.reader.key_match(record_id)
        if match is None:
            return None
        columns = self.table.columns
        selected = ", ".join(quote(c.name) for c in columns)
        where, params = match
        row = self._execute(
            f"SELECT {selected} FROM {self.reader.source} WHERE {where} LIMIT 1", params, {}
        ).fetchone()
        for column, value in zip(columns, row or (), strict=False):
            why = inexact_value(value)
            if why is not None:
                # The stored text itself, or an infinity's text (no JSON number holds it).
                shown = value if isinstance(value, str) else str(value)  # a float's str is its repr
                return column.field, shown, why
        return None

    # -- writes -----------------------------------------------------------------------------------

    def _select_where(self, where: str, params: tuple[Any, ...]) -> Any:
        return self._execute(
            f"SELECT {self.reader.select} FROM {self.reader.source} WHERE {where} LIMIT 1",
            params,
            {},
        ).fetchone()

    def _key_where(self, values: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
        """The WHERE clause selecting the row whose key columns hold ``values`` (the comparison
        applies the columns' affinities, as storing them did)."""
        key = self.table.key
        return (
            " AND ".join(f"{quote(name)} IS ?" for name in key),
            tuple(values.get(name) for name in key),
        )

    def _inserted(self, statement: str, values: dict[str, Any]) -> Any:
        cursor = self._execute(statement, tuple(values.values()), values)
        table = self.table
        rowid = table.rowid or table.integer_key
        if not table.without_rowid and rowid is not None and cursor.lastrowid is not None:
            return self._select_where(f"{rowid} = ?", (cursor.lastrowid,))
        # WITHOUT ROWID (or every rowid name shadowed): the key is in ``values``, since a create
        # without one gives a single text key a new UUID and a compound key needs its columns.
        return self._select_where(*self._key_where(values))

    def update(self, record_id: str, changes: Record) -> Record | None:
        self.check_writable()
        match = self.reader.key_match(record_id)
        if match is None:
            return None
        values = self._columns(changes)
        if not values:
            return self.reader.get(self.conn, record_id)
        where, params = match
        key = self.table.key
        old_key = None
        if any(name in values for name in key):
            old_key = self._execute(
                f"SELECT {', '.join(quote(n) for n in key)} FROM {self.reader.source} "
                f"WHERE {where} LIMIT 1",
                params,
                {},
            ).fetchone()
            if old_key is None:
                return None
        sets = ", ".join(f"{quote(n)} = ?" for n in values)
        with self.key_kept(record_id, values):
            cursor = self._execute(
                f"UPDATE {self.reader.source} SET {sets} WHERE {where}",
                (*values.values(), *params),
                values,
            )
        if cursor.rowcount <= 0:
            return None
        if old_key is None:
            row = self._select_where(where, params)
        else:
            # Setting a key column to the value it has is no change: only a new key is refused
            # (the row is then no longer where its old key was; the session rolls back).
            row = self._select_where(*self._key_where(dict(zip(key, old_key, strict=True))))
            if row is None:
                raise self._key_changed(record_id)
        return None if row is None else self.reader.record(row)

    # -- constraints ------------------------------------------------------------------------------

    def _execute(
        self, statement: str, params: tuple[Any, ...], values: dict[str, Any]
    ) -> sqlite3.Cursor:
        try:
            return self.conn.execute(statement, params)
        except sqlite3.IntegrityError as exc:
            raise self._failure(exc, values) from exc
        except DRIVER_ERRORS as exc:
            # A file that turns out not writable ("attempt to write a readonly database") is
            # ``read_only``, as on the collection path; no driver error escapes.
            raise translate_error(exc, collection=self.name) from exc

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
                f"data.{field}: column {json_text(name, 80)} of table {json_text(self.name, 80)} cannot store {what}",
                field=f"data.{field}",
            )
        parts = constraint_failure(exc)
        if parts is None:
            return translate_error(exc, collection=self.name)
        kind, columns, detail = parts
        taken = self._key_taken(kind, columns)
        if taken is not None:
            return taken
        if kind == "foreign_key":
            columns = self._broken_reference(values)
        elif kind == "check":
            expression = self._check_expression(detail)
            columns = [
                c.name for c in self.table.columns
                if re.search(r"(?<![\w\"])" + re.escape(c.name) + r"(?![\w\"])", expression)
            ]  # fmt: skip
        fields = [self._field(c) for c in columns]
        if kind == "foreign_key" and not values:
            why = "rows of another table refer to this record"
        elif fields:
            why = blame(fields)
        else:
            why = detail or "the record"
        return self._violation(
            f"a {LABELS[kind]} constraint of table {json_text(self.name, 80)} refused the write ({why}"
            f"{': ' + detail if kind == 'check' else ''}); nothing was written",
            kind, columns, fields, detail if kind == "check" else None,
        )  # fmt: skip

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
