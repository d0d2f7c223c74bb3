"""``PostgresHandleStore``: handles, aliases, cursors, tokens and the audit log in a PostgreSQL schema.

With it, every ``jtag serve`` process pointed at the same default URL shares one registry: a handle
opened through one server works through any other, and query cursors advance by compare-and-swap in
one table, so ``query-next`` calls alternating between servers walk one cursor page by page.

What cannot be shared is a file: an ``sqlite`` or ``json`` handle names a path on the host that opened
it. The store records that host and refuses the handle elsewhere (``handle_not_found`` naming the
host), so another host never creates an empty database at the same path and writes there instead.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from dbhandles.adapters.postgres_config import PostgresConfig, connection_params
from dbhandles.adapters.postgres_errors import translating
from dbhandles.adapters.postgres_schema import advisory_key
from dbhandles.errors import HandleNotFound
from dbhandles.store.base import HandleRow
from dbhandles.store.migrations import STEPS, Step, upgrade
from dbhandles.store.schema import HANDLES, POSTGRES, values
from dbhandles.store.sql import SqlHandleStore, Tx
from dbhandles.values import json_text

__all__ = ["PostgresHandleStore"]


_HOST, _ADAPTER = (
    [c.name for c in POSTGRES.row_columns(HANDLES)].index(name) for name in ("host", "adapter")
)


def _pg(statement: str) -> str:
    # The shared statements use SQLite's ``?``; none has a ``?`` or ``%`` of its own.
    return statement.replace("?", "%s")


class _Tx:
    """A connection inside a transaction, running the shared statements."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def execute(self, statement: str, args: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        return self._conn.execute(_pg(statement), args)

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]], /) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(_pg(statement), rows)


def _file_based(adapter: str) -> bool:
    from dbhandles.adapters import get_adapter_class
    from dbhandles.errors import DbHandlesError

    try:
        return get_adapter_class(adapter).features.file_based
    except DbHandlesError:
        return False


class PostgresHandleStore(SqlHandleStore):
    """The registry's tables in ``config``'s schema (created when missing), on a small pool of its own.

    Its connections have the schema as their ``search_path``, so the shared statements name the
    tables unqualified.

    ``version()`` stays ``None``, so the registry reads the handle table on every command: a handle
    closed through one server must be unknown to every other server at once (fail loud). A cache kept
    fresh by NOTIFY would save that query but lag a close by the notification's latency.

    Args:
        config: where (a ``PostgresConfig``; its mode is ignored: the store always writes).
        host_id: this host's name for handles on local files (default: the host name).
        pool_size: connections the store may hold.
        steps: the schema upgrade steps (``migrations.STEPS``; tests add their own).

    Raises:
        StorageError and the other errors of an unreachable server (translated).
        StateTooNew: a newer dbhandles upgraded the schema's tables.
    """

    dialect = POSTGRES

    def __init__(
        self,
        config: PostgresConfig,
        *,
        host_id: str | None = None,
        pool_size: int = 4,
        steps: Sequence[Step] = STEPS,
    ) -> None:
        self.schema = config.schema_name
        self.host_id = host_id or socket.gethostname()
        self._conninfo, self._where, self._secret = connection_params(config)
        self._s = sql.Identifier(self.schema)
        with self._translating():
            probe = psycopg.connect(self._conninfo, autocommit=True)
        try:
            with self._translating():
                self._configure(probe)
                self._upgrade(probe, steps)
        finally:
            probe.close()
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._conninfo, min_size=1, max_size=pool_size, open=False, num_workers=1,
            kwargs={"autocommit": True}, configure=self._configure, name="dbhandles-store",
            timeout=30.0, check=ConnectionPool.check_connection,  # dead ones are replaced
        )  # fmt: skip
        try:
            with self._translating():
                self._pool.open(wait=True, timeout=config.connect_timeout)
        except BaseException:
            self._pool.close()
            raise

    def _translating(self) -> Any:
        return translating(where=self._where, secret=self._secret)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        # pg_temp last: a temporary table can never stand in for one of ours.
        conn.execute(sql.SQL("SET search_path TO {}, pg_temp").format(self._s))

    def _upgrade(self, conn: psycopg.Connection[Any], steps: Sequence[Step]) -> None:
        with conn.transaction():
            # One process at a time creates or upgrades the tables; the others wait here, then
            # find them current. Releases without schema versions take the same lock.
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s)", (advisory_key(self.schema, "_dbh_store"),)
            )
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._s))
            where = f"schema {json_text(self.schema, 80)} of the default database at {self._where}"
            upgrade(_Tx(conn), POSTGRES, where=where, steps=steps)

    @contextmanager
    def _conn(self, transaction: bool = False) -> Iterator[psycopg.Connection[Any]]:
        with self._translating(), self._pool.connection() as conn:
            if transaction:
                with conn.transaction():
                    yield conn
            else:
                yield conn

    @contextmanager
    def _tx(self) -> Iterator[_Tx]:
        with self._conn(transaction=True) as conn:
            yield _Tx(conn)

    def _read(self, statement: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            return conn.execute(_pg(statement), args).fetchall()

    def _write(self, statement: str, args: Sequence[Any] = ()) -> int:
        with self._conn() as conn:  # one statement: autocommit, one round trip
            return conn.execute(_pg(statement), args).rowcount

    def own_bytes(self) -> int:
        """The bytes of the ``_dbh_*`` tables of this schema, their indexes and TOAST included
        (``pg_total_relation_size``: what the postgres adapter's ``size_bytes`` counts them as)."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN "
                "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND "
                "c.relkind IN ('r', 'p') AND c.relname LIKE '\\_dbh\\_%%'",
                (self.schema,),
            ).fetchone()
        return int(row[0]) if row else 0

    # -- handles: one on a local file works on the host that opened it only ------------------------

    def _check_handle(self, columns: Sequence[Any], name: str) -> None:
        host = columns[_HOST]
        if host is not None and host != self.host_id:
            adapter = columns[_ADAPTER]
            raise HandleNotFound(
                f"dbHandle: {json_text(name, 80)} is a {adapter} database in a file on host {json_text(host, 80)}; this "
                f"server runs on {json_text(self.host_id, 80)} and cannot reach that file. Send the command to a "
                f"server on {json_text(host, 80)} (or open a database every server can reach, such as postgres)",
                field="dbHandle",
            )

    def _handle_values(self, row: HandleRow) -> tuple[Any, ...]:
        return (*values(HANDLES, row), self.host_id if _file_based(row.adapter) else None)

    def _lock_jobs(self, tx: Tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (advisory_key(self.schema, "_dbh_jobs"),))

    def _lock_tokens(self, tx: Tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (advisory_key(self.schema, "_dbh_tokens"),))

    def _lock_cursors(self, tx: Tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (advisory_key(self.schema, "_dbh_cursors"),))

    def close(self) -> None:
        self._pool.close()
