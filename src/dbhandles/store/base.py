"""The durable state's interface: ``HandleStore`` and the rows it keeps (handles, aliases, cursors,
tokens, audit, meta; jobs are ``jobs.py``'s). A row's fields are its table's columns in ``schema.py``: same names, same order."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from dbhandles.store.jobs import JobStore

__all__ = [
    "AuditRow",
    "CursorRow",
    "DatabaseRow",
    "GrantRow",
    "HandleRow",
    "HandleStore",
    "NameCheck",
    "TokenRow",
    "audit_text",
    "file_database",
]

#: Control characters, written as ``\xNN`` in audit rows (``audit_text``).
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
#: The same, keeping the newline (the separator of ``AuditRow.target``).
_CONTROL_ESCAPES_BUT_NEWLINE = {c: e for c, e in _CONTROL_ESCAPES.items() if c != 0x0A}


def audit_text(value: str, *, keep_newlines: bool = False) -> str:
    """``value`` as an audit row stores it: control characters (U+0000, which PostgreSQL's text
    cannot hold, and the rest, which would let a name forge lines in a log viewer) and lone
    surrogates (no UTF-8 form) written as backslash escapes, so no content can make a row
    unwritable. Text without them is returned as it is."""
    if value.isascii() and value.isprintable():
        return value
    text = value.translate(_CONTROL_ESCAPES_BUT_NEWLINE if keep_newlines else _CONTROL_ESCAPES)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def file_database(path: str) -> str:
    """How ``_dbh_databases`` and ``_dbh_grants`` name a file database: ``file:<real path>``."""
    return f"file:{path}"


@dataclass(frozen=True, slots=True)
class HandleRow:
    """One open handle as persisted."""

    handle: str
    adapter: str
    config: dict[str, Any]
    opened_at: int
    last_used_at: int
    emit_events: bool = True
    owner: str | None = None
    permissions: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit entry: who did what through which handle, and whether it was allowed and worked."""

    at: str
    actor: str
    session_id: str | None
    handle: str | None
    command: str
    operation: str
    collection: str | None
    record_id: str | None
    success: bool
    code: str | None
    #: The real targets the command resolved (files, databases), one per line; refused ones too.
    target: str | None = None

    def storable(self) -> AuditRow:
        """This row with every text field through ``audit_text`` (``self`` when nothing changes):
        what a store writes, so a row is never refused for what a caller put in it."""
        changed: dict[str, str] = {}
        for name in ("at", "actor", "session_id", "handle", "command", "operation", "collection",
                     "record_id", "code", "target"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, str):
                text = audit_text(value, keep_newlines=name == "target")
                if text != value:
                    changed[name] = text
        return replace(self, **changed) if changed else self  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class DatabaseRow:
    """Who owns a database (``db_key`` as ``file_database`` names it), and its isolation."""

    db_key: str
    owner: str
    isolation: str
    created_at: str


@dataclass(frozen=True, slots=True)
class GrantRow:
    """What ``actor`` may do on the database ``db_key`` (``Permissions.to_wire()``), granted by its owner or an
    administrator."""

    grant_id: str
    db_key: str
    actor: str
    permissions: dict[str, Any]
    granted_by: str
    granted_at: str


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A bearer token as stored: only a hash of its secret is kept."""

    token_id: str
    actor: str
    secret_hash: str
    is_admin: bool
    created_at: str
    expires_at: str | None
    revoked_at: str | None


@dataclass(frozen=True, slots=True)
class CursorRow:
    """One query cursor: what it queries and how far it got (a keyset position, never an offset)."""

    cursor_id: str
    handle: str
    collection: str
    spec: dict[str, Any]
    position: list[Any] | None
    page_number: int
    total_count: int
    page_size: int
    exhausted: bool
    session_id: str | None
    expires_at: int
    #: The limited (non-admin) actor it counts against (``max_cursors_per_actor``), if any.
    owner: str | None = None


#: A rule on a new token's or grant's actor name, given every stored token and the names every
#: stored grant holds; raises to refuse (``put_token``, ``put_grant``).
NameCheck = Callable[[list[TokenRow], list[str]], None]


class HandleStore(ABC):
    """Where the registry keeps handles, aliases and cursors."""

    #: The tables are in a file on this machine whose reads never wait for a writer (SQLite in WAL
    #: mode), so resolving a handle may run on the server's event loop. A store behind the network
    #: (PostgreSQL) leaves it ``False``.
    local: ClassVar[bool] = False

    def version(self) -> int | None:
        """A number that changes whenever another connection changed the store, so the registry can
        cache resolved handles; ``None`` (the default) disables caching."""
        return None

    @abstractmethod
    def get_handle(self, name: str) -> HandleRow | None:
        """The handle called ``name``, resolving an alias."""

    @abstractmethod
    def put_handle(
        self,
        row: HandleRow,
        alias: str | None = None,
        *,
        alias_owner: str | None = None,
        take_alias: bool = True,
    ) -> None:
        """Insert a handle (and point ``alias`` at it, owned by ``alias_owner``) in one transaction.

        Raises:
            AccessDenied: ``alias`` belongs to another actor and ``take_alias`` is false (nothing is
                inserted).
        """

    @abstractmethod
    def delete_handle(self, handle: str) -> bool:
        """Remove a handle with its aliases and cursors; ``True`` if it existed."""

    @abstractmethod
    def list_handles(self) -> list[HandleRow]:
        """Every persisted handle, oldest first."""

    def has_handle_on(self, path: str) -> bool:
        """Whether a persisted handle's config names the file ``path`` (``config["path"]``, the
        real path it was opened by). A store that can look it up without reading every handle
        overrides this."""
        return any(row.config.get("path") == path for row in self.list_handles())

    @abstractmethod
    def touch(self, handle: str, last_used_at: int) -> None:
        """Move ``lastUsedAt`` forward."""

    @abstractmethod
    def set_alias(
        self, alias: str, handle: str, owner: str | None = None, *, take: bool = True
    ) -> None:
        """Point ``alias`` at ``handle``, owned by ``owner`` (re-pointing is allowed; with ``take``
        false only an alias of ``owner``, or a new one).

        Raises:
            AccessDenied: the alias belongs to another actor and ``take`` is false.
        """

    @abstractmethod
    def alias_owner(self, alias: str) -> tuple[bool, str | None]:
        """``(exists, owner)`` of an alias (an alias made before schema version 3 has no owner)."""

    @abstractmethod
    def delete_aliases(self, handle: str) -> None:
        """Remove every alias of ``handle``."""

    @abstractmethod
    def aliases(self) -> dict[str, str]:
        """Alias → handle."""

    @abstractmethod
    def put_cursor(self, row: CursorRow, *, room: int | None = None, now_ms: int = 0) -> bool:
        """Insert a cursor; with ``room``, only while ``row.owner`` holds fewer than ``room`` live
        cursors (``expires_at`` not before ``now_ms``) in the store, counted and inserted in one
        write transaction, so racing inserts from any process never overshoot. ``True`` if it was
        inserted."""

    @abstractmethod
    def count_cursors(self, owner: str, now_ms: int) -> int:
        """How many live cursors (``expires_at`` not before ``now_ms``) ``owner`` holds."""

    @abstractmethod
    def get_cursor(self, cursor_id: str) -> CursorRow | None: ...

    @abstractmethod
    def advance_cursor(self, old: CursorRow, new: CursorRow) -> bool:
        """Compare-and-swap: store ``new`` only if the cursor is still at ``old.page_number``."""

    @abstractmethod
    def delete_cursor(self, cursor_id: str) -> bool: ...

    @abstractmethod
    def expire_cursors(self, now_ms: int) -> int:
        """Delete cursors idle past their expiry; return how many."""

    @abstractmethod
    def delete_session_cursors(self, session_id: str) -> int:
        """Delete every cursor of a session that ended; return how many."""

    @abstractmethod
    def append_audit(self, rows: list[AuditRow]) -> None:
        """Append audit rows (the table is append-only), each as ``AuditRow.storable`` gives it."""

    def own_bytes(self) -> int:
        """Bytes the store's own tables (``_dbh_*``: handles, tokens, the audit log...) take in the
        database they share with the default handle: what ``DBHANDLES_MAX_DB_BYTES`` leaves out,
        since it bounds the actors' data, not the service's record of them. 0 by default (a store
        that shares no database with a handle)."""
        return 0

    def append_audit_values(self, rows: list[tuple[Any, ...]]) -> None:
        """``append_audit`` of rows given as the values of storable ``AuditRow`` fields, in field
        order (``success`` a ``bool``): the audit writer's form, without a dataclass per row."""
        self.append_audit([AuditRow(*row) for row in rows])

    @abstractmethod
    def query_audit(
        self,
        *,
        actor: str | None = None,
        handle: str | None = None,
        operation: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        """Newest first."""

    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A small piece of registry state (such as when ``default`` was first opened)."""

    @abstractmethod
    def set_meta(self, key: str, value: str, *, only_if_missing: bool = False) -> str:
        """Store ``value`` under ``key``; with ``only_if_missing`` keep an existing value. Returns the stored value."""

    @abstractmethod
    def set_meta_alone(self, key: str, value: str, prefix: str) -> None:
        """Store ``value`` under ``key`` and delete every other key that starts with ``prefix``
        and holds the same ``value``, in one transaction (the book of names: a name leads to one
        file at a time)."""

    @abstractmethod
    def get_database(self, database: str) -> DatabaseRow | None:
        """Who owns ``database``, if anyone was recorded."""

    @abstractmethod
    def claim_database(self, row: DatabaseRow, *, isolation_if_owner: bool = False) -> DatabaseRow:
        """Record ``row`` unless the database has an owner already; return the record that holds.
        With ``isolation_if_owner``, an existing record of the same owner takes ``row.isolation``."""

    @abstractmethod
    def release_database(self, row: DatabaseRow) -> bool:
        """Remove the record ``claim_database`` made of ``row`` while it is still exactly that
        record (same owner, mode and time) and nobody holds a grant on the database: what an
        open refused after its claim undoes. ``True`` if it was removed."""

    @abstractmethod
    def get_grant(self, database: str, actor: str) -> GrantRow | None: ...

    @abstractmethod
    def put_grant(self, row: GrantRow, check: NameCheck | None = None) -> None:
        """Insert or replace the grant of ``row.actor`` on ``row.database``. ``check``, if given,
        is called as ``put_token``'s is, in the same write transaction, before the insert, and
        raises to refuse it: a grant and a token created at once cannot give one name two
        spellings."""

    @abstractmethod
    def delete_grant(self, database: str, actor: str) -> bool:
        """Remove a grant; ``True`` if there was one."""

    @abstractmethod
    def list_grants(self, database: str | None = None, actor: str | None = None) -> list[GrantRow]:
        """Grants, by database then actor."""

    @abstractmethod
    def put_token(self, row: TokenRow, check: NameCheck | None = None) -> None:
        """Store a new token. ``check``, if given, is called with every stored token (as
        ``list_tokens``) and the names every stored grant holds, in the same write transaction,
        before the insert, and raises to refuse it: one store (every process on it) runs one
        such check-and-insert (of a token or a grant) at a time, so two concurrent creates for
        one name, or a token and a grant for two spellings of it, cannot both pass the rule."""

    @abstractmethod
    def get_token(self, token_id: str) -> TokenRow | None: ...

    @abstractmethod
    def list_tokens(self) -> list[TokenRow]: ...

    @abstractmethod
    def revoke_token(self, token_id: str, at: str) -> bool:
        """Mark a token revoked; ``True`` if it existed and was not revoked yet."""

    @property
    @abstractmethod
    def jobs(self) -> JobStore:
        """The job table (``_dbh_jobs``): every process on the home sees the same jobs."""

    @abstractmethod
    def close(self) -> None: ...
