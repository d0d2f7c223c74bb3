"""SQLite's memory bound is the process's, shared by every actor in it (issue 12, round 14): a
non-admin's job runs in a child process with a bound of its own, and a read refused because other
statements held the bound waits for the memory within its budget and, failing that, says whose the
memory was (``storage_busy``), never blaming its own query (docs/server.md "Limits")."""

from __future__ import annotations

import ctypes
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles import Context, Service
from dbhandles.adapters.sqlite_pages import _sqlite_library, bound_sqlite_heap, heap_in_use
from dbhandles.errors import DbHandlesError
from dbhandles.server.app import create_app
from dbhandles.settings import Settings
from tests.test_page_memory import _wide

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
LOCAL = Context()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with Service(settings=Settings(home=tmp_path / "home", query_timeout_ms=1500)) as svc:
        svc.tokens.create("alice")
        yield svc


@pytest.fixture
def bound() -> Iterator[int]:
    """SQLite's hard_heap_limit set to 256 MiB for the test (it is the process's), then put back
    with the soft limit (through the C API: the pragma may only lower them)."""
    lib = _sqlite_library()
    if lib is None:
        pytest.skip("this SQLite's memory counters cannot be read")
    lib.sqlite3_soft_heap_limit64.restype = ctypes.c_int64
    lib.sqlite3_soft_heap_limit64.argtypes = [ctypes.c_int64]
    probe = sqlite3.connect(":memory:")
    bound_sqlite_heap(probe)  # the process's bound as a service sets it, whichever test is first
    probe.close()
    hard = lib.sqlite3_hard_heap_limit64(-1)
    soft = lib.sqlite3_soft_heap_limit64(-1)
    lib.sqlite3_hard_heap_limit64(256 << 20)
    try:
        assert heap_in_use() is not None
        yield 256 << 20
    finally:
        lib.sqlite3_hard_heap_limit64(hard)
        lib.sqlite3_soft_heap_limit64(soft)


def hold(megabytes: int) -> sqlite3.Connection:
    """Another statement's memory: an in-memory database of ``megabytes`` MB, held until closed."""
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("PRAGMA cache_size = -400000")
    conn.execute("CREATE TABLE x (b BLOB)")
    for _ in range(megabytes):
        conn.execute("INSERT INTO x VALUES (zeroblob(1000000))")
    return conn


def read_view(service: Service, handle: str) -> dict[str, object]:
    # Its 20 rows of 1 MB are sorted whole (the view's id is all its columns): about 60 MB.
    return service.execute("data/list", {"dbHandle": handle, "collection": "v", "limit": 1},
                           context=ALICE)  # fmt: skip


def test_a_read_refused_for_memory_others_hold_runs_once_it_comes_back(
    service: Service, bound: int
) -> None:
    handle, _ = _wide(service, 1_000_000)
    assert len(read_view(service, handle)["items"]) == 1  # alone it fits
    holder = hold(200)
    threading.Timer(0.3, holder.close).start()  # the other statement ends
    assert len(read_view(service, handle)["items"]) == 1


def test_a_read_that_found_the_memory_others_is_storage_busy_naming_whose(
    service: Service, bound: int
) -> None:
    handle, _ = _wide(service, 1_000_000)
    holder = hold(200)
    try:
        with pytest.raises(DbHandlesError) as caught:
            read_view(service, handle)
    finally:
        holder.close()
    error = caught.value
    assert (error.code, error.http_status) == ("storage_busy", 503), error
    assert "other queries" in error.message and "nothing is wrong with this query" in error.message
    assert "256 MiB" in error.message and '"v"' in error.message
    assert len(read_view(service, handle)["items"]) == 1  # and the same read works afterwards


def test_a_read_that_alone_passes_the_bound_is_its_own_query_failed(
    service: Service, bound: int
) -> None:
    handle, _ = _wide(service, 10_000_000)  # 20 rows of 10 MB: past 256 MiB on its own
    with pytest.raises(DbHandlesError) as caught:
        read_view(service, handle)
    error = caught.value
    assert error.code == "query_failed" and "256 MiB" in error.message, error


def test_a_non_admins_job_runs_in_a_child_whatever_its_size(tmp_path: Path) -> None:
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        create_app(service)  # a server's service: it places jobs
        service.tokens.create("alice")
        handle, _ = _wide(service, 100)  # a few KB: below DBHANDLES_JOB_PROCESS_BYTES
        params = {"dbHandle": handle, "collection": "t", "output": "t.jsonl"}
        job = service.jobs.start("data/export", params, ALICE)
        envelope = job.outcome.result(timeout=120)
        assert envelope["success"] is True, envelope
        assert job.pid is not None and job.pid != os.getpid()
        # The administrator's small job stays on the server's threads, as before.
        space = service.settings.space_root() / "alice"
        mine = {**params, "output": str(space / "admin.jsonl")}
        job = service.jobs.start("data/export", mine, LOCAL)
        assert job.outcome.result(timeout=120)["success"] is True
        assert job.pid in (None, os.getpid())
