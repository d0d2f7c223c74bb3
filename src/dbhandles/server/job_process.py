"""Server jobs in a child process: an import (export, copy) that reads a lot runs in a Python of its
own, so its work never holds the server's GIL (the child's side is ``job_child.py``).

A job thread of the server holds the GIL for much of a large import (pairing each chunk's lines with
their ids, the ``executemany`` that takes the GIL back at every row), and every request of every
other actor waits for it at each hand-off (measured: their p99 6 to 10 times the no-load p99 with two
imports running). So on a server (``ChildJobs``, set as ``JobRunner.elsewhere`` by ``create_app``),
a ``data/import``, ``data/export`` or ``data/copy`` job whose databases are all shared across
processes (``Features.shared_across_processes``: SQLite files, PostgreSQL) and that reads at least
``DBHANDLES_JOB_PROCESS_BYTES`` (the import's input, the source database file; unknown for
PostgreSQL: always) runs in a fresh interpreter (``python -m dbhandles.server.job_child``, never
``fork``) with a ``Service`` of its own on the same home: the same command, context, target rules,
audit and events (they reach the server's subscribers through the event log, as any process's).
A memory or JSON database lives in the server process, and so does a job on it.

The job thread that started the child waits for it without the GIL (``select`` on a pipe) and is the
job's only writer of the job table, as for a job it runs itself. The protocol, one JSON object a line:

* server -> child (stdin): ``{"jobId", "command", "params", "context", "cancel"}``, then
  ``{"cancel": reason}`` when the job is cancelled (``data/job-cancel``, a shutdown); end of file
  (the server died) cancels it too.
* child -> server (the descriptor named in argv): ``{"progress": {...}}`` at most every
  ``job_child.PROGRESS_SECONDS``, then ``{"status", "envelope", "progress"}`` as it ends.

The child inherits the job thread's lower CPU priority (``JOB_NICENESS``), and so does the parser
process an import starts. A child that cannot be started leaves the job to a thread of the server
(logged); one that dies without an answer fails the job (``internal_error``, what it kept is in the
database).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

from dbhandles.adapters import get_adapter_class
from dbhandles.commands.envelope import error_envelope
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError
from dbhandles.jobs import Job, JobStatus
from dbhandles.security import paths
from dbhandles.server.workers import settings_env
from dbhandles.store import SqliteHandleStore

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["CHILD_COMMANDS", "POLL_SECONDS", "ChildJobs", "idle_priority"]

log = logging.getLogger(__name__)

#: The job commands that may run in a child (a vacuum runs in SQLite's C code, without the GIL).
CHILD_COMMANDS = frozenset({"data/import", "data/export", "data/copy"})
#: How often the waiting job thread looks at ``Job.cancel_requested`` when the child is quiet.
POLL_SECONDS = 0.2


class ChildJobs:
    """Runs a server's large jobs on shared databases in child processes (``JobPlacement``).

    Args:
        service: the server's service: its settings (home, limits) are the child's, and its
            registry says which databases a job touches.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self.min_bytes = service.settings.job_process_bytes
        store = service.registry.store
        # A child builds its store from the settings: the same tables only for the default ones.
        self.shared_store = bool(service.settings.default_url) or type(store) is SqliteHandleStore
        #: The child's command; the descriptor it reports on is appended.
        self.argv = [sys.executable, "-m", "dbhandles.server.job_child"]

    # -- where a job runs --------------------------------------------------------------------------

    def accepts(self, command: str, params: BaseModel, context: Context) -> bool:
        """Whether ``command`` runs in a child: a child command on shared databases only, reading
        at least ``min_bytes``. Anything unclear (an unknown handle, a path refused) stays in the
        server, whose run reports it as usual."""
        if command not in CHILD_COMMANDS or not self.shared_store:
            return False
        try:
            return self._accepts(command, params, context)
        except (DbHandlesError, OSError, AttributeError):
            return False

    def _accepts(self, command: str, params: BaseModel, context: Context) -> bool:
        registry = self.service.registry
        handles: list[str] = []
        files: list[tuple[str, str]] = []  # (field, path as given)
        if command == "data/copy":
            handles = [params.from_.db_handle, params.to.db_handle]  # type: ignore[attr-defined]
        else:
            handle = getattr(params, "db_handle", None)
            if handle is not None:
                handles.append(handle)
            path_field = "input"  # the file read: the import's JSONL, the export's database
            given = getattr(params, path_field, None)
            if given is not None:
                files.append((path_field, given))
        sizes: list[int | None] = []
        for name in handles:
            entry = registry.resolve_for(name, context.actor, context.is_admin)
            if not get_adapter_class(entry.adapter_name).features.shared_across_processes:
                return False
            db_path = registry.get_db_path(entry.handle)
            if command != "data/import":  # the import writes its handle; it reads its input
                sizes.append(os.path.getsize(db_path) if db_path else None)
        purpose: paths.Purpose = "input" if command == "data/import" else "database"
        for field, given in files:
            found = paths.resolve(self.service.settings, context, given, field, purpose)
            sizes.append(os.path.getsize(found.path))
        # A source without a file (PostgreSQL) has no size here: taken as large.
        return any(size is None or size >= self.min_bytes for size in sizes)

    # -- running it --------------------------------------------------------------------------------

    def run(
        self, job: Job, params: BaseModel, context: Context, sync: Callable[[Job], None]
    ) -> tuple[JobStatus, dict[str, Any]] | None:
        """Run ``job`` in a child and wait for it (see the module docstring); ``None`` if the child
        could not be started."""
        request = {
            "jobId": job.id,
            "command": job.command,
            "params": params.model_dump(mode="json", by_alias=True, exclude_unset=True),
            "context": asdict(context),
            "cancel": job.cancel_reason if job.cancel_requested else None,
            "cancelled": job.cancel_requested,
        }
        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [*self.argv, str(write_fd)],
                stdin=subprocess.PIPE,
                pass_fds=(write_fd,),
                env=settings_env(self.service.settings),
            )
        except OSError as exc:
            os.close(read_fd)
            log.warning("job %s: no child process (%s); it runs in the server", job.id, exc)
            return None
        finally:
            os.close(write_fd)
        job.pid = proc.pid
        # At once, before the child spends its first second importing: the parser it starts, and
        # anything else, inherit the class.
        idle_priority(proc.pid)
        assert proc.stdin is not None
        try:
            _send(proc.stdin, request)
            final = self._follow(job, proc, read_fd, sync)
        finally:
            os.close(read_fd)
            if proc.stdin is not None:
                proc.stdin.close()
            code = proc.wait()
        if final is None:
            crash = DbHandlesError(
                f"{job.command} failed: its process (pid {proc.pid}) ended with status {code} "
                "without an answer; the batches it committed are kept, and the server log may "
                "have the details; run it again to finish it"
            )
            return "failed", error_envelope(crash, context)
        job.progress = dict(final.get("progress") or job.progress)
        return final["status"], final["envelope"]

    def _follow(
        self, job: Job, proc: subprocess.Popen[bytes], read_fd: int, sync: Callable[[Job], None]
    ) -> dict[str, Any] | None:
        """Read the child's messages until it closes its end; relay a cancellation once."""
        assert proc.stdin is not None
        told = job.cancel_requested  # sent with the request
        pending = b""
        final: dict[str, Any] | None = None
        while True:
            if job.cancel_requested and not told:
                told = True
                with contextlib.suppress(OSError):  # it is ending anyway
                    _send(proc.stdin, {"cancel": job.cancel_reason})
            ready, _, _ = select.select([read_fd], [], [], POLL_SECONDS)
            if not ready:
                continue
            data = os.read(read_fd, 1 << 16)
            if not data:
                return final
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                message = orjson.loads(line)
                if "status" in message:
                    final = message
                elif "progress" in message:
                    job.progress = message["progress"]
                    sync(job)


def idle_priority(pid: int) -> bool:
    """Put process ``pid`` (0: this one) in the kernel's idle class (``SCHED_IDLE``, Linux), with
    the processes it starts from then on: it runs on the CPU time nothing else wants, and a thread
    of the server that wakes up takes the CPU from it at once. A niceness alone lets the job run out
    its time slice first (measured: the reader's p99 4 times the no-load p99 with two standalone
    imports at niceness 10, 1.2 to 2.3 times in the idle class). Whether it was possible."""
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        return False
    return True


def _send(stream: IO[bytes], message: dict[str, Any]) -> None:
    stream.write(orjson.dumps(message) + b"\n")
    stream.flush()
