"""Jobs: long commands (``data/import``, ``data/export``, ``data/copy``, ``data/vacuum``) run apart
from requests.

A server answers requests on a small pool of threads; an import of a large file would hold one of them
for minutes, and two would freeze every other client. So a server never runs a long command on that
pool: it hands it to the service's ``JobRunner``, which has threads of its own
(``DBHANDLES_JOB_THREADS``), and either waits for it without holding a request thread (a plain
``data/import`` request) or answers at once with the job's id (``data/job-start``).

Every job has an id, an owner (the actor who started it), a status (``queued``, ``running``, ``done``,
``failed``, ``cancelled``, ``interrupted``), progress counts and, once finished, the envelope the
command answered. Jobs are rows of the job table (``_dbh_jobs``, ``store/jobs.py``), so every process
on the home sees them: the process that runs a job writes it at its start, its progress (at most
every ``SYNC_SECONDS``) and its end; ``data/job-status``, ``data/job-list`` and ``data/job-cancel``
read and stop them from any process; only the owner (or an administrator) sees a job. A cancel sent
to another process sets the row's ``cancel_requested``, which the running process reads with its
next progress write, at a batch boundary. One actor may have ``DBHANDLES_MAX_JOBS_PER_ACTOR`` jobs
queued or running on the whole home (counted in the transaction that inserts the job); one more is
``too_many_requests``. In one process an actor's jobs hold ``DBHANDLES_JOB_THREADS_PER_ACTOR`` of the
job threads at most, and there are at least twice as many plus one (``job_turns.py``): its others
wait their turn, a free thread goes first to the waiting actor holding fewest, so two actors' stuck
jobs never stop a third's. A
finished job is kept ``DBHANDLES_JOB_RETENTION_SECONDS``.

On a server, a large job on databases shared across processes runs in a child process instead
(``JobRunner.elsewhere``, ``server/job_process.py``), so that its work never holds the server's GIL;
the job thread waits for the child and relays its progress and a cancellation, as below.

The process that runs a job also keeps it in memory (``Job``): a request that sent the command itself
waits for its ``outcome`` there, and its status there is fresher than the row's.

Cancelling a queued job drops it; a running job's statement is interrupted (``budget.stopping``),
an import keeps the batches already committed (like Ctrl-C in ``jtag import-jsonl``), an export leaves
no file, a copy keeps its committed batches (a re-run completes it).

A process that dies with jobs queued or running leaves their rows behind: the next service to start
on the same host (and any job start of the same actor) marks them ``interrupted``, with what each
command leaves behind (``commands.jobs.AFTER_INTERRUPTION``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel

from dbhandles.budget import Pacer, stopping
from dbhandles.clock import iso_from_epoch
from dbhandles.commands.envelope import error_envelope
from dbhandles.commands.jobs import (
    JOB_COMMAND_NAMES,
    MAX_TEXT,
    bounded_result,
    cancel_check,
    interrupted_error,
    job_outcome,
    params_summary,
    row_info,
)
from dbhandles.context import Context
from dbhandles.errors import (
    DbHandlesError,
    InvalidParams,
    JobCancelled,
    JobNotFound,
    ServerUnreachable,
    TooManyRequests,
)
from dbhandles.job_heap import HeapKeeper
from dbhandles.job_hooks import job_hooks
from dbhandles.job_progress import ProgressWriter
from dbhandles.job_turns import Turns
from dbhandles.store.jobs import JobRow, JobStore, this_process
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.commands import Command
    from dbhandles.service import Service

__all__ = [
    "JOB_COMMANDS",
    "JOB_NICENESS",
    "MAX_FINISHED_PER_ACTOR",
    "SYNC_SECONDS",
    "Job",
    "JobPlacement",
    "JobRunner",
    "JobStatus",
    "job_hooks",
    "run_job",
]

log = logging.getLogger(__name__)

#: The commands that run as jobs on a server (and the only ones ``data/job-start`` accepts).
JOB_COMMANDS = frozenset(JOB_COMMAND_NAMES)
#: Finished jobs kept per actor (the oldest are forgotten first), whatever the retention time.
MAX_FINISHED_PER_ACTOR = 100
#: The niceness of job threads (and of the parser processes they start): the kernel gives the CPU to
#: the threads that answer requests first, so a job takes the time that interactive work leaves.
JOB_NICENESS = 10
#: A running job writes its progress to the job table (and reads whether it was cancelled from
#: another process) at most this often: at most twice a second, at its batch boundaries.
SYNC_SECONDS = 0.5

JobStatus = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
_ACTIVE = ("queued", "running")


def _ms(t: float) -> int:
    return int(t * 1000)


@dataclass(eq=False)
class Job:
    """One long command run by this process, from ``queued`` to ``done``, ``failed`` or ``cancelled``
    (its row in the job table is what other processes see).

    ``outcome`` resolves to the envelope the command answered (success or failure) once the job is
    finished, so a request can wait for it without holding a thread.
    """

    id: str
    command: str
    actor: str
    created_at: float = field(default_factory=time.time)
    status: JobStatus = "queued"
    progress: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    envelope: dict[str, Any] | None = None
    cancel_requested: bool = False
    #: Why the job was asked to stop, when not by ``data/job-cancel`` (a server shutting down).
    cancel_reason: str | None = None
    outcome: Future[dict[str, Any]] = field(default_factory=Future)
    #: When the progress was last written to the job table (``time.monotonic``).
    synced_at: float = float("-inf")
    #: The process that runs it: this one, or a child (``JobPlacement``); ``None`` until it starts.
    pid: int | None = None

    def __post_init__(self) -> None:
        # Running from the start: a waiter that gives up (cancels) never cancels the job's outcome.
        self.outcome.set_running_or_notify_cancel()

    @property
    def active(self) -> bool:
        return self.status in _ACTIVE


def _lower_priority() -> None:
    """Run this (job) thread, and the processes it starts, at ``JOB_NICENESS`` (Linux: per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)


def run_job(
    service: Service, job: Job, params: BaseModel, context: Context, hooks: object
) -> tuple[JobStatus, dict[str, Any]]:
    """Run ``job``'s command in this process; return how it ended and the envelope it answered
    (never raises for its own failures: they are the envelope); a cancel interrupts its statement."""
    try:
        with stopping(cancel_check(job)):
            envelope = service.execute(job.command, params, context=context, hooks=hooks)
        return "done", envelope
    except JobCancelled as exc:
        return "cancelled", error_envelope(exc, context)
    except DbHandlesError as exc:
        return "failed", error_envelope(exc, context)
    except Exception:
        log.exception("job %s (%s) failed unexpectedly", job.id, job.command)
        crash = DbHandlesError(f"{job.command} failed unexpectedly; the server log has the details")
        return "failed", error_envelope(crash, context)


class JobPlacement(Protocol):
    """Where else a job may run than on this process's job threads (``server/job_process.py``: a
    child process). ``JobRunner.elsewhere`` holds one; the job thread still waits for the job."""

    def accepts(self, command: str, params: BaseModel, context: Context) -> bool:
        """Whether this job should run there (never raises)."""

    def run(
        self, job: Job, params: BaseModel, context: Context, sync: Callable[[Job], None]
    ) -> tuple[JobStatus, dict[str, Any]] | None:
        """Run it there, keeping ``job.progress`` current, calling ``sync(job)`` as it goes and
        stopping it once ``job.cancel_requested`` is set; ``None`` if it could not be started
        (the job then runs here)."""


class JobRunner:
    """The jobs of one service: started and run here on threads of their own (created on the first
    job), read and cancelled through the job table, whichever process runs them.

    Args:
        service: whose ``execute`` runs each job and whose store holds the job table; its settings
            give the thread count, the per-actor limit and the retention time.
    """

    def __init__(self, service: Service) -> None:
        self._service = service
        settings = service.settings
        # One actor's jobs hold ``share`` threads at most, and there are enough that two actors
        # holding theirs always leave one for a third (``job_turns``).
        share = max(1, settings.job_threads_per_actor)
        self.threads = max(2 * share + 1, settings.job_threads)
        self._turns = Turns(share, self._submit, self.threads)
        self.per_actor = settings.max_jobs_per_actor
        self.retention = settings.job_retention_seconds
        self._table: JobStore = service.registry.store.jobs
        self._progress = ProgressWriter(self._table.sync_job)
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        #: Where jobs may run instead of this process's threads (set by a server: ``JobPlacement``).
        self.elsewhere: JobPlacement | None = None
        #: Freeze the heap at the batch boundaries of jobs run here (``job_heap.py``; ``jtag serve``).
        self.freeze_heap = False
        #: Jobs of this process queued or running (read without the lock: the server asks it on
        #: every inline read).
        self.active = 0

    # -- starting ------------------------------------------------------------------------------------

    def start(
        self, name: str, params: Mapping[str, Any] | BaseModel | None, context: Context
    ) -> Job:
        """Queue ``name`` with ``params`` for ``context``'s actor; return the job at once.

        The params are checked now (``invalid_params`` comes back here, not as a failed job); the
        target, the permissions and the work itself are the job's.

        Raises:
            InvalidParams: ``name`` is not a job command, or bad params.
            TooManyRequests: the actor already has ``max_jobs_per_actor`` jobs queued or running
                (in any process on the home).
            ServerUnreachable: the runner was stopped or closed (the service is shutting down).
            StorageError: the job table could not be written (nothing was started).
        """
        service = self._service
        if name not in JOB_COMMANDS:
            raise InvalidParams(
                f"command: only {', '.join(sorted(JOB_COMMANDS))} run as jobs (got {json_text(name, 80)})",
                field="command",
            )
        command = service.command(name)
        try:
            return self._start(command, params, context)
        except DbHandlesError as exc:
            # Refused before it ran: audited as the dispatcher audits its refusals, whichever door
            # (HTTP, WebSocket, data/job-start) started it.
            service.audit_refusal(command, params, context, exc.code)
            raise

    def _start(
        self, command: Command, params: Mapping[str, Any] | BaseModel | None, context: Context
    ) -> Job:
        service, name = self._service, command.name
        parsed = service._parse(command, params)
        summary = params_summary(parsed)
        owner = this_process()
        with self._lock:
            if self._closed:
                raise ServerUnreachable(
                    f"{name}: the service is shutting down, so no job starts (nothing was done); "
                    "run it again once it is back"
                )
            now = time.time()
            self._forget(now)
            job = Job(id=str(uuid.uuid4()), command=name, actor=context.actor, created_at=now)
            row = JobRow(
                job.id, job.actor, name, summary, "queued", {}, False, None, None, _ms(now), None,
                None, self._table.host, owner.pid, owner.token,
            )  # fmt: skip
            mine = self._table.start_job(
                row, limit=self.per_actor, keep=MAX_FINISHED_PER_ACTOR,
                since=_ms(now - self.retention), why=interrupted_error,
            )  # fmt: skip
            if mine is not None:
                raise TooManyRequests(
                    f"{json_text(context.actor, 80)} already has {mine} job(s) queued or running (the limit is "
                    f"{self.per_actor}, DBHANDLES_MAX_JOBS_PER_ACTOR, counted over every process "
                    "on this home); wait for one to finish (data/job-status) or cancel one "
                    "(data/job-cancel)",
                    field="command",
                )
            self._jobs[job.id] = job
            self.active += 1
            # From this (request) thread, not a job thread: they keep this thread's niceness, and
            # they hold the store's write lock that request threads wait for (job_progress.py).
            self._progress.start()
            service.audit.start()
            service.registry.start_toucher()
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.threads, thread_name_prefix="dbhandles-job", initializer=_lower_priority
                )
        self._turns.add(job.actor, lambda: self._run(job, parsed, context))
        return job

    def _submit(self, run: Callable[[], None]) -> None:
        """Put ``run`` on the job threads (``Turns``); after ``close``, a job waiting for its
        actor's turn was cancelled already (``stop``): nothing runs it."""
        with self._lock:
            executor = self._executor
        if executor is not None:
            with contextlib.suppress(RuntimeError):  # shut down meanwhile
                executor.submit(run)

    def _run(self, job: Job, params: BaseModel, context: Context) -> None:
        with self._lock:
            if job.status != "queued":  # cancelled while it waited for a thread (row written)
                return
        if not self._stored(lambda: self._table.claim_job(job.id, _ms(time.time())), job, True):
            # Cancelled from another process while it waited for a thread.
            self._finish(job, "cancelled", self._dropped(job.command, context))
            return
        with self._lock:
            stopped = job.status != "queued"  # the service stopped meanwhile (``stop``)
            if not stopped:
                job.status = "running"
                job.started_at = time.time()
                job.pid = os.getpid()
        if stopped:
            self._store_end(job, job.status, job.envelope, job.finished_at or time.time())
            return
        elsewhere = self.elsewhere
        ran = None
        if elsewhere is not None and elsewhere.accepts(job.command, params, context):
            ran = elsewhere.run(job, params, context, self._sync)
        if ran is None:
            # Here its batches hold this process's GIL: it pauses after each (DBHANDLES_JOB_DUTY),
            # and what it keeps is kept out of full collections (job_heap.py).
            pacer = Pacer(self._service.settings.job_duty)
            heap = HeapKeeper() if self.freeze_heap else None

            def paced(job: Job) -> None:
                if heap is not None:
                    heap.batch()  # before the pause: its CPU time is paced too
                pacer.pause()
                self._sync(job)

            with pacer:
                ran = run_job(self._service, job, params, context, job_hooks(job, paced))
        status, envelope = ran
        self._finish(job, status, envelope)

    def _sync(self, job: Job) -> None:
        """At a batch boundary: write the progress to the job table (at most every
        ``SYNC_SECONDS``) and learn whether another process asked the job to stop."""
        now = time.monotonic()
        if now - job.synced_at < SYNC_SECONDS:
            return
        job.synced_at = now
        self._progress.post(job)  # written by a thread of its own: never waits for the job's lock

    def _stored(self, write: Callable[[], bool], job: Job, otherwise: bool) -> bool:
        """``write()``; a job table that cannot be written is logged, and the job goes on."""
        try:
            return write()
        except DbHandlesError as exc:
            log.warning("job %s (%s): the job table was not updated: %s", job.id, job.command, exc)
            return otherwise

    @staticmethod
    def _dropped(
        command: str, context: Context | None, reason: str | None = None
    ) -> dict[str, Any]:
        """The envelope of a job cancelled before it started."""
        why = f" ({reason})" if reason else ""
        return error_envelope(
            JobCancelled(f"{command} cancelled before it started{why}; nothing was done"), context
        )

    def _finish(self, job: Job, status: JobStatus, envelope: dict[str, Any]) -> None:
        with self._lock:
            if not job.active:
                return
        # The row first: a caller answered with the outcome may ask another process next. The job
        # counts as active until its outcome is set (a server shutting down waits for that).
        self._store_end(job, status, envelope, time.time())
        with self._lock:
            settled = self._settle(job, status, envelope)
        if settled:
            job.outcome.set_result(envelope)

    def _store_end(
        self, job: Job, status: JobStatus, envelope: dict[str, Any] | None, finished: float
    ) -> None:
        """Write how ``job`` ended to the job table."""
        self._progress.forget(job.id)
        result, error = job_outcome(envelope)
        if error is not None and len(str(error.get("error", ""))) > 4 * MAX_TEXT:
            error["error"] = str(error["error"])[: 4 * MAX_TEXT] + "…"
        self._stored(
            lambda: self._table.finish_job(
                job.id, status, _ms(finished), progress=dict(job.progress),
                result=bounded_result(result), error=error, keep=MAX_FINISHED_PER_ACTOR,
            ),
            job,
            False,
        )  # fmt: skip

    def _settle(self, job: Job, status: JobStatus, envelope: dict[str, Any]) -> bool:
        """Record how ``job`` ended (under the lock); ``False`` if it had already ended."""
        if not job.active:
            return False
        job.status = status
        job.envelope = envelope
        job.finished_at = time.time()
        self.active -= 1
        self._forget(job.finished_at)  # at most the last MAX_FINISHED_PER_ACTOR, running ones ended
        return True

    # -- reading and cancelling ----------------------------------------------------------------------

    def _row(self, job_id: str, context: Context) -> JobRow:
        row = self._table.get_job(job_id)
        since = _ms(time.time() - self.retention)
        if (
            row is None
            or (row.actor != context.actor and not context.is_admin)
            or (row.finished_at is not None and row.finished_at < since)
        ):
            raise JobNotFound(
                f"jobId: no job {json_text(job_id, 80)} (unknown, another actor's, or finished more than "
                f"{self.retention:g} s ago)",
                field="jobId",
            )
        return row

    def _info(self, row: JobRow) -> dict[str, Any]:
        """The row, with the fresher state of the live job when this process runs it."""
        info = row_info(row)
        with self._lock:
            live = self._jobs.get(row.job_id)
            if live is None or not live.active or row.status not in _ACTIVE:
                return info
            info["status"] = "running" if "running" in (live.status, row.status) else row.status
            info["progress"] = dict(live.progress)
            info["cancelRequested"] = live.cancel_requested or row.cancel_requested
            if live.started_at is not None:
                info["startedAt"] = iso_from_epoch(live.started_at)
        return info

    def get(self, job_id: str, context: Context) -> dict[str, Any]:
        """The job as ``data/job-status`` shows it (camelCase), if ``context``'s actor started it
        (or is an administrator), whichever process on the home runs it.

        Raises:
            JobNotFound: unknown, forgotten, or another actor's.
        """
        return self._info(self._row(job_id, context))

    def cancel(self, job_id: str, context: Context) -> dict[str, Any]:
        """Ask a job to stop, whichever process runs it: a queued one is cancelled at once, a running
        one at its next batch boundary (after its process reads the table's ``cancel_requested``).

        Raises:
            JobNotFound: see ``get``.
        """
        found = self._row(job_id, context)
        dropped = self._dropped(found.command, context)
        row = self._table.cancel_job(
            job_id, _ms(time.time()), job_outcome(dropped)[1] or {}, keep=MAX_FINISHED_PER_ACTOR
        )
        if row is None:
            raise JobNotFound(
                f"jobId: no job {json_text(job_id, 80)} (it was just forgotten)", field="jobId"
            )
        with self._lock:
            live = self._jobs.get(job_id)
            if live is not None and live.active:
                live.cancel_requested = True
            settled = (
                live is not None
                and row.status == "cancelled"
                and live.status == "queued"
                and self._settle(live, "cancelled", dropped)
            )
        if settled and live is not None:
            live.outcome.set_result(dropped)
        return self._info(row)

    def list(self, context: Context) -> list[dict[str, Any]]:
        """The jobs of ``context``'s actor (every actor's for an administrator), oldest first, from
        every process on the home."""
        with self._lock:
            self._forget(time.time())
        rows = self._table.list_jobs(
            None if context.is_admin else context.actor, _ms(time.time() - self.retention)
        )
        return [self._info(row) for row in rows]

    def _forget(self, now: float) -> None:
        """Drop finished jobs past the retention time, and the oldest past the per-actor count
        (under the lock)."""
        finished: dict[str, list[Job]] = {}
        for job in list(self._jobs.values()):
            if job.active or job.finished_at is None:
                continue
            if now - job.finished_at > self.retention:
                del self._jobs[job.id]
            else:
                finished.setdefault(job.actor, []).append(job)
        for jobs in finished.values():
            for job in jobs[: max(0, len(jobs) - MAX_FINISHED_PER_ACTOR)]:
                del self._jobs[job.id]

    # -- lifecycle -----------------------------------------------------------------------------------

    def stop(self, reason: str) -> int:
        """Refuse new jobs and ask every job to stop (a server shutting down): a queued one is
        cancelled at once, a running import at its next chunk and an export after its page, each
        answering ``job_cancelled`` with what was kept; a vacuum runs to its end. Return how many
        jobs were still queued or running."""
        settled: list[tuple[Job, dict[str, Any]]] = []
        with self._lock:
            self._closed = True
            active = [j for j in self._jobs.values() if j.active]
            for job in active:
                job.cancel_requested = True
                job.cancel_reason = job.cancel_reason or reason  # the first reason stands
                dropped = self._dropped(job.command, None, reason)
                if job.status == "queued" and self._settle(job, "cancelled", dropped):
                    settled.append((job, dropped))
        for job, dropped in settled:
            job.outcome.set_result(dropped)
            self._store_end(job, "cancelled", dropped, job.finished_at or time.time())
        return len(active)

    def close(self, timeout: float | None = None) -> None:
        """Cancel every job and wait (up to ``timeout``) for the running ones to stop; idempotent."""
        self.stop("the service closed")
        self._progress.close()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is None:
            return
        if timeout is None:
            executor.shutdown(wait=True, cancel_futures=True)
            return
        waiter = threading.Thread(
            target=executor.shutdown, kwargs={"wait": True, "cancel_futures": True}, daemon=True
        )
        waiter.start()
        waiter.join(timeout)
