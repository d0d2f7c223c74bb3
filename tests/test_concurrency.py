"""Concurrency: optimistic updates lose nothing; the registry and handles are shared by many threads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dbhandles import Conflict, Service
from tests.conftest import adapter_config


@pytest.mark.parametrize("adapter", ["sqlite", "memory", "json"])
def test_optimistic_updates_from_8_threads_lose_nothing(
    service: Service, tmp_path: Path, adapter: str
) -> None:
    per_thread = 500 if adapter != "json" else 60  # json rewrites its whole file per commit
    handle = service.execute(
        "data/open", {"adapter": adapter, "config": adapter_config(adapter, tmp_path)}
    )["dbHandle"]
    service.execute(
        "data/create", {"dbHandle": handle, "collection": "counters", "id": "c", "data": {"n": 0}}
    )
    conflicts = 0
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        nonlocal conflicts
        try:
            for _ in range(per_thread):
                while True:
                    current = service.execute(
                        "data/read", {"dbHandle": handle, "collection": "counters", "id": "c"}
                    )["data"]
                    try:
                        service.execute(
                            "data/update",
                            {"dbHandle": handle, "collection": "counters", "id": "c",
                             "data": {"n": current["n"] + 1}, "expectedVersion": current["version"]},
                        )  # fmt: skip
                        break
                    except Conflict:
                        with lock:
                            conflicts += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    final = service.execute("data/read", {"dbHandle": handle, "collection": "counters", "id": "c"})[
        "data"
    ]
    assert final["n"] == 8 * per_thread
    assert final["version"] == 8 * per_thread + 1


def test_plain_concurrent_updates_to_different_fields_are_both_kept(
    service: Service, tmp_path: Path
) -> None:
    handle = service.execute(
        "data/open", {"adapter": "sqlite", "config": adapter_config("sqlite", tmp_path)}
    )["dbHandle"]
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "r", "data": {}})

    def worker(field: str) -> None:
        for i in range(200):
            service.execute(
                "data/update",
                {"dbHandle": handle, "collection": "c", "id": "r", "data": {field: i}},
            )

    threads = [threading.Thread(target=worker, args=(f"f{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record = service.execute("data/read", {"dbHandle": handle, "collection": "c", "id": "r"})[
        "data"
    ]
    assert all(record[f"f{n}"] == 199 for n in range(4))
    assert record["version"] == 801
