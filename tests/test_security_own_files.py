"""Issue 12: a database's own files, of any adapter, are never opened, created or replaced through
another door. Every door that opens or creates a file (``data/open`` of each file adapter in each
mode, ``data/import``'s output, input and rejects, ``data/export``'s output, ``jtag import-jsonl``
through a real server) is tried, as a non-admin actor, on every kind of own file: the JSON
adapter's lock file ``X.lock`` and a commit's temporary file ``.X.<hex>.tmp``, SQLite's ``-wal``,
``-shm`` and ``-journal``. Each is refused ``path_not_allowed`` naming the file, nothing is made,
and both databases still work after (docs/security.md, "A database's own files")."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from tests.security_helpers import ALICE, refused, space, two_tenants

#: Alice's JSON database and SQLite database (in WAL: its -wal and -shm exist while it is open).
JSON_DB, SQLITE_DB = "notes.json", "work.sqlite"

#: Every own file of those two databases, by the adapter that keeps it.
OWN_FILES = {
    "json lock": f"{JSON_DB}.lock",
    "json temporary": f".{JSON_DB}.0123abcd.tmp",
    "sqlite wal": f"{SQLITE_DB}-wal",
    "sqlite shm": f"{SQLITE_DB}-shm",
    "sqlite journal": f"{SQLITE_DB}-journal",
}


def _open(adapter: str, mode: str) -> Callable[[str], tuple[str, dict[str, Any]]]:
    def door(name: str) -> tuple[str, dict[str, Any]]:
        return "data/open", {"adapter": adapter, "config": {"path": name, "mode": mode}}

    return door


#: Every door of a command that opens or creates a file named by the caller.
DOORS: dict[str, Callable[[str], tuple[str, dict[str, Any]]]] = {
    **{
        f"open {adapter} {mode}": _open(adapter, mode)
        for adapter in ("sqlite", "json")
        for mode in ("create", "readwrite", "readonly")
    },
    "import output": lambda name: (
        "data/import",
        {"input": "in.jsonl", "output": name, "collection": "c"},
    ),
    "import input": lambda name: (
        "data/import",
        {"input": name, "dbHandle": "mine", "collection": "c"},
    ),
    "import rejects": lambda name: (
        "data/import",
        {
            "input": "in.jsonl",
            "dbHandle": "mine",
            "collection": "c",
            "onError": "skip",
            "rejects": name,
        },
    ),
    "export output": lambda name: (
        "data/export",
        {"dbHandle": "mine", "collection": "c", "output": name},
    ),
    "export input": lambda name: (
        "data/export",
        {"input": name, "collection": "c", "output": "out.jsonl"},
    ),
}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    with two_tenants(tmp_path) as svc:
        yield svc


def _databases(service: Service) -> dict[str, str]:
    """Alice's two databases, each holding a record, and her handles to them (``mine``: SQLite)."""
    handles = {}
    for adapter, name in (("json", JSON_DB), ("sqlite", SQLITE_DB)):
        config: dict[str, Any] = {"path": name, "mode": "create"}
        if adapter == "sqlite":
            config["wal"] = True
        opened = service.execute(
            "data/open", {"adapter": adapter, "config": config,
                          "alias": "mine" if adapter == "sqlite" else None}, context=ALICE,
        )  # fmt: skip
        handles[adapter] = str(opened["dbHandle"])
        service.execute("data/create", {"dbHandle": handles[adapter], "collection": "c",
                                        "id": "1", "data": {"n": 1}}, context=ALICE)  # fmt: skip
    (space(service, "alice") / "in.jsonl").write_text('{"id": "2", "n": 2}\n')
    return handles


def _still_work(service: Service, handles: dict[str, str]) -> None:
    """Both databases take a write and list it, from this service and from a fresh open."""
    for adapter, handle in handles.items():
        service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "9",
                                        "data": {"n": 9}}, context=ALICE)  # fmt: skip
        items = service.execute("data/list", {"dbHandle": handle, "collection": "c"},
                                context=ALICE)["items"]  # fmt: skip
        assert {item["id"] for item in items} >= {"1", "9"}, adapter


@pytest.mark.parametrize("own", sorted(OWN_FILES))
@pytest.mark.parametrize("door", sorted(DOORS))
def test_a_databases_own_file_is_refused_through_every_door(
    service: Service, door: str, own: str
) -> None:
    handles = _databases(service)
    folder = space(service, "alice")
    name = OWN_FILES[own]
    before = {entry: (folder / entry).read_bytes() for entry in os.listdir(folder)
              if entry.endswith(".lock")}  # fmt: skip
    existed = set(os.listdir(folder))
    command, params = DOORS[door](name)
    error = refused(service, command, params)
    assert error.code == "path_not_allowed", (door, own, error.message)
    assert name in error.message and "own files" in error.message, error.message
    # Nothing made through the door (an SQLite file, its side files), nothing changed.
    made = set(os.listdir(folder)) - existed - {"out.jsonl"}
    assert not made, made
    for entry, content in before.items():
        assert (folder / entry).read_bytes() == content
    _still_work(service, handles)


@pytest.mark.parametrize("adapter", ["sqlite", "json"])
def test_a_json_database_is_not_opened_where_its_lock_file_is_a_database(
    service: Service, adapter: str
) -> None:
    """The other order: a database made first at ``X.lock`` (by another tool, before ``X``
    existed) stops ``X`` from being opened as a JSON database, which would lock and break it."""
    folder = space(service, "alice")
    if adapter == "sqlite":
        sqlite3.connect(folder / "later.json.lock").close()
        conn = sqlite3.connect(folder / "later.json.lock")
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
    else:
        service.execute("data/open", {"adapter": "json", "config": {
            "path": "later.json.lock", "mode": "create"}}, context=ALICE)  # fmt: skip
    error = refused(service, "data/open",
                    {"adapter": "json", "config": {"path": "later.json", "mode": "create"}})  # fmt: skip
    assert error.code == "path_not_allowed", error.message
    assert "later.json.lock" in error.message and "database already" in error.message
    assert not (folder / "later.json").exists()


# -- the doors of a real server: HTTP, and jtag import-jsonl with a token ----------------------------


@pytest.mark.needs_server
def test_a_json_databases_lock_file_is_refused_through_a_real_server(tmp_path: Path) -> None:
    from tests.servers import envelope_of, jtag_env, run_jtag
    from tests.test_security_tenants import serve_tenants

    for t in serve_tenants(tmp_path):
        opened = t.ok(t.alice, "data/open", adapter="json",
                      config={"path": JSON_DB, "mode": "create"})  # fmt: skip
        t.ok(t.alice, "data/create", dbHandle=opened["dbHandle"], collection="c", id="1",
             data={"n": 1})  # fmt: skip
        (t.space("alice") / "in.jsonl").write_text('{"id": "2"}\n')
        lock = OWN_FILES["json lock"]
        for mode in ("create", "readwrite"):
            words = t.refused(t.alice, "data/open", "path_not_allowed", adapter="sqlite",
                              config={"path": lock, "mode": mode})  # fmt: skip
            assert "own files" in words
        t.refused(t.alice, "data/import", "path_not_allowed", input="in.jsonl", output=lock,
                  collection="c")  # fmt: skip
        env = jtag_env(t.home, JTAG_URL=t.server.url, JTAG_TOKEN=t.alice)
        ran = run_jtag("import-jsonl", "--input=in.jsonl", f"--output={lock}", env=env)
        envelope = envelope_of(ran)
        assert envelope["code"] == "path_not_allowed" and "own files" in envelope["error"]
        assert not list(t.space("alice").glob("*-wal"))
        t.ok(t.alice, "data/create", dbHandle=opened["dbHandle"], collection="c", id="9",
             data={"n": 9})  # fmt: skip
        listed = t.ok(t.alice, "data/list", dbHandle=opened["dbHandle"], collection="c")
        assert {item["id"] for item in listed["items"]} == {"1", "9"}
