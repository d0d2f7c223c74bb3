"""``SqlHandleStore``: every ``HandleStore`` operation written once, for SQLite and PostgreSQL alike.

A backend supplies how statements run (``_read``, ``_tx``, optionally ``_write``) and its
``dialect``; the statements, column lists and row conversions are shared. Statements are written in
SQLite's spelling, ``?`` parameters and unqualified ``_dbh_*`` names (see ``schema.Dialect``).
"""

from __future__ import annotations

import socket
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from functools import cached_property
from typing import Any, ClassVar, Protocol

from dbhandles.errors import AccessDenied
from dbhandles.store.base import (
    AuditRow,
    CursorRow,
    DatabaseRow,
    GrantRow,
    HandleRow,
    HandleStore,
    NameCheck,
    TokenRow,
)
from dbhandles.store.jobs import JobStore
from dbhandles.store.schema import (
    AUDIT,
    CURSORS,
    DATABASES,
    GRANTS,
    HANDLES,
    TOKENS,
    Dialect,
    row_from,
    values,
)
from dbhandles.store.sql_jobs import SqlJobTable
from dbhandles.values import dump_json, json_text

__all__ = ["Cursor", "SqlHandleStore", "Tx", "grant_id"]


class Cursor(Protocol):
    """What a statement returns (``sqlite3.Cursor`` and ``psycopg.Cursor`` both are one)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    """Runs statements inside one transaction (an ``sqlite3.Connection`` is one)."""

    def execute(self, statement: str, args: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]], /) -> object: ...


_POINT_ALIAS = (
    "INSERT INTO _dbh_aliases (alias, handle, owner) VALUES (?, ?, ?) "
    "ON CONFLICT (alias) DO UPDATE SET handle = excluded.handle, owner = excluded.owner"
)
_PUT_GRANT = (
    " ON CONFLICT (grant_id) DO UPDATE SET permissions = excluded.permissions, "
    "granted_by = excluded.granted_by, granted_at = excluded.granted_at"
)


_COUNT_CURSORS = "SELECT count(*) FROM _dbh_cursors WHERE owner = ? AND expires_at >= ?"


def grant_id(database: str, actor: str) -> str:
    """The key of a grant: actor names have no spaces, so ``"<actor> <database>"`` is unambiguous."""
    return f"{actor} {database}"


def _point_alias(tx: Tx, alias: str, handle: str, owner: str | None, take: bool) -> None:
    if not take:
        found = tx.execute("SELECT owner FROM _dbh_aliases WHERE alias = ?", (alias,)).fetchone()
        if found is not None and found[0] != owner:
            raise AccessDenied(
                f"alias: {json_text(alias, 80)} belongs to another actor; choose another alias",
                field="alias",
            )
    tx.execute(_POINT_ALIAS, (alias, handle, owner))


_ADVANCE = ("position", "page_number", "exhausted", "expires_at")


class SqlHandleStore(HandleStore):
    """The handle tables in an SQL database; a subclass says how to run statements there."""

    dialect: ClassVar[Dialect]

    @abstractmethod
    def _read(self, statement: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query."""

    @abstractmethod
    def _tx(self) -> AbstractContextManager[Tx]:
        """A write transaction, committed when the block ends and rolled back if it raises."""

    def _write(self, statement: str, args: Sequence[Any] = ()) -> int:
        """Run one write statement; how many rows it changed."""
        with self._tx() as tx:
            return tx.execute(statement, args).rowcount

    # -- jobs --------------------------------------------------------------------------------------

    #: This host's name in the rows that only a process of this host can check (jobs' owners).
    host_id: str = socket.gethostname()

    def _lock_jobs(self, tx: Tx) -> None:
        """Serialise job starts, first thing in their transaction (SQLite's ``BEGIN IMMEDIATE``
        already runs one writer at a time)."""

    @cached_property
    def jobs(self) -> JobStore:
        return SqlJobTable(self.dialect, self._read, self._tx, self.host_id, self._lock_jobs)

    # -- handles -----------------------------------------------------------------------------------

    def _check_handle(self, columns: Sequence[Any], name: str) -> None:
        """Refuse the handle asked for as ``name`` (its ``dialect.row_columns(HANDLES)``) when it
        cannot be used here; every handle can by default."""

    def _handle_values(self, row: HandleRow) -> tuple[Any, ...]:
        """The values of ``dialect.row_columns(HANDLES)`` that store ``row``."""
        return values(HANDLES, row)

    def get_handle(self, name: str) -> HandleRow | None:
        rows = self._read(
            f"{self.dialect.select(HANDLES)} WHERE handle = ? "
            "OR handle = (SELECT handle FROM _dbh_aliases WHERE alias = ?) LIMIT 1",
            (name, name),
        )
        if not rows:
            return None
        self._check_handle(rows[0], name)
        return row_from(HANDLES, HandleRow, rows[0])

    def put_handle(
        self,
        row: HandleRow,
        alias: str | None = None,
        *,
        alias_owner: str | None = None,
        take_alias: bool = True,
    ) -> None:
        with self._tx() as tx:
            tx.execute(self.dialect.insert(HANDLES), self._handle_values(row))
            if alias is not None:
                _point_alias(tx, alias, row.handle, alias_owner, take_alias)

    def delete_handle(self, handle: str) -> bool:
        with self._tx() as tx:
            deleted = tx.execute("DELETE FROM _dbh_handles WHERE handle = ?", (handle,)).rowcount
            tx.execute("DELETE FROM _dbh_aliases WHERE handle = ?", (handle,))
            tx.execute("DELETE FROM _dbh_cursors WHERE handle = ?", (handle,))
        return deleted > 0

    def list_handles(self) -> list[HandleRow]:
        rows = self._read(
            f"{self.dialect.select(HANDLES)} ORDER BY opened_at, {self.dialect.order}"
        )
        return [row_from(HANDLES, HandleRow, r) for r in rows]

    def has_handle_on(self, path: str) -> bool:
        # Only the handles whose config text holds the path's JSON text are read and decoded: a
        # path JSON writes as it is (ASCII, nothing escaped), which no writer could spell else.
        text = dump_json(path).decode()
        if text != f'"{path}"' or not path.isascii():
            return super().has_handle_on(path)
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self._read(
            f"{self.dialect.select(HANDLES)} WHERE config LIKE ? ESCAPE '\\'", (pattern,)
        )
        return any(row_from(HANDLES, HandleRow, r).config.get("path") == path for r in rows)

    def touch(self, handle: str, last_used_at: int) -> None:
        self._write(
            "UPDATE _dbh_handles SET last_used_at = ? WHERE handle = ? AND last_used_at < ?",
            (last_used_at, handle, last_used_at),
        )

    def set_alias(
        self, alias: str, handle: str, owner: str | None = None, *, take: bool = True
    ) -> None:
        with self._tx() as tx:
            _point_alias(tx, alias, handle, owner, take)

    def alias_owner(self, alias: str) -> tuple[bool, str | None]:
        rows = self._read("SELECT owner FROM _dbh_aliases WHERE alias = ?", (alias,))
        return (True, rows[0][0]) if rows else (False, None)

    def delete_aliases(self, handle: str) -> None:
        self._write("DELETE FROM _dbh_aliases WHERE handle = ?", (handle,))

    def aliases(self) -> dict[str, str]:
        rows = self._read("SELECT alias, handle FROM _dbh_aliases ORDER BY alias")
        return {str(alias): str(handle) for alias, handle in rows}

    # -- cursors -----------------------------------------------------------------------------------

    def put_cursor(self, row: CursorRow, *, room: int | None = None, now_ms: int = 0) -> bool:
        if room is None or row.owner is None:
            self._write(self.dialect.insert(CURSORS), values(CURSORS, row))
            return True
        with self._tx() as tx:
            # SQLite's BEGIN IMMEDIATE runs one writer at a time; PostgreSQL takes a lock on the
            # table's key (READ COMMITTED alone would let two transactions count the same rows).
            self._lock_cursors(tx)
            held = tx.execute(_COUNT_CURSORS, (row.owner, now_ms)).fetchone()
            if held[0] >= room:
                return False
            tx.execute(self.dialect.insert(CURSORS), values(CURSORS, row))
            return True

    def _lock_cursors(self, tx: Tx) -> None:
        """Serialise capped cursor inserts, first thing in their transaction (SQLite's ``BEGIN
        IMMEDIATE`` already runs one writer at a time)."""

    def count_cursors(self, owner: str, now_ms: int) -> int:
        return int(self._read(_COUNT_CURSORS, (owner, now_ms))[0][0])

    def get_cursor(self, cursor_id: str) -> CursorRow | None:
        rows = self._read(f"{self.dialect.select(CURSORS)} WHERE cursor_id = ?", (cursor_id,))
        return row_from(CURSORS, CursorRow, rows[0]) if rows else None

    def advance_cursor(self, old: CursorRow, new: CursorRow) -> bool:
        # A compare-and-swap on page_number. In PostgreSQL (READ COMMITTED) a concurrent UPDATE waits,
        # then re-checks page_number on the row the winner wrote: exactly one of two servers serving
        # the same page stores its advance; SQLite runs one writer at a time.
        changed = self._write(
            "UPDATE _dbh_cursors SET position = ?, page_number = ?, exhausted = ?, expires_at = ? "
            "WHERE cursor_id = ? AND page_number = ?",
            (*values(CURSORS, new, _ADVANCE), old.cursor_id, old.page_number),
        )
        return changed > 0

    def delete_cursor(self, cursor_id: str) -> bool:
        return self._write("DELETE FROM _dbh_cursors WHERE cursor_id = ?", (cursor_id,)) > 0

    def expire_cursors(self, now_ms: int) -> int:
        # Read first: most sweeps find nothing, and a write would wait for the write lock for nothing.
        if not self._read("SELECT 1 FROM _dbh_cursors WHERE expires_at < ? LIMIT 1", (now_ms,)):
            return 0
        return self._write("DELETE FROM _dbh_cursors WHERE expires_at < ?", (now_ms,))

    def delete_session_cursors(self, session_id: str) -> int:
        return self._write("DELETE FROM _dbh_cursors WHERE session_id = ?", (session_id,))

    # -- audit -------------------------------------------------------------------------------------

    def append_audit(self, rows: list[AuditRow]) -> None:
        if not rows:
            return
        with self._tx() as tx:
            # Escaped text (``AuditRow.storable``): no caller's content can make a row unwritable.
            tx.executemany(self.dialect.insert(AUDIT), [values(AUDIT, r.storable()) for r in rows])

    def append_audit_values(self, rows: list[tuple[Any, ...]]) -> None:
        # The audit table's columns are ``AuditRow``'s fields, none converted (no JSON column, and
        # ``success`` is already a bool): the values go in as they are.
        if not rows:
            return
        with self._tx() as tx:
            tx.executemany(self.dialect.insert(AUDIT), rows)

    def query_audit(
        self,
        *,
        actor: str | None = None,
        handle: str | None = None,
        operation: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        where, args = ["1 = 1"], []
        for column, value in (("actor", actor), ("handle", handle), ("operation", operation)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        rows = self._read(
            f"{self.dialect.select(AUDIT)} WHERE {' AND '.join(where)} "
            f"ORDER BY at DESC, {self.dialect.order} DESC LIMIT ?",
            (*args, limit),
        )
        return [row_from(AUDIT, AuditRow, r) for r in rows]

    # -- registry state ----------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM _dbh_meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str, *, only_if_missing: bool = False) -> str:
        conflict = "NOTHING" if only_if_missing else "UPDATE SET value = excluded.value"
        with self._tx() as tx:
            tx.execute(
                f"INSERT INTO _dbh_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO {conflict}",
                (key, value),
            )
            return str(
                tx.execute("SELECT value FROM _dbh_meta WHERE key = ?", (key,)).fetchone()[0]
            )

    def set_meta_alone(self, key: str, value: str, prefix: str) -> None:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._tx() as tx:
            tx.execute(
                "DELETE FROM _dbh_meta WHERE value = ? AND key <> ? AND key LIKE ? ESCAPE '\\'",
                (value, key, f"{escaped}%"),
            )
            tx.execute(
                "INSERT INTO _dbh_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- ownership and grants ------------------------------------------------------------------------

    def get_database(self, database: str) -> DatabaseRow | None:
        rows = self._read(f"{self.dialect.select(DATABASES)} WHERE db_key = ?", (database,))
        return row_from(DATABASES, DatabaseRow, rows[0]) if rows else None

    def claim_database(self, row: DatabaseRow, *, isolation_if_owner: bool = False) -> DatabaseRow:
        with self._tx() as tx:
            tx.execute(
                self.dialect.insert(DATABASES) + " ON CONFLICT (db_key) DO NOTHING",
                values(DATABASES, row),
            )
            if isolation_if_owner:
                tx.execute(
                    "UPDATE _dbh_databases SET isolation = ? WHERE db_key = ? AND owner = ?",
                    (row.isolation, row.db_key, row.owner),
                )
            found = tx.execute(
                f"{self.dialect.select(DATABASES)} WHERE db_key = ?", (row.db_key,)
            ).fetchone()
        return row_from(DATABASES, DatabaseRow, found)

    def release_database(self, row: DatabaseRow) -> bool:
        return (
            self._write(
                "DELETE FROM _dbh_databases WHERE db_key = ? AND owner = ? AND isolation = ? "
                "AND created_at = ? AND NOT EXISTS (SELECT 1 FROM _dbh_grants AS g "
                "WHERE g.db_key = _dbh_databases.db_key)",
                (row.db_key, row.owner, row.isolation, row.created_at),
            )
            > 0
        )

    def get_grant(self, database: str, actor: str) -> GrantRow | None:
        rows = self._read(
            f"{self.dialect.select(GRANTS)} WHERE grant_id = ?", (grant_id(database, actor),)
        )
        return row_from(GRANTS, GrantRow, rows[0]) if rows else None

    def put_grant(self, row: GrantRow, check: NameCheck | None = None) -> None:
        if check is None:
            self._write(self.dialect.insert(GRANTS) + _PUT_GRANT, values(GRANTS, row))
            return
        with self._tx() as tx:
            self._checked(tx, check)
            tx.execute(self.dialect.insert(GRANTS) + _PUT_GRANT, values(GRANTS, row))

    def delete_grant(self, database: str, actor: str) -> bool:
        return (
            self._write("DELETE FROM _dbh_grants WHERE grant_id = ?", (grant_id(database, actor),))
            > 0
        )

    def list_grants(self, database: str | None = None, actor: str | None = None) -> list[GrantRow]:
        where, args = ["1 = 1"], []
        for column, value in (("db_key", database), ("actor", actor)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        rows = self._read(
            f"{self.dialect.select(GRANTS)} WHERE {' AND '.join(where)} ORDER BY db_key, actor",
            args,
        )
        return [row_from(GRANTS, GrantRow, r) for r in rows]

    # -- tokens ------------------------------------------------------------------------------------

    def put_token(self, row: TokenRow, check: NameCheck | None = None) -> None:
        if check is None:
            self._write(self.dialect.insert(TOKENS), values(TOKENS, row))
            return
        with self._tx() as tx:
            self._checked(tx, check)
            tx.execute(self.dialect.insert(TOKENS), values(TOKENS, row))

    def _checked(self, tx: Tx, check: NameCheck) -> None:
        """Run ``check`` on every stored token and grantee, first thing in a write transaction.

        SQLite's ``BEGIN IMMEDIATE`` runs one writer at a time; PostgreSQL takes one lock for
        checked token and grant inserts (READ COMMITTED alone would let two of them both see
        no other name)."""
        self._lock_tokens(tx)
        found = tx.execute(f"{self.dialect.select(TOKENS)} ORDER BY created_at, token_id")
        tokens = [row_from(TOKENS, TokenRow, r) for r in found.fetchall()]
        grantees = tx.execute("SELECT DISTINCT actor FROM _dbh_grants ORDER BY actor")
        check(tokens, [str(r[0]) for r in grantees.fetchall()])

    def _lock_tokens(self, tx: Tx) -> None:
        """Serialise checked token and grant inserts, first thing in their transaction (SQLite's
        ``BEGIN IMMEDIATE`` already runs one writer at a time)."""

    def get_token(self, token_id: str) -> TokenRow | None:
        rows = self._read(f"{self.dialect.select(TOKENS)} WHERE token_id = ?", (token_id,))
        return row_from(TOKENS, TokenRow, rows[0]) if rows else None

    def list_tokens(self) -> list[TokenRow]:
        rows = self._read(f"{self.dialect.select(TOKENS)} ORDER BY created_at, token_id")
        return [row_from(TOKENS, TokenRow, r) for r in rows]

    def revoke_token(self, token_id: str, at: str) -> bool:
        return (
            self._write(
                "UPDATE _dbh_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                (at, token_id),
            )
            > 0
        )
