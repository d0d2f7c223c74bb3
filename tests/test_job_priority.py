"""What a job costs the requests of everyone else (issue 13): its progress reaches the job table a
bounded number of times, the threads that write the store keep the server's priority, and a child job
runs as batch work at the lowest niceness (never in the idle class, so it always progresses).

Nothing here times anything: clocks are replaced, and priorities are read from the kernel.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service, Settings, jobs
from dbhandles.commands import COMMANDS, Command
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError
from dbhandles.importer.stats import ImportStats
from dbhandles.job_progress import ProgressWriter
from dbhandles.server.app import create_app
from dbhandles.server.job_process import JOB_CHILD_NICENESS, ChildJobs

LOCAL = Context()
per_thread_niceness = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's"
)


def niceness(native_id: int) -> int:
    """The niceness of one thread (Linux: ``PRIO_PROCESS`` with a thread id names that thread)."""
    return os.getpriority(os.PRIO_PROCESS, native_id)


class FakeClock:
    """``jobs.time`` with a ``monotonic`` the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.module = types.SimpleNamespace(time=time.time, monotonic=lambda: self.now)


# -- progress writes ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_seconds", [0.001, 0.01, 0.2, 1.0])
def test_an_imports_progress_is_written_at_most_every_sync_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_seconds: float
) -> None:
    """1,000 batches through the import's own hooks: one table write per ``SYNC_SECONDS`` of
    (fake) time at most, however short the batches."""
    clock = FakeClock()
    monkeypatch.setattr(jobs, "time", clock.module)
    service = Service(settings=Settings(home=tmp_path / "home"))
    written: list[dict[str, Any]] = []
    try:
        runner = service.jobs
        monkeypatch.setattr(
            runner._progress, "post", lambda job: written.append(dict(job.progress))
        )
        job = jobs.Job(id="j", command="data/import", actor="local")
        hooks = jobs.job_hooks(job, runner._sync)
        stats = ImportStats()
        batches = 1000
        for i in range(batches):
            clock.now += batch_seconds
            stats.batches, stats.lines = i + 1, (i + 1) * 100
            hooks.progress.update(stats)  # type: ignore[attr-defined]
    finally:
        service.close()
    span = batches * batch_seconds
    assert 1 <= len(written) <= span / jobs.SYNC_SECONDS + 1
    assert written[0]["batches"] == 1  # the first batch is written at once


def test_progress_posted_faster_than_it_is_written_replaces_what_waits() -> None:
    """While one write is held up (the table is busy), 500 posts of one job leave one pending
    write, the newest: at most two writes in all."""
    entered, release = threading.Event(), threading.Event()
    written: list[int] = []

    def write(job_id: str, progress: dict[str, Any]) -> bool:
        entered.set()
        release.wait(30)
        written.append(progress["batches"])
        return False

    writer = ProgressWriter(write)
    job = jobs.Job(id="j", command="data/import", actor="local")
    job.progress = {"batches": 0}
    writer.post(job)
    assert entered.wait(30)
    for batch in range(1, 501):
        job.progress = {"batches": batch}
        writer.post(job)
    release.set()
    deadline = time.monotonic() + 30
    while written[-1:] != [500] and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.close()
    assert written == [0, 500]


def test_a_cancel_read_from_the_table_reaches_the_job() -> None:
    writer = ProgressWriter(lambda job_id, progress: True)  # the row says: stop
    job = jobs.Job(id="j", command="data/import", actor="local")
    writer.post(job)
    deadline = time.monotonic() + 30
    while not job.cancel_requested and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.close()
    assert job.cancel_requested


# -- priorities -----------------------------------------------------------------------------------


def held_import(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, int], threading.Event]:
    """``data/import`` that records the niceness of its job thread and of a thread it starts,
    posts its progress, and waits to be released."""
    seen: dict[str, int] = {}
    release = threading.Event()

    def handler(service: Service, params: Any, call: Any) -> Any:
        seen["job"] = niceness(threading.get_native_id())
        started = threading.Thread(target=lambda: seen.setdefault(
            "started_by_job", niceness(threading.get_native_id())))  # fmt: skip
        started.start()
        started.join(30)
        call.hooks.progress.update(ImportStats())
        release.wait(30)
        raise DbHandlesError("released")

    held: Command = dataclasses.replace(
        COMMANDS["data/import"], handler=handler, target=lambda *a: None
    )
    monkeypatch.setitem(COMMANDS, "data/import", held)
    return seen, release


@per_thread_niceness
def test_the_progress_writer_keeps_the_starters_niceness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread inherits its starter's niceness: the job's own threads run at ``JOB_NICENESS``,
    the thread that writes its progress (and holds the store's write lock) does not."""
    seen, release = held_import(monkeypatch)
    mine = niceness(threading.get_native_id())
    if mine >= jobs.JOB_NICENESS:
        pytest.skip("this process already runs at the job niceness or lower")
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"id": "a"}\n')
    service = Service(settings=Settings(home=tmp_path / "home"))
    try:
        job = service.jobs.start(
            "data/import", {"input": str(source), "dbHandle": "default"}, LOCAL
        )
        deadline = time.monotonic() + 30
        while "started_by_job" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
        progress = service.jobs._progress.thread
        assert progress is not None
        assert progress.native_id is not None
        assert niceness(progress.native_id) == mine
        release.set()
        assert job.outcome.result(timeout=30)["code"] == "internal_error"
    finally:
        release.set()
        service.close()
    assert seen["job"] == jobs.JOB_NICENESS
    assert seen["started_by_job"] == seen["job"]  # why the writer is started elsewhere


@per_thread_niceness
@pytest.mark.parametrize("name", [
    "dbhandles-job-progress",
    "dbhandles-audit",
    "dbhandles-touch",
])  # fmt: skip
def test_threads_a_first_job_needs_keep_the_servers_niceness(tmp_path: Path, name: str) -> None:
    """A service whose first command is a job: the threads that write the store for everyone
    (and hold its write lock) are not started at the job's niceness."""
    mine = niceness(threading.get_native_id())
    if mine >= jobs.JOB_NICENESS:
        pytest.skip("this process already runs at the job niceness or lower")
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"id": f"r{i}"}) + b"\n" for i in range(10)))
    service = Service(settings=Settings(home=tmp_path / "home"))
    try:
        job = service.jobs.start("data/import", {
            "input": str(source), "dbHandle": "default", "collection": "c"}, LOCAL)  # fmt: skip
        assert job.outcome.result(timeout=60)["success"] is True
        found = {
            t.name.rsplit("_", 1)[0]: niceness(t.native_id)
            for t in threading.enumerate()
            if t.native_id is not None and t.name.startswith("dbhandles-")
        }
    finally:
        service.close()
    assert found["dbhandles-job"] == jobs.JOB_NICENESS
    assert found[name] == mine


#: A child job that reports its scheduling policy and niceness once it has its request.
REPORTING_CHILD = """
import json, os, sys
out = os.fdopen(int(sys.argv[1]), "wb", buffering=0)
sys.stdin.readline()
seen = {"policy": os.sched_getscheduler(0), "nice": os.nice(0)}
out.write(json.dumps({"status": "done", "envelope": {"success": True, **seen},
                      "progress": seen}).encode() + b"\\n")
"""


@per_thread_niceness
def test_a_child_job_runs_as_background_work_at_the_job_niceness(tmp_path: Path) -> None:
    """The child (and what it starts) is in ``SCHED_OTHER`` at the job threads' niceness: below
    the server, never in the idle class nor at niceness 19 in ``SCHED_BATCH``, which a busy machine
    leaves without CPU (issue 13)."""
    if not hasattr(os, "sched_getscheduler"):
        pytest.skip("no scheduling classes here")
    if niceness(threading.get_native_id()) >= jobs.JOB_NICENESS:
        pytest.skip("this process already runs at the job niceness or lower")
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"id": f"r{i}"}) + b"\n" for i in range(10)))
    service = Service(settings=Settings(home=tmp_path / "home", job_process_bytes=0))
    try:
        create_app(service)
        placement = service.jobs.elsewhere
        assert isinstance(placement, ChildJobs)
        placement.argv = [sys.executable, "-c", REPORTING_CHILD]
        job = service.jobs.start("data/import", {
            "input": str(source), "output": str(tmp_path / "out.sqlite")}, LOCAL)  # fmt: skip
        envelope = job.outcome.result(timeout=60)
    finally:
        service.close()
    assert envelope["success"] is True, envelope
    assert envelope["policy"] == os.SCHED_OTHER
    assert envelope["nice"] == JOB_CHILD_NICENESS == jobs.JOB_NICENESS


@per_thread_niceness
def test_background_priority_keeps_a_share_of_the_cpu(tmp_path: Path) -> None:
    """What a child job and a process it starts get: a class that the kernel gives a weight of its
    own (``SCHED_OTHER`` at the job niceness, not ``SCHED_IDLE``), inherited across ``fork``."""
    if not hasattr(os, "sched_getscheduler"):
        pytest.skip("no scheduling classes here")
    script = (
        "import json, os, sys\n"
        "from dbhandles.server.job_process import background_priority\n"
        "assert background_priority(0)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print(json.dumps([os.sched_getscheduler(0), os.nice(0)]), flush=True)\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env,
                         timeout=60, check=True)  # fmt: skip
    policy, nice = orjson.loads(out.stdout)
    assert policy == os.SCHED_OTHER
    assert nice == JOB_CHILD_NICENESS
