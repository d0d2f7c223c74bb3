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

A database's *virtual tables* run SQL of their own (``sqlite_vtables``): an FTS table with
``content='pragma_database_list'`` reads that pragma on every read, in SQL the authorizer sees as
top-level. So each connection's guard also holds the virtual tables its file declares that reach a
pragma or eponymous table, whose module shows the file (``dbstat``, ``sqlite_dbpage`` under any
name or quoting) or is not one ``sqlite_vtables.KNOWN_MODULES`` knows what it reads, refreshed whenever the schema changes (``Catalog.refresh`` calls ``refuse_virtual``), and
refuses reading them from any SQL; and top-level SQL may read only the pragma tables dbhandles' own
statements use (``_OWN_PRAGMAS``, which show the schema and nothing of the host), so a virtual table
added behind the catalog's back is refused too.

A refusal makes SQLite fail the statement with ``SQLITE_AUTH``, before it runs; the reason is kept
per thread (the authorizer runs in the thread that prepares the statement, which is the thread that
gets the error) and ``sqlite_errors.translate_error`` turns it into ``access_denied``.

SQLite refuses some of the same SQL itself, before the authorizer sees it: ``trusted_schema=OFF``
makes a view or trigger that reads a virtual table whose module is not innocuous (``dbstat`` by its
own name, or a table ``USING dbstat``) or calls such a function fail with ``unsafe use of ...``;
and a revealing module this SQLite does not load (``fsdir``, ``sqlite_dbpage``) makes a view over it
fail with ``no such table``. ``schema_refusal`` turns those into the same ``access_denied`` (one
place, used by ``translate_error`` and by ``sqlite_foreign_schema.describe``), never
``read_only`` ("module is not loaded") nor ``storage_error``.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import weakref
from collections.abc import Callable, Mapping

from dbhandles.errors import AccessDenied
from dbhandles.values import json_text

__all__ = [
    "KEPT_POINT",
    "SQLITE_AUTH",
    "Authorizer",
    "Guard",
    "denied",
    "guard_of",
    "install",
    "installed",
    "refuse_virtual",
    "schema_refusal",
]

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

#: The pragma tables dbhandles' own top-level SQL reads (they show the schema, never the host).
_OWN_PRAGMAS = frozenset(
    {
        "pragma_table_list", "pragma_table_info", "pragma_table_xinfo", "pragma_index_list",
        "pragma_index_info", "pragma_index_xinfo", "pragma_foreign_key_list",
        "pragma_schema_version",
    }
)  # fmt: skip

#: Ends every statement ``SqliteAdapter.read_one`` keeps (``sqlite_points.point_statement``,
#: ``ForeignReader.point``), so that no other statement of dbhandles has the same text and
#: SQLite's statement cache never holds one prepared by anything but ``read_one`` (which counts
#: the guard's calls around each run: ``guard_of``).
KEPT_POINT = " /* kept point read */"

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
        if action == sqlite3.SQLITE_READ and arg1 is not None:
            name = arg1.lower()
            if (
                name.startswith("pragma_") and name not in _OWN_PRAGMAS
            ) or name in _REVEALING_TABLES:
                # Not dbhandles' own SQL: a virtual table's module (FTS ``content=``) reading it.
                _last.reason = (None, f"a virtual table of this database reads {arg1}")
                return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK  # dbhandles' own statement, not SQL the file carries
    reached = _reason(action, arg1, arg2)
    if reached is None:
        return sqlite3.SQLITE_OK
    _last.reason = (source, reached)
    return sqlite3.SQLITE_DENY


class Guard:
    """``guard`` plus the refused virtual tables of one connection's file (``refuse_virtual``),
    and a count of its calls (``calls``): SQLite asks the authorizer while it prepares a
    statement, and only then, so a kept statement that ran without moving the count was not
    prepared again (``SqliteAdapter.read_one``: SQLite prepares a statement again when the
    schema it was prepared for changed)."""

    __slots__ = ("calls", "virtual")

    def __init__(self) -> None:
        self.virtual: dict[str, str] = {}
        self.calls = 0

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, database: str | None,
        source: str | None,
    ) -> int:  # fmt: skip
        self.calls += 1
        if action == sqlite3.SQLITE_READ and arg1 is not None:
            why = self.virtual.get(arg1.lower())
            if why is not None:
                _last.reason = (None, why)
                return sqlite3.SQLITE_DENY
        return guard(action, arg1, arg2, database, source)


_guards: weakref.WeakKeyDictionary[sqlite3.Connection, Guard] = weakref.WeakKeyDictionary()


def install(conn: sqlite3.Connection) -> None:
    """Put the guard on ``conn`` (a connection to a database file)."""
    conn.set_authorizer(_guards.setdefault(conn, Guard()))


def refuse_virtual(conn: sqlite3.Connection, refused: dict[str, str]) -> None:
    """Refuse reading these virtual tables of ``conn``'s file (``lower name -> why``), from now on."""
    found = _guards.get(conn)
    if found is not None:
        found.virtual = dict(refused)


def guard_of(conn: sqlite3.Connection | None) -> Guard | None:
    """The guard ``install`` put on ``conn`` (``None``: none, or no ``conn``), whose ``calls``
    count moves whenever SQLite prepares a statement on ``conn``."""
    return None if conn is None else _guards.get(conn)


def installed(conn: sqlite3.Connection | None = None) -> Authorizer:
    """The authorizer ``conn`` has (every guarded connection's, without one), for code that sets
    its own for a while (``sqlite_foreign.ForeignTable.sources``) and must put it back."""
    found = None if conn is None else _guards.get(conn)
    return guard if found is None else found


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
    if source is None:  # a refused virtual table: ``reached`` says which and what it reads
        return AccessDenied(
            f"{reached}, which dbhandles does not run for databases it did not create (it would "
            "show the server's files or settings); nothing was read or written. Drop it, or read "
            "the tables it reads"
        )
    return AccessDenied(
        f"the view or trigger {json_text(source, 80)} of this database uses {reached}, which dbhandles does not "
        "run for databases it did not create (it would show the server's files or settings); "
        "nothing was read or written. Drop or change it, or read the tables it reads"
    )


#: SQLite's own refusal under ``trusted_schema=OFF``: ``unsafe use of virtual table "dbstat"``,
#: ``unsafe use of load_extension()``.
_UNSAFE = re.compile(r'unsafe use of (?:virtual table "([^"]+)"|([A-Za-z_][A-Za-z0-9_]*)\(\))')
#: A view over an eponymous table this SQLite does not load: ``no such table: main.fsdir``.
_MISSING = re.compile(r"no such (?:table|module): (?:main\.)?([A-Za-z_][A-Za-z0-9_]*)")


def schema_refusal(
    message: str, source: str | None = None, modules: Mapping[str, str] | None = None
) -> AccessDenied | None:
    """The ``access_denied`` for SQLite's own refusal of what a database's view or trigger reads
    (``message``: the driver's words; ``source``: the view or table read, when known;
    ``modules``: the module of each virtual table of the file, by lower name), else
    ``None``: a view or trigger reading a virtual table, or calling a function, that SQLite runs
    only for a schema it trusts (``unsafe use of ...``: a revealing table, or anything else the
    file's schema is not trusted with, ``sqlite_trust``; the JSON functions of SQLite before 3.45
    included, when the schema is not trusted), or reading a revealing table (``pragma_*``,
    ``dbstat``, ``fsdir``...) this SQLite does not load.

    Returns:
        ``AccessDenied`` (``access_denied``) naming the view and what it reads; nothing was read.
    """
    found = _UNSAFE.search(message)
    revealing = True
    if found is not None:
        reached = found.group(1) or f"{found.group(2)}()"
        low = (found.group(1) or found.group(2)).lower()
        revealing = low.startswith("pragma_") or low in _REVEALING_TABLES
        module = (modules or {}).get(reached.lower())
        if found.group(1) is not None and module is not None:
            reached = f"the virtual table {json_text(reached, 80)} of the module {module}"
        elif found.group(1) is not None and not revealing:
            reached = f"the virtual table {json_text(reached, 80)}"
    else:
        missing = _MISSING.search(message)
        if missing is None:
            return None
        name = missing.group(1).lower()
        if not (name.startswith("pragma_") or name in _REVEALING_TABLES):
            return None
        reached = missing.group(1)
    which = (
        f"the view or trigger {json_text(source, 80)}"
        if source is not None
        else "a view or trigger"
    )
    if not revealing:
        # A virtual table of the file (FTS, R*Tree: ``sqlite_trust``) or a function SQLite does
        # not mark innocuous: refused as under ``trusted_schema=OFF``, nothing of the host shown.
        return AccessDenied(
            f"{which} of this database uses {reached}, which SQLite {sqlite3.sqlite_version} "
            "runs only for a schema it trusts; dbhandles runs a database's own SQL with no more "
            "than trusted_schema=OFF allows (docs/security.md), so nothing was read or written. "
            "Read the tables it reads directly, or drop or change it"
        )
    return AccessDenied(
        f"{which} of this database uses {reached}, which SQLite runs only for a schema it "
        "trusts and dbhandles does not run for databases it did not create (it would show the "
        "server's files or settings); nothing was read or written. Drop or change it, or read "
        "the tables it reads"
    )
