"""The one place where ``sqlite3`` exceptions become dbhandles errors (always ``raise ... from exc``).

What SQLite says is told apart by kind, not by where it surfaced: ``storage_error`` (500) is kept for
the disk, the I/O and a file that is truly corrupt (``SQLITE_CORRUPT``, a schema SQLite cannot
parse). An error raised while SQLite *evaluates* SQL the file carries (a view, a CHECK constraint, a
generated column, a default, a trigger's ``RAISE``) is the database's content: ``query_failed``
(409), naming the collection. SQL the file carries that calls what dbhandles does not run (a
non-innocuous function under ``trusted_schema=OFF``, ``load_extension``) is ``access_denied``, as
the guard's refusals (docs/security.md §8).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from types import TracebackType

import orjson

from dbhandles import budget
from dbhandles.adapters import sqlite_guard
from dbhandles.adapters.sqlite_guard import SQLITE_AUTH
from dbhandles.adapters.sqlite_pages import sqlite_heap_error
from dbhandles.adapters.sqlite_vtables import dequote, tokens
from dbhandles.dbfiles import MAX_VALUE_BYTES
from dbhandles.errors import (
    AccessDenied,
    ConstraintViolation,
    DbHandlesError,
    InvalidFilter,
    InvalidParams,
    NotADatabase,
    QueryFailed,
    ReadOnly,
    RecordExists,
    StorageBusy,
    StorageError,
)
from dbhandles.values import json_text

__all__ = ["DRIVER_ERRORS", "constraint_failure", "translate_error", "translating"]

#: Everything the driver (and binding values to it) can raise; ``sqlite3.Warning`` is not an Error.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    sqlite3.Warning,
    MemoryError,  # SQLITE_NOMEM: past the process's bound on SQLite's memory (sqlite_pages.py)
    OverflowError,
    UnicodeEncodeError,
    orjson.JSONDecodeError,
)

# Primary result codes (the low byte of the extended code that Python 3.11 exposes).
_SQLITE_CORRUPT = 11
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
#: A hot journal that a read-only connection cannot roll back (SQLITE_READONLY_ROLLBACK).
_SQLITE_READONLY_ROLLBACK = 776
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26
_SQLITE_INTERRUPT = 9
_SQLITE_TOOBIG = 18
#: A trigger's ``RAISE(ABORT | FAIL | ROLLBACK, message)`` (SQLITE_CONSTRAINT_TRIGGER).
_SQLITE_CONSTRAINT_TRIGGER = 1811

#: What SQLite says when evaluating an expression fails (JSON functions, arithmetic, casts): the
#: database's own SQL met its own data, nothing storage-level (``SQLITE_ERROR``).
_EVALUATION = ("malformed json", "integer overflow", "json cannot hold blob values",
               "bad json path", "json path error", "too many levels of nesting",
               "json_", "sub-type", "subtype")  # fmt: skip
#: A non-innocuous function in SQL of an untrusted schema: ``[malformed database schema (X) - ]
#: unsafe use of f()``.
_UNSAFE = re.compile(
    r"(?:malformed database schema \((?P<object>.*)\) - )?unsafe use of (?P<f>[^ ]+\(\))"
)
#: A function SQL the schema carries calls (a CHECK, a default, a generated column, an index's
#: expression or ``WHERE``) that this connection does not define: SQLite resolves those at run time.
_UNKNOWN_FUNCTION = re.compile(r"unknown function: (?P<f>\S+\(\))")
#: A result column that is an expression dbhandles wrote (a view's id), not a column's name.
_INTERNAL_COLUMN = re.compile(r"^\(|json_array\(|dbh_", re.S)
#: Python's sqlite3 decoding a TEXT value that is not UTF-8.
_NOT_UTF8 = re.compile(r"could not decode to utf-8 column '(?P<column>.*)' with text", re.I | re.S)


#: SQLite's words when SQL the database carries (a view, a trigger, a foreign key, an FTS table's
#: ``content=``) cannot be run as written (``SQLITE_ERROR``): the schema's own fault, never the
#: caller's and never the storage's. ``SQL logic error`` is SQLite's text for a bare SQLITE_ERROR
#: (an fts4 table that is its own content table).
_SCHEMA_SQL = ("no such column", "no such function", "no such collation sequence",
               "ambiguous column name", "misuse of aggregate", "misuse of window function",
               "wrong number of arguments to function", "parser stack overflow",
               "too many levels of trigger recursion", "circularly defined",
               "recursively defined", "foreign key mismatch", "row value misused",
               "because it is a view", "may not be modified", "sql logic error")  # fmt: skip
#: ``no such table: main.t`` (a trigger's or a foreign key's reference is schema-qualified).
_NO_SUCH_TABLE = re.compile(r"no such table: (?:main\.)?(?P<table>.*)$", re.S)


def _column_in_id(expression: str, shown: str) -> str | None:
    """The column whose text is not UTF-8, from the error of an id dbhandles builds as
    ``json_array("a", "b") ...`` (a view's, a compound key's): ``shown`` is the rest of Python's
    message, `` '<the id's text>'``, its bad bytes shown as U+FFFD. ``None`` unless exactly one
    of the array's values holds one (a value may hold a real U+FFFD)."""
    parts = tokens(expression)
    start = next(
        (i for i, t in enumerate(parts) if t[0] == "word" and t[1].lower() == "json_array"), None
    )
    if start is None or start + 1 >= len(parts) or parts[start + 1][1] != "(":
        return None
    names: list[str] = []
    for kind, text, _, _ in parts[start + 2 :]:
        if kind == "punct" and text == ")":
            break
        if kind in ("id", "word"):
            names.append(dequote(text))
        elif kind != "punct" or text != ",":
            return None  # not a plain list of columns
    text = shown.strip()
    text = text[1 : text.rfind("]") + 1] if text.startswith("'") else ""
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(values, list) or len(values) != len(names):
        return None
    found = [n for n, v in zip(names, values, strict=True) if isinstance(v, str) and "\ufffd" in v]
    return found[0] if len(found) == 1 else None


def _within(collection: str | None) -> str:
    return f" for {json_text(collection, 80)}" if collection else ""


def _of_collection(collection: str | None) -> str:
    return f" of {json_text(collection, 80)}" if collection else ""


def _content_error(
    message: str, low: str, code: int | None, collection: str | None
) -> DbHandlesError | None:
    """The error for what the database's own SQL or values did (``None``: not such a failure)."""
    unsafe = _UNSAFE.search(message)
    if unsafe is not None:
        function, owner = unsafe.group("f"), unsafe.group("object")
        where = (
            f"the table or view {json_text(owner, 80)} of this database uses {function} in its "
            "schema (a CHECK constraint, a default, a generated column or an index)"
            if owner is not None
            else f"SQL this database carries{_within(collection)} (a view, a trigger, an index or "
            f"a default) uses {function}"
        )
        return AccessDenied(
            f"{where}, which SQLite {sqlite3.sqlite_version} runs only in a schema it trusts; "
            "dbhandles runs a database's own SQL with no more than trusted_schema=OFF allows "
            "(docs/security.md), so nothing was read or written. Drop or change what calls it "
            "(SQLite releases that mark JSON functions innocuous run those)"
        )
    unknown = _UNKNOWN_FUNCTION.search(message)
    if unknown is not None:
        return QueryFailed(
            f"the schema of the table{_of_collection(collection)} (a CHECK constraint, a default, "
            f"a generated column, an index's expression or a partial index's WHERE) calls "
            f"{unknown.group('f')}, a function SQLite {sqlite3.sqlite_version} does not have here "
            "(an extension's or an application's); nothing was read or written. Drop or change "
            "what calls it"
        )
    if low == "not authorized":  # load_extension() with extension loading off (the only one)
        return AccessDenied(
            f"SQL this database carries{_within(collection)} (a CHECK constraint, a default, a "
            "generated column or a trigger) calls a function SQLite refused (load_extension(), "
            "which dbhandles never enables); nothing was read or written"
        )
    undecodable = _NOT_UTF8.search(message)
    if undecodable is not None:
        name = undecodable.group("column")
        of = f" of {json_text(collection, 80)}" if collection else ""
        if _INTERNAL_COLUMN.search(name):
            name = _column_in_id(name, message[undecodable.end() :]) or ""
        if not name:
            # The id dbhandles builds for a view (a JSON array of every column) and more than one
            # of its values may hold the bad bytes: name the view and let it find the column.
            which, hexed = f"a column{of}", "hex() of that column"
        else:
            column = json_text(name, 80)
            which, hexed = f"the column {column}{of}", f"hex({column})"
        return QueryFailed(
            f"{which} holds text that is not valid UTF-8, which has no JSON form (values are read "
            "back exactly or not at all); store it as a BLOB (served as base64), or read it "
            f"through a view that selects {hexed}"
        )
    if code == _SQLITE_CONSTRAINT_TRIGGER:
        return QueryFailed(
            f"a trigger of this database refused the write{_within(collection)} ({message}); "
            "nothing was written"
        )
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == _SQLITE_TOOBIG:
        return QueryFailed(
            f"a value{_within(collection)} grew past the {MAX_VALUE_BYTES >> 20} MiB SQLite may "
            "build or store here (a view, a default or a trigger of this database computing a "
            f"huge string or blob, or a value written): {message}; nothing was written"
        )
    if primary == 1 and any(e in low for e in _EVALUATION):
        return QueryFailed(
            f"SQL this database carries{_within(collection)} (a view, a CHECK constraint, a "
            f"default or a generated column) failed while SQLite evaluated it: {message}; change "
            "the database's SQL or the data it meets (nothing was written)"
        )
    return None


#: SQLite's constraint messages: ``NOT NULL constraint failed: t.c``, ``UNIQUE constraint failed:
#: t.a, t.b``, ``CHECK constraint failed: <name or expression>``, ``FOREIGN KEY constraint failed``.
_CONSTRAINTS = {"not null": "not_null", "unique": "unique", "check": "check",
                "foreign key": "foreign_key"}  # fmt: skip


def constraint_failure(exc: sqlite3.IntegrityError) -> tuple[str, list[str], str] | None:
    """``(constraint, columns, detail)`` of a constraint SQLite refused, from its message: the kind
    (``not_null``, ``unique``, ``check``, ``foreign_key``), the columns it names (without their
    table) and the rest of the message (a CHECK's name or expression); ``None`` for other errors."""
    message = str(exc)
    head, _, rest = message.partition(" constraint failed")
    kind = _CONSTRAINTS.get(head.strip().lower())
    if kind is None:
        return None
    rest = rest.removeprefix(":").strip()
    columns = []
    if kind in ("not_null", "unique"):
        columns = [part.strip().rpartition(".")[2] for part in rest.split(",") if part.strip()]
    return kind, columns, rest


def _schema_sql_error(message: str, low: str, collection: str | None) -> QueryFailed | None:
    """``query_failed`` for SQL the database carries that SQLite cannot run as written (a trigger
    updating a table that does not exist, a foreign key to a missing table, FTS tables whose
    ``content=`` read each other, a view over a dropped column); ``None`` for anything else.

    A missing table is the schema's fault only when it is not the collection itself (dbhandles'
    own missing collection, dropped by another process meanwhile, keeps its own answer)."""
    missing = _NO_SUCH_TABLE.search(message)
    if missing is not None:
        table = missing.group("table")
        if collection is not None and table.lower() == collection.lower():
            return None
    elif not any(words in low for words in _SCHEMA_SQL):
        return None
    return QueryFailed(
        f"SQL this database carries{_within(collection)} (a view, a trigger, a foreign key or a "
        f"full-text table's content table) cannot be run as written: {message}; change the "
        "database's schema (nothing was read or written)"
    )


def translate_error(
    exc: BaseException,
    *,
    path: str | None = None,
    collection: str | None = None,
    record_id: str | None = None,
    foreign: Callable[[str], object] | None = None,
) -> DbHandlesError:
    """The dbhandles error for a driver exception; the context only improves the message
    (``foreign``: the session's reader of a table dbhandles did not create, by name, so that a
    memory refusal says whether it read a view, a table or a collection)."""
    if isinstance(exc, DbHandlesError):
        return exc
    if isinstance(exc, MemoryError):
        return sqlite_heap_error(collection, foreign)
    if isinstance(exc, OverflowError):
        return InvalidFilter(f"a number is outside the 64-bit integer range SQLite stores ({exc})")
    if isinstance(exc, UnicodeEncodeError):
        return InvalidParams(f"text is not valid Unicode and cannot be stored ({exc.reason})")
    if isinstance(exc, orjson.JSONDecodeError):
        return StorageError(
            f"a stored record in {json_text(collection, 80)} is not valid JSON ({exc})"
        )
    message = str(exc)
    low = message.lower()
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    where = f" ({path})" if path else ""
    if primary == SQLITE_AUTH:  # the guard refused SQL a view or trigger carries
        return sqlite_guard.denied(message)
    if primary == _SQLITE_INTERRUPT:  # only the progress handler interrupts (a budget, a stop)
        return budget.interruption()
    if "user-defined function raised" in low and (budget.expired() or budget.interrupt_requested()):
        # regexp stopped a match that could not finish (regex._afford), or a record function a
        # long text once the command ran out of time or was stopped (sqlite_values._canonical)
        return budget.interruption()
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "is locked" in low or "busy" in low:
        return StorageBusy(
            f"the database{where} is locked by another writer; retry later, or open it with a "
            f"longer busyTimeout ({message})"
        )
    if code == _SQLITE_READONLY_ROLLBACK:
        return ReadOnly(
            f"the database{where} has an unfinished transaction, left by a writer that was killed "
            "(its -journal file); a read-only connection cannot roll it back. Open it once with "
            "mode readwrite (or re-run the interrupted import), then read-only works"
        )
    if primary == _SQLITE_READONLY or "readonly database" in low or "read-only" in low:
        return ReadOnly(f"the database{where} is read-only here: {message}")
    if isinstance(exc, sqlite3.IntegrityError) and "foreign key constraint failed" in low:
        # A deferred foreign key, checked at COMMIT (immediate ones are named by the writer).
        return ConstraintViolation(
            f"the transaction would break a FOREIGN KEY constraint{where}; nothing was written",
            details={"constraint": "foreign_key"},
        )
    if isinstance(exc, sqlite3.IntegrityError) and "unique constraint failed" in low:
        if record_id is not None:
            return RecordExists(
                f"a record with id {json_text(record_id, 80)} already exists in {json_text(collection, 80)}"
            )
        return RecordExists(
            f"a record id already exists in {json_text(collection, 80)} (or repeats within the batch): {message}"
        )
    content = _content_error(message, low, code, collection)
    if content is not None:
        return content
    if (
        primary == _SQLITE_CORRUPT
        or "disk image is malformed" in low
        or "malformed database" in low
    ):
        return StorageError(f"the database{where} is corrupt: {message}")
    if primary == _SQLITE_NOTADB or "not a database" in low or type(exc) is sqlite3.DatabaseError:
        return NotADatabase(
            f"{json_text(path) if path else 'the file'} is not an SQLite database ({message})"
        )
    if "too many sql variables" in low or "too many terms" in low:
        return InvalidFilter(f"the filter has too many values for SQLite ({message})")
    if "expression tree is too large" in low:
        return InvalidFilter(
            f"the filter nests too deeply for SQLite ({message}); split it into several queries"
        )
    refusal = sqlite_guard.schema_refusal(message, collection)
    if refusal is not None:  # SQLite's own refusal of a view's reads (trusted_schema=OFF)
        return refusal
    if primary == 1:
        schema = _schema_sql_error(message, low, collection)
        if schema is not None:
            return schema
    if primary == _SQLITE_FULL:
        return StorageError(f"the disk holding the database{where} is full: {message}")
    if primary == _SQLITE_CANTOPEN:
        return StorageError(f"cannot open the database file{where}: {message}")
    return StorageError(f"sqlite: {message}")


class translating:
    """A ``with`` block that re-raises driver exceptions as dbhandles errors chained to the original.

    A class rather than a ``@contextmanager`` generator: it wraps every statement, including each
    ``data/read``, and costs a third as much.
    """

    __slots__ = ("collection", "foreign", "path", "record_id")

    def __init__(
        self,
        *,
        path: str | None = None,
        collection: str | None = None,
        record_id: str | None = None,
        foreign: Callable[[str], object] | None = None,
    ) -> None:
        self.path, self.collection, self.record_id = path, collection, record_id
        self.foreign = foreign

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None and issubclass(exc_type, DRIVER_ERRORS):
            assert exc is not None
            raise translate_error(
                exc,
                path=self.path,
                collection=self.collection,
                record_id=self.record_id,
                foreign=self.foreign,
            ) from exc
