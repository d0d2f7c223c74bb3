"""A statement that never ends (a recursive view) is interrupted by a cancel or a shutdown, on every
command that reads: the SQLite connection's progress handler asks the command's stop checks."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service, budget
from dbhandles.errors import DbHandlesError, ServerUnreachable
from dbhandles.settings import Settings

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
#: A view whose one row is the count of an endless recursion: its statement never returns.
ENDLESS = (
    "CREATE VIEW v_inf AS WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
    "SELECT count(*) AS id FROM r"
)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    # No time budget: only the stop can end the statement.
    settings = Settings(home=tmp_path / "home", query_timeout_ms=0)
    with Service(settings=settings) as svc:
        svc.tokens.create("alice")
        yield svc


def _endless(service: Service) -> tuple[str, str]:
    """Alice's handle to a file holding ``v_inf`` and a table ``t``, and one to copy into."""
    space = service.settings.space_root() / "alice"
    space.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(space / "inf.sqlite")
    conn.execute(ENDLESS)
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, a)")
    conn.commit()
    conn.close()
    handles = []
    for config in ({"path": "inf.sqlite"}, {"path": "target.sqlite", "mode": "create"}):
        opened = service.execute(
            "data/open", {"adapter": "sqlite", "config": config}, context=ALICE
        )
        handles.append(str(opened["dbHandle"]))
    return handles[0], handles[1]


def _reads(handle: str, target: str) -> dict[str, tuple[str, dict[str, Any]]]:
    base = {"dbHandle": handle, "collection": "v_inf"}
    return {
        "list": ("data/list", base),
        "count": ("data/count", base),
        "export": ("data/export", {**base, "output": "inf.jsonl"}),
        "copy": ("data/copy", {"from": base, "to": {"dbHandle": target, "collection": "got"}}),
        "query-open": ("data/query-open", base),
        # A view's row is read by the JSON of its columns (docs/foreign-tables.md); plain strings
        # take data/read's direct path (commands/read_path.py), not the dispatcher's.
        "read": ("data/read", {**base, "id": "[1]"}),
    }


@pytest.mark.parametrize("command", ["list", "count", "export", "copy", "query-open", "read"])
def test_a_shutdown_interrupts_a_statement_that_never_ends(service: Service, command: str) -> None:
    handle, target = _endless(service)
    stopped = ServerUnreachable("the server is shutting down: interrupted")
    service.interrupt(stopped)  # past the grace (server/shutdown.py)
    name, params = _reads(handle, target)[command]
    with pytest.raises(DbHandlesError) as caught:
        service.execute(name, params, context=ALICE)
    assert caught.value is stopped, caught.value
    assert not (service.settings.space_root() / "alice" / "inf.jsonl").exists()


@pytest.mark.parametrize("path", ["direct", "generic"])
def test_a_read_of_a_view_row_that_never_ends_stops_at_the_time_budget(
    tmp_path: Path, path: str
) -> None:
    """A view's row is computed when it is read by its id: that read runs under the command's time
    budget as a listing does, on data/read's direct path (plain strings) and on the generic one."""
    from dbhandles.commands.records import ReadParams

    settings = Settings(home=tmp_path / "home", query_timeout_ms=200)
    with Service(settings=settings) as service:
        service.tokens.create("alice")
        handle, _ = _endless(service)
        params = {"dbHandle": handle, "collection": "v_inf", "id": "[1]"}
        sent = params if path == "direct" else ReadParams.model_validate(params)
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/read", sent, context=ALICE)
        assert caught.value.code == "query_timeout", caught.value
        # The connection is left ready for the next command.
        assert service.execute("data/list", {"dbHandle": handle, "collection": "t"},
                               context=ALICE)["items"] == []  # fmt: skip


def test_a_cancelled_job_interrupts_its_statement(service: Service) -> None:
    handle, _ = _endless(service)
    params = {"dbHandle": handle, "collection": "v_inf", "output": "inf0.jsonl"}
    job = service.jobs.start("data/export", params, ALICE)
    service.jobs.cancel(job.id, ALICE)
    envelope = job.outcome.result(timeout=60)  # a bound on a hang, not a measurement
    assert envelope["code"] == "job_cancelled", envelope
    assert job.status == "cancelled"
    assert "statement it was running was interrupted" in envelope["error"]
    # Both job threads are free again: two more endless exports are cancelled the same way.
    more = [service.jobs.start("data/export", {**params, "output": f"inf{i}.jsonl"}, ALICE)
            for i in (1, 2)]  # fmt: skip
    for other in more:
        service.jobs.cancel(other.id, ALICE)
    for other in more:
        assert other.outcome.result(timeout=60)["code"] == "job_cancelled"


def test_a_stop_check_interrupts_a_write_and_keeps_nothing(service: Service) -> None:
    # A write whose statement runs the endless view (INSERT ... SELECT in a trigger) stops too,
    # and its transaction is rolled back: nothing of it is kept.
    space = service.settings.space_root() / "alice"
    space.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(space / "w.sqlite")
    conn.executescript(
        f"{ENDLESS}; CREATE TABLE t (id TEXT PRIMARY KEY, a); CREATE TABLE log (n);"
        "CREATE TRIGGER tg AFTER INSERT ON t BEGIN INSERT INTO log SELECT id FROM v_inf; END;"
    )
    conn.close()
    opened = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": "w.sqlite"}}, context=ALICE
    )
    handle = opened["dbHandle"]
    stopped = ServerUnreachable("stopped")
    with budget.stopping(lambda: stopped), pytest.raises(DbHandlesError) as caught:
        service.execute("data/create", {"dbHandle": handle, "collection": "t",
                                        "data": {"id": "1", "a": 1}}, context=ALICE)  # fmt: skip
    assert caught.value is stopped
    counted = service.execute("data/count", {"dbHandle": handle, "collection": "t"}, context=ALICE)
    assert counted["total"] == 0


def test_without_a_stop_the_connection_runs_as_before(service: Service) -> None:
    # The progress handler every adapter connection carries says go on when nothing asks to stop.
    handle, _ = _endless(service)
    assert not budget.interrupt_requested()
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "t"}, context=ALICE)
    assert listed["items"] == []


def _wait_until_open(job: Any, path: Path) -> None:
    """Wait (bounded) until the job's child process has ``path`` open: its statement then runs."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to see the child's open files")
    for _ in range(6000):
        pid = job.pid
        if pid is not None and pid != os.getpid():
            with contextlib.suppress(OSError):
                fds = Path(f"/proc/{pid}/fd")
                if any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir()):
                    return
        if job.outcome.done():
            return
        time.sleep(0.01)
    pytest.fail("the job's child never opened the database")


def test_a_cancelled_job_in_a_child_process_interrupts_its_statement(tmp_path: Path) -> None:
    # A server places large jobs in a child process (server/job_process.py; every job here): the
    # cancel it relays stops the child's statement, which answers, rather than being killed.
    from dbhandles.server.app import create_app

    service = Service(settings=Settings(home=tmp_path / "home", job_process_bytes=0))
    try:
        create_app(service)
        path = tmp_path / "inf.sqlite"
        conn = sqlite3.connect(path)
        conn.execute(ENDLESS)
        conn.close()
        local = Context()
        opened = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(path)}},
                                 context=local)  # fmt: skip
        params = {"dbHandle": opened["dbHandle"], "collection": "v_inf",
                  "output": str(tmp_path / "inf.jsonl")}  # fmt: skip
        job = service.jobs.start("data/export", params, local)
        _wait_until_open(job, path)  # cancelled before then, a slow child is killed instead
        service.jobs.cancel(job.id, local)
        envelope = job.outcome.result(timeout=120)  # a bound on a hang, not a measurement
        assert envelope["code"] == "job_cancelled", envelope
        assert "statement it was running was interrupted" in envelope["error"], envelope
        assert "was killed" not in envelope["error"]
    finally:
        service.close()


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["list", "count", "export"])
def test_a_shutdown_interrupts_a_postgres_statement_that_never_ends(
    tmp_path: Path, command: str
) -> None:
    # PostgreSQL runs the statement in its server: a watcher thread sends it a cancel request
    # once the command is told to stop (adapters/postgres_cancel.py).
    from tests.pgserver import postgres_schema

    pg = postgres_schema(tmp_path, ENDLESS)
    settings = Settings(home=tmp_path / "home", query_timeout_ms=0)
    with Service(settings=settings) as service:
        handle = service.execute("data/open", {"adapter": "postgres", "config": pg})["dbHandle"]
        stopped = ServerUnreachable("the server is shutting down: interrupted")
        service.interrupt(stopped)
        base = {"dbHandle": handle, "collection": "v_inf"}
        asks = {
            "list": ("data/list", base),
            "count": ("data/count", base),
            "export": ("data/export", {**base, "output": str(tmp_path / "inf.jsonl")}),
        }
        name, params = asks[command]
        with pytest.raises(DbHandlesError) as caught:
            service.execute(name, params)
        assert caught.value is stopped, caught.value
