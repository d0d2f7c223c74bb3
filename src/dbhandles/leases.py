"""The registry's shared connections and the lease a command holds on one (``HandleRegistry.lease``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dbhandles.adapters import Adapter
from dbhandles.handle_entry import HandleEntry

if TYPE_CHECKING:
    from dbhandles.registry import HandleRegistry

__all__ = ["Connection", "Lease"]


@dataclass(slots=True)
class Connection:
    adapter: Adapter
    handles: set[str] = field(default_factory=set)
    in_use: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    #: No handle uses it any more, but a lease still does: the last lease to end closes it.
    detached: bool = False


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
