"""A ``postgres`` session: one transaction (or savepoint) on a pooled connection, and the record codec."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from dbhandles import budget
from dbhandles.adapters import error_scope, reach_guard
from dbhandles.adapters.base import Query, RawRow, Record, Session, record_from_columns
from dbhandles.adapters.facets import GroupCounts, combinations_error
from dbhandles.adapters.foreign_cascades import UNKNOWN
from dbhandles.adapters.foreign_common import read_only_error
from dbhandles.adapters.postgres_bulk import encode as _encode
from dbhandles.adapters.postgres_bulk import insert_rows, read_rows
from dbhandles.adapters.postgres_bytes import bounded_groups, bounded_page, group_rows, page_rows
from dbhandles.adapters.postgres_compile import boolean, prepare_filter
from dbhandles.adapters.postgres_foreign import PgReader
from dbhandles.adapters.postgres_foreign_schema import cascade_targets
from dbhandles.adapters.postgres_foreign_write import PgWriter
from dbhandles.adapters.postgres_marks import unreadable_call
from dbhandles.adapters.postgres_reach import (
    event_triggers,
    recheck,
    refuse_event_triggers,
    table_reach,
)
from dbhandles.adapters.postgres_records import READABLE, UNREADABLE_WHY, record_problem
from dbhandles.adapters.postgres_schema import advisory_key, object_name, qualified, table_name
from dbhandles.adapters.sampling import Sampling
from dbhandles.adapters.sql_compile import RESERVED_COLUMNS, Fragment, and_
from dbhandles.adapters.sql_facets import (
    Statement,
    postgres_group_count,
    postgres_group_overflow,
    postgres_sampled,
    read_groups,
)
from dbhandles.errors import DbHandlesError, InvalidFilter, InvalidParams
from dbhandles.filters import FilterNode, validate_path
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.adapters.postgres import PostgresAdapter

__all__ = ["PostgresSession", "Transaction"]

_COLUMNS = "id, data, created_at, updated_at, version"
#: A collection row another tool wrote that is no record (``postgres_records``): in every query's
#: ``WHERE``, so listings, counts, facets, exports and copies leave it out alike.
_READABLE = Fragment(READABLE)
#: The time budget of the command (``dbhandles.budget``), for the rest of the transaction.
_SET_TIMEOUT = "SELECT set_config('statement_timeout', %s, true)"


def _on(before: str, table: sql.Composed, after: str) -> sql.Composed:
    """A statement around a qualified table name (compiled SQL is never passed through ``format``)."""
    return sql.SQL(before) + table + sql.SQL(after)


def _where(filter: FilterNode | None, compiler: Any) -> Fragment:
    """``filter`` compiled, and the row readable (``_READABLE``)."""
    return and_(_READABLE, compiler.where(prepare_filter(filter)))


def _decode(row: Sequence[Any]) -> Record:
    record_id, data, created_at, updated_at, version = row
    return record_from_columns(record_id, data, created_at, updated_at, version)


class Transaction:
    """A connection's transaction whose ``BEGIN`` goes out with the first statement (a round trip
    saved per session; a session that sends nothing costs nothing: no ``BEGIN``, no ``COMMIT``)."""

    def __init__(self, conn: psycopg.Connection[Any], begin: str) -> None:
        self.conn = conn
        self.pending: str | None = begin
        #: Run right after ``BEGIN``, before any other statement (``PostgresSession._recheck``).
        self.before: Callable[[], None] | None = None

    def start(self) -> None:
        """Send ``BEGIN`` now (before statements that do not go through ``run``), then ``before``."""
        if self.pending is not None:
            begin, self.pending = self.pending, None
            self.conn.execute(begin)
            if self.before is not None:
                self.before()

    def arm(self, timeout_ms: int | None) -> None:
        """Send ``BEGIN`` now, and with ``timeout_ms`` PostgreSQL's ``statement_timeout`` for the
        rest of the transaction: before DDL made on a request's behalf (a collection's table, a
        declared index), which runs event triggers and may wait on locks."""
        self.start()
        if timeout_ms is not None:
            self.conn.execute(_SET_TIMEOUT, (f"{timeout_ms}ms",))

    def run(
        self,
        statement: sql.SQL | sql.Composed,
        params: Sequence[Any],
        timeout_ms: int | None = None,
    ) -> psycopg.Cursor[Any]:
        """Run ``statement``; with ``timeout_ms``, PostgreSQL cancels it past that many milliseconds
        (``statement_timeout`` for the rest of the transaction, sent in the same round trip)."""
        if self.before is not None:
            self.start()  # its checks before the statement, in their own round trips
        if self.pending is None and timeout_ms is None:
            return self.conn.execute(statement, params)
        begin, self.pending = self.pending, None
        with self.conn.pipeline():
            if begin is not None:
                self.conn.execute(begin)
            if timeout_ms is not None:
                self.conn.execute(_SET_TIMEOUT, (f"{timeout_ms}ms",))
            cursor = self.conn.execute(statement, params)
        return cursor

    def commit(self, write: bool) -> None:
        """``COMMIT``; a write session's within the command's time budget. PostgreSQL runs
        deferred triggers and constraints at ``COMMIT`` with ``statement_timeout`` already
        disarmed (``finish_xact_command`` disables it before the commit proper), so a deferred
        trigger calling ``pg_sleep`` would run unbounded: they are run first, timed, by ``SET
        CONSTRAINTS ALL IMMEDIATE`` (which checks every deferred constraint and fires every
        deferred trigger now), in the same round trip as the ``COMMIT``, which a failure skips.

        Raises:
            QueryTimeout: the command's budget is spent (``budget.remaining_ms``).
            psycopg.Error: a deferred constraint or trigger refused, or the statement timed out.
        """
        timeout_ms = budget.remaining_ms() if write else None
        if timeout_ms is None:
            self.conn.execute("COMMIT")
            return
        with self.conn.pipeline():
            self.conn.execute(_SET_TIMEOUT, (f"{timeout_ms}ms",))
            self.conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
            self.conn.execute("COMMIT")


class PostgresSession(Session):
    """One transaction (or savepoint) on a pooled connection."""

    def __init__(self, adapter: PostgresAdapter, tx: Transaction, write: bool) -> None:
        self.adapter = adapter
        self.tx = tx
        self.conn = tx.conn
        self.write = write
        #: Tables this transaction created; the catalog learns of them on commit.
        self.created: list[str] = []
        #: Names already resolved in this session: their foreign reader, or None (a collection).
        self._foreigns: dict[str, PgReader | None] = {}
        if tx.pending is not None and error_scope.current().restricted:
            guards = reach_guard.current(adapter)
            if guards:
                tx.before = lambda: recheck(self, guards)

    # -- tables dbhandles did not create (postgres_foreign) -----------------------------------------

    def _foreign(self, collection: str) -> PgReader | None:
        """The reader of the table or view ``collection`` names when it is not a collection."""
        if collection == collection.lower() and self.adapter.catalog.cached(
            collection, self.created
        ):
            # A collection this process knows: no query. Only for a lower-case name: "Fl" may
            # name another tool's table of that exact name, which wins over the collection fl
            # (postgres_schema.is_collection).
            return None
        if collection not in self._foreigns:
            self.tx.start()  # the catalog is read inside the transaction's snapshot
            with self._translating(collection):
                reader = self.adapter.foreign.reader(self.conn, collection)
            self._foreigns[collection] = reader
        return self._foreigns[collection]

    def _foreign_run(
        self, statement: sql.SQL, params: tuple[Any, ...], timed: bool
    ) -> psycopg.Cursor[Any]:
        # A write session times every statement (``_run``): a table's default, CHECK or trigger
        # may run as long as a filter does.
        timed = timed or self.write
        return self.tx.run(statement, params, budget.remaining_ms() if timed else None)

    def table_writer(self, collection: str) -> PgWriter | None:
        """The writer of a table dbhandles did not create (``postgres_foreign_write``), else ``None``."""
        reader = self._foreign(collection)
        if reader is None:
            return None
        if not self.write:
            raise DbHandlesError(
                "a write was attempted in a read session; open the session with write=True"
            )
        return PgWriter(self._foreign_run, reader)

    def tables(self) -> list[dict[str, Any]]:
        """Every table and view of the schema that is not a collection (``Session.tables``)."""
        with self._translating():
            self.tx.start()
            return [t.public() for t in self.adapter.foreign.tables(self.conn)]

    def table(self, name: str) -> dict[str, Any] | None:
        reader = self._foreign(name)
        return None if reader is None else reader.table.public()

    def view_sources(self, name: str) -> list[str]:
        reader = self._foreign(name)
        with self._translating(name):
            if reader is None:
                # A collection's table: another role may have added a policy, an index (its
                # operator class) or a child table, which every read of it runs or reads.
                run = self._foreign_run
                self.tx.start()  # the catalog is read inside the transaction's snapshot
                return table_reach(
                    lambda statement, params: run(sql.SQL(statement), params, False),
                    self.adapter.schema,
                    table_name(name),
                )
            return reader.sources(self._foreign_run)

    def cascade_targets(
        self, name: str, update: bool = False, *, insert: bool = False
    ) -> list[tuple[str, str]]:
        reader = self._foreign(name)
        # A collection's table may carry foreign keys and triggers another role added: what its
        # writes reach is found the same way (a missing table reaches nothing).
        table = table_name(name) if reader is None else reader.table.name
        event = "insert" if insert else None
        with self._translating(name):
            self.tx.start()  # the catalog is read inside the transaction's snapshot
            found = cascade_targets(self.conn, self.adapter.schema, table, update, event)
            if reader is None and (insert or update) and self._creates(name):
                found += [
                    (UNKNOWN, f"event trigger {json_text(trigger, 80)} (creating the table of "
                              f"collection {json_text(name, 80)})")
                    for trigger in event_triggers(self.conn)
                ]  # fmt: skip
            return found

    def _creates(self, collection: str) -> bool:
        """Whether a write of ``collection`` would create its table (DDL: event triggers run)."""
        if self.adapter.catalog.cached(collection, self.created) is not None:
            return False
        try:
            return self.adapter.catalog.table(self.conn, collection, self.created) is None
        except InvalidParams:
            return False  # not a collection's name: the write itself says so

    def resolve_collection(self, name: str) -> str:
        reader = self._foreign(name)
        # A collection's table is its lower-cased name (postgres_schema.table_name).
        return table_name(name) if reader is None else reader.table.name

    def collection_key(self, name: str) -> str:
        return name  # "Orders" and orders are two relations

    def _translating(self, collection: str | None = None, record_id: str | None = None) -> Any:
        return self.adapter.translating(collection, record_id)

    def _table(self, collection: str) -> sql.Composed | None:
        name = self.adapter.catalog.cached(collection, self.created)
        if name is None:
            self.tx.start()  # the catalog is read inside the transaction's snapshot
            name = self.adapter.catalog.table(self.conn, collection, self.created)
        return None if name is None else qualified(self.adapter.schema, name)

    def _writable(self, collection: str) -> sql.Composed:
        if not self.write:
            raise DbHandlesError(
                "a write was attempted in a read session; open the session with write=True"
            )
        reader = self._foreign(collection)
        if reader is not None:  # only data/create, update, delete, batch, truncate write there
            raise read_only_error(reader.table)
        name = self.adapter.catalog.cached(collection, self.created)
        if name is None:
            # Creating the table is timed as the write is: an event trigger may run as long.
            self._arm_ddl(f"creating the table of collection {json_text(collection, 80)}")
            name = self.adapter.catalog.create(self.conn, collection, self.created)
        return qualified(self.adapter.schema, name)

    def _arm_ddl(self, what: str) -> None:
        """``Transaction.arm`` before a DDL made on a request's behalf (``what`` it does), refused
        on a restricted handle when an event trigger would run (``refuse_event_triggers``)."""
        self.tx.arm(budget.remaining_ms())
        if error_scope.current().restricted:
            refuse_event_triggers(self.conn, what)

    def _run(
        self, statement: sql.SQL | sql.Composed, params: Sequence[Any] = ()
    ) -> psycopg.Cursor[Any]:
        """Run a statement of this session; in a write session, within the command's time budget
        (``statement_timeout``, as reads are: a table's default, CHECK constraint or trigger may
        call ``pg_sleep`` or loop, and a write past the budget ends with ``query_timeout``, its
        transaction rolled back, rather than holding the request and its locks). The budget set
        last stays for the rest of the transaction, its ``COMMIT`` (deferred triggers) included.

        Raises:
            QueryTimeout: the command's budget is spent (``budget.remaining_ms``).
        """
        return self.tx.run(statement, params, budget.remaining_ms() if self.write else None)

    def get(self, collection: str, record_id: str) -> Record | None:
        reader = self._foreign(collection)
        if reader is not None:
            with self._translating(collection):
                return reader.get(self._foreign_run, record_id, lock=self.write)
        with self._translating(collection):
            table = self._table(collection)
            if table is None:
                return None
            lock = " FOR UPDATE" if self.write else ""
            # ``data`` is read only when readable: the driver cannot decode ``1e400``.
            columns = (
                f"id, CASE WHEN {READABLE} THEN data END, created_at, updated_at, version, "
                f"{UNREADABLE_WHY}"
            )
            row = self._run(
                _on(f"SELECT {columns} FROM ", table, f" WHERE id = %s{lock}"), (record_id,)
            ).fetchone()
            if row is None:
                return None
            record_problem(row[5], collection, record_id)
            return _decode(row[:5])

    def get_many(self, collection: str, record_ids: Sequence[str]) -> dict[str, Record]:
        """``Session.get_many`` in one statement per ``postgres_bulk.BATCH`` ids (a collection)."""
        if self._foreign(collection) is not None:
            return super().get_many(collection, record_ids)
        with self._translating(collection):
            table = self._table(collection)
            rows = [] if table is None else read_rows(self._run, table, record_ids, self.write)
        return {row[0]: _decode(row) for row in rows}

    def insert(self, collection: str, record: Record) -> None:
        row = _encode(record)
        with self._translating(collection, row[0]):
            table = self._writable(collection)
            self._run(
                _on("INSERT INTO ", table, f" ({_COLUMNS}) VALUES (%s, %s::jsonb, %s, %s, %s)"), row
            )

    def insert_many(
        self, collection: str, records: list[Record], *, skip_existing: bool = False
    ) -> int:
        rows = [_encode(r) for r in records]  # every record refused before anything is written
        return self.insert_many_raw(collection, rows, skip_existing=skip_existing)

    def insert_many_raw(
        self, collection: str, rows: Iterable[RawRow], *, skip_existing: bool = False
    ) -> int:
        """The importer's fast path (``Features.raw_inserts``): rows in storage form, the JSON
        text of ``data`` sent as it is (``postgres_bulk``); see ``Session.insert_many_raw``."""
        with self._translating(collection):
            # The table is resolved (made) only once there is a row: no row writes nothing.
            writable = partial(self._writable, collection)
            return insert_rows(self._run, writable, rows, skip_existing=skip_existing)

    def replace(self, collection: str, record: Record) -> None:
        row = _encode(record)
        with self._translating(collection, row[0]):
            table = self._writable(collection)
            upsert = (
                f" ({_COLUMNS}) VALUES (%s, %s::jsonb, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "data = excluded.data, created_at = excluded.created_at, updated_at = excluded.updated_at, "
                "version = excluded.version"
            )
            self._run(_on("INSERT INTO ", table, upsert), row)

    def delete(self, collection: str, record_id: str) -> bool:
        writer = self.table_writer(collection) if self.write else None
        if writer is not None:
            with self._translating(collection, record_id):
                return writer.delete(record_id)
        with self._translating(collection, record_id):
            table = self._writable(collection) if not self.write else self._table(collection)
            if table is None:
                return False
            return (
                self._run(_on("DELETE FROM ", table, " WHERE id = %s"), (record_id,)).rowcount > 0
            )

    def find(self, collection: str, query: Query) -> list[Record]:
        reader = self._foreign(collection)
        if reader is not None:
            with self._translating(collection):
                return reader.find(self._foreign_run, query)
        compiler = self.adapter.compiler
        where = _where(query.filter, compiler)
        if query.after is not None:
            where = and_(where, compiler.after(query.order, query.after))
        where = boolean(where)
        if query.offset < 0 or (query.limit is not None and query.limit < 0):
            raise InvalidParams("limit and offset cannot be negative", field="limit")
        order = compiler.order_by(query.order)
        with self._translating(collection):
            table = self._table(collection)
            if table is None:
                return []
            statement = _on(
                f"SELECT {_COLUMNS} FROM ",
                table,
                f" WHERE {where.sql} ORDER BY {order} LIMIT %s OFFSET %s",
            )
            # The page's bytes are measured in SQL: rows past the bound never leave PostgreSQL.
            bounded, params = bounded_page(
                statement, (*where.params, query.limit, query.offset), order
            )
            rows = self.tx.run(bounded, params, budget.remaining_ms()).fetchall()
            return [_decode(row) for row in page_rows(rows, collection)]

    def count(self, collection: str, filter: FilterNode | None) -> int:
        reader = self._foreign(collection)
        if reader is not None:
            with self._translating(collection):
                return reader.count(self._foreign_run, filter)
        where = boolean(_where(filter, self.adapter.compiler))
        with self._translating(collection):
            table = self._table(collection)
            if table is None:
                return 0
            statement = _on("SELECT count(*) FROM ", table, f" WHERE {where.sql}")
            if where == _READABLE and self._marked(collection):
                # Unfiltered: every row less those the partial index holds (``postgres_marks``),
                # the same test in one snapshot, without walking each row's ``jsonb``.
                statement = sql.SQL(
                    "SELECT (SELECT count(*) FROM {}) - (SELECT count(*) FROM {} WHERE {})"
                ).format(table, table, unreadable_call(self.adapter.schema))
            row = self.tx.run(statement, where.params, budget.remaining_ms()).fetchone()
            return int(row[0]) if row else 0

    def _marked(self, collection: str) -> bool:
        """Whether ``collection``'s table carries its partial index of unreadable rows."""
        name = self.adapter.catalog.cached(collection, self.created)
        return name is not None and self.adapter.catalog.marked(self.conn, name, self.created)

    def _statement(self, statement: Statement, table: sql.Composed) -> sql.Composed:
        composed = sql.Composed([sql.SQL(statement.parts[0])])
        for part in statement.parts[1:]:
            composed = composed + table + sql.SQL(part)
        return composed

    def group_count(
        self,
        collection: str,
        filter: FilterNode | None,
        group_by: tuple[tuple[str, ...], ...],
        limit: int,
    ) -> GroupCounts:
        """One ``jsonb_array_elements`` ``GROUP BY`` query (``sql_facets``); the rule is ``facets``.
        A table dbhandles did not create is grouped by the same query over its rows as documents
        (``PgReader.grouped``): its keys are bounded as a collection's (``groups_too_large``)."""
        reader = self._foreign(collection)
        table: sql.Composed | None = None
        paths = group_by
        if reader is not None:
            # A column named ``a.b`` is the path a -> b (``ColumnPaths``), as in the filter; the
            # rows are a relation of ``id`` and ``data`` as a collection's (``PgReader.grouped``),
            # each field the path starts from under the key ``f0``, ``f1``...
            group_by = reader.paths.groups(group_by)
            fields = sorted({path[0] for path in group_by})
            paths = tuple((f"f{fields.index(p[0])}", *p[1:]) for p in group_by)
            where = Fragment("TRUE")
            try:
                statement = postgres_group_count(where, paths, limit)
            except InvalidFilter:
                # A path inside a column no collection's path could name: counted in Python.
                return super().group_count(collection, filter, group_by, limit)
            self.tx.start()
            table = reader.grouped(self.conn, filter, fields)
        else:
            where = boolean(_where(filter, self.adapter.compiler))
            statement = postgres_group_count(where, paths, limit)
        overflow = postgres_group_overflow(where, paths)
        with self._translating(collection):
            table = self._table(collection) if table is None else table
            if table is None:
                return GroupCounts()
            # The keys' bytes are measured in SQL (``postgres_bytes``): an answer past the bound
            # is refused before its rows leave PostgreSQL.
            bounded = bounded_groups(statement, len(group_by))
            cursor = self.tx.run(
                self._statement(bounded, table), bounded.params, budget.remaining_ms()
            )
            rows = group_rows(cursor.fetchall(), collection, group_by)
            # No row: no record matched, or one had too many combinations (sqlite_session).
            if (
                not rows
                and overflow is not None
                and self.tx.run(
                    self._statement(overflow, table), overflow.params, budget.remaining_ms()
                ).fetchone()
            ):
                raise combinations_error(group_by)
        return read_groups(rows, group_by)

    def find_sampled(self, collection: str, query: Query, sampling: Sampling) -> list[Record]:
        """``find`` over the records ``sampling`` keeps, in one query (``sql_facets``)."""
        reader = self._foreign(collection)
        if reader is not None:
            query = replace(query, order=reader.paths.order(query.order))
            return super().find_sampled(collection, query, sampling)
        compiler = self.adapter.compiler
        after = compiler.after(query.order, query.after) if query.after is not None else None
        order = compiler.order_by(query.order)
        statement = postgres_sampled(
            _COLUMNS, boolean(_where(query.filter, compiler)), sampling,
            order=order, after=after, limit=query.limit, offset=query.offset,
        )  # fmt: skip
        with self._translating(collection):
            table = self._table(collection)
            if table is None:
                return []
            bounded, params = bounded_page(
                self._statement(statement, table), statement.params, order
            )
            rows = self.tx.run(bounded, params, budget.remaining_ms()).fetchall()
            return [_decode(row) for row in page_rows(rows, collection)]

    def count_sampled(self, collection: str, filter: FilterNode | None, sampling: Sampling) -> int:
        if self._foreign(collection) is not None:
            return super().count_sampled(collection, filter, sampling)
        where = boolean(_where(filter, self.adapter.compiler))
        statement = postgres_sampled("count(*)", where, sampling)
        with self._translating(collection):
            table = self._table(collection)
            if table is None:
                return 0
            row = self.tx.run(
                self._statement(statement, table), statement.params, budget.remaining_ms()
            ).fetchone()
            return int(row[0]) if row else 0

    def unreadable(self, collection: str) -> int:
        """Rows of ``collection`` another tool wrote that are no record (``postgres_records``)."""
        if self._foreign(collection) is not None:
            return 0
        with self._translating(collection):
            table = self._table(collection)
            if table is None:
                return 0
            statement = _on("SELECT count(*) FROM ", table, f" WHERE NOT {READABLE}")
            if self._marked(collection):  # the partial index's rows (``postgres_marks``)
                statement = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                    table, unreadable_call(self.adapter.schema)
                )
            row = self.tx.run(statement, (), budget.remaining_ms()).fetchone()
            return int(row[0]) if row else 0

    def collections(self) -> list[str]:
        with self._translating():
            self.tx.start()
            return self.adapter.catalog.collections(self.conn)

    def truncate(self, collection: str) -> int:
        writer = self.table_writer(collection) if self.write else None
        if writer is not None:
            with self._translating(collection):
                return writer.truncate()
        with self._translating(collection):
            table = self._writable(collection) if not self.write else self._table(collection)
            if table is None:
                return 0
            return self._run(_on("DELETE FROM ", table, "")).rowcount

    def ensure_indexes(self, collection: str, paths: list[tuple[str, ...]]) -> None:
        """Create the table if needed and expression indexes per path (see ``PostgresAdapter``)."""
        schema, dialect = self.adapter.schema, self.adapter.dialect
        with self._translating(collection):
            # Within the request's budget, when there is one (a command's declared indexes are
            # made on its behalf; an event trigger runs with each CREATE); untimed outside one.
            self._arm_ddl(f"creating the indexes of collection {json_text(collection, 80)}")
            name = self.adapter.catalog.create(self.conn, collection, self.created)
            self.tx.run(sql.SQL("SELECT pg_advisory_xact_lock(%s)"), (advisory_key(schema, name),))
            # A collection an older version made gets its partial index of unreadable rows here
            # (``postgres_marks``): its counts stop walking every row.
            self.adapter.catalog.mark(self.conn, name)
            for i, path in enumerate(paths):
                field = ".".join(path)
                validate_path(field, f"paths[{i}]")
                column = RESERVED_COLUMNS.get(field)
                if column is not None:
                    expressions = [] if column.name in ("id", "created_at") else [column.name]
                else:
                    expressions = list(dialect.index_expressions(path))
                for kind, expression in enumerate(expressions):
                    index = sql.Identifier(object_name("ix", schema, name, field, str(kind)))
                    self.tx.run(
                        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (({}))").format(
                            index, qualified(schema, name), sql.SQL(expression)
                        ),
                        (),
                    )
