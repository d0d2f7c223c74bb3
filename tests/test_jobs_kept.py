"""Issue 13: at most the last ``MAX_FINISHED_PER_ACTOR`` finished jobs per actor are kept, counted
when a job ends too. Pruned only when a job started, an actor kept one more for each job that was
running or queued then (101-102 seen against the documented 100)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbhandles import Service, Settings, jobs
from tests.test_shared_jobs import blocking_import, status, wait_for

KEEP = 3
IMPORT = {"command": "data/import", "params": {"input": "x", "output": "o"}}


def finished(service: Service) -> list[str]:
    listed = service.execute("data/job-list", {})["jobs"]
    return [job["jobId"] for job in listed if job["status"] not in ("queued", "running")]


def test_jobs_that_end_after_others_started_leave_at_most_the_last_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "MAX_FINISHED_PER_ACTOR", KEEP)
    release, started = blocking_import(monkeypatch)
    settings = Settings(home=tmp_path / "home", job_threads=2, max_jobs_per_actor=5)
    with Service(settings=settings) as service:
        for _ in range(KEEP):
            done = service.execute("data/job-start", {"command": "data/vacuum"})["jobId"]
            wait_for(lambda job=done: status(service, job)["status"] == "done", "a vacuum")
        try:
            running = [service.execute("data/job-start", IMPORT)["jobId"] for _ in range(2)]
            assert started.acquire(timeout=10)  # the other waits for the actor's turn
            queued = service.execute("data/job-start", {"command": "data/vacuum"})["jobId"]
            assert status(service, queued)["status"] == "queued"
            service.execute("data/job-cancel", {"jobId": queued})  # it ends without running
            assert len(finished(service)) == KEEP
        finally:
            release.set()
        for job in running:
            wait_for(lambda job=job: status(service, job)["status"] == "failed", "an import")
        wait_for(lambda: service.jobs.active == 0, "the runner to settle")
        kept = finished(service)
        assert len(kept) == KEEP and set(running) <= set(kept)  # the newest are kept
        assert sum(not job.active for job in service.jobs._jobs.values()) <= KEEP
