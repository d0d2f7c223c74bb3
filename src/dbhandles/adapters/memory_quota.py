"""The memory each actor's memory and json databases hold: one bound per actor, across its databases.

``DBHANDLES_MAX_MEMORY_DB_BYTES`` bounds one database; an actor may open many, so the registry also
gives every memory or json database a non-admin actor opens an account (``MemoryAccount``) in one
``ActorMemory`` ledger: each write session that grows a database settles its new size there, and one
that would take the actor's databases together past ``DBHANDLES_MEMORY_PER_ACTOR_BYTES`` is undone
whole (``QuotaExceeded``). Sizes are the databases' records as JSON, counted as they are written.
"""

from __future__ import annotations

import threading

from dbhandles.errors import QuotaExceeded
from dbhandles.values import json_text

__all__ = ["ActorMemory", "MemoryAccount"]


class ActorMemory:
    """Bytes of records per actor and database, against ``limit`` per actor (0: no limit);
    thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        #: Per actor, per database (``id`` of its adapter), its size as last settled.
        self._sizes: dict[str, dict[int, int]] = {}

    def account(self, actor: str) -> MemoryAccount:
        """The account of ``actor``'s databases."""
        return MemoryAccount(self, actor)

    def held(self, actor: str) -> int:
        """Bytes ``actor``'s databases hold, as last settled."""
        with self._lock:
            return sum(self._sizes.get(actor, {}).values())

    def settle(self, actor: str, database: int, size: int, grew: bool) -> None:
        """Record that ``database`` of ``actor`` now holds ``size`` bytes.

        Raises:
            QuotaExceeded: it ``grew`` and the actor's databases would hold more than ``limit``
                (nothing is recorded: the caller undoes the write).
        """
        with self._lock:
            sizes = self._sizes.setdefault(actor, {})
            total = sum(sizes.values()) - sizes.get(database, 0) + size
            if grew and self.limit and total > self.limit:
                if not sizes:
                    del self._sizes[actor]
                raise QuotaExceeded(
                    f"this write would make the memory and json databases of actor "
                    f"{json_text(actor, 80)} hold {total} bytes of records (as JSON), over the limit "
                    f"of {self.limit} per actor (DBHANDLES_MEMORY_PER_ACTOR_BYTES): nothing of it "
                    "was written; delete records, close a memory database (data/close), or use a "
                    "sqlite database for data this large"
                )
            sizes[database] = size

    def forget(self, actor: str, database: int) -> None:
        """``database`` was closed: it holds nothing any more."""
        with self._lock:
            sizes = self._sizes.get(actor)
            if sizes is not None:
                sizes.pop(database, None)
                if not sizes:
                    del self._sizes[actor]


class MemoryAccount:
    """One actor's account in an ``ActorMemory`` ledger, as a memory adapter holds it."""

    __slots__ = ("actor", "ledger")

    def __init__(self, ledger: ActorMemory, actor: str) -> None:
        self.ledger = ledger
        self.actor = actor

    def settle(self, database: int, size: int, grew: bool) -> None:
        """``ActorMemory.settle`` for this actor.

        Raises:
            QuotaExceeded: past the actor's limit.
        """
        self.ledger.settle(self.actor, database, size, grew)

    def forget(self, database: int) -> None:
        """``ActorMemory.forget`` for this actor."""
        self.ledger.forget(self.actor, database)
