"""What keeps one actor's load off everyone else's requests (issue 13, the targets of
benchmarks/fairness.py): no per-socket compression on the event loop, and a cancelled child job
that stops even when the machine leaves it no CPU.

Every server is on loopback, every wait is bounded, and nothing asserts a speed (the benchmark does).
"""

from __future__ import annotations

import base64
import gc
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service, Settings, job_heap
from dbhandles.cli.serve import settle_heap
from dbhandles.context import Context
from dbhandles.jobs import JOB_NICENESS, Job
from dbhandles.server.app import create_app
from dbhandles.server.job_process import ChildJobs, background_priority, normal_priority
from tests.server_helpers import serving

LOCAL = Context()


def upgrade(port: int, extensions: str) -> bytes:
    """The head of the server's answer to a WebSocket upgrade offering ``extensions``."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Extensions: {extensions}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                break
            head += data
    return head.split(b"\r\n\r\n")[0]


def test_websocket_messages_are_not_compressed(tmp_path: Path) -> None:
    """permessage-deflate would compress every message once per socket on the event loop."""
    with serving(tmp_path / "home") as (_, served):
        head = upgrade(served.port, "permessage-deflate; client_max_window_bits")
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"permessage-deflate" not in head.lower()
    assert b"sec-websocket-extensions" not in head.lower()


# -- cancelled child jobs -------------------------------------------------------------------------

#: A child that never reaches a batch boundary: it ignores ``cancel`` lines.
DEAF_CHILD = "import sys, time\nsys.stdin.readline()\ntime.sleep(120)\n"
#: A child that answers a ``cancel`` line with its scheduling policy (as the envelope's ``policy``).
POLICY_CHILD = """
import json, os, sys
out = os.fdopen(int(sys.argv[1]), "wb", buffering=0)
for line in sys.stdin:
    if "jobId" in json.loads(line):
        out.write(b'{"progress": {"lines": 1}}\\n')
        continue
    envelope = {"success": False, "code": "job_cancelled", "policy": os.sched_getscheduler(0),
                "nice": os.nice(0)}
    out.write(json.dumps({"status": "cancelled", "envelope": envelope, "progress": {}}).encode())
    out.write(b"\\n")
    break
"""


def can_leave_the_background_class() -> bool:
    if not hasattr(os, "SCHED_BATCH"):
        return False
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)  # fmt: skip
    try:
        return background_priority(proc.pid) and normal_priority(proc.pid)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)


@pytest.fixture
def placement(tmp_path: Path) -> Any:
    service = Service(settings=Settings(home=tmp_path / "home", job_process_bytes=0))
    create_app(service)
    jobs = service.jobs.elsewhere
    assert isinstance(jobs, ChildJobs)
    yield service, jobs
    service.close()


def import_params(service: Service, tmp_path: Path) -> Any:
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"id": f"r{i}"}) + b"\n" for i in range(10)))
    return service._parse(service.command("data/import"), {
        "input": str(source), "output": str(tmp_path / "out.sqlite")})  # fmt: skip


def test_cancelled_child_that_does_not_stop_is_killed(placement: Any, tmp_path: Path) -> None:
    service, jobs = placement
    jobs.argv, jobs.cancel_grace = [sys.executable, "-c", DEAF_CHILD], 0.3
    job = Job(id="j1", command="data/import", actor="local")
    job.cancel_requested, job.cancel_reason = True, "asked by alice"
    ended = jobs.run(job, import_params(service, tmp_path), LOCAL, lambda j: None)
    assert ended is not None
    status, envelope = ended
    assert status == "cancelled"
    assert envelope["code"] == "job_cancelled"
    assert "asked by alice" in envelope["error"]
    assert "was killed" in envelope["error"] and "committed are kept" in envelope["error"]


def test_cancelled_child_leaves_the_background_class(placement: Any, tmp_path: Path) -> None:
    if not can_leave_the_background_class():
        pytest.skip("this system does not let a process raise its niceness back (RLIMIT_NICE)")
    service, jobs = placement
    jobs.argv = [sys.executable, "-c", POLICY_CHILD]
    job = Job(id="j2", command="data/import", actor="local")
    progressed = threading.Event()
    result: list[Any] = []
    runner = threading.Thread(target=lambda: result.append(jobs.run(
        job, import_params(service, tmp_path), LOCAL, lambda j: progressed.set())))  # fmt: skip
    runner.start()
    assert progressed.wait(30), "the child did not start"
    job.cancel_requested, job.cancel_reason = True, "asked by alice"
    runner.join(30)
    assert result and result[0] is not None
    status, envelope = result[0]
    assert status == "cancelled"
    # Started as background work, told to stop: it is at the job threads' niceness, never lower.
    assert envelope["policy"] == os.SCHED_OTHER
    assert envelope["nice"] == JOB_NICENESS


# -- the heap of jobs run in the server ------------------------------------------------------------


@pytest.fixture
def unfrozen() -> Any:
    """The collector's permanent generation emptied before and after (a test process's heap)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def memory_import(service: Service, tmp_path: Path, lines: int = 3000) -> dict[str, Any]:
    source = tmp_path / "big.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"id": f"r{i}", "tags": [i, {"n": i}]}) + b"\n"
                                for i in range(lines)))  # fmt: skip
    handle = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    job = service.jobs.start("data/import", {"input": str(source), "dbHandle": handle,
                                             "collection": "c", "batchSize": 100}, LOCAL)  # fmt: skip
    envelope: dict[str, Any] = job.outcome.result(timeout=120)
    assert envelope["success"] is True, envelope
    return envelope


def test_a_servers_memory_import_is_frozen_out_of_full_collections(
    tmp_path: Path, unfrozen: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_heap, "FREEZE_SECONDS", 0.0)  # every batch boundary freezes
    service = Service(settings=Settings(home=tmp_path / "home"))
    try:
        service.jobs.freeze_heap = True
        memory_import(service, tmp_path)
        # The records the job stored are in the permanent generation: not walked again.
        assert gc.get_freeze_count() > 3000
    finally:
        service.close()


def test_an_in_process_service_leaves_the_collector_alone(tmp_path: Path, unfrozen: None) -> None:
    service = Service(settings=Settings(home=tmp_path / "home"))
    try:
        assert service.jobs.freeze_heap is False
        memory_import(service, tmp_path)
        assert gc.get_freeze_count() == 0
    finally:
        service.close()


def test_heap_keeper_freezes_at_most_every_freeze_seconds(unfrozen: None) -> None:
    keeper = job_heap.HeapKeeper()
    keeper.batch()
    keeper.batch()  # within FREEZE_SECONDS of the first
    assert keeper.freezes == 1
    assert gc.get_freeze_count() > 0


def test_heap_keeper_leaves_a_disabled_collector_alone(unfrozen: None) -> None:
    gc.disable()
    try:
        keeper = job_heap.HeapKeeper()
        keeper.batch()
    finally:
        gc.enable()
    assert keeper.freezes == 0
    assert gc.get_freeze_count() == 0


def test_serve_freezes_its_start_up_and_its_jobs_heap(tmp_path: Path, unfrozen: None) -> None:
    service = Service(settings=Settings(home=tmp_path / "home"))
    try:
        settle_heap(service)
        assert service.jobs.freeze_heap is True
        assert gc.get_freeze_count() > 0
    finally:
        service.close()
