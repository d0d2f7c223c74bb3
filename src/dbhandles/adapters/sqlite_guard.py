"""What SQL a database file carries (views, triggers) may not run: SQLite's authorizer on every connection.

A database dbhandles did not create brings its own SQL: views and triggers run when a command reads
a view or writes a table (defaults, generated columns and CHECK constraints cannot hold a subquery,
so they reach no table-valued function). ``trusted_schema = OFF`` keeps non-innocuous *functions*
out of that SQL, but not SQLite's eponymous virtual tables: ``create view dbl as select * from
pragma_database_list`` shows whoever reads ``dbl`` the absolute path of the file (the server's data
root, the home's folder), and ``pragma_compile_options`` or ``pragma_function_list`` the server's
build. So every connection to a database file gets an authorizer (``sqlite3_set_authorizer``) that
refuses, for SQL run *on behalf of* a view or trigger (the callback's 4th argument names it):

- reading a ``pragma_*`` table-valued function, or another eponymous table that shows the file or
  the connection (``dbstat``, ``sqlite_dbpage``, ``sqlite_stmt``, ...);
- ``PRAGMA``, ``ATTACH`` and ``DETACH`` (SQLite allows none of them in a view or trigger body; the
  check keeps it so whatever a later SQLite allows);
- the functions that reach files or the extension loader (``load_extension``, ``fts3_tokenizer``,
  ``readfile``, ``writefile``, ``edit``).

dbhandles' own top-level SQL (its PRAGMAs, ``pragma_foreign_key_list`` of ``foreign_cascades``) has
no view or trigger and is never refused; a caller never writes SQL (filters are compiled, collection
names resolve to tables and views of the schema), so no caller reaches those tables directly.
Harmless functions (``sqlite_version``, ``sqlite_source_id``, JSON, dates) stay allowed.

A refusal makes SQLite fail the statement with ``SQLITE_AUTH``, before it runs; the reason is kept
per thread (the authorizer runs in the thread that prepares the statement, which is the thread that
gets the error) and ``sqlite_errors.translate_error`` turns it into ``access_denied``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

from dbhandles.errors import AccessDenied

__all__ = ["SQLITE_AUTH", "Authorizer", "denied", "install", "installed"]

#: SQLite's primary result code for a statement its authorizer refused.
SQLITE_AUTH = 23

#: Eponymous virtual tables (besides ``pragma_*``) that show the file, its pages or the connection.
_REVEALING_TABLES = frozenset(
    {"dbstat", "sqlite_dbpage", "sqlite_dbdata", "sqlite_dbptr", "sqlite_stmt", "fsdir", "zipfile"}
)
#: Functions that load code or reach files (most are not compiled into Python's SQLite; refused
#: whatever a build holds).
_REVEALING_FUNCTIONS = frozenset(
    {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "lsdir"}
)

#: ``(action, arg1, arg2, database, view or trigger) -> SQLITE_OK | SQLITE_DENY``.
Authorizer = Callable[[int, str | None, str | None, str | None, str | None], int]

_last = threading.local()


def _reason(action: int, arg1: str | None, arg2: str | None) -> str | None:
    """What SQL of a view or trigger doing ``action`` would reach (``None``: harmless)."""
    if action == sqlite3.SQLITE_READ and arg1 is not None:
        name = arg1.lower()
        if name.startswith("pragma_") or name in _REVEALING_TABLES:
            return arg1
    elif action == sqlite3.SQLITE_FUNCTION and arg2 is not None:
        if arg2.lower() in _REVEALING_FUNCTIONS:
            return f"the function {arg2}()"
    elif action == sqlite3.SQLITE_PRAGMA:
        return f"PRAGMA {arg1}"
    elif action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return "ATTACH" if action == sqlite3.SQLITE_ATTACH else "DETACH"
    return None


def guard(
    action: int, arg1: str | None, arg2: str | None, database: str | None, source: str | None
) -> int:
    """The authorizer: refuse what a view or trigger (``source``) reaches beyond its database."""
    del database
    if source is None:
        return sqlite3.SQLITE_OK  # dbhandles' own statement, not SQL the file carries
    reached = _reason(action, arg1, arg2)
    if reached is None:
        return sqlite3.SQLITE_OK
    _last.reason = (source, reached)
    return sqlite3.SQLITE_DENY


def install(conn: sqlite3.Connection) -> None:
    """Put the guard on ``conn`` (a connection to a database file)."""
    conn.set_authorizer(guard)


def installed() -> Authorizer:
    """The authorizer every guarded connection has, for code that sets its own for a while
    (``sqlite_foreign.ForeignTable.sources``) and must chain to it and put it back."""
    return guard


def denied(message: str) -> AccessDenied:
    """The error for a statement SQLite refused with ``SQLITE_AUTH`` (``message``: its text),
    naming the view or trigger and what it reached when this thread's guard refused it.

    Returns:
        ``AccessDenied`` (``access_denied``): what the database's own SQL tried is not run;
        nothing was read or written by that statement.
    """
    reason = getattr(_last, "reason", None)
    _last.reason = None
    if reason is None:
        return AccessDenied(
            f"SQLite refused a statement of this database ({message}); dbhandles does not run "
            "what a database's views and triggers reach beyond their own tables"
        )
    source, reached = reason
    return AccessDenied(
        f"the view or trigger {source!r} of this database uses {reached}, which dbhandles does not "
        "run for databases it did not create (it would show the server's files or settings); "
        "nothing was read or written. Drop or change it, or read the tables it reads"
    )
