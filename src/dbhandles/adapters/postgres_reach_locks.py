"""The locks a restricted command takes on what its access decision found reached, before its
transaction's first snapshot (``postgres_reach.recheck``), pipelined: one round trip when every
relation can be locked, one more per relation that cannot."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import Connection, sql

from dbhandles.errors import QueryTimeout

__all__ = ["lock_all"]

_TIMEOUT = (
    "a table this command reaches stayed locked by another session past the command's time "
    "budget (DBHANDLES_QUERY_TIMEOUT_MS)"
)


def _places(schema: str, name: str) -> list[tuple[str, str]]:
    """Where ``name`` (as ``read_reach`` names it: ``other.t`` outside ``schema``) may be: a
    relation of ``schema`` of that exact name first."""
    places = [(schema, name)]
    if "." in name:
        nsp, rel = name.split(".", 1)
        places.append((nsp, rel))
    return places


def lock_all(
    conn: Connection[Any], schema: str, names: Sequence[str], mode: str, timeout_ms: int | None
) -> None:
    """Lock each relation of ``names`` (of ``schema``, or ``other.t``: the first place that can
    be locked) in ``mode``, after ``SET LOCAL lock_timeout`` to ``timeout_ms`` when given. Each
    ``LOCK TABLE`` runs in a savepoint of its own, so a name that is no lockable relation (gone,
    a foreign table, no privilege) is left to the statement, which says so itself; they go out
    as one pipeline, and after a failure the rest as another. ``LOCK TABLE`` takes no snapshot
    (a ``DO`` block would, before its locks are granted: a ``REPEATABLE READ`` transaction would
    then read the catalog as it was before the DDL it waited for). None is prepared: psycopg
    would take a statement prepared in a pipeline that failed for one the server holds.

    Raises:
        QueryTimeout: a lock was held past ``timeout_ms``.
    """
    mode_sql = sql.SQL(mode)
    pending = [_places(schema, name) for name in names]
    timeout = None if timeout_ms is None else f"{timeout_ms}ms"
    while pending or timeout is not None:
        locks: list[psycopg.Cursor[Any]] = []
        failure: psycopg.Error | None = None
        with conn.pipeline() as pipeline:
            # An error comes out of whichever call reads it first: caught here, not on leaving
            # the block (which would log it as ignored).
            try:
                if timeout is not None:
                    statement = sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(timeout))
                    conn.execute(statement, prepare=False)
                    timeout = None
                for (nsp, rel), *_ in pending:
                    conn.execute("SAVEPOINT dbh_lock", prepare=False)
                    statement = sql.SQL("LOCK TABLE {} IN {} MODE").format(
                        sql.Identifier(nsp, rel), mode_sql
                    )
                    locks.append(conn.execute(statement, prepare=False))
                    conn.execute("RELEASE SAVEPOINT dbh_lock", prepare=False)
                pipeline.sync()
            except psycopg.Error as exc:
                failure = exc
                # Out of the aborted state (what was sent after the error was skipped).
                with contextlib.suppress(psycopg.Error):
                    pipeline.sync()
        if failure is None:
            return
        failed = next((i for i, c in enumerate(locks) if c.statusmessage is None), None)
        if failed is None:
            raise failure
        conn.execute("ROLLBACK TO SAVEPOINT dbh_lock", prepare=False)
        if isinstance(failure, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
            raise QueryTimeout(_TIMEOUT) from failure
        places = pending[failed][1:]
        pending = ([places] if places else []) + pending[failed + 1 :]
