"""A server job's child process, or the server, dies mid-job (``server/job_process.py``,
``server/job_child.py``): whoever sees the other die cleans up what the job created, the job says
what happened, its counts are what was committed, and a re-run works."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dbhandles import Service, Settings
from dbhandles.context import Context
from dbhandles.importer.export import PARTIAL_MARK, partial_path
from dbhandles.server.app import create_app
from tests.servers import ServerProcess

LOCAL = Context()
TIMEOUT = 60.0


def _wait(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while not (found := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.005)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie has ended
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _marked(path: Path) -> bool:
    try:
        return os.getxattr(path, PARTIAL_MARK) == b"export"
    except OSError:
        return False


def _write_jsonl(path: Path, lines: int) -> Path:
    with path.open("wb") as out:
        out.writelines(orjson.dumps({"id": f"r{i:07d}", "n": i, "t": "x" * 40}) + b"\n"
                       for i in range(lines))  # fmt: skip
    return path


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """A server's service whose every large job runs in a child."""
    svc = Service(settings=Settings(home=tmp_path / "home", job_process_bytes=0))
    create_app(svc)
    yield svc
    svc.close()


def test_a_killed_export_child_leaves_no_partial_file_and_a_rerun_works(
    service: Service, tmp_path: Path
) -> None:
    lines = 20_000
    imported = service.execute("data/import", {"input": str(_write_jsonl(tmp_path / "in.jsonl",
                               lines)), "output": str(tmp_path / "src.sqlite"), "collection": "c"})  # fmt: skip
    output = tmp_path / "out3.jsonl"
    # One record a page: thousands of pages, so the child is still writing when it is killed.
    params = {"dbHandle": imported["dbHandle"], "collection": "c", "output": str(output),
              "pageSize": 1}  # fmt: skip
    job = service.jobs.start("data/export", params, LOCAL)
    pid = _wait(lambda: job.pid if job.pid not in (None, os.getpid()) else None, "the child")
    # Marked: the export creates its partial file, then marks and locks it (a kill between the
    # two leaves an empty unmarked file, which no export deletes; see importer/export.py).
    _wait(lambda: _marked(partial_path(output)), "the partial file")
    os.kill(pid, signal.SIGKILL)
    envelope = job.outcome.result(timeout=TIMEOUT)
    assert job.status == "interrupted", envelope
    assert envelope["code"] == "interrupted", envelope
    assert f"its process (pid {pid}) was killed (SIGKILL)" in envelope["error"]
    assert "its partial file .out3.jsonl.partial was removed" in envelope["error"]
    assert service.jobs.get(job.id, LOCAL)["error"]["code"] == "interrupted"
    assert not partial_path(output).exists() and not output.exists()
    again = service.jobs.start("data/export", {**params, "pageSize": 1000}, LOCAL)
    assert again.outcome.result(timeout=TIMEOUT)["exported"] == lines
    assert len(output.read_bytes().splitlines()) == lines


def test_a_killed_server_leaves_the_jobs_true_counts_and_a_quiet_child(tmp_path: Path) -> None:
    lines = 300_000
    source = _write_jsonl(tmp_path / "in.jsonl", lines)
    home = tmp_path / "home"
    server = ServerProcess(home)
    server.env["DBHANDLES_JOB_PROCESS_BYTES"] = "0"
    with server:
        assert server.proc is not None
        http = httpx.Client(base_url=server.url, timeout=30,
                            headers={"Authorization": f"Bearer {server.token}"})  # fmt: skip
        with http:
            params = {"input": str(source), "output": str(tmp_path / "out.sqlite"),
                      "collection": "c"}  # fmt: skip
            started = http.post("/commands/data/job-start",
                                json={"command": "data/import", "params": params})  # fmt: skip
            job_id = started.json()["jobId"]

            def status() -> dict[str, Any]:
                body: dict[str, Any] = http.post("/commands/data/job-status",
                                                 json={"jobId": job_id}).json()  # fmt: skip
                return body

            _wait(lambda: status()["progress"].get("imported"), "a committed chunk")
            child = _wait(lambda: _children(server.proc.pid), "the job's process")[0]
        os.kill(child, signal.SIGSTOP)  # mid-import when its server dies
        try:
            server.proc.kill()
            assert server.proc.wait(timeout=TIMEOUT) == -signal.SIGKILL
        finally:
            os.kill(child, signal.SIGCONT)
        _wait(lambda: not _alive(child), "the child to stop by itself")
        server.stop()  # its output, and the child's (written to the same pipe)
    assert "Traceback" not in server.output, server.output
    assert server.output.count("the server that started it is gone") == 1, server.output
    with Service(home=home) as service:
        row = service.jobs.get(job_id, LOCAL)
        assert row["status"] == "cancelled", row
        assert "the server stopped" in row["error"]["error"]
        opened = service.execute("data/open", {"adapter": "sqlite",
                                               "config": {"path": str(tmp_path / "out.sqlite")}})  # fmt: skip
        stored = service.execute("data/count", {"dbHandle": opened["dbHandle"], "collection": "c"})
        assert 0 < row["progress"]["imported"] == stored["total"] < lines, (row, stored)
        # A re-run stores the rest.
        done = service.execute("data/import", {**params, "dbHandle": opened["dbHandle"],
                                               "output": None})  # fmt: skip
        assert done["imported"] + done["skipped"] == lines


def test_a_killed_import_childs_rejects_file_is_replaced_by_the_rerun(
    service: Service, tmp_path: Path
) -> None:
    lines = 200_000
    source = tmp_path / "in.jsonl"
    with source.open("wb") as out:  # every 1000th line is not JSON: it goes to the rejects file
        out.writelines(b"{not json\n" if i % 1000 == 999 else
                       orjson.dumps({"id": f"r{i:07d}", "t": "x" * 40}) + b"\n"
                       for i in range(lines))  # fmt: skip
    rejects = tmp_path / "rejects.jsonl"
    params = {"input": str(source), "output": str(tmp_path / "out.sqlite"), "collection": "c",
              "onError": "skip", "rejects": str(rejects)}  # fmt: skip
    job = service.jobs.start("data/import", params, LOCAL)
    pid = _wait(lambda: job.pid if job.pid not in (None, os.getpid()) else None, "the child")
    _wait(lambda: job.progress.get("failed"), "a committed chunk with rejects")
    os.kill(pid, signal.SIGKILL)
    envelope = job.outcome.result(timeout=TIMEOUT)
    assert job.status == "interrupted" and envelope["code"] == "interrupted", envelope
    assert "the batches it committed are kept" in envelope["error"]
    kept = rejects.read_bytes().splitlines()
    assert all(orjson.loads(line)["reason"] for line in kept)  # whole entries only
    again = service.jobs.start("data/import", params, LOCAL)
    done = again.outcome.result(timeout=TIMEOUT)
    assert done["success"] is True, done
    assert done["imported"] + done["skipped"] == lines - lines // 1000
    assert len(rejects.read_bytes().splitlines()) == lines // 1000
