"""The durable state of the service, one file per backend.

Handles, aliases, query cursors, tokens, the audit log and meta values live in the default database, so a
handle minted by one ``jtag`` invocation works in the next one and survives a server restart.
``base.HandleStore`` is the interface; ``sqlite.SqliteHandleStore`` keeps the tables in the default SQLite
file, ``postgres.PostgresHandleStore`` in a shared PostgreSQL default (imported only when configured,
so psycopg stays optional). Both are an ``sql.SqlHandleStore``: the statements are written once, the
tables are defined once (``schema.py``), and ``migrations.py`` versions them and upgrades older homes
at start-up.
"""

from __future__ import annotations

from dbhandles.store.base import (
    AuditRow,
    CursorRow,
    DatabaseRow,
    GrantRow,
    HandleRow,
    HandleStore,
    NameCheck,
    TokenRow,
    audit_text,
    file_database,
)
from dbhandles.store.sqlite import SqliteHandleStore, create_private

__all__ = [
    "AuditRow",
    "CursorRow",
    "DatabaseRow",
    "GrantRow",
    "HandleRow",
    "HandleStore",
    "NameCheck",
    "SqliteHandleStore",
    "TokenRow",
    "audit_text",
    "create_private",
    "file_database",
]
