"""The registry's shared connections and the lease a command holds on one (``HandleRegistry.lease``).

``ConnectionTable`` is the part of ``HandleRegistry`` that keeps the open connections: acquiring one
for a lease (opening it lazily, making room under the limit of open databases), releasing it,
recording when each handle was last used, and releasing idle connections.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeGuard

from dbhandles.adapters import Adapter, FileConfig, get_adapter_class
from dbhandles.errors import HandleNotFound
from dbhandles.handle_entry import HandleEntry

if TYPE_CHECKING:
    from dbhandles.adapters.memory import MemoryAdapter
    from dbhandles.adapters.memory_quota import ActorMemory
    from dbhandles.registry import HandleRegistry
    from dbhandles.security.file_names import FileNames
    from dbhandles.settings import Settings
    from dbhandles.store import HandleStore

__all__ = ["Connection", "ConnectionTable", "Lease"]

log = logging.getLogger("dbhandles.registry")

#: ``lastUsedAt`` is persisted at most this often per handle (it is exact in memory).
_TOUCH_EVERY_MS = 1000


@dataclass(slots=True)
class Connection:
    adapter: Adapter
    handles: set[str] = field(default_factory=set)
    in_use: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    #: No handle uses it any more, but a lease still does: the last lease to end closes it.
    detached: bool = False


def _in_memory(adapter: Adapter) -> TypeGuard[MemoryAdapter]:
    """``isinstance(adapter, MemoryAdapter)``, without importing ``adapters/memory.py`` when no
    adapter of it was made (its class then cannot be imported yet): a process that opens only
    SQLite databases never imports it (~1.5 ms of a CLI command's start)."""
    module = sys.modules.get("dbhandles.adapters.memory")
    return module is not None and isinstance(adapter, module.MemoryAdapter)


class Lease:
    """``HandleRegistry.lease``: a class, not a ``@contextmanager`` generator, since every command
    takes one and a generator costs about three times as much to enter and leave."""

    __slots__ = ("_conn", "_entry", "_name", "_registry")

    def __init__(self, registry: HandleRegistry, name: str | HandleEntry | None) -> None:
        self._registry, self._name = registry, name
        self._entry: HandleEntry | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> tuple[HandleEntry, Adapter]:
        name = self._name
        entry = name if isinstance(name, HandleEntry) else self._registry.resolve(name)
        self._conn = self._registry._acquire(entry)
        self._entry = entry
        return entry, self._conn.adapter

    def __exit__(self, *exc: object) -> None:
        if self._entry is not None and self._conn is not None:
            self._registry._release(self._entry, self._conn)


class ConnectionTable:
    """The open connections of a ``HandleRegistry`` (which sets every attribute below): shared by
    every handle on the same database (``Adapter.connection_key``), opened lazily, released when
    idle; thread-safe under the registry's ``_lock``."""

    settings: Settings
    store: HandleStore
    #: The book of names of database files (``security/file_names.py``).
    names: FileNames
    #: What each non-admin actor's memory and json databases hold (``adapters/memory_quota``).
    memory: ActorMemory
    _lock: threading.RLock
    _connections: dict[str, Connection]
    _default: HandleEntry
    _closed: bool
    _last_used: dict[str, int]
    _persisted_use: dict[str, int]
    _toucher: ThreadPoolExecutor | None
    _stop: threading.Event

    def _release(self, entry: HandleEntry, conn: Connection) -> None:
        with self._lock:  # ``_unlease``, written out: every command ends here
            conn.in_use -= 1
            conn.idle_since = time.monotonic()
            detached = conn.detached and conn.in_use == 0
        if detached:
            conn.adapter.close()
            return
        self._touch(entry)

    def _unlease(self, conn: Connection) -> bool:
        """End one lease of ``conn``; ``True`` if the caller must now close it (it was detached)."""
        with self._lock:
            conn.in_use -= 1
            conn.idle_since = time.monotonic()
            return conn.detached and conn.in_use == 0

    def _key(self, entry: HandleEntry, cls: type[Adapter]) -> str:
        if entry.key is None:
            key = cls.connection_key(entry.config)
            entry.key = key if key is not None else f"handle:{entry.handle}"
        return entry.key

    def _acquire(self, entry: HandleEntry) -> Connection:
        if entry.stored and isinstance(entry.config, FileConfig):
            # One ``dict.get`` is atomic: no lock (what it finds is decided again under it below).
            known = self._connections.get(entry.key) if entry.key is not None else None
            if known is None or not known.adapter.connected:  # every reopen, decided again
                tenant = entry.metered and (
                    get_adapter_class(entry.adapter_name).features.side_files_by_name
                )
                self.names.check_reopen(self.settings, entry.config.path, tenant=tenant)
        with self._lock:
            if self._closed:
                raise HandleNotFound("the registry is closed", field="dbHandle")
            conn = self._connections.get(entry.key) if entry.key is not None else None
            if conn is None or conn.adapter.closed:
                cls = get_adapter_class(entry.adapter_name)
                key = self._key(entry, cls)
                conn = self._connections.get(key)
                if conn is None or conn.adapter.closed:
                    adapter = cls(entry.config)
                    if _in_memory(adapter):  # memory, json: in this process's RAM
                        adapter.max_bytes = self.settings.max_memory_db_bytes
                        if entry.metered and entry.owner is not None:
                            adapter.account = self.memory.account(entry.owner)
                    conn = self._connections[key] = Connection(adapter)
            conn.handles.add(entry.handle)
            conn.in_use += 1
            victims = (
                self._make_room(conn)
                if not conn.adapter.connected and conn.adapter.features.durable
                else ()
            )
        for victim in victims:  # outside the registry's lock: release takes the adapter's
            victim.adapter.release()
        return conn

    def _make_room(self, coming: Connection) -> list[Connection]:
        """The least recently used idle connections to release so that fewer databases than
        ``Settings.open_databases_limit()`` stay connected, keeping descriptors bounded however many
        handles are open (their handles stay valid and reconnect on use). Called with the lock held,
        only when a connection is about to open; the default database's is never chosen.
        """
        live = [c for c in self._connections.values()
                if c is not coming and c.adapter.connected and c.adapter.features.durable]  # fmt: skip
        limit = self.settings.open_databases_limit()
        if len(live) < limit:
            return []
        default_key = self._default.key
        idle = sorted(
            (c for c in live if c.in_use == 0 and self._default.handle not in c.handles
             and (default_key is None or self._connections.get(default_key) is not c)),
            key=lambda c: c.idle_since,
        )  # fmt: skip
        return idle[: len(live) - limit + 1]

    def live_adapter(self, entry: HandleEntry) -> Adapter | None:
        """The adapter of ``entry``'s open connection, without a lease (``None``: none is open):
        to look at what a command that just ran saw (its audit row), never to work with."""
        key = entry.key if entry.key is not None else self._key(entry, get_adapter_class(
            entry.adapter_name))  # fmt: skip
        conn = self._connections.get(key)
        return None if conn is None or conn.adapter.closed else conn.adapter

    def reads_never_wait(self, entry: HandleEntry) -> bool:
        """Whether ``entry``'s live connection answers reads without ever waiting for a writer
        (``Adapter.reads_never_wait``); ``False`` while it has no connection."""
        adapter = self.live_adapter(entry)
        return adapter is not None and adapter.reads_never_wait()

    def _touch(self, entry: HandleEntry) -> None:
        now = int(time.time() * 1000)  # ``clock.now_ms``, inlined: every command ends here
        entry.last_used_at = now
        self._last_used[entry.handle] = now
        if not entry.durable:
            return
        if now - self._persisted_use.get(entry.handle, 0) >= _TOUCH_EVERY_MS:
            self._persisted_use[entry.handle] = now
            # A write to the handle table must never make a read wait (for the lock of another
            # process's writer, say): it is done by a background thread.
            with self._lock:
                toucher = self._start_toucher()
                if toucher is None:
                    return
                path = entry.config.path if isinstance(entry.config, FileConfig) else None
                toucher.submit(self._persist_use, entry.handle, entry.is_default, now, path)

    def start_toucher(self) -> None:
        """Start the thread that writes ``lastUsedAt`` now, on the calling thread's niceness;
        idempotent, and nothing once closed.

        A thread inherits the niceness of the thread that starts it (Linux), and the toucher's
        writes hold the handle store's write lock (and its fsync) that request threads' own store
        writes wait for: started by a job thread (``jobs.JOB_NICENESS``) on the first use of a
        handle, the kernel could leave it holding that lock while the server's other threads run.
        So ``JobRunner.start`` starts it from the request's thread, before any job thread runs.
        """
        with self._lock:
            self._start_toucher()

    def _start_toucher(self) -> ThreadPoolExecutor | None:
        """The toucher, its one thread started (under ``_lock``); ``None`` once closed."""
        if self._closed:
            return None
        if self._toucher is None:
            toucher = ThreadPoolExecutor(1, thread_name_prefix="dbhandles-touch")
            # ThreadPoolExecutor starts its thread on the first submit: that is now, on this thread.
            toucher.submit(_nothing)
            self._toucher = toucher
        return self._toucher

    def _persist_use(self, handle: str, is_default: bool, now: int, path: str | None) -> None:
        try:
            if is_default:
                self.store.set_meta("default.lastUsedAt", str(now))
            else:
                self.store.touch(handle, now)
            if path is not None:  # its file and side files now, for a restart after a crash
                self.names.confirm(path)
        except Exception:  # lastUsedAt is bookkeeping: a busy store must not surface anywhere
            log.warning("could not record lastUsedAt of %s", handle, exc_info=True)

    def connection_of(self, entry: HandleEntry) -> Connection | None:
        """The open connection ``entry``'s handle uses, found by the handle (never by its path:
        a close must not depend on the file's folders still resolving as they did at open)."""
        with self._lock:
            if entry.key is not None:
                conn = self._connections.get(entry.key)
                if conn is not None and entry.handle in conn.handles:
                    return conn
            for conn in self._connections.values():
                if entry.handle in conn.handles:
                    return conn
        return None

    def _detach(self, entry: HandleEntry, conn: Connection) -> None:
        with self._lock:
            conn.handles.discard(entry.handle)
            if conn.handles:
                return
            for key, value in list(self._connections.items()):
                if value is conn:
                    del self._connections[key]
            if conn.in_use:
                # A command on another thread is using it (its handle was closed under it): closing
                # now would fail that command with "used after close"; its lease closes it instead.
                conn.detached = True
                return
        conn.adapter.close()

    def release_idle(self, older_than: float | None = None) -> int:
        """Release connections idle for ``older_than`` seconds (default: the setting); return how many."""
        limit = self.settings.idle_release_seconds if older_than is None else older_than
        now = time.monotonic()
        with self._lock:
            idle = [
                c
                for c in self._connections.values()
                if c.in_use == 0 and now - c.idle_since >= limit
            ]
        for conn in idle:
            conn.adapter.release()
        return len(idle)

    def _reap(self) -> None:
        interval = max(0.05, min(self.settings.idle_release_seconds / 2, 30.0))
        while not self._stop.wait(interval):
            try:
                self.release_idle()
            except Exception:  # pragma: no cover - the reaper must never die
                continue


def _nothing() -> None:
    """The task that starts the toucher's thread (``ConnectionTable.start_toucher``)."""
