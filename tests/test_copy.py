"""``data/copy``: records between any two adapters, moves, re-runs after a kill, conflicts, rights."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Context, Service, Settings
from dbhandles.commands.copy import CopyHooks
from dbhandles.commands.copy_run import CopyStats, same_record
from dbhandles.errors import DbHandlesError
from tests.conftest import adapter_config
from tests.servers import app_client

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
ROOT = Path(__file__).resolve().parents[1]

PG = pytest.mark.postgres


def open_handle(service: Service, adapter: str, folder: Path, alias: str, **extra: Any) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    params = {
        "adapter": adapter,
        "config": adapter_config(adapter, folder),
        "alias": alias,
        **extra,
    }
    return str(service.execute("data/open", params)["dbHandle"])


def seed(service: Service, handle: str, n: int, collection: str = "messages") -> None:
    ops = [
        {"op": "create", "collection": collection, "id": f"m{i:03}",
         "data": {"n": i, "room": "a" if i % 2 else "b", "tags": ["x", i], "meta": {"len": i * 1.5}}}
        for i in range(n)
    ]  # fmt: skip
    service.execute("data/batch", {"dbHandle": handle, "operations": ops})


def all_records(
    service: Service, handle: str, collection: str = "messages"
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"dbHandle": handle, "collection": collection, "limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = service.execute("data/list", params)
        items += page["items"]
        cursor = page.get("nextCursor")
        if not page.get("hasMore"):
            return items


def copy(service: Service, **params: Any) -> dict[str, Any]:
    return service.execute("data/copy", params)


PAIRS = [
    ("sqlite", "json"),
    ("memory", "sqlite"),
    ("json", "memory"),
    pytest.param("sqlite", "postgres", marks=PG, id="sqlite-postgres"),
    pytest.param("postgres", "sqlite", marks=PG, id="postgres-sqlite"),
]


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_copy_between_adapters_keeps_records_exactly(
    service: Service, tmp_path: Path, src: str, dst: str
) -> None:
    a = open_handle(service, src, tmp_path / "a", "primary")
    b = open_handle(service, dst, tmp_path / "b", "archive")
    seed(service, a, 23)
    service.execute("data/update", {"dbHandle": a, "collection": "messages", "id": "m004",
                                    "data": {"edited": True}})  # fmt: skip
    result = copy(service, **{"from": {"dbHandle": "primary", "collection": "messages",
                                       "filter": {"room": "a"}, "orderBy": ["-n"]},
                              "to": {"dbHandle": "archive"}, "batchSize": 4})  # fmt: skip
    assert (result["read"], result["copied"], result["skipped"], result["deleted"]) == (
        11,
        11,
        0,
        0,
    )
    assert result["batches"] == 3 and result["conflicts"] == 0
    assert result["from"] == {"dbHandle": a, "collection": "messages"}
    assert result["to"] == {"dbHandle": b, "collection": "messages"} and result["dbHandle"] == b
    source = {r["id"]: r for r in all_records(service, a) if r["room"] == "a"}
    copied = {r["id"]: r for r in all_records(service, b)}
    assert copied.keys() == source.keys()
    for rid, record in source.items():  # ids, createdAt, updatedAt, version, every field
        assert same_record(record, copied[rid]) and copied[rid]["version"] == record["version"]
    assert len(all_records(service, a)) == 23  # a copy leaves the source alone
    again = copy(service, **{"from": {"dbHandle": a, "collection": "messages"},
                             "to": {"dbHandle": b}, "batchSize": 5})  # fmt: skip
    assert (again["copied"], again["skipped"], again["conflicts"]) == (12, 11, 0)
    assert len(all_records(service, b)) == 23


@pytest.mark.parametrize(("src", "dst"), PAIRS)
def test_move_deletes_only_what_was_verified(
    service: Service, tmp_path: Path, src: str, dst: str
) -> None:
    a = open_handle(service, src, tmp_path / "a", "primary")
    b = open_handle(service, dst, tmp_path / "b", "archive")
    seed(service, a, 10)
    result = copy(service, **{"from": {"dbHandle": a, "collection": "messages",
                                       "filter": {"n": {"$lt": 7}}},
                              "to": {"dbHandle": b, "collection": "old_messages"},
                              "move": True, "batchSize": 3})  # fmt: skip
    assert (result["copied"], result["deleted"], result["move"]) == (7, 7, True)
    assert sorted(r["n"] for r in all_records(service, a)) == [7, 8, 9]
    assert sorted(r["n"] for r in all_records(service, b, "old_messages")) == list(range(7))


def test_limit_copies_at_most_that_many_per_run(service: Service, tmp_path: Path) -> None:
    a = open_handle(service, "sqlite", tmp_path / "a", "primary")
    b = open_handle(service, "sqlite", tmp_path / "b", "archive")
    seed(service, a, 9)
    params = {"from": {"dbHandle": a, "collection": "messages", "orderBy": "n"},
              "to": {"dbHandle": b}, "move": True, "limit": 4, "batchSize": 3}  # fmt: skip
    assert copy(service, **params)["deleted"] == 4
    assert copy(service, **params)["deleted"] == 4
    assert copy(service, **params)["deleted"] == 1
    assert [r["n"] for r in all_records(service, b)] == list(range(9))


def test_a_copy_stopped_between_batches_completes_on_a_rerun(
    service: Service, tmp_path: Path
) -> None:
    a = open_handle(service, "sqlite", tmp_path / "a", "primary")
    b = open_handle(service, "json", tmp_path / "b", "archive")
    seed(service, a, 20)

    def stop_after_two(stats: CopyStats) -> None:
        if stats.batches == 2:
            raise DbHandlesError("stopped")

    params = {"from": {"dbHandle": a, "collection": "messages"}, "to": {"dbHandle": b},
              "move": True, "batchSize": 3}  # fmt: skip
    stats = CopyStats()
    with pytest.raises(DbHandlesError, match="stopped") as failed:
        service.execute("data/copy", params, hooks=CopyHooks(stats=stats, on_batch=stop_after_two))
    assert (stats.copied, stats.deleted) == (6, 6)
    assert failed.value.details["copied"] == 6  # the failure envelope says what was done
    result = copy(service, **params)
    assert (result["copied"], result["skipped"], result["deleted"]) == (14, 0, 14)
    assert sorted(r["id"] for r in all_records(service, b)) == [f"m{i:03}" for i in range(20)]
    assert all_records(service, a) == []


def test_a_copy_killed_after_writing_before_deleting_loses_and_doubles_nothing(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst moment: the target committed a batch, the source still holds it."""
    from dbhandles.commands import copy_run

    a = open_handle(service, "memory", tmp_path / "a", "primary")
    b = open_handle(service, "sqlite", tmp_path / "b", "archive")
    seed(service, a, 12)
    real = copy_run._move
    calls = []

    def crash_on_second(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise DbHandlesError("killed")
        real(*args)

    monkeypatch.setattr(copy_run, "_move", crash_on_second)
    params = {"from": {"dbHandle": a, "collection": "messages"}, "to": {"dbHandle": b},
              "move": True, "batchSize": 5}  # fmt: skip
    with pytest.raises(DbHandlesError, match="killed"):
        copy(service, **params)
    assert len(all_records(service, b)) == 10 and len(all_records(service, a)) == 7
    monkeypatch.setattr(copy_run, "_move", real)
    result = copy(service, **params)
    assert (result["skipped"], result["copied"], result["deleted"]) == (5, 2, 7)
    assert sorted(r["id"] for r in all_records(service, b)) == [f"m{i:03}" for i in range(12)]
    assert all_records(service, a) == []


KILLED_COPY = """
import os, signal, sys
from dbhandles import Service, Settings
from dbhandles.adapters.sqlite_session import SqliteSession

home, source, target = sys.argv[1:4]
real, deletes = SqliteSession.delete, []

def delete(self, collection, record_id):
    deletes.append(record_id)
    if len(deletes) == 8:  # in the middle of the third batch's deletes
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, collection, record_id)

SqliteSession.delete = delete
service = Service(settings=Settings(home=home))
a = service.execute("data/open", {"adapter": "sqlite", "config": {"path": source}})["dbHandle"]
b = service.execute("data/open", {"adapter": "sqlite", "config": {"path": target, "mode": "create"}})
b = b["dbHandle"]
service.execute("data/copy", {"from": {"dbHandle": a, "collection": "messages"},
                              "to": {"dbHandle": b}, "move": True, "batchSize": 3})
"""


@pytest.mark.needs_server
def test_a_copy_killed_with_sigkill_completes_on_a_rerun(tmp_path: Path) -> None:
    source, target = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    with sqlite3.connect(source) as conn:  # the original's main database: a dbhandles collection
        conn.execute("CREATE TABLE messages (id TEXT PRIMARY KEY, data TEXT NOT NULL, "
                     "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL)")  # fmt: skip
        conn.executemany(
            "INSERT INTO messages VALUES (?, ?, '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z', 2)",
            [(f"m{i:03}", orjson.dumps({"n": i}).decode()) for i in range(17)],
        )
    conn.close()
    script = tmp_path / "killed_copy.py"
    script.write_text(textwrap.dedent(KILLED_COPY))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "home"), str(source),
                           str(target)], env=env, capture_output=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with Service(settings=Settings(home=tmp_path / "home2")) as service:
        a = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(source)}})
        b = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(target)}})
        a, b = a["dbHandle"], b["dbHandle"]
        assert len(all_records(service, a)) == 17 - 6  # two batches deleted; the third rolled back
        assert len(all_records(service, b)) == 9  # three batches copied
        result = copy(service, **{"from": {"dbHandle": a, "collection": "messages"},
                                  "to": {"dbHandle": b}, "move": True, "batchSize": 3})  # fmt: skip
        assert (result["skipped"], result["copied"], result["deleted"]) == (3, 8, 11)
        moved = all_records(service, b)
        assert [r["id"] for r in moved] == [f"m{i:03}" for i in range(17)]
        assert {(r["version"], r["createdAt"]) for r in moved} == {(2, "2026-01-01T00:00:00.000Z")}
        assert all_records(service, a) == []


@pytest.fixture
def pair(service: Service, tmp_path: Path) -> tuple[str, str]:
    a = open_handle(service, "sqlite", tmp_path / "a", "primary")
    b = open_handle(service, "memory", tmp_path / "b", "archive")
    seed(service, a, 4)
    service.execute("data/create", {"dbHandle": b, "collection": "messages", "id": "m001",
                                    "data": {"n": 100}})  # fmt: skip
    return a, b


def test_a_differing_record_is_a_reported_conflict_and_stays_in_the_source(
    service: Service, pair: tuple[str, str]
) -> None:
    a, b = pair
    params = {
        "from": {"dbHandle": a, "collection": "messages"},
        "to": {"dbHandle": b},
        "move": True,
    }
    result = copy(service, **params)
    assert (result["copied"], result["conflicts"], result["conflictIds"], result["deleted"]) == (
        3, 1, ["m001"], 3,
    )  # fmt: skip
    assert [r["id"] for r in all_records(service, a)] == ["m001"]
    assert (
        service.execute("data/read", {"dbHandle": b, "collection": "messages", "id": "m001"})[
            "data"
        ]["n"]
        == 100
    )


def test_on_conflict_abort_stops_before_writing_the_batch(
    service: Service, pair: tuple[str, str]
) -> None:
    a, b = pair
    envelope = service.dispatch("data/copy", {"from": {"dbHandle": a, "collection": "messages"},
                                              "to": {"dbHandle": b}, "onConflict": "abort"})  # fmt: skip
    assert envelope["code"] == "conflict" and "m001" in envelope["error"]
    assert envelope["copied"] == 0 and len(all_records(service, b)) == 1


def test_on_conflict_replace_overwrites_the_target(service: Service, pair: tuple[str, str]) -> None:
    a, b = pair
    result = copy(service, **{"from": {"dbHandle": a, "collection": "messages"},
                              "to": {"dbHandle": b}, "onConflict": "replace", "move": True})  # fmt: skip
    assert (result["copied"], result["replaced"], result["deleted"]) == (3, 1, 4)
    assert [r["n"] for r in all_records(service, b)] == [0, 1, 2, 3]


def test_a_foreign_table_is_copied_and_a_read_only_handle_never_written(
    service: Service, tmp_path: Path
) -> None:
    legacy = tmp_path / "legacy.db"
    with sqlite3.connect(legacy) as conn:
        conn.execute("CREATE TABLE commits (sha TEXT PRIMARY KEY, author TEXT, lines INTEGER)")
        conn.executemany(
            "INSERT INTO commits VALUES (?, ?, ?)", [("c1", "ann", 3), ("c2", "bo", 5)]
        )
    conn.close()
    src = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(legacy), "mode": "readonly"}}
    )["dbHandle"]
    b = open_handle(service, "sqlite", tmp_path / "b", "archive")
    result = copy(
        service, **{"from": {"dbHandle": src, "collection": "commits"}, "to": {"dbHandle": b}}
    )
    assert result["copied"] == 2
    stored = {r["id"]: r for r in all_records(service, b, "commits")}
    assert stored["c1"]["author"] == "ann" and stored["c1"]["version"] == 1
    again = copy(
        service, **{"from": {"dbHandle": src, "collection": "commits"}, "to": {"dbHandle": b}}
    )
    assert (again["copied"], again["skipped"]) == (0, 2)
    # A move from a read-only handle is refused before anything is read or written.
    moved = service.dispatch("data/copy", {"from": {"dbHandle": src, "collection": "commits"},
                                           "to": {"dbHandle": b}, "move": True})  # fmt: skip
    assert (moved["code"], moved["field"]) == ("read_only", "move")
    # Through a writable handle the table takes copies (tests/test_foreign_copy.py has the rest).
    writable = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(legacy)}})[
        "dbHandle"
    ]
    service.execute("data/update", {"dbHandle": b, "collection": "commits", "id": "c2",
                                    "data": {"lines": 6}})  # fmt: skip
    into = service.dispatch("data/copy", {"from": {"dbHandle": b, "collection": "commits"},
                                          "to": {"dbHandle": writable}})  # fmt: skip
    assert (into["skipped"], into["conflicts"], into["conflictIds"]) == (1, 1, ["c2"]), into


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"to": {"dbHandle": "archive"}}, "invalid_params", "from"),
        ({"from": {"dbHandle": "primary", "collection": "messages"}}, "invalid_params", "to"),
        ({"from": {"dbHandle": "primary", "collection": "messages", "extra": 1},
          "to": {"dbHandle": "archive"}}, "invalid_params", "from.extra"),
        ({"from": {"dbHandle": "primary", "collection": "bad\nname"},
          "to": {"dbHandle": "archive"}}, "invalid_params", "from.collection"),
        ({"from": {"dbHandle": "no such", "collection": "messages"},
          "to": {"dbHandle": "archive"}}, "invalid_params", "from.dbHandle"),
        ({"from": {"dbHandle": "primary", "collection": "messages"},
          "to": {"dbHandle": "missing"}}, "handle_not_found", "to.dbHandle"),
        ({"from": {"dbHandle": "missing", "collection": "messages"},
          "to": {"dbHandle": "archive"}}, "handle_not_found", "from.dbHandle"),
        ({"from": {"dbHandle": "primary", "collection": "messages"},
          "to": {"dbHandle": "archive"}, "batchSize": 0}, "invalid_params", "batchSize"),
        ({"from": {"dbHandle": "primary", "collection": "messages"},
          "to": {"dbHandle": "archive"}, "onConflict": "merge"}, "invalid_params", "onConflict"),
        ({"from": {"dbHandle": "primary", "collection": "messages"},
          "to": {"dbHandle": "primary", "collection": "MESSAGES"}}, "invalid_params", "to.collection"),
    ],
)  # fmt: skip
def test_bad_params_are_clear_errors(
    service: Service, pair: tuple[str, str], params: dict[str, Any], code: str, field: str
) -> None:
    envelope = service.dispatch("data/copy", params)
    assert (envelope["success"], envelope["code"], envelope.get("field")) == (False, code, field)
    assert "Traceback" not in envelope["error"]


def test_a_bad_filter_names_the_nested_field(service: Service, pair: tuple[str, str]) -> None:
    envelope = service.dispatch("data/copy", {"from": {"dbHandle": "primary", "collection": "m",
                                                       "filter": {"n": {"$bogus": 1}}},
                                              "to": {"dbHandle": "archive"}})  # fmt: skip
    assert envelope["code"] == "invalid_filter" and envelope["error"].startswith("from.filter")


def alice_db(service: Service, name: str, **permissions: Any) -> str:
    params: dict[str, Any] = {"adapter": "sqlite", "config": {"path": name, "mode": "create"}}
    if permissions:
        params["permissions"] = permissions
    return str(service.execute("data/open", params, context=ALICE)["dbHandle"])


def test_rights_are_checked_on_both_sides_and_audited(service: Service) -> None:
    full = alice_db(service, "a.sqlite")
    seed_as_alice = [{"op": "create", "collection": "c", "id": f"r{i}", "data": {"owner": o}}
                     for i, o in enumerate(["alice", "bob", "alice"])]  # fmt: skip
    service.execute("data/batch", {"dbHandle": full, "operations": seed_as_alice}, context=ALICE)
    no_delete = alice_db(service, "a.sqlite", delete=False, rowFilter={"owner": "alice"})
    no_write = alice_db(service, "b.sqlite", write=False)
    no_read = alice_db(service, "a.sqlite", read=False)
    target = alice_db(service, "c.sqlite")

    def run(src: str, dst: str, **extra: Any) -> dict[str, Any]:
        params = {"from": {"dbHandle": src, "collection": "c"}, "to": {"dbHandle": dst}, **extra}
        return service.dispatch("data/copy", params, context=ALICE)

    assert run(no_read, target)["code"] == "permission_denied"
    refused = run(full, no_write)
    assert refused["code"] == "permission_denied" and "write" in refused["error"]
    assert run(no_delete, target, move=True)["code"] == "permission_denied"
    done = run(no_delete, target)  # the source's row filter restricts what is copied
    assert (done["success"], done["copied"]) == (True, 2)
    rows = [e for e in service.execute("data/audit", {"limit": 100})["entries"]
            if e["command"] == "data/copy" and e["success"]]  # fmt: skip
    assert {(r["handle"], r["operation"]) for r in rows} == {(no_delete, "read"), (target, "write")}
    bob = Context(actor="bob", session_id="s-bob", is_admin=False, trusted_local=False)
    foreign = service.dispatch("data/copy", {"from": {"dbHandle": full, "collection": "c"},
                                             "to": {"dbHandle": full, "collection": "d"}},
                               context=bob)  # fmt: skip
    # Another actor's handle on a database not shared with bob is as unknown to him as a ghost.
    assert foreign["code"] == "handle_not_found"


def test_the_target_row_filter_refuses_records_outside_it(service: Service) -> None:
    src = alice_db(service, "a.sqlite")
    service.execute("data/create", {"dbHandle": src, "collection": "c", "id": "x",
                                    "data": {"owner": "bob"}}, context=ALICE)  # fmt: skip
    dst = alice_db(service, "b.sqlite", rowFilter={"owner": "alice"})
    envelope = service.dispatch("data/copy", {"from": {"dbHandle": src, "collection": "c"},
                                              "to": {"dbHandle": dst}}, context=ALICE)  # fmt: skip
    # A copy keeps ids, and through a row-filtered handle dbhandles chooses them: refused whole.
    assert envelope["code"] == "permission_denied" and envelope["field"] == "to.dbHandle"


def test_progress_and_done_events(service: Service, tmp_path: Path) -> None:
    a = open_handle(service, "sqlite", tmp_path / "a", "primary")
    b = open_handle(service, "sqlite", tmp_path / "b", "archive")
    seed(service, a, 5)
    seen: list[tuple[str, dict[str, Any]]] = []
    sub = service.events.subscribe("copy:*", lambda e: seen.append((e.name, e.payload)))
    try:
        copy(service, **{"from": {"dbHandle": a, "collection": "messages"}, "to": {"dbHandle": b},
                         "batchSize": 2})  # fmt: skip
        copy(service, **{"from": {"dbHandle": a, "collection": "messages"}, "to": {"dbHandle": b},
                         "suppressEvents": True})  # fmt: skip
    finally:
        sub.close()
    names = [n for n, _ in seen]
    assert (
        names[0] == "copy:progress" and names[-1] == "copy:done" and names.count("copy:done") == 1
    )
    done = seen[-1][1]
    assert done["dbHandle"] == b and done["copied"] == 5 and done["from"]["dbHandle"] == a


def test_copy_runs_as_a_job(service: Service, tmp_path: Path) -> None:
    a = open_handle(service, "sqlite", tmp_path / "a", "primary")
    b = open_handle(service, "json", tmp_path / "b", "archive")
    seed(service, a, 7)
    job = service.jobs.start("data/copy", {"from": {"dbHandle": a, "collection": "messages"},
                                           "to": {"dbHandle": b}, "batchSize": 2, "move": True},
                             Context())  # fmt: skip
    envelope = job.outcome.result(timeout=60)
    info = service.execute("data/job-status", {"jobId": job.id})
    assert envelope["success"] and info["status"] == "done"
    assert info["result"]["deleted"] == 7 and info["progress"]["batches"] == 4


def test_cli_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dbhandles.cli import main

    monkeypatch.setenv("DBHANDLES_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("JTAG_URL", raising=False)
    monkeypatch.delenv("JTAG_SESSION_ID", raising=False)
    for name in ("a", "b"):
        config = orjson.dumps({"path": str(tmp_path / f"{name}.sqlite"), "mode": "create"}).decode()
        assert main(["data/open", "--adapter=sqlite", f"--config={config}", f"--alias={name}"]) == 0
    assert (
        main(["data/create", "--dbHandle=a", "--collection=m", "--id=one", '--data={"x":1}']) == 0
    )
    capsys.readouterr()
    code = main(["data/copy", '--from={"dbHandle": "a", "collection": "m"}',
                 '--to={"dbHandle": "b", "collection": "kept"}', "--move", "--batchSize=10"])  # fmt: skip
    out = orjson.loads(capsys.readouterr().out)
    assert code == 0 and (out["copied"], out["deleted"]) == (1, 1), out
    code = main(["data/copy", "--from=a", "--to={}"])
    bad = orjson.loads(capsys.readouterr().out)
    assert code == 1 and bad["code"] == "invalid_params" and "Traceback" not in str(bad)


def test_http(service: Service, tmp_path: Path) -> None:
    a = open_handle(service, "sqlite", tmp_path / "a", "primary")
    b = open_handle(service, "memory", tmp_path / "b", "archive")
    seed(service, a, 3)
    with app_client(service) as client:
        response = client.post("/commands/data/copy", json={
            "from": {"dbHandle": "primary", "collection": "messages"}, "to": {"dbHandle": b}})  # fmt: skip
        assert response.status_code == 200 and response.json()["copied"] == 3
        refused = client.post("/commands/data/copy", json={"from": {"dbHandle": "primary"},
                                                           "to": {"dbHandle": b}})  # fmt: skip
        assert refused.status_code == 400 and refused.json()["field"] == "from.collection"
