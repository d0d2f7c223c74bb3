"""The ``sqlite`` adapter: one table per collection in an SQLite file, filters compiled to SQL.

One writing connection per adapter, guarded by the adapter's re-entrant lock for the whole of a session:
SQLite serialises writers anyway. On a file in WAL mode read sessions use a small pool of read connections
instead (``sqlite_readers``), so one long read never waits for, or blocks, another. Handles on the same file
share one adapter (see ``connection_key``); read-only handles get their own read-only connection.
The pieces: ``sqlite_config`` (config, path checks), ``sqlite_session`` (records), ``sqlite_schema``
(collection tables, trust), ``sqlite_errors`` (the one error boundary), ``sql_compile`` + ``sqlite_compile`` (filters to SQL).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, ClassVar, Literal

from dbhandles.adapters.base import Adapter, AdapterConfig, Features, Record, Session
from dbhandles.adapters.sql_collections import CollectionCompiler
from dbhandles.adapters.sql_compile import Fragment
from dbhandles.adapters.sqlite_bulk import bulk_load, enter_wal
from dbhandles.adapters.sqlite_compile import SqliteDialect
from dbhandles.adapters.sqlite_config import (
    SQLITE_HEADER,
    SqliteConfig,
    canonical_path,
    check_target,
    missing_database,
    opened_read_only,
    read_immutable,
    simple_config,
)
from dbhandles.adapters.sqlite_errors import translating
from dbhandles.adapters.sqlite_guard import Guard, guard_of
from dbhandles.adapters.sqlite_guard import install as guard_schema_sql
from dbhandles.adapters.sqlite_pages import bounded
from dbhandles.adapters.sqlite_points import Point, point_for, run_kept
from dbhandles.adapters.sqlite_readers import ReaderPool, acquire_within_budget, pooled_read
from dbhandles.adapters.sqlite_records import Witness, watch
from dbhandles.adapters.sqlite_schema import Catalog, json_functions_innocuous
from dbhandles.adapters.sqlite_session import Row, SqliteSession, resolve_in
from dbhandles.adapters.sqlite_trust import register_functions, untrusted_open
from dbhandles.byte_cache import ByteCache, deep_sizeof
from dbhandles.dbfiles import SIDE_SUFFIXES, connect_sqlite, create_empty, file_identity
from dbhandles.errors import DatabaseNotFound, DbHandlesError, InvalidConfig, ReadOnly, StorageError
from dbhandles.filters import FilterNode
from dbhandles.values import json_text

__all__ = ["SQLITE_HEADER", "Row", "SqliteAdapter", "SqliteConfig", "SqliteSession"]


_SQLITE_ERROR = 1
#: Bytes of compiled filters an adapter keeps (``where``: keyed by the filter's text, binding its
#: values, so counting entries let big filters pin memory, issue 13); entries of the per-catalog caches.
WHERE_CACHE_BYTES, _MAX_WHERES = 4 << 20, 256


class SqliteAdapter(Adapter):
    """Records in an SQLite file; the default adapter."""

    name: ClassVar[str] = "sqlite"
    features: ClassVar[Features] = Features(
        durable=True, vacuum=True, indexes=True, shared_across_processes=True, file_based=True,
        bulk_load=True, raw_inserts=True, inline_reads=True, sqlite_vfs_only=True,
        foreign_tables=True, side_files_by_name=True,
    )  # fmt: skip
    config_model: ClassVar[type[AdapterConfig]] = SqliteConfig
    #: Its side files (``dbfiles.SIDE_SUFFIXES``; super-journals are told by ``is_side_file``).
    own_suffixes: ClassVar[tuple[str, ...]] = SIDE_SUFFIXES

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(_sqlite_config(config))
        self.settings = _sqlite_config(config)
        self.path = canonical_path(self.settings.path)
        self.dialect = SqliteDialect()
        self.compiler = CollectionCompiler(self.dialect)
        self._conn: sqlite3.Connection | None = None
        self._catalog: Catalog | None = None
        self._active: list[SqliteSession] = []
        #: The file the connection has open, to notice when it is deleted or replaced.
        self._identity: tuple[int, int] | None = None
        self._vanished = False
        #: Whether the open connection's file is in WAL mode (readers never wait for a writer).
        self._wal = False
        #: Whether the connection reads the file with ``immutable=1`` (see ``_connect``).
        self.immutable = False
        self._wheres = ByteCache[str, tuple[frozenset[str] | None, Fragment]](WHERE_CACHE_BYTES)
        #: What ``known_collection`` answered, valid for one catalog at one schema version
        #: (``_known_for``): every audit row asks, and the answer changes only with the schema.
        self._known: dict[str, str] = {}
        self._known_for: tuple[Catalog, int] | None = None
        #: ``read_one``'s statement per collection name, for one catalog at one schema version
        #: (``_points_for``), as ``_known``: dbhandles' own collections' and, with their readers,
        #: those of foreign tables with an integer key (``_remember_point``).
        self._points: dict[str, Point] = {}
        self._points_for: tuple[Catalog, int] | None = None
        #: The connection's guard: its count of calls tells a kept statement prepared again.
        self._points_guard: Guard | None = None
        #: Read connections of a file in WAL mode, and this thread's sessions (``_session``).
        self._readers = ReaderPool(self._open_reader)
        self._local = threading.local()
        #: Tells the read connections' ``foreign_rows`` this writer's commits from another tool's.
        self._witness = Witness(self._lock, lambda: self._conn, self._active.__len__, self.path)

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any] | None) -> AdapterConfig:
        # The usual config (the default database's) skips the model's validator (``simple_config``).
        if cls.config_model is SqliteConfig and isinstance(raw, Mapping):
            simple = simple_config(raw)
            if simple is not None:
                return simple
        return super().parse_config(raw)

    @classmethod
    def prepare(cls, config: AdapterConfig) -> AdapterConfig:
        """Resolve the path, refuse what is not an SQLite file, create folders in ``create`` mode.

        Raises:
            NotADatabase: the path is a folder, a device or a file without the SQLite header.
            InvalidConfig: the full path is longer than SQLite opens (``max_path_bytes``).
            DatabaseNotFound: the file is missing and ``mode`` is not ``create``.
        """
        settings = _sqlite_config(config)
        path = canonical_path(settings.path)
        settings.check_path_length(path)
        if not check_target(path):
            if settings.mode != "create":
                raise missing_database(path)
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                # An empty file is an empty SQLite database. Creating it here, not at connect time,
                # also serves a handle whose connection is shared with a handle whose file was
                # deleted: that connection sees a new file and reopens it (``_require``). O_EXCL:
                # a file that appeared meanwhile is left alone, never opened (see dbhandles.dbfiles).
                create_empty(path)
            except OSError as exc:
                raise StorageError(f"cannot create {json_text(path)}: {exc.strerror}") from exc
        return settings.model_copy(update={"path": path})

    @classmethod
    def connection_key(cls, config: AdapterConfig) -> str | None:
        settings = _sqlite_config(config)
        key = f"sqlite:{canonical_path(settings.path)}:{'ro' if settings.readonly else 'rw'}"
        # Field names are decided per connection (its catalog describes the tables once).
        return key if settings.field_names == "columns" else f"{key}:{settings.field_names}"

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> None:
        settings = self.settings
        # No content probe: the connection itself reports a file that is not a database (NOTADB).
        if not check_target(self.path, probe=False):
            if self._vanished:
                raise DatabaseNotFound(
                    f"the database file {json_text(self.path)} was deleted while this handle was open; "
                    'data/open it again with "mode": "create" to start a new database there, or '
                    "data/close the handle"
                )
            if settings.mode != "create":
                raise missing_database(self.path)
        mode: Literal["ro", "rw", "rwc"] = (
            "ro" if settings.readonly else "rwc" if settings.mode == "create" else "rw"
        )
        try:
            conn, catalog = self._open_connection(mode, immutable=False)
            self.immutable = False
        except (ReadOnly, StorageError):
            # A database in WAL mode needs its -shm (and may need its -wal) even to be read; in a
            # folder this process cannot write (a read-only mount, another user's folder) SQLite
            # cannot create them. Read it as plain sqlite3 would, immutable: a snapshot, no locks
            # (the handle's config says so: ``SqliteConfig.public``), unless a side file holds
            # committed writes it would miss (``read_immutable``).
            if not read_immutable(self.path, readonly=settings.readonly):
                raise
            conn, catalog = self._open_connection(mode, immutable=True)
            self.immutable = True
        if settings.readonly:
            opened_read_only(self.path, immutable=self.immutable)
        self._conn, self._catalog = conn, catalog
        self._identity, self._vanished = file_identity(self.path), False

    def connect(self) -> None:
        if self._connected and not self._closed:  # without waiting for a writer's lock
            return
        super().connect()

    def _open_reader(self) -> tuple[sqlite3.Connection, Catalog]:
        """A read connection of the pool (``sqlite_readers``), configured as the main one."""
        mode: Literal["ro", "rw"] = "ro" if self.settings.readonly else "rw"
        conn, catalog = self._open_connection(mode, immutable=False, reader=True)
        watch(catalog, self._witness)
        return conn, catalog

    def _open_connection(
        self, mode: Literal["ro", "rw", "rwc"], *, immutable: bool, reader: bool = False
    ) -> tuple[sqlite3.Connection, Catalog]:
        """A configured connection and its catalog (the schema read once: a file that is not a
        database fails here); a ``reader`` (``query_only``) leaves the file's settings alone.

        On an SQLite whose JSON functions are not innocuous (before 3.45), ``trusted_schema=OFF``
        cannot even parse a schema holding dbhandles' JSON indexes: the first connection parses
        the schema trusting it, and if the catalog finds SQL that would run with more than
        ``trusted_schema=OFF`` allows (``sqlite_trust``), it is made again untrusting (SQLite
        judges a schema's functions when it parses it, so one parsed trusted stays judged so)."""
        conn, catalog = self._try_open(mode, immutable=immutable, reader=reader, trust=None)
        if catalog.guard_trust and not catalog.trusted and catalog.started_trusting:
            conn.close()
            with untrusted_open(catalog.distrust):
                conn, catalog = self._try_open(
                    mode, immutable=immutable, reader=reader, trust=False
                )
        return conn, catalog

    def _try_open(
        self, mode: Literal["ro", "rw", "rwc"], *, immutable: bool, reader: bool,
        trust: bool | None,
    ) -> tuple[sqlite3.Connection, Catalog]:  # fmt: skip
        """``_open_connection``'s one try: ``trust`` ``None`` starts as decided (see there)."""
        settings = self.settings
        with translating(path=self.path):
            conn = connect_sqlite(
                self.path, mode, timeout=settings.busy_timeout / 1000, immutable=immutable
            )
        try:
            # Before any statement parses the schema: a CHECK, generated column or index calling
            # a function registered after that runs even untrusted (``sqlite_trust``).
            register_functions(conn)
            with translating(path=self.path):
                conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout)}")
                # See _open_connection; nothing before refresh runs a view or trigger (PRAGMAs
                # only), and a reader starts from the trust the writer's catalog decided.
                guard = not json_functions_innocuous()
                main = self._catalog
                if trust is None:
                    trust = guard and (not reader or (main is not None and main.trusted))
                conn.execute(f"PRAGMA trusted_schema = {'ON' if trust else 'OFF'}")
                # Views and triggers of the file never reach pragma tables, ATTACH or files.
                guard_schema_sql(conn)
                if reader:
                    conn.execute("PRAGMA query_only = ON")
                new = (
                    not settings.readonly
                    and not reader
                    and conn.execute("PRAGMA page_count").fetchone()[0] == 0
                )
                if new:
                    # A new database: JSON documents are often kilobytes, and 8 KiB pages store them
                    # with fewer overflow pages (measured: imports 20% less CPU, files 10% smaller).
                    conn.execute("PRAGMA page_size = 8192")
                # A journal-mode switch is a lasting change to the user's file: only when asked for,
                # or for a database dbhandles is creating (mode create on a missing or empty file).
                created = new and settings.mode == "create"
                if not settings.readonly and (settings.wal or (settings.wal is None and created)):
                    enter_wal(conn, settings.busy_timeout)
                if not reader:
                    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
                    self._wal = str(journal).lower() == "wal"
                conn.execute(f"PRAGMA synchronous = {settings.synchronous.upper()}")
                bounded(conn)  # stops at a cancel or a shutdown; SQLite's memory bounded
                if not settings.readonly:
                    # Writes to tables dbhandles did not create keep their foreign keys, as the
                    # original system's connections did (docs/foreign-tables.md "Writes").
                    conn.execute("PRAGMA foreign_keys = ON")
                catalog = Catalog(
                    conn,
                    guard_trust=guard,
                    camel_names=settings.field_names == "camel",
                )
                catalog.trusted = catalog.started_trusting = trust
                catalog.refresh()  # reads the schema: a file that is not a database fails here
        except BaseException:
            conn.close()
            raise
        return conn, catalog

    def _close(self) -> None:
        conn, self._conn, self._catalog = self._conn, None, None
        self._wal = False
        self._known, self._known_for = {}, None  # answers of that connection's catalog
        self._points, self._points_for, self._points_guard = {}, None, None
        self._readers.close()
        if conn is not None:
            with translating(path=self.path):
                conn.close()

    def _require(self) -> tuple[sqlite3.Connection, Catalog]:
        if self._conn is None or self._catalog is None:
            # Released by another thread between ``connect`` and taking the lock: reopen.
            self._connected = False
            self.connect()
        elif not self._active and file_identity(self.path) != self._identity:
            self._reopen_changed_file()
        assert self._conn is not None and self._catalog is not None
        return self._conn, self._catalog

    def _reopen_changed_file(self) -> None:
        """The file was deleted or replaced under an open connection (which still reads and writes the
        old, possibly unlinked, file): drop that connection and open the file that is there now.

        Raises:
            DatabaseNotFound: the file is gone.
        """
        self._connected = False
        self._close()
        # Never re-create it silently, even for a handle opened with mode create: a database that
        # vanishes is news for the user, not a reason to start writing into an empty one.
        self._vanished = file_identity(self.path) is None
        self.connect()

    def where(self, node: FilterNode | None, catalog: Catalog | None = None) -> Fragment:
        """``compiler.where(node)``, remembered: a listing's filter is compiled once, not per page
        (compiling a path that may cross arrays costs about as much as reading 10 rows). With the
        session's ``catalog``, paths no index of the file names are read in one pass (``rows_of``).

        The key is the tree's ``repr``, not the tree: ``Compare(value=1)``, ``Compare(value=True)`` and
        ``Compare(value=1.0)`` are equal and hash alike, but are different filters (type-strict).
        """
        if node is None:
            return self.compiler.where(None)
        indexed = None if catalog is None else catalog.indexed  # kept with the SQL it decides
        key = repr(node)
        found = self._wheres.get(key)
        if found is None or found[0] is not indexed:
            dialect = SqliteDialect(indexed=indexed)
            compiler = self.compiler if indexed is None else CollectionCompiler(dialect)
            found = (indexed, compiler.where(node))
            self._wheres.put(key, found, deep_sizeof((key, found[1])))  # the catalog's set: shared
        return found[1]

    def reads_never_wait(self) -> bool:
        """True while the connection is open on a file in WAL mode: readers never wait for writers."""
        return self._wal and self._conn is not None

    def read_one(self, collection: str, record_id: str) -> Record | None:
        """A point read as one autocommit statement: no BEGIN/COMMIT round trips (the hot path of
        ``data/read``); inside an open session on this thread it joins that session instead.

        A collection's first read at a schema version reads the version with the row
        (``SqliteSession.get_current``); its statement is then kept (``point_statement``) and
        trusted while SQLite runs it without preparing it again (the guard's count), as it does
        after any connection's schema change. A changed version drops the row and reads again on
        a refreshed catalog; a first read's miss, or a kept statement prepared as it ran, is
        confirmed by a refresh finding the version unchanged. ``trusted_schema`` may so be
        decided one read late: it guards writes, and every write session refreshes first.
        """
        reading = getattr(self._local, "reader", None)
        if reading is not None:  # inside a pooled read session on this thread: its snapshot
            return reading.get(collection, record_id)  # type: ignore[no-any-return]
        acquire_within_budget(self._lock)  # ``_locked``, written out: a generator costs ~1 µs
        try:
            if self._active:
                return super().read_one(collection, record_id)
            conn, catalog = self._require()
            known = catalog.version
            session = None
            if known is not None:
                try:
                    fresh, guard = self._points_for == (catalog, known), self._points_guard
                    statement = self._points.get(collection) if fresh else None
                    if statement is None or guard is None:
                        session = SqliteSession(self, conn, catalog, False)
                        seen, record = session.get_current(collection, record_id)
                        if seen == known:
                            self._remember_point(catalog, known, collection)
                    else:
                        # A run that did not move the guard's count read the schema the
                        # statement was prepared for (SQLite prepares it again otherwise).
                        seen, record = run_kept(
                            conn, guard, statement, collection, record_id, known
                        )
                except DbHandlesError:  # decided from the cache, maybe stale: the careful path
                    seen, record = -1, None
                except sqlite3.Error as exc:
                    # SQLITE_ERROR: what a stale catalog meets; others (busy, I/O) are the read's.
                    if getattr(exc, "sqlite_errorcode", None) != _SQLITE_ERROR:
                        with translating(path=self.path, collection=collection):
                            raise
                    seen, record = -1, None
                if seen == known:
                    return record
                if seen is None:
                    # The version only grows: unchanged now means unchanged since the catalog.
                    with translating(path=self.path):
                        catalog.refresh()
                    if catalog.version == known:
                        return record
            with translating(path=self.path):
                catalog.refresh()
            if session is None:
                session = SqliteSession(self, conn, catalog, False)
            return session.get(collection, record_id)
        finally:
            self._lock.release()

    def _remember_point(self, catalog: Catalog, version: int, collection: str) -> None:
        """Keep ``read_one``'s statement for ``collection`` in ``catalog`` at ``version``: for one
        of dbhandles' own collections, and for a foreign table with an integer key (with its
        reader: ``ForeignReader.point``). Called with the lock held."""
        if catalog.version != version or (kept := point_for(catalog, collection)) is None:
            return
        if self._points_for != (catalog, version) or len(self._points) >= _MAX_WHERES:
            self._points, self._points_for = {}, (catalog, version)
            self._points_guard = guard_of(self._conn)
        self._points[collection] = kept

    def schema_stamp(self, session: Session) -> tuple[object, int] | None:
        # The session's catalog is one connection's (so one file's), refreshed as the session
        # began; every DDL bumps ``schema_version``, and the connection's own sets it unknown.
        if not isinstance(session, SqliteSession) or session.catalog.version is None:
            return None
        return session.catalog, session.catalog.version

    def known_collection(self, name: str) -> str | None:
        """From the schema cache of the open connection, as the last command saw it (a name not
        cached yet is looked up on that connection); ``None`` while none is open."""
        with self._lock:
            catalog = self._catalog
            if catalog is None or self._conn is None or self._active:
                return None
            # The schema version only grows and every DDL bumps it, so an answer for this catalog
            # at this version stays right until the catalog sees another one; none is kept while
            # the version is unknown (after this connection's own DDL, ``Catalog.invalidate``).
            version = catalog.version
            stamp = None if version is None else (catalog, version)
            if stamp is not None and stamp == self._known_for:
                found = self._known.get(name)
                if found is not None:
                    return found
            with translating(path=self.path):
                found = resolve_in(catalog, name)
            if stamp is not None and catalog.version == version:
                if stamp != self._known_for or len(self._known) >= _MAX_WHERES:
                    self._known, self._known_for = {}, stamp
                self._known[name] = found
            return found

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The adapter's lock, waited for no longer than the command's budget (``QueryTimeout``)."""
        acquire_within_budget(self._lock)
        try:
            yield
        finally:
            self._lock.release()

    def _pooled_reads(self) -> bool:
        """Whether a read session may use the pool: a live connection on the same file in WAL mode
        (a rollback journal makes readers and the writer wait for each other anyway, and an
        ``immutable`` file has no locks to share; both keep the one connection)."""
        return (
            self._wal and self._conn is not None and not self.immutable
            and file_identity(self.path) == self._identity
        )  # fmt: skip

    @contextmanager
    def _session(self, write: bool) -> Iterator[Session]:
        local = self._local
        reading = getattr(local, "reader", None)
        if reading is not None:  # a session inside a pooled read session on this thread
            if write:
                raise DbHandlesError("a write session cannot be nested inside a read session")
            yield reading
            return
        if not write and not self._active_here() and self._pooled_reads():
            with pooled_read(self, self._readers) as session:
                local.reader = session
                try:
                    yield session
                finally:
                    local.reader = None
            return
        with self._locked():
            local.depth = getattr(local, "depth", 0) + 1
            try:
                conn, catalog = self._require()
                if self._active:
                    with self._savepoint(conn, catalog, write) as nested:
                        yield nested
                    return
                with translating(path=self.path):
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                session = SqliteSession(self, conn, catalog, write)
                self._active.append(session)
                try:
                    with translating(path=self.path):
                        catalog.refresh()
                        if write:
                            self._witness.hold(conn)
                    yield session
                except BaseException:
                    self._witness.release(conn)
                    _rollback(conn)
                    raise
                finally:
                    self._active.pop()
                try:
                    with translating(path=self.path):
                        self._witness.committing()
                        conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
                finally:
                    self._witness.release(conn)
            finally:
                local.depth -= 1

    def _active_here(self) -> bool:
        """Whether this thread has a session open on the main connection."""
        return bool(getattr(self._local, "depth", 0))

    @contextmanager
    def _savepoint(
        self, conn: sqlite3.Connection, catalog: Catalog, write: bool
    ) -> Iterator[Session]:
        """A session opened inside another on the same thread (the lock is re-entrant)."""
        if write and not self._active[-1].write:
            raise DbHandlesError("a write session cannot be nested inside a read session")
        name = f"dbh_{len(self._active)}"
        session = SqliteSession(self, conn, catalog, write)
        with translating(path=self.path):
            conn.execute(f"SAVEPOINT {name}")
        self._active.append(session)
        try:
            yield session
        except BaseException:
            with translating(path=self.path):
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        finally:
            self._active.pop()
        with translating(path=self.path):
            conn.execute(f"RELEASE {name}")

    # -- capabilities ---------------------------------------------------------------------------

    def ensure_indexes(self, collection: str, paths: list[tuple[str, ...]]) -> None:
        """Create the collection if needed, then an index per field path.

        JSON paths get an expression index on exactly the ``json_extract`` expression the compiler
        emits, so the planner uses it for equality, ``$in`` and range filters.
        """
        with self.session(write=True) as session:
            assert isinstance(session, SqliteSession)
            session.ensure_indexes(collection, paths)

    def bulk_load(self) -> AbstractContextManager[None]:
        """Tune the connection for a long import (``sqlite_bulk.bulk_load``)."""
        return bulk_load(self)

    def size_bytes(self) -> int:
        with self._lock:
            conn, _ = self._require()
            with translating(path=self.path):
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        try:
            wal = os.path.getsize(self.path + "-wal")
        except OSError:
            wal = 0
        return int(pages) * int(page_size) + wal

    def vacuum(self) -> None:
        if self.readonly:
            raise ReadOnly("this handle was opened with mode 'readonly'; it cannot be vacuumed")
        with self._lock:
            conn, catalog = self._require()
            if self._active:
                raise DbHandlesError("vacuum cannot run inside a session")
            with translating(path=self.path):
                catalog.refresh()  # decide trust first: VACUUM rebuilds every index
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.execute("VACUUM")
                # In WAL mode VACUUM writes the rebuilt file into the WAL: the main file only
                # shrinks (and the WAL empties) at the next checkpoint.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _rollback(conn: sqlite3.Connection) -> None:
    # The error that got us here is the one to report; SQLite may already have rolled back itself
    # (after SQLITE_FULL, for instance), in which case ROLLBACK fails and that failure is noise.
    with suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _sqlite_config(config: AdapterConfig) -> SqliteConfig:
    if not isinstance(config, SqliteConfig):
        raise InvalidConfig(f"the sqlite adapter needs a SqliteConfig, not {type(config).__name__}")
    return config
