"""The access generation: one number that moves whenever who may see what may have changed.

Decisions about access are cached where they are asked often (a WebSocket's "may this actor see the
events of this handle", ``server/ws_guard.py``). A cache must never outlive a revocation: every change
that can narrow someone's access bumps the generation (a grant given, changed or revoked, a handle
closed, an alias pointed, a database's isolation changed, a token revoked), and a cache is valid only
for the generation it was filled in.

The generation has two parts. This process's changes move an in-memory counter at once. Other
processes sharing the home (a ``jtag`` run in-process, a second server) write a new value under
``access.generation`` in the handle store's meta table; it is read again only when the store says
another connection committed something (``HandleStore.version``), so checking costs nothing while
nothing changes. A store without a version (PostgreSQL) is read on every check.
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbhandles.store import HandleStore

__all__ = ["META_KEY", "AccessGeneration"]

#: The ``_dbh_meta`` key other processes' changes are published under.
META_KEY = "access.generation"


class AccessGeneration:
    """The access generation of one handle store (thread-safe).

    Args:
        store: the handle store shared by every process on the home.
    """

    def __init__(self, store: HandleStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._local = 0
        self._version: int | None = None
        self._stored: str | None = None
        self._read_once = False

    def bump(self) -> None:
        """Say that access may have narrowed: every cache of an older generation is stale now.

        Raises:
            StorageError, StorageBusy: the store could not record it for other processes (this
                process's caches are invalidated first, whatever happens).
        """
        with self._lock:
            self._local += 1
        self._store.set_meta(META_KEY, uuid.uuid4().hex)

    def current(self) -> tuple[int, str | None]:
        """The generation now: equal to an earlier answer exactly when nothing was bumped since
        (in this process or, as far as the store has seen, in another).

        Raises:
            StorageError, StorageBusy: the store could not be read.
        """
        version = self._store.version()
        with self._lock:
            fresh = self._read_once and version is not None and version == self._version
            if fresh:
                return self._local, self._stored
        stored = self._store.get_meta(META_KEY)
        with self._lock:
            self._version, self._stored, self._read_once = version, stored, True
            return self._local, stored
