"""How a SQLite session reads a collection's rows so that every filter, count, sort and facet judges
the value a read shows (docs/filters.md "Values").

A row's ``data`` is either *plain* (``sqlite_values.plain``: it starts an object and holds no
``\\u`` escape: every text dbhandles writes), which SQLite's JSON functions read exactly as
``sqlite_values.loads`` does, or was written by another tool and is read through
``sqlite_values.RECORD_FUNCTION`` (canonical text, NULL when unreadable). ``guarded`` tests each row
once (one ``instr``) and runs the filter compiled for the stored text or for the canonical one;
``source`` gives the whole table that way, for sorts by a field and for facets (the test repeats
at each use of ``data`` there). Text that is not JSON makes SQLite fail the query
(``malformed JSON``); the session then runs it ``exact``: every row read canonically.

Every text dbhandles writes is canonical, so the common case needs neither test: ``foreign_rows``
keeps, per connection, which rows are not (another tool wrote them), and ``guarded``, ``source`` and
``decode_all`` then test those rows only: none, for a collection only dbhandles wrote.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

import orjson

from dbhandles import budget
from dbhandles.adapters.base import Record
from dbhandles.adapters.sql_compile import Fragment, SqlCompiler, and_
from dbhandles.adapters.sqlite_budget import budgeted
from dbhandles.adapters.sqlite_compile import SqliteDialect
from dbhandles.adapters.sqlite_values import (
    load_record,
    plain,
    record_call,
    record_source,
)
from dbhandles.filters import FilterNode

__all__ = [
    "DECODE_CHECK_BYTES",
    "EXACT_COMPILER",
    "MAX_FOREIGN_ROWS",
    "Foreign",
    "decode_all",
    "exact_where",
    "foreign_rows",
    "guarded",
    "read_rows",
    "source",
    "unchanged",
]

#: The most rows another tool wrote (not canonical) that ``foreign_rows`` names one by one; past
#: it every row of the collection is read canonically (``guarded`` and ``source`` exact).
MAX_FOREIGN_ROWS = 1000


class Foreign(NamedTuple):
    """The rows of one collection table whose ``data`` is not canonical (``RECORD_FUNCTION`` would
    give other text, or none: another tool wrote them), as of ``state``."""

    #: ``_state`` of the connection when they were found.
    state: tuple[int, int, int]
    #: Their rowids; ``None`` when more than ``MAX_FOREIGN_ROWS`` (every row is then read exactly).
    rowids: tuple[int, ...] | None
    #: Their ids (``decode_all`` reads those with ``loads``, every other with ``orjson.loads``).
    ids: frozenset[object]
    #: How many rows of the table ``loads`` cannot read as an object (left out of every listing).
    unreadable: int


#: SQL of a row's ``data`` read canonically (``sqlite_values.record_call``).
_CALL = record_call("data")
#: Per connection (its ``Catalog``, which lives and dies with it), per quoted table name.
_KNOWN: WeakKeyDictionary[object, dict[str, Foreign]] = WeakKeyDictionary()


#: A trigger whose whole body raises (dbhandles' own guards on its store tables) writes nothing.
_ONLY_RAISES = re.compile(
    r"\bBEGIN\s+SELECT\s+RAISE\s*\(\s*ABORT\s*,\s*'[^']*'\s*\)\s*;\s*END\s*$", re.I
)

#: Per connection (its ``Catalog``): the ``schema_version`` it last read and whether that schema
#: holds a trigger that may write (``_writing_triggers``).
_TRIGGERS: WeakKeyDictionary[object, tuple[int, bool]] = WeakKeyDictionary()


def _writing_triggers(conn: sqlite3.Connection, owner: object, schema: int) -> bool:
    """Whether the schema ``conn`` reads (at ``schema``, its ``schema_version``) holds a trigger
    that may write rows: one another tool wrote, whose body does more than ``RAISE``."""
    known = _TRIGGERS.get(owner)
    if known is not None and known[0] == schema:
        return known[1]
    sql = "SELECT sql FROM sqlite_schema WHERE type = 'trigger'"
    writing = any(not _ONLY_RAISES.search(text or "") for (text,) in conn.execute(sql))
    _TRIGGERS[owner] = (schema, writing)
    return writing


def _state(conn: sqlite3.Connection, owner: object) -> tuple[int, int, int]:
    """``(PRAGMA data_version, PRAGMA schema_version, own changes)``: the last is the connection's
    ``total_changes`` (rows its statements changed, triggers' included) where the schema holds a
    trigger that may write, else 0. ``data_version`` never moves for a connection's own commits,
    and a trigger another tool wrote may store text that is not canonical inside dbhandles' own
    write (on a rollback-journal file, reads share the writer's connection)."""
    # Two statements: the guard refuses the pragma table functions (``sqlite_guard``).
    data = int(conn.execute("PRAGMA data_version").fetchone()[0])
    schema = int(conn.execute("PRAGMA schema_version").fetchone()[0])
    own = conn.total_changes if _writing_triggers(conn, owner, schema) else 0
    return data, schema, own


def foreign_rows(conn: sqlite3.Connection, owner: object, table: str) -> Foreign:
    """The rows of ``table`` (quoted) another tool wrote, as ``owner`` (``conn``'s catalog) last
    found them while no other connection has committed since (``PRAGMA data_version``, which
    every commit of any other connection or process changes, and never this connection's own) nor
    changed the schema; else found again by reading every row once through ``RECORD_FUNCTION``.

    dbhandles writes canonical text only (``orjson.dumps`` of checked values), so this connection's
    own writes keep the answer true: an update of a named row makes it canonical (it is then read
    exactly though it need not be), a new row is canonical. The caller confirms with ``unchanged``
    after its query, whose snapshot may be newer than ``state``."""
    state = _state(conn, owner)
    known = _KNOWN.setdefault(owner, {})
    found = known.get(table)
    if found is not None and found.state == state:
        return found
    with budgeted(conn):  # as a query of the session is; RECORD_FUNCTION stops before a long text
        rows = conn.execute(
            f"SELECT rowid, id, {_CALL} IS NULL FROM {table} "
            f"WHERE {_CALL} IS NOT data LIMIT {MAX_FOREIGN_ROWS + 1}"
        ).fetchall()
        if len(rows) > MAX_FOREIGN_ROWS:
            sql = f"SELECT count(*) FROM {table} WHERE {_CALL} IS NULL"
            unreadable = int(conn.execute(sql).fetchone()[0])
    if len(rows) > MAX_FOREIGN_ROWS:
        found = Foreign(state, None, frozenset(), unreadable)
    else:
        rowids = tuple(int(r[0]) for r in rows)
        found = Foreign(state, rowids, frozenset(r[1] for r in rows), sum(r[2] for r in rows))
    known[table] = found
    return found


def unchanged(conn: sqlite3.Connection, owner: object, found: Foreign) -> bool:
    """Whether no other connection committed since ``found`` was taken (nor ``conn`` changed rows
    through a trigger that may write, ``_state``): a query run in between read the rows it
    describes."""
    return _state(conn, owner) == found.state


#: Bytes of JSON text decoded between two looks at the command's time budget and stop
#: (``decode_all``): a few milliseconds of ``orjson.loads``, so a page of huge records answers
#: ``query_timeout`` at its deadline rather than after decoding all of it.
DECODE_CHECK_BYTES = 1 << 20


def decode_all(rows: list[Any], foreign: Foreign | None = None) -> tuple[list[Record], bool]:
    """``_decode`` of every row (``record_from_columns`` written out in the loop: a listing's hot
    path, no two calls per row), and whether every row could be read. A row
    ``sqlite_values.load_record`` cannot read in full (no JSON object, too deep, U+0000, a key
    twice, a reserved field, an integer past 64 bits) is left out, as the SQL left it out
    (``RECORD_FUNCTION`` is NULL there); the id, times and version are always the row's columns.
    Rows not among ``foreign``'s (canonical: dbhandles wrote them, checked as it wrote them) are
    read by ``orjson.loads`` alone, with no check: it reads them exactly as ``load_record``.

    Every ``DECODE_CHECK_BYTES`` of text decoded, the command's time budget and stop are looked at
    (``budget``), between two rows.

    Raises:
        QueryTimeout: the command's deadline passed while its rows were decoded.
        DbHandlesError: the command was told to stop (a cancel, a shutdown): its stop's error.
    """
    records: list[Record] = []
    append = records.append
    ids = foreign.ids if foreign is not None and foreign.rowids is not None else None
    fast, exact = orjson.loads, load_record
    complete, decoded = True, 0
    for i, d, c, u, v in rows:
        decoded += len(d) if type(d) is str else 1  # another tool may store a number, a NULL
        if decoded > DECODE_CHECK_BYTES:
            _still_running()
            decoded = 0
        try:
            fields = exact(d) if ids is None or i in ids else fast(d)
        except (ValueError, TypeError):  # unreadable: another tool wrote it (Unreadable is one)
            complete = False
            continue
        append({"id": i, **fields, "createdAt": c, "updatedAt": u, "version": v})
    return records, complete


def _still_running() -> None:
    """Raise the error of a command past its deadline or told to stop, else nothing."""
    budget.check()
    stop = budget.stop_error()
    if stop is not None:
        raise stop


def _named(foreign: Foreign | None) -> str | None:
    """SQL testing that a row is one of ``foreign``'s (``None`` when there is none to test)."""
    if foreign is None or foreign.rowids is None or not foreign.rowids:
        return None
    return f"rowid IN ({', '.join(map(str, foreign.rowids))})"


def source(table: str, exact: bool = False, foreign: Foreign | None = None) -> str:
    """The collection stored as ``table`` as every query reads it: ``data`` as
    ``sqlite_values.record_source`` gives it (canonical where another tool wrote escapes), the
    rows it cannot read left out. ``LIMIT -1`` keeps the inner query a co-routine SQLite does not
    flatten, so that test runs once per row rather than at each use of ``data`` (a facet uses it
    three times); the queries that take this form scan the whole table anyway (a sort by a field,
    facets, samples).

    With ``foreign`` (``foreign_rows``): the table itself when every row is canonical, else only
    the rows it names read through ``RECORD_FUNCTION``; every row when it names too many."""
    if foreign is not None and not exact:
        named = _named(foreign)
        if foreign.rowids is None:
            exact = True
        elif named is None:
            return table
        else:
            data = f"(CASE WHEN {named} THEN {_CALL} ELSE data END)"
            inner = (
                f"SELECT id, {data} AS data, created_at, updated_at, version FROM {table} LIMIT -1"
            )
            return f"(SELECT * FROM ({inner}) WHERE data IS NOT NULL)"
    data = record_source("data", exact=exact)
    inner = f"SELECT id, {data} AS data, created_at, updated_at, version FROM {table} LIMIT -1"
    return f"(SELECT * FROM ({inner}) WHERE data IS NOT NULL)"


#: The filter compiler over a record read canonically (``sqlite_values.RECORD_FUNCTION``).
EXACT_COMPILER = SqlCompiler(SqliteDialect(f"{_CALL}", record=True))
_EXACT_WHERES: dict[str, Fragment] = {}


def exact_where(node: FilterNode | None) -> Fragment:
    """``node`` compiled by ``EXACT``, remembered as ``SqliteAdapter.where`` remembers its own."""
    key = repr(node)
    found = _EXACT_WHERES.get(key)
    if found is None:
        found = EXACT_COMPILER.where(node)
        if len(_EXACT_WHERES) >= 256:
            _EXACT_WHERES.clear()
        _EXACT_WHERES[key] = found
    return found


def guarded(
    where: Fragment, exact_where: Fragment, exact: bool, foreign: Foreign | None = None
) -> Fragment:
    """One condition testing each row once: ``where`` on its stored text where that text is one
    SQLite's JSON functions read as ``loads`` does (``sqlite_values.plain``), else ``exact_where``
    on its canonical text (no row when there is none). Every row takes the second way when
    ``exact``. One ``instr`` per row, where ``source`` repeats it at each use of ``data``.

    With ``foreign`` (``foreign_rows``): ``where`` alone when every row is canonical (no test at
    all), the second way for the rows it names only, for every row when it names too many."""
    readable = Fragment(f"{_CALL} IS NOT NULL")
    slow = and_(readable, exact_where)
    if exact or (foreign is not None and foreign.rowids is None):
        return slow
    if foreign is not None:
        named = _named(foreign)
        if named is None:
            return where
        return Fragment(
            f"(CASE WHEN {named} THEN ({slow.sql}) ELSE ({where.sql}) END)",
            (*slow.params, *where.params),
        )
    return Fragment(
        f"(CASE WHEN {plain('data')} THEN ({where.sql}) ELSE ({slow.sql}) END)",
        (*where.params, *slow.params),
    )


def read_rows(
    conn: sqlite3.Connection,
    owner: object,
    table: str,
    guard: tuple[Fragment, Fragment] | None,
    exact: bool,
    run: Callable[[Fragment], list[Any]],
) -> tuple[list[Any], Foreign | None]:
    """``run(test)`` (a query of the collection stored as ``table``, quoted), where ``test`` is
    ``guarded(*guard, ...)`` or, without ``guard``, the table as ``source`` gives it (SQL without
    parameters); and the ``foreign_rows`` it read canonically (``None`` when ``exact``).

    Run again if another connection committed while it ran (its snapshot may be newer than what
    ``foreign_rows`` found), and ``exact`` when SQLite met text that is not JSON (``malformed
    JSON``: another tool wrote it; the row then counts as no record).

    Raises:
        sqlite3.Error: what the query raises otherwise.
    """
    while True:
        known = None if exact else foreign_rows(conn, owner, table)
        test = guarded(*guard, exact, known) if guard else Fragment(source(table, exact, known))
        try:
            rows = run(test)
        except sqlite3.OperationalError as exc:
            if exact or "malformed JSON" not in str(exc):
                raise
            exact = True
            continue
        if known is None or unchanged(conn, owner, known):
            return rows, known
