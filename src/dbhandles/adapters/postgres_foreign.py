"""Records of a PostgreSQL table or view dbhandles did not create: reads by key, listings, counts.

``PostgresSession`` asks ``ForeignCatalog.reader`` whether a name is such a relation
(``postgres_foreign_schema.resolve``); the collection path never sees one. A record is the row's
columns as the JSON values ``postgres_foreign_sql.json_sql`` makes of them, after its ``id``:

* a primary key of one column: that column's value (a number for an integer key, a string for a
  text or ``uuid`` key, ...);
* a compound key: the compact JSON text of the key's values in key order (``["2024-01-01",7]``,
  the encoding ``foreign_values.encode_key`` gives SQLite's compound keys);
* no key (views, key-less tables): the JSON text of all the columns, and for the second, third ...
  of rows equal in every column ``#2``, ``#3`` after it (``postgres_foreign_sql.keyless_source``).

Writes go through ``postgres_foreign_write``; what cannot be written is ``read_only`` saying why.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import Any

import orjson
from psycopg import Connection, sql

from dbhandles.adapters.base import Query, Record
from dbhandles.adapters.foreign_common import ColumnPaths
from dbhandles.adapters.foreign_values import decode_key, records_builder
from dbhandles.adapters.postgres_bytes import bounded_columns, columns_rows
from dbhandles.adapters.postgres_compile import boolean, prepare_filter
from dbhandles.adapters.postgres_foreign_keys import holds_odd_key, settle, without_key
from dbhandles.adapters.postgres_foreign_schema import PgTable, describe, relations, resolve
from dbhandles.adapters.postgres_foreign_sql import (
    DUPLICATE,
    compiler_for,
    id_json,
    id_scalar,
    json_sql,
    keyless_source,
    quote,
)
from dbhandles.adapters.postgres_reach import read_reach
from dbhandles.adapters.sql_compile import Fragment, and_
from dbhandles.byte_cache import ByteCache, deep_sizeof
from dbhandles.errors import InvalidParams
from dbhandles.filters import FilterNode

__all__ = ["ForeignCatalog", "PgReader", "Run"]

_INTEGERS = frozenset({"int2", "int4", "int8"})
#: A placeholder, or an escaped ``%`` (kept as written), in compiled SQL.
_PLACEHOLDERS = re.compile(r"(%s|%%)")
_TEXTS = frozenset({"text", "varchar", "name"})
_INT64 = 2**63
#: How many descriptions a catalog keeps (one per table and definition).
_CACHED = 256
#: Bytes of compiled filters each reader keeps (``PgReader.where``), and of the names a catalog
#: remembers (``ForeignCatalog.resolved``): both are the caller's text (issue 13).
WHERE_CACHE_BYTES = 1 << 20

#: Runs a statement in the session's transaction: ``(statement, params, use the time budget)``.
Run = Callable[[sql.SQL, tuple[Any, ...], bool], Any]


def _integer(text: str) -> int | None:
    """``text`` as a 64-bit integer when it is one written canonically (``42``, not ``042``)."""
    try:
        number = int(text)
    except ValueError:
        return None
    return number if str(number) == text and -_INT64 <= number < _INT64 else None


class PgReader:
    """The SQL of one foreign relation, built once per definition (the catalog caches it)."""

    def __init__(self, table: PgTable) -> None:
        self.table = table
        self.compiler = compiler_for(table)
        shown = [c for c in table.columns if c.field != "id"]
        self.keys = ("id", *(c.field for c in shown))
        #: The value of each record key (``keys``), as the SELECT list computes it.
        self.columns = (id_json(table), *(json_sql(c) for c in shown))
        self.select = ", ".join(self.columns)
        #: The relation itself (what an INSERT names); ``own`` its own rows (``ONLY`` an ordinary
        #: table: an inheritance child's rows are the child's, and may repeat the parent's key);
        #: ``source`` is what reads, updates and deletes select from (``keyless_source``).
        self.relation = f"{quote(table.schema)}.{quote(table.name)}"
        self.own = f"ONLY {self.relation}" if table.only else self.relation
        self.source = self.own if table.key else keyless_source(table, self.own)
        found = id_scalar(table)
        self.id_sql = found[0] if found is not None else None
        #: Which column a dotted path names (a column whose name holds '.').
        self.paths = ColumnPaths(c.field for c in shown)
        #: A page's rows -> records, one dict display per row (``foreign_values.records_builder``).
        self._built: Callable[[Iterable[Sequence[Any]]], list[dict[str, Any]]] | None = None
        #: Compiled filters (``where``), by the filter tree's ``repr``.
        self._wheres: ByteCache[str, Fragment] = ByteCache(WHERE_CACHE_BYTES)

    def where(self, filter: FilterNode | None) -> Fragment:
        """The compiled condition of ``filter`` (dotted column names read, ``$regex`` translated),
        remembered as ``ForeignReader._where`` remembers SQLite's: a listing compiles its filter
        once, not for its page and its count, nor again on the next call. Keyed by the tree's
        ``repr`` (``1``, ``1.0`` and ``True`` are equal but different filters); the reader is
        built once per definition of the relation, so a cached condition never outlives it."""
        key = repr(filter)
        found = self._wheres.get(key)
        if found is None:
            found = self.compiler.where(prepare_filter(self.paths.filter(filter)))
            self._wheres.put(key, found, deep_sizeof((key, found)))
        return found

    def record(self, row: tuple[Any, ...]) -> Record:
        """The record of a row selected by ``select``: its ``id``, then its fields."""
        return dict(zip(self.keys, row, strict=True))

    @cached_property
    def keyless(self) -> PgReader:
        """The reader of this table served without its key (``postgres_foreign_keys``)."""
        return PgReader(without_key(self.table))

    def current(self, conn: Connection[Any]) -> PgReader:
        """This reader, or ``keyless`` while the key holds NaN or ±Infinity
        (``postgres_foreign_keys.holds_odd_key``)."""
        return self.keyless if holds_odd_key(self.table, conn) else self

    def key_match(self, record_id: str) -> tuple[str, tuple[Any, ...]] | None:
        """The WHERE clause selecting the row whose ``id`` is ``record_id``; ``None`` if none can
        (``abc`` for an integer key: no such row).

        Raises:
            InvalidParams: ``record_id`` holds U+0000, which PostgreSQL text cannot hold (on
                SQLite, another tool may have written a key with it: docs/foreign-tables.md).
        """
        if "\x00" in record_id:
            raise InvalidParams(
                "id: PostgreSQL text cannot hold U+0000 (NUL), so no row's id holds it", field="id"
            )
        table = self.table
        if len(table.key) == 1:
            column = table.column(table.key[0])
            name = quote(column.name)
            if column.base in _INTEGERS:
                number = _integer(record_id)
                return None if number is None else (f"{name} = %s", (number,))
            if column.base in _TEXTS:
                return f"{name} = %s", (record_id,)
            if column.base == "uuid":
                try:
                    canonical = str(uuid.UUID(record_id))
                except ValueError:
                    return None
                # Any spelling PostgreSQL's uuid input takes (upper case, no hyphens) is the
                # same key; the id a record shows is the canonical lower-case text.
                return f"{name} = %s::uuid", (canonical,)
            # Any other key: compare JSON values (a number id matches a number, any id a string).
            number_json = None
            try:
                parsed = orjson.loads(record_id)
                if type(parsed) in (int, float):
                    number_json = record_id
            except orjson.JSONDecodeError:
                pass
            key = json_sql(column)
            return (
                f"(({key}) = to_jsonb(%s::text) OR ({key}) = %s::jsonb)",
                (record_id, number_json),
            )
        assert self.id_sql is not None
        tests: list[str] = []
        params: list[Any] = []
        if table.key:
            values = decode_key(record_id, len(table.key))
            if values is None:
                return None
            # The key's own columns let the planner use its index; the id text makes it exact.
            for name, value in zip(table.key, values, strict=True):
                column = table.column(name)
                integer = column.base in _INTEGERS and type(value) is int
                if integer or (column.base in _TEXTS and type(value) is str):
                    tests.append(f"{quote(name)} = %s")
                    params.append(value)
        tests.append(f"{self.id_sql} = %s")
        params.append(record_id)
        return " AND ".join(tests), tuple(params)

    def sources(self, run: Run) -> list[str]:
        """What a read of this relation reaches besides itself, at any depth
        (``postgres_reach.read_reach``): the relations views read (``pg_rewrite`` ->
        ``pg_depend``), partitions and inheritance children, what row-level security policies
        read, named schema-qualified (``other.t``) when they are not in this relation's schema,
        so no permission list of this schema names them; then the code they run whose reads
        cannot be known (``postgres_reach.opaque``)."""
        return read_reach(
            lambda statement, params: run(sql.SQL(statement), params, False),
            self.table.oid,
            self.table.schema,
        )

    def get(self, run: Run, record_id: str, *, lock: bool = False) -> Record | None:
        match = self.key_match(record_id)
        if match is None:
            return None
        where, params = match
        suffix = " FOR UPDATE" if lock and self.table.read_only is None else ""
        row = run(
            sql.SQL(f"SELECT {self.select} FROM {self.source} WHERE {where} LIMIT 1{suffix}"),
            params,
            False,
        ).fetchone()
        return None if row is None else self.record(row)

    def find(self, run: Run, query: Query) -> list[Record]:
        compiler = self.compiler
        where = self.where(query.filter)
        order_keys = self.paths.order(query.order)
        if query.after is not None:
            where = and_(where, compiler.after(order_keys, query.after))
        where = boolean(where)
        if query.offset < 0 or (query.limit is not None and query.limit < 0):
            raise InvalidParams("limit and offset cannot be negative", field="limit")
        order = compiler.order_by(order_keys)
        # The page's bytes are measured in SQL (``postgres_bytes``): rows past the bound never
        # leave PostgreSQL, whatever its columns hold.
        statement = sql.SQL(
            bounded_columns(
                self.columns,
                f"FROM {self.source} WHERE {where.sql} ORDER BY {order} LIMIT %s OFFSET %s",
            )
        )
        found = run(statement, (*where.params, query.limit, query.offset), True).fetchall()
        rows = columns_rows(found, self.table.name)
        built = self._built
        if built is None:  # at the first page: a schema of many tables builds many readers
            built = self._built = records_builder(self.keys, range(len(self.keys)))
        return built(rows)

    def grouped(
        self, conn: Connection[Any], filter: FilterNode | None, fields: Sequence[str]
    ) -> sql.Composed:
        """The rows matching ``filter`` as a collection's grouped count reads them
        (``sql_facets.postgres_group_count``): a relation ``(SELECT id, data ...) AS fg`` whose
        ``data`` holds the ``jsonb`` value of each of ``fields`` under the key ``f0``, ``f1``...
        (a column's name need not be a collection's field name), so a count of a foreign table is
        bounded by its group keys' bytes, as a collection's, and not by a page's. The filter's values are inlined as literals (``sql.Literal``, rendered by
        ``conn``, their ``%`` doubled): the statement this goes into binds its own parameters
        around it."""
        where = boolean(self.where(filter))
        pieces = _PLACEHOLDERS.split(where.sql)
        values = iter(where.params)
        condition: list[sql.Composable] = []
        for piece in pieces:
            if piece == "%s":
                literal = sql.Literal(next(values)).as_string(conn)
                condition.append(sql.SQL(literal.replace("%", "%%")))
            elif piece:
                condition.append(sql.SQL(piece))
        shown = dict(zip(self.keys, self.columns, strict=True))
        pairs = sql.SQL(", ").join(
            sql.SQL(f"'f{i}', {shown.get(name, 'NULL::jsonb')}") for i, name in enumerate(fields)
        )
        head = sql.SQL(f"(SELECT {self.columns[0]} AS id, jsonb_build_object(")
        rest = sql.SQL(f") AS data FROM {self.source} WHERE ")
        return sql.Composed([head, pairs, rest, *condition, sql.SQL(") AS fg")])

    def count(self, run: Run, filter: FilterNode | None) -> int:
        where = boolean(self.where(filter))
        # Rows are numbered among their equals only for an id; a count without one needs none.
        source = self.source if DUPLICATE in where.sql else self.own
        statement = sql.SQL(f"SELECT count(*) FROM {source} WHERE {where.sql}")
        row = run(statement, where.params, True).fetchone()
        return int(row[0]) if row else 0


class ForeignCatalog:
    """The foreign relations of one schema; their readers are cached by definition, so a table
    altered by someone else (a column added, renamed, retyped) is described again."""

    def __init__(self, schema: str, camel_names: bool = False) -> None:
        self.schema = schema
        #: Serve snake_case columns as camelCase fields (``fieldNames: camel``).
        self.camel_names = camel_names
        self._readers: dict[tuple[int, tuple[str, ...]], PgReader] = {}
        #: The relation each name last resolved to (``None``: no foreign one), for ``resolved``.
        self._names: ByteCache[str, str | None] = ByteCache(WHERE_CACHE_BYTES)
        self._lock = threading.Lock()

    def reader(self, conn: Connection[Any], collection: str) -> PgReader | None:
        """The reader of the relation ``collection`` names when it is not a collection, else
        ``None`` (see ``postgres_foreign_schema.resolve``)."""
        try:
            relation = resolve(conn, self.schema, collection, self.camel_names)
        except BaseException:
            with self._lock:
                self._names.discard(collection)  # no answer now: none kept from before
            raise
        with self._lock:
            name = None if relation is None else relation.name
            self._names.put(collection, name, deep_sizeof((collection, name)))
        if relation is None:
            return None
        key = (relation.oid, relation.signature)
        found = self._readers.get(key)
        if found is None:
            table = describe(conn, self.schema, relation, self.camel_names)
            found = PgReader(settle(table, conn.info.server_version))
            with self._lock:
                if len(self._readers) >= _CACHED:
                    self._readers.clear()
                self._readers[key] = found
        return found.current(conn)

    def resolved(self, collection: str) -> tuple[bool, str | None]:
        """Whether ``reader`` has looked ``collection`` up (on any connection), and the foreign
        relation it found then (``None``: none), without a query."""
        with self._lock:
            if collection not in self._names:
                return False, None
            return True, self._names.get(collection)

    def tables(self, conn: Connection[Any]) -> list[PgTable]:
        """Every foreign relation of the schema, described now (``data/schema``)."""
        version = conn.info.server_version
        tables = []
        for relation in relations(conn, self.schema):
            table = settle(describe(conn, self.schema, relation, self.camel_names), version)
            tables.append(without_key(table) if holds_odd_key(table, conn) else table)
        return tables
