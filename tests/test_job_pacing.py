"""Jobs that run in the server process are paced (``budget.Pacer``, ``DBHANDLES_JOB_DUTY``), and a
memory or json database is capped (``DBHANDLES_MAX_MEMORY_DB_BYTES``): behaviour only, never timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dbhandles import Settings
from tests.test_fairness import make_service, wait_for, write_jsonl


def test_a_paced_job_pauses_after_its_batches_and_completes(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbhandles import budget, jobs

    pauses: list[float] = []

    class Recording(budget.Pacer):
        def pause(self) -> float:
            rest = super().pause()
            pauses.append(rest)
            return rest

    monkeypatch.setattr(jobs, "Pacer", Recording)
    source = write_jsonl(tmp_path / "rows.jsonl", 12_000, width=300)  # about 4 MiB: several chunks
    with make_service(home, job_duty=0.25) as service:
        handle = service.execute("data/open", {"adapter": "memory", "config": {}})["dbHandle"]
        params = {"input": str(source), "dbHandle": handle, "collection": "rows"}
        job = service.execute("data/job-start", {"command": "data/import", "params": params})
        wait_for(
            lambda: (
                service.execute("data/job-status", {"jobId": job["jobId"]})["status"]
                not in ("queued", "running")
            ),
            60,
            "the import job",
        )
        final = service.execute("data/job-status", {"jobId": job["jobId"]})
        assert final["status"] == "done", final
        assert final["result"]["imported"] == 12_000
        count = service.execute("data/count", {"dbHandle": handle, "collection": "rows"})
        assert count["total"] == 12_000
    assert len(pauses) >= 2 and sum(pauses) > 0


def test_a_pacer_at_full_duty_never_pauses() -> None:
    from dbhandles.budget import Pacer

    pacer = Pacer(1.0)
    sum(i * i for i in range(200_000))
    assert pacer.pause() == 0.0 and pacer.paused == 0.0


@pytest.mark.parametrize("adapter", ["memory", "json"])
def test_a_memory_database_over_its_cap_refuses_the_whole_write(
    home: Path, tmp_path: Path, adapter: str
) -> None:
    config = {} if adapter == "memory" else {"path": str(tmp_path / "db.json"), "mode": "create"}
    with make_service(home, max_memory_db_bytes=50_000) as service:
        handle = service.execute("data/open", {"adapter": adapter, "config": config})["dbHandle"]

        def batch(first: int, count: int) -> dict[str, Any]:
            ops = [{"op": "create", "collection": "c", "id": f"r{i:04d}", "data": {"t": "x" * 1000}}
                   for i in range(first, first + count)]  # fmt: skip
            return service.dispatch("data/batch", {"dbHandle": handle, "operations": ops})

        def count() -> int:
            return int(
                service.execute("data/count", {"dbHandle": handle, "collection": "c"})["total"]
            )

        assert "error" not in batch(0, 30)
        stored = (tmp_path / "db.json").read_bytes() if adapter == "json" else b""
        refused = batch(30, 30)  # 60 KB in all: past the cap
        assert refused["code"] == "quota_exceeded", refused
        assert "DBHANDLES_MAX_MEMORY_DB_BYTES" in refused["error"]
        assert count() == 30  # nothing of the refused batch
        if adapter == "json":
            assert (tmp_path / "db.json").read_bytes() == stored
        # What fits still fits; deleting is always allowed, and makes room again.
        assert "error" not in batch(30, 10)
        assert batch(40, 20)["code"] == "quota_exceeded"
        service.execute("data/delete", {"dbHandle": handle, "collection": "c", "id": "r0000"})
        assert count() == 39
        # An import stops at the batch that would pass the cap, keeping the ones before.
        source = write_jsonl(tmp_path / "more.jsonl", 100, width=1000)
        imported = service.dispatch(
            "data/import",
            {"dbHandle": handle, "input": str(source), "collection": "c", "batchSize": 5},
        )
        assert imported["code"] == "quota_exceeded", imported
        assert 39 <= count() < 39 + 10


def test_the_memory_cap_and_the_job_duty_are_settings() -> None:
    assert Settings().max_memory_db_bytes == 256 << 20
    assert Settings().job_duty == 0.5
    env = {"DBHANDLES_MAX_MEMORY_DB_BYTES": "1000", "DBHANDLES_JOB_DUTY": "0.25"}
    assert Settings.from_env(env).max_memory_db_bytes == 1000
    assert Settings.from_env(env).job_duty == 0.25
    for duty in (0, 1.5):
        with pytest.raises(ValueError, match="DBHANDLES_JOB_DUTY"):
            Settings(job_duty=duty)
