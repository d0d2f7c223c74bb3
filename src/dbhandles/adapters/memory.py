"""The ``memory`` adapter: collections in a dict, filters evaluated by the reference semantics.

It is the oracle of the contract suite. A memory database lives as long as the process (and the handle)
that holds it; handles given the same ``name`` share one database.

A memory (or json) database lives in the server's memory, so it holds at most ``max_bytes`` of records
(as JSON, counted as they are written): a write session that would end past it is undone and raises
``QuotaExceeded``. The registry sets ``max_bytes`` from ``DBHANDLES_MAX_MEMORY_DB_BYTES``, and for a
non-admin actor's database an ``account`` that bounds all of that actor's databases together
(``memory_quota``, ``DBHANDLES_MEMORY_PER_ACTOR_BYTES``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import orjson
from pydantic import Field

from dbhandles import budget
from dbhandles.adapters.base import (
    Adapter,
    AdapterConfig,
    Features,
    GroupCounts,
    Mode,
    Query,
    Record,
    Sampling,
    Session,
)
from dbhandles.adapters.memory_quota import MemoryAccount
from dbhandles.errors import QueryFailed, QuotaExceeded, RecordExists
from dbhandles.evaluate import is_after, matches, sort_records
from dbhandles.filters import FilterNode, check_collection_query, check_new_collection
from dbhandles.values import dump_json, json_text

__all__ = ["DEFAULT_MAX_BYTES", "MemoryAdapter", "MemoryConfig", "MemoryStore"]

#: ``MemoryAdapter.max_bytes`` unless the registry sets it (``Settings.max_memory_db_bytes``): 256 MiB
#: of JSON, which Python holds in about 1.2 GB.
DEFAULT_MAX_BYTES = 256 << 20


class MemoryConfig(AdapterConfig):
    """``name``: handles opened with the same name share one in-process database."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    mode: Mode = "create"

    def tenant_endpoint(self) -> str | None:
        return None  # in this process (a non-admin actor's names are its own: security/policy.py)


def _copy(record: Record) -> Record:
    # A JSON round trip is both a deep copy and a guarantee that only JSON reaches the store.
    try:
        result: Record = orjson.loads(orjson.dumps(record))
    except orjson.JSONEncodeError:  # an integer past 64 bits: a JSON file edited by hand
        result = json.loads(dump_json(record))
    return result


def _stored(record: Record) -> tuple[Record, int]:
    """``_copy(record)`` and its size in bytes as JSON."""
    data = orjson.dumps(record)
    copy: Record = orjson.loads(data)
    return copy, len(data)


def _size(record: Record) -> int:
    return len(dump_json(record))


class MemoryStore:
    """Collections keyed by lower-cased name (collection names are case-insensitive everywhere)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.tables: dict[str, dict[str, Record]] = {}
        #: The records' size as JSON, in bytes (kept as they are written).
        self.size = 0
        #: Per lower-cased collection, the ids of records loaded from a file that are no record
        #: dbhandles can serve (``jsonfile``: system fields it would not write, an id given twice),
        #: with why: left out of ``tables``, counted by ``unreadable``, named by a read.
        self.unreadable: dict[str, dict[str, str]] = {}
        #: Per lower-cased collection, how many records ``unreadable`` stands for (an id a file
        #: gives three times is three records).
        self.withheld: dict[str, int] = {}

    def table(self, collection: str, create: bool = False) -> dict[str, Record] | None:
        key = collection.lower()
        table = self.tables.get(key)
        if table is None and create:
            check_new_collection(collection)
            table = self.tables[key] = {}
            self.names[key] = collection
        return table

    def dump(self) -> dict[str, Any]:
        return {self.names[key]: list(table.values()) for key, table in sorted(self.tables.items())}

    def load(
        self,
        data: dict[str, Any],
        unreadable: dict[str, dict[str, str]] | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:
        """Hold ``data`` (collection name -> records), ``unreadable`` (collection name -> id ->
        why) as ``self.unreadable`` and ``counts`` (collection name -> records left out; each id
        of ``unreadable`` once if not given) as ``self.withheld``."""
        self.names.clear()
        self.tables.clear()
        self.size = 0
        self.unreadable = {name.lower(): ids for name, ids in (unreadable or {}).items() if ids}
        self.withheld = {
            name.lower(): (counts or {}).get(name, len(ids))
            for name, ids in (unreadable or {}).items()
            if ids
        }
        for name, records in data.items():
            table = self.table(name, create=True)
            assert table is not None
            for record in records:
                table[record["id"]] = record
                self.size += _size(record)


#: Records evaluated between two looks at the clock while a scan runs under a time budget.
_CHECK_EVERY = 256


def _matching(table: dict[str, Record], filter: FilterNode | None) -> list[Record]:
    """The records of ``table`` that match, in storage order; past the command's time budget
    (``dbhandles.budget``) the scan stops with ``QueryTimeout``."""
    if filter is None:
        return list(table.values())
    deadline = budget.deadline()
    if deadline is None:
        return [r for r in table.values() if matches(filter, r)]
    found: list[Record] = []
    for i, record in enumerate(table.values()):
        if not i % _CHECK_EVERY and time.monotonic() > deadline:
            raise budget.exceeded()
        if matches(filter, record):
            found.append(record)
    return found


class MemorySession(Session):
    """Works on a ``MemoryStore``; a write session keeps an undo log so an error rolls everything back."""

    def __init__(self, store: MemoryStore, write: bool) -> None:
        self.store = store
        self.write = write
        self.undo: list[tuple[str, str, Record | None, bool]] = []
        #: How many bytes this session added to ``store.size`` (a rollback takes them back).
        self.grown = 0

    def _grow(self, delta: int) -> None:
        self.grown += delta
        self.store.size += delta

    def get(self, collection: str, record_id: str) -> Record | None:
        """The record, or ``None``.

        Raises:
            QueryFailed: the id names a record loaded from a file that dbhandles cannot serve
                (``MemoryStore.unreadable``); ``details`` name the collection and id, so a row
                filter hides it as a missing id (``documents.seen``).
        """
        why = (
            self.store.unreadable.get(collection.lower(), {}).get(record_id)
            if self.store.unreadable
            else None
        )
        if why is not None:
            raise QueryFailed(
                f"record {json_text(record_id, 80)} of collection {json_text(collection, 80)} {why}: "
                'another tool wrote it; listings and counts leave it out (docs/filters.md "Values")',
                details={"collection": collection, "id": record_id},
            )
        table = self.store.table(collection)
        record = table.get(record_id) if table is not None else None
        return _copy(record) if record is not None else None

    def insert(self, collection: str, record: Record) -> None:
        new_table = self.store.table(collection) is None
        table = self.store.table(collection, create=True)
        assert table is not None
        if record["id"] in table:
            raise RecordExists(
                f"a record with id {json_text(record['id'], 80)} already exists in {json_text(collection, 80)}"
            )
        self.undo.append((collection, record["id"], None, new_table))
        table[record["id"]], size = _stored(record)
        self._grow(size)

    def replace(self, collection: str, record: Record) -> None:
        table = self.store.table(collection, create=True)
        assert table is not None
        previous = table.get(record["id"])
        self.undo.append((collection, record["id"], previous, False))
        table[record["id"]], size = _stored(record)
        self._grow(size - (_size(previous) if previous is not None else 0))

    def delete(self, collection: str, record_id: str) -> bool:
        table = self.store.table(collection)
        if table is None or record_id not in table:
            return False
        self.undo.append((collection, record_id, table[record_id], False))
        self._grow(-_size(table.pop(record_id)))
        return True

    def find(self, collection: str, query: Query) -> list[Record]:
        check_collection_query(query.filter, (key.path for key in query.order))
        table = self.store.table(collection)
        if table is None:
            return []
        rows = _matching(table, query.filter)
        if query.after is not None:
            rows = [r for r in rows if is_after(r, query.order, query.after)]
        rows = sort_records(rows, query.order)
        budget.check()
        end = None if query.limit is None else query.offset + query.limit
        return [_copy(r) for r in rows[query.offset : end]]

    def group_count(
        self,
        collection: str,
        filter: FilterNode | None,
        group_by: tuple[tuple[str, ...], ...],
        limit: int,
    ) -> GroupCounts:
        check_collection_query(filter, group_by)
        return super().group_count(collection, filter, group_by, limit)

    def find_sampled(self, collection: str, query: Query, sampling: Sampling) -> list[Record]:
        check_collection_query(query.filter, (key.path for key in query.order))
        return super().find_sampled(collection, query, sampling)

    def count(self, collection: str, filter: FilterNode | None) -> int:
        check_collection_query(filter)
        table = self.store.table(collection)
        if table is None:
            return 0
        if filter is None:
            return len(table)
        return len(_matching(table, filter))

    def collections(self) -> list[str]:
        return sorted(self.store.names[k] for k in self.store.tables)

    def unreadable(self, collection: str) -> int:
        return self.store.withheld.get(collection.lower(), 0)

    def truncate(self, collection: str) -> int:
        table = self.store.table(collection)
        if table is None:
            return 0
        for record_id, record in table.items():
            self.undo.append((collection, record_id, record, False))
            self._grow(-_size(record))
        deleted = len(table)
        table.clear()
        return deleted

    def rollback(self) -> None:
        for collection, record_id, previous, created in reversed(self.undo):
            table = self.store.table(collection)
            if table is None:
                continue
            if previous is None:
                table.pop(record_id, None)
            else:
                table[record_id] = previous
            if created and not table:
                del self.store.tables[collection.lower()]
                del self.store.names[collection.lower()]
        self.undo.clear()
        self.store.size -= self.grown
        self.grown = 0


class MemoryAdapter(Adapter):
    """In-process, non-durable storage; the reference implementation of the filter language."""

    name: ClassVar[str] = "memory"
    features: ClassVar[Features] = Features(durable=False)
    config_model: ClassVar[type[AdapterConfig]] = MemoryConfig

    #: Bytes of records (as JSON) the database may hold; a write session that would end past it
    #: is undone (``QuotaExceeded``). 0: no limit.
    max_bytes: int = DEFAULT_MAX_BYTES
    #: The owner's account across its databases (``memory_quota``); ``None``: not counted.
    account: MemoryAccount | None = None

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self.store = MemoryStore()

    @classmethod
    def connection_key(cls, config: AdapterConfig) -> str | None:
        name = getattr(config, "name", None)
        return f"memory:{name}" if name else None

    def _connect(self) -> None:
        pass

    def _close(self) -> None:
        self.store = MemoryStore()
        if self.account is not None:
            self.account.forget(id(self))

    def release(self) -> None:
        # Releasing would drop the data: a memory database is only ever closed, never released.
        pass

    @contextmanager
    def _session(self, write: bool) -> Iterator[Session]:
        with self._lock:
            session = MemorySession(self.store, write)
            try:
                yield session
                if write and session.undo:
                    self._check_size(session)
                    self._commit(session)
            except BaseException:
                touched = bool(session.undo)
                session.rollback()
                if self.account is not None and touched:
                    self.account.settle(id(self), self.store.size, False)  # back as it was
                raise

    def _check_size(self, session: MemorySession) -> None:
        """Refuse a session that grew the database past ``max_bytes`` (the caller rolls it back).

        Raises:
            QuotaExceeded: it did, or it took its owner's databases together past the owner's
                limit (``account``).
        """
        if self.max_bytes and session.grown > 0 and self.store.size > self.max_bytes:
            raise QuotaExceeded(
                f"this write would make the {self.name} database {self.store.size} bytes of "
                f"records (as JSON), over its limit of {self.max_bytes} "
                "(DBHANDLES_MAX_MEMORY_DB_BYTES): nothing of it was written; delete records, or "
                "use a sqlite database for data this large"
            )
        if self.account is not None:
            self.account.settle(id(self), self.store.size, session.grown > 0)

    def _commit(self, session: MemorySession) -> None:
        """Hook for subclasses that persist (the JSON adapter writes its file here)."""

    def size_bytes(self) -> int:
        with self._lock:
            return len(orjson.dumps(self.store.dump()))
