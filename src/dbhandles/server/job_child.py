"""The child process of a server job (``python -m dbhandles.server.job_child FD``): runs one job with
a ``Service`` of its own on the server's home and reports to the server (``job_process.py`` has the
protocol).

Its settings come from the environment (``workers.settings_env`` of the server's); the request
(command, params, context) from the first line of stdin; a later ``{"cancel": reason}`` line, or
the end of stdin (the server is gone), stops the job at its next batch boundary.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson

from dbhandles.commands.envelope import error_envelope
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError
from dbhandles.jobs import Job, job_hooks, run_job
from dbhandles.server.job_process import idle_priority
from dbhandles.service import Service
from dbhandles.settings import Settings

__all__ = ["PROGRESS_SECONDS", "main"]

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
    job.cancel_reason = job.cancel_reason or "the server stopped"
    job.cancel_requested = True


def main(argv: list[str] | None = None) -> int:
    """Run the job read from stdin; report on the descriptor ``argv[0]``."""
    args = sys.argv[1:] if argv is None else argv
    idle_priority(0)  # as early as the parent's, if it was started otherwise
    out = os.fdopen(int(args[0]), "wb", buffering=0)
    logging.basicConfig(level=logging.WARNING, format="dbhandles job: %(levelname)s %(message)s")
    lines = _lines(sys.stdin.fileno())
    request: dict[str, Any] = orjson.loads(next(lines))
    context = Context(**request["context"])
    job = Job(id=request["jobId"], command=request["command"], actor=context.actor)
    job.cancel_requested = bool(request.get("cancelled"))
    job.cancel_reason = request.get("cancel")
    job.status, job.pid = "running", os.getpid()
    threading.Thread(target=_watch_server, args=(job, lines), daemon=True).start()
    sent = float("-inf")

    def report(job: Job) -> None:
        nonlocal sent
        now = time.monotonic()
        if now - sent >= PROGRESS_SECONDS:
            sent = now
            out.write(orjson.dumps({"progress": job.progress}) + b"\n")

    service = Service(settings=Settings.from_env())
    try:
        command = service.command(job.command)
        params = service._parse(command, request["params"])
        status, envelope = run_job(service, job, params, context, job_hooks(job, report))
    except DbHandlesError as exc:  # params the server accepted: only a changed setting
        status, envelope = "failed", error_envelope(exc, context)
    finally:
        service.close()
    out.write(orjson.dumps({"status": status, "envelope": envelope, "progress": job.progress}))
    out.write(b"\n")
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
