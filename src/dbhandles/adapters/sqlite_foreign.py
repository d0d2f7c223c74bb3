"""Records of an SQLite table or view dbhandles did not create: reads by key, listings, counts.

``SqliteSession`` hands a name here when the catalog says it is a foreign table
(``Catalog.foreign``); the collection path never sees one. A record is the row's columns as JSON
values (``foreign_values``) after its ``id`` (see ``sqlite_foreign_schema`` for what the key is).
Writes go through ``sqlite_foreign_write``; what cannot be written is refused with ``read_only``
saying why (docs/foreign-tables.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from dbhandles.adapters import sqlite_pages
from dbhandles.adapters.base import Query, Record
from dbhandles.adapters.foreign_common import ColumnPaths
from dbhandles.adapters.foreign_values import RecordLayout, decode_key
from dbhandles.adapters.group_bytes import first_past, row_size
from dbhandles.adapters.sql_compile import Fragment, SqlCompiler, and_
from dbhandles.adapters.sqlite_foreign_schema import DUPLICATE, ForeignTable, quote
from dbhandles.adapters.sqlite_foreign_sql import binary_leading, compiler_for, fixed_ranks
from dbhandles.adapters.sqlite_guard import KEPT_POINT, installed
from dbhandles.byte_cache import ByteCache, deep_sizeof
from dbhandles.errors import InvalidParams
from dbhandles.filters import And, Compare, ElemMatch, FilterNode, Not, Or, SortKey
from dbhandles.values import number_text

__all__ = ["ForeignReader"]

#: Bytes of compiled filters and first-page statements each reader keeps (``ForeignReader._where``,
#: ``_page_sql``): filters are the caller's, so a count of entries let big ones pin memory (issue 13).
WHERE_CACHE_BYTES = 1 << 20


class ForeignReader:
    """The SQL of one foreign table, built once per schema version (the catalog caches it)."""

    def __init__(self, table: ForeignTable) -> None:
        self.table = table
        shown = [c for c in table.columns if c.field != "id"]
        self.fields = [c.field for c in shown]
        self.keys = ("id", *self.fields)
        # The id, then each column once: a single key column that is also a field (an ``n``
        # primary key served as ``id`` and ``n``) is selected once and read twice (``layout``).
        id_sql = table.id_sql
        alias = table.id_alias
        columns: list[str] = [id_sql if alias is None else f"{id_sql} AS {quote(alias)}"]
        sources = [0]
        for column in shown:
            name = quote(column.name)
            if name == id_sql:
                sources.append(0)
            else:
                sources.append(len(columns))
                columns.append(name)
        self.select = ", ".join(columns)
        #: How a selected row becomes a record (``foreign_values.RecordLayout``).
        self.layout = RecordLayout(self.keys, sources, table.integer_key is not None)
        #: The table itself; ``source`` is what reads select from: for a view, its rows numbered
        #: among the rows equal to them (``ForeignTable.id_sql``), over the whole view before any
        #: filter, so ids stay the same from page to page while the rows do not change. Rows whose
        #: JSON is equal but whose values are not (an infinity and its negative are both null) are
        #: numbered in the order of their values, so each keeps its number from query to query.
        self.relation = quote(table.name)
        self.source = self.relation
        if table.numbered:
            values = ", ".join(quote(c.name) for c in table.columns)
            self.source = (
                f"(SELECT *, row_number() OVER (PARTITION BY {table.row_json} ORDER BY {values}) "
                f"AS {DUPLICATE} FROM {self.relation}) AS {self.relation}"
            )
        self._compilers: dict[tuple[frozenset[str], tuple[tuple[str, int], ...]], SqlCompiler] = {}
        self._wheres: ByteCache[tuple[int, str], Fragment] = ByteCache(WHERE_CACHE_BYTES)
        self._pages: ByteCache[tuple[int, str, tuple[SortKey, ...]], str] = ByteCache(
            WHERE_CACHE_BYTES
        )
        #: ``table.integer_key`` and its test, worked out once (every read by key asks).
        self._integer_key = table.integer_key
        self._integer_match = f"{self._integer_key} = ?"
        #: Which column a dotted path names (a column whose name holds '.').
        self.paths = ColumnPaths(self.fields)
        #: The columns leading a full BINARY index (``sqlite_foreign_sql.binary_leading``): read
        #: from the schema at the first ordered page, not at every one.
        self._binary: frozenset[str] | None = None
        #: ``keyless`` readers by what the key holds.
        self._keyless: dict[str, ForeignReader] = {}

    def keyless(self, fault: str = "") -> ForeignReader:
        """This table served without its key (``ForeignTable.without_key``), its ``read_only``
        reason saying ``fault`` (which key holds what: ``"k" holds NULL``); one reader per
        fault, kept (a few at most: NULL, an infinity, a BLOB, two kinds, per key column)."""
        found = self._keyless.get(fault)
        if found is None:
            found = self._keyless[fault] = ForeignReader(self.table.without_key(fault))
        return found

    def current(self, conn: sqlite3.Connection) -> ForeignReader:
        """The reader to serve the table with now: this one, or ``keyless`` while a key holds
        what no id names soundly (``ForeignTable.key_probe``: NULL, an infinity, a BLOB, numbers
        and text mixed), asked in the caller's transaction by a few steps into the key's index,
        since such a key may be written at any time without changing the schema."""
        probe = self.table.key_probe
        if probe is None:
            return self
        row = conn.execute(probe).fetchone()
        return self if row is None else self.keyless(str(row[0]))

    @cached_property
    def compiler(self) -> SqlCompiler:
        return compiler_for(self.table)

    @cached_property
    def _probes(self) -> dict[str, str]:
        """Field -> a query telling whether its column holds any JSON array text, for columns that
        lead a full (not partial) index: the probe is then one step into that index."""
        leading = {
            index["columns"][0] for index in self.table.indexes
            if index["columns"] and not index["partial"]
        }  # fmt: skip
        return {
            c.field: f"SELECT 1 FROM {self.source} WHERE {quote(c.name)} >= '[' AND "
            f"{quote(c.name)} < '\\' LIMIT 1"
            for c in self.table.columns
            if c.name in leading and c.field != "id"
        }

    def _compiler(
        self, conn: sqlite3.Connection, filter: FilterNode | None, order: Sequence[SortKey] = (),
        arrays: dict[str, bool] | None = None, ordering: bool = False,
    ) -> SqlCompiler:  # fmt: skip
        """The compiler for one query: indexed columns the filter or order names that hold no
        JSON array in this snapshot (the session's transaction, so the answer holds for the query)
        are compiled without their array branch, which lets their index serve the query alone.
        With ``ordering`` (a page: its ORDER BY), the indexed columns it orders by (and ``id``)
        that hold one rank in every row are ordered by the bare column
        (``sqlite_foreign_sql.fixed_ranks``), so their index serves the order: no sort per page.

        ``arrays`` (field -> whether its column holds a JSON array) keeps the probes' answers for
        the queries of one read transaction, whose snapshot cannot change: a listing's page and
        count probe once."""
        ordered = {key.path[0] for key in order if len(key.path) == 1}
        fixed: tuple[tuple[str, int], ...] = ()
        if ordering and self.table.indexes:
            binary = self._binary
            if binary is None:  # schema only: once per reader (one per schema version)
                binary = self._binary = binary_leading(conn, self.table)
            if binary:
                fixed = fixed_ranks(conn, self.table, {*ordered, "id"}, arrays, binary)
        probes = self._probes
        named = set(ordered)
        _top_fields(filter, named)
        clean: list[str] = []
        for field in named if probes else ():
            if field not in probes:
                continue
            holds = None if arrays is None else arrays.get(field)
            if holds is None:
                holds = conn.execute(probes[field]).fetchone() is not None
                if arrays is not None:
                    arrays[field] = holds
            if not holds:
                clean.append(field)
        arrayless = frozenset(clean)
        if not arrayless and not fixed:
            return self.compiler
        found = self._compilers.get((arrayless, fixed))
        if found is None:
            found = self._compilers[(arrayless, fixed)] = compiler_for(self.table, arrayless, fixed)
        return found

    def _where(self, compiler: SqlCompiler, filter: FilterNode | None) -> Fragment:
        """``compiler.where(filter)``, remembered as ``SqliteAdapter.where`` remembers a
        collection's (keyed by the tree's ``repr``: ``1``, ``1.0`` and ``True`` are equal but
        different filters): a listing compiles its filter once, not for its page and its count."""
        key = (id(compiler), repr(filter))  # compilers live as long as this reader
        found = self._wheres.get(key)
        if found is None:
            found = compiler.where(filter)
            self._wheres.put(key, found, deep_sizeof((key, found)))
        return found

    def record(self, row: tuple[Any, ...]) -> Record:
        """The record of a row selected by ``select``: its ``id``, then its fields."""
        return self.layout.record(row)

    @cached_property
    def point(self) -> str | None:
        """``SqliteAdapter.read_one``'s kept statement for this table when it is the same for
        every id (an integer key: the rowid or its alias, which never holds NULL, so ``current``
        is always this reader), its one parameter being ``integer_id``'s value, its row the
        ``select`` columns; else ``None``. Like a collection's (``sqlite_points.point_statement``;
        both end with ``sqlite_guard.KEPT_POINT``), it reads no ``schema_version``: ``read_one`` trusts it
        only when SQLite did not prepare it again while it ran."""
        if self._integer_key is None or self.table.key_probe is not None:
            return None
        if self.table.refused is not None:
            return None
        return (
            f"SELECT {self.select} FROM {self.source} WHERE {self._integer_match} LIMIT 1"
            + KEPT_POINT
        )

    @staticmethod
    def integer_id(record_id: str) -> int | None:
        """The integer an id names for a table with an integer key (``key_match``), else ``None``."""
        numbers = _numbers(record_id)
        return numbers[0] if numbers and type(numbers[0]) is int else None

    def key_match(self, record_id: str) -> tuple[str, tuple[object, ...]] | None:
        """The WHERE clause selecting the row whose ``id`` is ``record_id``; ``None`` if none can."""
        table = self.table
        if self._integer_key is not None:
            key_number = self.integer_id(record_id)
            return None if key_number is None else (self._integer_match, (key_number,))
        if table.compound_id:
            width = len(table.key) or len(table.columns)
            key_text = record_id
            if table.numbered:
                # ``[...]#2``: the second of rows equal in every column; the id text decides.
                head, mark, number = record_id.rpartition("#")
                if mark and head.endswith("]") and number.isdigit():
                    key_text = head
            values = decode_key(key_text, width, blobs=True)
            if values is None:
                return None
            names = table.key or tuple(c.name for c in table.columns)
            # The columns give the planner the key's index; the id text makes the match exact.
            tests = " AND ".join(
                f"{quote(n)} IS ?" for n, v in zip(names, values, strict=True) if v is not None
            )
            params = tuple(v for v in values if v is not None)
            exact = f"{table.id_sql} = ?"
            return (f"{tests} AND {exact}" if tests else exact), (*params, record_id)
        # One key column of any declared type: its affinity turns '42' into 42 where it would
        # store that, and a key stored as a number in a column without affinity matches too.
        key = quote(table.key[0])
        candidates: list[object] = [record_id, *_numbers(record_id)]
        marks = ", ".join("?" for _ in candidates)
        return f"{key} IN ({marks})", tuple(candidates)

    def sources(self, conn: sqlite3.Connection) -> list[str]:
        """The tables and views this view reads, at any depth (``[]`` for a table): what SQLite's
        authorizer reports as read while it prepares a select of the view."""
        if self.table.kind != "view":
            return []
        read: set[str] = set()

        def note(action: int, table: str | None, *_: object) -> int:
            if action == sqlite3.SQLITE_READ and table and table != self.table.name:
                read.add(table)
            # Everything is let through here: ``LIMIT 0`` returns no row, and a pragma table it
            # reads is reported like any table (so a restricted handle finds it not allowed).
            return sqlite3.SQLITE_OK

        conn.set_authorizer(note)
        try:
            conn.execute(f"SELECT * FROM {self.relation} LIMIT 0").fetchall()
        finally:
            conn.set_authorizer(installed(conn))  # the connection's own guard (sqlite_guard), back
        return sorted(read)

    def get(self, conn: sqlite3.Connection, record_id: str) -> Record | None:
        match = self.key_match(record_id)
        if match is None:
            return None
        where, params = match
        row = conn.execute(
            f"SELECT {self.select} FROM {self.source} WHERE {where} LIMIT 1", params
        ).fetchone()
        return None if row is None else self.record(row)

    def find(
        self, conn: sqlite3.Connection, query: Query, arrays: dict[str, bool] | None = None
    ) -> list[Record]:
        """The records ``query`` selects (``arrays``: see ``_compiler``)."""
        filter, order_keys = self.paths.filter(query.filter), self.paths.order(query.order)
        compiler = self._compiler(conn, filter, order_keys, arrays, ordering=True)
        where = self._where(compiler, filter)
        if query.offset < 0 or (query.limit is not None and query.limit < 0):
            raise InvalidParams("limit and offset cannot be negative", field="limit")
        if query.after is None:
            statement = self._page_sql(compiler, where, order_keys)
        else:
            where = and_(where, compiler.after(order_keys, query.after))
            statement = self._statement(where.sql, compiler.order_by(order_keys))
        cursor = conn.execute(
            statement, (*where.params, -1 if query.limit is None else query.limit, query.offset)
        )
        return self.layout.records(_page_rows(cursor, self.table.name))

    def _statement(self, where: str, order: str) -> str:
        return f"SELECT {self.select} FROM {self.source} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?"

    def _page_sql(
        self, compiler: SqlCompiler, where: Fragment, order_keys: tuple[SortKey, ...]
    ) -> str:
        """The statement of a first page (no keyset position), remembered per compiler, filter
        SQL and order: a listing asked again compiles nothing (``_where`` keeps the filter's)."""
        key = (id(compiler), where.sql, order_keys)  # compilers live as long as this reader
        found = self._pages.get(key)
        if found is None:
            found = self._statement(where.sql, compiler.order_by(order_keys))
            self._pages.put(key, found, deep_sizeof((key, found)))
        return found

    def count(
        self, conn: sqlite3.Connection, filter: FilterNode | None,
        arrays: dict[str, bool] | None = None,
    ) -> int:  # fmt: skip
        """How many rows ``filter`` selects (``arrays``: see ``_compiler``)."""
        filter = self.paths.filter(filter)
        where = self._where(self._compiler(conn, filter, (), arrays), filter)
        # Rows are numbered among their equals only for an id; a count without one needs none.
        source = self.source if DUPLICATE in where.sql else self.relation
        sql = f"SELECT count(*) FROM {source} WHERE {where.sql}"
        return int(conn.execute(sql, where.params).fetchone()[0])


_SIZED = frozenset({str, bytes})


def _page_rows(cursor: sqlite3.Cursor, name: str) -> list[tuple[Any, ...]]:
    """The rows of a page, refused once their text (as UTF-8) and blobs pass
    ``sqlite_pages.MAX_PAGE_BYTES``, counted as ``sqlite_pages.fetch_page`` counts a foreign row
    (each value's ``group_bytes.most_bytes`` as it is read, the rows measured exactly by
    ``group_bytes.first_past`` only once that estimate reaches the bound), by a plain loop over
    each row's values, where ``fetch_page``'s generator of ``isinstance`` tests took a fifth of a
    listing's time (docs/performance.md, issue 15).

    Raises:
        QueryFailed: the page would pass ``MAX_PAGE_BYTES`` (``sqlite_pages.page_too_large``).
    """
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    settled, measured, ahead = 0, 0, 0
    bound = sqlite_pages.MAX_PAGE_BYTES  # read at each call: tests lower it
    sized = _SIZED
    try:
        for row in cursor:
            append(row)
            for value in row:
                if type(value) in sized:  # sqlite3 gives str and bytes, never a subclass
                    ahead += len(value) if value.isascii() else 4 * len(value)
            if settled + ahead > bound:
                settled, past = first_past(rows, measured, settled, row_size, bound)
                if past is not None:
                    raise sqlite_pages.page_too_large(name, past)
                measured, ahead = len(rows), 0
        return rows
    except BaseException:
        # As in ``fetch_page``: a failed row (text that is not UTF-8, the bound, an interrupt)
        # leaves the statement stepped; reset it now, or its read lock outlives the call.
        cursor.close()
        raise


def _numbers(record_id: str) -> list[object]:
    """The number ``record_id`` is the canonical text of (``values.number_text``: ``42``, ``2.5``,
    ``1e-7``), as a one-item list; ``[]`` for any other text. The number matches a key stored as a
    number in a column without affinity; an integer outside SQLite's 64 bits matches nothing."""
    try:
        number = int(record_id)
    except ValueError:
        try:
            real = float(record_id)
        except ValueError:
            return []
        return [real] if number_text(real) == record_id else []
    return [number] if str(number) == record_id and -(2**63) <= number < 2**63 else []


def _top_fields(node: FilterNode | None, into: set[str]) -> None:
    """Add the fields ``node`` tests at the top level (paths of one part) to ``into``."""
    if isinstance(node, Compare | ElemMatch):
        if len(node.path) == 1:
            into.add(node.path[0])
    elif isinstance(node, And | Or):
        for child in node.children:
            _top_fields(child, into)
    elif isinstance(node, Not):
        _top_fields(node.child, into)
