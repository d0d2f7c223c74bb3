"""``PostgresHandleStore``: handles, aliases, cursors, tokens and the audit log in a PostgreSQL schema.

With it, every ``jtag serve`` process pointed at the same default URL shares one registry: a handle
opened through one server works through any other, and query cursors advance by compare-and-swap in
one table, so ``query-next`` calls alternating between servers walk one cursor page by page.

What cannot be shared is a file: an ``sqlite`` or ``json`` handle names a path on the host that opened
it. The store records that host and refuses the handle elsewhere (``handle_not_found`` naming the
host), so another host never creates an empty database at the same path and writes there instead.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from dbhandles.adapters.postgres_config import PostgresConfig, connection_params
from dbhandles.adapters.postgres_errors import translating
from dbhandles.adapters.postgres_schema import advisory_key
from dbhandles.errors import HandleNotFound
from dbhandles.store import AuditRow, CursorRow, HandleRow, HandleStore, TokenRow

__all__ = ["PostgresHandleStore"]

_TABLES = """
CREATE TABLE IF NOT EXISTS {s}._dbh_handles (
    handle text PRIMARY KEY, adapter text NOT NULL, config text NOT NULL,
    opened_at bigint NOT NULL, last_used_at bigint NOT NULL, emit_events boolean NOT NULL DEFAULT true,
    owner text, permissions text, host text, seq bigserial);
CREATE TABLE IF NOT EXISTS {s}._dbh_aliases (alias text PRIMARY KEY, handle text NOT NULL);
CREATE INDEX IF NOT EXISTS _dbh_aliases_handle ON {s}._dbh_aliases (handle);
CREATE TABLE IF NOT EXISTS {s}._dbh_cursors (
    cursor_id text PRIMARY KEY, handle text NOT NULL, collection text NOT NULL, spec text NOT NULL,
    position text, page_number integer NOT NULL, total_count bigint NOT NULL,
    page_size integer NOT NULL, exhausted boolean NOT NULL, session_id text, expires_at bigint NOT NULL);
CREATE INDEX IF NOT EXISTS _dbh_cursors_handle ON {s}._dbh_cursors (handle);
CREATE INDEX IF NOT EXISTS _dbh_cursors_session ON {s}._dbh_cursors (session_id);
CREATE TABLE IF NOT EXISTS {s}._dbh_audit (
    seq bigserial PRIMARY KEY, at text NOT NULL, actor text NOT NULL, session_id text, handle text,
    command text NOT NULL, operation text NOT NULL, collection text, record_id text,
    success boolean NOT NULL, code text);
CREATE INDEX IF NOT EXISTS _dbh_audit_at ON {s}._dbh_audit (at);
CREATE TABLE IF NOT EXISTS {s}._dbh_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}._dbh_tokens (
    token_id text PRIMARY KEY, actor text NOT NULL, secret_hash text NOT NULL,
    is_admin boolean NOT NULL, created_at text NOT NULL, expires_at text, revoked_at text);
CREATE OR REPLACE FUNCTION {s}._dbh_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS
    'BEGIN RAISE EXCEPTION ''the audit log is append-only''; END';
"""
_GUARD = (
    "CREATE TRIGGER _dbh_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {s}._dbh_audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION {s}._dbh_audit_append_only()"
)
_HANDLE_COLS = (
    "handle, adapter, config, opened_at, last_used_at, emit_events, owner, permissions, host"
)
_CURSOR_COLS = (
    "cursor_id, handle, collection, spec, position, page_number, total_count, page_size, "
    "exhausted, session_id, expires_at"
)
_AUDIT_COLS = (
    "at, actor, session_id, handle, command, operation, collection, record_id, success, code"
)
_TOKEN_COLS = "token_id, actor, secret_hash, is_admin, created_at, expires_at, revoked_at"


def _json(value: Any) -> str:
    # Text, not jsonb: an orjson round trip keeps a float a float (jsonb turns 1e16 into 10**16,
    # and a keyset position must come back exactly as it went in).
    return orjson.dumps(value).decode()


def _token(r: tuple[Any, ...]) -> TokenRow:
    return TokenRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6])


def _file_based(adapter: str) -> bool:
    from dbhandles.adapters import get_adapter_class
    from dbhandles.errors import DbHandlesError

    try:
        return get_adapter_class(adapter).features.file_based
    except DbHandlesError:
        return False


class PostgresHandleStore(HandleStore):
    """The registry's tables in ``config``'s schema (created when missing), on a small pool of its own.

    ``version()`` stays ``None``, so the registry reads the handle table on every command: a handle
    closed through one server must be unknown to every other server at once (fail loud). A cache kept
    fresh by NOTIFY would save that query but lag a close by the notification's latency.

    Args:
        config: where (a ``PostgresConfig``; its mode is ignored: the store always writes).
        host_id: this host's name for handles on local files (default: the host name).
        pool_size: connections the store may hold.
    """

    def __init__(
        self, config: PostgresConfig, *, host_id: str | None = None, pool_size: int = 4
    ) -> None:
        self.schema = config.schema_name
        self.host_id = host_id or socket.gethostname()
        self._conninfo, self._where, self._secret = connection_params(config)
        self._s = sql.Identifier(self.schema)
        with self._translating():
            probe = psycopg.connect(self._conninfo, autocommit=True)
        try:
            with self._translating():
                self._create_tables(probe)
        finally:
            probe.close()
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._conninfo, min_size=1, max_size=pool_size, open=False, num_workers=1,
            kwargs={"autocommit": True}, name="dbhandles-store", timeout=30.0,
        )  # fmt: skip
        try:
            with self._translating():
                self._pool.open(wait=True, timeout=config.connect_timeout)
        except BaseException:
            self._pool.close()
            raise

    def _translating(self) -> Any:
        return translating(where=self._where, secret=self._secret)

    def _create_tables(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            # Serialise first starts of several servers: concurrent CREATE ... IF NOT EXISTS can
            # still collide in PostgreSQL's catalog.
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s)", (advisory_key(self.schema, "_dbh_store"),)
            )
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._s))
            for statement in _TABLES.split(";\n"):
                if statement.strip():
                    conn.execute(sql.SQL(statement).format(s=self._s))
            exists = conn.execute(
                "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = %s AND t.tgname = '_dbh_audit_append_only'",
                (self.schema,),
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL(_GUARD).format(s=self._s))

    @contextmanager
    def _conn(self, transaction: bool = False) -> Iterator[psycopg.Connection[Any]]:
        with self._translating(), self._pool.connection() as conn:
            if transaction:
                with conn.transaction():
                    yield conn
            else:
                yield conn

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    def _rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            return conn.execute(self._sql(text), params).fetchall()

    def _count(self, text: str, params: Sequence[Any] = ()) -> int:
        with self._conn() as conn:
            return conn.execute(self._sql(text), params).rowcount

    # -- handles -----------------------------------------------------------------------------------

    def _handle(self, r: tuple[Any, ...]) -> HandleRow:
        permissions = orjson.loads(r[7]) if r[7] else None
        return HandleRow(
            r[0], r[1], orjson.loads(r[2]), int(r[3]), int(r[4]), bool(r[5]), r[6], permissions
        )

    def get_handle(self, name: str) -> HandleRow | None:
        rows = self._rows(
            f"SELECT {_HANDLE_COLS} FROM {{s}}._dbh_handles WHERE handle = %s "
            "OR handle = (SELECT handle FROM {s}._dbh_aliases WHERE alias = %s) LIMIT 1",
            (name, name),
        )
        if not rows:
            return None
        row = rows[0]
        host = row[8]
        if host is not None and host != self.host_id:
            raise HandleNotFound(
                f"dbHandle: {name!r} is a {row[1]} database in a file on host {host!r}; this server "
                f"runs on {self.host_id!r} and cannot reach that file. Send the command to a server "
                f"on {host!r} (or open a database every server can reach, such as postgres)",
                field="dbHandle",
            )
        return self._handle(row)

    def put_handle(self, row: HandleRow, alias: str | None = None) -> None:
        host = self.host_id if _file_based(row.adapter) else None
        permissions = _json(row.permissions) if row.permissions is not None else None
        with self._conn(transaction=True) as conn:
            conn.execute(
                self._sql(f"INSERT INTO {{s}}._dbh_handles ({_HANDLE_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)"),
                (row.handle, row.adapter, _json(row.config), row.opened_at, row.last_used_at,
                 row.emit_events, row.owner, permissions, host),
            )  # fmt: skip
            if alias is not None:
                self._point(conn, alias, row.handle)

    def _point(self, conn: psycopg.Connection[Any], alias: str, handle: str) -> None:
        conn.execute(
            self._sql(
                "INSERT INTO {s}._dbh_aliases (alias, handle) VALUES (%s, %s) "
                "ON CONFLICT (alias) DO UPDATE SET handle = excluded.handle"
            ),
            (alias, handle),
        )

    def delete_handle(self, handle: str) -> bool:
        with self._conn(transaction=True) as conn:
            deleted = conn.execute(
                self._sql("DELETE FROM {s}._dbh_handles WHERE handle = %s"), (handle,)
            )
            conn.execute(self._sql("DELETE FROM {s}._dbh_aliases WHERE handle = %s"), (handle,))
            conn.execute(self._sql("DELETE FROM {s}._dbh_cursors WHERE handle = %s"), (handle,))
            return deleted.rowcount > 0

    def list_handles(self) -> list[HandleRow]:
        rows = self._rows(f"SELECT {_HANDLE_COLS} FROM {{s}}._dbh_handles ORDER BY opened_at, seq")
        return [self._handle(r) for r in rows]

    def touch(self, handle: str, last_used_at: int) -> None:
        self._count(
            "UPDATE {s}._dbh_handles SET last_used_at = %s WHERE handle = %s AND last_used_at < %s",
            (last_used_at, handle, last_used_at),
        )

    def set_alias(self, alias: str, handle: str) -> None:
        with self._conn() as conn:
            self._point(conn, alias, handle)

    def delete_aliases(self, handle: str) -> None:
        with self._conn() as conn:
            conn.execute(self._sql("DELETE FROM {s}._dbh_aliases WHERE handle = %s"), (handle,))

    def aliases(self) -> dict[str, str]:
        rows = self._rows("SELECT alias, handle FROM {s}._dbh_aliases ORDER BY alias")
        return {str(alias): str(handle) for alias, handle in rows}

    # -- cursors -----------------------------------------------------------------------------------

    def put_cursor(self, row: CursorRow) -> None:
        self._count(
            f"INSERT INTO {{s}}._dbh_cursors ({_CURSOR_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (row.cursor_id, row.handle, row.collection, _json(row.spec),
             _json(row.position) if row.position is not None else None, row.page_number,
             row.total_count, row.page_size, row.exhausted, row.session_id, row.expires_at),
        )  # fmt: skip

    def get_cursor(self, cursor_id: str) -> CursorRow | None:
        rows = self._rows(
            f"SELECT {_CURSOR_COLS} FROM {{s}}._dbh_cursors WHERE cursor_id = %s", (cursor_id,)
        )
        if not rows:
            return None
        r = rows[0]
        position = orjson.loads(r[4]) if r[4] is not None else None
        return CursorRow(
            r[0],
            r[1],
            r[2],
            orjson.loads(r[3]),
            position,
            int(r[5]),
            int(r[6]),
            int(r[7]),
            bool(r[8]),
            r[9],
            int(r[10]),
        )

    def advance_cursor(self, old: CursorRow, new: CursorRow) -> bool:
        # Under READ COMMITTED a concurrent UPDATE waits, then re-checks page_number on the row the
        # winner wrote: exactly one of two servers serving the same page stores its advance.
        changed = self._count(
            "UPDATE {s}._dbh_cursors SET position = %s, page_number = %s, exhausted = %s, "
            "expires_at = %s WHERE cursor_id = %s AND page_number = %s",
            (_json(new.position) if new.position is not None else None, new.page_number,
             new.exhausted, new.expires_at, old.cursor_id, old.page_number),
        )  # fmt: skip
        return changed > 0

    def delete_cursor(self, cursor_id: str) -> bool:
        return self._count("DELETE FROM {s}._dbh_cursors WHERE cursor_id = %s", (cursor_id,)) > 0

    def expire_cursors(self, now_ms: int) -> int:
        return self._count("DELETE FROM {s}._dbh_cursors WHERE expires_at < %s", (now_ms,))

    def delete_session_cursors(self, session_id: str) -> int:
        return self._count("DELETE FROM {s}._dbh_cursors WHERE session_id = %s", (session_id,))

    # -- audit ---------------------------------------------------------------------------------------

    def append_audit(self, rows: list[AuditRow]) -> None:
        if not rows:
            return
        with self._conn() as conn, conn.cursor() as cur:
            cur.executemany(
                self._sql(f"INSERT INTO {{s}}._dbh_audit ({_AUDIT_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"),
                [(r.at, r.actor, r.session_id, r.handle, r.command, r.operation, r.collection,
                  r.record_id, r.success, r.code) for r in rows],
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
        where, args = ["TRUE"], []
        for column, value in (("actor", actor), ("handle", handle), ("operation", operation)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        if since is not None:
            where.append("at >= %s")
            args.append(since)
        rows = self._rows(
            f"SELECT {_AUDIT_COLS} FROM {{s}}._dbh_audit WHERE {' AND '.join(where)} "
            "ORDER BY at DESC, seq DESC LIMIT %s",
            (*args, limit),
        )
        return [AuditRow.from_columns(r) for r in rows]

    # -- registry state ------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM {s}._dbh_meta WHERE key = %s", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str, *, only_if_missing: bool = False) -> str:
        conflict = "NOTHING" if only_if_missing else "UPDATE SET value = excluded.value"
        with self._conn(transaction=True) as conn:
            conn.execute(
                self._sql(
                    f"INSERT INTO {{s}}._dbh_meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO {conflict}"
                ),
                (key, value),
            )
            row = conn.execute(
                self._sql("SELECT value FROM {s}._dbh_meta WHERE key = %s"), (key,)
            ).fetchone()
        assert row is not None
        return str(row[0])

    # -- tokens --------------------------------------------------------------------------------------

    def put_token(self, row: TokenRow) -> None:
        self._count(
            f"INSERT INTO {{s}}._dbh_tokens ({_TOKEN_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s)",
            (row.token_id, row.actor, row.secret_hash, row.is_admin, row.created_at,
             row.expires_at, row.revoked_at),
        )  # fmt: skip

    def get_token(self, token_id: str) -> TokenRow | None:
        rows = self._rows(
            f"SELECT {_TOKEN_COLS} FROM {{s}}._dbh_tokens WHERE token_id = %s", (token_id,)
        )
        return _token(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenRow]:
        rows = self._rows(
            f"SELECT {_TOKEN_COLS} FROM {{s}}._dbh_tokens ORDER BY created_at, token_id"
        )
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: str, at: str) -> bool:
        return (
            self._count(
                "UPDATE {s}._dbh_tokens SET revoked_at = %s WHERE token_id = %s AND revoked_at IS NULL",
                (at, token_id),
            )
            > 0
        )

    def close(self) -> None:
        self._pool.close()
