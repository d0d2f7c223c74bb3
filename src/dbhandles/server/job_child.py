"""The child process of a server job (``python -m dbhandles.server.job_child FD``): runs one job with
a ``Service`` of its own on the server's home and reports to the server (``job_process.py`` has the
protocol).

Its settings come from the environment (``workers.settings_env`` of the server's); the request
(command, params, context) from the first line of stdin; a later ``{"cancel": reason}`` line, or
the end of stdin (the server is gone), stops the job at its next batch boundary.

It makes itself the owner of the job's row at its start (``JobStore.adopt_job``), so the job is
``interrupted`` when this process dies, not when the server does. When the server is gone (its
stdin ends, or a report cannot be written: the pipe is broken), the job stops at its next batch
boundary and this process writes the job's end to the job table itself, with the counts of what it
committed, logs one line saying so, and exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson

from dbhandles.commands.envelope import error_envelope
from dbhandles.commands.jobs import MAX_TEXT, bounded_result, job_outcome
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError
from dbhandles.jobs import MAX_FINISHED_PER_ACTOR, Job, JobStatus, job_hooks, run_job
from dbhandles.server.job_process import background_priority
from dbhandles.service import Service
from dbhandles.settings import Settings
from dbhandles.store.jobs import this_process
from dbhandles.values import read_json

__all__ = ["PROGRESS_SECONDS", "main"]

log = logging.getLogger("dbhandles.server.job_child")
#: Why the job stops when the server that started it is gone.
SERVER_GONE = "the server stopped"
#: The child reports progress at most this often (and at its end).
PROGRESS_SECONDS = 0.1


def _lines(fd: int) -> Iterator[bytes]:
    """The lines read from ``fd`` with plain ``os.read`` (no buffered object: the watching thread
    is a daemon, and a buffered reader's lock held by it would stop the interpreter's exit)."""
    pending = b""
    while data := os.read(fd, 1 << 16):
        pending += data
        *lines, pending = pending.split(b"\n")
        yield from lines


def _watch_server(job: Job, lines: Iterator[bytes]) -> None:
    """Set ``job.cancel_requested`` on a ``cancel`` line from the server, or when it is gone."""
    for line in lines:
        message = orjson.loads(line)
        if "cancel" in message:
            job.cancel_reason = job.cancel_reason or message["cancel"]
            job.cancel_requested = True
    job.cancel_reason = job.cancel_reason or SERVER_GONE
    job.cancel_requested = True


def main(argv: list[str] | None = None) -> int:
    """Run the job read from stdin; report on the descriptor ``argv[0]``."""
    args = sys.argv[1:] if argv is None else argv
    background_priority(0)  # as early as the parent's, if it was started otherwise
    out = os.fdopen(int(args[0]), "wb", buffering=0)
    logging.basicConfig(level=logging.WARNING, format="dbhandles job: %(levelname)s %(message)s")
    lines = _lines(sys.stdin.fileno())
    first = next(lines, None)
    if first is None:  # the server closed stdin before its request: it fails the job itself
        logging.getLogger(__name__).warning("no job request on stdin; nothing was done")
        out.close()
        return 2
    request: dict[str, Any] = read_json(first)  # as the server wrote it (dump_json)
    context = Context(**request["context"])
    job = Job(id=request["jobId"], command=request["command"], actor=context.actor)
    job.cancel_requested = bool(request.get("cancelled"))
    job.cancel_reason = request.get("cancel")
    job.status, job.pid = "running", os.getpid()
    threading.Thread(target=_watch_server, args=(job, lines), daemon=True).start()
    sent = float("-inf")
    gone = False  # the server's end of the report pipe is closed

    def tell(message: dict[str, Any]) -> bool:
        """Write ``message`` to the server; ``False`` (and the job asked to stop) once it is gone."""
        nonlocal gone
        if not gone:
            try:
                out.write(orjson.dumps(message) + b"\n")
            except OSError:  # BrokenPipeError: the server died
                gone = True
                job.cancel_reason = job.cancel_reason or SERVER_GONE
                job.cancel_requested = True
        return not gone

    def report(job: Job) -> None:
        nonlocal sent
        now = time.monotonic()
        if now - sent >= PROGRESS_SECONDS:
            sent = now
            tell({"progress": job.progress})

    service = Service(settings=Settings.from_env())
    try:
        table = service.registry.store.jobs
        try:
            table.adopt_job(job.id, this_process())
        except DbHandlesError as exc:  # the server's waiting thread still ends the job
            log.warning("job %s: could not take over its row: %s", job.id, exc)
        try:
            command = service.command(job.command)
            params = service._parse(command, request["params"])
            status, envelope = run_job(service, job, params, context, job_hooks(job, report))
        except DbHandlesError as exc:  # params the server accepted: only a changed setting
            status, envelope = "failed", error_envelope(exc, context)
        told = tell({"status": status, "envelope": envelope, "progress": job.progress})
        if not told or job.cancel_reason == SERVER_GONE:
            _end_alone(table, job, status, envelope)
    finally:
        service.close()
    with contextlib.suppress(OSError):
        out.close()
    return 0


def _end_alone(table: Any, job: Job, status: JobStatus, envelope: dict[str, Any]) -> None:
    """The server that started the job is gone: write the job's end (its counts are what this
    process committed) to the job table, where ``data/job-status`` reads it, and say so once."""
    result, error = job_outcome(envelope)
    if error is not None and len(str(error.get("error", ""))) > 4 * MAX_TEXT:
        error["error"] = str(error["error"])[: 4 * MAX_TEXT] + "…"
    try:
        written = table.finish_job(
            job.id, status, int(time.time() * 1000), progress=dict(job.progress),
            result=bounded_result(result), error=error, keep=MAX_FINISHED_PER_ACTOR,
        )  # fmt: skip
    except DbHandlesError as exc:
        log.warning("job %s (%s): the server that started it is gone, and its end (%s) could not "
                    "be written to the job table: %s", job.id, job.command, status, exc)  # fmt: skip
        return
    log.warning(
        "job %s (%s): the server that started it is gone; it stopped at a batch boundary and "
        "ended %s (%s), %s",
        job.id, job.command, status, _counts(job.progress),
        "written to the job table" if written else "already marked ended in the job table",
    )  # fmt: skip


def _counts(progress: dict[str, Any]) -> str:
    keys = ("imported", "skipped", "failed", "exported", "copied", "deleted", "batches")
    return ", ".join(f"{key} {progress[key]}" for key in keys if key in progress) or "no counts"


if __name__ == "__main__":
    sys.exit(main())
