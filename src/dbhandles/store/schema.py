"""The one definition of the system tables (``_dbh_*``), and how each dialect spells them.

Both stores create their tables, name their columns and convert their rows from ``TABLES``; no other
place spells a column list. Column types are portable (``Kind``) and rendered by a ``Dialect``: a
boolean is an ``INTEGER`` 0/1 in SQLite and a ``boolean`` in PostgreSQL; JSON is text in both (an
orjson round trip keeps a float a float, where jsonb turns 1e16 into 10**16, and a keyset position
must come back exactly as it went in).

``TABLES`` is the *current* shape, schema version ``migrations.SCHEMA_VERSION``: a new home is created
from it directly. A home made by an older release is brought to it by the steps in ``migrations.py``,
so a change here needs a step there; ``tests/test_store_upgrade.py`` checks that an upgraded home of
the first release has exactly the tables, columns and indexes of a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from operator import attrgetter
from typing import Any, TypeVar

from dbhandles.values import dump_json, read_json

__all__ = [
    "ALIASES",
    "AUDIT",
    "CURSORS",
    "DATABASES",
    "GRANTS",
    "HANDLES",
    "JOBS",
    "META",
    "POSTGRES",
    "SQLITE",
    "TABLES",
    "TOKENS",
    "Column",
    "Dialect",
    "Index",
    "Kind",
    "Table",
    "create_index",
    "create_statements",
    "create_table",
    "row_from",
    "values",
]

R = TypeVar("R")


class Kind(Enum):
    """A portable column type."""

    TEXT = "text"
    INT = "int"  # 32 bits are enough (page numbers and sizes)
    BIGINT = "bigint"  # milliseconds since 1970, counts
    BOOL = "bool"
    JSON = "json"  # a JSON value as text, written and read with orjson
    SERIAL = "serial"  # insertion order: PostgreSQL's bigserial; SQLite's rowid serves, no column


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: Kind
    not_null: bool = False
    default: bool | None = None
    #: The dialect that has this column, when only one does (``host``: only a shared store needs it).
    only: str | None = None


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: str
    indexes: tuple[Index, ...] = ()
    #: Rows can be added but never changed or removed; the error message a change raises.
    append_only: str | None = None

    @cached_property
    def fields(self) -> tuple[Column, ...]:
        """The columns of the row dataclass (same names, same order): not a SERIAL column, not a
        dialect's own."""
        return tuple(c for c in self.columns if c.kind is not Kind.SERIAL and c.only is None)

    @cached_property
    def encoder(self) -> Callable[[Any], tuple[Any, ...]]:
        """A row dataclass's column values, as ``values(self, row)`` returns them."""
        return _row_encoder(self)


def _col(name: str, kind: Kind = Kind.TEXT, **options: Any) -> Column:
    return Column(name, kind, **options)


def _required(name: str, kind: Kind = Kind.TEXT, **options: Any) -> Column:
    return Column(name, kind, not_null=True, **options)


HANDLES = Table(
    "_dbh_handles",
    (
        _col("handle"), _required("adapter"), _required("config", Kind.JSON), _required("opened_at", Kind.BIGINT),
        _required("last_used_at", Kind.BIGINT), _required("emit_events", Kind.BOOL, default=True),
        _col("owner"), _col("permissions", Kind.JSON), _col("host", only="postgres"),
        _col("seq", Kind.SERIAL),
    ),
    key="handle",
)  # fmt: skip
ALIASES = Table(
    "_dbh_aliases",
    # owner: the actor who pointed the alias (since schema version 3); only it (or an administrator)
    # may use or re-point it.
    (_col("alias"), _required("handle"), _col("owner")),
    key="alias",
    indexes=(Index("_dbh_aliases_handle", ("handle",)),),
)
CURSORS = Table(
    "_dbh_cursors",
    (
        _col("cursor_id"), _required("handle"), _required("collection"), _required("spec", Kind.JSON),
        _col("position", Kind.JSON), _required("page_number", Kind.INT), _required("total_count", Kind.BIGINT),
        _required("page_size", Kind.INT), _required("exhausted", Kind.BOOL), _col("session_id"),
        # owner: the limited actor the cursor counts against (since schema version 6).
        _required("expires_at", Kind.BIGINT), _col("owner"),
    ),
    key="cursor_id",
    indexes=(
        Index("_dbh_cursors_handle", ("handle",)),
        Index("_dbh_cursors_session", ("session_id",)),  # since schema version 2 in SQLite
        Index("_dbh_cursors_owner", ("owner",)),  # since schema version 6
    ),
)  # fmt: skip
AUDIT = Table(
    "_dbh_audit",
    (
        _col("seq", Kind.SERIAL), _required("at"), _required("actor"), _col("session_id"), _col("handle"),
        _required("command"), _required("operation"), _col("collection"), _col("record_id"),
        _required("success", Kind.BOOL), _col("code"), _col("target"),
    ),
    key="seq",
    indexes=(Index("_dbh_audit_at", ("at",)),),
    append_only="the audit log is append-only",
)  # fmt: skip
META = Table("_dbh_meta", (_col("key"), _required("value")), key="key")
TOKENS = Table(
    "_dbh_tokens",
    (
        _col("token_id"), _required("actor"), _required("secret_hash"), _required("is_admin", Kind.BOOL),
        _required("created_at"), _col("expires_at"), _col("revoked_at"),
    ),
    key="token_id",
)  # fmt: skip
#: Who owns a database (a file by its real path, since schema version 3): ownership lives here, never
#: in a file next to the database that a data command could write.
DATABASES = Table(
    "_dbh_databases",
    (_col("db_key"), _required("owner"), _required("isolation"), _required("created_at")),
    key="db_key",
)
#: What an owner (or an administrator) granted another actor on a database (since version 3).
GRANTS = Table(
    "_dbh_grants",
    (
        _col("grant_id"), _required("db_key"), _required("actor"), _required("permissions", Kind.JSON),
        _required("granted_by"), _required("granted_at"),
    ),
    key="grant_id",
    indexes=(Index("_dbh_grants_actor", ("actor", "db_key")),),
)  # fmt: skip
#: Long commands run as jobs (since schema version 5), by whichever process on the home runs them:
#: every process reads and cancels them here. Times in milliseconds since 1970; ``owner_*`` name the
#: process that runs the job, so another can tell when it died (``store/jobs.py``).
JOBS = Table(
    "_dbh_jobs",
    (
        _col("job_id"), _required("actor"), _required("command"), _required("params", Kind.JSON),
        _required("status"), _required("progress", Kind.JSON),
        _required("cancel_requested", Kind.BOOL, default=False), _col("result", Kind.JSON),
        _col("error", Kind.JSON), _required("created_at", Kind.BIGINT), _col("started_at", Kind.BIGINT),
        _col("finished_at", Kind.BIGINT), _required("owner_host"), _required("owner_pid", Kind.BIGINT),
        _required("owner_token"),
    ),
    key="job_id",
    indexes=(
        Index("_dbh_jobs_actor", ("actor", "status")),
        Index("_dbh_jobs_status", ("status", "owner_host")),
    ),
)  # fmt: skip
TABLES = (HANDLES, ALIASES, CURSORS, AUDIT, META, TOKENS, DATABASES, GRANTS, JOBS)


# -- dialects --------------------------------------------------------------------------------------


class Dialect:
    """How one database spells the tables: this class SQLite, ``_Postgres`` what PostgreSQL changes.

    Statements everywhere are written in SQLite's spelling (``?`` parameters, unqualified ``_dbh_*``
    names); the PostgreSQL store runs them with ``%s`` on connections whose ``search_path`` is its
    schema."""

    name = "sqlite"
    types: dict[Kind, str] = {
        Kind.TEXT: "TEXT", Kind.INT: "INTEGER", Kind.BIGINT: "INTEGER", Kind.BOOL: "INTEGER",
        Kind.JSON: "TEXT", Kind.SERIAL: "",
    }  # fmt: skip
    #: What orders a table's rows as they were inserted.
    order = "rowid"
    #: A query with one parameter, a table name: a count, 0 when the table does not exist.
    has_table = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"

    def __init__(self) -> None:
        self._lists = {t.name: ", ".join(c.name for c in self.row_columns(t)) for t in TABLES}

    def columns(self, table: Table) -> tuple[Column, ...]:
        """The columns ``table`` has in this dialect."""
        return tuple(c for c in table.columns if c.only in (None, self.name) and self.types[c.kind])

    def row_columns(self, table: Table) -> tuple[Column, ...]:
        """The columns a row is written and read with: ``table.fields``, then this dialect's own."""
        return tuple(c for c in self.columns(table) if c.kind is not Kind.SERIAL)

    def names(self, table: Table) -> str:
        """``row_columns`` as a column list for SELECT and INSERT."""
        return self._lists[table.name]

    def select(self, table: Table) -> str:
        return f"SELECT {self.names(table)} FROM {table.name}"

    def insert(self, table: Table) -> str:
        count = len(self.row_columns(table))
        return f"INSERT INTO {table.name} ({self.names(table)}) VALUES ({', '.join('?' * count)})"

    def literal(self, value: bool) -> str:
        return str(int(value))

    def guard(self, table: Table, message: str) -> list[str]:
        """The statements that refuse every change of ``table``'s rows."""
        return [
            f"CREATE TRIGGER IF NOT EXISTS {table.name}_no_{op.lower()} BEFORE {op} ON {table.name}\n"
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            for op in ("UPDATE", "DELETE")
        ]


class _Postgres(Dialect):
    name = "postgres"
    types = {
        Kind.TEXT: "text", Kind.INT: "integer", Kind.BIGINT: "bigint", Kind.BOOL: "boolean",
        Kind.JSON: "text", Kind.SERIAL: "bigserial",
    }  # fmt: skip
    order = "seq"
    has_table = (
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    )

    def literal(self, value: bool) -> str:
        return "true" if value else "false"

    def guard(self, table: Table, message: str) -> list[str]:
        function = f"{table.name}_append_only"
        return [
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS\n"
            f"    'BEGIN RAISE EXCEPTION ''{message}''; END'",
            f"CREATE TRIGGER {function} BEFORE UPDATE OR DELETE OR TRUNCATE ON {table.name}\n"
            f"    FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ]


SQLITE: Dialect = Dialect()
POSTGRES: Dialect = _Postgres()


# -- DDL -------------------------------------------------------------------------------------------


def create_table(dialect: Dialect, table: Table) -> str:
    lines = []
    for column in dialect.columns(table):
        words = [column.name, dialect.types[column.kind]]
        if column.name == table.key:
            words.append("PRIMARY KEY")
        elif column.not_null:
            words.append("NOT NULL")
        if column.default is not None:
            words.append(f"DEFAULT {dialect.literal(column.default)}")
        lines.append(" ".join(words))
    return f"CREATE TABLE IF NOT EXISTS {table.name} (\n    " + ",\n    ".join(lines) + "\n)"


def create_index(table: Table, index: Index) -> str:
    return f"CREATE INDEX IF NOT EXISTS {index.name} ON {table.name} ({', '.join(index.columns)})"


def create_statements(dialect: Dialect) -> list[str]:
    """Every statement that creates the current system tables in a database or schema without them.

    ``IF NOT EXISTS``: a first start of the release before schema versions (whose SQLite tables were
    not made in one transaction) may have left some behind, or be making them right now. In
    PostgreSQL the tables always come together, under the same lock, so the guard is made plainly.
    """
    statements = [create_table(dialect, table) for table in TABLES]
    statements += [create_index(table, index) for table in TABLES for index in table.indexes]
    for table in TABLES:
        if table.append_only:
            statements += dialect.guard(table, table.append_only)
    return statements


# -- rows ------------------------------------------------------------------------------------------


def _encode(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind is Kind.JSON:  # exact: a query cursor's position may hold 2**70 (docs/filters.md)
        return dump_json(value).decode()
    return bool(value) if kind is Kind.BOOL else value


def _decode(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind is Kind.JSON:
        return read_json(value)
    if kind is Kind.BOOL:
        return bool(value)
    return int(value) if kind in (Kind.INT, Kind.BIGINT) else value


def _row_encoder(table: Table) -> Callable[[Any], tuple[Any, ...]]:
    """``values(table, row)`` as one ``attrgetter`` call, converting only the columns that need it
    (the audit log writes a row per command through this)."""
    fields = table.fields
    getter = attrgetter(*(c.name for c in fields))
    convert = tuple((i, c.kind) for i, c in enumerate(fields) if c.kind in (Kind.JSON, Kind.BOOL))
    if len(fields) == 1:
        return lambda row: (_encode(fields[0].kind, getter(row)),)

    def encode(row: Any) -> tuple[Any, ...]:
        out: tuple[Any, ...] = getter(row)
        if not convert:
            return out
        converted = list(out)
        for i, kind in convert:
            converted[i] = _encode(kind, converted[i])
        return tuple(converted)

    return encode


def values(table: Table, row: Any, names: Sequence[str] | None = None) -> tuple[Any, ...]:
    """The column values of ``row`` (a dataclass of ``table.fields``), or of its fields ``names``."""
    if names is None:
        return table.encoder(row)
    kinds = {c.name: c.kind for c in table.fields}
    return tuple(_encode(kinds[name], getattr(row, name)) for name in names)


def row_from(table: Table, make: Callable[..., R], columns: Sequence[Any]) -> R:
    """The row ``make`` builds from ``columns`` (read in ``table.fields`` order; extra ones ignored)."""
    return make(*(_decode(c.kind, v) for c, v in zip(table.fields, columns, strict=False)))
