"""Job progress written to the job table by a thread of its own, never by the job.

A job writes its progress to the job table (``_dbh_jobs``) at batch boundaries, and learns from the
same write whether another process asked it to stop. When the job writes into the database that
also holds the job table (an import into ``default`` on an SQLite home), its own write transaction
is open at that moment, so a write to the job table from the job's thread waits for the job's own
lock: the whole busy timeout (10 s) at every progress write, for nothing (measured: a one-line
import into ``default`` over the server took 10.2 s, 0.02 s into any other database).

So the job only posts its latest progress here (the newest replaces an unwritten older one) and goes
on; this thread writes it when the table can be written (after the job's batch commits) and sets the
job's ``cancel_requested`` when the row says so, which the job reads at its next batch boundary.

The thread is started by whoever starts the first job (``start``, from ``JobRunner.start``), never by
a job thread: a thread inherits the niceness of the thread that starts it (Linux), and a job thread
runs at ``jobs.JOB_NICENESS``. Its writes hold the store's write lock (and its fsync), which the
request threads' own store writes (``data/open``, ``token/create``, a job start) wait for; at the
job's niceness the kernel could leave it holding that lock while other work runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from dbhandles.errors import DbHandlesError

__all__ = ["ProgressWriter"]

log = logging.getLogger(__name__)


class _Job(Protocol):
    id: str
    command: str
    progress: dict[str, Any]
    cancel_requested: bool


class ProgressWriter:
    """A daemon thread that writes jobs' latest progress with ``write(job_id, progress)``, which
    answers whether the row asks the job to stop. ``post`` never blocks; ``close`` stops the thread
    (what is still unwritten is dropped: a job writes its end itself)."""

    def __init__(self, write: Callable[[str, dict[str, Any]], bool]) -> None:
        self._write = write
        self._pending: dict[str, tuple[_Job, dict[str, Any]]] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writing thread now, on the calling thread's priority (see the module
        docstring); idempotent, and nothing after ``close``."""
        with self._cond:
            self._start()

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name="dbhandles-job-progress", daemon=True
            )
            self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        """The writing thread, once started."""
        return self._thread

    def post(self, job: _Job) -> None:
        """Queue ``job``'s current progress (a copy), replacing any of its progress not yet written."""
        with self._cond:
            if self._closed:
                return
            self._pending[job.id] = (job, dict(job.progress))
            self._start()  # already started by ``start`` when jobs are started by a JobRunner
            self._cond.notify()

    def forget(self, job_id: str) -> None:
        """Drop ``job_id``'s unwritten progress (the job is ending and writes its own last row)."""
        with self._cond:
            self._pending.pop(job_id, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job_id = next(iter(self._pending))
                job, progress = self._pending.pop(job_id)
            try:
                stop = self._write(job_id, progress)
            except DbHandlesError as exc:
                log.warning(
                    "job %s (%s): the job table was not updated: %s", job_id, job.command, exc
                )
                continue
            if stop:
                job.cancel_requested = True

    def close(self, timeout: float | None = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
