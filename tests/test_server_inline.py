"""Point reads on SQLite WAL databases may run on the event loop; nothing else ever does."""

from __future__ import annotations

from pathlib import Path

from dbhandles import Service
from dbhandles.server.app import ServerState


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
        memory = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
        jsonfile = service.execute(
            "data/open",
            {"adapter": "json", "config": {"path": str(tmp_path / "j.json"), "mode": "create"}},
        )["dbHandle"]
        service.registry.register_alias("moving", wal)
        # The journal mode is asked of the live connection: one command on each handle connects it.
        for handle in (wal, rollback, readonly, memory, jsonfile, "default"):
            service.execute("data/list", {"dbHandle": handle, "collection": "c"})
        assert state.can_run_inline("data/read", {"dbHandle": wal})
        assert state.can_run_inline("data/read", {})  # default is SQLite in WAL mode
        assert state.can_run_inline("data/read", {"dbHandle": "moving"})
        for other in (rollback, readonly, memory, jsonfile, "no-such-handle", 5):
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
