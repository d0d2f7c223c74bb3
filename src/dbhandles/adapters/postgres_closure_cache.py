"""What a restricted handle's catalog checks found, kept while the catalog they read is unchanged.

The checks of what a read or a write reaches on PostgreSQL (``postgres_reach.read_reach``,
``postgres_foreign_schema.cascade_targets`` with ``postgres_closure``) read a dozen catalogs, a
few to a few tens of milliseconds per command. Their answer is a function of the catalog alone
(and of the names they were asked about), so it is kept per database under a **fingerprint** of
every row of the catalogs those checks read that someone other than PostgreSQL's bootstrap made
(``oid >= 16384``, ``FirstNormalObjectId``) or changed since (a built-in row a superuser altered:
``CHANGED_AFTER_INITDB``), taken by one statement before each use (``FINGERPRINT``):

* the number of those rows, the sum of their ``xmin`` and the ``bit_xor`` of a 64-bit hash of
  each one's catalog, ``ctid`` and ``xmin``. Every DDL that adds, drops or changes such a row
  (``CREATE CAST``, ``CREATE INDEX ... USING`` a user operator class, ``CREATE TRIGGER``,
  ``CREATE RULE``, ``CREATE OR REPLACE FUNCTION``, ``ALTER FUNCTION ... SECURITY DEFINER``,
  ``ALTER TABLE ... ENABLE ROW LEVEL SECURITY``, ``ALTER TABLE ... INHERIT``...) writes a new
  row version, with a new ``ctid`` and the ``xmin`` of its transaction, or removes one: the
  count, the sum or the hash changes (``tests/test_postgres_closure_cache.py`` checks each kind).
* which server and database it is (address, port, start time, database oid, the user), so no
  answer of one database is taken for another's.

A fingerprint that differs drops every answer kept for that database. At most ``_DATABASES``
databases and ``_ENTRIES`` answers per database are kept (the oldest go first). One statement
per check (``_TRANSACTION``) says which transaction asks and reads the fingerprint only for one
not seen yet: the checks of one command share it; nor for a transaction that has written
nothing of its own and reads in a snapshot (``pg_current_snapshot``: the transactions committed
and in progress) already fingerprinted: the same snapshot sees the same catalog rows, so a
command's re-check in its own transaction (``postgres_reach.recheck``) and the next command's
decision, when nothing committed meanwhile, scan no catalog. What PostgreSQL updates in place
(``VACUUM`` and ``ANALYZE``'s ``relpages``, ``reltuples``, frozen xids) keeps ``ctid`` and
``xmin``, commits no transaction, and is nothing the checks read. The cost of a fingerprint
grows with the number of rows someone made (about 0.3 ms for a few dozen tables, 0.9 ms with
the scan of the code catalogs' built-in rows; ``benchmarks/postgres_restricted.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from dbhandles.adapters import reach_guard

__all__ = ["CHANGED_AFTER_INITDB", "FINGERPRINT", "cached", "clear", "state"]

#: Runs a catalog query: ``(statement, params)`` -> a cursor (``postgres_reach.Execute``).
Execute = Callable[[str, tuple[Any, ...]], Any]

T = TypeVar("T")

#: The SQL condition "catalog row ``{0}`` was written after initdb": its ``xmin`` is younger
#: (``age``) than the one that wrote template0's ``pg_database`` row, which initdb writes after
#: every built-in row (``make_template0``). ``age`` of ``1`` (bootstrap) and ``2`` (frozen) is the
#: largest integer, and ages are compared modulo 2**32 as PostgreSQL compares xids: a change up to
#: 2**31 transactions after initdb is told from initdb's, one made once the counter has moved
#: further is not (docs/security.md). A built-in object (``oid < 16384``) changed after initdb
#: (``ALTER FUNCTION pg_catalog.lower(text) SECURITY DEFINER``, ``CREATE OR REPLACE FUNCTION
#: pg_catalog.bit_length(text)``, which keeps its oid, ``UPDATE pg_proc``) is somebody's code.
CHANGED_AFTER_INITDB = (
    "(age({0}.xmin) < (SELECT age(xmin) FROM pg_catalog.pg_database WHERE datname = 'template0'))"
)

#: Each catalog the checks read, with the test of a row someone made (its oid, or the oid of the
#: object it belongs to, ``>= 16384``); a built-in row changed after initdb counts too
#: (``CHANGED_AFTER_INITDB``). A relation's system columns (``attnum < 0``) are made and dropped
#: with its ``pg_class`` row and never change.
_CATALOGS = (
    ("pg_class", "oid"), ("pg_attribute", "attnum > 0 AND attrelid"), ("pg_type", "oid"),
    ("pg_proc", "oid"), ("pg_depend", "objid"), ("pg_cast", "oid"), ("pg_index", "indexrelid"),
    ("pg_trigger", "oid"), ("pg_rewrite", "oid"), ("pg_constraint", "oid"),
    ("pg_opclass", "oid"), ("pg_opfamily", "oid"), ("pg_amop", "oid"), ("pg_amproc", "oid"),
    ("pg_operator", "oid"), ("pg_attrdef", "oid"), ("pg_policy", "oid"),
    ("pg_inherits", "inhrelid"), ("pg_range", "rngtypid"), ("pg_partitioned_table", "partrelid"),
    ("pg_event_trigger", "oid"), ("pg_namespace", "oid"), ("pg_am", "oid"),
    ("pg_aggregate", "aggfnoid"), ("pg_language", "oid"), ("pg_transform", "oid"),
    ("pg_foreign_table", "ftrelid"),
)  # fmt: skip

#: The catalogs of code and of what picks it (functions, operators, casts, types, operator
#: classes...), whose built-in rows the checks take as PostgreSQL's own while initdb's: a change
#: of one after initdb is fingerprinted too (``CHANGED_AFTER_INITDB``: a scan of the catalog,
#: where the rows someone made are found by an index). A built-in row of the others (a system
#: catalog's ``pg_class`` or ``pg_attribute`` row a ``GRANT`` rewrote) runs nothing.
_CODE_CATALOGS = frozenset(
    ("pg_proc", "pg_type", "pg_cast", "pg_operator", "pg_opclass", "pg_opfamily", "pg_amop",
     "pg_amproc", "pg_aggregate", "pg_language", "pg_transform", "pg_am", "pg_range")
)  # fmt: skip

#: Every catalog row someone made, or of ``_CODE_CATALOGS`` changed: ``(its xmin, its catalog
#: and ctid)``.
_ROWS = "\nUNION ALL\n".join(
    f"SELECT xmin::text::bigint, '{name}' || ctid::text FROM pg_catalog.{name} r "
    f"WHERE ({test} >= 16384)"
    + (f" OR {CHANGED_AFTER_INITDB.format('r')}" if name in _CODE_CATALOGS else "")
    for name, test in _CATALOGS
)
#: The fingerprint, as text: ``rows, sum of xmin, bit_xor of a hash of each row's catalog, ctid
#: and xmin``.
FINGERPRINT = (
    "SELECT concat_ws(' ', count(*), sum(x), bit_xor(hashtextextended(r, x))) FROM (\n"
    + _ROWS
    + ") rows(x, r)"
)
#: Which server, database and user, and which transaction: its backend, start time and id once
#: it has one (a write of its own, a DDL too, gives it one: its own changes are read again); then
#: the ``FINGERPRINT``, unless the transaction is one of ``%s`` (fingerprinted already: a scalar
#: subquery in a ``CASE`` branch not taken is not run) or, writing nothing of its own, reads in a
#: snapshot of ``%s`` (fingerprinted already: the same snapshot sees the same committed
#: transactions, and so the same catalog rows); whether the transaction keeps one snapshot
#: throughout; its snapshot when it writes nothing of its own (else ``NULL``).
_TRANSACTION = f"""
SELECT inet_server_addr()::text, inet_server_port(), pg_postmaster_start_time()::text,
       (SELECT oid FROM pg_database WHERE datname = current_database()), current_user, t.id,
       CASE WHEN t.id = ANY(%s) OR t.snapshot = ANY(%s) THEN NULL ELSE ({FINGERPRINT}) END,
       current_setting('transaction_isolation') IN ('repeatable read', 'serializable'),
       t.snapshot
FROM (SELECT concat_ws(' ', inet_server_addr(), inet_server_port(), pg_postmaster_start_time(),
                       current_database(), pg_backend_pid(), now(),
                       pg_current_xact_id_if_assigned()),
             CASE WHEN pg_current_xact_id_if_assigned() IS NULL
                  THEN pg_current_snapshot()::text END) t(id, snapshot)
"""

_DATABASES = 16
_ENTRIES = 1024
_TRANSACTIONS = 64
_lock = threading.Lock()
#: Transaction (``_TRANSACTION``) -> the fingerprint it read first: the checks of one command
#: share it (as they shared the catalog state they read, up to a DDL committed between two of
#: them under ``READ COMMITTED``: the same window as between a check and the statement it
#: allows).
_seen: OrderedDict[str, str] = OrderedDict()
#: Snapshot (``pg_current_snapshot``, of a transaction writing nothing) -> (database, the
#: fingerprint read in it).
_snapshots: OrderedDict[str, tuple[tuple[Any, ...], str]] = OrderedDict()
#: Database -> (its fingerprint, {what was asked: the answer}).
_kept: OrderedDict[tuple[Any, ...], tuple[str, dict[Hashable, tuple[Any, ...]]]] = OrderedDict()


def state(execute: Execute) -> tuple[tuple[Any, ...], str]:
    """``(database, fingerprint)`` of the catalog as the caller's transaction reads it now
    (``_TRANSACTION``; read once per transaction, and once per snapshot of transactions writing
    nothing, then remembered). The read is noted for the
    command's access decisions (``reach_guard.note``): as the state the decision read when the
    transaction has one snapshot throughout (``REPEATABLE READ``), else as no usable state
    (``None``: a ``READ COMMITTED`` transaction's statements may each see another catalog).
    Errors of ``execute`` propagate."""
    with _lock:
        known, snapshots = list(_seen), list(_snapshots)
    row = execute(_TRANSACTION, (known, snapshots)).fetchone()
    database, transaction, fingerprint, snapshot = tuple(row[:5]), str(row[5]), row[6], row[8]
    if fingerprint is None:
        with _lock:
            fingerprint = _seen.get(transaction)
            held = _snapshots.get(snapshot) if fingerprint is None and snapshot else None
            if held is not None and held[0] == database:
                fingerprint = held[1]
        if fingerprint is None:  # forgotten since, by another thread, or another database's
            fingerprint = execute(_TRANSACTION, ([], [])).fetchone()[6]
    with _lock:
        _seen[transaction] = fingerprint
        _seen.move_to_end(transaction)
        while len(_seen) > _TRANSACTIONS:
            _seen.popitem(last=False)
        if snapshot and row[6] is not None:  # read in this very snapshot (not remembered from
            # an earlier statement of a READ COMMITTED transaction, another snapshot)
            _snapshots[snapshot] = (database, fingerprint)
            _snapshots.move_to_end(snapshot)
            while len(_snapshots) > _TRANSACTIONS:
                _snapshots.popitem(last=False)
    reach_guard.note(database, fingerprint if row[7] else None)
    return database, str(fingerprint)


def cached(execute: Execute, key: Hashable, compute: Callable[[], list[T]]) -> list[T]:
    """``compute()``'s answer for ``key`` (what was asked: the check and its arguments), kept
    until a DDL changes a catalog row it may have read (``FINGERPRINT``), as a new list.
    ``execute`` runs the fingerprint in the caller's transaction (``state``). Errors of
    ``execute`` or ``compute`` propagate (nothing is kept then)."""
    database, fingerprint = state(execute)
    with _lock:
        held = _kept.get(database)
        if held is not None and held[0] == fingerprint and key in held[1]:
            _kept.move_to_end(database)
            return list(held[1][key])
    answer = compute()
    with _lock:
        held = _kept.get(database)
        if held is None or held[0] != fingerprint:
            held = (fingerprint, {})
            _kept[database] = held
        entries = held[1]
        if len(entries) >= _ENTRIES:
            del entries[next(iter(entries))]
        entries[key] = tuple(answer)
        _kept.move_to_end(database)
        while len(_kept) > _DATABASES:
            _kept.popitem(last=False)
    return list(answer)


def clear() -> None:
    """Forget every kept answer (a benchmark measuring the checks cold)."""
    with _lock:
        _kept.clear()
        _seen.clear()
        _snapshots.clear()
