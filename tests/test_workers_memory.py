"""``jtag serve --workers=N``: a memory database lives in the one worker that opens it, so a server of
several workers refuses to open one (``not_supported`` naming the cause), instead of a handle that
half of the requests cannot find; file databases open as before."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from dbhandles import Service
from dbhandles.errors import NotSupported
from tests.servers import ServerProcess


def test_a_server_of_several_workers_refuses_memory_databases(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "home", None, "--workers=2") as server:
        headers = {"Authorization": f"Bearer {server.token}"}
        # New connections are dealt in turn: both workers answer the same.
        for _ in range(2):
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
                refused = http.post("/commands/data/open", json={"adapter": "memory",
                                    "config": {}, "alias": "memx"}).json()  # fmt: skip
                assert refused["success"] is False, refused
                assert refused["code"] == "not_supported" and refused["field"] == "adapter"
                assert "2 worker processes" in refused["error"]
                assert "Open a file instead" in refused["error"]
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            opened = http.post("/commands/data/open", json={"adapter": "sqlite", "config": {
                "path": str(tmp_path / "x.sqlite"), "mode": "create"}, "alias": "filex"}).json()  # fmt: skip
            assert opened["success"] is True, opened
            handles = http.post("/commands/data/list-handles", json={}).json()["handles"]
            assert "memx" not in str(handles)
        assert server.stop() == 0, server.output


def test_one_process_still_opens_memory_databases(tmp_path: Path) -> None:
    with Service(home=tmp_path / "home") as service:
        assert service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
        service.registry.processes = 2
        with pytest.raises(NotSupported, match="2 worker processes"):
            service.execute("data/open", {"adapter": "memory", "config": {}})
        json_db = service.execute(
            "data/open", {"adapter": "json", "config": {"path": str(tmp_path / "j.json"),
                                                       "mode": "create"}})  # fmt: skip
        assert json_db["dbHandle"]  # a file: every worker opens the same one
