"""Jobs every process on a home sees: the job table (``_dbh_jobs``) between services and processes.

Two ``Service`` objects on one home stand for two processes (each reads and writes the table on its
own connection); a child process killed with SIGKILL is a process that died with its jobs running.
The two-worker server (``jtag serve --workers=2``) is ``tests/test_workers.py``'s; PostgreSQL as the
default store is checked at the end.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service, Settings, job_hooks, jobs
from dbhandles.commands import COMMANDS, Command
from dbhandles.commands.jobs import params_summary
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError
from dbhandles.store.jobs import owner_alive, process_token, this_process

ROOT = Path(__file__).resolve().parent.parent
BOB = Context(actor="bob", is_admin=False)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def write_jsonl(path: Path, lines: int, width: int = 300) -> Path:
    with path.open("wb") as out:
        for i in range(lines):
            out.write(orjson.dumps({"id": f"r{i:07d}", "text": "x" * width, "n": i}) + b"\n")
    return path


def hold_after_first_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    """Let an import report (and write) its first chunk, then hold it until the test says go."""
    progressed, go = threading.Event(), threading.Event()
    original = job_hooks.ImportProgress.update

    def update(self: Any, stats: Any) -> None:
        original(self, stats)
        if not progressed.is_set():
            progressed.set()
            go.wait(20)

    monkeypatch.setattr(job_hooks.ImportProgress, "update", update)
    # Every batch boundary reads the table, so the cancel is seen at the first one after it.
    monkeypatch.setattr(jobs, "SYNC_SECONDS", 0.0)
    return progressed, go


def blocking_import(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Semaphore]:
    """``data/import`` that blocks until released (then fails with ``released``)."""
    release, started = threading.Event(), threading.Semaphore(0)

    def handler(service: Service, params: Any, call: Any) -> Any:
        started.release()
        if not release.wait(20):
            raise DbHandlesError("the test never released the import")
        raise DbHandlesError("released")

    blocked: Command = dataclasses.replace(
        COMMANDS["data/import"], handler=handler, target=lambda *a: None
    )
    monkeypatch.setitem(COMMANDS, "data/import", blocked)
    return release, started


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    """Two services on one home, as two processes would be."""
    home = tmp_path / "home"
    first = Service(settings=Settings(home=home, max_jobs_per_actor=1))
    second = Service(settings=Settings(home=home, max_jobs_per_actor=1))
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def status(service: Service, job_id: str, context: Context | None = None) -> dict[str, Any]:
    return service.execute("data/job-status", {"jobId": job_id}, context=context)


def test_a_job_started_in_one_service_is_read_listed_and_cancelled_from_another(
    pair: tuple[Service, Service], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    progressed, go = hold_after_first_chunk(monkeypatch)
    source = write_jsonl(tmp_path / "big.jsonl", 12_000)  # about 4 MiB: several chunks
    output = tmp_path / "big.sqlite"
    params = {"input": str(source), "output": str(output), "batchSize": 1000, "parser": "inline"}
    try:
        job = a.execute("data/job-start", {"command": "data/import", "params": params})
        job_id = job["jobId"]
        assert progressed.wait(20)
        # Progress reaches the table from the runner's progress thread, not the job's: wait for it.
        wait_for(lambda: status(b, job_id)["progress"].get("imported", 0) > 0, "the progress row")
        seen = status(b, job_id)
        assert (seen["status"], seen["actor"], seen["command"]) == (
            "running",
            "local",
            "data/import",
        )
        assert seen["progress"]["imported"] > 0 and seen["params"]["input"] == str(source)
        assert [j["jobId"] for j in b.execute("data/job-list")["jobs"]] == [job_id]
        # Another actor sees nothing of it, from either process.
        for service in (a, b):
            with pytest.raises(DbHandlesError) as hidden:
                status(service, job_id, BOB)
            assert hidden.value.code == "job_not_found"
            assert service.execute("data/job-list", context=BOB)["jobs"] == []
            with pytest.raises(DbHandlesError) as refused:
                service.execute("data/job-cancel", {"jobId": job_id}, context=BOB)
            assert refused.value.code == "job_not_found"
        asked = b.execute("data/job-cancel", {"jobId": job_id})
        assert (asked["status"], asked["cancelRequested"]) == ("running", True)
    finally:
        go.set()
    wait_for(lambda: status(b, job_id)["status"] != "running", "the job to stop")
    final = status(b, job_id)
    assert final["status"] == "cancelled", final
    assert final["error"]["code"] == "job_cancelled" and "again" in final["error"]["error"]
    assert 0 < final["progress"]["imported"] < 12_000 and final["finishedAt"] is not None
    mirrored = status(a, job_id)
    assert {k: v for k, v in mirrored.items() if k != "timestamp"} == {
        k: v for k, v in final.items() if k != "timestamp"
    }


def test_a_queued_job_is_cancelled_from_another_service_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, started = blocking_import(monkeypatch)
    home = tmp_path / "home"
    a = Service(settings=Settings(home=home, job_threads=1, max_jobs_per_actor=3))
    b = Service(settings=Settings(home=home))
    try:
        first = a.execute(
            "data/job-start", {"command": "data/import", "params": {"input": "x", "output": "o"}}
        )
        assert started.acquire(timeout=10)
        second = a.execute("data/job-start", {"command": "data/vacuum"})
        assert status(b, second["jobId"])["status"] == "queued"
        dropped = b.execute("data/job-cancel", {"jobId": second["jobId"]})
        assert dropped["status"] == "cancelled" and "before it started" in dropped["error"]["error"]
        release.set()
        wait_for(lambda: status(b, first["jobId"])["status"] == "failed", "the first job")
        # The queued job never ran once a thread was free: it stays cancelled in both processes.
        wait_for(lambda: a.jobs.active == 0, "the runner to settle")
        assert status(a, second["jobId"])["status"] == "cancelled"
        assert status(b, first["jobId"])["error"]["error"] == "released"
    finally:
        release.set()
        a.close()
        b.close()


def test_the_per_actor_limit_counts_the_jobs_of_every_process(
    pair: tuple[Service, Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair  # one job per actor
    release, started = blocking_import(monkeypatch)
    params = {"command": "data/import", "params": {"input": "x", "output": "o"}}
    try:
        first = a.execute("data/job-start", params)
        assert started.acquire(timeout=10)
        with pytest.raises(DbHandlesError) as refused:
            b.execute("data/job-start", {"command": "data/vacuum"})
        assert refused.value.code == "too_many_requests"
        assert "every process on this home" in str(refused.value)
        # Another actor has a limit of its own.
        other = b.execute("data/job-start", {"command": "data/vacuum"}, context=BOB)
        wait_for(lambda: status(b, other["jobId"], BOB)["status"] != "queued", "bob's job")
    finally:
        release.set()
    wait_for(lambda: status(b, first["jobId"])["status"] == "failed", "the first job to end")
    second = b.execute("data/job-start", {"command": "data/vacuum"})
    wait_for(lambda: status(a, second["jobId"])["status"] == "done", "the second job")


def test_the_limit_is_race_free_between_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, _ = blocking_import(monkeypatch)
    home = tmp_path / "home"
    services = [Service(settings=Settings(home=home, max_jobs_per_actor=2)) for _ in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(services))

    def start(service: Service) -> None:
        barrier.wait(10)
        try:
            service.execute("data/job-start", {"command": "data/import",
                                               "params": {"input": "x", "output": "o"}})  # fmt: skip
            outcomes.append("started")
        except DbHandlesError as exc:
            outcomes.append(exc.code)

    try:
        threads = [threading.Thread(target=start, args=(s,)) for s in services]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["started", "started", "too_many_requests", "too_many_requests"]
    finally:
        release.set()
        for service in services:
            service.close()


_CHILD = """
import dataclasses, sys, threading, time
from dbhandles import Service, Settings
from dbhandles.commands import COMMANDS

def handler(service, params, call):
    threading.Event().wait()  # runs until the process is killed

COMMANDS["data/import"] = dataclasses.replace(
    COMMANDS["data/import"], handler=handler, target=lambda *a: None)
service = Service(settings=Settings(home=sys.argv[1], job_threads=1, max_jobs_per_actor=2))
params = {"input": "in.jsonl", "output": "out.sqlite"}
running = service.execute("data/job-start", {"command": "data/import", "params": params})
queued = service.execute("data/job-start", {"command": "data/vacuum"})
while service.execute("data/job-status", {"jobId": running["jobId"]})["status"] != "running":
    time.sleep(0.01)
print(running["jobId"], queued["jobId"], flush=True)
threading.Event().wait()
"""


def test_jobs_of_a_killed_process_are_interrupted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = Service(settings=Settings(home=home, max_jobs_per_actor=2))  # started before the kill
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(home)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None
        running_id, queued_id = child.stdout.readline().split()
        seen = {j["jobId"]: j["status"] for j in before.execute("data/job-list")["jobs"]}
        assert seen == {running_id: "running", queued_id: "queued"}
        me = this_process()
        live = dataclasses.replace(me, pid=child.pid, token=process_token(child.pid) or "")
        assert owner_alive(live, me.host)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        # A job start of the same actor finds the dead process's jobs: they no longer count.
        vacuum = before.execute("data/job-start", {"command": "data/vacuum"})
        wait_for(lambda: status(before, vacuum["jobId"])["status"] == "done", "the vacuum")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
        before.close()
    with Service(settings=Settings(home=home)) as after:
        found_jobs = {j["jobId"]: j for j in after.execute("data/job-list")["jobs"]}
    for job_id, note in ((running_id, "store the rest"), (queued_id, "all or nothing")):
        found = found_jobs[job_id]
        assert found["status"] == "interrupted", found
        assert found["error"]["code"] == "interrupted"
        assert f"pid {child.pid}" in found["error"]["error"] and note in found["error"]["error"]
        assert found["finishedAt"] is not None


def test_a_restart_marks_a_dead_process_jobs_interrupted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(home)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None
        running_id, _ = child.stdout.readline().split()
    finally:
        child.kill()
        child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
    with Service(settings=Settings(home=home)) as after:
        # Marked by the service's start, before any job command ran.
        row = after.registry.store.jobs.get_job(running_id)
        assert row is not None and row.status == "interrupted"
        assert row.error is not None and row.error["code"] == "interrupted"


def test_process_tokens_tell_a_live_process_from_a_dead_one() -> None:
    me = this_process()
    assert me.pid == os.getpid() and owner_alive(me, me.host)
    assert not owner_alive(dataclasses.replace(me, token=me.token + "x"), me.host)
    # A job of another host cannot be checked from here: it counts as alive.
    assert owner_alive(dataclasses.replace(me, host="elsewhere", pid=2**22 + 7), me.host)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    gone = dataclasses.replace(me, pid=int(done.stdout))  # exited and reaped
    assert process_token(gone.pid) is None and not owner_alive(gone, me.host)


def test_params_are_summarised_without_secrets() -> None:
    from pydantic import BaseModel, ConfigDict

    class Example(BaseModel):
        model_config = ConfigDict(extra="allow")

    summary = params_summary(
        Example(
            input="a" * 5000,
            password="pw",
            nested={"token": "t", "dbHandle": "h", "deep": {"x": 1}},
            items=[1, 2, 3],
        )
    )
    assert "password" not in summary and "token" not in summary["nested"]
    assert summary["nested"] == {"dbHandle": "h", "deep": "…"}
    assert summary["items"] == "[3 items]" and len(summary["input"]) == 1001


def test_a_job_writing_into_the_job_tables_database_never_waits_for_its_own_lock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An import into ``default`` holds a write transaction on the database that also holds the job
    table; its progress rows are written by the runner's progress thread once the batch commits,
    never by the job inside its own transaction (which waited out the 10 s busy timeout at every
    progress write and logged "the job table was not updated")."""
    source = write_jsonl(tmp_path / "in.jsonl", 3_000)
    params = {"input": str(source), "dbHandle": "default", "collection": "c", "batchSize": 3_000,
              "parser": "inline"}  # fmt: skip
    with Service(home=tmp_path / "home") as service:
        job_id = service.execute("data/job-start", {"command": "data/import", "params": params})[
            "jobId"
        ]
        ended = ("done", "failed", "cancelled", "interrupted")
        wait_for(lambda: status(service, job_id)["status"] in ended, "the import to end")
        final = status(service, job_id)
        assert final["status"] == "done", final
        assert final["progress"]["imported"] == 3_000
        count = service.execute("data/count", {"collection": "c"})
        assert count["total"] == 3_000
    assert "the job table was not updated" not in caplog.text
