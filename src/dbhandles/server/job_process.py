"""Server jobs in a child process: an import (export, copy) that reads a lot runs in a Python of its
own, so its work never holds the server's GIL (the child's side is ``job_child.py``).

A job thread of the server holds the GIL for much of a large import (pairing each chunk's lines with
their ids, the ``executemany`` that takes the GIL back at every row), and every request of every
other actor waits for it at each hand-off (measured: their p99 6 to 10 times the no-load p99 with two
imports running). So on a server (``ChildJobs``, set as ``JobRunner.elsewhere`` by ``create_app``),
a ``data/import``, ``data/export`` or ``data/copy`` job whose databases are all shared across
processes (``Features.shared_across_processes``: SQLite files, PostgreSQL) and that reads at least
``DBHANDLES_JOB_PROCESS_BYTES`` (the import's input, the source database file; unknown for
PostgreSQL: always), or that a non-admin actor started whatever it reads, runs in a fresh interpreter (``python -m dbhandles.server.job_child``, never
``fork``) with a ``Service`` of its own on the same home: the same command, context, target rules,
audit and events (they reach the server's subscribers through the event log, as any process's).
A memory or JSON database lives in the server process, and so does a job on it.

The job thread that started the child waits for it without the GIL (``select`` on a pipe) and
writes the job's progress and end to the job table, as for a job it runs itself; the child owns the
job's row (``JobStore.adopt_job``) and writes the end itself only when the server is gone
(``job_child.py``). The protocol, one JSON object a line:

* server -> child (stdin): ``{"jobId", "command", "params", "context", "cancel"}``, then
  ``{"cancel": reason}`` when the job is cancelled (``data/job-cancel``, a shutdown); end of file
  (the server died) cancels it too.
* child -> server (the descriptor named in argv): ``{"progress": {...}}`` at most every
  ``job_child.PROGRESS_SECONDS``, then ``{"status", "envelope", "progress"}`` as it ends.

The child runs as background work (``background_priority``: ``SCHED_OTHER`` at niceness 10, the job
threads' ``JOB_NICENESS``, with the parser process it starts): below the server (a weight of 110
against a niceness-0 thread's 1024, so interactive commands stay well ahead), yet with a share of a
contended CPU large enough that it always progresses. It used to run in ``SCHED_BATCH`` at niceness
19 (a weight of 15): beside two busy loops at niceness 0 on two cores a child got no CPU-second in
43 s (issue 13; measured here at load average 4.5: 0.07 CPU-seconds in 6 s at niceness 19, 0.17
at niceness 10), so even the interpreter's start-up took most of a minute and the job looked
stalled, while its result's ``seconds`` (counted once the command runs) said 1.9. A cancelled child is taken to the job threads' niceness at once (stopping must
not wait for CPU time; a no-op now that it starts there, kept for a child started otherwise); one
that has not ended
``CANCEL_GRACE_SECONDS`` later is killed: the batch it had open rolls back with its transaction, the
batches it committed are kept, and the job ends ``cancelled`` as it would have.

A child that cannot be started leaves the job to a thread of the server
(logged); one that is killed (a signal) without an answer ends the job ``interrupted`` (code
``interrupted``, naming the signal); one that exits without an answer, before or after reading its
request, fails the job (``internal_error``), and so does an answer that cannot be read (the child
is killed); what it committed is in the database either way. Whenever the child died without an
answer, the job thread removes what the job created and left (``ChildJobs.clean_up``: an export's
partial file), so a re-run works. A request that cannot be written as JSON (a param orjson cannot write, such
as an integer of 64 bits or more, which the params models refuse first) fails the job before any
child starts (``invalid_params`` naming the param): a job never stays ``running`` without a child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import IO, TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

from dbhandles.adapters import get_adapter_class
from dbhandles.commands.envelope import error_envelope
from dbhandles.commands.jobs import AFTER_INTERRUPTION
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError, Interrupted, InvalidParams, JobCancelled
from dbhandles.importer.export import partial_path, remove_leftover
from dbhandles.jobs import JOB_NICENESS, Job, JobStatus
from dbhandles.security import paths
from dbhandles.server.workers import settings_env
from dbhandles.store import SqliteHandleStore
from dbhandles.values import dump_json

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = [
    "CANCEL_GRACE_SECONDS",
    "CHILD_COMMANDS",
    "JOB_CHILD_NICENESS",
    "POLL_SECONDS",
    "ChildJobs",
    "background_priority",
    "normal_priority",
]

log = logging.getLogger(__name__)

#: The job commands that may run in a child (a vacuum runs in SQLite's C code, without the GIL).
CHILD_COMMANDS = frozenset({"data/import", "data/export", "data/copy"})
#: How often the waiting job thread looks at ``Job.cancel_requested`` when the child is quiet.
POLL_SECONDS = 0.2
#: Seconds a cancelled child has to stop at its batch boundary before it is killed.
CANCEL_GRACE_SECONDS = 5.0
#: The niceness of a child job and the processes it starts (``background_priority``): the job
#: threads' (a niceness of 19 starved it beside busy processes: see the module docstring).
JOB_CHILD_NICENESS = JOB_NICENESS


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
        self.cancel_grace = CANCEL_GRACE_SECONDS

    # -- where a job runs --------------------------------------------------------------------------

    def accepts(self, command: str, params: BaseModel, context: Context) -> bool:
        """Whether ``command`` runs in a child: a child command on shared databases only, reading
        at least ``min_bytes`` or started by a non-admin actor. Anything unclear (an unknown handle, a path refused) stays in the
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
            if not context.is_admin:
                continue  # whatever its size (below)
            db_path = registry.get_db_path(entry.handle)
            if command != "data/import":  # the import writes its handle; it reads its input
                sizes.append(os.path.getsize(db_path) if db_path else None)
        if not context.is_admin:
            # A non-admin's job never shares the server's process: not its GIL, nor SQLite's
            # memory bound, which is the process's (a small view can compute gigabytes; another
            # actor's queries would find the bound full: docs/server.md "Limits").
            return True
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
            "params": params.model_dump(
                mode="json", by_alias=True, exclude_unset=True, exclude={"context"}
            ),
            "context": asdict(context),
            "cancel": job.cancel_reason if job.cancel_requested else None,
            "cancelled": job.cancel_requested,
        }
        try:
            first_line = _encode(request)
        except InvalidParams as exc:  # before any process: the job fails now, its slot is freed
            return "failed", error_envelope(exc, context)
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
        spawned = time.monotonic()
        # At once, before the child spends its first second importing: the parser it starts, and
        # anything else, inherit the class.
        background_priority(proc.pid)
        assert proc.stdin is not None
        final: dict[str, Any] | None = None
        garbled = False  # its answer could not be read: this thread killed it
        try:
            with contextlib.suppress(OSError):  # the child died first: its status says how, below
                proc.stdin.write(first_line)
                proc.stdin.flush()
            final = self._follow(job, proc, read_fd, sync)
        except Exception:  # a message it could not have sent (never raised past the job thread)
            log.exception("job %s: its process's answer could not be read; stopped", job.id)
            garbled = True
            with contextlib.suppress(OSError):
                proc.kill()
        finally:
            os.close(read_fd)
            if proc.stdin is not None:
                proc.stdin.close()
            code, cpu = _reap(proc)
        # The child died without an answer: what the job created and only it goes with it.
        removed = self.clean_up(job, params, context) if final is None else ""
        if final is None and job.cancel_requested and code == -signal.SIGKILL:
            stopped = JobCancelled(
                f"{job.command} cancelled{f' ({job.cancel_reason})' if job.cancel_reason else ''}: "
                f"its process did not stop within {self.cancel_grace:g} s and was killed; the "
                "batches it committed are kept (the one in progress was rolled back): run it "
                f"again to finish it{removed}"
            )
            return "cancelled", error_envelope(stopped, context)
        if final is None and code < 0 and not garbled:
            return "interrupted", error_envelope(_killed(job, proc.pid, code, removed), context)
        if final is None:
            crash = DbHandlesError(
                f"{job.command} failed: its process (pid {proc.pid}) ended with status {code} "
                "without an answer; the batches it committed are kept, and the server log may "
                f"have the details; run it again to finish it{removed}"
            )
            return "failed", error_envelope(crash, context)
        job.progress = {
            **(final.get("progress") or job.progress),
            # The command's own ``seconds`` start once its process runs it; these say how long
            # the process lived (waiting for the CPU included) and how much CPU it got.
            "processSeconds": round(time.monotonic() - spawned, 3),
            "processCpuSeconds": round(cpu, 3),
        }
        return final["status"], final["envelope"]

    def clean_up(self, job: Job, params: BaseModel, context: Context) -> str:
        """Remove what ``job``, whose process died, created and left: an export's partial file,
        only if that export wrote it and no export writes it now (``export.remove_leftover``).
        Other jobs leave nothing to remove: an import's rejects file lists the lines of the
        batches it committed, and a re-run replaces it. What was removed, as a clause for the
        job's message (``""``: nothing)."""
        output = getattr(params, "output", None) if job.command == "data/export" else None
        if not isinstance(output, str):
            return ""
        try:
            found = paths.resolve(self.service.settings, context, output, "output", "output")
        except (DbHandlesError, OSError):
            return ""
        if not remove_leftover(found.path):
            return ""
        return f"; its partial file {partial_path(output).name} was removed"

    def _follow(
        self, job: Job, proc: subprocess.Popen[bytes], read_fd: int, sync: Callable[[Job], None]
    ) -> dict[str, Any] | None:
        """Read the child's messages until it closes its end; relay a cancellation once."""
        assert proc.stdin is not None
        told = job.cancel_requested  # sent with the request
        kill_at = time.monotonic() + self.cancel_grace if told else None
        pending = b""
        final: dict[str, Any] | None = None
        while True:
            if job.cancel_requested and not told:
                told = True
                normal_priority(proc.pid)  # first: it stops on CPU time it then gets
                with contextlib.suppress(OSError):  # it is ending anyway
                    _send(proc.stdin, {"cancel": job.cancel_reason})
                kill_at = time.monotonic() + self.cancel_grace
            if kill_at is not None and final is None and time.monotonic() > kill_at:
                log.warning("job %s: its process did not stop within %g s of the cancel; killed",
                            job.id, self.cancel_grace)  # fmt: skip
                kill_at = None
                with contextlib.suppress(OSError):  # it ended meanwhile
                    proc.kill()
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


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for ``proc`` to end: its exit status (``Popen.returncode``'s convention) and the CPU
    seconds (user and system) it and the processes it waited for used."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:  # already reaped (by ``Popen`` itself): no usage to report
        return proc.wait(), 0.0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def _killed(job: Job, pid: int, code: int, removed: str) -> Interrupted:
    """The error of a job whose process was killed by signal ``-code`` before it answered."""
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    after = AFTER_INTERRUPTION.get(job.command, "run it again")
    return Interrupted(
        f"{job.command} was interrupted: its process (pid {pid}) was killed ({name}) before it "
        f"finished; {after}{removed}"
    )


def background_priority(pid: int) -> bool:
    """Run process ``pid`` (0: this one) as background work, with the processes it starts from
    then on: in ``SCHED_OTHER`` at niceness ``JOB_CHILD_NICENESS`` (10), below the server's
    threads, with a weight (110 against a niceness-0 thread's 1024) that keeps it progressing on a
    machine whose every core is busy. Neither ``SCHED_BATCH`` at niceness 19 (a weight of 15: no
    CPU-second in 43 s beside two busy loops) nor ``SCHED_IDLE`` (nothing at all) did.
    Whether both were possible."""
    return _schedule(pid, JOB_CHILD_NICENESS)


def normal_priority(pid: int) -> bool:
    """Take process ``pid`` back to ``SCHED_OTHER`` at the job threads' niceness
    (``jobs.JOB_NICENESS``), so that a cancelled child reaches its batch boundary at once; whether
    both were possible (raising a niceness back needs ``CAP_SYS_NICE`` or ``RLIMIT_NICE``)."""
    return _schedule(pid, JOB_NICENESS)


def _schedule(pid: int, niceness: int) -> bool:
    """Put process ``pid`` in ``SCHED_OTHER`` at ``niceness``; whether both were possible."""
    ok = True
    try:
        os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        ok = False
    try:
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    except (AttributeError, OSError):
        ok = False
    return ok


def _encode(request: dict[str, Any]) -> bytes:
    """The request line for a child: its JSON text (``dump_json``: a filter's integer past 64 bits
    exactly, which the child reads back with ``read_json``); a param that still cannot be written
    is ``InvalidParams`` naming it, so the job fails at once rather than leaving a child without
    its request).

    Raises:
        InvalidParams: a param has no JSON text orjson can write; ``field`` is its name.
    """
    try:
        return dump_json(request) + b"\n"
    except TypeError as exc:  # orjson.JSONEncodeError
        params = request["params"]
        field = next((k for k, v in params.items() if not _writable(v)), None) or "params"
        raise InvalidParams(
            f"{field}: {request['command']} cannot hand this value to its job process ({exc}); "
            "nothing was done",
            field=field,
        ) from exc


def _writable(value: Any) -> bool:
    try:
        dump_json(value)
    except TypeError:
        return False
    return True


def _send(stream: IO[bytes], message: dict[str, Any]) -> None:
    stream.write(orjson.dumps(message) + b"\n")
    stream.flush()
