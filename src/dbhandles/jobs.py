"""Jobs: long commands (``data/import``, ``data/export``, ``data/copy``, ``data/vacuum``) run apart
from requests.

A server answers requests on a small pool of threads; an import of a large file would hold one of them
for minutes, and two would freeze every other client. So a server never runs a long command on that
pool: it hands it to the service's ``JobRunner``, which has threads of its own
(``DBHANDLES_JOB_THREADS``), and either waits for it without holding a request thread (a plain
``data/import`` request) or answers at once with the job's id (``data/job-start``).

Every job has an id, an owner (the actor who started it), a status (``queued``, ``running``, ``done``,
``failed``, ``cancelled``), progress counts and, once finished, the envelope the command answered.
``data/job-status``, ``data/job-list`` and ``data/job-cancel`` read and stop them; only the owner (or an
administrator) sees a job. One actor may have ``DBHANDLES_MAX_JOBS_PER_ACTOR`` jobs queued or running;
one more is ``too_many_requests``. A finished job is kept ``DBHANDLES_JOB_RETENTION_SECONDS``.

Cancelling a queued job drops it; a running import stops at its next chunk boundary (at most a MiB of
input later), keeping the batches already committed, like Ctrl-C in ``jtag import-jsonl``; an export
stops after its current page and leaves no file; a copy after its current batch (a re-run completes it);
a vacuum cannot be stopped once it started.

Jobs live in the process that runs them: a restart forgets them (an import re-run skips what is stored).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from dbhandles.clock import iso_from_epoch
from dbhandles.commands.copy import CopyHooks
from dbhandles.commands.copy_run import CopyStats
from dbhandles.commands.envelope import error_envelope
from dbhandles.commands.jobs import JOB_COMMAND_NAMES
from dbhandles.context import Context
from dbhandles.errors import (
    DbHandlesError,
    InvalidParams,
    JobCancelled,
    JobNotFound,
    ServerUnreachable,
    TooManyRequests,
)
from dbhandles.importer.command import ExportHooks, ImportHooks
from dbhandles.importer.export import ExportStats
from dbhandles.importer.stats import ImportStats

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = [
    "JOB_COMMANDS",
    "JOB_NICENESS",
    "MAX_FINISHED_PER_ACTOR",
    "Job",
    "JobRunner",
    "JobStatus",
]

log = logging.getLogger(__name__)

#: The commands that run as jobs on a server (and the only ones ``data/job-start`` accepts).
JOB_COMMANDS = frozenset(JOB_COMMAND_NAMES)
#: Finished jobs kept per actor (the oldest are forgotten first), whatever the retention time.
MAX_FINISHED_PER_ACTOR = 100
#: The niceness of job threads (and of the parser processes they start): the kernel gives the CPU to
#: the threads that answer requests first, so a job takes the time that interactive work leaves.
JOB_NICENESS = 10

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
_ACTIVE = ("queued", "running")


@dataclass(eq=False)
class Job:
    """One long command, from ``queued`` to ``done``, ``failed`` or ``cancelled``.

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

    def __post_init__(self) -> None:
        # Running from the start: a waiter that gives up (cancels) never cancels the job's outcome.
        self.outcome.set_running_or_notify_cancel()

    @property
    def active(self) -> bool:
        return self.status in _ACTIVE

    def info(self) -> dict[str, Any]:
        """The job as ``data/job-status`` shows it (camelCase)."""
        envelope = self.envelope
        ok = envelope is not None and envelope.get("success") is True
        error = None
        if envelope is not None and not ok:
            error = {k: envelope[k] for k in ("code", "error", "field") if k in envelope}
        result = None
        if ok and envelope is not None:
            result = {
                k: v for k, v in envelope.items() if k not in ("success", "timestamp", "sessionId")
            }
        return {
            "jobId": self.id,
            "command": self.command,
            "actor": self.actor,
            "status": self.status,
            "progress": dict(self.progress),
            "cancelRequested": self.cancel_requested,
            "createdAt": iso_from_epoch(self.created_at),
            "startedAt": iso_from_epoch(self.started_at) if self.started_at else None,
            "finishedAt": iso_from_epoch(self.finished_at) if self.finished_at else None,
            "result": result,
            "error": error,
        }


def _lower_priority() -> None:
    """Run this (job) thread, and the processes it starts, at ``JOB_NICENESS`` (Linux: per thread)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICENESS)


class _ImportProgress:
    """The job's view of an import: counts after every chunk, and the cancellation point."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def update(self, stats: ImportStats) -> None:
        self.job.progress = stats.counts()
        if self.job.cancel_requested:
            why = f" ({self.job.cancel_reason})" if self.job.cancel_reason else ""
            raise JobCancelled(
                f"data/import cancelled{why}: {stats.committed()}; run it again to store the rest "
                "(records already stored are skipped)"
            )

    def close(self, stats: ImportStats) -> None:
        self.job.progress = stats.counts()


class JobRunner:
    """The jobs of one service, run on their own threads (created on the first job).

    Args:
        service: whose ``execute`` runs each job; its settings give the thread count, the per-actor
            limit and the retention time.
    """

    def __init__(self, service: Service) -> None:
        self._service = service
        settings = service.settings
        self.threads = max(1, settings.job_threads)
        self.per_actor = settings.max_jobs_per_actor
        self.retention = settings.job_retention_seconds
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False
        #: Jobs queued or running (read without the lock: the server asks it on every inline read).
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
            TooManyRequests: the actor already has ``max_jobs_per_actor`` jobs queued or running.
            ServerUnreachable: the runner was stopped or closed (the service is shutting down).
        """
        service = self._service
        if name not in JOB_COMMANDS:
            raise InvalidParams(
                f"command: only {', '.join(sorted(JOB_COMMANDS))} run as jobs (got {name!r})",
                field="command",
            )
        command = service.command(name)
        parsed = service._parse(command, params)
        with self._lock:
            if self._closed:
                raise ServerUnreachable(
                    f"{name}: the service is shutting down, so no job starts (nothing was done); "
                    "run it again once it is back"
                )
            self._forget(time.time())
            mine = sum(1 for j in self._jobs.values() if j.actor == context.actor and j.active)
            if mine >= self.per_actor:
                raise TooManyRequests(
                    f"{context.actor!r} already has {mine} job(s) queued or running (the limit is "
                    f"{self.per_actor}, DBHANDLES_MAX_JOBS_PER_ACTOR); wait for one to finish "
                    "(data/job-status) or cancel one (data/job-cancel)",
                    field="command",
                )
            job = Job(id=str(uuid.uuid4()), command=name, actor=context.actor)
            self._jobs[job.id] = job
            self.active += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.threads, thread_name_prefix="dbhandles-job", initializer=_lower_priority
                )
            executor = self._executor
        executor.submit(self._run, job, parsed, context)
        return job

    def _run(self, job: Job, params: BaseModel, context: Context) -> None:
        with self._lock:
            if job.status != "queued":  # cancelled while it waited for a thread
                return
            job.status = "running"
            job.started_at = time.time()
        try:
            envelope = self._service.execute(
                job.command, params, context=context, hooks=self._hooks(job)
            )
            status: JobStatus = "done"
        except JobCancelled as exc:
            envelope, status = error_envelope(exc, context), "cancelled"
        except DbHandlesError as exc:
            envelope, status = error_envelope(exc, context), "failed"
        except Exception:
            log.exception("job %s (%s) failed unexpectedly", job.id, job.command)
            crash = DbHandlesError(
                f"{job.command} failed unexpectedly; the server log has the details"
            )
            envelope, status = error_envelope(crash, context), "failed"
        self._finish(job, status, envelope)

    def _hooks(self, job: Job) -> object:
        if job.command == "data/import":
            return ImportHooks(progress=_ImportProgress(job), stats=ImportStats())

        if job.command == "data/export":

            def on_page(stats: ExportStats) -> None:
                job.progress = stats.counts()
                if job.cancel_requested:
                    why = f" ({job.cancel_reason})" if job.cancel_reason else ""
                    raise JobCancelled(
                        f"data/export cancelled{why} after {stats.exported} records; no file was "
                        "written"
                    )

            return ExportHooks(stats=ExportStats(), on_page=on_page)

        if job.command == "data/copy":

            def on_batch(stats: CopyStats) -> None:
                job.progress = stats.counts()
                if job.cancel_requested:
                    why = f" ({job.cancel_reason})" if job.cancel_reason else ""
                    raise JobCancelled(
                        f"data/copy cancelled{why} after {stats.batches} batches ({stats.copied} "
                        f"copied, {stats.deleted} deleted); run it again to copy the rest (records "
                        "already copied are skipped)"
                    )

            return CopyHooks(stats=CopyStats(), on_batch=on_batch)
        return None

    def _finish(self, job: Job, status: JobStatus, envelope: dict[str, Any]) -> None:
        with self._lock:
            settled = self._settle(job, status, envelope)
        if settled:
            job.outcome.set_result(envelope)

    def _settle(self, job: Job, status: JobStatus, envelope: dict[str, Any]) -> bool:
        """Record how ``job`` ended (under the lock); ``False`` if it had already ended."""
        if not job.active:
            return False
        job.status = status
        job.envelope = envelope
        job.finished_at = time.time()
        self.active -= 1
        return True

    # -- reading and cancelling ----------------------------------------------------------------------

    def get(self, job_id: str, context: Context) -> Job:
        """The job, if ``context``'s actor started it (or is an administrator).

        Raises:
            JobNotFound: unknown, forgotten, or another actor's.
        """
        with self._lock:
            self._forget(time.time())
            job = self._jobs.get(job_id)
        if job is None or (job.actor != context.actor and not context.is_admin):
            raise JobNotFound(
                f"jobId: no job {job_id!r} (unknown, another actor's, or finished more than "
                f"{self.retention:g} s ago)",
                field="jobId",
            )
        return job

    def cancel(self, job_id: str, context: Context) -> Job:
        """Ask a job to stop: a queued one is cancelled at once, a running one at its next checkpoint.

        Raises:
            JobNotFound: see ``get``.
        """
        job = self.get(job_id, context)
        dropped = error_envelope(
            JobCancelled(f"{job.command} cancelled before it started; nothing was done"), context
        )
        with self._lock:
            if job.active:
                job.cancel_requested = True
            settled = job.status == "queued" and self._settle(job, "cancelled", dropped)
        if settled:
            job.outcome.set_result(dropped)
        return job

    def list(self, context: Context) -> list[Job]:
        """The jobs of ``context``'s actor (every actor's for an administrator), oldest first."""
        with self._lock:
            self._forget(time.time())
            jobs = list(self._jobs.values())
        return [j for j in jobs if context.is_admin or j.actor == context.actor]

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
                dropped = error_envelope(
                    JobCancelled(f"{job.command} cancelled before it started ({reason}); nothing "
                                 "was done")
                )  # fmt: skip
                if job.status == "queued" and self._settle(job, "cancelled", dropped):
                    settled.append((job, dropped))
        for job, dropped in settled:
            job.outcome.set_result(dropped)
        return len(active)

    def close(self, timeout: float | None = None) -> None:
        """Cancel every job and wait (up to ``timeout``) for the running ones to stop; idempotent."""
        self.stop("the service closed")
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
