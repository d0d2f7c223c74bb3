"""What writes to every engine's tables dbhandles did not create share: fields, keys, deletes, refusals.

``ForeignWriterBase`` is the part of ``sqlite_foreign_write.ForeignWriter`` and
``postgres_foreign_write.PgWriter`` that does not depend on the engine (docs/foreign-tables.md
"Writes"): a field is a column (one that is not, or a generated column, is ``invalid_params``
naming it), an ``id`` is the key (the JSON array of a compound key's values), ``insert``,
``delete`` and ``truncate`` are the same statements, and a refused write is built the same way.
An engine says how a value becomes a parameter, how an id fills a key, how a statement runs and
what a refusal means.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import orjson

from dbhandles.adapters.base import Record, TableWriter
from dbhandles.adapters.foreign_common import DescribedTable, ForeignColumn, read_only_error
from dbhandles.adapters.foreign_values import decode_key
from dbhandles.errors import ConstraintViolation, InvalidParams, RecordExists
from dbhandles.values import MAX_VERSION, json_text

__all__ = ["LABELS", "ForeignRows", "ForeignWriterBase", "WritableTable", "blame", "stored_version"]

#: A constraint kind as SQL spells it, for messages.
LABELS = {"not_null": "NOT NULL", "unique": "UNIQUE", "check": "CHECK",
          "foreign_key": "FOREIGN KEY", "exclusion": "EXCLUDE"}  # fmt: skip

ColumnT = TypeVar("ColumnT", bound=ForeignColumn)
ColumnT_co = TypeVar("ColumnT_co", bound=ForeignColumn, covariant=True)


class WritableTable(DescribedTable, Protocol[ColumnT_co]):
    """A described table whose columns are of one engine's column type."""

    @property
    def columns(self) -> Sequence[ColumnT_co]: ...


class ForeignRows(Protocol):
    """The reader a writer finds rows and shows them with."""

    @property
    def relation(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def select(self) -> str: ...
    def key_match(self, record_id: str) -> tuple[str, tuple[Any, ...]] | None: ...
    def record(self, row: tuple[Any, ...]) -> Record: ...


def blame(fields: list[str]) -> str:
    """The fields a refusal names, for its message (``field 'a', 'b'``)."""
    return "field " + ", ".join(json_text(f, 80) for f in fields)


def stored_version(value: Any, record_id: str, table: str) -> int:
    """The version a row of a table dbhandles did not create is at, from its ``version`` column.

    NULL is 0, "not versioned yet": a nullable version column is one that other programs may
    leave empty (a NOT NULL one never holds it), and dbhandles' first update sets 1. Anything
    else that is not an integer from 1 to ``MAX_VERSION`` (text such as ``'abc'``, a real, a
    negative or too large number) is not a version dbhandles wrote, and overwriting it would lose
    it: the write is refused (docs/foreign-tables.md "Versions and timestamps").

    Raises:
        InvalidParams: ``field`` ``version``, naming the record, the table and the value.
    """
    if value is None:
        return 0
    if type(value) is int and 1 <= value <= MAX_VERSION:
        return value
    shown = json_text(value, 80) if isinstance(value, str) else orjson_text(value)
    raise InvalidParams(
        f"version: record {json_text(record_id, 80)} of table {json_text(table, 80)} holds {shown} in its version column, "
        f"not a version (an integer from 1 to {MAX_VERSION}); dbhandles will not overwrite it: "
        "set the column to an integer (or NULL) with the database's own tools first",
        field="version",
    )


def orjson_text(value: Any) -> str:
    """``value`` as compact JSON text, for a message (never a Python repr such as ``None``)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class ForeignWriterBase(TableWriter, Generic[ColumnT]):
    """Rows of one foreign table written inside the session's transaction (see the module)."""

    #: Who computes a generated column, in the error refusing a value for one.
    engine: ClassVar[str]
    #: How a statement marks a parameter.
    placeholder: ClassVar[str]

    def __init__(self, table: WritableTable[ColumnT], reader: ForeignRows) -> None:
        self.table = table
        self.reader = reader
        self.name = table.name
        self.reserved = table.reserved
        self._by_field: dict[str, ColumnT] = {c.field: c for c in table.columns}
        self._by_name: dict[str, ColumnT] = {c.name: c for c in table.columns}
        #: Whether a string the column would store as a number (SQLite's numeric affinities:
        #: ``"007"`` as 7) is written so, for a caller that compares what was stored and reports
        #: it (``data/copy``'s ``changes``, docs/copy.md "Value-preserving"), instead of refused.
        self.converting = False

    def check_writable(self) -> None:
        if self.table.read_only is not None:
            raise read_only_error(self.table)

    # -- what an engine says ----------------------------------------------------------------------

    @abstractmethod
    def _quote(self, name: str) -> str:
        """``name`` as an SQL identifier."""

    @abstractmethod
    def _value(self, column: ColumnT, value: Any, where: str) -> Any:
        """A JSON value as the parameter the engine stores in ``column`` (``where`` names it)."""

    @abstractmethod
    def _given_key(self, name: str, value: Any, values: dict[str, Any], record_id: Any) -> Any:
        """The parameter of key column ``name`` whose value the id a create gives says
        (``values``: the columns the create's fields set)."""

    @abstractmethod
    def _new_key(self, values: dict[str, Any]) -> None:
        """Set the single-column key a create gives no value for (or leave it to the database)."""

    @abstractmethod
    def _execute(self, statement: str, params: tuple[Any, ...], values: dict[str, Any]) -> Any:
        """Run ``statement``, returning its cursor; a refused write raises the error naming it
        (``values``: the columns the write tried to set)."""

    def _single_key(self, record_id: str) -> Any:
        """The value of a single-column key that ``record_id`` stands for."""
        return record_id

    # -- ids and fields ---------------------------------------------------------------------------

    def _key_values(self, record_id: str) -> dict[str, Any]:
        """The key's columns and values that ``record_id`` stands for (column name -> value)."""
        key = self.table.key
        if len(key) == 1:
            return {key[0]: self._single_key(record_id)}
        values = decode_key(record_id, len(key))
        if values is None:
            raise InvalidParams(
                f"id: {json_text(record_id, 80)} is not a key of table {json_text(self.name, 80)}: its key is compound, and "
                f"an id is the JSON array of the values of {', '.join(key)} in that order "
                '(for example ["a",1])',
                field="id",
            )
        return dict(zip(key, values, strict=True))

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
                    f"data.{field}: table {json_text(self.name, 80)} has no column {json_text(field, 80)} (its fields: "
                    f"{known})",
                    field=f"data.{field}",
                )
            if column.generated:
                raise InvalidParams(
                    f"data.{field}: {json_text(column.name, 80)} is a generated column of table {json_text(self.name, 80)}; "
                    f"{self.engine} computes it",
                    field=f"data.{field}",
                )
            out[column.name] = self._value(column, value, f"data.{field}")
        return out

    def _field(self, column: str) -> str:
        """The field a column is served as (a name that is no column as it is)."""
        found = self._by_name.get(column)
        return column if found is None else found.field

    # -- writes -----------------------------------------------------------------------------------

    def insert(self, record: Record) -> Record:
        self.check_writable()
        values = self._columns(record)
        key = self.table.key
        if "id" in record:
            for name, value in self._key_values(str(record["id"])).items():
                values[name] = self._given_key(name, value, values, record["id"])
        elif not all(name in values for name in key):
            if len(key) > 1:
                fields = ", ".join(self._by_name[n].field for n in key)
                raise InvalidParams(
                    f"id: table {json_text(self.name, 80)} has a compound key; give its fields ({fields}) in "
                    "data, or id as the JSON array of their values",
                    field="id",
                )
            self._new_key(values)
        source = self.reader.relation  # PostgreSQL's ``source`` says ONLY, which INSERT refuses
        if values:
            columns = ", ".join(self._quote(n) for n in values)
            marks = ", ".join(self.placeholder for _ in values)
            statement = f"INSERT INTO {source} ({columns}) VALUES ({marks})"
        else:
            statement = f"INSERT INTO {source} DEFAULT VALUES"
        return self.reader.record(self._inserted(statement, values))

    def _inserted(self, statement: str, values: dict[str, Any]) -> Any:
        """Run the ``INSERT`` ``statement`` of ``values``; the row as stored (as ``select``
        reads it): by ``RETURNING``, unless an engine cannot trust that."""
        return self._execute(
            f"{statement} RETURNING {self.reader.select}", tuple(values.values()), values
        ).fetchone()

    def _update_row(self, values: dict[str, Any], match: tuple[str, tuple[Any, ...]]) -> Any:
        """Set ``values`` on the row ``match`` selects; the row as stored, ``None`` if none."""
        where, params = match
        sets = ", ".join(f"{self._quote(n)} = {self.placeholder}" for n in values)
        return self._execute(
            f"UPDATE {self.reader.source} SET {sets} WHERE {where} RETURNING {self.reader.select}",
            (*values.values(), *params),
            values,
        ).fetchone()

    @contextmanager
    def key_kept(self, record_id: str, values: dict[str, Any]) -> Iterator[None]:
        """Around an update setting ``values``: a new key that another row holds (the key's
        uniqueness refusing it, ``record_exists``) is the key change it is, ``invalid_params`` on
        ``data`` as for a free key, so the answer does not depend on which keys exist (nothing is
        written either way: the statement failed and the session rolls back)."""
        try:
            yield
        except RecordExists as exc:
            if any(name in values for name in self.table.key):
                raise self._key_changed(record_id) from exc
            raise

    def _key_changed(self, record_id: str) -> InvalidParams:
        return InvalidParams(
            f"data: the key of a record cannot change (record {json_text(record_id, 80)} of table "
            f"{json_text(self.name, 80)}); delete it and create the new one",
            field="data",
        )

    def _key_contradicted(self, name: str, given: Any, record_id: Any) -> InvalidParams:
        """The error for a create whose field of key column ``name`` holds ``given``, another
        value than its id gives that column (every engine refuses it rather than pick one)."""
        field = self._by_name[name].field
        return InvalidParams(
            f"data.{field}: {json_text(given, 80)} is not the key value the id {json_text(record_id, 80)} gives it",
            field=f"data.{field}",
        )

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

    def _key_taken(self, kind: str, columns: list[str]) -> RecordExists | None:
        """``record_exists`` when the constraint that refused a write is the key's uniqueness."""
        if kind == "unique" and columns and set(columns) == set(self.table.key):
            return RecordExists(
                f"a record with this id already exists in table {json_text(self.name, 80)}",
                field="id",
            )
        return None

    def _violation(
        self, message: str, kind: str, columns: list[str], fields: list[str], name: str | None
    ) -> ConstraintViolation:
        """The ``constraint_violation`` of a refused write: ``field`` is the first of ``fields``,
        the details name the constraint's kind, table, columns and (when known) ``name``."""
        details: dict[str, Any] = {"constraint": kind, "table": self.name, "columns": columns}
        if name is not None:
            details["name"] = name
        return ConstraintViolation(
            message, field=f"data.{fields[0]}" if fields else None, details=details
        )
