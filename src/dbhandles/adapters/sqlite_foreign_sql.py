"""Filters over a foreign SQLite table: ``ForeignDialect``, the fragments ``SqlCompiler`` assembles.

A top-level field is a column (its SQLite storage class decides its rank, as ``foreign_values`` shows
it); a dotted path reaches into a TEXT column holding a JSON object or array, through the JSON1
fragments of ``SqliteDialect`` run over ``sqlite_values.document_sql`` (the column's text where it
reads as JSON, in canonical form: keys decoded, each once; NULL elsewhere), so
paths cross arrays by the rules of docs/filters.md (any element, numeric segments, ``$size``,
``$elemMatch``) exactly as in collections. Every expression that could meet text not holding JSON
sits behind such a ``CASE WHEN`` (``json_extract`` raises on malformed JSON, and only ``CASE`` is
guaranteed to be evaluated lazily); JSON1 functions give NULL, or no rows, on NULL. Text compares with ``COLLATE BINARY`` (code points) whatever
collation the column declares.
"""

from __future__ import annotations

import math
import sqlite3

from dbhandles.adapters.sql_compile import Column, SqlCompiler
from dbhandles.adapters.sql_dialect import Dialect
from dbhandles.adapters.sqlite_compile import SqliteDialect, SqliteElement, sqlite_bind
from dbhandles.adapters.sqlite_foreign_schema import ForeignTable, quote
from dbhandles.adapters.sqlite_values import document_sql
from dbhandles.filters import Scalar

__all__ = ["ForeignDialect", "binary_leading", "compiler_for", "fixed_ranks"]

#: The largest finite REAL: anything beyond is an infinity, which records show as null.
_FINITE = "1.7976931348623157e308"
#: Rank 0 as an expression: a bare integer in ORDER BY would name a result column.
_NO_RANK = "(0 + 0)"
#: Stands for the ``id`` expression where ``SqlCompiler`` asks to quote a column name.
_ID = "\x00id"


def _json_text(col: str) -> str:
    """True when the column holds text that records show as a JSON object or array."""
    return f"({document_sql(col)} IS NOT NULL)"


def _rank(col: str, sniff: bool) -> str:
    text = f"CASE WHEN {_json_text(col)} THEN 4 ELSE 3 END" if sniff else "3"
    return (
        f"(CASE typeof({col}) WHEN 'integer' THEN 2 "
        f"WHEN 'real' THEN (CASE WHEN {col} BETWEEN -{_FINITE} AND {_FINITE} THEN 2 ELSE 0 END) "
        f"WHEN 'text' THEN {text} WHEN 'blob' THEN 4 ELSE 0 END)"
    )


class ForeignDialect(Dialect):
    """SQL fragments for the fields of one foreign table (see the module docstring)."""

    placeholder = "?"
    arrays = True
    # JSON text another tool wrote may hold an integer past 64 bits, which SQLite reads as the
    # nearest double while dbhandles serves the integer: no exact comparison (wide_integers.refuse).
    wide_integers = "refused"
    # A column's text is a string or JSON text starting with '[' or '{' (foreign_values), and a
    # number equals no text: once ``value`` keeps numeric affinities from converting the bound
    # text, equality with a string that cannot start a container needs no type guard.
    typed_text = True

    def __init__(self, table: ForeignTable, arrayless: frozenset[str] = frozenset()) -> None:
        self.table = table
        #: Fields whose column holds no JSON array in the snapshot the query runs in (probed by
        #: ``sqlite_foreign``): no element of theirs needs testing, so their index serves alone.
        self.arrayless = arrayless
        #: field -> (SQL of the column, whether its text may hold JSON)
        self.fields: dict[str, tuple[str, bool]] = {
            c.field: (quote(c.name), True) for c in table.columns
        }
        self.fields["id"] = (table.id_sql, False)
        #: Fields whose column has a numeric affinity (INTEGER, REAL, NUMERIC): compared with text,
        #: SQLite would turn the text into a number first (https://sqlite.org/datatype3.html 4.2).
        self.numeric = {c.field for c in table.columns if _numeric_affinity(c.type)}
        if len(table.key) == 1 and "id" not in self.numeric:
            key = next(c for c in table.columns if c.name == table.key[0])
            if _numeric_affinity(key.type):
                self.numeric.add("id")
        #: The column-free JSON fragments (``each``, ``key``, ``index``, elements).
        self._json = SqliteDialect(column="NULL", depth=self.depth)

    def quote_ident(self, name: str) -> str:
        return self.table.id_sql if name == _ID else super().quote_ident(name)

    def text(self, sql: str) -> str:
        return f"{sql} COLLATE BINARY"

    def bind(self, value: Scalar) -> object:
        return sqlite_bind(value)

    def _field(self, path: tuple[str, ...]) -> tuple[str, bool] | None:
        # A column whose name holds '.' is one part of the path already (``ForeignReader.paths``).
        return self.fields.get(path[0])

    def _document(self, path: tuple[str, ...]) -> SqliteDialect | None:
        """JSON1 fragments over the column of ``path[0]`` as a JSON document: the column where it
        holds a JSON object or array, SQL NULL elsewhere (every JSON1 function gives NULL, or no
        rows, on NULL, so nothing downstream meets text that is not JSON); ``None`` when the field
        is not a column that can hold JSON."""
        found = self._field(path)
        if found is None or not found[1]:
            return None
        col = found[0]
        return SqliteDialect(column=document_sql(col), depth=self.depth)

    def value(self, path: tuple[str, ...], rank: int) -> str:
        found = self._field(path)
        if found is None:
            return "NULL"
        col, _ = found
        if len(path) == 1:
            if rank != 3:
                return col
            # Unary + drops the column's affinity: '5' stays text against an INTEGER column.
            return (
                f"(+{col}) COLLATE BINARY" if path[0] in self.numeric else f"{col} COLLATE BINARY"
            )
        inner = self._document(path)
        return "NULL" if inner is None else inner.value(path[1:], rank)

    def rank(self, path: tuple[str, ...]) -> str:
        found = self._field(path)
        if found is None:
            return _NO_RANK
        col, sniff = found
        if len(path) == 1:
            return _rank(col, sniff)
        inner = self._document(path)
        return _NO_RANK if inner is None else inner.rank(path[1:])

    def has_rank(self, path: tuple[str, ...], ranks: tuple[int, ...]) -> str:
        found = self._field(path) if len(path) == 1 else None
        if found is not None and found[1] and ranks == (3,):
            # The guard of most string tests, per matching row: text that records show as a
            # string, i.e. no JSON document ``loads`` reads in full (``document_sql``: valid JSON
            # too deep, or holding a lone surrogate or U+0000, is a string too).
            col = found[0]
            return f"(typeof({col}) = 'text' AND {document_sql(col)} IS NULL)"
        listed = ", ".join(str(r) for r in ranks)
        return f"{self.rank(path)} IN ({listed})"

    def is_missing(self, path: tuple[str, ...]) -> str:
        return f"{self.rank(path)} = 0"

    def sort_values(self, path: tuple[str, ...]) -> tuple[str, ...]:
        found = self._field(path)
        if found is None:
            return ()
        col, _ = found
        if len(path) == 1:
            return (f"(CASE WHEN {self.rank(path)} IN (2, 3) THEN {col} END) COLLATE BINARY",)
        inner = self._document(path)
        return ("NULL",) if inner is None else inner.sort_values(path[1:])

    def regex(self, text_sql: str) -> str:
        return f"regexp(?, {text_sql})"

    def substring(self, text_sql: str) -> str:
        return f"instr({text_sql}, ?) > 0"

    def array_has(self, path: tuple[str, ...], rank: int) -> str:
        inner = self._document(path)
        if inner is None:
            # The compiler binds one value here whatever the SQL: keep the placeholder.
            return "(? IS NULL AND 0)"
        return inner.array_has(path[1:], rank)

    # -- paths through arrays: JSON arrays held in TEXT columns ------------------------------------

    def is_kind(self, path: tuple[str, ...], kind: str) -> str:
        found = self._field(path)
        if found is None or not found[1]:
            return "0"
        if kind == "array" and len(path) == 1 and path[0] in self.arrayless:
            return "0"
        col = found[0]
        if len(path) > 1:
            return self._document(path).is_kind(path[1:], kind)  # type: ignore[union-attr]
        first = "[" if kind == "array" else "{"
        container = f"({_json_text(col)} AND substr({col}, 1, 1) = '{first}')"
        # A BLOB is shown as an object ({"$base64": ...}).
        return f"({container} OR typeof({col}) = 'blob')" if kind == "object" else container

    def size(self, path: tuple[str, ...]) -> str:
        inner = self._document(path)
        if inner is None:
            return "(? IS NULL AND 0)"
        if len(path) > 1:
            return inner.size(path[1:])
        length = (
            f"(CASE WHEN {self.is_kind(path, 'array')} THEN json_array_length({inner.column}) END)"
        )
        return f"COALESCE({length}, -1) = ?"

    def node(self, path: tuple[str, ...]) -> str:
        inner = self._document(path)
        if inner is None:
            return "NULL"  # a scalar, or missing: nothing to step into
        return inner.column if len(path) == 1 else inner.node(path[1:])

    def elements(self, path: tuple[str, ...], alias: str) -> str:
        inner = self._document(path)
        if inner is None:
            return f"json_each('[]') AS {alias}"
        if len(path) == 1:
            return f"json_each({inner.column}) AS {alias}"
        return inner.elements(path[1:], alias)

    def index(self, json: str, position: int) -> str:
        return self._json.index(json, position)

    def key(self, alias: str, part: str) -> str:
        return self._json.key(alias, part)

    def each(self, json: str, alias: str, *, arrays_only: bool = False) -> str:
        return self._json.each(json, alias, arrays_only=arrays_only)

    def element(self, alias: str) -> SqliteElement:
        return self._json.element(alias)

    def on_json(self, json: str) -> SqliteDialect:
        return self._json.on_json(json)

    def object_of(self, alias: str) -> str:
        return self._json.object_of(alias)

    def index_hint(self, path: tuple[str, ...], kind: str) -> str:
        found = self._field(path)
        if len(path) > 1 or found is None or not found[1] or kind != "array":
            return "1"  # no index reaches into JSON text
        # A column holding a JSON array is text starting with '[' under any built-in collation
        # (BINARY, NOCASE, RTRIM): a range the column's own index serves.
        col = found[0]
        return f"{col} >= '[' AND {col} < '\\'"

    # ``inside`` keeps the default (``on_json(object_of(alias))``): an element's fields are read
    # from its own JSON text, since ``inside`` is not told which column the element came from.


def _numeric_affinity(declared: str) -> bool:
    """Whether a column declared ``declared`` has INTEGER, REAL or NUMERIC affinity (SQLite's
    rules, https://sqlite.org/datatype3.html 3.1: INT; then CHAR, CLOB, TEXT; then BLOB or none)."""
    upper = declared.upper()
    if "INT" in upper:
        return True
    return not (any(k in upper for k in ("CHAR", "CLOB", "TEXT", "BLOB")) or not upper)


def compiler_for(
    table: ForeignTable,
    arrayless: frozenset[str] = frozenset(),
    fixed: tuple[tuple[str, int], ...] = (),
) -> SqlCompiler:
    """A compiler for filters, orders and keyset positions over ``table`` (``arrayless``: fields
    whose column holds no JSON array in the query's snapshot, see ``ForeignDialect``; ``fixed``:
    ``(field, rank)`` of indexed columns every row of the snapshot holds a value of that rank in,
    see ``fixed_ranks``).

    An ``id`` that is always an integer (the rowid or its alias) or always text (a compound key's
    JSON), and a ``fixed`` field, is a column of fixed rank to the compiler: ordering by it (and
    keyset positions on it) is the bare column, so its index serves the order.
    """
    columns: dict[str, Column] = {}
    integer = table.integer_key
    if integer is not None:
        columns["id"] = Column(_ID, 2)
    elif table.compound_id:
        columns["id"] = Column(_ID, 3)
    names = {c.field: c.name for c in table.columns}
    for field, rank in fixed:
        columns[field] = Column(_ID if field == "id" else names[field], rank)
    return SqlCompiler(ForeignDialect(table, arrayless), columns)


def fixed_ranks(
    conn: sqlite3.Connection,
    table: ForeignTable,
    fields: set[str],
    known: dict[str, bool] | None,
    binary: frozenset[str],
) -> tuple[tuple[str, int], ...]:
    """The ``fields`` (columns, or ``id`` over one key column) whose column leads a full index of
    BINARY collation (``binary``: ``binary_leading``, decided once per schema version) and, in
    this snapshot, holds no NULL and only numbers (rank 2: integers and finite reals) or only
    text that cannot be JSON (rank 3, in a column without numeric affinity): ordering by the
    bare column is then the type-strict order, and the index serves it.

    Each is a few steps into that index: the smallest and largest non-NULL values (SQLite sorts
    NULL < numbers < text < BLOB, so equal classes at both ends cover every row), one NULL, one
    text starting like a JSON container. ``known`` keeps the answers for the read transaction
    (the snapshot cannot change inside it), as ``ForeignReader._compiler`` keeps its array probes.
    """
    found: list[tuple[str, int]] = []
    for field in sorted(fields):
        name = _indexed_column(table, field, binary)
        if name is None:
            continue  # no index can serve it: nothing to ask the rows
        marks = (f"\x00rank2:{field}", f"\x00rank3:{field}")  # field names hold no U+0000
        if known is not None and marks[0] in known:
            rank = 2 if known[marks[0]] else 3 if known[marks[1]] else None
        else:
            rank = _fixed(conn, table, name, field != "id")
            if known is not None:
                known[marks[0]], known[marks[1]] = rank == 2, rank == 3
        if rank is not None:
            found.append((field, rank))
    return tuple(found)


def _indexed_column(table: ForeignTable, field: str, binary: frozenset[str]) -> str | None:
    """The column ``field`` orders by when a full BINARY index leads with it (``id``: the one
    key column, unless it is the rowid or its alias, which the compiler orders bare anyway);
    a generated column is left out. ``None`` otherwise."""
    if field == "id":
        if len(table.key) != 1 or table.integer_key is not None:
            return None
        name = table.key[0]
    else:
        name = next((c.name for c in table.columns if c.field == field), "")
    if name not in binary:
        return None
    column = next((c for c in table.columns if c.name == name), None)
    return None if column is None or column.generated else name


def _fixed(conn: sqlite3.Connection, table: ForeignTable, name: str, sniff: bool) -> int | None:
    """The one rank every row holds in column ``name`` (see ``fixed_ranks``), else ``None``;
    ``sniff``: text starting like a JSON container is read as JSON (a field, not the id)."""
    column = next(c for c in table.columns if c.name == name)
    col, source = quote(name), quote(table.name)
    if conn.execute(f"SELECT 1 FROM {source} WHERE {col} IS NULL LIMIT 1").fetchone():
        return None
    ends = [
        conn.execute(
            f"SELECT {col} FROM {source} WHERE {col} IS NOT NULL ORDER BY {col} {way} LIMIT 1"
        ).fetchone()
        for way in ("ASC", "DESC")
    ]
    if ends[0] is None or ends[1] is None:
        return None  # an empty table: nothing to gain
    low, high = ends[0][0], ends[1][0]
    if all(isinstance(v, int | float) for v in (low, high)):
        return 2 if -math.inf < low and high < math.inf else None
    if not all(isinstance(v, str) for v in (low, high)) or _numeric_affinity(column.type):
        return None
    if sniff:
        for first, after in (("[", "\\"), ("{", "|")):
            container = f"SELECT 1 FROM {source} WHERE {col} >= ? AND {col} < ? LIMIT 1"
            if conn.execute(container, (first, after)).fetchone():
                return None
    return 3


def binary_leading(conn: sqlite3.Connection, table: ForeignTable) -> frozenset[str]:
    """The columns of ``table`` that lead a full (not partial) index in BINARY collation: the
    order ``COLLATE BINARY`` asks for is then the index's. Read from the schema (an index's
    collation is part of its definition), so a reader decides it once per schema version."""
    found: set[str] = set()
    for index in table.indexes:
        if index["partial"] or not index["columns"] or index["columns"][0] in found:
            continue
        row = conn.execute(
            "SELECT coll FROM pragma_index_xinfo(?, 'main') WHERE seqno = 0", (index["name"],)
        ).fetchone()
        if row is not None and str(row[0]).upper() == "BINARY":
            found.add(index["columns"][0])
    return frozenset(found)
