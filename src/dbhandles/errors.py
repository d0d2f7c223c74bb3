"""The one exception tree of dbhandles; every class carries a stable ``code`` and an ``http_status``.

::

    DbHandlesError                      (internal_error, 500)
    ├── InvalidParams                   (invalid_params, 400)
    │   ├── UnknownCommand              (unknown_command, 404)
    │   ├── UnknownAdapter              (unknown_adapter, 400)
    │   ├── InvalidConfig               (invalid_config, 400)
    │   ├── InvalidFilter               (invalid_filter, 400)
    │   └── PayloadTooLarge             (payload_too_large, 413)
    ├── NotFound                        (not_found, 404)
    │   ├── HandleNotFound              (handle_not_found, 404)
    │   ├── RecordNotFound              (record_not_found, 404)
    │   ├── CursorNotFound              (cursor_not_found, 404)
    │   ├── JobNotFound                 (job_not_found, 404)
    │   └── DatabaseNotFound            (database_not_found, 404)
    ├── NotADatabase                    (not_a_database, 400)
    ├── DefaultHandleProtected          (default_handle_protected, 409)
    ├── ReadOnly                        (read_only, 409)
    ├── Conflict                        (conflict, 409)
    │   ├── FileExists                  (file_exists, 409)
    │   ├── RecordExists                (record_exists, 409)
    │   └── ConstraintViolation         (constraint_violation, 409)
    ├── ValidationFailed                (validation_failed, 422)
    ├── NotSupported                    (not_supported, 409)
    ├── QueryFailed                     (query_failed, 409)
    ├── DriverMissing                   (driver_missing, 501)
    ├── Unauthorized                    (unauthorized, 401)
    ├── Forbidden                       (forbidden, 403)
    │   ├── PermissionDenied            (permission_denied, 403)
    │   ├── AccessDenied                (access_denied, 403)
    │   ├── DatabaseDenied              (database_denied, 403)
    │   ├── PathNotAllowed              (path_not_allowed, 403)
    │   ├── ServerNotAllowed            (server_not_allowed, 403)
    │   ├── QuotaExceeded               (quota_exceeded, 403)
    │   └── SessionMismatch             (session_mismatch, 403)
    ├── TooManyRequests                 (too_many_requests, 429)
    ├── RequestTimeout                  (request_timeout, 408)
    ├── JobCancelled                    (job_cancelled, 409)
    ├── ServerUnreachable               (server_unreachable, 503)
    ├── StorageBusy                     (storage_busy, 503)
    ├── QueryTimeout                    (query_timeout, 504)
    ├── StorageError                    (storage_error, 500)
    │   └── StateTooNew                 (state_too_new, 500)
    └── Interrupted                     (interrupted, 500)

Codes are public API: they are documented in ``docs/errors.md`` and a test checks that every class has
a unique code and a row there. Driver exceptions never escape an adapter: they are translated at the
adapter boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccessDenied",
    "Conflict",
    "ConstraintViolation",
    "CursorNotFound",
    "DatabaseDenied",
    "DatabaseNotFound",
    "DbHandlesError",
    "DefaultHandleProtected",
    "DriverMissing",
    "FileExists",
    "Forbidden",
    "HandleNotFound",
    "Interrupted",
    "InvalidConfig",
    "InvalidFilter",
    "InvalidParams",
    "JobCancelled",
    "JobNotFound",
    "NotADatabase",
    "NotFound",
    "NotSupported",
    "PathNotAllowed",
    "PayloadTooLarge",
    "PermissionDenied",
    "QueryFailed",
    "QueryTimeout",
    "QuotaExceeded",
    "ReadOnly",
    "RecordExists",
    "RecordNotFound",
    "RequestTimeout",
    "ServerNotAllowed",
    "ServerUnreachable",
    "SessionMismatch",
    "StateTooNew",
    "StorageBusy",
    "StorageError",
    "TooManyRequests",
    "Unauthorized",
    "UnknownAdapter",
    "UnknownCommand",
    "ValidationFailed",
    "error_class_for_code",
]


#: How a message ends when a failed write left nothing behind (``DbHandlesError.restate``).
UNDONE = ("nothing was written", "nothing of this batch was written", "nothing was applied")


class DbHandlesError(Exception):
    """Base of every error dbhandles raises; an unexpected failure inside dbhandles itself."""

    code = "internal_error"
    http_status = 500

    def __init__(
        self, message: str, *, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        #: Extra fields of the failure envelope (camelCase), e.g. what a failed import kept.
        self.details: dict[str, Any] = dict(details) if details else {}

    def __str__(self) -> str:
        return self.message

    def restate(self, prefix: str, undone: str) -> None:
        """Put ``prefix`` (where it happened: ``"operations[2] (create): "``) before the message
        and end it with ``undone`` (what was left unwritten), said once: an ending in ``UNDONE``
        that an inner write already gave is replaced, not repeated."""
        message = self.message
        while (end := next((u for u in UNDONE if message.endswith(f"; {u}")), None)) is not None:
            message = message[: -len(end) - 2]
        self.message = f"{prefix}{message}; {undone}"
        self.args = (self.message,)


class InvalidParams(DbHandlesError):
    """A command's parameters are missing, mistyped or out of range; ``field`` names the culprit."""

    code = "invalid_params"
    http_status = 400


class UnknownCommand(InvalidParams):
    """The command name is not in the command table."""

    code = "unknown_command"
    http_status = 404


class UnknownAdapter(InvalidParams):
    """``data/open`` named an adapter that is neither built in nor registered by an entry point."""

    code = "unknown_adapter"


class InvalidConfig(InvalidParams):
    """An adapter's ``config`` is missing a key, has an unknown key or a value of the wrong type; or
    the service's home folder cannot be one (a regular file, a folder this user may not use)."""

    code = "invalid_config"


class InvalidFilter(InvalidParams):
    """A filter or ``orderBy`` uses an unknown operator, a malformed field path or a wrong value type."""

    code = "invalid_filter"


class PayloadTooLarge(InvalidParams):
    """A request body is larger than the server accepts."""

    code = "payload_too_large"
    http_status = 413


class NotFound(DbHandlesError):
    """Something that was named does not exist."""

    code = "not_found"
    http_status = 404


class HandleNotFound(NotFound):
    """A ``dbHandle`` (or alias) is unknown, closed, or belonged to a process that has ended (or,
    for a non-admin actor, is another actor's handle on a database not shared with it)."""

    code = "handle_not_found"

    @classmethod
    def unknown(cls, shown: str) -> HandleNotFound:
        """The one answer for a name that reaches no handle the caller may know of; ``shown`` is
        the name as a message quotes it (``values.json_text``: this layer is below it)."""
        return cls(
            f"dbHandle: no open database has the handle or alias {shown} (it may have been "
            "closed); run data/list-handles to see open handles, or data/open to open one",
            field="dbHandle",
        )


class RecordNotFound(NotFound):
    """``data/update`` (or a batch operation) named a record id that the collection does not hold."""

    code = "record_not_found"


class CursorNotFound(NotFound):
    """A ``queryHandle`` is unknown, expired, or was opened on a handle that has since been closed."""

    code = "cursor_not_found"


class JobNotFound(NotFound):
    """A ``jobId`` is unknown, was forgotten (finished too long ago), or is another actor's."""

    code = "job_not_found"


class DatabaseNotFound(NotFound):
    """``mode`` is ``readwrite`` or ``readonly`` and the database file does not exist."""

    code = "database_not_found"


class NotADatabase(DbHandlesError):
    """The path is a directory, a device, or a file that is not a database of the requested kind."""

    code = "not_a_database"
    http_status = 400


class DefaultHandleProtected(DbHandlesError):
    """Someone tried to close the ``default`` handle, which is always open."""

    code = "default_handle_protected"
    http_status = 409


class ReadOnly(DbHandlesError):
    """A write was sent through a handle opened with ``mode: readonly``."""

    code = "read_only"
    http_status = 409


class Conflict(DbHandlesError):
    """``expectedVersion`` did not match the stored version: someone else updated the record first."""

    code = "conflict"
    http_status = 409


class FileExists(Conflict):
    """The output file exists and the call did not ask to replace it (``overwrite: true``)."""

    code = "file_exists"


class RecordExists(Conflict):
    """``data/create`` was given an id that the collection already holds."""

    code = "record_exists"


class ConstraintViolation(Conflict):
    """A write to a table dbhandles did not create broke one of its constraints (NOT NULL, UNIQUE,
    CHECK, FOREIGN KEY); nothing was written. ``field`` names the field, ``details`` hold
    ``constraint`` (``not_null``, ``unique``, ``check``, ``foreign_key``), the ``table`` and, where
    the database names them, the ``columns`` or the constraint's ``name`` (docs/foreign-tables.md)."""

    code = "constraint_violation"


class ValidationFailed(DbHandlesError):
    """A record does not match the pydantic model declared for its collection; ``field`` names where."""

    code = "validation_failed"
    http_status = 422


class NotSupported(DbHandlesError):
    """The adapter behind the handle cannot do this (for example ``data/vacuum`` on ``memory``).

    409, not 501: the server implements the command; the handle the request names cannot take it
    (like ``read_only``), and another handle can.
    """

    code = "not_supported"
    http_status = 409


class QueryFailed(DbHandlesError):
    """The database's own content made the statement fail: SQL the file or schema carries (a view,
    a CHECK constraint, a generated column, a default, a trigger, a function) raised an error while
    it was evaluated (malformed JSON, an integer overflow, a division by zero, an invalid cast, a
    raised exception), or a stored value has no JSON form (text that is not valid UTF-8).

    409, not 500: nothing failed in the storage, and nothing is the caller's fault; the message
    names the collection and says what to change in the database. Nothing was written.
    """

    code = "query_failed"
    http_status = 409


class DriverMissing(DbHandlesError):
    """An optional driver is not installed; the message says which extra to install."""

    code = "driver_missing"
    http_status = 501


class Unauthorized(DbHandlesError):
    """The request carries no valid credentials."""

    code = "unauthorized"
    http_status = 401


class Forbidden(DbHandlesError):
    """The actor is known but not allowed to do this."""

    code = "forbidden"
    http_status = 403


class PermissionDenied(Forbidden):
    """The handle's permissions do not allow this operation or collection (or the row filter refuses)."""

    code = "permission_denied"


class AccessDenied(Forbidden):
    """Isolation: the database belongs to another actor (strict: no access; soft: read only)."""

    code = "access_denied"


class DatabaseDenied(Forbidden):
    """The database itself refused the statement, past dbhandles' own permissions: the
    PostgreSQL role lacks a privilege on a table (SQLSTATE 42501), or a row-level security
    policy refused the row written (``new row violates row-level security policy``)."""

    code = "database_denied"


class PathNotAllowed(Forbidden):
    """A file outside the places the actor may reach (its data space, the read roots, the allowed
    roots of administrators), after resolving links; or the service's own state (the home, any
    ``-wal``/``-shm``/``-journal``), which is never the target of a data command; or a file that
    may not be used as asked (``dbfiles.check_plain``, ``dbfiles.check_names``): another name
    (hard link) of a file, a live or SQLite database as a data file, a link or special file to
    write."""

    code = "path_not_allowed"


class ServerNotAllowed(Forbidden):
    """A database server a non-admin actor may not reach: a PostgreSQL server that is not listed in
    ``DBHANDLES_POSTGRES_SERVERS``, or connection options that would reach something else."""

    code = "server_not_allowed"


class QuotaExceeded(Forbidden):
    """The actor has too many open handles, or the database has grown past its size quota."""

    code = "quota_exceeded"


class SessionMismatch(Forbidden):
    """A command's ``sessionId`` is not the session the call runs in (its ``X-Session-Id``, its
    WebSocket connection, the in-process caller's): a call cannot act in another session."""

    code = "session_mismatch"


class TooManyRequests(DbHandlesError):
    """An actor (or a client address) has as many jobs, query cursors, connections, WebSockets or
    subscriptions at once as the server allows; finish or close some, or retry later."""

    code = "too_many_requests"
    http_status = 429


class RequestTimeout(DbHandlesError):
    """A request body did not arrive in full within the server's deadline (a slow or stalled sender)."""

    code = "request_timeout"
    http_status = 408


class JobCancelled(DbHandlesError):
    """A job (``data/import``, ``data/export``, ``data/vacuum`` on a server) was cancelled with
    ``data/job-cancel`` or by a server shutting down; the message (and, for an import, the fields of
    the envelope) says what was kept."""

    code = "job_cancelled"
    http_status = 409


class ServerUnreachable(DbHandlesError):
    """A remote client (``Client``, ``jtag`` with ``JTAG_URL``) could not reach the dbhandles server, or
    the server is shutting down: the request was not run (or, with ``jobId``, its job outlived the
    shutdown grace and runs to its end before the server exits)."""

    code = "server_unreachable"
    http_status = 503


class StorageBusy(DbHandlesError):
    """The database stayed locked by another writer for longer than the busy timeout, or other
    queries held SQLite's memory in the process (its bound, shared by all) for a read's whole time
    budget; retry later."""

    code = "storage_busy"
    http_status = 503


class QueryTimeout(DbHandlesError):
    """A query ran past its time budget (``DBHANDLES_QUERY_TIMEOUT_MS``) and was stopped."""

    code = "query_timeout"
    http_status = 504


class StorageError(DbHandlesError):
    """The storage driver failed in a way that is not the caller's fault (disk full, corrupt file...)."""

    code = "storage_error"
    http_status = 500


class StateTooNew(StorageError):
    """The home's system tables were upgraded by a newer dbhandles than this one (its schema version
    requires newer code): run that newer dbhandles, or use another home."""

    code = "state_too_new"
    http_status = 500


class Interrupted(DbHandlesError):
    """The user stopped a long CLI command (Ctrl-C), or a job's process ended before the job did (the
    ``error.code`` of an ``interrupted`` job, never raised for it); the message says what was kept."""

    code = "interrupted"
    http_status = 500


def _all_error_classes() -> list[type[DbHandlesError]]:
    seen: list[type[DbHandlesError]] = []
    stack: list[type[DbHandlesError]] = [DbHandlesError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


def error_class_for_code(code: str) -> type[DbHandlesError]:
    """Return the exception class whose ``code`` is ``code`` (``DbHandlesError`` when unknown).

    Remote clients use this to raise the same exception the in-process API would have raised.
    """
    for cls in _all_error_classes():
        if cls.code == code:
            return cls
    return DbHandlesError
