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
``decode_all`` then test those rows only: none, for a collection only dbhandles wrote. A read
connection's ``data_version`` moves at every commit of the adapter's own writer too: a ``Witness``
(the writer's ``data_version``, which moves only for the commits of others) tells such commits
from another tool's, so only the latter make ``foreign_rows`` read the collection again; the
handle store's commits into the same file (``default.sqlite``: handles, cursors, tokens, the audit
log) are told to it as they happen (``store_commit``), so they are not taken for one either.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from operator import itemgetter
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary, WeakSet

import orjson

from dbhandles import budget
from dbhandles.adapters.base import Record
from dbhandles.adapters.sql_compile import Fragment, SqlCompiler, and_
from dbhandles.adapters.sqlite_budget import budgeted
from dbhandles.adapters.sqlite_compile import SqliteDialect
from dbhandles.adapters.sqlite_values import (
    SYSTEM_READABLE,
    load_record,
    plain,
    record_call,
    record_source,
)
from dbhandles.byte_cache import ByteCache, deep_sizeof
from dbhandles.filters import FilterNode

__all__ = [
    "COMMIT_WAIT",
    "DECODE_CHECK_BYTES",
    "EXACT_COMPILER",
    "MAX_FOREIGN_ROWS",
    "Foreign",
    "Witness",
    "decode_all",
    "exact_where",
    "file_key",
    "foreign_rows",
    "guarded",
    "read_rows",
    "rescans",
    "source",
    "store_commit",
    "unchanged",
    "watch",
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
    #: ``Witness.epoch`` as marked before the snapshot they were found in (``None``: no witness).
    epoch: int | None = None


#: SQL of a row's ``data`` read canonically (``sqlite_values.record_call``).
_CALL = record_call("data")
#: SQL of a row's ``data`` read canonically, NULL also where its system columns are not what
#: dbhandles writes (``sqlite_values.SYSTEM_READABLE``: such a row is unreadable as a whole).
_READ = f"(CASE WHEN {SYSTEM_READABLE} THEN {_CALL} END)"
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


class Witness:
    """Which commits on an SQLite file were not its adapter's writer's own (thread-safe).

    The writer (the adapter's main connection) sees its ``PRAGMA data_version`` move only for the
    commits of other connections: ``epoch`` counts the looks that found it moved, so two equal
    epochs mean that only the writer committed in between. ``current`` gives the epoch as of now,
    or ``None`` when it cannot tell without waiting (the writer is in use outside a write
    transaction ``hold`` marked, or is closed); the reader then falls back on its own
    ``data_version``. Another handle's writer on the same file counts as another tool (a read then
    looks again, as before).
    """

    def __init__(
        self,
        lock: threading.RLock,
        writer: Callable[[], sqlite3.Connection | None],
        busy: Callable[[], object],
        path: str | None = None,
    ) -> None:
        """``lock`` guards the connection ``writer()`` gives (``None`` while closed); ``busy()``
        whether a session is open on it (called with ``lock`` held, true when one is); ``path``
        the file (``store_commit`` finds the witness by it)."""
        self._lock, self._writer, self._busy = lock, writer, busy
        if path is not None:
            _register(file_key(path), self)
        self._changed = threading.Condition(threading.Lock())
        #: Bumped by a look that finds the writer's ``data_version`` moved (or a new writer).
        self.epoch = 0
        #: The connection last looked at and its ``data_version`` then.
        self._seen: tuple[sqlite3.Connection, int] | None = None
        #: True while the writer holds SQLite's write lock after a look (``hold``): no commit of
        #: another connection can happen then, so ``epoch`` is current.
        self._held = False
        #: True from the writer's ``COMMIT`` to its look after it (``release``): another
        #: connection may commit as soon as SQLite's write lock is let go.
        self._committing = False

    def _look(self, conn: sqlite3.Connection) -> None:
        """Compare the writer's ``data_version`` with the last look (``_changed`` held)."""
        try:
            data = int(conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:  # the next look counts as a change
            self.epoch += 1
            self._seen = None
            return
        seen = self._seen
        if seen is None or seen[0] is not conn or seen[1] != data:
            self.epoch += 1
            self._seen = (conn, data)

    def current(self) -> int | None:
        """``epoch`` counting every commit of another connection made before this call, or
        ``None`` when that takes waiting for the writer (at most ``COMMIT_WAIT`` seconds for a
        ``COMMIT`` of its to end, or for its lock)."""
        with self._changed:
            if self._held and self._committing:
                done = self._changed.wait_for(lambda: not self._committing, COMMIT_WAIT)
                return self.epoch if done else None  # the look after it came after this call
            if self._held:
                return self.epoch
        # A short wait: the audit writer thread takes the lock for a moment per row (the
        # adapter's ``known_collection``), and a rescan costs far more than the wait.
        if not self._lock.acquire(timeout=COMMIT_WAIT):
            with self._changed:
                return self.epoch if self._held and not self._committing else None
        try:
            conn = self._writer()
            if conn is None or self._busy() or conn.in_transaction:
                return None
            with self._changed:
                self._look(conn)
                return self.epoch
        finally:
            self._lock.release()

    def hold(self, conn: sqlite3.Connection) -> None:
        """Called by the writer ``conn`` inside ``BEGIN IMMEDIATE`` (SQLite's write lock held):
        look, and answer ``current`` without the adapter's lock until ``committing``."""
        with self._changed:
            self._look(conn)
            self._held = True

    def committing(self) -> None:
        """Called by the writer right before its ``COMMIT``: ``current`` waits for ``release``."""
        with self._changed:
            self._committing = True

    def release(self, conn: sqlite3.Connection) -> None:
        """Called by the writer ``conn`` after its ``COMMIT`` or before its ``ROLLBACK``: look
        (a commit of another connection may have followed the writer's at once)."""
        with self._changed:
            if self._held:
                self._look(conn)
            self._held = self._committing = False
            self._changed.notify_all()

    @contextmanager
    def other_commit(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Around the ``COMMIT`` (the ``with`` body) of ``conn``, another connection of this process
        on the file inside ``BEGIN IMMEDIATE`` (it holds SQLite's write lock) that writes no
        collection's table (the handle store's ``_dbh_*`` tables): that commit is not counted as
        another tool's. Nothing is told when the writer is busy or its lock is not free within
        ``COMMIT_WAIT``: the commit then counts as another tool's (a read looks again).

        Sound because a connection's ``data_version`` moves at every commit but its own: the
        writer is looked at while ``conn`` holds the write lock (every earlier commit is counted;
        none can follow until the ``COMMIT``); after it, the writer's ``data_version`` is read
        before ``conn``'s, and if ``conn``'s has not moved since inside its transaction, no
        connection but ``conn`` committed up to that read, so the writer's move was ``conn``'s
        commit alone. Else the epoch is bumped (another's commit may have followed at once). In
        between, ``current`` answers as during the writer's own ``hold`` and ``committing``."""
        if not self._lock.acquire(timeout=COMMIT_WAIT):
            yield
            return
        try:
            writer = self._writer()
            try:
                before = _data_version(conn)
            except sqlite3.Error:
                writer = None
            if writer is None or self._busy() or writer.in_transaction:
                yield
                return
            self.hold(writer)
            self.committing()
            try:
                yield
            except BaseException:
                self.release(writer)
                raise
            with self._changed:
                seen: int | None
                try:
                    seen, after = _data_version(writer), _data_version(conn)
                except sqlite3.Error:
                    seen, after = None, before + 1
                if seen is not None and after == before and self._seen is not None:
                    self._seen = (writer, seen)  # the writer's move was ``conn``'s commit alone
                else:
                    self.epoch += 1
                    self._look(writer)
                self._held = self._committing = False
                self._changed.notify_all()
        finally:
            self._lock.release()


def _data_version(conn: sqlite3.Connection) -> int:
    """``PRAGMA data_version`` of ``conn``: it moves at every commit but ``conn``'s own."""
    return int(conn.execute("PRAGMA data_version").fetchone()[0])


#: The witnesses of each file (``file_key``) an adapter's writer has open; a file whose witnesses
#: are all gone is dropped (``_register``, ``store_commit``), under ``_BY_FILE_LOCK``.
_BY_FILE: dict[str, WeakSet[Witness]] = {}
_BY_FILE_LOCK = threading.Lock()


def file_key(path: str) -> str:
    """``os.path.realpath(path)``, or ``path`` made absolute when a folder on the way changes
    while it is walked (``realpath`` then raises): the file's name in ``_BY_FILE``, for
    ``store_commit``. Walks the path: compute it once per file, not per commit."""
    try:
        return os.path.realpath(path)
    except OSError:
        return os.path.abspath(path)


def _register(key: str, witness: Witness) -> None:
    """Add ``witness`` to the file ``key``'s, dropping the files left without one."""
    with _BY_FILE_LOCK:
        for gone in [name for name, witnesses in _BY_FILE.items() if not witnesses]:
            del _BY_FILE[gone]
        _BY_FILE.setdefault(key, WeakSet()).add(witness)


@contextmanager
def store_commit(file: str, conn: sqlite3.Connection) -> Iterator[None]:
    """Around the ``COMMIT`` of ``conn`` (the handle store's connection on the file whose
    ``file_key`` is ``file``, inside ``BEGIN IMMEDIATE``): each witness of that file is told of it
    (``Witness.other_commit``), so a listing of the default database does not read its
    collection's rows again after every write of the handle store or the audit log. Any error of
    the ``COMMIT`` passes through."""
    with _BY_FILE_LOCK:
        found = _BY_FILE.get(file)
        witnesses = list(found) if found is not None else []
        if found is not None and not witnesses:
            del _BY_FILE[file]
    if not witnesses:
        yield
        return
    with ExitStack() as stack:
        for witness in witnesses:
            stack.enter_context(witness.other_commit(conn))
        yield


#: How long ``Witness.current`` waits for the writer's ``COMMIT`` to end before a read looks at
#: every row again instead: a 100 KB record's commit takes well under it, a large import's more.
COMMIT_WAIT = 0.005

#: The witness of each read connection's file (by its ``Catalog``), and the epoch marked before
#: its current read transaction began (``watch``).
_WITNESSES: WeakKeyDictionary[object, Witness] = WeakKeyDictionary()
_MARKS: WeakKeyDictionary[object, int] = WeakKeyDictionary()
#: How many times ``foreign_rows`` read a table's rows again (``rescans``).
_rescans = 0


def watch(owner: object, witness: Witness | None = None) -> None:
    """Register ``witness`` for the read connection of ``owner`` (its catalog); without one, mark
    the epoch before the connection's next ``BEGIN`` (a look done before the snapshot, so every
    commit of another tool it counts is in that snapshot)."""
    if witness is not None:
        _WITNESSES[owner] = witness
        return
    known = _WITNESSES.get(owner)
    if known is not None:
        _MARKS[owner] = known.epoch


def rescans() -> int:
    """How many times ``foreign_rows`` has read a table's rows again in this process."""
    return _rescans


def _only_writer_committed(owner: object, found: Foreign, state: tuple[int, int, int]) -> bool:
    """Whether ``found`` still holds at ``state`` though ``data_version`` moved: same schema, no
    trigger that may write, and only the writer committed since it was marked (``Witness``)."""
    if found.epoch is None or found.state[1:] != state[1:]:
        return False
    triggers = _TRIGGERS.get(owner)
    witness = _WITNESSES.get(owner)
    if triggers is None or triggers != (state[1], False) or witness is None:
        return False
    return witness.current() == found.epoch


def foreign_rows(conn: sqlite3.Connection, owner: object, table: str) -> Foreign:
    """The rows of ``table`` (quoted) another tool wrote, as ``owner`` (``conn``'s catalog) last
    found them while no other connection has committed since (``PRAGMA data_version``, which
    every commit of any other connection or process changes, and never this connection's own),
    or only the adapter's writer did (``Witness``), nor changed the schema; else found again by
    reading every row once through ``RECORD_FUNCTION``.

    dbhandles writes canonical text only (``orjson.dumps`` of checked values), so its own writes
    keep the answer true: an update of a named row makes it canonical (it is then read exactly
    though it need not be), a new row is canonical. The caller confirms with ``unchanged`` after
    its query, whose snapshot may be newer than ``state``."""
    global _rescans
    state = _state(conn, owner)
    known = _KNOWN.setdefault(owner, {})
    found = known.get(table)
    if found is not None:
        if found.state == state:
            return found
        if _only_writer_committed(owner, found, state):
            found = known[table] = found._replace(state=state)
            return found
    # Marked before this snapshot (``watch``) only for a pooled read connection in a transaction.
    epoch = _MARKS.get(owner) if conn.in_transaction else None
    _rescans += 1
    with budgeted(conn):  # as a query of the session is; RECORD_FUNCTION stops before a long text
        rows = conn.execute(
            f"SELECT rowid, id, {_READ} IS NULL FROM {table} "
            f"WHERE {_READ} IS NOT data LIMIT {MAX_FOREIGN_ROWS + 1}"
        ).fetchall()
        if len(rows) > MAX_FOREIGN_ROWS:
            sql = f"SELECT count(*) FROM {table} WHERE {_READ} IS NULL"
            unreadable = int(conn.execute(sql).fetchone()[0])
    if len(rows) > MAX_FOREIGN_ROWS:
        found = Foreign(state, None, frozenset(), unreadable, epoch)
    else:
        rowids = tuple(int(r[0]) for r in rows)
        ids = frozenset(r[1] for r in rows)
        found = Foreign(state, rowids, ids, sum(r[2] for r in rows), epoch)
    known[table] = found
    return found


def unchanged(conn: sqlite3.Connection, owner: object, found: Foreign) -> bool:
    """Whether no other connection but the adapter's writer committed since ``found`` was taken
    (nor ``conn`` changed rows through a trigger that may write, ``_state``): a query run in
    between read the rows it describes."""
    state = _state(conn, owner)
    return state == found.state or _only_writer_committed(owner, found, state)


#: Bytes of JSON text decoded between two looks at the command's time budget and stop
#: (``decode_all``): a few milliseconds of ``orjson.loads``, so a page of huge records answers
#: ``query_timeout`` at its deadline rather than after decoding all of it.
DECODE_CHECK_BYTES = 1 << 20
#: A selected row's ``data`` (``decode_all``).
_data = itemgetter(1)


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
    ids = foreign.ids if foreign is not None and foreign.rowids is not None else None
    fast, exact = orjson.loads, load_record
    if ids is not None and not ids:
        # No row of the collection was written by another tool (the usual case): one
        # comprehension, when the page's text is too short for a look at the budget (the loop
        # below would make none); anything it cannot read (a NULL, a number, text that is no
        # object) sends the page through the loop, which leaves that row out.
        try:
            if sum(map(len, map(_data, rows))) <= DECODE_CHECK_BYTES:
                return [
                    {"id": i, **fast(d), "createdAt": c, "updatedAt": u, "version": v}
                    for i, d, c, u, v in rows
                ], True
        except (ValueError, TypeError):
            pass
    records: list[Record] = []
    append = records.append
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
            data = f"(CASE WHEN {named} THEN {_READ} ELSE data END)"
            inner = (
                f"SELECT id, {data} AS data, created_at, updated_at, version FROM {table} LIMIT -1"
            )
            return f"(SELECT * FROM ({inner}) WHERE data IS NOT NULL)"
    data = f"(CASE WHEN {SYSTEM_READABLE} THEN {record_source('data', exact=exact)} END)"
    inner = f"SELECT id, {data} AS data, created_at, updated_at, version FROM {table} LIMIT -1"
    return f"(SELECT * FROM ({inner}) WHERE data IS NOT NULL)"


#: The filter compiler over a record read canonically (``sqlite_values.RECORD_FUNCTION``).
EXACT_COMPILER = SqlCompiler(SqliteDialect(f"{_CALL}", record=True))
#: Bounded by bytes, as ``SqliteAdapter.where``'s own (``WHERE_CACHE_BYTES``).
_EXACT_WHERES: ByteCache[str, Fragment] = ByteCache(4 << 20)


def exact_where(node: FilterNode | None) -> Fragment:
    """``node`` compiled by ``EXACT``, remembered as ``SqliteAdapter.where`` remembers its own."""
    key = repr(node)
    found = _EXACT_WHERES.get(key)
    if found is None:
        found = EXACT_COMPILER.where(node)
        _EXACT_WHERES.put(key, found, deep_sizeof((key, found)))
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
    readable = Fragment(f"{_READ} IS NOT NULL")
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
        f"(CASE WHEN {plain('data')} AND {SYSTEM_READABLE} THEN ({where.sql}) "
        f"ELSE ({slow.sql}) END)",
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
