"""The ``postgres`` adapter: one table per collection in a schema of a PostgreSQL server (psycopg 3).

Sessions take a connection from a ``psycopg_pool`` pool for their whole length: a write session is one
``READ COMMITTED`` transaction (``get`` locks the row with ``FOR UPDATE``, so ``expectedVersion``
holds under concurrency), a read session one ``REPEATABLE READ, READ ONLY`` snapshot (a page and its
count agree). A session opened inside another on the same thread becomes a savepoint of it, as in
SQLite. Handles with the same server, role, schema and mode share one adapter, hence one pool.

Where PostgreSQL differs from the reference semantics (all documented in ``docs/scaling.md``):
``jsonb`` does not keep the order of keys in a record, text cannot hold U+0000, ``-0.0`` reads back
as ``0.0``; ``$regex`` patterns (RE2 syntax) are translated (``postgres_regex.translate_regex``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, ClassVar

import orjson
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from dbhandles.adapters.base import Adapter, AdapterConfig, Features, Session
from dbhandles.adapters.postgres_cancel import watched
from dbhandles.adapters.postgres_compile import PostgresDialect
from dbhandles.adapters.postgres_config import (
    PASSWORD_METHODS,
    PostgresConfig,
    connection_params,
    mask_url,
)
from dbhandles.adapters.postgres_errors import translating
from dbhandles.adapters.postgres_foreign import ForeignCatalog
from dbhandles.adapters.postgres_schema import Catalog, advisory_key, qualified, table_name
from dbhandles.adapters.postgres_session import PostgresSession, Transaction
from dbhandles.adapters.sql_collections import CollectionCompiler
from dbhandles.byte_cache import NAME_CACHE_BYTES, byte_memo
from dbhandles.errors import (
    DatabaseNotFound,
    DbHandlesError,
    InvalidConfig,
    ServerNotAllowed,
    StorageError,
)
from dbhandles.values import json_text

__all__ = ["PostgresAdapter", "PostgresConfig", "PostgresSession", "connection_params", "mask_url"]

_BEGIN_READ = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"


class PostgresAdapter(Adapter):
    """Records in a PostgreSQL schema; collections are tables with a ``jsonb`` column."""

    name: ClassVar[str] = "postgres"
    features: ClassVar[Features] = Features(
        durable=True, vacuum=True, indexes=True, shared_across_processes=True, file_based=False,
        foreign_tables=True, exact_large_floats=False, raw_inserts=True,
    )  # fmt: skip
    config_model: ClassVar[type[AdapterConfig]] = PostgresConfig

    def __init__(self, config: AdapterConfig) -> None:
        settings = _pg_config(config)
        super().__init__(settings)
        self.settings = settings
        self.schema = settings.schema_name
        self.conninfo, self.where, self._secret = connection_params(settings)
        self.catalog = Catalog(self.schema)
        #: Tables and views of the schema dbhandles did not create (docs/foreign-tables.md).
        self.foreign = ForeignCatalog(self.schema, settings.field_names == "camel")
        self.dialect = PostgresDialect()
        self.compiler = CollectionCompiler(self.dialect)
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._local = threading.local()

    @classmethod
    def connection_key(cls, config: AdapterConfig) -> str | None:
        return _connection_key(_pg_config(config))

    def translating(self, collection: str | None = None, record_id: str | None = None) -> Any:
        """Translate driver errors, naming this server (never the password)."""
        return translating(
            where=self.where, collection=collection, record_id=record_id, secret=self._secret
        )

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> None:
        # One direct connection first: a pool would only log why it cannot connect; this says why.
        with self.translating():
            probe = self._probe()
        try:
            with self.translating():
                self._by_password(probe)
                self._prepare_schema(probe)
        finally:
            probe.close()
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self.conninfo, min_size=1, max_size=self.settings.pool_size, open=False, num_workers=1,
            kwargs={"autocommit": True}, configure=self._configure, timeout=30.0,
            name=f"dbhandles-{self.schema}",
            # A connection the server closed (restart, failover, idle_session_timeout,
            # pg_terminate_backend) is found dead when it is handed out, and replaced then.
            check=ConnectionPool.check_connection,
        )  # fmt: skip
        try:
            with self.translating():
                pool.open(wait=True, timeout=self.settings.connect_timeout)
        except BaseException:
            pool.close()
            raise
        self._pool = pool

    def _probe(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.OperationalError as exc:
            # libpq's own refusal (``require_auth``): the server did not ask for the password.
            if self.settings.password_only and PASSWORD_METHODS in str(exc):
                if "cleartext" in str(exc):
                    raise _cleartext_password() from None
                raise _not_by_password() from None
            if self.settings.password_only and "does not support SSL" in str(exc):
                # The tenant's own sslmode (or the operator's PGSSLMODE) asks for SSL: never
                # weakened to a connection in the clear, and said plainly (not a storage error).
                raise ServerNotAllowed(
                    "config: this PostgreSQL server does not offer SSL and the connection requires "
                    "it (sslmode); give no sslmode, or an administrator can enable ssl on the server",
                    field="config",
                ) from None
            raise

    def _by_password(self, conn: psycopg.Connection[Any]) -> None:
        """Refuse a non-admin actor's connection the server let in without checking the password
        it gave (``PQconnectionUsedPassword``): it would be the server process's own identity
        (trust, peer, ident, a certificate, GSSAPI), which libpq of before 16 cannot refuse."""
        if self.settings.password_only and not conn.pgconn.used_password:
            conn.close()
            raise _not_by_password()

    def _prepare_schema(self, conn: psycopg.Connection[Any]) -> None:
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone():
            return
        if self.settings.mode != "create":
            raise DatabaseNotFound(
                f"config.schema: schema {json_text(self.schema, 80)} does not exist at {self.where}; "
                'open it with "mode": "create" to create it',
                field="config.schema",
            )
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key(self.schema),))
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema))
            )

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        self._by_password(conn)  # every connection of the pool, not only the probe
        # Tables are always schema-qualified; an empty search path keeps anyone's functions or
        # operators in other schemas from shadowing the built-ins the compiled SQL calls.
        conn.execute("SET search_path = pg_catalog")
        # No JIT: LLVM compiles a statement's expressions before it runs and cannot be interrupted,
        # so a long filter (100 ``$regex`` with their array branches: planner cost 1.7M, well over
        # ``jit_above_cost``) spent ~24 s compiling past a 300 ms ``statement_timeout``. The
        # compiled SQL is function calls on ``jsonb``, which JIT does not speed up anyway.
        conn.execute("SET jit = off")
        # Floats' text is their shortest round-trip form (PostgreSQL 12's default, set here in case
        # a server lowers it): ``postgres_records`` tells a number a double rounds by comparing it
        # with its double's text, and dbhandles' own floats must compare equal.
        conn.execute("SET extra_float_digits = 1")
        if self.readonly:
            conn.execute("SET default_transaction_read_only = on")
        set_json_loads(orjson.loads, conn)

    def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _require_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is None:
            # Released by another thread between ``connect`` and here: reopen.
            with self._lock:
                self._connected = False
                self.connect()
                pool = self._pool
        assert pool is not None
        return pool

    def _stack(self) -> list[PostgresSession]:
        stack: list[PostgresSession] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def known_collection(self, name: str) -> str | None:
        """What ``PostgresSession.resolve_collection`` answered when a command last named
        ``name``, from the catalogs' caches (a known collection, else the relation the foreign
        catalog last resolved it to); ``None`` for a name no command has named yet."""
        if name == name.lower() and self.catalog.cached(name) is not None:
            return table_name(name)  # else a table of that exact name may win (session._foreign)
        seen, relation = self.foreign.resolved(name)
        if not seen:
            return None
        return table_name(name) if relation is None else relation

    @contextmanager
    def _session(self, write: bool) -> Iterator[Session]:
        stack = self._stack()
        if stack:
            with self._savepoint(stack, write) as nested:
                yield nested
            return
        pool = self._require_pool()
        with self.translating():
            conn = pool.getconn()
        try:
            tx = Transaction(conn, "BEGIN" if write else _BEGIN_READ)
            session = PostgresSession(self, tx, write)
            stack.append(session)
            try:
                with watched(conn):  # a cancel or a shutdown stops its statements
                    yield session
            except BaseException as exc:
                _rollback(conn)
                if isinstance(
                    exc.__cause__, (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction)
                ):
                    # Someone dropped a table this process knew, or the function of its partial
                    # index of unreadable rows (``postgres_marks``), taking the index along.
                    self.catalog.forget()
                raise
            finally:
                stack.pop()
            if tx.pending is None:  # else nothing reached the server: nothing to commit
                self._commit(tx, write)
            self.catalog.confirm(session.created)
        finally:
            pool.putconn(conn)

    def _commit(self, tx: Transaction, write: bool) -> None:
        conn = tx.conn
        if conn.info.transaction_status == TransactionStatus.INERROR:
            # COMMIT of a failed transaction silently rolls back: say so instead.
            _rollback(conn)
            raise StorageError(
                "the transaction failed earlier (an error was caught inside the session)"
            )
        try:
            with self.translating():
                tx.commit(write)  # a write's deferred triggers within the time budget
        except BaseException:
            _rollback(conn)
            raise

    @contextmanager
    def _savepoint(self, stack: list[PostgresSession], write: bool) -> Iterator[Session]:
        """A session opened inside another on the same thread: a savepoint of its transaction."""
        parent = stack[-1]
        if write and not parent.write:
            raise DbHandlesError("a write session cannot be nested inside a read session")
        name = sql.Identifier(f"dbh_{len(stack)}")
        session = PostgresSession(self, parent.tx, write)
        with self.translating():
            parent.tx.start()
            parent.conn.execute(sql.SQL("SAVEPOINT {}").format(name))
        stack.append(session)
        try:
            yield session
        except BaseException:
            with self.translating():
                parent.conn.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(name))
            raise
        finally:
            stack.pop()
        with self.translating():
            parent.conn.execute(sql.SQL("RELEASE SAVEPOINT {}").format(name))
        parent.created.extend(session.created)

    # -- capabilities ---------------------------------------------------------------------------

    def ensure_indexes(self, collection: str, paths: list[tuple[str, ...]]) -> None:
        """Create the collection if needed, then expression indexes per field path.

        A JSON path gets two: on its text (``COLLATE "C"``, serving string equality, ``$in`` and ranges)
        and on its number key (serving numeric ones), the exact expressions filters compare.
        """
        with self.session(write=True) as session:
            assert isinstance(session, PostgresSession)
            session.ensure_indexes(collection, paths)

    def size_bytes(self) -> int:
        pool = self._require_pool()
        with self.translating(), pool.connection() as conn:
            row = conn.execute(
                "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN "
                "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p')",
                (self.schema,),
            ).fetchone()
        return int(row[0]) if row else 0

    def vacuum(self) -> None:
        """``VACUUM (FULL, ANALYZE)`` every collection table (it locks each table while it runs)."""
        pool = self._require_pool()
        with self.translating(), pool.connection() as conn, watched(conn):
            for name in self.catalog.tables(conn):
                conn.execute(
                    sql.SQL("VACUUM (FULL, ANALYZE) {}").format(qualified(self.schema, name))
                )


def _rollback(conn: psycopg.Connection[Any]) -> None:
    # The error that got us here is the one to report; a broken connection fails ROLLBACK too, and
    # the pool discards it when it comes back.
    if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
        with suppress(psycopg.Error):
            conn.execute("ROLLBACK")


def _not_by_password() -> ServerNotAllowed:
    return ServerNotAllowed(
        "config: this PostgreSQL server let the connection in without checking its password (as "
        "the server's own identity: trust, peer, ident, a certificate or GSSAPI); a non-admin "
        "actor's connection must be authenticated by the password it gives: an administrator "
        "can require one for this role and address (pg_hba.conf)",
        field="config",
    )


def _cleartext_password() -> ServerNotAllowed:
    return ServerNotAllowed(
        "config: this PostgreSQL server asks for the password in cleartext (pg_hba.conf method "
        "password), which a non-admin actor's connection never sends; an administrator can "
        "change that line's method to scram-sha-256 (or md5) in pg_hba.conf",
        field="config",
    )


@byte_memo(NAME_CACHE_BYTES)
def _connection_key(settings: PostgresConfig) -> str:
    # Cached: the registry asks on every command, and parsing a conninfo is not free.
    conninfo, _, password = connection_params(settings)
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    params.pop("password", None)
    # The password is part of the identity (a wrong one must not ride on a right one's pool),
    # but only as a digest: keys can end up in logs.
    secret = hashlib.sha256((password or "").encode()).hexdigest()[:16]
    public = " ".join(f"{k}={params[k]}" for k in sorted(params))
    mode = "ro" if settings.readonly else "rw"
    key = f"postgres:{public}:{secret}:{settings.schema_name}:{mode}"
    # Field names are decided per adapter (its catalog describes the tables once).
    return key if settings.field_names == "columns" else f"{key}:{settings.field_names}"


def _pg_config(config: AdapterConfig) -> PostgresConfig:
    if not isinstance(config, PostgresConfig):
        raise InvalidConfig(
            f"the postgres adapter needs a PostgresConfig, not {type(config).__name__}"
        )
    return config
