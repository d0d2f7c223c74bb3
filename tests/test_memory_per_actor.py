"""A non-admin actor's memory and json databases together hold at most
``DBHANDLES_MEMORY_PER_ACTOR_BYTES`` of records (issue 13): each is capped on its own too, but an
actor may open many. Behaviour only, never timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service, Settings
from dbhandles.context import Context
from dbhandles.security import paths
from tests.test_fairness import make_service, write_jsonl

ALICE = Context(actor="alice", session_id="s-alice", is_admin=False, trusted_local=False)
BOB = Context(actor="bob", session_id="s-bob", is_admin=False, trusted_local=False)


def _open(service: Service, adapter: str, name: str, context: Context) -> str:
    # A json database by a relative name: in the actor's data space.
    config = {} if adapter == "memory" else {"path": f"{name}.json", "mode": "create"}
    opened = service.execute("data/open", {"adapter": adapter, "config": config}, context=context)
    return str(opened["dbHandle"])


def _fill(
    service: Service, handle: str, first: int, count: int, context: Context
) -> dict[str, Any]:
    ops = [{"op": "create", "collection": "c", "id": f"r{i:04d}", "data": {"t": "x" * 1000}}
           for i in range(first, first + count)]  # fmt: skip
    return service.dispatch("data/batch", {"dbHandle": handle, "operations": ops}, context=context)


def _count(service: Service, handle: str, context: Context) -> int:
    found = service.execute("data/count", {"dbHandle": handle, "collection": "c"}, context=context)
    return int(found["total"])


@pytest.mark.parametrize("adapter", ["memory", "json"])
def test_an_actors_databases_together_are_bounded(home: Path, adapter: str) -> None:
    with make_service(home, max_memory_db_bytes=60_000, memory_per_actor_bytes=100_000) as service:
        for actor in ("alice", "bob"):
            paths.actor_space(service.settings, actor, create=True)
        one, two, three = (_open(service, adapter, n, ALICE) for n in ("a", "b", "c"))
        assert "error" not in _fill(service, one, 0, 45, ALICE)  # each under its own cap
        assert "error" not in _fill(service, two, 0, 45, ALICE)
        refused = _fill(service, three, 0, 20, ALICE)  # ~110 KB in all: past alice's total
        assert refused["code"] == "quota_exceeded", refused
        assert "DBHANDLES_MEMORY_PER_ACTOR_BYTES" in refused["error"]
        assert _count(service, three, ALICE) == 0  # nothing of the refused batch
        # Another actor has a total of its own.
        other = _open(service, adapter, "bob", BOB)
        assert "error" not in _fill(service, other, 0, 45, BOB)
        # Deleting makes room; so does closing a database.
        service.execute("data/truncate", {"dbHandle": one, "collection": "c"}, context=ALICE)
        assert "error" not in _fill(service, three, 0, 20, ALICE)
        assert _fill(service, one, 0, 40, ALICE)["code"] == "quota_exceeded"
        service.execute("data/close", {"dbHandle": two}, context=ALICE)
        assert "error" not in _fill(service, one, 0, 40, ALICE)


def test_an_import_stops_at_the_actors_total(home: Path) -> None:
    with make_service(home, max_memory_db_bytes=60_000, memory_per_actor_bytes=80_000) as service:
        full, target = (_open(service, "memory", n, ALICE) for n in ("a", "b"))
        assert "error" not in _fill(service, full, 0, 50, ALICE)
        space = paths.actor_space(service.settings, "alice", create=True)
        source = write_jsonl(space / "more.jsonl", 100, width=1000)
        imported = service.dispatch(
            "data/import",
            {"dbHandle": target, "input": str(source), "collection": "c", "batchSize": 5},
            context=ALICE,
        )
        assert imported["code"] == "quota_exceeded", imported
        assert _count(service, target, ALICE) < 35


def test_an_administrator_is_bounded_per_database_only(home: Path) -> None:
    with make_service(home, max_memory_db_bytes=60_000, memory_per_actor_bytes=50_000) as service:
        handles = [_open(service, "memory", n, Context()) for n in ("a", "b", "c")]
        for handle in handles:
            assert "error" not in _fill(service, handle, 0, 45, Context())


def test_the_per_actor_total_is_a_setting() -> None:
    assert Settings().memory_per_actor_bytes == 512 << 20
    env = {"DBHANDLES_MEMORY_PER_ACTOR_BYTES": "1000"}
    assert Settings.from_env(env).memory_per_actor_bytes == 1000
