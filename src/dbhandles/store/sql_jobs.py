"""``SqlJobTable``: the job table (``_dbh_jobs``) in either SQL store, its statements written once.

It runs on the store's own reads and write transactions. The per-actor limit is counted inside the
transaction that inserts the job: SQLite's ``BEGIN IMMEDIATE`` runs one writer at a time, and the
PostgreSQL store takes an advisory lock first (``lock``), so two processes never both pass it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import orjson

from dbhandles.store.jobs import ACTIVE, JobRow, JobStore, Owner, Why, owner_alive
from dbhandles.store.schema import JOBS, Dialect, row_from, values

if TYPE_CHECKING:
    from dbhandles.store.sql import Tx

__all__ = ["SqlJobTable"]

_ACTIVE_SQL = "status IN ('queued', 'running')"
_END = (
    f"UPDATE _dbh_jobs SET status = ?, finished_at = ?, progress = COALESCE(?, progress), "
    f"result = ?, error = ? WHERE job_id = ? AND {_ACTIVE_SQL}"
)
_KEEP = (
    "DELETE FROM _dbh_jobs WHERE actor = ? AND finished_at IS NOT NULL AND job_id NOT IN "
    "(SELECT job_id FROM _dbh_jobs WHERE actor = ? AND finished_at IS NOT NULL "
    "ORDER BY finished_at DESC, job_id DESC LIMIT ?)"
)


def _json(value: dict[str, Any] | None) -> str | None:
    """A JSON column's value, as ``schema.values`` writes one."""
    return None if value is None else orjson.dumps(value).decode()


class SqlJobTable(JobStore):
    """The job table of an SQL store.

    Args:
        dialect: the store's.
        read: the rows of one query (the store's ``_read``).
        tx: a write transaction (the store's ``_tx``).
        host: this host's name, as job rows name it.
        lock: run first in the transaction that starts a job, to serialise starts (PostgreSQL).
    """

    def __init__(
        self,
        dialect: Dialect,
        read: Callable[[str, Sequence[Any]], list[tuple[Any, ...]]],
        tx: Callable[[], AbstractContextManager[Tx]],
        host: str,
        lock: Callable[[Tx], None] | None = None,
    ) -> None:
        self._dialect = dialect
        self._read = read
        self._tx = tx
        self.host = host
        self._lock = lock
        self._select = dialect.select(JOBS)

    def _interrupt(self, tx: Tx, rows: list[JobRow], now: int, why: Why) -> int:
        ended = 0
        for row in rows:
            # Only if it is still that process's and still active: another process may have marked it.
            ended += tx.execute(
                f"UPDATE _dbh_jobs SET status = 'interrupted', finished_at = ?, error = ? "
                f"WHERE job_id = ? AND owner_pid = ? AND owner_token = ? AND {_ACTIVE_SQL}",
                (now, _json(why(row)), row.job_id, row.owner_pid, row.owner_token),
            ).rowcount
        return ended

    def _dead(self, rows: list[JobRow]) -> list[JobRow]:
        alive: dict[Owner, bool] = {}
        for row in rows:
            if row.owner not in alive:
                alive[row.owner] = owner_alive(row.owner, self.host)
        return [row for row in rows if not alive[row.owner]]

    def start_job(self, row: JobRow, *, limit: int, keep: int, since: int, why: Why) -> int | None:
        with self._tx() as tx:
            if self._lock is not None:
                self._lock(tx)
            found = tx.execute(
                f"{self._select} WHERE actor = ? AND {_ACTIVE_SQL}", (row.actor,)
            ).fetchall()
            active = [row_from(JOBS, JobRow, r) for r in found]
            dead = self._dead(active)
            if dead:
                self._interrupt(tx, dead, row.created_at, why)
            if len(active) - len(dead) >= limit:
                return len(active) - len(dead)
            tx.execute(self._dialect.insert(JOBS), values(JOBS, row))
            tx.execute("DELETE FROM _dbh_jobs WHERE finished_at < ?", (since,))
            tx.execute(_KEEP, (row.actor, row.actor, keep))
        return None

    def claim_job(self, job_id: str, now: int) -> bool:
        with self._tx() as tx:
            return (
                tx.execute(
                    "UPDATE _dbh_jobs SET status = 'running', started_at = ? "
                    "WHERE job_id = ? AND status = 'queued'",
                    (now, job_id),
                ).rowcount
                > 0
            )

    def adopt_job(self, job_id: str, owner: Owner) -> bool:
        with self._tx() as tx:
            return (
                tx.execute(
                    "UPDATE _dbh_jobs SET owner_pid = ?, owner_token = ? "
                    "WHERE job_id = ? AND owner_host = ? AND status = 'running'",
                    (owner.pid, owner.token, job_id, self.host),
                ).rowcount
                > 0
            )

    def sync_job(self, job_id: str, progress: dict[str, Any]) -> bool:
        with self._tx() as tx:
            tx.execute(
                "UPDATE _dbh_jobs SET progress = ? WHERE job_id = ? AND status = 'running'",
                (_json(progress), job_id),
            )
            found = tx.execute(
                "SELECT cancel_requested FROM _dbh_jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        return found is not None and bool(found[0])

    def finish_job(
        self,
        job_id: str,
        status: str,
        now: int,
        *,
        progress: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        keep: int | None = None,
    ) -> bool:
        with self._tx() as tx:
            changed = tx.execute(
                _END, (status, now, _json(progress), _json(result), _json(error), job_id)
            ).rowcount
            if keep is not None:
                self._keep(tx, job_id, keep)
        return changed > 0

    def _keep(self, tx: Tx, job_id: str, keep: int) -> None:
        """Delete the finished jobs of ``job_id``'s actor beyond its newest ``keep``: pruned only
        at a job's start, an actor kept one more finished job for each that was running then."""
        found = tx.execute("SELECT actor FROM _dbh_jobs WHERE job_id = ?", (job_id,)).fetchone()
        if found is not None:
            tx.execute(_KEEP, (found[0], found[0], keep))

    def cancel_job(
        self, job_id: str, now: int, error: dict[str, Any], *, keep: int | None = None
    ) -> JobRow | None:
        with self._tx() as tx:
            tx.execute(
                f"UPDATE _dbh_jobs SET cancel_requested = ? WHERE job_id = ? AND {_ACTIVE_SQL}",
                (True, job_id),
            )
            tx.execute(
                "UPDATE _dbh_jobs SET status = 'cancelled', finished_at = ?, error = ? "
                "WHERE job_id = ? AND status = 'queued'",
                (now, _json(error), job_id),
            )
            if keep is not None:
                self._keep(tx, job_id, keep)
            found = tx.execute(f"{self._select} WHERE job_id = ?", (job_id,)).fetchone()
        return row_from(JOBS, JobRow, found) if found is not None else None

    def get_job(self, job_id: str) -> JobRow | None:
        rows = self._read(f"{self._select} WHERE job_id = ?", (job_id,))
        return row_from(JOBS, JobRow, rows[0]) if rows else None

    def list_jobs(self, actor: str | None, since: int) -> list[JobRow]:
        where, args = "(finished_at IS NULL OR finished_at >= ?)", list[Any]([since])
        if actor is not None:
            where, args = f"actor = ? AND {where}", [actor, since]
        rows = self._read(f"{self._select} WHERE {where} ORDER BY created_at, job_id", args)
        return [row_from(JOBS, JobRow, r) for r in rows]

    def interrupt_dead(self, now: int, why: Why) -> int:
        # Read first: a start almost always finds no job of a dead process, and a write would wait
        # for the write lock for nothing.
        found = self._read(
            f"{self._select} WHERE status IN (?, ?) AND owner_host = ?", (*ACTIVE, self.host)
        )
        dead = self._dead([row_from(JOBS, JobRow, r) for r in found])
        if not dead:
            return 0
        with self._tx() as tx:
            return self._interrupt(tx, dead, now, why)
