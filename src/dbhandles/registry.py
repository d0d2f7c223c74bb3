"""HandleRegistry: the ``default`` handle, open/close/list, aliases, durable handles, shared connections.

Handles name databases; connections are the open drivers behind them. Handles are durable (kept in the
default database by a ``HandleStore``) and stay valid until ``close``; connections are opened lazily,
shared by every handle on the same database (same ``Adapter.connection_key``), and released when idle.
Nothing here ever falls back to ``default``: an unknown or closed handle is ``HandleNotFound``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dbhandles.adapters import Adapter, AdapterConfig, FileConfig, get_adapter_class
from dbhandles.adapters.memory_quota import ActorMemory
from dbhandles.byte_cache import NAME_CACHE_BYTES, ByteCache, deep_sizeof
from dbhandles.clock import now_ms
from dbhandles.dbfiles import check_plain, know
from dbhandles.errors import DefaultHandleProtected, HandleNotFound, InvalidParams
from dbhandles.handle_entry import (
    ALIAS_PATTERN,
    DEFAULT_HANDLE,
    HANDLE_PATTERN,
    WELL_KNOWN_ALIASES,
    HandleEntry,
    alias_key,
    check_alias,
    check_handle_name,
    is_handle_id,
    parse_config,
)
from dbhandles.leases import Connection, ConnectionTable, Lease
from dbhandles.pinned import real
from dbhandles.security.file_names import FileNames
from dbhandles.security.generation import AccessGeneration
from dbhandles.security.names import RESERVED_ACTORS
from dbhandles.security.permissions import Permissions
from dbhandles.settings import Settings
from dbhandles.store import HandleRow, HandleStore, SqliteHandleStore, create_private
from dbhandles.values import json_text

__all__ = [
    "ALIAS_PATTERN",
    "DEFAULT_HANDLE",
    "HANDLE_PATTERN",
    "WELL_KNOWN_ALIASES",
    "HandleEntry",
    "HandleRegistry",
    "check_handle_name",
]


#: Names ``check_handle_name`` accepted, each with ``is_handle_id`` of it (both pure functions of
#: the text): ``_checked_name``. Names are the caller's text: bounded in bytes.
_CHECKED: ByteCache[str, bool] = ByteCache(NAME_CACHE_BYTES)


def _checked_name(name: str) -> bool:
    """``check_handle_name(name)``, then whether ``name`` has a handle's shape (``is_handle_id``),
    remembered for the last names accepted (``NAME_CACHE_BYTES`` of them) (a refusal is raised again every time).

    Raises:
        InvalidParams: ``name`` cannot be a handle or an alias (``HANDLE_PATTERN``).
    """
    found = _CHECKED.get(name) if type(name) is str else None
    if found is None:
        check_handle_name(name)
        found = is_handle_id(name)
        _CHECKED.put(name, found, deep_sizeof((name, found)))
    return found


class HandleRegistry(ConnectionTable):
    """Registry of open databases; thread-safe; one per home folder per process is typical.

    Args:
        home: folder of the default database (``<home>/default.sqlite``); overrides ``settings.home``.
        settings: service settings (defaults to ``Settings()``).
        store: where handles persist (defaults to the default SQLite database).
    """

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        settings: Settings | None = None,
        store: HandleStore | None = None,
    ) -> None:
        settings = settings or Settings()
        if home is not None:
            settings = settings.with_home(home)
        self.settings = settings
        self._lock = threading.RLock()
        self._connections: dict[str, Connection] = {}
        self._local: dict[str, HandleEntry] = {}
        self._local_aliases: dict[str, str] = {}
        #: Who pointed each local alias (aliases belong to an actor, as in the store).
        self._local_alias_owners: dict[str, str | None] = {}
        self._last_used: dict[str, int] = {}
        self._cache: dict[str, HandleEntry] = {}
        self._toucher: ThreadPoolExecutor | None = None
        self._cache_version: int | None = None
        self._generation = 0
        self._persisted_use: dict[str, int] = {}
        self._close_listeners: list[Callable[[str], object]] = []
        self._closed = False
        #: Server processes sharing the handles (``jtag serve --workers``; ``data/open`` reads it).
        self.processes = 1
        default_adapter = "sqlite"
        if settings.default_url:
            from dbhandles.store.postgres_default import default_database

            default_adapter, default_config, self.store = default_database(
                settings.default_url, store
            )
        else:
            create_private(settings.default_path)  # before prepare() creates it readable by all
            know(settings.default_path, vouched=True)  # its name, whatever links appear
            sqlite_cls = get_adapter_class("sqlite")
            default_config = sqlite_cls.prepare(
                sqlite_cls.parse_config({"path": str(settings.default_path), "mode": "create"})
            )
            self.store = store or SqliteHandleStore(Path(default_config.path))  # type: ignore[attr-defined]
        #: The book of names of database files (``security/file_names.py``).
        self.names = FileNames(self.store)
        self.memory = ActorMemory(settings.memory_per_actor_bytes)
        #: Bumped by every change that may narrow access (closing a handle, pointing an alias here;
        #: grants, isolation and tokens elsewhere), so cached access decisions never outlive it.
        self.access_generation = AccessGeneration(self.store)
        # The default handle's times persist like any handle's, so every process reports the same.
        # Read first: only the very first start writes (a CLI run should not pay a write transaction).
        opened_at = self.store.get_meta("default.openedAt") or self.store.set_meta(
            "default.openedAt", str(now_ms()), only_if_missing=True
        )
        opened = int(opened_at)
        last_used = int(self.store.get_meta("default.lastUsedAt") or opened)
        self._default = HandleEntry(
            DEFAULT_HANDLE, default_adapter, default_config, opened, last_used, is_default=True
        )
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        if settings.idle_release_seconds > 0:
            self._reaper = threading.Thread(target=self._reap, name="dbhandles-idle", daemon=True)
            self._reaper.start()

    # -- resolution ------------------------------------------------------------------------------

    def resolve(self, name: str | None) -> HandleEntry:
        """The entry for a handle or alias (``None`` means ``default``).

        Raises:
            InvalidParams: ``name`` cannot be a handle or an alias (``HANDLE_PATTERN``).
            HandleNotFound: unknown, closed, or a non-durable handle of another process.
        """
        if name is None or name == DEFAULT_HANDLE:
            return self._default
        _checked_name(name)
        return self._lookup(name)

    def _lookup(self, name: str) -> HandleEntry:
        """``resolve`` of a checked name or a store key (an actor's alias, ``alias_key``)."""
        with self._lock:
            local = self._local.get(self._local_aliases.get(name, name))
        if local is not None:
            return local
        version = self.store.version()
        with self._lock:
            generation = self._generation
            if version is None or version != self._cache_version:
                self._cache.clear()
                self._cache_version = version
            cached = self._cache.get(name)
        if cached is not None:
            return cached
        row = self.store.get_handle(name)
        if row is None:
            raise HandleNotFound.unknown(json_text(name, 80))
        entry = self._entry_from_row(row)
        if version is not None:
            with self._lock:
                if self._cache_version == version and self._generation == generation:
                    self._cache[name] = entry
        return entry

    def _invalidate(self) -> None:
        """Forget cached entries; called after this registry changed the store itself (our own
        commits do not move the store's version)."""
        with self._lock:
            self._cache.clear()
            self._cache_version = None
            self._generation += 1

    def _entry_from_row(self, row: HandleRow) -> HandleEntry:
        # Its file's name is not trusted here (a link may be swapped in): ``_acquire`` checks it.
        cls = get_adapter_class(row.adapter)
        config = cls.parse_config(row.config)
        tenant = config.tenant_config()
        if tenant is not config and row.owner is not None and not self._admin_name(row.owner):
            # Stored before its adapter had a tenant form (``passwordOnly``): a non-admin's handle
            # gets it now, as ``AccessPolicy.check_open`` gives it to every new one (issue 12).
            config = tenant
        return HandleEntry(
            handle=row.handle,
            adapter_name=row.adapter,
            config=config,
            opened_at=row.opened_at,
            last_used_at=max(row.last_used_at, self._last_used.get(row.handle, 0)),
            emit_events=row.emit_events,
            owner=row.owner,
            metered=row.owner is not None,
            permissions=Permissions.model_validate(row.permissions) if row.permissions else None,
            stored=True,
        )

    def _admin_name(self, actor: str) -> bool:
        """Whether ``actor`` is an administrator's name: a reserved one, or one that has held an
        administrator token (``security/tokens._check_name``: such a name never gets a plain one)."""
        if actor in RESERVED_ACTORS:
            return True
        return any(t.actor == actor and t.is_admin for t in self.store.list_tokens())

    def lease(self, name: str | HandleEntry | None) -> Lease:
        """Resolve a handle (or take a resolved entry) and hold its lazily opened adapter for one
        command: ``with registry.lease(handle) as (entry, adapter): ...``."""
        return Lease(self, name)

    # -- open / close ----------------------------------------------------------------------------

    parse = staticmethod(parse_config)  #: validate without touching the disk (handle_entry)

    def open(
        self,
        adapter: str,
        config: Mapping[str, Any] | AdapterConfig | None,
        *,
        alias: str | None = None,
        emit_events: bool = True,
        owner: str | None = None,
        permissions: Permissions | None = None,
        take_alias: bool = True,
    ) -> str:
        """Open a database and mint a new handle (a UUID4 string) for it.

        The target is checked and connected now, so a bad path never becomes a handle. ``alias``
        belongs to ``owner``; without ``take_alias`` (a non-admin) it is ``owner``'s own name
        (``alias_key``), which no other actor's alias can block.

        Raises:
            UnknownAdapter, InvalidConfig, DatabaseNotFound, NotADatabase, DriverMissing.
        """
        if isinstance(config, AdapterConfig):
            cls = get_adapter_class(adapter)
        else:
            cls, config = self.parse(adapter, config)
        if alias is not None:
            # A non-admin's alias is its own name (``alias_key``): it never takes another's.
            alias = check_alias(alias) if take_alias else alias_key(check_alias(alias), owner)
        if cls.features.file_based and not cls.features.sqlite_vfs_only:
            assert isinstance(config, FileConfig)
            # An adapter that reads its file with plain I/O must never be pointed at a live
            # database of this process or one of SQLite's side files (docs/architecture.md 2a).
            check_plain(real(os.path.expanduser(config.path), "config.path"), "config.path")
        parsed = cls.prepare(config)
        handle = str(uuid.uuid4())
        now = now_ms()
        entry = HandleEntry(
            handle, cls.name, parsed, now, now, emit_events=emit_events,
            durable=cls.features.durable, owner=owner, permissions=permissions,
            metered=owner is not None and not take_alias,
        )  # fmt: skip
        conn = self._acquire(entry)
        try:
            shared = conn.adapter.connected
            conn.adapter.connect()
            if shared:
                self._judge_again(cls, parsed, conn.adapter)
        except BaseException:
            self._detach(entry, conn)
            raise
        finally:
            if self._unlease(conn):
                conn.adapter.close()
        if isinstance(parsed, FileConfig):
            self.names.record(parsed.path)  # the name this file is used by, for every process
        if entry.durable:
            if parsed.mode == "create" and cls.features.file_based:
                # The file exists now: later processes must not silently re-create it if it vanishes.
                parsed = parsed.model_copy(update={"mode": "readwrite"})
            row = HandleRow(
                handle, cls.name, parsed.model_dump(mode="json", by_alias=True), now, now,
                emit_events, owner, permissions.to_wire() if permissions is not None else None,
            )  # fmt: skip
            try:
                self.store.put_handle(row, alias, alias_owner=owner, take_alias=take_alias)
                self._invalidate()
            except BaseException:
                self._detach(entry, conn)
                raise
            if alias is not None:
                with self._lock:  # a local alias of the same name would shadow the new one
                    self._local_aliases.pop(alias, None)
                    self._local_alias_owners.pop(alias, None)
                self.access_generation.bump()
        else:
            with self._lock:
                self._local[handle] = entry
                if alias is not None:
                    self._local_aliases[alias] = handle
                    self._local_alias_owners[alias] = owner
            if alias is not None:
                self.access_generation.bump()
        return handle

    @staticmethod
    def _judge_again(cls: type[Adapter], config: AdapterConfig, live: Adapter) -> None:
        """Judge a database this open found already connected (another handle's) as a fresh
        open would: the file may have been replaced, or its schema changed, since that
        connection decided to trust it. An adapter whose file SQLite alone opens gets a
        connection of its own, opened and closed (SQLite parses and judges the schema anew; a
        second connection never drops this process's locks); another looks through a session of
        the live one. So ``data/open`` is refused as a fresh one would be (docs/security.md "No
        SQL of a database runs with more than ``trusted_schema=OFF`` allows"), not the command
        after it.

        Raises:
            DbHandlesError: as ``Adapter.connect`` of a fresh open (``access_denied`` for a
                schema it does not trust...).
        """
        if cls.features.sqlite_vfs_only:
            probe = cls(config)
            try:
                probe.connect()
            finally:
                probe.close()
            return
        with live.session():
            pass

    def close(self, name: str) -> str:
        """Close a handle (or the handle an alias points at); return the handle id.

        ``name`` is resolved as the service sees names, not as an actor does: a command closes
        the id of the handle it resolved in its caller's names (``resolve_for``).

        Its aliases and query cursors go with it: the store deletes a durable handle's cursors with the
        handle, and every ``on_close`` listener (the service's ``QueryCursors``) is called with the
        handle id, which closes the cursors it keeps in this process. The connection closes when no
        handle uses it.

        Raises:
            DefaultHandleProtected: ``default`` is always open.
            HandleNotFound: unknown or already closed.
        """
        if name == DEFAULT_HANDLE:
            raise DefaultHandleProtected(
                "Cannot close default database handle: 'default' is always open", field="dbHandle"
            )
        entry = self.resolve(name)
        if entry.is_default:
            raise DefaultHandleProtected("Cannot close default database handle", field="dbHandle")
        if isinstance(entry.config, FileConfig):
            self.names.confirm(entry.config.path, settled=True)  # its name, for a restart
        if entry.durable:
            deleted = self.store.delete_handle(entry.handle)
            self._invalidate()
            if not deleted:
                raise HandleNotFound(
                    f"dbHandle: {json_text(name, 80)} was already closed", field="dbHandle"
                )
        else:
            with self._lock:
                self._local.pop(entry.handle, None)
                for alias in [a for a, h in self._local_aliases.items() if h == entry.handle]:
                    del self._local_aliases[alias]
                    self._local_alias_owners.pop(alias, None)
        self.access_generation.bump()
        with self._lock:
            listeners = list(self._close_listeners)
        for listener in listeners:
            listener(entry.handle)
        conn = self.connection_of(entry)
        if conn is not None:
            self._detach(entry, conn)
        self._last_used.pop(entry.handle, None)
        self._persisted_use.pop(entry.handle, None)
        return entry.handle

    def on_close(self, listener: Callable[[str], object]) -> None:
        """Call ``listener(handle_id)`` whenever ``close`` closes a handle (after it stopped resolving)."""
        with self._lock:
            self._close_listeners.append(listener)

    # -- aliases -----------------------------------------------------------------------------------

    def register_alias(
        self, alias: str, handle: str, owner: str | None = None, *, take: bool = True
    ) -> None:
        """Point ``alias`` (owned by ``owner``; without ``take``, ``owner``'s own name) at an open
        handle; re-pointing is allowed.

        Raises:
            HandleNotFound: ``handle`` is not open.
            InvalidParams: the alias name is not valid.
        """
        alias = check_alias(alias) if take else alias_key(check_alias(alias), owner)
        entry = self.resolve(handle)
        if entry.is_default:
            raise InvalidParams("alias: 'default' cannot be aliased", field="alias")
        if entry.durable:
            self.store.set_alias(alias, entry.handle, owner, take=take)
            self._invalidate()
            with self._lock:
                self._local_aliases.pop(alias, None)
                self._local_alias_owners.pop(alias, None)
        else:
            with self._lock:
                self._local_aliases[alias] = entry.handle
                self._local_alias_owners[alias] = owner
        self.access_generation.bump()

    def alias_owner(self, name: str) -> tuple[bool, str | None]:
        """``(exists, owner)`` of the alias ``name`` (a local one first, as ``resolve`` does)."""
        with self._lock:
            if name in self._local_aliases:
                return True, self._local_alias_owners.get(name)
        return self.store.alias_owner(name)

    def resolve_for(self, name: str | None, actor: str, is_admin: bool) -> HandleEntry:
        """``resolve`` as ``actor`` sees names: a non-admin's own alias first (``alias_key``), and
        an alias that belongs to another actor answered as an unknown name (administrators may use
        every alias).

        Raises:
            HandleNotFound: as ``resolve``; ``name`` is another actor's alias.
        """
        if name is None or name == DEFAULT_HANDLE:
            return self._default
        # ``resolve``, written out: the name is checked once, not again for the actor's alias.
        if not _checked_name(name) and not is_admin:
            # Its own alias first; else maybe an alias of before aliases were per actor.
            with contextlib.suppress(HandleNotFound):
                return self._lookup(alias_key(name, actor))
        entry = self._lookup(name)
        if is_admin or entry.is_default or name == entry.handle:
            return entry
        exists, owner = self.alias_owner(name)
        if exists and owner != actor:
            # Answered as an unknown name: aliases are per actor, and another actor's must not
            # tell that it exists (nor whose it is).
            raise HandleNotFound.unknown(json_text(name, 80))
        return entry

    # -- introspection -----------------------------------------------------------------------------

    def list_handles(self) -> list[HandleEntry]:
        """Every open handle, ``default`` first, then by ``openedAt``."""
        entries = [self._entry_from_row(row) for row in self.store.list_handles()]
        with self._lock:
            entries.extend(self._local.values())
            local_aliases = dict(self._local_aliases)
        aliases = {**self.store.aliases(), **local_aliases}
        by_handle: dict[str, list[str]] = {}
        for alias, handle in aliases.items():
            by_handle.setdefault(handle, []).append(alias)
        for entry in entries:
            entry.aliases = by_handle.get(entry.handle, [])
        entries.sort(key=lambda e: e.opened_at)
        persisted = int(self.store.get_meta("default.lastUsedAt") or 0)
        self._default.last_used_at = max(self._default.last_used_at, persisted)
        return [self._default, *entries]

    def local_handles(self) -> list[HandleEntry]:
        """The handles of this process the store does not keep (``list_handles`` without the
        stored ones, which it reads from the store, and without ``default``)."""
        with self._lock:
            return list(self._local.values())

    def is_open(self, name: str | None) -> bool:
        try:
            self.resolve(name)
        except HandleNotFound:
            return False
        return True

    def get_db_path(self, name: str | None) -> str | None:
        """The file behind a handle, or ``None`` for non-file databases (raises if unknown)."""
        config = self.resolve(name).config
        return config.path if isinstance(config, FileConfig) else None

    # -- idle release and shutdown -------------------------------------------------------------------

    def close_all(self) -> None:
        """Close every connection and the store; idempotent. Re-raises the first failure at the end."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections = list(self._connections.values())
            self._connections.clear()
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        if self._toucher is not None:
            self._toucher.shutdown(wait=True)
        first: BaseException | None = None
        for conn in connections:
            try:
                if isinstance(conn.adapter.config, FileConfig):  # their names, for a restart
                    self.names.confirm(conn.adapter.config.path, settled=True)
                conn.adapter.close()
            except BaseException as exc:
                first = first or exc
        try:
            self.store.close()
        except BaseException as exc:
            first = first or exc
        if first is not None:
            raise first
