"""Server jobs in a child process (``server/job_process.py``): large imports, exports and copies on
shared databases run in a process of their own; progress, cancellation, failures and events work as
for a job run by the server's own threads; jobs on memory databases stay in the server."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service, Settings
from dbhandles.context import Context
from dbhandles.events.bus import Event
from dbhandles.jobs import Job
from dbhandles.server.app import create_app
from dbhandles.server.job_process import ChildJobs

LOCAL = Context()
LINES = 3000


def write_jsonl(path: Path, lines: int = LINES, bad_line: int | None = None) -> Path:
    with path.open("wb") as out:
        for i in range(lines):
            if i + 1 == bad_line:
                out.write(b"{not json\n")
                continue
            out.write(orjson.dumps({"id": f"r{i:06d}", "text": "x" * 200, "n": i}) + b"\n")
    return path


@pytest.fixture
def service(tmp_path: Path) -> Any:
    """A server's service (``create_app`` places its jobs) whose every large job runs in a child."""
    svc = Service(settings=Settings(home=tmp_path / "home", job_process_bytes=0))
    create_app(svc)
    yield svc
    svc.close()


def run(service: Service, command: str, params: dict[str, Any]) -> tuple[Job, dict[str, Any]]:
    job = service.jobs.start(command, params, LOCAL)
    return job, job.outcome.result(timeout=120)


def test_import_job_runs_in_a_child_process(service: Service, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl")
    job, envelope = run(service, "data/import", {"input": str(source),
                                                 "output": str(tmp_path / "out.sqlite"),
                                                 "collection": "c"})  # fmt: skip
    assert envelope["success"] is True, envelope
    assert envelope["imported"] == LINES
    assert job.status == "done"
    assert job.pid is not None and job.pid != os.getpid()
    # Progress came back from the child: in the live job and in the job table.
    assert job.progress["lines"] == LINES
    assert service.jobs.get(job.id, LOCAL)["progress"]["lines"] == LINES
    # The server sees what the child wrote, through the handle the child opened.
    count = service.execute("data/count", {"dbHandle": envelope["dbHandle"], "collection": "c"})
    assert count["total"] == LINES


def test_export_and_copy_jobs_run_in_a_child_process(service: Service, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl")
    _, imported = run(service, "data/import", {"input": str(source),
                                               "output": str(tmp_path / "a.sqlite"),
                                               "collection": "c"})  # fmt: skip
    job, exported = run(service, "data/export", {"dbHandle": imported["dbHandle"], "collection": "c",
                                                 "output": str(tmp_path / "out.jsonl")})  # fmt: skip
    assert exported["success"] is True, exported
    assert exported["exported"] == LINES
    assert job.pid != os.getpid()
    assert len((tmp_path / "out.jsonl").read_bytes().splitlines()) == LINES
    target = service.execute("data/open", {"adapter": "sqlite",
                                           "config": {"path": str(tmp_path / "b.sqlite"),
                                                      "mode": "create"}})  # fmt: skip
    job, copied = run(service, "data/copy", {"from": {"dbHandle": imported["dbHandle"],
                                                      "collection": "c"},
                                             "to": {"dbHandle": target["dbHandle"]}})  # fmt: skip
    assert copied["success"] is True, copied
    assert job.pid != os.getpid()
    assert job.progress["copied"] == LINES


def test_cancelled_child_job_stops_at_its_next_chunk(service: Service, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl")
    params = service._parse(service.command("data/import"), {
        "input": str(source), "output": str(tmp_path / "out.sqlite"), "collection": "c"})  # fmt: skip
    job = Job(id="j1", command="data/import", actor="local")
    job.cancel_requested, job.cancel_reason = True, "the server is shutting down"
    synced: list[dict[str, Any]] = []
    placement = service.jobs.elsewhere
    assert isinstance(placement, ChildJobs)
    ended = placement.run(job, params, LOCAL, lambda j: synced.append(dict(j.progress)))
    assert ended is not None
    status, envelope = ended
    assert status == "cancelled"
    assert envelope["code"] == "job_cancelled"
    assert "the server is shutting down" in envelope["error"]
    assert job.pid != os.getpid()


def test_child_job_failure_is_its_envelope(service: Service, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", bad_line=10)
    job, envelope = run(service, "data/import", {"input": str(source),
                                                 "output": str(tmp_path / "out.sqlite")})  # fmt: skip
    assert job.status == "failed"
    assert envelope["code"] == "invalid_params"
    assert "line 10" in envelope["error"]
    assert job.pid != os.getpid()


def test_child_job_events_reach_the_servers_subscribers(service: Service, tmp_path: Path) -> None:
    done = threading.Event()
    seen: list[str] = []

    def on_event(event: Event) -> None:
        seen.append(event.name)
        if event.name == "import:done":
            done.set()

    with service.events.subscribe("import:*", on_event):
        job, envelope = run(service, "data/import", {"input": str(write_jsonl(tmp_path / "in.jsonl")),
                                                     "output": str(tmp_path / "out.sqlite")})  # fmt: skip
        assert envelope["success"] is True
        assert done.wait(30), seen
    assert job.pid != os.getpid()


def test_child_that_dies_without_an_answer_fails_the_job(service: Service, tmp_path: Path) -> None:
    placement = service.jobs.elsewhere
    assert isinstance(placement, ChildJobs)
    placement.argv = [sys.executable, "-c", "raise SystemExit(3)"]
    job, envelope = run(service, "data/import", {"input": str(write_jsonl(tmp_path / "in.jsonl")),
                                                 "output": str(tmp_path / "out.sqlite")})  # fmt: skip
    assert job.status == "failed"
    assert envelope["success"] is False
    assert "status 3 without an answer" in envelope["error"]


def test_child_that_cannot_start_leaves_the_job_to_the_server(
    service: Service, tmp_path: Path
) -> None:
    placement = service.jobs.elsewhere
    assert isinstance(placement, ChildJobs)
    placement.argv = [str(tmp_path / "no-such-python")]
    job, envelope = run(service, "data/import", {"input": str(write_jsonl(tmp_path / "in.jsonl")),
                                                 "output": str(tmp_path / "out.sqlite")})  # fmt: skip
    assert envelope["success"] is True
    assert job.pid == os.getpid()


def test_jobs_on_memory_databases_stay_in_the_server(service: Service, tmp_path: Path) -> None:
    memory = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    job, envelope = run(service, "data/import", {"input": str(write_jsonl(tmp_path / "in.jsonl")),
                                                 "dbHandle": memory, "collection": "c"})  # fmt: skip
    assert envelope["imported"] == LINES
    assert job.pid == os.getpid()
    count = service.execute("data/count", {"dbHandle": memory, "collection": "c"})
    assert count["total"] == LINES


def test_small_jobs_stay_in_the_server(tmp_path: Path) -> None:
    with Service(settings=Settings(home=tmp_path / "home")) as svc:  # 16 MiB by default
        create_app(svc)
        job, envelope = run(svc, "data/import", {"input": str(write_jsonl(tmp_path / "in.jsonl")),
                                                 "output": str(tmp_path / "out.sqlite")})  # fmt: skip
        assert envelope["success"] is True
        assert job.pid == os.getpid()
