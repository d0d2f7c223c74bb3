"""The handle store on the default SQLite database: the system tables live in ``default.sqlite``."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from dbhandles.dbfiles import connect_sqlite, create_empty
from dbhandles.errors import StorageBusy, StorageError
from dbhandles.store.base import AuditRow, CursorRow, HandleRow, HandleStore, TokenRow

__all__ = ["SqliteHandleStore", "create_private"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _dbh_handles (
    handle TEXT PRIMARY KEY,
    adapter TEXT NOT NULL,
    config TEXT NOT NULL,
    opened_at INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    emit_events INTEGER NOT NULL DEFAULT 1,
    owner TEXT,
    permissions TEXT
);
CREATE TABLE IF NOT EXISTS _dbh_aliases (
    alias TEXT PRIMARY KEY,
    handle TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS _dbh_aliases_handle ON _dbh_aliases(handle);
CREATE TABLE IF NOT EXISTS _dbh_cursors (
    cursor_id TEXT PRIMARY KEY,
    handle TEXT NOT NULL,
    collection TEXT NOT NULL,
    spec TEXT NOT NULL,
    position TEXT,
    page_number INTEGER NOT NULL,
    total_count INTEGER NOT NULL,
    page_size INTEGER NOT NULL,
    exhausted INTEGER NOT NULL,
    session_id TEXT,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS _dbh_cursors_handle ON _dbh_cursors(handle);
CREATE TABLE IF NOT EXISTS _dbh_audit (
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    session_id TEXT,
    handle TEXT,
    command TEXT NOT NULL,
    operation TEXT NOT NULL,
    collection TEXT,
    record_id TEXT,
    success INTEGER NOT NULL,
    code TEXT
);
CREATE INDEX IF NOT EXISTS _dbh_audit_at ON _dbh_audit(at);
CREATE TABLE IF NOT EXISTS _dbh_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS _dbh_tokens (
    token_id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
CREATE TRIGGER IF NOT EXISTS _dbh_audit_no_update BEFORE UPDATE ON _dbh_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS _dbh_audit_no_delete BEFORE DELETE ON _dbh_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
"""

_HANDLE_COLS = "handle, adapter, config, opened_at, last_used_at, emit_events, owner, permissions"
_AUDIT_COLS = (
    "at, actor, session_id, handle, command, operation, collection, record_id, success, code"
)
_CURSOR_COLS = (
    "cursor_id, handle, collection, spec, position, page_number, total_count, page_size, "
    "exhausted, session_id, expires_at"
)


_TOKEN_COLS = "token_id, actor, secret_hash, is_admin, created_at, expires_at, revoked_at"


def _token_row(r: tuple[Any, ...]) -> TokenRow:
    return TokenRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6])


def _handle_row(r: tuple[Any, ...]) -> HandleRow:
    permissions = orjson.loads(r[7]) if r[7] else None
    return HandleRow(r[0], r[1], orjson.loads(r[2]), r[3], r[4], bool(r[5]), r[6], permissions)


def _cursor_row(r: tuple[Any, ...]) -> CursorRow:
    return CursorRow(
        r[0], r[1], r[2], orjson.loads(r[3]), orjson.loads(r[4]) if r[4] else None,
        r[5], r[6], r[7], bool(r[8]), r[9], r[10],
    )  # fmt: skip


def _cursor_values(c: CursorRow) -> tuple[Any, ...]:
    return (
        c.cursor_id, c.handle, c.collection, orjson.dumps(c.spec).decode(),
        orjson.dumps(c.position).decode() if c.position is not None else None,
        c.page_number, c.total_count, c.page_size, int(c.exhausted), c.session_id, c.expires_at,
    )  # fmt: skip


def create_private(path: Path) -> None:
    """Create the default database file (and its folder) readable by its owner only, if missing.

    It holds token hashes and the audit log. Called before anything else creates the file: SQLite
    and the sqlite adapter create files readable by everyone (the umask permitting).
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    create_empty(str(path), 0o600)  # O_EXCL: an existing (maybe live) file is never opened


class SqliteHandleStore(HandleStore):
    """The handle tables in the default SQLite database, on a connection of their own."""

    def __init__(self, path: Path) -> None:
        create_private(path)
        self._lock = threading.RLock()
        self._version: int | None = None
        self._version_at = float("-inf")
        try:
            self._db = connect_sqlite(str(path), "rwc", timeout=10.0)
            self._db.execute("PRAGMA busy_timeout = 10000")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the default database at {path}: {exc}") from exc

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise StorageBusy(f"the default database is busy: {exc}") from exc
                raise StorageError(f"handle table: {exc}") from exc
            except sqlite3.Error as exc:
                raise StorageError(f"handle table: {exc}") from exc

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise StorageBusy(f"the default database is busy: {exc}") from exc
                raise StorageError(f"handle table: {exc}") from exc

    def version(self) -> int | None:
        # data_version moves when any *other* connection commits; our own writes invalidate the
        # registry's cache explicitly. One command asks twice (token, then handle): a reading at most
        # a millisecond old is as good as a fresh one, since another process's commit could as well
        # have landed just after this command started.
        now = time.monotonic()
        if now - self._version_at < 0.001:
            return self._version
        version = int(self._query("PRAGMA data_version")[0][0])
        self._version, self._version_at = version, now
        return version

    def get_handle(self, name: str) -> HandleRow | None:
        rows = self._query(
            f"SELECT {_HANDLE_COLS} FROM _dbh_handles WHERE handle = ? "
            "OR handle = (SELECT handle FROM _dbh_aliases WHERE alias = ?) LIMIT 1",
            (name, name),
        )
        return _handle_row(rows[0]) if rows else None

    def put_handle(self, row: HandleRow, alias: str | None = None) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT INTO _dbh_handles ({_HANDLE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.handle, row.adapter, orjson.dumps(row.config).decode(), row.opened_at,
                    row.last_used_at, int(row.emit_events), row.owner,
                    orjson.dumps(row.permissions).decode() if row.permissions is not None else None,
                ),
            )  # fmt: skip
            if alias is not None:
                db.execute(
                    "INSERT INTO _dbh_aliases (alias, handle) VALUES (?, ?) "
                    "ON CONFLICT(alias) DO UPDATE SET handle = excluded.handle",
                    (alias, row.handle),
                )

    def delete_handle(self, handle: str) -> bool:
        with self._tx() as db:
            deleted = db.execute("DELETE FROM _dbh_handles WHERE handle = ?", (handle,)).rowcount
            db.execute("DELETE FROM _dbh_aliases WHERE handle = ?", (handle,))
            db.execute("DELETE FROM _dbh_cursors WHERE handle = ?", (handle,))
        return deleted > 0

    def list_handles(self) -> list[HandleRow]:
        rows = self._query(f"SELECT {_HANDLE_COLS} FROM _dbh_handles ORDER BY opened_at, rowid")
        return [_handle_row(r) for r in rows]

    def touch(self, handle: str, last_used_at: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE _dbh_handles SET last_used_at = ? WHERE handle = ? AND last_used_at < ?",
                (last_used_at, handle, last_used_at),
            )

    def set_alias(self, alias: str, handle: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO _dbh_aliases (alias, handle) VALUES (?, ?) "
                "ON CONFLICT(alias) DO UPDATE SET handle = excluded.handle",
                (alias, handle),
            )

    def delete_aliases(self, handle: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM _dbh_aliases WHERE handle = ?", (handle,))

    def aliases(self) -> dict[str, str]:
        rows = self._query("SELECT alias, handle FROM _dbh_aliases ORDER BY alias")
        return {str(alias): str(handle) for alias, handle in rows}

    def put_cursor(self, row: CursorRow) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT INTO _dbh_cursors ({_CURSOR_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                _cursor_values(row),
            )

    def get_cursor(self, cursor_id: str) -> CursorRow | None:
        rows = self._query(
            f"SELECT {_CURSOR_COLS} FROM _dbh_cursors WHERE cursor_id = ?", (cursor_id,)
        )
        return _cursor_row(rows[0]) if rows else None

    def advance_cursor(self, old: CursorRow, new: CursorRow) -> bool:
        with self._tx() as db:
            changed = db.execute(
                "UPDATE _dbh_cursors SET position = ?, page_number = ?, exhausted = ?, expires_at = ? "
                "WHERE cursor_id = ? AND page_number = ?",
                (
                    orjson.dumps(new.position).decode() if new.position is not None else None,
                    new.page_number, int(new.exhausted), new.expires_at, old.cursor_id, old.page_number,
                ),
            ).rowcount  # fmt: skip
        return changed > 0

    def delete_cursor(self, cursor_id: str) -> bool:
        with self._tx() as db:
            return (
                db.execute("DELETE FROM _dbh_cursors WHERE cursor_id = ?", (cursor_id,)).rowcount
                > 0
            )

    def expire_cursors(self, now_ms: int) -> int:
        with self._tx() as db:
            return db.execute("DELETE FROM _dbh_cursors WHERE expires_at < ?", (now_ms,)).rowcount

    def delete_session_cursors(self, session_id: str) -> int:
        with self._tx() as db:
            return db.execute(
                "DELETE FROM _dbh_cursors WHERE session_id = ?", (session_id,)
            ).rowcount

    def append_audit(self, rows: list[AuditRow]) -> None:
        if not rows:
            return
        with self._tx() as db:
            db.executemany(
                f"INSERT INTO _dbh_audit ({_AUDIT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (r.at, r.actor, r.session_id, r.handle, r.command, r.operation, r.collection,
                     r.record_id, int(r.success), r.code)
                    for r in rows
                ],
            )  # fmt: skip

    def query_audit(
        self,
        *,
        actor: str | None = None,
        handle: str | None = None,
        operation: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        where, args = [], []
        for column, value in (("actor", actor), ("handle", handle), ("operation", operation)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("at >= ?")
            args.append(since)
        sql = f"SELECT {_AUDIT_COLS} FROM _dbh_audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY at DESC, rowid DESC LIMIT ?"
        rows = self._query(sql, (*args, limit))
        return [AuditRow.from_columns(r) for r in rows]

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM _dbh_meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str, *, only_if_missing: bool = False) -> str:
        with self._tx() as db:
            if only_if_missing:
                db.execute(
                    "INSERT OR IGNORE INTO _dbh_meta (key, value) VALUES (?, ?)", (key, value)
                )
            else:
                db.execute(
                    "INSERT INTO _dbh_meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            return str(
                db.execute("SELECT value FROM _dbh_meta WHERE key = ?", (key,)).fetchone()[0]
            )

    def put_token(self, row: TokenRow) -> None:
        with self._tx() as db:
            db.execute(
                f"INSERT INTO _dbh_tokens ({_TOKEN_COLS}) VALUES (?,?,?,?,?,?,?)",
                (row.token_id, row.actor, row.secret_hash, int(row.is_admin), row.created_at,
                 row.expires_at, row.revoked_at),
            )  # fmt: skip

    def get_token(self, token_id: str) -> TokenRow | None:
        rows = self._query(f"SELECT {_TOKEN_COLS} FROM _dbh_tokens WHERE token_id = ?", (token_id,))
        return _token_row(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenRow]:
        return [
            _token_row(r)
            for r in self._query(f"SELECT {_TOKEN_COLS} FROM _dbh_tokens ORDER BY created_at")
        ]

    def revoke_token(self, token_id: str, at: str) -> bool:
        with self._tx() as db:
            return (
                db.execute(
                    "UPDATE _dbh_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                    (at, token_id),
                ).rowcount
                > 0
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
