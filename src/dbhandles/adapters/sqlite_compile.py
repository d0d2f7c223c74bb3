"""SQLite's filter compiler pieces: ``SqliteDialect``, the JSON1 fragments ``SqlCompiler`` assembles."""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Mapping

from dbhandles.adapters.sql_dialect import Dialect, sql_string
from dbhandles.errors import InvalidFilter
from dbhandles.filters import Scalar, check_collection_path
from dbhandles.values import json_text

__all__ = ["SqliteDialect", "SqliteElement", "indexed_paths", "sqlite_bind"]

#: A JSON path literal in an index's SQL (``json_extract(data, '$.a.b')``).
_PATH_LITERAL = re.compile(r"'(\$[^']*)'")


_SQLITE_KINDS: Mapping[int, tuple[str, ...]] = {
    1: ("true", "false"),
    2: ("integer", "real"),
    3: ("text",),
    4: ("array", "object"),
}


def sqlite_bind(value: Scalar) -> object:
    """``value`` as SQLite takes it: a boolean as 0 or 1; an integer outside SQLite's 64 bits
    (which ``sqlite3`` cannot bind: ``OverflowError``) as the nearest double, or an infinity past
    the doubles, which is how SQLite's JSON functions read such a number in a text (a served
    row's value in a keyset position, ``SqlCompiler.after``)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        try:
            return float(value)
        except OverflowError:
            return math.copysign(math.inf, value)
    return value


def _container(alias: str) -> str:
    """The JSON text of the ``json_each`` row ``alias`` when it is an array or an object, else NULL
    (``json_each`` gives a string element as plain text, which is not JSON)."""
    return f"(CASE WHEN {alias}.type IN ('array', 'object') THEN {alias}.value END)"


def _json_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path)


def indexed_paths(conn: sqlite3.Connection) -> frozenset[str]:
    """The JSON paths (``$.a.b``) that some index of the file (any table, any tool) names in a
    ``json_extract``: the fields whose filters keep the branches such an index serves
    (``SqliteDialect.rows_of``). Generous on purpose: a path named anywhere in such an index counts."""
    rows = conn.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'index' AND sql LIKE '%json_extract%'"
    ).fetchall()
    return frozenset(path for (sql,) in rows for path in _PATH_LITERAL.findall(str(sql)))


class SqliteDialect(Dialect):
    """SQLite's JSON1 functions over the ``data`` text column.

    ``json_type`` names the kind of a value ('null', 'true', 'false', 'integer', 'real', 'text',
    'array', 'object') and is NULL when the path is missing; ``json_extract`` gives booleans as 0/1,
    numbers and strings as themselves and containers as JSON text. One ``json_extract`` expression
    per path serves every rank, so one expression index serves every comparison.
    """

    placeholder = "?"
    arrays = True
    # json_extract gives numbers and booleans as SQL numbers, strings as text, containers as JSON.
    typed_text = True
    # A collection's numbers are 64-bit integers and doubles (wide_integers.double_bounds).
    wide_integers = "doubles"

    def __init__(
        self,
        column: str = "data",
        depth: int = 0,
        *,
        record: bool | None = None,
        indexed: frozenset[str] | None = None,
    ) -> None:
        self.column = column
        self.depth = depth
        #: Whether ``column`` is a collection's record (its ``data``, or that read canonically).
        self.record = column == "data" if record is None else record
        #: The JSON paths some index of the file names (``indexed_paths``); ``None`` when unknown.
        self.indexed = indexed

    def _path(self, path: tuple[str, ...]) -> str:
        # At the record's root (a collection's ``data``) the first part is a field, never an index.
        check_collection_path(path, top=self.record and not self.depth)
        return sql_string(_json_path(path))

    def _elements(self, path: tuple[str, ...]) -> str:
        """``json_each`` over the field (only used where the field is known to be an array)."""
        return f"json_each({self.column}, {self._path(path)})"

    def _type(self, path: tuple[str, ...]) -> str:
        return f"json_type({self.column}, {self._path(path)})"

    def bind(self, value: Scalar) -> object:
        return sqlite_bind(value)

    def value(self, path: tuple[str, ...], rank: int) -> str:
        return f"json_extract({self.column}, {self._path(path)})"

    def has_rank(self, path: tuple[str, ...], ranks: tuple[int, ...]) -> str:
        kinds = ", ".join(f"'{k}'" for r in ranks for k in _SQLITE_KINDS[r])
        return f"COALESCE({self._type(path)}, 'null') IN ({kinds})"

    def is_missing(self, path: tuple[str, ...]) -> str:
        # json_extract is NULL exactly for a missing path and for JSON null.
        return f"{self.value(path, 0)} IS NULL"

    def rank(self, path: tuple[str, ...]) -> str:
        whens = " ".join(
            f"WHEN '{kind}' THEN {r}" for r, kinds in _SQLITE_KINDS.items() for kind in kinds
        )
        return f"(CASE {self._type(path)} {whens} ELSE 0 END)"

    def sort_values(self, path: tuple[str, ...]) -> tuple[str, ...]:
        # Containers would otherwise sort by their JSON text; the oracle holds them all equal.
        return (
            f"(CASE WHEN {self.has_rank(path, (4,))} THEN NULL ELSE {self.value(path, 0)} END)",
        )

    def regex(self, text_sql: str) -> str:
        return f"regexp(?, {text_sql})"

    def substring(self, text_sql: str) -> str:
        return f"instr({text_sql}, ?) > 0"

    def array_has(self, path: tuple[str, ...], rank: int) -> str:
        kinds = ", ".join(f"'{k}'" for k in _SQLITE_KINDS[rank])
        m = self.alias("m")
        # json_each on a scalar yields the scalar itself, so the array guard is not optional.
        return (
            f"{self.is_kind(path, 'array')} AND EXISTS (SELECT 1 FROM {self._elements(path)} AS {m} "
            f"WHERE {m}.type IN ({kinds}) AND {m}.value = ?)"
        )

    def is_kind(self, path: tuple[str, ...], kind: str) -> str:
        return f"COALESCE({self._type(path)}, 'null') = '{kind}'"

    def size(self, path: tuple[str, ...]) -> str:
        return f"{self.is_kind(path, 'array')} AND json_array_length({self.column}, {self._path(path)}) = ?"

    def rows_of(self, path: tuple[str, ...], alias: str) -> tuple[str, str] | None:
        # json_each reads the record's text again (SQLite keeps no parsed copy for it, as it does
        # for json_type and json_extract): testing the field's kind first, then reading its
        # elements, parsed every record twice. A row's key tells the shape instead: an integer for
        # an element of an array, the member's name for an object, NULL for a scalar. Only where
        # the file has no index on the path, whose branches ``_through`` keeps for the planner.
        if self.depth or not self.record or self.indexed is None or len(path) != 2:
            return None
        if path[1].isdigit() or _json_path(path) in self.indexed:
            return None
        self._path(path)  # validates the parts
        return f"typeof({alias}.key) = 'integer'", f"{alias}.key = {sql_string(path[1])}"

    def index_hint(self, path: tuple[str, ...], kind: str) -> str:
        if self.depth:
            return "1"  # no index reaches inside a subquery
        value = self.value(path, 0)
        if kind == "array":  # json_extract gives an array as its JSON text, '[' first
            return f"{value} >= '[' AND {value} < '\\'"
        return f"{value} IS NULL"

    # -- paths through arrays -----------------------------------------------------------------------

    def node(self, path: tuple[str, ...]) -> str:
        return f"({self.column} -> {self._path(path)})"

    def index(self, json: str, position: int) -> str:
        return f"({json} -> '$[{int(position)}]')"

    def key(self, alias: str, part: str) -> str:
        self._path((part,))
        return f"(CASE WHEN {alias}.type = 'object' THEN {alias}.value -> {sql_string('$.' + part)} END)"

    def each(self, json: str, alias: str, *, arrays_only: bool = False) -> str:
        other = "'[]'" if arrays_only else f"json_array(json({json}))"
        return f"json_each(CASE WHEN json_type({json}) = 'array' THEN {json} ELSE {other} END) AS {alias}"

    def elements(self, path: tuple[str, ...], alias: str) -> str:
        # Only used where the field is an array: json_each reads it in place, no copy.
        return f"{self._elements(path)} AS {alias}"

    def inside(self, alias: str) -> SqliteDialect:
        # The element's own JSON text (json_each's value; NULL for a scalar, which has no fields).
        # Reading the element by its fullkey from the document walked the document from its start
        # for every element: the time grew with the square of an array's length.
        return SqliteDialect(_container(alias), self.depth + 1)

    def element(self, alias: str) -> SqliteElement:
        return SqliteElement(alias, self.depth + 1)

    def on_json(self, json: str) -> SqliteDialect:
        return SqliteDialect(json, self.depth + 1)

    def object_of(self, alias: str) -> str:
        return f"(CASE WHEN {alias}.type = 'object' THEN {alias}.value ELSE '{{}}' END)"


class SqliteElement(SqliteDialect):
    """One row of ``json_each`` (``alias``): its ``type`` and ``value`` columns are the element's kind
    and value (booleans as 0/1, containers as JSON text); only the empty path is valid."""

    def __init__(self, alias: str, depth: int) -> None:
        super().__init__(f"{alias}.value", depth)
        self.row = alias

    def _check(self, path: tuple[str, ...]) -> None:
        if path:
            raise InvalidFilter(
                f"{json_text('.'.join(path), 80)}: an array element is tested as a whole"
            )

    def _type(self, path: tuple[str, ...]) -> str:
        self._check(path)
        return f"{self.row}.type"

    def value(self, path: tuple[str, ...], rank: int) -> str:
        self._check(path)
        return f"{self.row}.value"

    def _container(self) -> str:
        return f"(CASE WHEN {self.row}.type IN ('array', 'object') THEN {self.row}.value END)"

    def _array(self) -> str:
        return f"(CASE WHEN {self.row}.type = 'array' THEN {self.row}.value ELSE '[]' END)"

    def _elements(self, path: tuple[str, ...]) -> str:
        self._check(path)
        return f"json_each({self._array()})"

    def inside(self, alias: str) -> SqliteDialect:
        return SqliteDialect(_container(alias), self.depth + 1)

    def size(self, path: tuple[str, ...]) -> str:
        self._check(path)
        return (
            f"COALESCE(CASE WHEN {self.row}.type = 'array' THEN "
            f"json_array_length({self.row}.value) END, -1) = ?"
        )

    def node(self, path: tuple[str, ...]) -> str:
        self._check(path)
        return self._container()
