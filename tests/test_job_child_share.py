"""A server's job child always gets CPU, even beside busy processes, and says how long it waited
(issue 13: at niceness 19 in ``SCHED_BATCH`` a child got no CPU-second in 43 s beside two busy
loops, and its result's ``seconds`` hid the wait).

Nothing here measures a speed: the child must consume a given amount of CPU (a count) and end,
with every wait bounded.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service, Settings
from dbhandles.context import Context
from dbhandles.jobs import JOB_NICENESS, Job
from dbhandles.server.app import create_app
from dbhandles.server.job_process import JOB_CHILD_NICENESS, ChildJobs, background_priority

#: CPU-seconds the child burns before it answers (by its own clock, so no wall time is involved).
BURN = 0.2
#: A child that burns ``BURN`` CPU-seconds, then answers with its class, niceness and CPU time.
BURNING_CHILD = f"""
import json, os, sys, time
out = os.fdopen(int(sys.argv[1]), "wb", buffering=0)
sys.stdin.readline()
start = time.process_time()
while time.process_time() - start < {BURN}:
    pass
envelope = {{"success": True, "policy": os.sched_getscheduler(0), "nice": os.nice(0),
            "cpu": time.process_time()}}
out.write(json.dumps({{"status": "done", "envelope": envelope, "progress": {{"lines": 1}}}}).encode())
out.write(b"\\n")
"""


@pytest.fixture
def placement(tmp_path: Path) -> Iterator[tuple[Service, ChildJobs]]:
    service = Service(settings=Settings(home=tmp_path / "home", job_process_bytes=0))
    create_app(service)
    jobs = service.jobs.elsewhere
    assert isinstance(jobs, ChildJobs)
    yield service, jobs
    service.close()


@pytest.fixture
def busy_loops() -> Iterator[list[subprocess.Popen[bytes]]]:
    """One process per core spinning at niceness 0 (the caller's), for the length of the test."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)]  # fmt: skip
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(30)


def test_background_class_is_the_job_threads_niceness_in_sched_other() -> None:
    if not hasattr(os, "sched_getscheduler"):
        pytest.skip("no scheduling classes on this system")
    assert JOB_CHILD_NICENESS == JOB_NICENESS
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)  # fmt: skip
    try:
        background_priority(proc.pid)
        assert os.sched_getscheduler(proc.pid) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) >= JOB_NICENESS
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)


def test_a_child_beside_busy_loops_gets_cpu_and_ends(
    placement: tuple[Service, ChildJobs], busy_loops: Any, tmp_path: Path
) -> None:
    service, jobs = placement
    jobs.argv = [sys.executable, "-c", BURNING_CHILD]
    source = tmp_path / "in.jsonl"
    source.write_bytes(orjson.dumps({"id": "r1"}) + b"\n")
    params = service._parse(service.command("data/import"), {
        "input": str(source), "output": str(tmp_path / "out.sqlite")})  # fmt: skip
    job = Job(id="j-busy", command="data/import", actor="local")
    ended = jobs.run(job, params, Context(), lambda j: None)
    assert all(hog.poll() is None for hog in busy_loops), "the busy loops ran throughout"
    assert ended is not None
    status, envelope = ended
    assert status == "done"
    assert envelope["policy"] == os.SCHED_OTHER
    assert envelope["nice"] >= JOB_NICENESS
    assert envelope["cpu"] >= BURN
    # The job's progress says what the process lived and got, waiting included.
    assert job.progress["lines"] == 1
    assert job.progress["processCpuSeconds"] >= BURN
    assert job.progress["processSeconds"] >= job.progress["processCpuSeconds"]  # one thread
