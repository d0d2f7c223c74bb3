"""The job table's interface (``JobStore``, ``JobRow``) and who owns a job: the process that runs it.

Every process on a home (the workers of ``jtag serve --workers``, a second server, a Python
``Service``) reads and cancels jobs in ``_dbh_jobs``; only the process that runs a job writes its
progress and its end. A row names that process (``owner_host``, ``owner_pid`` and ``owner_token``, a
token of the process's start), so a process that died with jobs still ``queued`` or ``running`` is
recognised by another on the same host, which marks them ``interrupted``: the pid is gone, or a
new process reuses it (its start token differs). A job of another host is left to that host.
"""

from __future__ import annotations

import contextlib
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACTIVE",
    "JobRow",
    "JobStore",
    "Owner",
    "owner_alive",
    "process_token",
    "this_process",
]

#: The statuses of a job that has not ended.
ACTIVE = ("queued", "running")


@dataclass(frozen=True, slots=True)
class Owner:
    """A process: its host, its pid, and a token of its start (``""`` where the OS has none)."""

    host: str
    pid: int
    token: str


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job as stored (times in milliseconds since 1970)."""

    job_id: str
    actor: str
    command: str
    #: A summary of the params, secrets left out (``jobs.params_summary``).
    params: dict[str, Any]
    status: str
    progress: dict[str, Any]
    cancel_requested: bool
    #: The success envelope's fields (bounded), once ``done``.
    result: dict[str, Any] | None
    #: ``code``, ``error`` (and ``field``) of the failure, once ``failed``/``cancelled``/``interrupted``.
    error: dict[str, Any] | None
    created_at: int
    started_at: int | None
    finished_at: int | None
    owner_host: str
    owner_pid: int
    owner_token: str

    @property
    def owner(self) -> Owner:
        return Owner(self.owner_host, self.owner_pid, self.owner_token)


def process_token(pid: int) -> str | None:
    """A token of process ``pid``'s start, equal only for the same process: the boot id and the
    start time in clock ticks since boot (Linux ``/proc``). ``""`` where ``/proc`` is missing;
    ``None`` when the process is gone (or a zombie: it ended, and its parent has not reaped it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        with open("/proc/sys/kernel/random/boot_id", "rb") as boot:
            boot_id = boot.read().strip().decode()
    except FileNotFoundError:
        return "" if not os.path.isdir("/proc/self") else None
    except OSError:
        return ""
    if fields[0] in (b"Z", b"X"):
        return None
    return f"{boot_id}:{fields[19].decode()}"  # field 22 of stat(5), counted after the name


_this: Owner | None = None


def this_process() -> Owner:
    """This process (computed again after a fork)."""
    global _this
    owner = _this
    if owner is None or owner.pid != os.getpid():
        pid = os.getpid()
        owner = _this = Owner(socket.gethostname(), pid, process_token(pid) or "")
    return owner


def owner_alive(owner: Owner, host: str) -> bool:
    """Whether ``owner`` may still be running a job, as seen from ``host``: ``False`` only when it
    is on this host and its pid is gone or belongs to another process now. A process of another
    host cannot be checked from here, so it counts as alive."""
    if owner.host != host:
        return True
    here = this_process()
    if owner.pid == here.pid:
        return owner.token == here.token
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    with contextlib.suppress(OSError):
        token = process_token(owner.pid)
        if token is None:
            return False
        return not token or not owner.token or token == owner.token
    return True


#: How a job whose process died is described: its ``error`` (``code``, ``error``), from its row.
Why = Callable[[JobRow], dict[str, Any]]


class JobStore(ABC):
    """The job table: what ``jobs.JobRunner`` needs of the store, and no more.

    Args of the methods: ``now`` in milliseconds since 1970.
    """

    #: This host's name in ``owner_host`` (the PostgreSQL store's ``host_id``).
    host: str

    @abstractmethod
    def start_job(self, row: JobRow, *, limit: int, keep: int, since: int, why: Why) -> int | None:
        """Insert ``row`` (``queued``) unless its actor has ``limit`` jobs queued or running, counted
        in one write transaction with the insert, so two processes cannot both pass the limit.
        Jobs of that actor whose process died are marked ``interrupted`` (``why``) first; finished
        jobs older than ``since``, and the actor's beyond its newest ``keep``, are deleted.

        Returns:
            ``None`` once inserted; else how many jobs the actor has queued or running.
        """

    @abstractmethod
    def claim_job(self, job_id: str, now: int) -> bool:
        """``queued`` → ``running``; ``False`` if the job is no longer queued (cancelled)."""

    def adopt_job(self, job_id: str, owner: Owner) -> bool:
        """Make ``owner``, a process of this host, the owner of the running job ``job_id`` (the
        child process a server runs it in: ``server/job_process.py``), so the job is
        ``interrupted`` when that process dies, not when the one that started it does; whether
        it did (a store that cannot leaves the job to its starter)."""
        return False

    @abstractmethod
    def sync_job(self, job_id: str, progress: dict[str, Any]) -> bool:
        """Store a running job's progress; whether it was asked to stop (``data/job-cancel``)."""

    @abstractmethod
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
        """Record how a queued or running job ended; ``False`` if it had ended already. With
        ``keep``, the job's actor's finished jobs beyond its newest ``keep`` are deleted (ended
        or not here: another process may have written the end first)."""

    @abstractmethod
    def cancel_job(
        self, job_id: str, now: int, error: dict[str, Any], *, keep: int | None = None
    ) -> JobRow | None:
        """Ask a job to stop: a queued one ends ``cancelled`` (with ``error``) at once, a running one
        gets ``cancel_requested``; the row as it is now (``None`` if there is none). ``keep``: as
        ``finish_job``'s."""

    @abstractmethod
    def get_job(self, job_id: str) -> JobRow | None: ...

    @abstractmethod
    def list_jobs(self, actor: str | None, since: int) -> list[JobRow]:
        """``actor``'s jobs (everyone's for ``None``) not finished before ``since``, oldest first."""

    @abstractmethod
    def interrupt_dead(self, now: int, why: Why) -> int:
        """Mark ``interrupted`` every queued or running job of this host whose process died; how many."""
