"""The storage adapter contract: an abstract base, its capabilities as data, and the query it receives.

An adapter stores *records*: flat dicts of user fields plus the reserved ``id``, ``createdAt``,
``updatedAt`` (ISO-8601 strings) and ``version`` (int). Everything above that (merging updates,
validating against declared models, events, batches) is written once in ``dbhandles.documents`` on top
of the small transactional surface below, so a new adapter only implements storage.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import (
    ValidationError,
)

from dbhandles.adapters.configs import AdapterConfig, FileConfig, Mode, config_error
from dbhandles.adapters.facets import GroupCounts, group_counts
from dbhandles.adapters.group_bytes import bound_groups
from dbhandles.adapters.sampling import Sampling, select
from dbhandles.errors import (
    InvalidConfig,
    NotSupported,
    QueryFailed,
    ReadOnly,
    StorageError,
)
from dbhandles.evaluate import is_after, sort_records
from dbhandles.filters import FilterNode, SortKey
from dbhandles.values import json_text

__all__ = [
    "Adapter",
    "AdapterConfig",
    "Features",
    "FileConfig",
    "GroupCounts",
    "Mode",
    "Query",
    "RawRow",
    "Record",
    "Sampling",
    "Session",
    "TableWriter",
    "config_error",
    "record_from_columns",
]

Record = dict[str, Any]
#: A record in storage form: ``(id, data, createdAt, updatedAt, version)``, ``data`` being the JSON
#: text of an object holding the user fields only (what ``Session.insert_many_raw`` takes).
RawRow = tuple[str, str, str, str, int]


@dataclass(frozen=True, slots=True)
class Features:
    """What an adapter can do; conservative defaults, each adapter overrides what differs.

    The contract suite gates tests on these flags, so the whole suite runs against every adapter and
    skips only what one cannot do.
    """

    #: Records survive the process (memory does not).
    durable: bool = True
    #: ``data/vacuum`` reclaims space and reports sizes.
    vacuum: bool = False
    #: Declared indexes become real indexes.
    indexes: bool = False
    #: Other processes see the same data through the same config (SQLite file, PostgreSQL).
    shared_across_processes: bool = False
    #: Opened from a path on this machine (so ``mode`` and path checks apply); its config is a
    #: ``FileConfig``.
    file_based: bool = False
    #: ``Adapter.bulk_load()`` tunes the connection for a long import (the importer enters it).
    bulk_load: bool = False
    #: ``Session.insert_many_raw`` stores rows already in storage form without re-serialising them
    #: (the importer's fast path; without it the importer builds records for ``insert_many``).
    raw_inserts: bool = False
    #: A point read may be answered on the server's event loop whenever ``Adapter.reads_never_wait()``
    #: says so at that moment, for read-only and read-write handles alike; without it reads always
    #: go to a worker. An adapter sets it only if such a read can never wait for a writer (of this
    #: process or another one): SQLite readers in WAL mode.
    inline_reads: bool = False
    #: Its file is opened only through SQLite's own VFS, which never releases a lock of this process
    #: by closing a second descriptor (the built-in sqlite adapter). Any other file-based adapter's
    #: path is gated before ``prepare``: never an SQLite side file, never a database this process
    #: has open (``dbfiles.check_plain``; see "Writing an adapter" in docs/architecture.md).
    sqlite_vfs_only: bool = False
    #: The adapter's driver opens (and removes) files beside the database by their names, after any
    #: check and for as long as a connection lives (SQLite's ``-wal``, ``-shm``, ``-journal``): a
    #: remote non-admin actor's database is then opened only where no other OS user can change its
    #: path (``security/safe_folders.py``), and a stored handle's reopen is decided again there.
    side_files_by_name: bool = False
    #: Tables and views dbhandles did not create are served (docs/foreign-tables.md), and
    #: ``Session.tables()`` / ``Session.table()`` describe them for ``data/schema``.
    foreign_tables: bool = False
    #: A float past 2**53 keeps its exact value in ``data/count`` groups. False
    #: on PostgreSQL: ``jsonb`` holds a number as decimal text, and a float is written as its
    #: shortest round-trip text (``9223372036854774784.0`` as ``9.223372036854775e18``, which
    #: ``jsonb`` reads as the integer 9223372036854775000); docs/filters.md "Values".
    exact_large_floats: bool = True


@dataclass(frozen=True, slots=True)
class Query:
    """What ``find`` returns: filtered, ordered (``order`` always ends with ``id``), paged rows.

    ``after`` is a keyset position (``evaluate.position_of`` of the last row already seen): only rows
    that sort strictly after it are returned.
    """

    filter: FilterNode | None = None
    order: tuple[SortKey, ...] = (SortKey(("id",)),)
    limit: int | None = None
    offset: int = 0
    after: tuple[tuple[int, Any], ...] | None = None


def record_from_columns(
    record_id: str, user_fields: dict[str, Any], created_at: str, updated_at: str, version: int
) -> Record:
    """A record as every adapter returns it: ``id`` first, the user fields, then the system fields."""
    return {
        "id": record_id,
        **user_fields,
        "createdAt": created_at,
        "updatedAt": updated_at,
        "version": version,
    }


class TableWriter(ABC):
    """Writes to a table dbhandles did not create, through its key (docs/foreign-tables.md "Writes").

    A record of such a table is its columns served as fields (``Session.get`` shows them); of the
    reserved fields it has ``id`` (the key) and only those of ``createdAt``, ``updatedAt`` and
    ``version`` that ``reserved`` names (columns the table keeps them in). ``dbhandles.documents``
    decides what to write (ids, timestamps, versions, row filters); the writer stores it.
    """

    #: The table's name as stored.
    name: str
    #: Which of ``createdAt``, ``updatedAt``, ``version`` the table keeps (in columns of its own).
    reserved: frozenset[str]
    #: Whether a string a column would store as another value (SQLite's numeric affinities: ``"007"``
    #: as 7) is written so, for a caller that reports what was stored (``data/copy``'s ``changes``),
    #: rather than refused (docs/foreign-tables.md "Writes").
    converting: bool = False
    #: Whether a record created without an id gets one from the database (an integer key); if not,
    #: ``documents`` gives it a new UUID4.
    generated_id: bool

    @abstractmethod
    def check_writable(self) -> None:
        """Raise ``ReadOnly`` saying why when nothing may be written here (a view, no key, ...)."""

    @abstractmethod
    def insert(self, record: Record) -> Record:
        """Insert one row (``id`` may be absent when ``generated_id``); return it as stored.

        Raises:
            InvalidParams: a field is not a column (naming it), or a value cannot be stored there.
            RecordExists: the key is taken.
            ConstraintViolation: NOT NULL, UNIQUE, CHECK or FOREIGN KEY refused the row.
        """

    @abstractmethod
    def update(self, record_id: str, changes: Record) -> Record | None:
        """Set the columns ``changes`` names on the row ``record_id``; return it as stored, or
        ``None`` when there is no such row. Raises as ``insert`` does."""

    def inexact(self, record_id: str) -> tuple[str, Any, str] | None:
        """``(field, stored value, why)`` of the first column of row ``record_id`` whose stored
        value its record does not show exactly (normalised on read: a JSON text repeating a key,
        a number a double rounds, an infinity shown as null), else ``None`` (also when there is
        no such row). A move keeps such a row in the source (docs/copy.md "Value-preserving")."""
        return None


class Session(ABC):
    """One unit of work on an adapter: a transaction when opened for writing, a consistent read otherwise."""

    def table_writer(self, collection: str) -> TableWriter | None:
        """The writer of ``collection`` when it names a table dbhandles did not create (only where
        ``Features.foreign_tables``); ``None`` for a collection (or nothing by that name)."""
        return None

    @abstractmethod
    def get(self, collection: str, record_id: str) -> Record | None:
        """The record with this id, or ``None``."""

    @abstractmethod
    def insert(self, collection: str, record: Record) -> None:
        """Store a new record; raise ``RecordExists`` if the id is taken. Creates the collection."""

    @abstractmethod
    def replace(self, collection: str, record: Record) -> None:
        """Overwrite an existing record (same id) with ``record``."""

    @abstractmethod
    def delete(self, collection: str, record_id: str) -> bool:
        """Remove a record; ``True`` if it existed."""

    @abstractmethod
    def find(self, collection: str, query: Query) -> list[Record]:
        """Records matching ``query`` in its order (an unknown collection holds none)."""

    @abstractmethod
    def count(self, collection: str, filter: FilterNode | None) -> int:
        """How many records match ``filter``."""

    def unreadable(self, collection: str) -> int:
        """How many rows of ``collection`` are no record this adapter can read (another tool wrote
        them: docs/filters.md "Values"), which every listing and count leaves out; 0 where the
        storage holds only records (memory, json)."""
        return 0

    @abstractmethod
    def collections(self) -> list[str]:
        """Names of the collections in this database, sorted, system tables excluded."""

    @abstractmethod
    def truncate(self, collection: str) -> int:
        """Delete every record of a collection (keeping it); return how many were deleted."""

    def tables(self) -> list[dict[str, Any]]:
        """Every table and view that is not a collection, described as ``data/schema`` shows it
        (``name``, ``kind``, ``columns``, ``primaryKey``, ``indexes``, ``foreignKeys``, ...).

        Only where ``Features.foreign_tables``; the default has none.
        """
        return []

    def table(self, name: str) -> dict[str, Any] | None:
        """The description of one table or view that is not a collection (as in ``tables``), or
        ``None`` when ``name`` is a collection or nothing at all."""
        return None

    def row_naming(self, name: str) -> Hashable:
        """How the rows of the table ``name`` are named now, where that changes while the schema
        does not (SQLite serves a table by rowid while its key holds NULL: docs/foreign-tables.md
        "Keys no id can name"): a caller that keeps what it derived from ``table(name)`` under one
        ``Adapter.schema_stamp`` keeps it under this value too. ``None`` (the default) where it
        never changes."""
        return None

    def view_sources(self, name: str) -> list[str]:
        """The tables and views the view ``name`` reads, at any depth, as the database names
        them (a permission on a view covers what it reads: docs/security.md); ``[]`` for anything
        that is not a view of a table dbhandles did not create."""
        return []

    def cascade_targets(
        self, name: str, update: bool = False, *, insert: bool = False
    ) -> list[tuple[str, str]]:
        """The tables the database writes when rows of table ``name`` are deleted (``update``: when
        a key other tables reference changes, or any row is updated; ``insert``: when rows are
        inserted), through foreign keys declared ``ON DELETE`` / ``ON UPDATE CASCADE``, ``SET
        NULL`` or ``SET DEFAULT`` and through triggers, at any depth: ``(table, how)`` pairs
        (``adapters/foreign_cascades.py``; ``foreign_cascades.UNKNOWN`` for a trigger whose writes
        cannot be known; a permission on a table covers what its writes reach: docs/security.md);
        ``[]`` for a collection and for engines without foreign keys or triggers."""
        return []

    def derived_from(self, name: str) -> list[tuple[str, str]]:
        """The other tables whose writes make the database write values into table ``name``
        (a trigger on them writing it, a foreign key of ``name`` declared ``ON UPDATE
        CASCADE``): ``(table, how)``; a row filter cannot restrict what those values were made
        from (docs/security.md "Row filters and views"). ``[]`` where none can be known."""
        return []

    def resolve_collection(self, name: str) -> str:
        """The table a command naming ``name`` reads and writes, as the database stores it: a
        foreign table's own name (found ignoring case, or as ``snake_case(name)`` with
        ``fieldNames: camel``), else ``name``. Permissions and the audit log decide on this
        name, never on the spelling asked for (docs/security.md, "Names")."""
        table = self.table(name)
        return name if table is None else str(table["name"])

    def collection_key(self, name: str) -> str:
        """Equal for two resolved names of one table: how this database compares table names
        (memory and JSON databases ignore case)."""
        return name.lower()

    def get_many(self, collection: str, record_ids: Sequence[str]) -> dict[str, Record]:
        """The records of ``record_ids`` that are stored and readable, by id (a record another
        tool wrote that a point read refuses, ``QueryFailed``, is left out). This default makes
        one point read each; an adapter whose reads are round trips overrides it (PostgreSQL).
        """
        found: dict[str, Record] = {}
        for record_id in record_ids:
            try:
                record = self.get(collection, record_id)
            except QueryFailed:
                continue
            if record is not None:
                found[record_id] = record
        return found

    def insert_many(
        self, collection: str, records: list[Record], *, skip_existing: bool = False
    ) -> int:
        """Store many new records; return how many were inserted.

        With ``skip_existing`` a record whose id is already stored is left alone (idempotent imports);
        otherwise a taken id raises ``RecordExists``. Adapters override this with a faster bulk path.
        """
        inserted = 0
        for record in records:
            if skip_existing and self.get(collection, record["id"]) is not None:
                continue
            self.insert(collection, record)
            inserted += 1
        return inserted

    def group_count(
        self,
        collection: str,
        filter: FilterNode | None,
        group_by: tuple[tuple[str, ...], ...],
        limit: int,
    ) -> GroupCounts:
        """Count the records matching ``filter`` per value of the ``group_by`` paths (``data/count``).

        The rule (arrays entered, every element counted, most frequent first) is ``facets``; this
        default evaluates it in Python over ``find``, and the SQL adapters override it with one query.

        Raises:
            InvalidParams: a value of a path is an object (or an array inside an array).
            QueryFailed: the keys of the groups kept pass ``group_bytes.MAX_GROUP_BYTES``.
        """
        counts = group_counts(self.find(collection, Query(filter=filter)), group_by, limit)
        return bound_groups(counts, collection, group_by)

    def find_sampled(self, collection: str, query: Query, sampling: Sampling) -> list[Record]:
        """``find``, keeping only the records ``sampling`` selects (``sampling`` module): the split
        and the sample are chosen among all records matching ``query.filter``, then ordered, positioned
        (``after``) and paged like ``find``. This default does it in Python; SQL adapters override it.
        """
        rows = select(self.find(collection, Query(filter=query.filter)), sampling)
        if query.after is not None:
            rows = [r for r in rows if is_after(r, query.order, query.after)]
        rows = sort_records(rows, query.order)
        end = None if query.limit is None else query.offset + query.limit
        return rows[query.offset : end]

    def count_sampled(self, collection: str, filter: FilterNode | None, sampling: Sampling) -> int:
        """How many records ``find_sampled`` would return without a limit."""
        return len(select(self.find(collection, Query(filter=filter)), sampling))

    def insert_many_raw(
        self, collection: str, rows: Iterable[RawRow], *, skip_existing: bool = False
    ) -> int:
        """Store rows already in storage form (``RawRow``) as they are; return how many were inserted.

        Only where the adapter declares ``Features.raw_inserts`` (the importer checks the flag first);
        ``skip_existing`` as in ``insert_many``.

        Raises:
            NotSupported: the adapter has no raw insert path.
        """
        raise NotSupported(
            f"{type(self).__name__} has no raw insert path (Features.raw_inserts is false)"
        )


class Adapter(ABC):
    """Base class of every storage adapter.

    Subclasses set ``name``, ``features`` and ``config_model`` and implement ``_connect``, ``_close``
    and ``_session``. The base class keeps the closed state, enforces read-only mode before any write
    reaches the driver, and serialises access where a driver needs it.
    """

    name: ClassVar[str]
    features: ClassVar[Features] = Features()
    config_model: ClassVar[type[AdapterConfig]] = AdapterConfig

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._connected = False
        self._closed = False

    # -- config and identity -------------------------------------------------------------------

    @classmethod
    def parse_config(cls, raw: Mapping[str, Any] | None) -> AdapterConfig:
        """Validate a wire config into the adapter's frozen config object."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise InvalidConfig(
                f"config: expects an object for adapter {json_text(cls.name, 80)}", field="config"
            )
        try:
            return cls.config_model.model_validate(dict(raw))
        except ValidationError as exc:
            raise config_error(cls.name, exc) from exc

    @classmethod
    def prepare(cls, config: AdapterConfig) -> AdapterConfig:
        """Check the target at open time (exists, right kind, mode) and canonicalise the config.

        Called by ``data/open`` before a handle is minted, so a bad path never becomes a handle.
        """
        return config

    @classmethod
    def connection_key(cls, config: AdapterConfig) -> str | None:
        """Identity of the underlying database: handles with the same key share one adapter.

        ``None`` means never shared (each handle gets its own instance).
        """
        return None

    #: How many of a file's first bytes ``recognizes_head`` needs (0: it recognizes no file).
    recognize_bytes: ClassVar[int] = 0

    #: The suffixes of the files a ``file_based`` adapter keeps beside a database ``X`` by name
    #: (``X`` + suffix: SQLite's ``-wal``, the JSON adapter's ``.lock``). Such a file of a
    #: database belongs to it and is never opened, created or replaced through another door
    #: (``security/database_files.check_adapter_file``).
    own_suffixes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def recognizes(cls, path: str) -> bool:
        """Whether the regular file ``path`` is a database of this adapter (by its content), so a
        data command never reads it as a data set past the ownership checks of ``data/open``
        (``importer/target.py``). The by-path form, for a caller with no pinned folder; the
        checks of a caller's file read its bytes through the pinned folder and ask
        ``may_recognize`` and ``recognizes_head`` (``security/database_files.py``). A
        ``file_based`` adapter whose files have a recognizable header overrides all three; the
        default recognizes nothing."""
        return False

    @classmethod
    def may_recognize(cls, start: bytes) -> bool:
        """Whether a file whose first bytes are ``start`` (4 KiB at most, fewer: the whole file)
        could be a database of this adapter: only then are its first ``recognize_bytes + 1``
        bytes read for ``recognizes_head``. Cheap; the default says yes when the adapter
        recognizes files at all."""
        return cls.recognize_bytes > 0

    @classmethod
    def recognizes_head(cls, head: bytes) -> bool:
        """Whether a regular file whose first bytes are ``head`` (its first ``recognize_bytes +
        1`` bytes; fewer: the whole file) is a database of this adapter (``recognizes``)."""
        return False

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def readonly(self) -> bool:
        return self.config.readonly

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connected(self) -> bool:
        """Whether the adapter holds a live connection now (``release`` drops it, use reopens it)."""
        return self._connected

    def connect(self) -> None:
        """Open the underlying connection if it is not open yet (idempotent)."""
        with self._lock:
            if self._closed:
                raise StorageError(f"{self.name} adapter used after close")
            if not self._connected:
                self._connect()
                self._connected = True

    def release(self) -> None:
        """Drop the connection but stay usable: the next use reconnects (idle release)."""
        with self._lock:
            if self._connected:
                self._connected = False
                self._close()

    def close(self) -> None:
        """Close for good; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._connected:
                self._connected = False
                self._close()

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A unit of work; ``write=True`` is a transaction that commits on success, rolls back on error.

        Raises:
            ReadOnly: a write session on a read-only database.
        """
        if write and self.readonly:
            raise ReadOnly(
                "this handle was opened with mode 'readonly'; open the database with mode "
                "'readwrite' to change it"
            )
        self.connect()
        with self._session(write) as session:
            yield session

    def reads_never_wait(self) -> bool:
        """Whether a read on the current connection can never wait for a writer (so it may run on
        an event loop; consulted only where ``features.inline_reads``). Conservative default:
        ``False``; SQLite says ``True`` while in WAL mode."""
        return False

    def resolve_collection(self, name: str) -> str:
        """``Session.resolve_collection`` on its own: the table or collection a command naming
        ``name`` reaches, as stored (what the audit log names)."""
        if not self.features.foreign_tables:
            return name  # it stores what it is asked for
        with self.session() as session:
            return session.resolve_collection(name)

    def schema_stamp(self, session: Session) -> Hashable | None:
        """A value two of this adapter's open sessions share only if they see the same schema of
        the same database (so what ``Session.table`` describes is the same in both: a caller may
        keep what it derived from a description under this stamp); ``None`` when that cannot be
        told cheaply (the default: describe again)."""
        return None

    def known_collection(self, name: str) -> str | None:
        """``resolve_collection`` as the last command on this adapter saw the database, without
        opening anything (the dispatcher asks right after a command, for its audit row); ``None``
        when that cannot be told so (then ask ``resolve_collection`` under a lease)."""
        return None if self.features.foreign_tables else name

    def read_one(self, collection: str, record_id: str) -> Record | None:
        """One record by id, or ``None``: ``session().get`` without a multi-statement transaction.

        Adapters override it when one statement is cheaper than a session (a single SQL statement
        is its own transaction); the result is the same.
        """
        with self.session() as session:
            return session.get(collection, record_id)

    @abstractmethod
    def _connect(self) -> None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _session(self, write: bool) -> Any:
        """A context manager yielding a ``Session``."""

    # -- optional capabilities -------------------------------------------------------------------

    def ensure_indexes(self, collection: str, paths: list[tuple[str, ...]]) -> None:
        """Create indexes on these field paths (no-op where ``features.indexes`` is false)."""

    def size_bytes(self) -> int:
        """Size of the database in bytes (0 where it has none)."""
        return 0

    def vacuum(self) -> None:
        """Reclaim free space (only where ``features.vacuum``)."""
        raise NotSupported(f"the {self.name} adapter has nothing to vacuum")

    def bulk_load(self) -> AbstractContextManager[Any]:
        """A context in which a long import runs (a bigger cache, checkpoints deferred, ...).

        Entered only where ``features.bulk_load``; the default changes nothing.
        """
        return nullcontext()

    def describe(self) -> dict[str, Any]:
        """Public description of the config for ``list-handles``."""
        return self.config.public()
