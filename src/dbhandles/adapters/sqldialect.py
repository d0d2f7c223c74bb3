"""SQL dialects: the engine-specific fragments that ``sqlcompile.SqlCompiler`` assembles.

A dialect answers questions about one field path (its rank, its value, whether it is missing) with SQL
expressions that are total booleans or plain scalars. ``SqliteDialect`` works on SQLite's JSON1
functions. A PostgreSQL dialect implements the same methods with ``jsonb_typeof`` for ranks,
``#>``/``#>>`` extraction cast per rank (numeric, boolean, text), ``~`` for regexes, ``COLLATE "C"`` in
``text`` (so strings order by code point) and ``%s`` placeholders.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from dbhandles.errors import InvalidFilter
from dbhandles.filters import Scalar

__all__ = ["Dialect", "SqliteDialect"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class Dialect(ABC):
    """The engine-specific fragments the compiler needs; ``path`` is a tuple of validated identifiers.

    Every boolean expression a dialect returns must be total (0/1, never NULL). Methods documented as
    having "one placeholder" contain exactly one ``placeholder`` that the compiler binds.
    """

    #: Parameter placeholder of the driver (``?`` for sqlite3, ``%s`` for psycopg).
    placeholder: ClassVar[str]

    def quote_ident(self, name: str) -> str:
        """An identifier quoted for SQL (names are validated, quoting is defence in depth)."""
        return '"' + name.replace('"', '""') + '"'

    def text(self, sql: str) -> str:
        """``sql`` (a text expression) made to compare by code point."""
        return sql

    def bind(self, value: Scalar) -> object:
        """A Python scalar as the driver should receive it."""
        return value

    @abstractmethod
    def value(self, path: tuple[str, ...], rank: int) -> str:
        """The field's value as an SQL scalar, valid where the field has rank ``rank`` (1-3)."""

    @abstractmethod
    def has_rank(self, path: tuple[str, ...], ranks: tuple[int, ...]) -> str:
        """True when the field's value has one of ``ranks`` (1-4)."""

    @abstractmethod
    def is_missing(self, path: tuple[str, ...]) -> str:
        """True when the field is missing or JSON null (rank 0)."""

    @abstractmethod
    def rank(self, path: tuple[str, ...]) -> str:
        """An integer expression: the field's rank 0-4."""

    @abstractmethod
    def sort_values(self, path: tuple[str, ...]) -> tuple[str, ...]:
        """Expressions that order values within a rank (NULL for ranks 0 and 4), after ``rank``."""

    @abstractmethod
    def regex(self, text_sql: str) -> str:
        """True when the pattern (one placeholder) matches ``text_sql`` like Python ``re.search``."""

    @abstractmethod
    def substring(self, text_sql: str) -> str:
        """True when the bound string (one placeholder) occurs in ``text_sql``."""

    @abstractmethod
    def array_has(self, path: tuple[str, ...], rank: int) -> str:
        """True when the field is an array holding an element of ``rank`` equal to one placeholder."""

    def index_expression(self, path: tuple[str, ...]) -> str:
        """What an index on ``path`` is built on: the exact expression that filters compare."""
        return self.value(path, 3)


_SQLITE_KINDS: Mapping[int, tuple[str, ...]] = {
    1: ("true", "false"),
    2: ("integer", "real"),
    3: ("text",),
    4: ("array", "object"),
}


class SqliteDialect(Dialect):
    """SQLite's JSON1 functions over the ``data`` text column.

    ``json_type`` names the kind of a value ('null', 'true', 'false', 'integer', 'real', 'text',
    'array', 'object') and is NULL when the path is missing; ``json_extract`` gives booleans as 0/1,
    numbers and strings as themselves and containers as JSON text. One ``json_extract`` expression
    per path serves every rank, so one expression index serves every comparison.
    """

    placeholder = "?"

    def __init__(self, column: str = "data") -> None:
        self.column = column

    def _path(self, path: tuple[str, ...]) -> str:
        for part in path:
            if not _IDENT.fullmatch(part):
                raise InvalidFilter(f"{'.'.join(path)!r} is not a valid field path")
        return "'$." + ".".join(path) + "'"

    def _type(self, path: tuple[str, ...]) -> str:
        return f"json_type({self.column}, {self._path(path)})"

    def bind(self, value: Scalar) -> object:
        return int(value) if isinstance(value, bool) else value

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
        # json_each on a scalar yields the scalar itself, so the array guard is not optional.
        return (
            f"COALESCE({self._type(path)}, 'null') = 'array' AND EXISTS (SELECT 1 FROM "
            f"json_each({self.column}, {self._path(path)}) WHERE type IN ({kinds}) AND value = ?)"
        )
