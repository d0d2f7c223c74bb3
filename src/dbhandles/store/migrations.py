"""The schema version of the system tables, and the ordered steps that bring an older home up to date.

A home records its version in ``_dbh_meta``: ``schema.version``, the last step it has, and
``schema.requires``, the oldest code (by schema version) that can use it. A step marked
``compatible`` (an added index, say) leaves ``requires`` alone, so servers of the previous version
that share a PostgreSQL default keep working while they are upgraded one at a time. A home without
these keys was made by the first release (0527062): version 1, exactly the tables that release made.

Each store calls ``upgrade`` at start-up, in one transaction that holds the store's write lock (SQLite
``BEGIN IMMEDIATE``, PostgreSQL ``pg_advisory_xact_lock``): of several processes starting at once, one
creates or upgrades the tables and the others wait, then find the home current. A step that fails
rolls everything back: the home stays as it was. A home that requires newer code raises
``StateTooNew`` and is not changed.

To change the tables: change ``schema.TABLES`` (what a new home gets) and append a ``Step`` here that
does the same to an existing home, with the next version; ``tests/test_store_upgrade.py`` checks that
the release's home, upgraded, has exactly the shape of a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from dbhandles.errors import StateTooNew
from dbhandles.store.base import file_database
from dbhandles.store.schema import (
    CURSORS,
    DATABASES,
    GRANTS,
    JOBS,
    Dialect,
    Kind,
    create_index,
    create_statements,
    create_table,
)
from dbhandles.store.sql import Tx

__all__ = ["SCHEMA_VERSION", "STEPS", "Step", "is_current", "stored_version", "upgrade"]

VERSION_KEY = "schema.version"
REQUIRES_KEY = "schema.requires"


@dataclass(frozen=True, slots=True)
class Step:
    """One upgrade: ``apply`` takes a home from ``version - 1`` to ``version``."""

    version: int
    title: str
    apply: Callable[[Tx, Dialect], None]
    #: Code of the previous version still works on the result (the step only adds an index, say).
    compatible: bool = False


def _index_cursor_sessions(tx: Tx, dialect: Dialect) -> None:
    # Already there in PostgreSQL (its first release made it), new in SQLite.
    index = next(i for i in CURSORS.indexes if i.name == "_dbh_cursors_session")
    tx.execute(create_index(CURSORS, index))


def _file_based(adapter: str) -> bool:
    from dbhandles.adapters import get_adapter_class
    from dbhandles.errors import DbHandlesError

    try:
        return get_adapter_class(adapter).features.file_based
    except DbHandlesError:
        return False


def _tenants(tx: Tx, dialect: Dialect) -> None:
    """Ownership and grants in the store; aliases and audit rows say whose and what.

    Ownership used to be a ``<file>.owner`` file next to the database, which a data command could
    write (and so forge). Those files are not read: the owners of databases opened with isolation
    are taken from the handle table itself (its rows were written by the service), and an alias
    belongs to the owner of the handle it points at.
    """
    text = dialect.types[Kind.TEXT]
    tx.execute(f"ALTER TABLE _dbh_aliases ADD COLUMN owner {text}")
    tx.execute(f"ALTER TABLE _dbh_audit ADD COLUMN target {text}")
    for table in (DATABASES, GRANTS):
        tx.execute(create_table(dialect, table))
        for index in table.indexes:
            tx.execute(create_index(table, index))
    tx.execute(
        "UPDATE _dbh_aliases SET owner = "
        "(SELECT owner FROM _dbh_handles WHERE _dbh_handles.handle = _dbh_aliases.handle)"
    )
    rows = tx.execute(
        "SELECT adapter, config, owner, permissions, opened_at FROM _dbh_handles "
        "WHERE owner IS NOT NULL AND permissions IS NOT NULL ORDER BY opened_at"
    ).fetchall()
    for adapter, config, owner, permissions, _ in rows:
        isolation = orjson.loads(permissions).get("isolationMode", "none")
        path = orjson.loads(config).get("path")
        if isolation in ("soft", "strict") and isinstance(path, str) and _file_based(adapter):
            tx.execute(
                "INSERT INTO _dbh_databases (db_key, owner, isolation, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (db_key) DO NOTHING",
                (file_database(path), owner, isolation, "1970-01-01T00:00:00.000Z"),
            )


def _first_release_handles(tx: Tx, dialect: Dialect) -> None:
    """Rows the first release left that later code reads differently.

    - Memory handles: their database lived in the process that opened it, and this code serves an
      unknown memory handle as a fresh, empty database in every process; the rows (and aliases to
      them) are removed, so their handles are ``handle_not_found`` as the design says.
    - File handles stored with mode ``create``: this code stores ``readwrite`` once the file exists,
      so that a deleted file is reported instead of silently created again on the next read.
    """
    memory = [row[0] for row in tx.execute(
        "SELECT handle FROM _dbh_handles WHERE adapter = 'memory'"
    ).fetchall()]  # fmt: skip
    for handle in memory:
        tx.execute("DELETE FROM _dbh_aliases WHERE handle = ?", (handle,))
        tx.execute("DELETE FROM _dbh_handles WHERE handle = ?", (handle,))
    rows = tx.execute("SELECT handle, adapter, config FROM _dbh_handles").fetchall()
    for handle, adapter, config in rows:
        parsed = orjson.loads(config)
        if parsed.get("mode") == "create" and _file_based(adapter):
            parsed["mode"] = "readwrite"
            tx.execute(
                "UPDATE _dbh_handles SET config = ? WHERE handle = ?",
                (orjson.dumps(parsed).decode(), handle),
            )


def _cursor_owners(tx: Tx, dialect: Dialect) -> None:
    owner = next(c for c in CURSORS.columns if c.name == "owner")
    tx.execute(f"ALTER TABLE _dbh_cursors ADD COLUMN owner {dialect.types[owner.kind]}")
    index = next(i for i in CURSORS.indexes if i.name == "_dbh_cursors_owner")
    tx.execute(create_index(CURSORS, index))


def _jobs(tx: Tx, dialect: Dialect) -> None:
    tx.execute(create_table(dialect, JOBS))
    for index in JOBS.indexes:
        tx.execute(create_index(JOBS, index))


STEPS: tuple[Step, ...] = (
    Step(
        2,
        "index _dbh_cursors by session_id: ending a session deletes its cursors",
        _index_cursor_sessions,
        compatible=True,
    ),
    # Not compatible: code of version 2 would ignore ownership, grants and alias owners.
    Step(3, "tenants: database owners, grants, alias owners, audit targets", _tenants),
    Step(
        4,
        "first-release handle rows: memory handles removed, file handles readwrite",
        _first_release_handles,
        compatible=True,
    ),
    # Compatible: code of version 4 keeps its jobs in memory and never reads the new table.
    Step(5, "jobs: the job table every process on the home reads", _jobs, compatible=True),
    # Compatible: code of version 5 writes no owner (its cursors count against no one) and reads
    # the columns it names.
    Step(
        6,
        "cursor owners: the cursor limit of an actor counted in the store",
        _cursor_owners,
        compatible=True,
    ),
)

#: The version this code creates and upgrades homes to.
SCHEMA_VERSION = STEPS[-1].version


def _target(steps: Sequence[Step]) -> int:
    versions = [step.version for step in steps]
    if versions != list(range(2, len(versions) + 2)):
        raise ValueError(f"schema steps must be numbered 2, 3, ... in order, not {versions}")
    return len(versions) + 1


def stored_version(tx: Tx, dialect: Dialect) -> tuple[int, int] | None:
    """``(version, requires)`` of the home, or ``None`` when it has no system tables yet."""
    if not tx.execute(dialect.has_table, ("_dbh_meta",)).fetchone()[0]:
        return None
    found = dict(
        tx.execute(
            "SELECT key, value FROM _dbh_meta WHERE key IN (?, ?)", (VERSION_KEY, REQUIRES_KEY)
        ).fetchall()
    )
    version = int(found.get(VERSION_KEY, 1))
    return version, int(found.get(REQUIRES_KEY, version))


def _usable(found: tuple[int, int], target: int, where: str) -> None:
    version, requires = found
    if requires > target:
        raise StateTooNew(
            f"{where} was upgraded by a newer dbhandles: its system tables have schema version "
            f"{version}, which needs a dbhandles of schema version {requires} or later, and this "
            f"one has {target}. Run a newer dbhandles (pip install -U dbhandles), or use another "
            f"home (DBHANDLES_HOME, DBHANDLES_DEFAULT_URL); nothing was changed"
        )


def is_current(tx: Tx, dialect: Dialect, *, where: str, steps: Sequence[Step] = STEPS) -> bool:
    """Whether the home needs no ``upgrade`` (a read that takes no lock).

    Raises:
        StateTooNew: the home needs newer code.
    """
    target = _target(steps)
    found = stored_version(tx, dialect)
    if found is None:
        return False
    _usable(found, target, where)
    return found[0] >= target


def upgrade(tx: Tx, dialect: Dialect, *, where: str, steps: Sequence[Step] = STEPS) -> int:
    """Create the system tables in an empty home, or apply the steps it lacks, in order; the version
    the home has now. The caller holds the write lock and commits ``tx``.

    Args:
        where: the home as named in an error (``the default database /path``).
        steps: the upgrade steps (tests add some of their own).

    Raises:
        StateTooNew: the home needs newer code (nothing is changed).
    """
    target = _target(steps)
    found = stored_version(tx, dialect)
    if found is None:
        for statement in create_statements(dialect):
            tx.execute(statement)
    else:
        _usable(found, target, where)
        if found[0] >= target:
            return found[0]
        for step in steps:
            if step.version > found[0]:
                step.apply(tx, dialect)
    requires = max((s.version for s in steps if not s.compatible), default=1)
    for key, value in ((VERSION_KEY, target), (REQUIRES_KEY, requires)):
        tx.execute(
            "INSERT INTO _dbh_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )
    return target
