"""The memory a page may take: rows read from SQLite stop at ``MAX_PAGE_BYTES``, SQLite's own at
``SQLITE_HEAP_BYTES``.

A record is at most ``MAX_VALUE_BYTES`` (64 MiB, SQLite's length limit on a dbhandles connection),
but a page of them, or a view whose rows each compute a value just under that, could hold
gigabytes. Two bounds, each answered with ``query_failed`` naming the collection and the bound:

* the rows of one page handed to Python (a listing, an export's, a copy's or a cursor's page): their
  text and blobs are counted as they are read, and past ``MAX_PAGE_BYTES`` the page is refused
  (``fetch_page``) before more is read;
* the memory SQLite itself takes while it evaluates a statement (a view ordered by a computed id
  sorts every row it has, whatever the page's limit): the process's ``hard_heap_limit``
  (``bound_sqlite_heap``), past which SQLite fails the statement with ``SQLITE_NOMEM``
  (``MemoryError`` in Python, which ``sqlite_errors`` reports as ``query_failed``).
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from dbhandles import budget
from dbhandles.dbfiles import MAX_VALUE_BYTES
from dbhandles.errors import QueryFailed
from dbhandles.values import json_text

__all__ = [
    "MAX_PAGE_BYTES",
    "SQLITE_HEAP_BYTES",
    "bound_sqlite_heap",
    "bounded",
    "fetch_page",
    "page_too_large",
    "sqlite_heap_error",
]

#: The most bytes of text and blobs the rows of one page may hold as read from SQLite: twice the
#: largest record, so any one record is served (a page of one), never more.
MAX_PAGE_BYTES = 2 * MAX_VALUE_BYTES
#: The most memory SQLite may take in this process, all connections together (its
#: ``hard_heap_limit``): page caches (2 MiB a connection; 64 MiB during a bulk import) come nowhere
#: near it, a statement sorting gigabytes of computed values does.
SQLITE_HEAP_BYTES = 1 << 30

_bounded = False
_bound_lock = threading.Lock()


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
    """The error of a page whose rows passed ``MAX_PAGE_BYTES`` at its ``rows``-th row."""
    of = f" of {json_text(collection, 80)}" if collection else ""
    fewer = f"ask for at most {rows - 1} (limit)" if rows > 1 else "read fewer fields of it"
    return QueryFailed(
        f"a page{of} would hold more than {MAX_PAGE_BYTES >> 20} MiB of values (passed at its "
        f"record {rows}), the most one page may hold in the server's memory; {fewer}, or page "
        "through it with a smaller limit"
    )


def sqlite_heap_error(collection: str | None) -> QueryFailed:
    """The error of a statement SQLite failed for memory (``SQLITE_NOMEM``: ``MemoryError``)."""
    of = f" of {json_text(collection, 80)}" if collection else ""
    return QueryFailed(
        f"the query{of} needed more memory than SQLite may use in this server "
        f"({SQLITE_HEAP_BYTES >> 20} MiB, all queries together): a view computing huge values "
        "(its id is all its columns, so SQLite sorts every row of it, whatever the limit), or too "
        "many such rows at once; select fewer or smaller columns in the view, or filter it; "
        "nothing was written"
    )


def fetch_page(
    cursor: sqlite3.Cursor, collection: str | None, column: int | None = None
) -> list[Any]:
    """The rows of ``cursor``, refused (``page_too_large``) once their text and blobs pass
    ``MAX_PAGE_BYTES``: only ``column``'s are counted when given (a dbhandles row's JSON), else
    every value's (a foreign table's or a view's row).

    Raises:
        QueryFailed: the page would pass ``MAX_PAGE_BYTES``.
    """
    rows: list[Any] = []
    size = 0
    append = rows.append
    try:
        if column is not None:
            for row in cursor:
                append(row)
                value = row[column]
                if value is not None:
                    size += len(value)
                    if size > MAX_PAGE_BYTES:
                        raise page_too_large(collection, len(rows))
            return rows
        for row in cursor:
            append(row)
            size += sum(len(v) for v in row if isinstance(v, str | bytes))
            if size > MAX_PAGE_BYTES:
                raise page_too_large(collection, len(rows))
        return rows
    except BaseException:
        # A row that fails (text that is not UTF-8, the bound above, an interrupt) leaves the
        # statement stepped: reset it now, or its read lock outlives the call (the traceback
        # keeps the cursor alive) and blocks every writer of the file.
        cursor.close()
        raise
