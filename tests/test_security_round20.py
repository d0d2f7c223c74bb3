"""Issue 12, round twenty (outside PostgreSQL): an outside tester's findings at the tenant boundary.

1. A named pipe (FIFO) swapped in for a file between the check by name and the open blocked the open
   forever (an import job, a JSON database's read): every open of such a path is ``O_NONBLOCK`` then
   ``fstat``; and one actor's jobs never hold every job thread.
2. A row filter's equality matched an array holding the value, so a record written through one
   filter showed in another's view: a written record holds one value at each equality field.
3. ``data/open`` of an SQLite path longer than SQLite opens was a 500: ``invalid_config``.
See docs/security.md.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, Settings, dbfiles
from dbhandles import jobs as jobs_module
from dbhandles.adapters.sqlite_config import SqliteConfig
from dbhandles.errors import DbHandlesError
from dbhandles.importer import command as import_command
from tests.security_helpers import ALICE, BOB, ROOT, TENANTS, refused, space, two_tenants

pytestmark = pytest.mark.two_tenants

#: How long a guard waits for a call that must return at once before it declares it hung (never
#: a timing assertion: a call that returns at all passes).
HANG_GUARD = 60.0


def _unblock(fifo: Path) -> None:
    """Open the other end of ``fifo`` once (both ways), so a thread stuck opening it returns."""
    for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, flags))


def returns(call: Callable[[], Any], fifo: Path) -> BaseException | Any:
    """Run ``call`` in a thread and give what it returned or raised; fail (after unblocking it)
    if it is still waiting after ``HANG_GUARD`` seconds: blocked on the pipe ``fifo``."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD)
    if thread.is_alive():
        _unblock(fifo)
        thread.join(HANG_GUARD)
        pytest.fail(f"the call blocked on the named pipe {fifo.name}")
    return outcome[0]


# -- 1a. every open of a caller-named or database path refuses a pipe, never waits ---------------


@pytest.mark.parametrize("mode", ["rb", "r", "wb", "ab"])
def test_open_plain_refuses_a_pipe_without_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    fifo = tmp_path / "race.jsonl"
    os.mkfifo(fifo)
    # The name checked was a regular file; the pipe is what the open finds (swapped in between).
    monkeypatch.setattr(dbfiles, "check_plain", lambda *args, **kwargs: None)
    got = returns(lambda: dbfiles.open_plain(fifo, mode, "input"), fifo)
    assert isinstance(got, (DbHandlesError, OSError)), got
    if isinstance(got, DbHandlesError):
        assert got.code == "invalid_params" and "not a regular file" in str(got)


def test_open_plain_still_reads_and_writes_regular_files(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    with dbfiles.open_plain(path, "wb", "output") as file:
        file.write(b'{"a": 1}\n')
    with dbfiles.open_plain(path, "rb", "input") as file:
        assert file.read() == b'{"a": 1}\n'
        assert os.get_blocking(file.fileno())
    with pytest.raises(IsADirectoryError):
        dbfiles.open_plain(tmp_path, "rb", "input")


def test_import_of_a_pipe_swapped_in_after_the_check(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = space(service, "alice") / "race.jsonl"
    os.mkfifo(fifo)
    # ``_regular_file`` saw the regular file; the pipe is swapped in before the reader opens it.
    monkeypatch.setattr(import_command, "_regular_file", lambda given, real: None)
    params = {"input": "race.jsonl", "output": "race.sqlite", "collection": "rows"}
    got = returns(lambda: service.execute("data/import", params, context=ALICE), fifo)
    assert isinstance(got, DbHandlesError) and got.code == "invalid_params", got
    assert "not a regular file" in str(got)


def test_json_database_replaced_by_a_pipe(service: Service) -> None:
    opened = service.execute(
        "data/open",
        {"adapter": "json", "config": {"path": "notes.json", "mode": "create"}},
        context=ALICE,
    )
    handle = opened["dbHandle"]
    service.execute(
        "data/create",
        {"dbHandle": handle, "collection": "notes", "data": {"id": "n1"}},
        context=ALICE,
    )
    path = space(service, "alice") / "notes.json"
    path.unlink()
    os.mkfifo(path)
    got = returns(
        lambda: service.execute("data/list", {"dbHandle": handle, "collection": "notes"},
                                context=ALICE), path)  # fmt: skip
    # A new file (another inode) is read again: the pipe is refused, never waited on.
    assert isinstance(got, DbHandlesError) and got.code == "invalid_params", got
    assert "not a regular file" in str(got) and got.field == "config.path"


def test_sqlite_read_only_open_of_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "swapped.sqlite"
    os.mkfifo(fifo)
    got = returns(lambda: dbfiles.connect_sqlite(str(fifo), "ro"), fifo)
    assert isinstance(got, sqlite3.OperationalError) and "named pipe" in str(got), got
    assert dbfiles.is_sqlite_database(str(fifo)) is False


# -- 1b. one actor's jobs never hold every job thread ---------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_one_actors_stuck_jobs_leave_a_thread_for_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    release, entered = threading.Event(), threading.Event()
    real_run = jobs_module.run_job

    def stuck_for_alice(service: Service, job: Any, *args: Any) -> Any:
        if job.actor == "alice":
            entered.set()
            release.wait(HANG_GUARD)  # a job blocked (an open that never returns)
        return real_run(service, job, *args)

    monkeypatch.setattr(jobs_module, "run_job", stuck_for_alice)
    with two_tenants(tmp_path, job_threads=threads, max_jobs_per_actor=2) as service:
        try:

            def vacuum_job(context: Any) -> dict[str, Any]:
                opened = service.execute("data/open", {"adapter": "memory"}, context=context)
                params = {"dbHandle": opened["dbHandle"]}
                return service.execute(
                    "data/job-start", {"command": "data/vacuum", "params": params}, context=context
                )

            started = [vacuum_job(ALICE), vacuum_job(ALICE)]
            assert entered.wait(HANG_GUARD)
            job = vacuum_job(BOB)
            done = service.jobs._jobs[job["jobId"]].outcome  # type: ignore[attr-defined]
            done.result(HANG_GUARD)  # bob's job ran while alice's two hold their threads
            statuses = [
                service.execute("data/job-status", {"jobId": s["jobId"]}, context=ALICE)["status"]
                for s in started
            ]
            # Alice's first holds a thread; her second waits for it, not for a thread of bob's.
            assert statuses == ["running", "queued"]
        finally:
            release.set()


# -- 2. a row filter confines writes: an equality field holds one value, never an array -----------


def _granted(service: Service, tmp_path: Path, row_filters: dict[str, Any]) -> dict[str, str]:
    """An administrator's database ``shared.sqlite`` with collection ``notes`` ({owner: alice} and
    {owner: bob}), granted to each actor of ``row_filters`` with that row filter: its handles."""
    admin = service.execute(
        "data/open",
        {
            "adapter": "sqlite",
            "config": {"path": str(tmp_path / "shared.sqlite"), "mode": "create"},
        },
        context=ROOT,
    )["dbHandle"]
    for who in ("alice", "bob"):
        service.execute("data/create", {"dbHandle": admin, "collection": "notes", "id": who,
                                        "data": {"owner": who}}, context=ROOT)  # fmt: skip
    handles = {"admin": admin}
    for who, row_filter in row_filters.items():
        service.execute("data/grant", {"dbHandle": admin, "actor": who, "access": "full",
                                       "permissions": {"rowFilter": row_filter}}, context=ROOT)  # fmt: skip
        handles[who] = service.execute(
            "data/open",
            {"adapter": "sqlite", "config": {"path": str(tmp_path / "shared.sqlite")}},
            context=TENANTS[who],
        )["dbHandle"]
    return handles


def _denied(service: Service, name: str, params: dict[str, Any], field: str) -> None:
    error = refused(service, name, params, ALICE)
    assert error.code == "permission_denied", error
    assert field in error.message and "array" in error.message, error.message


def _owners(service: Service, handle: str, context: Any) -> list[Any]:
    listed = service.execute("data/list", {"dbHandle": handle, "collection": "notes"},
                             context=context)["items"]  # fmt: skip
    return sorted(str(item.get("owner")) for item in listed)


def test_row_filter_refuses_an_array_holding_the_value(service: Service, tmp_path: Path) -> None:
    h = _granted(service, tmp_path, {"alice": {"owner": "alice"}, "bob": {"owner": "bob"}})
    both = {"owner": ["alice", "bob"]}
    _denied(service, "data/create", {"dbHandle": h["alice"], "collection": "notes", "data": both},
            "owner")  # fmt: skip
    _denied(service, "data/update", {"dbHandle": h["alice"], "collection": "notes", "id": "alice",
                                     "data": both}, "owner")  # fmt: skip
    _denied(service, "data/batch", {"dbHandle": h["alice"], "operations": [
        {"op": "create", "collection": "notes", "data": {"n": 1, "owner": "alice"}},
        {"op": "create", "collection": "notes", "data": both}]}, "owner")  # fmt: skip
    # Nothing of it reached bob's view, nor alice's (the batch is all or nothing).
    assert _owners(service, h["bob"], BOB) == ["bob"]
    assert _owners(service, h["alice"], ALICE) == ["alice"]
    # A single value is written as before.
    made = service.execute("data/create", {"dbHandle": h["alice"], "collection": "notes",
                                           "data": {"owner": "alice", "n": 2}}, context=ALICE)  # fmt: skip
    assert made["data"]["owner"] == "alice"


@pytest.mark.parametrize(
    ("row_filter", "data", "field"),
    [
        ({"owner": {"$eq": "alice"}}, {"owner": ["alice", "bob"]}, "owner"),
        ({"owner": {"$in": ["alice", "ally"]}}, {"owner": ["alice", "bob"]}, "owner"),
        ({"$and": [{"team": "t"}, {"owner": "alice"}]}, {"team": "t", "owner": ["alice", "bob"]},
         "owner"),
        ({"meta.owner": "alice"}, {"meta": [{"owner": "alice"}, {"owner": "bob"}]}, "meta.owner"),
        ({"$or": [{"owner": "alice"}, {"team": "t"}]}, {"owner": ["alice", "bob"], "team": "u"},
         "owner"),
    ],
)  # fmt: skip
def test_every_equality_of_a_row_filter_confines(
    service: Service, tmp_path: Path, row_filter: dict[str, Any], data: dict[str, Any], field: str
) -> None:
    h = _granted(service, tmp_path, {"alice": row_filter})
    _denied(service, "data/create", {"dbHandle": h["alice"], "collection": "notes", "data": data},
            field)  # fmt: skip


def test_an_or_branch_that_holds_strictly_lets_the_write_through(
    service: Service, tmp_path: Path
) -> None:
    h = _granted(service, tmp_path, {"alice": {"$or": [{"owner": "alice"}, {"team": "t"}]}})
    data = {"owner": ["alice", "bob"], "team": "t"}  # inside by its team, whatever its owners
    made = service.execute("data/create", {"dbHandle": h["alice"], "collection": "notes",
                                           "data": data}, context=ALICE)  # fmt: skip
    assert made["data"]["team"] == "t"


def test_copy_and_import_into_a_filtered_handle(service: Service, tmp_path: Path) -> None:
    h = _granted(service, tmp_path, {"alice": {"owner": "alice"}})
    source = service.execute("data/open", {"adapter": "memory"}, context=ALICE)["dbHandle"]
    service.execute("data/create", {"dbHandle": source, "collection": "notes",
                                    "data": {"owner": ["alice", "bob"]}}, context=ALICE)  # fmt: skip
    copy = {"from": {"dbHandle": source, "collection": "notes"},
            "to": {"dbHandle": h["alice"], "collection": "notes"}}  # fmt: skip
    # Both keep the source's ids, which a filtered handle never takes: refused whole, before any
    # record is read (so no array reaches the filtered rows this way either).
    error = refused(service, "data/copy", copy, ALICE)
    assert error.code == "permission_denied" and "row filter" in error.message
    assert _owners(service, h["admin"], ROOT) == ["alice", "bob"]
    (space(service, "alice") / "in.jsonl").write_text('{"owner": ["alice", "bob"]}\n')
    error = refused(service, "data/import", {"input": "in.jsonl", "dbHandle": h["alice"],
                                             "collection": "notes"}, ALICE)  # fmt: skip
    assert error.code == "permission_denied" and "row filter" in error.message


# -- 3. an SQLite path longer than SQLite opens is invalid_config, before any folder is made -------


def _long_path(root: Path, size: int) -> Path:
    """A path under ``root`` of exactly ``size`` bytes, through folders of at most 200 bytes."""
    path, left = root, size - len(os.fsencode(root)) - 1
    while left > 200 + 1 + 9:
        path, left = path / ("d" * 200), left - 201
    return path / ("x" * (left - 7) + ".sqlite")


def test_sqlite_path_limit_is_what_sqlite_opens(tmp_path: Path) -> None:
    with Service(settings=Settings(home=tmp_path / "home")) as service:
        longest = _long_path(tmp_path / "in", SqliteConfig.max_path_bytes or 0)
        assert len(os.fsencode(longest)) == SqliteConfig.max_path_bytes
        opened = service.execute(
            "data/open", {"adapter": "sqlite", "config": {"path": str(longest), "mode": "create"}}
        )
        service.execute("data/create", {"dbHandle": opened["dbHandle"], "collection": "c",
                                        "data": {"n": 1}})  # fmt: skip
        one_more = _long_path(tmp_path / "out", len(os.fsencode(longest)) + 1)
        with pytest.raises(DbHandlesError) as caught:
            service.execute(
                "data/open",
                {"adapter": "sqlite", "config": {"path": str(one_more), "mode": "create"}},
            )
        assert caught.value.code == "invalid_config" and caught.value.field == "config.path"
        assert f"at most {SqliteConfig.max_path_bytes} bytes" in caught.value.message
        assert not (tmp_path / "out").exists()  # no folder was made


@pytest.mark.parametrize("size", [600, 4000])
def test_a_tenants_long_sqlite_path_is_refused_before_any_folder(
    service: Service, size: int
) -> None:
    home = space(service, "alice")
    given = _long_path(home, size).relative_to(home)
    for mode in ("create", "readwrite"):
        error = refused(service, "data/open",
                        {"adapter": "sqlite", "config": {"path": str(given), "mode": mode}})  # fmt: skip
        assert (error.code, error.field) == ("invalid_config", "config.path"), error
        assert str(home) not in error.message
    assert list(home.iterdir()) == []
