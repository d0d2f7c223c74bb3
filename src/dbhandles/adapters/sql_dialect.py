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

from dbhandles.adapters.wide_integers import WideIntegers
from dbhandles.errors import InvalidFilter
from dbhandles.filters import Scalar

__all__ = ["Dialect", "sql_string"]


def sql_string(text: str) -> str:
    """``text`` as an SQL string literal (a quote doubled), the one place a name meets SQL text.

    Only names already validated reach it (JSON path parts checked against
    ``filters.COLLECTION_PART``): a JSON path stays literal text where an expression index must
    match it, and the quoting is defence in depth. Values are always bound parameters instead.

    Raises:
        ValueError: ``text`` holds NUL, which no SQL literal can carry (a caller bug: validated
            names cannot).
    """
    if "\x00" in text:
        raise ValueError("an SQL string literal cannot hold NUL")
    return "'" + text.replace("'", "''") + "'"


class Dialect(ABC):
    """The engine-specific fragments the compiler needs; ``path`` is a tuple of validated identifiers.

    Every boolean expression a dialect returns must be total (0/1, never NULL). Methods documented as
    having "one placeholder" contain exactly one ``placeholder`` that the compiler binds.
    """

    #: Parameter placeholder of the driver (``?`` for sqlite3, ``%s`` for psycopg).
    placeholder: ClassVar[str]

    #: How a filter's integer past 64 bits is compared (``wide_integers``): PostgreSQL binds it as
    #: ``numeric``; SQLite binds 64 bits only.
    wide_integers: ClassVar[WideIntegers] = "exact"

    #: Whether ``value(path, 3)`` is SQL text only for JSON strings and for containers (whose JSON
    #: text starts with ``[`` or ``{``): then equality with other texts needs no type guard.
    typed_text: ClassVar[bool] = False

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

    # -- paths through arrays (MongoDB's rules, ``evaluate.candidates``) ------------------------
    # A path that crosses arrays is walked inside an ``EXISTS`` subquery: ``node`` starts at the
    # first part, each further part steps through ``each`` (the elements of an array, or the value
    # itself) with ``key``, or indexes with ``index``. Element dialects (``element``) test one
    # element; ``on_json`` tests a JSON expression; both take only the empty path. A dialect whose
    # values are never arrays (``arrays`` false) keeps the defaults: nothing to walk.

    #: Whether values can be arrays or objects that paths step through.
    arrays: ClassVar[bool] = False
    #: Nesting depth of the subquery this dialect's expressions live in (aliases are unique by it).
    depth: int = 0

    def is_kind(self, path: tuple[str, ...], kind: str) -> str:
        """True when the field is a JSON ``kind`` (``"array"`` or ``"object"``)."""
        return "0"

    def size(self, path: tuple[str, ...]) -> str:
        """True when the field is an array whose length is one placeholder (``arrays`` only)."""
        raise self._no_arrays()

    def alias(self, name: str) -> str:
        """A table alias unique among the subqueries enclosing this dialect's expressions."""
        return f"_a{self.depth}_{name}"

    def node(self, path: tuple[str, ...]) -> str:
        """The field as a JSON expression (SQL NULL when missing)."""
        raise self._no_arrays()

    def index(self, json: str, position: int) -> str:
        """Element ``position`` of the JSON expression ``json`` when it is an array, else NULL."""
        raise self._no_arrays()

    def key(self, alias: str, part: str) -> str:
        """Member ``part`` of the ``each`` row ``alias`` when that element is an object, else NULL."""
        raise self._no_arrays()

    def each(self, json: str, alias: str, *, arrays_only: bool = False) -> str:
        """A ``FROM`` item named ``alias``: the elements of ``json`` when it is an array, else ``json``
        itself (one row, JSON null when ``json`` is NULL); nothing but elements when ``arrays_only``."""
        raise self._no_arrays()

    def elements(self, path: tuple[str, ...], alias: str) -> str:
        """A ``FROM`` item named ``alias``: the elements of the field, used where it is an array."""
        return self.each(self.node(path), alias, arrays_only=True)

    def inside(self, alias: str) -> Dialect:
        """A dialect whose paths start inside the element ``alias`` of ``elements`` (a non-object
        element has no fields)."""
        return self.on_json(self.object_of(alias))

    def element(self, alias: str) -> Dialect:
        """A dialect whose empty path is the current row of ``each`` item ``alias``."""
        raise self._no_arrays()

    def on_json(self, json: str) -> Dialect:
        """A dialect whose paths start at the JSON expression ``json``."""
        raise self._no_arrays()

    def object_of(self, alias: str) -> str:
        """The ``each`` row ``alias`` as a JSON expression that paths can step into (objects)."""
        raise self._no_arrays()

    def index_hint(self, path: tuple[str, ...], kind: str) -> str:
        """A condition on ``index_expression(path)`` implied by the field being an array (``kind``
        ``"array"``) or by its path meeting an array (``"missing"``): it lets the planner answer
        those cases from the field's index too (an ``OR`` is served by indexes only when every
        branch is)."""
        return "1"

    def rows_of(self, path: tuple[str, ...], alias: str) -> tuple[str, str] | None:
        """For a field ``path[:1]`` and its key ``path[1]``: ``(element, member)``, tests on a row
        ``alias`` of ``elements(path[:1], alias)`` run whatever the field holds, true when that row
        is an element of an array there, and when it is the member ``path[1]`` of an object there.
        The compiler then reads the field once for every shape (``sql_compile._one_pass``); ``None``
        (the default) keeps one branch per shape, which an index on ``path`` can serve."""
        return None

    def _no_arrays(self) -> InvalidFilter:
        return InvalidFilter("this source has no arrays: $size and $elemMatch match nothing here")

    def index_expression(self, path: tuple[str, ...]) -> str:
        """What an index on ``path`` is built on: the exact expression that filters compare."""
        return self.value(path, 3)
