"""Point reads on SQLite WAL databases may run on the event loop; nothing else ever does."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.server import http
from dbhandles.server.app import ServerState
from tests.servers import app_client


def test_only_point_reads_on_wal_sqlite_run_inline(service: Service, tmp_path: Path) -> None:
    state = ServerState(service)
    try:
        wal = service.execute(
            "data/open",
            {"adapter": "sqlite", "config": {"path": str(tmp_path / "w.sqlite"), "mode": "create"}},
        )["dbHandle"]
        rollback = service.execute(
            "data/open",
            {
                "adapter": "sqlite",
                "config": {"path": str(tmp_path / "r.sqlite"), "mode": "create", "wal": False},
            },
        )["dbHandle"]
        readonly = service.execute(
            "data/open",
            {
                "adapter": "sqlite",
                "config": {"path": str(tmp_path / "w.sqlite"), "mode": "readonly"},
            },
        )["dbHandle"]
        readonly_rollback = service.execute(
            "data/open",
            {
                "adapter": "sqlite",
                "config": {"path": str(tmp_path / "r.sqlite"), "mode": "readonly"},
            },
        )["dbHandle"]
        memory = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
        jsonfile = service.execute(
            "data/open",
            {"adapter": "json", "config": {"path": str(tmp_path / "j.json"), "mode": "create"}},
        )["dbHandle"]
        service.registry.register_alias("moving", wal)
        # The journal mode is asked of the live connection: one command on each handle connects it.
        for handle in (wal, rollback, readonly, readonly_rollback, memory, jsonfile, "default"):
            service.execute("data/list", {"dbHandle": handle, "collection": "c"})
        assert state.can_run_inline("data/read", {"dbHandle": wal})
        assert state.can_run_inline("data/read", {})  # default is SQLite in WAL mode
        assert state.can_run_inline("data/read", {"dbHandle": "moving"})
        # Read-only or not, WAL readers never wait for a writer: the adapter decides, not the mode.
        assert state.can_run_inline("data/read", {"dbHandle": readonly})
        for other in (rollback, readonly_rollback, memory, jsonfile, "no-such-handle", 5):
            assert not state.can_run_inline("data/read", {"dbHandle": other}), other
        assert not state.can_run_inline("data/list", {"dbHandle": wal})
        assert not state.can_run_inline("data/create", {"dbHandle": wal})
        assert not state.can_run_inline("data/read", None)
        # An alias re-pointed at a database that may wait is re-checked, not remembered.
        service.registry.register_alias("moving", memory)
        assert not state.can_run_inline("data/read", {"dbHandle": "moving"})
        # While a worker thread runs a command, nothing runs on the loop (so no lock of ours is held).
        state.in_flight = 1
        assert not state.can_run_inline("data/read", {"dbHandle": wal})
    finally:
        state.executor.shutdown()


def test_a_read_only_wal_read_does_not_wait_for_a_writer(service: Service, tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite"
    writer = service.execute(
        "data/open", {"adapter": "sqlite", "config": {"path": str(path), "mode": "create"}}
    )["dbHandle"]
    service.execute(
        "data/create", {"dbHandle": writer, "collection": "c", "id": "a", "data": {"n": 1}}
    )
    reader = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(path), "mode": "readonly", "busyTimeout": 0}},
    )["dbHandle"]
    state = ServerState(service)
    # Another process's writer holds the write lock with an uncommitted change.
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        other.execute("UPDATE c SET data = '{\"n\": 2}' WHERE id = 'a'")
        service.execute("data/list", {"dbHandle": reader, "collection": "c"})
        assert state.can_run_inline("data/read", {"dbHandle": reader})
        # With no busy timeout, a read that had to wait would fail with a lock error instead.
        read = service.execute("data/read", {"dbHandle": reader, "collection": "c", "id": "a"})
        assert read["data"]["n"] == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
        state.executor.shutdown()


def test_bodies_are_parsed_once_and_only_point_reads_on_the_loop(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A point read that may run inline is parsed on the loop (to find its handle) and that parse
    # is the one its command gets; every other command's body is parsed in a worker thread, so a
    # large body never holds the event loop.
    handle = service.execute(
        "data/open",
        {"adapter": "sqlite", "config": {"path": str(tmp_path / "w.sqlite"), "mode": "create"}},
    )["dbHandle"]
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "a", "data": {}})
    parsed: list[str] = []  # the thread of each parse of a request body
    real = http.read_json

    def recording(body: bytes) -> Any:
        parsed.append(threading.current_thread().name)
        return real(body)

    monkeypatch.setattr(http, "read_json", recording)
    with app_client(service) as client:
        read = {"dbHandle": handle, "collection": "c", "id": "a"}
        assert client.post("/commands/data/read", json=read).json()["found"] is True
        assert len(parsed) == 1 and not parsed[0].startswith("dbhandles"), parsed  # on the loop
        parsed.clear()
        listing = {"dbHandle": handle, "collection": "c"}
        assert client.post("/commands/data/list", json=listing).json()["success"] is True
        assert len(parsed) == 1 and parsed[0].startswith("dbhandles"), parsed  # a worker thread
        # With a command running in a worker thread, the read goes to a thread too: still one parse.
        parsed.clear()
        client.app.state.dbhandles.in_flight += 1
        try:
            assert client.post("/commands/data/read", json=read).json()["found"] is True
        finally:
            client.app.state.dbhandles.in_flight -= 1
        assert len(parsed) == 1, parsed
        # A body that is no params object is refused as before (parsed again in the worker
        # thread, which says why).
        bad = client.post("/commands/data/read", content=b"[1]")
        assert bad.status_code == 400 and bad.json()["field"] == "body"
