"""The memory a page may take: rows read from SQLite stop at ``MAX_PAGE_BYTES``, SQLite's own at
``SQLITE_HEAP_BYTES``.

A record is at most ``MAX_VALUE_BYTES`` (64 MiB, SQLite's length limit on a dbhandles connection),
but a page of them, or a view whose rows each compute a value just under that, could hold
gigabytes. Two bounds, each answered with ``query_failed`` naming the collection and the bound:

* the rows of one page handed to Python (a listing, an export's, a copy's or a cursor's page): their
  text (its UTF-8 bytes, ``group_bytes.encoded_size``) and blobs are counted as they are read, and
  past ``MAX_PAGE_BYTES`` the page is refused (``fetch_page``) before more is read (PostgreSQL
  measures the same bytes in SQL: ``postgres_bytes``);
* the memory SQLite itself takes while it evaluates a statement (a view ordered by a computed id
  sorts every row it has, whatever the page's limit): the process's ``hard_heap_limit``
  (``bound_sqlite_heap``), past which SQLite fails the statement with ``SQLITE_NOMEM``
  (``MemoryError`` in Python, which ``sqlite_errors`` reports through ``sqlite_heap_error``).

That second bound is the process's, shared by every statement of every actor in it. So a statement
refused while other statements held most of it (``heap_in_use`` past ``SHARED_FULL`` of the bound
once it failed) is not blamed on its query: it is ``storage_busy`` saying the memory was others',
and a read command is run again as soon as the memory comes back, within its own time budget
(``run_sharing_heap``); only a statement that found the memory free and still passed the bound is
``query_failed`` naming its collection. A non-admin's job never shares a server's bound: it runs in
a child process of its own (``server/job_process.py``). docs/server.md "Limits".
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, partial
from typing import Any, TypeVar

from dbhandles import budget
from dbhandles.adapters.group_bytes import (
    bound_words,
    encoded_size,
    first_past,
    most_bytes,
    row_size,
)
from dbhandles.dbfiles import MAX_VALUE_BYTES
from dbhandles.errors import DbHandlesError, QueryFailed, StorageBusy
from dbhandles.values import json_text

T = TypeVar("T")

__all__ = [
    "MAX_PAGE_BYTES",
    "SHARED_FULL",
    "SQLITE_HEAP_BYTES",
    "bound_sqlite_heap",
    "bounded",
    "fetch_page",
    "heap_in_use",
    "object_kind",
    "page_parameter",
    "page_too_large",
    "run_sharing_heap",
    "sqlite_heap_error",
]

#: The most bytes of text (UTF-8) and blobs the rows of one page may hold as read from the
#: database: twice the largest record, so any one record is served (a page of one), never more.
MAX_PAGE_BYTES = 2 * MAX_VALUE_BYTES
#: The most memory SQLite may take in this process, all connections together (its
#: ``hard_heap_limit``): page caches (2 MiB a connection; 64 MiB during a bulk import) come nowhere
#: near it, a statement sorting gigabytes of computed values does.
SQLITE_HEAP_BYTES = 1 << 30

#: The share of the bound that other statements must hold, once a statement failed for memory,
#: for its failure to be theirs (``sqlite_heap_error``); and below which a read waiting for
#: memory is run again (``run_sharing_heap``).
SHARED_FULL = 0.5
#: Seconds between two looks at SQLite's memory while a read waits for it.
HEAP_POLL_SECONDS = 0.02
#: The longest wait for memory of a statement without a time budget (a job's), in seconds.
UNBUDGETED_WAIT_SECONDS = 10.0

_bounded = False
_bound_lock = threading.Lock()

#: The parameter that sets the size of the page being read, named by ``page_too_large``'s advice,
#: and how many rows past it each page reads: ``limit`` and one (``data/list``'s, to tell
#: ``hasMore``) unless the command says otherwise (``page_parameter``).
_page_parameter: ContextVar[tuple[str, int]] = ContextVar(
    "dbhandles_page_parameter", default=("limit", 1)
)


@contextmanager
def page_parameter(name: str, reads_past: int = 1) -> Iterator[None]:
    """Within the block, a page refused for its bytes advises on ``name``, the parameter of the
    command the caller called (``pageSize`` of ``data/query-next``, ``data/export``;
    ``batchSize`` of ``data/copy``), whose pages read ``reads_past`` rows more than it asks
    for (1 to tell ``hasMore``, 0 for a job's pages)."""
    token = _page_parameter.set((name, reads_past))
    try:
        yield
    finally:
        _page_parameter.reset(token)


@cache
def _sqlite_library() -> Any:
    """The SQLite library Python's ``sqlite3`` runs on, for the counters it has no pragma for
    (``None`` when it cannot be told apart: another build, or linked in statically)."""
    import ctypes  # only once a statement failed for memory
    import ctypes.util

    name = ctypes.util.find_library("sqlite3")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.sqlite3_libversion_number.restype = ctypes.c_int
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        lib.sqlite3_hard_heap_limit64.restype = ctypes.c_int64
        lib.sqlite3_hard_heap_limit64.argtypes = [ctypes.c_int64]
    except (OSError, AttributeError):
        return None
    major, minor, patch = sqlite3.sqlite_version_info
    if lib.sqlite3_libversion_number() != major * 1_000_000 + minor * 1000 + patch:
        return None  # not the library the connections use: its counters would be another's
    return lib


def heap_in_use() -> tuple[int, int] | None:
    """``(bytes SQLite holds now in this process, its hard_heap_limit)``, ``None`` when unknown
    (no limit, or a library whose counters cannot be read)."""
    lib = _sqlite_library()
    if lib is None:
        return None
    limit = int(lib.sqlite3_hard_heap_limit64(-1))
    if limit <= 0:
        return None
    return int(lib.sqlite3_memory_used()), limit


def _held_by_others() -> tuple[int, int] | None:
    """``heap_in_use`` when other statements hold ``SHARED_FULL`` of the bound or more."""
    found = heap_in_use()
    if found is None or found[0] < found[1] * SHARED_FULL:
        return None
    return found


def run_sharing_heap(run: Callable[[], T]) -> T:
    """``run()`` (a read command's handler), run again each time it failed because other
    statements held SQLite's memory (``sqlite_heap_error``'s ``storage_busy``) once that memory
    came back below ``SHARED_FULL`` of the bound, for as long as the caller's time budget lasts
    (``UNBUDGETED_WAIT_SECONDS`` without one).

    Raises:
        StorageBusy: the memory stayed others' for the whole wait (as the last try raised it).
        DbHandlesError: whatever ``run`` raises otherwise.
    """
    waited_since = time.monotonic()
    while True:
        try:
            return run()
        except StorageBusy as exc:
            if not isinstance(exc.__cause__, MemoryError) or not _wait_for_heap(waited_since):
                raise


def _wait_for_heap(since: float) -> bool:
    """Wait until SQLite's memory is no longer mostly others' (``True``), or the time budget (or
    ``UNBUDGETED_WAIT_SECONDS`` since ``since``) ends or the command is told to stop
    (``False``)."""
    while True:
        if budget.stop_error() is not None:
            return False
        try:
            left = budget.remaining_ms()
        except DbHandlesError:
            return False
        if left is None:
            left = int((since + UNBUDGETED_WAIT_SECONDS - time.monotonic()) * 1000)
        if left <= HEAP_POLL_SECONDS * 1000:
            return False
        if _held_by_others() is None:
            return True
        time.sleep(HEAP_POLL_SECONDS)


def bound_sqlite_heap(conn: sqlite3.Connection) -> None:
    """Set SQLite's ``hard_heap_limit`` to ``SQLITE_HEAP_BYTES`` once per process, unless the
    application embedding dbhandles already set a lower one."""
    global _bounded
    if _bounded:
        return
    with _bound_lock:
        if _bounded:
            return
        current = int(conn.execute("PRAGMA hard_heap_limit").fetchone()[0])
        if current == 0 or current > SQLITE_HEAP_BYTES:
            conn.execute(f"PRAGMA hard_heap_limit = {SQLITE_HEAP_BYTES}")
        _bounded = True


def bounded(conn: sqlite3.Connection) -> None:
    """Make every statement of ``conn`` (an adapter's connection) stop at a cancel or a shutdown
    (``budget.interrupt_requested`` as its progress handler) and bound SQLite's memory."""
    conn.set_progress_handler(budget.interrupt_requested, budget.PROGRESS_STEPS)
    bound_sqlite_heap(conn)


def page_too_large(collection: str | None, rows: int) -> QueryFailed:
    """The error of a page whose rows passed ``MAX_PAGE_BYTES`` at its ``rows``-th row.

    The advice is the largest page size that passes, named as the command calls it
    (``page_parameter``: ``limit``, a cursor's or an export's ``pageSize``, a copy's
    ``batchSize``): the first ``rows - 1`` rows fit, less the rows each page reads past its size
    (a listing or a cursor reads one to tell ``hasMore``: ``paging.fetch_page``). ``fields`` do
    not lower the bound: the whole record is read before it is projected."""
    of = f" of {json_text(collection, 80)}" if collection else ""
    name, reads_past = _page_parameter.get()
    largest = rows - 1 - reads_past
    if largest >= 1:
        why = ": each page reads one record more to tell hasMore" if reads_past else ""
        fewer = f"ask for at most {largest} ({name}{why})"
    else:
        fewer = "its first records are too large to list together; read them one by one (data/read)"
    return QueryFailed(
        f"a page{of} would hold more than {bound_words(MAX_PAGE_BYTES)} of values (passed at its "
        f"record {rows}), the most one page may hold in the server's memory; {fewer}, or page "
        f"through it with a smaller {name} (fields do not lower this bound: whole records are "
        "read before they are projected)"
    )


def object_kind(collection: str | None, foreign: Callable[[str], object] | None) -> str:
    """What ``collection`` is, for an error's words: ``"view"``, ``"table"`` (one dbhandles did
    not create: ``foreign`` gives its reader) or ``"collection"`` (also when that cannot be told)."""
    if collection is None or foreign is None:
        return "collection"
    try:
        reader = foreign(collection)
    except (DbHandlesError, sqlite3.Error):
        return "collection"
    kind = getattr(getattr(reader, "table", None), "kind", None)
    if kind is None:
        return "collection"
    return "view" if kind == "view" else "table"


def sqlite_heap_error(
    collection: str | None, foreign: Callable[[str], object] | None = None
) -> QueryFailed | StorageBusy:
    """The error of a statement SQLite failed for memory (``SQLITE_NOMEM``: ``MemoryError``):
    ``storage_busy`` when other statements of the process hold most of the bound now that this
    one failed (it was theirs: ``run_sharing_heap`` runs a read again), else ``query_failed``
    naming the collection (this statement alone passed the bound), worded by what it is
    (``object_kind``: ``foreign`` is the session's reader by name); only a view gets the advice
    of a view."""
    of = f" of {json_text(collection, 80)}" if collection else ""
    held = _held_by_others()
    if held is not None:
        used, limit = held
        return StorageBusy(
            f"SQLite's memory in this server was taken by other queries running at the same "
            f"time ({used >> 20} MiB of the {limit >> 20} MiB that all queries of all actors "
            f"share) when the query{of} needed more; nothing is wrong with this query and "
            "nothing was written: it waited for the memory as long as its time budget allowed; "
            "retry shortly"
        )
    found = heap_in_use()
    limit = found[1] if found is not None else SQLITE_HEAP_BYTES
    kind = object_kind(collection, foreign)
    if kind == "view":
        why = (
            "a view computing huge values (its id is all its columns, so SQLite sorts every row "
            "of it, whatever the limit), or too many such rows at once; select fewer or smaller "
            "columns in the view, or filter it"
        )
    else:
        why = (
            f"too many or too large values at once in this {kind}; ask for "
            "fewer records (a smaller limit), a narrower filter, or sort or group by a shorter "
            "field"
        )
    return QueryFailed(
        f"the query{of} needed more memory than SQLite may use in this server "
        f"({limit >> 20} MiB, all queries together): {why}; nothing was written"
    )


def _column_size(column: int, row: Any) -> int:
    value = row[column]
    return 0 if value is None else encoded_size(value)


def fetch_page(
    cursor: sqlite3.Cursor, collection: str | None, column: int | None = None
) -> list[Any]:
    """The rows of ``cursor``, refused (``page_too_large``) once their text (as UTF-8) and blobs
    pass ``MAX_PAGE_BYTES``: only ``column``'s are counted when given (a dbhandles row's JSON),
    else every value's (a foreign table's or a view's row).

    Raises:
        QueryFailed: the page would pass ``MAX_PAGE_BYTES``.
    """
    rows: list[Any] = []
    append = rows.append
    bound = MAX_PAGE_BYTES
    # The exact bytes of rows[:measured], and the most the rows after them may hold: each value
    # counts its ``most_bytes`` as it is read (an ASCII text's length, the usual JSON), and is
    # encoded to be measured only once that estimate reaches the bound (``first_past``).
    settled, measured, ahead = 0, 0, 0
    size: Callable[[Any], int]
    try:
        if column is not None:
            for row in cursor:
                append(row)
                value = row[column]
                if value is not None:
                    ahead += len(value) if value.isascii() else 4 * len(value)
                    if settled + ahead > bound:
                        size = partial(_column_size, column)
                        settled, past = first_past(rows, measured, settled, size, bound)
                        if past is not None:
                            raise page_too_large(collection, past)
                        measured, ahead = len(rows), 0
            return rows
        for row in cursor:
            append(row)
            ahead += sum(most_bytes(v) for v in row if isinstance(v, str | bytes))
            if settled + ahead > bound:
                settled, past = first_past(rows, measured, settled, row_size, bound)
                if past is not None:
                    raise page_too_large(collection, past)
                measured, ahead = len(rows), 0
        return rows
    except BaseException:
        # A row that fails (text that is not UTF-8, the bound above, an interrupt) leaves the
        # statement stepped: reset it now, or its read lock outlives the call (the traceback
        # keeps the cursor alive) and blocks every writer of the file.
        cursor.close()
        raise
