"""PostgreSQL as the default database: two services (as two processes would) share handles and events."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Event, InvalidConfig, Service, Settings
from dbhandles.errors import DbHandlesError
from dbhandles.events.postgres import MAX_NOTIFY_BYTES
from tests.pgserver import require_postgres, schema_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def default_url(tmp_path: Path) -> str:
    if "default_url" not in Settings.__dataclass_fields__:
        pytest.fail(
            "Settings.default_url is missing: apply the PostgreSQL-default wiring (pgdefault.py)"
        )
    return f"{require_postgres().url}&schema={schema_for(tmp_path)}"


@pytest.fixture
def pair(tmp_path: Path, default_url: str) -> Iterator[tuple[Service, Service]]:
    first = Service(settings=Settings(home=tmp_path / "a", default_url=default_url))
    second = Service(settings=Settings(home=tmp_path / "b", default_url=default_url))
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_settings_read_the_default_url_and_never_show_it(tmp_path: Path, default_url: str) -> None:
    settings = Settings.from_env(
        {"DBHANDLES_DEFAULT_URL": "postgresql://u:pw@h/db", "DBHANDLES_HOME": "/x"}
    )
    assert settings.default_url == "postgresql://u:pw@h/db"
    assert "pw" not in repr(settings)
    with pytest.raises(InvalidConfig, match="DBHANDLES_DEFAULT_URL"):
        Service(settings=Settings(home=tmp_path, default_url="mysql://u:pw@h/db"))


def test_the_default_handle_lives_on_postgres(pair: tuple[Service, Service]) -> None:
    a, b = pair
    default = a.execute("data/list-handles")["handles"][0]
    assert default["handle"] == "default" and default["adapter"] == "postgres"
    a.execute("data/create", {"collection": "notes", "id": "n", "data": {"t": 1}})
    assert b.execute("data/read", {"collection": "notes", "id": "n"})["data"]["t"] == 1


def test_handles_aliases_and_cursors_are_shared(
    pair: tuple[Service, Service], tmp_path: Path
) -> None:
    a, b = pair
    path = str(tmp_path / "shared.sqlite")  # one host here, so both may use the file
    handle = a.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": path, "mode": "create"}, "alias": "s"}
    )
    ops = [{"op": "create", "collection": "rows", "id": f"r{i:02d}", "data": {}} for i in range(10)]
    b.execute("data/batch", {"dbHandle": "s", "operations": ops})
    cursor = a.execute("data/query-open", {"dbHandle": handle["dbHandle"], "collection": "rows",
                                           "orderBy": ["id"], "pageSize": 3})["queryHandle"]  # fmt: skip
    pages = [(a, b)[i % 2].execute("data/query-next", {"queryHandle": cursor}) for i in range(5)]
    assert [p["pageNumber"] for p in pages[:4]] == [0, 1, 2, 3]
    assert [i["id"] for p in pages for i in p["items"]] == [f"r{i:02d}" for i in range(10)]
    b.execute("data/close", {"dbHandle": "s"})
    assert not a.registry.is_open(handle["dbHandle"])


def test_events_cross_between_services_once_each(pair: tuple[Service, Service]) -> None:
    a, b = pair
    seen_a: list[Event] = []
    seen_b: list[Event] = []
    a.events.subscribe("data:*", seen_a.append)
    b.events.subscribe("data:*", seen_b.append)
    a.execute("data/create", {"collection": "notes", "id": "small", "data": {"t": "x"}})
    big = "y" * (MAX_NOTIFY_BYTES * 2)
    b.execute("data/create", {"collection": "notes", "id": "big", "data": {"t": big}})
    _wait(lambda: len(seen_a) == 2 and len(seen_b) == 2)
    time.sleep(0.3)  # nothing echoes back
    assert [e.payload["id"] for e in seen_a] == ["small", "big"]
    assert sorted(e.payload["id"] for e in seen_b) == ["big", "small"]
    assert next(e for e in seen_a if e.payload["id"] == "big").payload["record"]["t"] == big


def test_events_from_many_threads_all_arrive(pair: tuple[Service, Service]) -> None:
    a, b = pair
    seen: list[str] = []
    lock = threading.Lock()

    def collect(event: Event) -> None:
        with lock:
            seen.append(event.payload["id"])

    b.events.subscribe("data:load:created", collect)

    def write(start: int) -> None:
        for i in range(start, start + 20):
            a.execute("data/create", {"collection": "load", "id": f"i{i:03d}", "data": {}})

    threads = [threading.Thread(target=write, args=(n * 20,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _wait(lambda: len(seen) == 80)
    assert sorted(seen) == [f"i{i:03d}" for i in range(80)]


def test_without_psycopg_the_default_url_says_which_extra(tmp_path: Path, default_url: str) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from dbhandles import Service, Settings, DriverMissing\n"
        "try:\n"
        f"    Service(settings=Settings(home={str(tmp_path)!r}, default_url={default_url!r}))\n"
        "except DriverMissing as exc:\n"
        "    print('driver_missing', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.stdout.startswith("driver_missing"), out.stderr
    assert "pip install 'dbhandles[postgres]'" in out.stdout


# -- jobs: one job table for every service on the schema ---------------------------------------------


def test_jobs_are_shared_cancelled_and_limited_across_services(
    pair: tuple[Service, Service], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_shared_jobs import hold_after_first_chunk, wait_for, write_jsonl

    a, b = pair
    progressed, go = hold_after_first_chunk(monkeypatch)
    source = write_jsonl(tmp_path / "big.jsonl", 12_000)
    params = {"input": str(source), "output": str(tmp_path / "o.sqlite"), "batchSize": 1000,
              "parser": "inline"}  # fmt: skip
    try:
        job_id = a.execute("data/job-start", {"command": "data/import", "params": params})["jobId"]
        assert progressed.wait(20)
        assert status(b, job_id)["status"] == "running"
        assert [j["jobId"] for j in b.execute("data/job-list")["jobs"]] == [job_id]
        # The limit (2 per actor) counts a's job: b may start one more, not two.
        queued = b.execute("data/job-start", {"command": "data/import", "params": params})
        with pytest.raises(DbHandlesError) as refused:
            a.execute("data/job-start", {"command": "data/import", "params": params})
        assert refused.value.code == "too_many_requests"
        assert b.execute("data/job-cancel", {"jobId": job_id})["cancelRequested"] is True
    finally:
        go.set()
    wait_for(lambda: status(a, job_id)["status"] != "running", "the job to stop")
    final = status(b, job_id)
    assert (final["status"], final["error"]["code"]) == ("cancelled", "job_cancelled")
    wait_for(lambda: status(a, queued["jobId"])["status"] == "done", "the second import", 60)


def status(service: Service, job_id: str) -> dict[str, Any]:
    return service.execute("data/job-status", {"jobId": job_id})


def test_a_dead_process_jobs_are_interrupted_on_postgres(tmp_path: Path, default_url: str) -> None:
    from dbhandles.commands.jobs import interrupted_error
    from dbhandles.store.jobs import JobRow, this_process

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    me = this_process()
    settings = Settings(home=tmp_path / "a", default_url=default_url)
    with Service(settings=settings) as first:
        table = first.registry.store.jobs
        row = JobRow("j-dead", "local", "data/copy", {}, "running", {}, False, None, None, 1, 2,
                     None, table.host, int(done.stdout), me.token + "-gone")  # fmt: skip
        assert table.start_job(row, limit=5, keep=100, since=0, why=interrupted_error) is None
        assert status(first, "j-dead")["status"] == "running"
    with Service(settings=settings) as after:
        found = status(after, "j-dead")
    assert found["status"] == "interrupted" and "copy the rest" in found["error"]["error"]
