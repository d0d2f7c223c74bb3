"""Writes to a PostgreSQL table dbhandles did not create: rows through their primary key.

``PostgresSession.table_writer`` hands out a ``PgWriter``; ``documents`` decides what to write and
this module stores it (docs/foreign-tables.md "PostgreSQL writes"):

* a field is a column; a field that is not one, or a generated column, is ``invalid_params`` naming
  it. Values go in as PostgreSQL parses them for the column's type: booleans and null as they are,
  numbers as they are into numeric and text columns, as their text into ``money`` and ``oid``
  (``postgres_foreign_types.number_text``; refused naming the type elsewhere), strings as text
  PostgreSQL reads by the column's type (``"2024-01-01T10:00:00Z"`` into a ``timestamptz``, a UUID's
  text into ``uuid``, ``"12.50"`` into ``numeric``), objects and arrays as JSON into
  ``json``/``jsonb``, objects of a composite's fields (and arrays of them) into composite columns
  as reads show them (``postgres_foreign_types.literal``), arrays into array columns,
  ``{"$base64": "..."}`` into ``bytea``;
* ``id`` is the key: omitted, the key column's default (a ``serial`` or identity column) picks it,
  and a text or ``uuid`` key without a default gets a new UUID4;
* every statement ends in ``RETURNING`` the row as reads show it, so a result (and the row filter
  ``documents`` checks on it) is what was stored;
* a refused write is ``constraint_violation`` naming the constraint and the field (``diag`` of the
  server's error; a domain's refusal names the columns of that domain), a taken key
  ``record_exists``, a value the column cannot hold ``invalid_params``;
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
from dbhandles.adapters.foreign_numbers import pg_number
from dbhandles.adapters.foreign_values import BLOB_KEY, inexact_value
from dbhandles.adapters.foreign_writer import LABELS, ForeignWriterBase, blame
from dbhandles.adapters.postgres_capacity import over_capacity
from dbhandles.adapters.postgres_errors import raised_by_raise, translate_error
from dbhandles.adapters.postgres_foreign import PgReader, Run
from dbhandles.adapters.postgres_foreign_schema import PgColumn, PgTable
from dbhandles.adapters.postgres_foreign_sql import quote
from dbhandles.adapters.postgres_foreign_types import (
    PgType,
    column_type,
    domain_paths,
    literal,
    number_text,
    type_form,
)
from dbhandles.errors import DbHandlesError, InvalidParams, QueryFailed
from dbhandles.values import json_text

__all__ = ["PgWriter"]

_STATES = {"23502": "not_null", "23505": "unique", "23514": "check", "23503": "foreign_key",
           "23P01": "exclusion"}  # fmt: skip
#: Key types a new record without an id gets a UUID4 in (when the key has no default).
_UUID_KEYS = frozenset({"text", "varchar", "uuid"})
_COLUMN = re.compile(r'column "((?:[^"]|"")+)"')
#: The value an ``invalid input`` message quotes (``... for type date: "abc"``).
_QUOTED = re.compile(r':\s*"((?:[^"]|"")*)"\s*$')
#: Words of PostgreSQL's value errors naming a base type (``integer out of range``).
#: Value errors that only evaluating an expression raises, never converting a value sent to its
#: column's type (a division by zero, the logarithm or power of a bad argument, a substring or
#: trim error, a window function's argument): SQL of the table's own (a CHECK, a default, a
#: generated column, a trigger) meeting its data, ``query_failed``.
_EXPRESSION_STATES = frozenset({"22012", "2201E", "2201F", "22011", "22027", "22014", "22016",
                                "2202H", "22013", "2201G", "22019", "2200F", "22010"})  # fmt: skip
#: ``invalid input syntax for type integer: "abc"``: the type a text was being read as.
_INPUT_TYPE = re.compile(r"invalid input syntax for type ([a-z ]+?)(?:\(|:|$)")
#: Column types that take any text: reading a text as one of them never fails its syntax.
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "citext"})
_TYPE_WORDS = {
    "int2": ("smallint",), "int4": ("integer",), "int8": ("bigint",),
    "numeric": ("numeric",), "float4": ("real",), "float8": ("double precision",),
    "date": ("date",), "timestamp": ("timestamp",), "timestamptz": ("timestamp",),
    "time": ("time",), "timetz": ("time",), "interval": ("interval",), "uuid": ("uuid",),
    "bool": ("boolean",), "json": ("json",), "jsonb": ("json",), "bytea": ("bytea",),
    "money": ("money",), "oid": ("oid",),
}  # fmt: skip


def _text(value: Any) -> str:
    """A parameter as the text PostgreSQL would quote back in an error."""
    if isinstance(value, Json | Jsonb):
        return str(orjson.dumps(value.obj).decode())
    return str(value)


#: Types whose text input takes ``NaN`` and infinities, which reads show as null (JSON has
#: neither: docs/foreign-tables.md "PostgreSQL types").
_FLOATING = frozenset({"numeric", "float4", "float8"})
#: Those inputs, as PostgreSQL reads them (ignoring case and surrounding blanks).
_NON_FINITE = frozenset({"nan", "infinity", "+infinity", "-infinity", "inf", "+inf", "-inf"})


def _non_finite(value: Any, base: str) -> bool:
    """Whether the string ``value`` is a NaN or an infinity to type ``base``: stored, it would
    read back as null, so the write would not be what reads show."""
    return base in _FLOATING and isinstance(value, str) and value.strip().lower() in _NON_FINITE


#: Array element types that take JSON numbers (PostgreSQL parses their text).
_NUMBER_ELEMENTS = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8", "oid"})
#: Array element types that take any scalar as its text (as their columns take numbers).
_TEXT_ELEMENTS = frozenset({"text", "varchar", "bpchar", "name", "citext"})


def _element_problem(item: Any, element: str) -> str | None:
    """Why the JSON value ``item`` cannot be an element of type ``element`` (``None`` if it can).

    An array literal is text the server parses by the element type, so without this an object
    would be stored as its JSON text in a ``text[]`` and ``1`` as true in a ``boolean[]``.
    """
    if element in ("json", "jsonb") or item is None or isinstance(item, list):
        return None
    if _non_finite(item, element):
        return "a NaN or an infinity (JSON has neither: reads would show null)"
    if isinstance(item, dict):
        return "an object"
    if isinstance(item, bool):
        return None if element == "bool" else "a boolean"
    if isinstance(item, int | float):
        return None if element in _NUMBER_ELEMENTS or element in _TEXT_ELEMENTS else "a number"
    return None  # a string: the server reads it by the element type, and says if it cannot


def _holds_object(value: list[Any]) -> bool:
    """Whether an object is an item of ``value`` or of an array inside it."""
    return any(isinstance(v, dict) or (isinstance(v, list) and _holds_object(v)) for v in value)


def _array_literal(value: list[Any], element: str, type_name: str, refuse: Any) -> str:
    """A PostgreSQL array literal (``{1,"a b",NULL,{2,3}}``) that the server parses by the
    column's ``element`` type (``int4``, ``jsonb``; the column declared ``type_name``);
    ``refuse(item, problem)`` raises the error for an element that type cannot be
    (``_element_problem``), or cannot hold exactly (``foreign_numbers.pg_number``: ``3.5`` in an
    ``integer[]``, ``0.30000000000000004`` in a ``real[]``)."""
    items = []
    for item in value:
        problem = _element_problem(item, element)
        if problem is not None:
            refuse(item, f"{problem}, not {element}")
        if item is None:
            items.append("NULL")
        elif isinstance(item, list):
            items.append(_array_literal(item, element, type_name, refuse))
        else:
            if element in ("json", "jsonb"):
                text = orjson.dumps(item).decode()
            elif isinstance(item, bool):
                text = "true" if item else "false"
            elif isinstance(item, int | float):
                param, problem = pg_number(item, element, type_name, element in _TEXT_ELEMENTS)
                if problem is not None:
                    refuse(item, problem)
                text = str(param)
            else:
                text = str(item)
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


#: Types whose values a record may show normalised (``PgWriter.inexact``).
_INEXACT_TYPES = frozenset({"json", "jsonb", "float4", "float8", "numeric"})
#: The texts of a float or ``numeric`` that JSON has no number for.
_NOT_NUMBERS = frozenset({"NaN", "Infinity", "-Infinity"})


class PgWriter(ForeignWriterBase[PgColumn]):
    """Rows of one foreign table written inside the session's transaction."""

    engine = "PostgreSQL"
    placeholder = "%s"
    table: PgTable
    reader: PgReader

    def __init__(self, run: Run, reader: PgReader) -> None:
        super().__init__(reader.table, reader)
        self._raw_run = run
        key = self.table.key
        single = self.table.column(key[0]) if len(key) == 1 else None
        #: A key column with a default (``serial``, identity, ``gen_random_uuid()``) picks the id.
        self.generated_id = single is not None and (single.default is not None or single.identity)
        #: Column name -> its type as ``postgres_foreign_types`` reads it (composites, arrays of
        #: them), read on the first object written into the column.
        self._types: dict[str, PgType] = {}
        #: Column name -> the object (or array of objects) last written into a composite column,
        #: to tell which of its fields a domain's refusal came from (``_composite_fields``).
        self._objects: dict[str, Any] = {}

    def _type(self, column: PgColumn) -> PgType:
        """The type of ``column`` with a composite's fields (read from the catalog once)."""
        found = self._types.get(column.name)
        if found is None:

            def rows(statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
                return list(self.run(sql.SQL(statement), params, False).fetchall())

            found = self._types[column.name] = column_type(rows, self.table.oid, column.name)
        return found

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
                    f"{where}: column {json_text(column.name, 80)} is bytea; give {{{json_text(BLOB_KEY, 80)}: "
                    "<standard base64 text>}",
                    field=where,
                ) from exc
        if column.category == "C" and not isinstance(value, str):
            # An object of the composite's fields, as reads show it (a string: PostgreSQL's
            # own text, "(2,y)", which the server parses).
            self._objects[column.name] = value
            return literal(value, self._type(column), where)
        if isinstance(value, list) and column.category == "A" and _holds_object(value):
            kind = self._type(column)
            if kind.element is not None and kind.element.fields is not None:
                self._objects[column.name] = value
                return literal(value, kind, where)
        if isinstance(value, list):
            if column.category != "A":
                raise InvalidParams(
                    f"{where}: column {json_text(column.name, 80)} of table {json_text(self.name, 80)} is {column.type}, "
                    "not an array",
                    field=where,
                )

            def refuse(item: Any, problem: str) -> None:
                shown = orjson.dumps(item).decode()
                raise InvalidParams(
                    f"{where}: column {json_text(column.name, 80)} of table {json_text(self.name, 80)} is {column.type}, "
                    f"and an element {shown[:80]} is {problem}",
                    field=where,
                )

            return _array_literal(value, base.removeprefix("_"), column.type, refuse)
        if isinstance(value, dict):
            raise InvalidParams(
                f"{where}: column {json_text(column.name, 80)} of table {json_text(self.name, 80)} is {column.type}, which "
                "holds no objects",
                field=where,
            )
        if isinstance(value, bool):
            if base != "bool":
                raise InvalidParams(
                    f"{where}: column {json_text(column.name, 80)} of table {json_text(self.name, 80)} is {column.type}, not "
                    f"boolean; give {type_form(base, column.category)}",
                    field=where,
                )
            return value
        if isinstance(value, int | float):
            param, problem = pg_number(value, base, column.type, column.category == "S")
            if problem is not None:
                raise InvalidParams(
                    f"{where}: column {json_text(column.name, 80)} of table {json_text(self.name, 80)} is "
                    f"{column.type}, and {_shown_number(value)} is {problem}; nothing was written",
                    field=where,
                )
            if param is not value or column.category == "S":
                return param
            return number_text(value, base, column.category, column.type, where)
        if _non_finite(value, base):
            raise InvalidParams(
                f"{where}: column {json_text(column.name, 80)} of table {json_text(self.name, 80)} is {column.type}, "
                f"and {json_text(value, 40)} would store a NaN or an infinity, which JSON has not: "
                "reads would show null; give a finite number",
                field=where,
            )
        return value

    def _given_key(self, name: str, value: Any, values: dict[str, Any], record_id: Any) -> Any:
        column = self._by_name[name]
        keyed = self._value(column, value, "id")
        if name not in values or values[name] == keyed:
            return keyed
        # The same value may be spelled two ways ("4" and 4, two spellings of a date): PostgreSQL
        # compares them as the column's type, as it would store them.
        given = values[name]
        same = self._execute(
            f"SELECT CAST(%s AS {column.type}) IS NOT DISTINCT FROM CAST(%s AS {column.type})",
            (given, keyed),
            {name: given},
        ).fetchone()[0]
        if not same:
            raise self._key_contradicted(name, given, record_id)
        return keyed

    def _new_key(self, values: dict[str, Any]) -> None:
        key = self.table.key[0]
        if self.generated_id:
            return
        if self.table.column(key).base not in _UUID_KEYS:
            raise InvalidParams(
                f"id: the key {json_text(key, 80)} of table {json_text(self.name, 80)} has no default; give an id",
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
        if not values:
            return self.reader.get(self.run, record_id)
        with self.key_kept(record_id, values):
            row = self._update_row(values, match)
        if row is None:
            return None
        # Setting a key column to the value it has is no change (as on SQLite): only a new key is
        # refused, seen as the row no longer being where the id says (the session rolls back).
        if any(name in values for name in self.table.key) and (
            self.reader.get(self.run, record_id) is None
        ):
            raise self._key_changed(record_id)
        return self.reader.record(row)

    def inexact(self, record_id: str) -> tuple[str, Any, str] | None:
        """The first column of row ``record_id`` its record does not show exactly: a ``json`` or
        ``jsonb`` text repeating a key or spelling a number a double rounds
        (``foreign_values.inexact_value``), a float or ``numeric`` NaN or infinity (served as
        null). ``(field, the stored value's text, why)``; ``None`` when every value is exact."""
        match = self.reader.key_match(record_id)
        columns = [c for c in self.table.columns if c.base in _INEXACT_TYPES]
        if match is None or not columns:
            return None
        where, params = match
        texts = ", ".join(f"{quote(c.name)}::text" for c in columns)
        row = self._execute(
            f"SELECT {texts} FROM {self.reader.source} WHERE {where} LIMIT 1", params, {}
        ).fetchone()
        for column, text in zip(columns, row or (), strict=False):
            if text in _NOT_NUMBERS and column.base not in ("json", "jsonb"):
                return column.field, text, "is not a number JSON can hold (served as null)"
            why = None if column.base not in ("json", "jsonb") else inexact_value(text)
            if why is not None:
                return column.field, text, why
        return None

    # -- refusals ---------------------------------------------------------------------------------

    def run(self, statement: sql.SQL, params: tuple[Any, ...], timed: bool) -> Any:
        """``Run`` with driver errors translated here: ``documents`` and ``data/copy`` call a
        writer outside the session's translation, so none may escape (a role lacking a privilege,
        a row-level security policy refusing the row: ``database_denied``)."""
        try:
            return self._raw_run(statement, params, timed)
        except psycopg.Error as exc:
            raise translate_error(exc, collection=self.name) from exc

    def _execute(self, statement: str, params: tuple[Any, ...], values: dict[str, Any]) -> Any:
        try:
            return self._raw_run(sql.SQL(statement), params, False)
        except psycopg.Error as exc:
            failure = self._failure(exc, values)
            raise (
                translate_error(exc, collection=self.name) if failure is None else failure
            ) from exc

    def _value_column(self, message: str, column: str | None, values: dict[str, Any]) -> str | None:
        """The column whose value PostgreSQL could not take: the one its error names (``column``,
        or ``column "x"`` in the message), else a capacity error's column
        (``postgres_capacity.over_capacity``: the first sent value past the length, precision or
        range the message names), else the one value the message quotes
        (``invalid input syntax for type date: "abc"``), else the one column of the type it names
        (``integer out of range``, ``numeric field overflow``), else the only value written."""
        found = _COLUMN.search(message)
        if column or found:
            return column or found.group(1).replace('""', '"')  # type: ignore[union-attr]
        # A value past its type's capacity (a varchar's length, a numeric's precision, an
        # integer's range): the first column whose sent value is past what the message names.
        past = over_capacity(message, self.table.columns, values)
        if past is not None:
            return past
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

    def _sent_failed(self, state: str, name: str | None, diag: Any, values: dict[str, Any]) -> bool:
        """Whether a value error (SQLSTATE class 22) came from converting a value the write sent
        to its column's type (``name``, as ``_value_column`` found it), the caller's mistake;
        else SQL of the table's own (a CHECK, a default, a generated column) failed. A column
        not sent, a state no conversion raises, or a text read as a type its column is not
        (``invalid input syntax for type integer`` for a text column: a cast in the table's SQL)
        is the table's."""
        if state in _EXPRESSION_STATES or (name is not None and name not in values):
            return False
        if name is None:  # a value error no column can be told for: as before, the write's
            return True
        if diag.column_name and diag.column_name not in values:
            return False
        column = self._by_name.get(name)
        typed = _INPUT_TYPE.search((diag.message_primary or "").lower())
        if column is None or typed is None:
            return True
        base = column.base.lstrip("_")
        if base in _TEXT_TYPES:
            return False
        words = _TYPE_WORDS.get(base)
        return words is None or any(word in typed.group(1) for word in words)

    def _own_sql_failed(self, state: str, message: str) -> QueryFailed:
        """``query_failed`` for SQL of the table's own that failed on the written row."""
        return QueryFailed(
            f"SQL of table {json_text(self.name, 80)} (a CHECK constraint, a default, a generated "
            f"column or a trigger) failed while PostgreSQL evaluated it for this write: {message} "
            f"(SQLSTATE {state}); change that SQL or the data it meets (nothing was written)"
        )

    def _domain_columns(self, domain: str, values: dict[str, Any]) -> list[str]:
        """The columns whose values ``domain`` (``schema.name``, from the error's
        ``diag.schema_name`` and ``datatype_name``) checks: of those the write set, else of the
        table (the session's transaction has failed, so the catalog is not asked again: the
        table's description knows its columns' domains)."""
        typed = [c.name for c in self.table.columns if domain in c.domains]
        written = [name for name in typed if name in values]
        return written or typed

    def _composite_fields(self, domain: str, values: dict[str, Any]) -> dict[str, str]:
        """Column -> the dotted path of the field inside it that ``domain`` checks, for the
        composite columns (and arrays of composites) the write set from objects: a domain's
        refusal there comes from a field of the composite (``data.c.a``; inside an array's
        elements, ``data.cs.a``: PostgreSQL does not say which element). The types are those
        read to write the objects (the transaction has failed: nothing is asked again); a
        composite written as PostgreSQL's text, ``"(0,x)"``, is not traced. Of the fields the
        domain checks, the first the object sets (not null) is named: a null passes a CHECK."""
        found: dict[str, str] = {}
        for name in values:
            kind = self._types.get(name)
            while kind is not None and kind.fields is None:
                kind = kind.element  # an array of composites: its elements' fields
            if kind is None or name not in self._objects:
                continue
            paths = domain_paths(kind, domain)
            given = self._objects[name]
            chosen = next((p for p in paths if _sets(given, p)), paths[0] if paths else None)
            if chosen is not None:
                found[name] = ".".join(chosen)
        return found

    def _failure(self, exc: psycopg.Error, values: dict[str, Any]) -> DbHandlesError | None:
        """The error for a refused write; ``values`` are the columns it tried to set."""
        state = exc.sqlstate or ""
        diag = exc.diag
        if raised_by_raise(diag.context or ""):
            return None  # a function's RAISE claiming a constraint's SQLSTATE: query_failed
        kind = _STATES.get(state)
        if kind is None:
            if state.startswith("22") or state in ("42804", "42846", "428C9"):
                name = self._value_column(diag.message_primary or "", diag.column_name, values)
                if state.startswith("22") and not self._sent_failed(state, name, diag, values):
                    return self._own_sql_failed(state, diag.message_primary or str(exc))
                where = f"data.{self._field(name)}" if name else "data"
                return InvalidParams(
                    f"{where}: table {json_text(self.name, 80)} cannot store this value: "
                    f"{diag.message_primary or exc}",
                    field=where,
                )
            return None
        constraint = diag.constraint_name
        if kind == "check" and not constraint and "partition" in (diag.message_primary or ""):
            # "no partition of relation ... found for row": no CHECK of the table refused it.
            return self._violation(
                f"no partition of table {json_text(self.name, 80)} takes this record (its partition key "
                "value is outside every partition's range); nothing was written",
                "partition", [], [], None,
            )  # fmt: skip
        known = self.table.constraints.get(constraint or "")
        columns: list[str] = list(known[1]) if known else []
        inside: dict[str, str] = {}  # column -> the path of the composite field that failed
        if kind == "not_null" and diag.column_name:
            columns = [diag.column_name]
        elif known is None and diag.datatype_name:
            domain = f"{diag.schema_name}.{diag.datatype_name}"
            columns = self._domain_columns(domain, values)
            if not columns:
                inside = self._composite_fields(domain, values)
                # Else a composite written as text: its column (the domain is in its fields).
                composites = (c for c in map(self._by_name.get, values) if c is not None)
                columns = list(inside) or [c.name for c in composites if c.category == "C"]
        taken = self._key_taken(kind, columns)
        if taken is not None:
            return taken
        referenced = kind == "foreign_key" and diag.table_name not in (None, self.name)
        fields = [
            f"{self._field(c)}.{inside[c]}" if c in inside else self._field(c) for c in columns
        ]
        if referenced:
            why = f"rows of table {json_text(diag.table_name, 80)} refer to this record"
            fields = []
        elif fields:
            why = blame(fields)
        else:
            why = "the record"
        named = f" {json_text(constraint, 80)}" if constraint else ""
        if diag.datatype_name and known is None:
            return self._violation(
                f"the {LABELS[kind]} constraint{named} of domain {json_text(diag.datatype_name, 80)} refused "
                f"the write ({why}); nothing was written",
                kind, columns, fields, constraint or None,
            )  # fmt: skip
        return self._violation(
            f"the {LABELS[kind]} constraint{named} of table {json_text(self.name, 80)} refused the write "
            f"({why}); nothing was written",
            kind, columns, fields, constraint or None,
        )  # fmt: skip


def _sets(value: Any, path: tuple[str, ...]) -> bool:
    """Whether the object (or array of objects, at any depth) ``value`` holds a value other than
    null at ``path``."""
    if isinstance(value, list):
        return any(_sets(item, path) for item in value)
    if not path:
        return value is not None
    return isinstance(value, dict) and _sets(value.get(path[0]), path[1:])


def _shown_number(value: int | float) -> str:
    """A JSON number as a message shows it (an integer past 64 bits too, which orjson refuses)."""
    return str(value) if type(value) is int else orjson.dumps(value).decode()
