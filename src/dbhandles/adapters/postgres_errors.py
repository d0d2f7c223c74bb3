"""The one place where psycopg exceptions become dbhandles errors (always ``raise ... from exc``).

Server errors are mapped by SQLSTATE (an exact code first, then its two-character class), client-side
errors by their psycopg class. Messages never contain the connection password: the adapter passes it
as ``secret`` and it is masked wherever libpq put it in the text (``_mask``: a password shorter than
four characters only where it stands as a whole token).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import orjson
import psycopg
import psycopg_pool

from dbhandles import budget
from dbhandles.adapters.error_scope import current
from dbhandles.errors import (
    ConstraintViolation,
    DatabaseDenied,
    DatabaseNotFound,
    DbHandlesError,
    InvalidFilter,
    InvalidParams,
    QueryFailed,
    ReadOnly,
    RecordExists,
    StorageBusy,
    StorageError,
)
from dbhandles.values import json_text

__all__ = ["DRIVER_ERRORS", "raised_by_raise", "translate_error", "translating"]

#: Everything the driver, the pool and decoding stored JSON can raise.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (psycopg.Error, orjson.JSONDecodeError)

# Exact SQLSTATEs first: (error class, what to tell the caller).
_BY_STATE: Mapping[str, tuple[type[DbHandlesError], str]] = {
    "23505": (RecordExists, "a record with this id already exists"),
    "25006": (ReadOnly, "PostgreSQL refused a write in a read-only transaction"),
    "2201B": (InvalidFilter, "PostgreSQL cannot run this regular expression"),
    "2201X": (InvalidParams, "invalid row count in a result offset clause"),
    "2201W": (InvalidParams, "invalid row count in a limit clause"),
    "3D000": (DatabaseNotFound, "the PostgreSQL database does not exist; create it first"),
    "3F000": (DatabaseNotFound, 'the schema does not exist; open it with "mode": "create"'),
    "42P01": (
        StorageError,
        "a collection table disappeared while in use (dropped by someone else?)",
    ),
    "42P07": (
        InvalidParams,
        "the name is taken by a table or index that is not a dbhandles collection",
    ),
    # Insufficient privilege, and a row refused by row-level security (the same SQLSTATE): the
    # database's own access rules, not a failure of it.
    "42501": (
        DatabaseDenied,
        "PostgreSQL refused this for the handle's role (a missing privilege, or a row-level "
        "security policy); grant it, change the policy or use another role",
    ),
    "53300": (StorageBusy, "PostgreSQL has no free connection slots; retry, or lower poolSize"),
    "55P03": (StorageBusy, "a row or table is locked by another session; retry later"),
    "57014": (StorageBusy, "the statement was cancelled (statement timeout); retry later"),
    "57P01": (
        StorageError,
        "the PostgreSQL server ended this connection (an administrator, a restart or a failover)",
    ),
    "57P02": (StorageError, "the PostgreSQL server ended this connection (crash recovery)"),
    "57P03": (StorageBusy, "the PostgreSQL server is starting up or in recovery; retry later"),
    "54000": (InvalidParams, "the value exceeds a PostgreSQL limit (too large or too deep)"),
    "54001": (InvalidFilter, "the filter is too complex for PostgreSQL (statement too complex)"),
}
#: Constraint SQLSTATEs, by the ``constraint`` a ``constraint_violation`` names.
_CONSTRAINTS = {"23502": "not_null", "23503": "foreign_key", "23514": "check",
                "23P01": "exclusion"}  # fmt: skip
_EVALUATION = (
    "the database's own SQL{named} (a view, a function, a trigger, a rule, a CHECK constraint, a "
    "default or a generated column) failed while PostgreSQL evaluated it: {message} (SQLSTATE {state}); "
    "change that SQL or the data it meets"
)
#: Evaluation errors of SQL the database carries (``query_failed``, as SQLite's): a view's
#: division by zero, an invalid cast or a value out of range in it (class 22 otherwise stays
#: ``invalid_params``: a value sent that a column cannot take), and a function the schema's SQL
#: calls that does not exist (42883: a CHECK, default or trigger calling a function since dropped).
_EVALUATION_STATES = frozenset({"22012", "22P02", "22003", "22007", "22008", "42883"})
#: The same by class: a function's RAISE (P0), SQL routine (2F), external routine (38, 39), a
#: subquery of a view returning more than one row (21).
_EVALUATION_CLASSES = frozenset({"P0", "2F", "38", "39", "21"})
#: A definition of the database's that cannot be run as written wherever it is met: rules that
#: rewrite a write into itself, a row-level security policy reading its own table (42P17,
#: ``infinite recursion detected in rules for relation "t"``).
_DEFINITION_STATES = frozenset({"42P17"})
#: A value SQL of the database builds past PostgreSQL's limits (``repeat('x', 2e9)`` in a view:
#: ``requested length too large``, SQLSTATE 54000); other 54000 errors are a value sent.
_BUILT_TOO_LARGE = ("requested length too large", "array size exceeds", "string is too long",
                    "total size of jsonb")  # fmt: skip
# Then SQLSTATE classes (the first two characters).
_BY_CLASS: Mapping[str, tuple[type[DbHandlesError], str]] = {
    "08": (StorageError, "cannot reach the PostgreSQL server"),
    "22": (InvalidParams, "PostgreSQL cannot store or compare this value"),
    "23": (InvalidParams, "the write breaks a constraint of the table"),
    "25": (StorageError, "invalid transaction state"),
    "28": (StorageError, "PostgreSQL refused the login; check user and password (or ~/.pgpass)"),
    "40": (
        StorageBusy,
        "the transaction conflicted with a concurrent one (deadlock or serialization); retry",
    ),
    "53": (StorageError, "the PostgreSQL server ran out of a resource (disk, memory)"),
    "57": (StorageError, "the PostgreSQL server stopped the operation"),
    "58": (StorageError, "PostgreSQL had a system error (file or I/O)"),
    "XX": (StorageError, "PostgreSQL reported an internal error"),
}


#: SQLSTATE classes whose messages may quote a value PostgreSQL met (a data exception: ``invalid
#: input syntax for type integer: "..."``; a function's own text: RAISE, SQL and external
#: routines; an internal error), and states whose messages name what a value named (a cast of
#: text to ``regclass``, ``regproc``, ``regtype``, ``regnamespace``: ``relation "..." does not
#: exist``). On a restricted handle their text is never quoted, whatever raised them.
_QUOTING_CLASSES = frozenset({"22", "2F", "38", "39", "P0", "XX"})
_QUOTING_STATES = frozenset({"42P01", "42883", "42704", "42703", "3F000"})
#: The ``diag`` fields naming the object an error is about (names of the schema, never values).
_OBJECT_FIELDS = (("table_name", "table"), ("column_name", "column"),
                  ("datatype_name", "type"), ("constraint_name", "constraint"))  # fmt: skip


def _hidden(diag: object, state: str) -> str:
    """What a restricted handle is told instead of a message that may quote values
    (``_QUOTING_CLASSES``): that it is not shown, and the object the error names (``column n of
    table t``, ``type pos``, ``constraint c``), from the error's fields."""
    named = [
        f"{word} {json_text(value, 80)}"
        for field, word in _OBJECT_FIELDS
        if isinstance(value := getattr(diag, field, None), str) and value
    ]
    about = "; ".join([f"SQLSTATE {state}", *named])
    return (
        f"PostgreSQL's text is not shown ({about}): it may quote values of rows or tables this "
        "handle may not read"
    )


def _from_raise(diag: object) -> bool:
    """Whether a PL/pgSQL ``RAISE`` or ``ASSERT`` itself raised an error, by the server's
    ``source_function`` (``exec_stmt_raise``, ``exec_stmt_assert``): an error met while
    evaluating the statement's arguments (a relation that does not exist, 42P01) has the same
    CONTEXT line, ``... at RAISE``, and is PostgreSQL's. Without the field, the CONTEXT decides."""
    source = getattr(diag, "source_function", None)
    return not source or source in ("exec_stmt_raise", "exec_stmt_assert")


#: A password shorter than this is masked only where it stands as a whole token.
_SHORT_SECRET = 4


def _mask(text: str, secret: str | None) -> str:
    """``text`` with the password ``secret`` replaced by ``***`` wherever it stands as a whole
    token (not inside a longer word: password ``x`` leaves ``does not exist`` as it is). A
    password of at least ``_SHORT_SECRET`` characters is masked inside words too (libpq may quote
    it glued to other text); a shorter one would mangle ordinary words and reveals little."""
    if not secret:
        return text
    if len(secret) >= _SHORT_SECRET:
        return text.replace(secret, "***")
    return re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", "***", text)


#: libpq's words when a connection cannot be made at all (as opposed to one lost while in use).
_CONNECTING = re.compile(
    r"connection (to server .* failed|failed|refused)|could not (connect|translate host)"
    r"|timeout expired|no such file or directory|name or service not known",
    re.IGNORECASE,
)


def _raised_by_code(diag: object, context: str) -> bool:
    """Whether an error with CONTEXT ``context`` was raised by the database's own code (a
    function's RAISE, or a statement it ran), whatever SQLSTATE it claims: ``RAISE ... USING
    ERRCODE = '57P01'`` is no server shutting down. A real end of the connection or of the
    server is FATAL or PANIC (a RAISE cannot be); statement_timeout and dbhandles' own cancels
    are told apart before (``translate_error``)."""
    severity = getattr(diag, "severity_nonlocalized", None) or getattr(diag, "severity", None)
    if severity in ("FATAL", "PANIC"):
        return False
    return "function" in context


def raised_by_raise(context: str) -> bool:
    """Whether an error's CONTEXT says a PL/pgSQL ``RAISE`` statement raised it: its first line
    (the innermost frame) ends ``at RAISE`` (``PL/pgSQL function f() line 3 at RAISE``). Such an
    error is the function's own, whatever SQLSTATE it claims; PostgreSQL's own errors inside a
    function name another statement there (``at SQL statement``, ``at assignment``)."""
    first = context.strip().splitlines()[0] if context.strip() else ""
    return first.rstrip().endswith(" at RAISE")


#: The innermost frame of a CONTEXT whose statement is a PL/pgSQL ``RAISE`` or ``ASSERT``: the
#: function's signature (``PL/pgSQL function s.wipe(integer) line 5 at RAISE``).
_RAISER = re.compile(r"function (?P<f>.+?\))(?: line \d+)? at (?:RAISE|ASSERT)\s*$")


def _raiser(context: str) -> str | None:
    """The function whose ``RAISE`` or ``ASSERT`` raised an error of CONTEXT ``context``
    (``s.wipe(integer)``), or ``None`` when its innermost frame is no such statement."""
    first = context.strip().splitlines()[0] if context.strip() else ""
    found = _RAISER.search(first)
    return None if found is None else found.group("f")


#: A frame of a CONTEXT inside a function's body (``PL/pgSQL function s.f(integer) line 3 at
#: assignment``, ``SQL function "f" statement 1``).
_FRAME = re.compile(r"^(?:PL/pgSQL|SQL) function (?P<f>\S+?\)|\S+)")


def _function_frame(context: str) -> str | None:
    """The innermost function whose body raised an error of CONTEXT ``context`` (a frame ``SQL
    expression "..."`` of its statement may come first), or ``None`` when the error was raised
    outside any function body."""
    for line in context.strip().splitlines():
        found = _FRAME.search(line.strip())
        if found is not None:
            return found.group("f").strip('"')
    return None


def raised_words(context: str) -> str:
    """What ``query_failed`` says of an error a function's ``RAISE`` or ``ASSERT`` raised (CONTEXT
    ``context``): the function, never the text it raised (it may quote any data the function
    read): ``function s.wipe(integer) raised an error (its text is not shown)``."""
    function = _raiser(context)
    who = f"function {json_text(function, 200)}" if function else "a function"
    return f"{who} raised an error with RAISE or ASSERT (its text is not shown: it may quote data)"


def translate_error(
    exc: BaseException,
    *,
    where: str | None = None,
    collection: str | None = None,
    record_id: str | None = None,
    secret: str | None = None,
) -> DbHandlesError:
    """The dbhandles error for a driver exception; the context only improves the message.

    Args:
        exc: what the driver raised.
        where: the server (``host:port/dbname``, never the password) named in connection errors.
        collection: the collection being worked on.
        record_id: the record being written (names the id in ``record_exists``).
        secret: the connection password, masked wherever it appears.
    """
    if isinstance(exc, DbHandlesError):
        return exc
    message = _mask(str(exc).strip() or type(exc).__name__, secret)
    server = f" at {where}" if where else ""
    if isinstance(exc, orjson.JSONDecodeError):
        return StorageError(
            f"a stored record in {json_text(collection, 80)} is not valid JSON ({message})"
        )
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StorageBusy(
            f"no PostgreSQL connection became free in time{server}; retry, or raise poolSize ({message})"
        )
    if isinstance(exc, psycopg_pool.PoolClosed):
        return StorageError(f"the PostgreSQL connection pool{server} is closed ({message})")
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str) and state:
        diag = getattr(exc, "diag", None)
        context = getattr(diag, "context", None)
        primary = _mask(getattr(diag, "message_primary", None) or message, secret)
        scope = current()
        if scope.restricted and (state[:2] in _QUOTING_CLASSES or state in _QUOTING_STATES):
            # A policy, a view, a default, a check or a function may have met a row or a table
            # this handle may not read; the message may quote it (docs/security.md).
            message = primary = _hidden(diag, state)
        elif context:
            # Raised inside the database's own code: its CONTEXT quotes the statements and the
            # function (their schema, their SQL, the values they met); the message names none.
            message = primary
        if state == "57014" and "statement timeout" in message:
            return budget.exceeded()  # the command's time budget (dbhandles.budget)
        if state == "57014" and budget.stop_error() is not None:
            return budget.interruption()  # a cancel or a shutdown (postgres_cancel.py)
        raising = raised_by_raise(context or "") or _raiser(context or "") is not None
        if context and raising and _from_raise(diag):
            # ``RAISE ... USING ERRCODE = '23505'`` (or '25006', '42501', a constraint's) in a
            # function is that function's message, not the database refusing anything (a real
            # timeout or cancel met while a RAISE ran is told apart above). Its text is the
            # function's own and may quote any data it read (``RAISE 'leak %', (SELECT ...)``):
            # not shown; the function and the SQLSTATE are.
            named = f" for {json_text(collection, 80)}" if collection else ""
            raised = raised_words(context)
            return QueryFailed(_EVALUATION.format(named=named, message=raised, state=state))
        inside = _function_frame(context or "")
        if inside is not None and state[:2] == "22":
            # A value a function met (``(SELECT s FROM secret)::integer`` in its body): the
            # message quotes it (``invalid input syntax for type integer: "..."``), and it may be
            # any data the function read. The function and the SQLSTATE are said, not the text.
            named = f" for {json_text(collection, 80)}" if collection else ""
            words = (
                f"function {json_text(inside, 200)} met a value PostgreSQL cannot take (its "
                "text is not shown: it may quote data)"
            )
            return QueryFailed(_EVALUATION.format(named=named, message=words, state=state))
        if state == "23505" and record_id is not None:
            return RecordExists(
                f"a record with id {json_text(record_id, 80)} already exists in {json_text(collection, 80)}"
            )
        if state == "23505":
            return RecordExists(
                f"a record id already exists in {json_text(collection, 80)} (or repeats within the batch): {message}"
            )
        kind = _CONSTRAINTS.get(state)
        if kind is not None and scope.reading:
            # A read writes nothing: a domain's CHECK failed in a cast a policy or a view makes.
            named = f" for {json_text(collection, 80)}" if collection else ""
            what = _hidden(diag, state) if scope.restricted else primary
            words = f"a {kind.replace('_', ' ')} constraint failed on a read ({what})"
            return QueryFailed(_EVALUATION.format(named=named, message=words, state=state))
        if kind is not None:
            # One the statement did not meet (a foreign-table write names those itself): a
            # DEFERRABLE constraint checked at COMMIT. The server's primary message only: its
            # DETAIL quotes key values.
            name = getattr(diag, "constraint_name", None)
            return ConstraintViolation(
                f"the transaction would break a constraint ({primary or kind}); nothing was written",
                details={"constraint": kind, **({"name": name} if name else {})},
            )
        if scope.restricted and state in _QUOTING_STATES:
            # ``'...'::regclass`` in a view or a policy: no collection disappeared; the object
            # it names may be a value (a class-22 error goes on: a value sent stays the caller's).
            named = f" for {json_text(collection, 80)}" if collection else ""
            return QueryFailed(_EVALUATION.format(named=named, message=primary, state=state))
        built = state == "54000" and any(w in message.lower() for w in _BUILT_TOO_LARGE)
        if state in _EVALUATION_STATES or state[:2] in _EVALUATION_CLASSES or built:
            named = f" for {json_text(collection, 80)}" if collection else ""
            # The server's primary message only: its CONTEXT names the function's schema and line.
            return QueryFailed(
                _EVALUATION.format(named=named, message=_mask(primary, secret), state=state)
            )
        found = _BY_STATE.get(state) or _BY_CLASS.get(state[:2])
        # Raised inside SQL of the database's own (the error's CONTEXT names the function, as
        # ``SQL function "f" statement 1`` or ``PL/pgSQL function f() line 3``): a table it names
        # that is not on its search path, a column or a statement it cannot run is a fault of
        # that SQL, not of the storage, and not a collection that disappeared (that is 42P01 of
        # dbhandles' own statement, which has no CONTEXT); so is a RAISE claiming a server's,
        # a connection's or a lock's SQLSTATE (``_raised_by_code``).
        storage = found is None or found[0] in (StorageError, StorageBusy)
        if state in _DEFINITION_STATES or (context and storage and _raised_by_code(diag, context)):
            named = f" for {json_text(collection, 80)}" if collection else ""
            return QueryFailed(
                _EVALUATION.format(named=named, message=_mask(primary, secret), state=state)
            )
        if found is not None:
            cls, hint = found
            return cls(f"{hint}{server if cls is not InvalidParams else ''}: {message}")
        return StorageError(f"postgres{server}: {message} (SQLSTATE {state})")
    if isinstance(exc, psycopg.DataError | psycopg.ProgrammingError) and "NUL" in message:
        return InvalidParams(f"PostgreSQL text cannot contain NUL (U+0000) characters ({message})")
    if isinstance(exc, psycopg.DataError):
        return InvalidParams(f"PostgreSQL cannot take this value: {message}")
    if isinstance(exc, psycopg.OperationalError):
        if _CONNECTING.search(message):
            return StorageError(f"cannot reach the PostgreSQL server{server}: {message}")
        # The server was reached, and the connection then went away under a statement.
        return StorageError(f"the connection to the PostgreSQL server{server} was lost: {message}")
    if isinstance(exc, psycopg.InterfaceError):
        return StorageError(f"the PostgreSQL connection{server} is unusable: {message}")
    return StorageError(f"postgres{server}: {message}")


@contextmanager
def translating(
    *,
    where: str | None = None,
    collection: str | None = None,
    record_id: str | None = None,
    secret: str | None = None,
) -> Iterator[None]:
    """Run a block, re-raising driver exceptions as dbhandles errors chained to the original."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise translate_error(
            exc, where=where, collection=collection, record_id=record_id, secret=secret
        ) from exc
