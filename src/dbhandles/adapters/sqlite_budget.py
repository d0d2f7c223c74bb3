"""A SQLite statement run under the command's time budget (``dbhandles.budget``): one context
manager every query of a session and every read of a collection's rows enters."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dbhandles import budget

__all__ = ["budgeted"]


@contextmanager
def budgeted(conn: sqlite3.Connection) -> Iterator[None]:
    """Run a query under the command's time budget: a progress handler interrupts SQLite at the
    deadline or a stop (``SQLITE_INTERRUPT``, which ``sqlite_errors`` reports as ``QueryTimeout`` or
    ``budget.interruption()``). The connection's own handler (a stop: a cancel, a shutdown) is
    checked meanwhile and put back after.

    Raises:
        QueryTimeout: the deadline has already passed (``budget.check``).
    """
    deadline = budget.deadline()
    if deadline is None:
        yield
        return
    budget.check()
    stop = budget.interrupt_requested
    conn.set_progress_handler(lambda: time.monotonic() > deadline or stop(), budget.PROGRESS_STEPS)
    try:
        yield
    finally:
        conn.set_progress_handler(stop, budget.PROGRESS_STEPS)
