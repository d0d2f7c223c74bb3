"""The SQL dialect contract: the engine-specific fragments that ``sql_compile.SqlCompiler`` assembles.

A dialect answers questions about one field path (its rank, its value, whether it is missing) with SQL
expressions that are total booleans or plain scalars. ``SqliteDialect`` works on SQLite's JSON1
functions (``sqlite_compile``). ``postgres_compile.PostgresDialect`` implements the same methods with ``jsonb_typeof`` for ranks,
``#>``/``#>>`` extraction cast per rank (numeric, boolean, text), ``~`` for regexes, ``COLLATE "C"`` in
``text`` (so strings order by code point) and ``%s`` placeholders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from dbhandles.filters import Scalar

__all__ = ["Dialect"]


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
        """True when the pattern (one placeholder) matches ``text_sql`` like ``dbhandles.regex.search``."""

    @abstractmethod
    def substring(self, text_sql: str) -> str:
        """True when the bound string (one placeholder) occurs in ``text_sql``."""

    @abstractmethod
    def array_has(self, path: tuple[str, ...], rank: int) -> str:
        """True when the field is an array holding an element of ``rank`` equal to one placeholder."""

    def index_expression(self, path: tuple[str, ...]) -> str:
        """What an index on ``path`` is built on: the exact expression that filters compare."""
        return self.value(path, 3)
