"""A session of the ``sqlite`` adapter: records in and out of one table per collection."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dbhandles.adapters.base import Query, Record, Session, record_from_columns
from dbhandles.adapters.facets import GroupCounts, combinations_error
from dbhandles.adapters.foreign_common import read_only_error
from dbhandles.adapters.group_bytes import fetch_groups
from dbhandles.adapters.record_rows import storage_fields
from dbhandles.adapters.sampling import Sampling
from dbhandles.adapters.sql_compile import RESERVED_COLUMNS, Fragment, and_
from dbhandles.adapters.sql_facets import (
    HASH_FUNCTION,
    read_groups,
    sqlite_group_count,
    sqlite_group_overflow,
    sqlite_hash,
    sqlite_sampled,
)
from dbhandles.adapters.sqlite_budget import budgeted
from dbhandles.adapters.sqlite_errors import translating
from dbhandles.adapters.sqlite_foreign import ForeignReader
from dbhandles.adapters.sqlite_foreign_schema import (
    cascade_targets,
    derived_from,
    schema_objects,
)
from dbhandles.adapters.sqlite_foreign_write import ForeignWriter
from dbhandles.adapters.sqlite_pages import fetch_page
from dbhandles.adapters.sqlite_points import POINT_COLUMNS, current_statement
from dbhandles.adapters.sqlite_records import (
    EXACT_COMPILER,
    Foreign,
    decode_all,
    exact_where,
    foreign_rows,
    read_rows,
)
from dbhandles.adapters.sqlite_schema import Catalog, index_sql, name_key
from dbhandles.adapters.sqlite_values import check_system, record_data
from dbhandles.dbfiles import MAX_VALUE_BYTES
from dbhandles.errors import (
    AccessDenied,
    DbHandlesError,
    InvalidParams,
    NotSupported,
    QueryFailed,
    ReadOnly,
)
from dbhandles.filters import SYSTEM_PREFIXES, FilterNode, validate_path
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.adapters.sqlite import SqliteAdapter

__all__ = ["Row", "SqliteSession", "resolve_in"]

_COLUMNS = "id, data, created_at, updated_at, version"
#: A record in storage form: ``(id, data JSON text, createdAt, updatedAt, version)``.
Row = tuple[str, str, Any, Any, Any]


def _encode(record: Record) -> Row:
    record_id, data, created_at, updated_at, version = storage_fields(record)
    if len(data) > MAX_VALUE_BYTES:
        raise InvalidParams(
            f"record {json_text(record_id, 80)} is {len(data) >> 20} MiB as JSON; a record of an "
            f"SQLite database holds at most {MAX_VALUE_BYTES >> 20} MiB",
            field="data",
        )
    return (record_id, data.decode(), created_at, updated_at, version)


def _decode(row: Sequence[Any], collection: str) -> Record:
    record_id, data, created_at, updated_at, version = row
    check_system(collection, record_id, created_at, updated_at, version)
    fields = record_data(data, collection, record_id)
    return record_from_columns(record_id, fields, created_at, updated_at, version)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def resolve_in(catalog: Catalog, name: str) -> str:
    """``Session.resolve_collection`` from the catalog: the foreign table ``name`` reaches, else the
    collection's stored spelling, else ``name``."""
    reader = catalog.foreign(name)
    if reader is not None:
        return reader.table.name
    try:
        return catalog.table(name) or name
    except InvalidParams:  # an index's name: no table, the command refuses it
        return name


class SqliteSession(Session):
    """A transaction on the adapter's connection (``BEGIN IMMEDIATE`` when opened for writing), or
    a read transaction on one of its pooled read connections (``pooled``: ``sqlite_readers``)."""

    def __init__(
        self,
        adapter: SqliteAdapter,
        conn: sqlite3.Connection,
        catalog: Catalog,
        write: bool,
        *,
        pooled: bool = False,
    ):
        self.adapter = adapter
        self.conn = conn
        self.catalog = catalog
        self.write = write
        #: A read session of its own connection, which no session on this thread writes into.
        self.pooled = pooled
        #: Per foreign table, which indexed columns hold JSON arrays, as probed in this read
        #: transaction (``ForeignReader._compiler``); a write session probes every query.
        self._arrays: dict[ForeignReader, dict[str, bool]] = {}

    def _check_write(self) -> None:
        # Writing inside a deferred (read) transaction could fail mid-way with SQLITE_BUSY when it
        # upgrades its lock; a write session takes the write lock up front instead.
        if not self.write:
            raise DbHandlesError(
                "a write was attempted in a read session; open the session with write=True"
            )

    def _writable(self, collection: str) -> str:
        self._check_write()
        self._not_foreign(collection)
        return self.catalog.create(collection)

    def _foreign(self, collection: str) -> ForeignReader | None:
        """The reader of a table or view dbhandles did not create by this name, else ``None``.

        Raises:
            ReadOnly: it is one, but cannot be read (a virtual table whose module is not loaded,
                the storage table of a virtual table): the error says which.
            QueryFailed: a view whose SQL SQLite cannot run (it reads a missing table or column,
                it is circularly defined).
            AccessDenied: a view SQLite refuses to run for a schema it does not trust (over
                ``dbstat``, ``fsdir``...: ``sqlite_guard.schema_refusal``).
        """
        reader = self.catalog.foreign(collection)
        if reader is not None and reader.table.refused is not None:
            if reader.table.refused_code == AccessDenied.code:  # sqlite_guard.schema_refusal
                raise AccessDenied(reader.table.refused)
            if reader.table.refused_code == QueryFailed.code:  # a view SQLite cannot run
                raise QueryFailed(reader.table.refused, field="collection")
            raise ReadOnly(f"{reader.table.refused}; it cannot be served", field="collection")
        return reader

    def _probed(self, reader: ForeignReader) -> dict[str, bool] | None:
        """What this read transaction's queries know of ``reader``'s columns; ``None`` for a
        write session (a write may put a JSON array into one) and for a session nested in
        another (which may write between two of its queries)."""
        if self.write:
            return None
        active = self.adapter._active
        if not self.pooled and (not active or active[0] is not self):
            return None
        found = self._arrays.get(reader)
        if found is None:
            found = self._arrays[reader] = {}
        return found

    def _not_foreign(self, collection: str) -> None:
        reader = self.catalog.foreign(collection)
        if reader is not None:
            raise read_only_error(reader.table)

    def _translating(
        self, collection: str | None = None, record_id: str | None = None
    ) -> AbstractContextManager[None]:
        return translating(path=self.adapter.path, collection=collection, record_id=record_id,
                           foreign=self.catalog.foreign)  # fmt: skip

    def get(self, collection: str, record_id: str) -> Record | None:
        with self._translating(collection):
            reader = self._foreign(collection)
            if reader is not None:
                with budgeted(self.conn):  # a view's row may take any time to compute
                    return reader.get(self.conn, record_id)
            if self.catalog.table(collection) is None:
                return None
            row = self.conn.execute(
                f"SELECT {POINT_COLUMNS} FROM {_q(collection)} WHERE id = ?", (record_id,)
            ).fetchone()
            return None if row is None else _decode(row, collection)

    def get_current(self, collection: str, record_id: str) -> tuple[int | None, Record | None]:
        """``get`` as one statement that also reads the file's ``schema_version``, without a
        ``PRAGMA`` of its own: ``SqliteAdapter.read_one``'s fast path, outside any transaction.

        Which statement to run is decided from the catalog as cached; the version read in the
        same statement (so in the same read transaction) as the row says whether that cache
        still described the file when the row was read. Returns ``(version, record)``:
        ``version`` is ``None`` when no row came back (a miss, or an id no row can have), and
        the caller then confirms the cache some other way (``Catalog.refresh`` finding the same
        version: the version only grows, so an unchanged version means an unchanged schema
        in between).

        Raises:
            sqlite3.Error, DbHandlesError: untranslated, perhaps only because the cache is stale
                (a table another connection dropped): the caller refreshes and uses ``get``.
        """
        reader = self._foreign(collection)
        if reader is not None:
            match = reader.key_match(record_id)
            if match is None:
                return None, None
            where, params = match
            with budgeted(self.conn):  # a view's row may take any time to compute
                row = self.conn.execute(
                    f"SELECT (SELECT schema_version FROM pragma_schema_version), {reader.select} "
                    f"FROM {reader.source} WHERE {where} LIMIT 1",
                    params,
                ).fetchone()
            return (None, None) if row is None else (row[0], reader.record(row[1:]))
        table = self.catalog.table(collection)
        if table is None:
            return None, None
        # One row whether or not the record exists: the version is read either way. Every
        # column is qualified, so no column of the table can shadow ``schema_version``.
        version, found, data, created_at, updated_at, row_version = self.conn.execute(
            current_statement(table), (record_id,)
        ).fetchone()
        if found is None:
            return version, None
        # ``_decode`` written out (the hot path of data/read: no slice, no two calls).
        check_system(collection, found, created_at, updated_at, row_version)
        fields = record_data(data, collection, found)
        return version, {"id": found, **fields, "createdAt": created_at,
                         "updatedAt": updated_at, "version": row_version}  # fmt: skip

    def insert(self, collection: str, record: Record) -> None:
        row = _encode(record)
        with self._translating(collection, row[0]):
            self._writable(collection)
            self.conn.execute(
                f"INSERT INTO {_q(collection)} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", row
            )

    def insert_many(
        self, collection: str, records: list[Record], *, skip_existing: bool = False
    ) -> int:
        """Store many new records in one ``executemany``; return how many were inserted.

        With ``skip_existing`` a record whose id is taken (already stored, or earlier in the batch)
        is left alone; otherwise a taken id raises ``RecordExists`` and the session rolls back.
        """
        return self.insert_many_raw(collection, map(_encode, records), skip_existing=skip_existing)

    def insert_many_raw(
        self, collection: str, rows: Iterable[Row], *, skip_existing: bool = False
    ) -> int:
        """The importer's fast path: rows already in storage form, inserted as they are.

        Each row is ``(id, data, createdAt, updatedAt, version)`` where ``data`` is the JSON text of
        an object holding the user fields only; the caller guarantees that (the importer stores a
        line's own text when it has no reserved key), so nothing is parsed or re-serialised here.
        """
        conflict = " ON CONFLICT (id) DO NOTHING" if skip_existing else ""
        with self._translating(collection):
            self._writable(collection)
            cursor = self.conn.executemany(
                f"INSERT INTO {_q(collection)} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?){conflict}", rows
            )
            return max(cursor.rowcount, 0)

    def replace(self, collection: str, record: Record) -> None:
        row = _encode(record)
        with self._translating(collection, row[0]):
            self._writable(collection)
            self.conn.execute(
                f"INSERT INTO {_q(collection)} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data, created_at = "
                "excluded.created_at, updated_at = excluded.updated_at, version = excluded.version",
                row,
            )

    def table_writer(self, collection: str) -> ForeignWriter | None:
        """The writer of a table dbhandles did not create (``sqlite_foreign_write``), else ``None``."""
        with self._translating(collection):
            reader = self._foreign(collection)
        if reader is None:
            return None
        self._check_write()
        return ForeignWriter(self.conn, reader)

    def delete(self, collection: str, record_id: str) -> bool:
        with self._translating(collection, record_id):
            self._check_write()
            writer = self.table_writer(collection)
            if writer is not None:
                return writer.delete(record_id)
            if self.catalog.table(collection) is None:
                return False
            cursor = self.conn.execute(f"DELETE FROM {_q(collection)} WHERE id = ?", (record_id,))
            return cursor.rowcount > 0

    def find(self, collection: str, query: Query) -> list[Record]:
        with self._translating(collection):
            reader = self._foreign(collection)
        if reader is not None:
            with self._translating(collection), budgeted(self.conn):
                return reader.find(self.conn, query, self._probed(reader))
        compiler = self.adapter.compiler
        where = self.adapter.where(query.filter, self.catalog)
        exact = exact_where(query.filter)
        if query.after is not None:
            where = and_(where, compiler.after(query.order, query.after))
            exact = and_(exact, EXACT_COMPILER.after(query.order, query.after))
        order = compiler.order_by(query.order)
        if query.offset < 0 or (query.limit is not None and query.limit < 0):
            raise InvalidParams("limit and offset cannot be negative", field="limit")
        with self._translating(collection):
            if self.catalog.table(collection) is None:
                return []
            page = (-1 if query.limit is None else query.limit, query.offset)
            if all(len(k.path) == 1 and k.path[0] in compiler.columns for k in query.order):
                return self._records(
                    lambda fast: f"SELECT {_COLUMNS} FROM {_q(collection)} WHERE {fast} "
                    f"ORDER BY {order} LIMIT ? OFFSET ?",
                    page, collection, (where, exact),
                )  # fmt: skip
            # Sorted by a field: the sort reads the canonical text too (``sqlite_records.source``).
            return self._records(
                lambda source: f"SELECT {_COLUMNS} FROM {source} WHERE {where.sql} "
                f"ORDER BY {order} LIMIT ? OFFSET ?",
                (*where.params, *page), collection,
            )  # fmt: skip

    def count(self, collection: str, filter: FilterNode | None) -> int:
        with self._translating(collection):
            reader = self._foreign(collection)
        if reader is not None:
            with self._translating(collection), budgeted(self.conn):
                return reader.count(self.conn, filter, self._probed(reader))
        where = self.adapter.where(filter, self.catalog)
        with self._translating(collection):
            if self.catalog.table(collection) is None:
                return 0
            rows = self._rows(
                lambda fast: f"SELECT count(*) FROM {_q(collection)} WHERE {fast}",
                (), collection, guard=(where, exact_where(filter)),
            )  # fmt: skip
            return int(rows[0][0])

    def _rows(
        self,
        sql: Callable[[str], str],
        params: Sequence[object],
        collection: str,
        *,
        guard: tuple[Fragment, Fragment] | None = None,
        exact: bool = False,
        page: bool = False,
        fetch: Callable[[sqlite3.Cursor], list[Any]] | None = None,
    ) -> list[Any]:
        """The rows of ``sql(...)``, run by ``sqlite_records.read_rows``: ``sql`` gets the
        collection as ``source`` gives it, or with ``guard`` (the filter compiled for the stored and
        for the canonical text) the condition ``guarded`` makes, whose parameters go first. ``page``:
        records read by ``fetch_page`` (``query_failed`` past its bound); ``fetch`` reads otherwise."""
        return self._read(sql, params, collection, guard, exact, page, fetch)[0]

    def _read(self, sql: Callable[[str], str], params: Sequence[object], collection: str,
              guard: tuple[Fragment, Fragment] | None, exact: bool, page: bool,
              fetch: Callable[[sqlite3.Cursor], list[Any]] | None = None,
              ) -> tuple[list[Any], Foreign | None]:  # fmt: skip
        """``_rows``, and the rows another tool wrote that it read canonically."""

        def run(test: Fragment) -> list[Any]:
            with budgeted(self.conn):
                cursor = self.conn.execute(sql(test.sql), (*test.params, *params))
                if fetch is not None:
                    return fetch(cursor)
                return fetch_page(cursor, collection, 1) if page else cursor.fetchall()

        return read_rows(self.conn, self.catalog, _q(collection), guard, exact, run)

    def unreadable(self, collection: str) -> int:
        if self._is_foreign(collection):
            return 0
        with self._translating(collection):
            if self.catalog.table(collection) is None:
                return 0
            return foreign_rows(self.conn, self.catalog, _q(collection)).unreadable

    def _records(
        self,
        sql: Callable[[str], str],
        params: Sequence[object],
        collection: str,
        guard: tuple[Fragment, Fragment] | None = None,
    ) -> list[Record]:
        """``_rows`` of whole records, decoded; read with the exact test when one the fast test let
        through cannot be read (a number past a double, which SQLite reads as infinity)."""
        records, complete = decode_all(*self._read(sql, params, collection, guard, False, True))
        if complete:
            return records
        rows = self._rows(sql, params, collection, guard=guard, exact=True, page=True)
        return decode_all(rows)[0]

    def _is_foreign(self, collection: str) -> bool:
        """A table dbhandles did not create: counts and samples go through ``find`` (in Python)."""
        with self._translating(collection):
            return self._foreign(collection) is not None

    def group_count(
        self,
        collection: str,
        filter: FilterNode | None,
        group_by: tuple[tuple[str, ...], ...],
        limit: int,
    ) -> GroupCounts:
        """One ``json_each`` ``GROUP BY`` query (``sql_facets``); the rule is ``facets``."""
        with self._translating(collection):
            reader = self._foreign(collection)
        if reader is not None:
            # A column named ``a.b`` is the path a -> b (``ColumnPaths``), as in the filter.
            paths = reader.paths
            return super().group_count(collection, filter, paths.groups(group_by), limit)
        where = self.adapter.compiler.where(filter)
        statement = sqlite_group_count(where, group_by, limit)
        overflow = sqlite_group_overflow(where, group_by)
        with self._translating(collection):
            if self.catalog.table(collection) is None:
                return GroupCounts()
            rows = self._rows(statement.join, statement.params, collection,
                              fetch=lambda cursor: fetch_groups(cursor, collection, group_by))  # fmt: skip
            # No row: no record matched, or one had too many combinations (the statement
            # then stops before joining the paths); only then is the bound looked at again.
            if (
                not rows
                and overflow is not None
                and self._rows(overflow.join, overflow.params, collection)
            ):
                raise combinations_error(group_by)
        return read_groups(rows, group_by)

    def find_sampled(self, collection: str, query: Query, sampling: Sampling) -> list[Record]:
        """``find`` over the records ``sampling`` keeps, in one query (``sql_facets``)."""
        with self._translating(collection):
            reader = self._foreign(collection)
        if reader is not None:
            query = replace(query, order=reader.paths.order(query.order))
            return super().find_sampled(collection, query, sampling)
        compiler = self.adapter.compiler
        after = compiler.after(query.order, query.after) if query.after is not None else None
        statement = sqlite_sampled(
            _COLUMNS, compiler.where(query.filter), sampling, order=compiler.order_by(query.order),
            after=after, limit=query.limit, offset=query.offset,
        )  # fmt: skip
        with self._translating(collection):
            if self.catalog.table(collection) is None:
                return []
            self.conn.create_function(HASH_FUNCTION, 2, sqlite_hash, deterministic=True)
            return self._records(statement.join, statement.params, collection)

    def count_sampled(self, collection: str, filter: FilterNode | None, sampling: Sampling) -> int:
        if self._is_foreign(collection):
            return super().count_sampled(collection, filter, sampling)
        statement = sqlite_sampled("count(*)", self.adapter.compiler.where(filter), sampling)
        with self._translating(collection):
            if self.catalog.table(collection) is None:
                return 0
            self.conn.create_function(HASH_FUNCTION, 2, sqlite_hash, deterministic=True)
            return int(self._rows(statement.join, statement.params, collection)[0][0])

    def collections(self) -> list[str]:
        with self._translating():
            return self.catalog.collections()

    def tables(self) -> list[dict[str, Any]]:
        """Every table and view of the file that is not a collection (``Session.tables``)."""
        with self._translating():
            names = [
                name
                for name, _, _ in schema_objects(self.conn)
                if not name.lower().startswith(SYSTEM_PREFIXES)
            ]
            readers = [self.catalog.foreign(name) for name in names]
            return [r.table.public() for r in readers if r is not None]

    def table(self, name: str) -> dict[str, Any] | None:
        with self._translating(name):
            reader = self.catalog.foreign(name)
            return None if reader is None else reader.table.public()

    def row_naming(self, name: str) -> tuple[str, ...] | None:
        """The key the table ``name`` is served by now (``()``: by rowid or its columns, while a
        key holds what no id names, ``ForeignReader.current``); ``None`` for a collection."""
        with self._translating(name):
            reader = self.catalog.foreign(name)
            return None if reader is None else reader.table.key

    def view_sources(self, name: str) -> list[str]:
        with self._translating(name):
            reader = self.catalog.foreign(name)
            if reader is None:
                return []
            # A full-text table reads its ``content=`` table (an fts5vocab its FTS5 table) in SQL
            # of its own, which the view's authorizer pass may not see: followed to any depth.
            # A content table may be a view, whose own reads are followed the same way.
            found: dict[str, str] = {}
            todo = [reader.table.name]
            while todo:
                read = todo.pop()
                step = self.catalog.foreign(read) if read != reader.table.name else reader
                more = [*self.catalog.virtual.sources(read)]
                if step is not None:
                    more += step.sources(self.conn)
                for name_read in more:
                    if name_read.lower() not in found:
                        found[name_read.lower()] = name_read
                        todo.append(name_read)
            found.pop(reader.table.name.lower(), None)
            return sorted(found.values())

    def cascade_targets(
        self, name: str, update: bool = False, *, insert: bool = False
    ) -> list[tuple[str, str]]:
        with self._translating(name):
            event = "insert" if insert else None
            return cascade_targets(self.conn, resolve_in(self.catalog, name), update, event)

    def derived_from(self, name: str) -> list[tuple[str, str]]:
        with self._translating(name):
            return derived_from(self.conn, resolve_in(self.catalog, name))

    def resolve_collection(self, name: str) -> str:
        with self._translating(name):
            return resolve_in(self.catalog, name)

    def collection_key(self, name: str) -> str:
        return name_key(name)

    def truncate(self, collection: str) -> int:
        with self._translating(collection):
            self._check_write()
            writer = self.table_writer(collection)
            if writer is not None:
                return writer.truncate()
            if self.catalog.table(collection) is None:
                return 0
            return self.conn.execute(f"DELETE FROM {_q(collection)}").rowcount

    def ensure_indexes(self, collection: str, paths: list[tuple[str, ...]]) -> None:
        """Create the table if needed and an index per path (see ``SqliteAdapter.ensure_indexes``)."""
        dialect = self.adapter.dialect
        with self._translating(collection):
            self._writable(collection)
            for i, path in enumerate(paths):
                field = ".".join(path)
                validate_path(field, f"paths[{i}]")
                column = RESERVED_COLUMNS.get(field)
                if column is not None:
                    if column.name not in ("id", "created_at"):  # both are indexed already
                        self.conn.execute(index_sql(collection, field, column.name))
                    continue
                if self.catalog.guard_trust and not self.catalog.trusted:
                    raise NotSupported(
                        f"SQLite {sqlite3.sqlite_version} can only keep JSON indexes in a database "
                        f"whose schema dbhandles trusts, and {self.catalog.distrust} (a newer "
                        "SQLite lifts this limit; docs/security.md)"
                    )
                self.conn.execute(index_sql(collection, field, dialect.index_expression(path)))
            self.catalog.invalidate()
