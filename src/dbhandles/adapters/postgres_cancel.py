"""A cancel or a shutdown stops a PostgreSQL statement too: a watcher thread asks the stop checks of
every command holding a connection (``budget.stopping``) and sends the server a cancel request for
the connection of one told to stop.

SQLite asks the checks from its progress handler, in the thread running the statement; a PostgreSQL
statement runs in the server, so the asking is done here, every ``WATCH_SECONDS``, and the server
ends the statement with SQLSTATE 57014, which ``postgres_errors`` reports as the stop's error. The
thread runs only while a command with stop checks holds a connection.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg

from dbhandles import budget

__all__ = ["WATCH_SECONDS", "watched"]

log = logging.getLogger(__name__)

#: Seconds between two looks at the stop checks of the commands holding a connection.
WATCH_SECONDS = 0.2

_lock = threading.Lock()
#: What is watched: ``id`` of a ``watched`` block -> (connection, its command's stop checks).
_watched: dict[int, tuple[psycopg.Connection[Any], tuple[budget.StopCheck, ...]]] = {}
_thread: threading.Thread | None = None
_ids = itertools.count()


@contextlib.contextmanager
def watched(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Cancel the statement ``conn`` runs inside this block once a stop check of the command that
    entered it says stop (nothing to watch without one)."""
    global _thread
    checks = budget.stop_checks()
    if not checks:
        yield
        return
    token = next(_ids)
    with _lock:
        _watched[token] = (conn, checks)
        if _thread is None:
            _thread = threading.Thread(target=_watch, name="dbhandles-pg-cancel", daemon=True)
            _thread.start()
    try:
        yield
    finally:
        with _lock:
            _watched.pop(token, None)


def _watch() -> None:
    # A cancel request reaches only the statement running when it arrives (one between two
    # statements is ignored by the server), so it is sent again at every look while told to stop.
    # It is sent holding the lock: the block it is for cannot end meanwhile and give its
    # connection back to the pool, where the cancel would stop another command's statement.
    global _thread
    while True:
        with _lock:
            if not _watched:
                _thread = None
                return
            items = list(_watched.items())
        for token, (conn, checks) in items:
            if not any(check() is not None for check in checks):
                continue
            with _lock:
                if token not in _watched:
                    continue
                try:
                    conn.cancel_safe(timeout=5.0)
                except (psycopg.Error, OSError) as exc:  # the statement may have just ended
                    log.warning("could not cancel a PostgreSQL statement told to stop: %s", exc)
        time.sleep(WATCH_SECONDS)
