"""A PostgreSQL table dbhandles did not create, as JSON: each column's value as ``jsonb``, and filters.

Every column is read through one ``jsonb`` expression (``json_sql``) and a listing selects exactly
those expressions, so a filter sees the value a record shows. The rules (docs/foreign-tables.md
"PostgreSQL values"):

* ``smallint``/``integer``/``bigint``: numbers; ``real``/``double precision``: numbers, NaN and
  ±Infinity are null (JSON has neither);
* ``numeric``: a number when it has at most 15 significant digits (every such decimal survives a
  round trip through a JSON number, IEEE 754 ``DBL_DIG``), else the string of its exact decimal text
  (``"12345678901234567.50"``); NaN and ±Infinity are null;
* text types, ``uuid``, enums (their label as text: never a cast of the enum to ``json``
  somebody created): strings; ``boolean``: true/false; ``json``/``jsonb``: their JSON;
* ``timestamptz``: ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (fixed width, so strings sort in time
  order), ``timestamp`` the same without ``Z``, ``date`` ``YYYY-MM-DD``, ``time`` as PostgreSQL's JSON
  writes it; ``infinity``/``-infinity`` as those strings;
* ``bytea``: ``{"$base64": "<standard base64 with padding>"}``;
* arrays: JSON arrays (of their elements as ``to_jsonb`` writes them); any other type as ``to_jsonb``
  writes it (usually its text).

``ForeignPgDialect`` is ``PostgresDialect`` whose paths start at a column's ``jsonb`` expression
instead of a collection's ``data`` document; integer and text columns compare their own value where
they can (so their indexes serve equality).
"""

from __future__ import annotations

from psycopg import sql

from dbhandles.adapters.postgres_compile import PostgresDialect
from dbhandles.adapters.postgres_foreign_schema import PgColumn, PgTable
from dbhandles.adapters.postgres_records import SUSPECT_TEST, inexact_number
from dbhandles.adapters.sql_compile import Column, SqlCompiler

__all__ = [
    "DUPLICATE",
    "ForeignPgDialect",
    "compiler_for",
    "id_scalar",
    "json_sql",
    "keyless_source",
    "quote",
    "row_json",
]

_INTEGERS = frozenset({"int2", "int4", "int8"})
_FLOATS = frozenset({"float4", "float8"})
_TEXTS = frozenset({"text", "varchar", "name", "citext"})
#: Text types whose order is their collation's (citext compares ignoring case whatever it is).
_CODEPOINT_TEXTS = frozenset({"text", "varchar"})
#: Types whose JSON value is always a string (or null).
_STRINGS = frozenset({"bpchar", "uuid", "date", "time", "timetz", "timestamp", "timestamptz",
                      "interval", "inet", "cidr", "macaddr", "xml"})  # fmt: skip
_ISO = "'YYYY-MM-DD\"T\"HH24:MI:SS.US'"
_ISO_Z = '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\''
#: Stands for the ``id`` expression where ``SqlCompiler`` asks to quote a column name.
_ID = "\x00id"


def quote(name: str) -> str:
    """An SQL identifier quoted by ``psycopg.sql.Identifier`` (double quotes doubled), with ``%``
    doubled: the statements it goes into always carry parameters, and psycopg reads ``%`` there."""
    return sql.Identifier(name).as_string(None).replace("%", "%%")


def json_sql(column: PgColumn) -> str:
    """The column's value as a ``jsonb`` expression (SQL NULL for NULL), by the module's rules."""
    c = quote(column.name)
    base = column.base
    if base in _INTEGERS or base == "bool":
        return f"to_jsonb({c})"
    if base in _TEXTS:
        return f"to_jsonb({c}::text)"
    if column.category == "E":
        # An enum's label as text (its output function, ``enum_out``, unless the enum has a cast
        # to text): ``to_jsonb`` of the enum would call a cast of it to ``json`` somebody
        # created (``CREATE CAST (mood AS json)``). A domain over an enum the same way.
        return f"to_jsonb({c}::text)"
    if base in _FLOATS:
        return (
            f"(CASE WHEN {c}::float8 IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) "
            f"THEN NULL ELSE to_jsonb({c}) END)"
        )
    if base == "numeric":
        # Nested CASE: only a value inside float8's range reaches the cast (a cast outside raises).
        return (
            f"(CASE WHEN {c}::text IN ('NaN', 'Infinity', '-Infinity') THEN NULL "
            f"WHEN abs({c}) >= 1e300 OR ({c} <> 0 AND abs({c}) < 1e-300) THEN to_jsonb({c}::text) "
            f"WHEN {c} = ({c}::float8)::numeric THEN to_jsonb({c}) ELSE to_jsonb({c}::text) END)"
        )
    if base == "jsonb":
        return f"(CASE WHEN {_finite(c)} THEN {c} ELSE to_jsonb({c}::text) END)"
    if base == "json":
        # Each test only where the one before it holds: the cast to jsonb raises on a U+0000 or
        # lone-surrogate escape (which ``json`` keeps as text), so it runs after ``_castable``.
        return (
            f"(CASE WHEN NOT {_castable(c)} THEN to_jsonb({c}::text) "
            f"WHEN {_finite(f'{c}::jsonb')} THEN {c}::jsonb ELSE to_jsonb({c}::text) END)"
        )
    if base == "bytea":
        return (
            f"(CASE WHEN {c} IS NOT NULL THEN jsonb_build_object('$base64', "
            f"translate(encode({c}, 'base64'), chr(10), '')) END)"
        )
    if base in ("timestamptz", "timestamp"):
        utc, form = (f"{c} AT TIME ZONE 'UTC'", _ISO_Z) if base == "timestamptz" else (c, _ISO)
        return (
            f"(CASE WHEN isfinite({c}) THEN to_jsonb(to_char({utc}, {form})) "
            f"ELSE to_jsonb({c}::text) END)"
        )
    return f"to_jsonb({c})"


#: A valid UTF-16 surrogate pair, as a JSON escape (a lone half is no character).
_PAIR = r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
#: The escapes ``jsonb`` refuses: U+0000 and a half of a surrogate pair (left once pairs are cut).
_REFUSED = r"\\u(0000|[dD][89a-fA-F][0-9a-fA-F]{2})"


def _castable(json_text: str) -> str:
    """SQL: the ``json`` value ``json_text`` casts to ``jsonb`` without raising, so its JSON is
    readable in full: no ``\\u0000`` escape and no lone surrogate (both of which the ``json``
    type keeps and ``jsonb`` refuses, failing the whole statement). Escaped backslashes go first,
    so every backslash left starts an escape; then valid pairs; what is left is decisive."""
    text = f"{json_text}::text"
    left = f"regexp_replace(replace({text}, '\\\\', ''), '{_PAIR}', '', 'g')"
    return f"(strpos({text}, '\\u') = 0 OR NOT {left} ~ '{_REFUSED}')"


def _finite(jsonb: str) -> str:
    """SQL: the ``jsonb`` value holds only numbers dbhandles' reader keeps exactly
    (``postgres_records.inexact_number``, the rule of collections): no number past a double's
    range (``1e400``: PostgreSQL's ``numeric`` holds it, a JSON reader refuses it), none past
    2**64 (read as a float) or with a fraction that is not the shortest text of a double
    (``1e-400``, ``1.00000000000000000001``: read as ``0.0`` and ``1.0`` while filters, sorts and
    keyset positions would compare the exact decimal). The path query runs only on text that could
    spell one: ``jsonb``'s text spells numbers in plain decimals, so a fraction or 16 digits in a
    row (2**53 has 16)."""
    return (
        f"(NOT {jsonb}::text ~ '[0-9]\\.[0-9]|[0-9]{{16}}' OR NOT EXISTS (SELECT FROM "
        f"jsonb_path_query({jsonb}, 'strict $.** {SUSPECT_TEST}') AS v "
        f"WHERE {inexact_number('(v::numeric)', wide_integers=True)}))"
    )


def fixed_rank(column: PgColumn) -> int | None:
    """The rank (docs/filters.md) every non-null value of the column has, if one does."""
    if column.base in _INTEGERS:
        return 2
    if column.base in _TEXTS or column.base in _STRINGS or column.category == "E":
        return 3
    if column.base == "bool":
        return 1
    return None


def scalar_sql(column: PgColumn) -> str | None:
    """The column's value as a plain SQL scalar of its fixed rank (integers, strings), if it has one."""
    rank = fixed_rank(column)
    if rank == 2:
        return quote(column.name)
    if rank == 3:
        if column.base in _CODEPOINT_TEXTS and column.codepoint:
            return quote(column.name)  # no cast: its own collation, so its indexes serve
        if column.base in _TEXTS:
            return f"{quote(column.name)}::text"
        return f"({json_sql(column)} #>> '{{}}')"
    return None


def id_scalar(table: PgTable) -> tuple[str, int] | None:
    """The SQL of a record's ``id`` and its rank, when every id has one rank: an integer or string
    key, or the JSON text of a compound key or of every column (see ``foreign_values``)."""
    if len(table.key) == 1:
        column = table.column(table.key[0])
        scalar, rank = scalar_sql(column), fixed_rank(column)
        if scalar is None or rank not in (2, 3):
            return None
        return scalar, rank
    if not table.key:
        # Rows equal in every column would share one id: the 2nd, 3rd ... of them get ``#2``,
        # ``#3`` (``keyless_source`` numbers them), so paging never skips one.
        return (
            f"({row_json(table)} || CASE WHEN {DUPLICATE} > 1 THEN '#' || {DUPLICATE} ELSE '' END)",
            3,
        )
    return row_json(table, [table.column(k) for k in table.key]), 3


#: The column ``keyless_source`` numbers rows equal in every column in (``id_scalar``).
#: (U+2060 WORD JOINER first: no column a person names has this name.)
DUPLICATE = '"\u2060dbh_duplicate"'


#: ``regexp_replace`` pattern and replacement making ``jsonb``'s text compact: the space it writes
#: after each ``,`` and ``:`` goes, while a string (``"a, b"``) is matched whole and kept as it is.
_SPACED = r"""'("(?:[^"\\]|\\.)*")|([,:]) '"""
_UNSPACED = r"'\1\2'"


def _scalar_json(column: PgColumn) -> bool:
    """Whether ``json_sql`` of ``column`` is always a scalar, whose ``jsonb`` text has no spaces."""
    base = column.base
    return (
        base in _INTEGERS or base in _TEXTS or base in _FLOATS or column.category == "E"
        or base in ("bool", "numeric", "timestamptz", "timestamp")
    )  # fmt: skip


def row_json(table: PgTable, columns: list[PgColumn] | None = None) -> str:
    """Compact JSON text of ``columns`` (default: all), as ``foreign_values.encode_key`` writes
    it for SQLite: jsonb's text of a scalar has no spaces, that of an object or array (a
    ``bytea``'s ``{"$base64":"..."}``, ``jsonb``, an array, a composite) loses the ones ``jsonb``
    writes after ``,`` and ``:`` (``[[1,2],1]``, never ``[[1, 2],1]``), and SQL null is JSON null."""
    parts = ", ".join(
        f"COALESCE(({json_sql(c)})::text, 'null')" if _scalar_json(c)
        else f"COALESCE(regexp_replace(({json_sql(c)})::text, {_SPACED}, {_UNSPACED}, 'g'), 'null')"
        for c in (table.columns if columns is None else columns)
    )  # fmt: skip
    return f"('[' || array_to_string(ARRAY[{parts}]::text[], ',') || ']')"


def keyless_source(table: PgTable, relation: str) -> str:
    """``relation`` (a table or view without a key) with its rows numbered among those equal to
    them in every column (``DUPLICATE``): over the whole relation, before any filter, so the
    numbers, and ids, stay the same from page to page while the relation does not change."""
    # Rows whose JSON is equal but whose values are not (NaN and Infinity are both null) are
    # numbered in the order of their values' text (every type has one; not every type an order),
    # so each keeps its number, and id, from query to query.
    values = ", ".join(f'({quote(c.name)})::text COLLATE "C"' for c in table.columns)
    return (
        f"(SELECT *, row_number() OVER (PARTITION BY {row_json(table)} ORDER BY {values}) "
        f"AS {DUPLICATE} FROM {relation}) AS {quote(table.name)}"
    )


def id_json(table: PgTable) -> str:
    """The ``jsonb`` expression of a record's ``id``."""
    if len(table.key) == 1:
        return json_sql(table.column(table.key[0]))
    found = id_scalar(table)
    assert found is not None
    return f"to_jsonb({found[0]})"


class ForeignPgDialect(PostgresDialect):
    """``PostgresDialect`` over the columns of one table: ``path[0]`` is a column (its ``jsonb``
    value), the rest of the path steps into it as into a collection's document."""

    def __init__(self, table: PgTable) -> None:
        super().__init__(column="NULL::jsonb")
        self.table = table
        #: field -> (jsonb SQL, fixed rank, plain scalar SQL) of the column it is served from
        self.fields: dict[str, tuple[str, int | None, str | None]] = {
            c.field: (json_sql(c), fixed_rank(c), scalar_sql(c)) for c in table.columns
        }
        self.fields["id"] = (id_json(table), None, None)
        found = id_scalar(table)
        self.id_sql = found[0] if found is not None else None
        #: Scalars of text columns that already order by code point (``PgColumn.codepoint``):
        #: compared and ordered bare, without ``COLLATE "C"``, so their indexes serve.
        self.codepoint = frozenset(
            quote(c.name) for c in table.columns if c.codepoint and c.base in _CODEPOINT_TEXTS
        )

    def quote_ident(self, name: str) -> str:
        if name in (_ID, "id") and self.id_sql is not None:
            return self.id_sql
        return super().quote_ident(name)

    def text(self, sql_text: str) -> str:
        if sql_text in self.codepoint:
            return sql_text
        return f'({sql_text}) COLLATE "C"'

    def _column(self, path: tuple[str, ...]) -> tuple[str, int | None, str | None]:
        # A column whose name holds '.' is one part of the path already (``PgReader.paths``).
        found = self.fields.get(path[0])
        return ("NULL::jsonb", None, None) if found is None else found

    def _fixed(self, path: tuple[str, ...]) -> tuple[str, int, str] | None:
        """The plain SQL of a top-level column whose values all have one rank (2 or 3)."""
        if len(path) != 1:
            return None
        _, rank, scalar = self._column(path)
        if rank is None or scalar is None:
            return None
        return scalar, rank, quote(next(c.name for c in self.table.columns if c.field == path[0]))

    def json(self, path: tuple[str, ...]) -> str:
        if not path:
            return self.column
        return PostgresDialect(f"({self._column(path)[0]})", self.depth).json(path[1:])

    def _text(self, path: tuple[str, ...]) -> str:
        return PostgresDialect(f"({self._column(path)[0]})", self.depth)._text(path[1:])

    # -- columns of one rank: their own values, so their indexes serve ---------------------------

    def value(self, path: tuple[str, ...], rank: int) -> str:
        fixed = self._fixed(path)
        if fixed is not None and fixed[1] == rank:
            return fixed[0]
        return super().value(path, rank)

    def has_rank(self, path: tuple[str, ...], ranks: tuple[int, ...]) -> str:
        fixed = self._fixed(path)
        if fixed is not None:
            return f"({fixed[2]} IS NOT NULL)" if fixed[1] in ranks else "FALSE"
        return super().has_rank(path, ranks)

    def is_missing(self, path: tuple[str, ...]) -> str:
        fixed = self._fixed(path)
        return f"({fixed[2]} IS NULL)" if fixed is not None else super().is_missing(path)

    def rank(self, path: tuple[str, ...]) -> str:
        fixed = self._fixed(path)
        if fixed is not None:
            return f"(CASE WHEN {fixed[2]} IS NULL THEN 0 ELSE {fixed[1]} END)"
        return super().rank(path)

    def sort_values(self, path: tuple[str, ...]) -> tuple[str, ...]:
        fixed = self._fixed(path)
        if fixed is None:
            return super().sort_values(path)
        if fixed[1] == 2:
            return ("NULL::boolean", f"({fixed[0]})::numeric", 'NULL::text COLLATE "C"')
        return ("NULL::boolean", "NULL::numeric", self.text(fixed[0]))

    def is_kind(self, path: tuple[str, ...], kind: str) -> str:
        if self._fixed(path) is not None:
            return "0"  # folded away by the compiler: an integer or a string is no container
        return super().is_kind(path, kind)

    def size(self, path: tuple[str, ...]) -> str:
        if self._fixed(path) is not None:
            return "(CAST(%s AS text) IS NULL AND FALSE)"
        return super().size(path)

    def array_has(self, path: tuple[str, ...], rank: int) -> str:
        if self._fixed(path) is not None:
            return "(CAST(%s AS text) IS NULL AND FALSE)"
        return super().array_has(path, rank)

    def index_hint(self, path: tuple[str, ...], kind: str) -> str:
        return "1" if self._fixed(path) is not None else super().index_hint(path, kind)


def compiler_for(table: PgTable) -> SqlCompiler:
    """A compiler for filters, orders and keyset positions over ``table``: an ``id`` of one rank
    is a column to the compiler (ordering by it can use the key's index)."""
    dialect = ForeignPgDialect(table)
    found = id_scalar(table)
    columns = {"id": Column(_ID, found[1])} if found is not None else {}
    # A NOT NULL integer or text column holds one rank in every row: ordered (and paged) by the
    # bare column, which its index serves (a nullable one sorts NULL first, as no index does).
    for c in table.columns:
        plain = c.base in _INTEGERS or (c.base in _CODEPOINT_TEXTS and c.codepoint)
        if plain and not c.nullable and "id" not in (c.field, c.name):
            columns[c.field] = Column(c.name, fixed_rank(c) or 0)
    return SqlCompiler(dialect, columns)
