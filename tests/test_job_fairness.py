"""The job threads are shared fairly between actors: two actors never hold them all, and a waiting
actor's job starts before a busy actor's next one (issues 12 and 13)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Context, Service
from dbhandles import jobs as jobs_module
from dbhandles.job_turns import Turns
from dbhandles.settings import Settings
from tests.security_helpers import ALICE, BOB, two_tenants

HANG_GUARD = 60.0
CAROL = Context(actor="carol", session_id="s-carol", is_admin=False, trusted_local=False)
#: Alice again, through a second token: still alice's share.
ALICE_TOO = Context(
    actor="alice", session_id="s-alice-2", is_admin=False, trusted_local=False, token_id="second"
)


class Held:
    """A ``submit`` that starts nothing: each submitted job waits in ``started`` until the test ends
    it (``end``), so which jobs hold threads is decided by the test alone, never by timing."""

    def __init__(self) -> None:
        self.started: list[Callable[[], None]] = []

    def submit(self, run: Callable[[], None]) -> None:
        self.started.append(run)

    def end(self, index: int) -> None:
        self.started.pop(index)()


def test_a_free_thread_goes_to_the_waiting_actor_holding_fewest() -> None:
    held = Held()
    turns = Turns(2, held.submit, threads=5)
    started: list[str] = []

    def add(actor: str, n: int) -> None:
        for i in range(n):
            name = f"{actor}{i}"
            turns.add(actor, lambda name=name: started.append(name))  # type: ignore[misc]

    add("alice", 3)
    add("bob", 3)
    add("carol", 1)
    assert len(held.started) == 5  # alice 2, bob 2, carol 1: every thread
    assert (turns.held("alice"), turns.held("bob"), turns.held("carol")) == (2, 2, 1)
    assert (turns.waiting("alice"), turns.waiting("bob")) == (1, 1)
    add("dave", 1)
    assert turns.waiting("dave") == 1 and len(held.started) == 5
    held.end(0)  # alice's first job ends: dave (holding none) goes before alice's third
    assert turns.held("dave") == 1 and turns.waiting("alice") == 1
    held.end(0)  # alice's second ends: alice (none held now) before bob (two held, at his share)
    assert turns.held("alice") == 1 and turns.waiting("alice") == 0 and turns.waiting("bob") == 1
    while held.started:
        held.end(0)
    assert sorted(started) == [
        "alice0",
        "alice1",
        "alice2",
        "bob0",
        "bob1",
        "bob2",
        "carol0",
        "dave0",
    ]
    assert turns.held("bob") == 0 and turns.waiting("bob") == 0


def test_an_actor_never_holds_more_than_its_share_even_with_threads_free() -> None:
    held = Held()
    turns = Turns(1, held.submit, threads=3)
    for _ in range(3):
        turns.add("alice", lambda: None)
    assert len(held.started) == 1 and turns.waiting("alice") == 2
    turns.add("bob", lambda: None)
    turns.add("carol", lambda: None)
    assert len(held.started) == 3


def test_the_runner_keeps_a_thread_beyond_two_actors_shares(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", job_threads=1, job_threads_per_actor=2)
    with Service(settings=settings) as service:
        assert service.jobs.threads == 5


@pytest.mark.parametrize("threads", [1, 3])
def test_two_actors_stuck_jobs_leave_a_thread_for_a_third(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    """Alice (with two tokens) and bob each start jobs that a hook holds; carol's job still runs."""
    release = threading.Event()
    entered = {"alice": threading.Event(), "bob": threading.Event()}
    real_run = jobs_module.run_job

    def held_for_alice_and_bob(service: Service, job: Any, *args: Any) -> Any:
        if job.actor in entered:
            entered[job.actor].set()
            release.wait(HANG_GUARD)  # a job that does not end (an open that never returns)
        return real_run(service, job, *args)

    monkeypatch.setattr(jobs_module, "run_job", held_for_alice_and_bob)
    with two_tenants(tmp_path, job_threads=threads, max_jobs_per_actor=2) as service:
        service.tokens.create("carol")
        try:

            def vacuum_job(context: Context) -> str:
                opened = service.execute("data/open", {"adapter": "memory"}, context=context)
                params = {"dbHandle": opened["dbHandle"]}
                started = service.execute(
                    "data/job-start", {"command": "data/vacuum", "params": params}, context=context
                )
                return str(started["jobId"])

            alices = [vacuum_job(ALICE), vacuum_job(ALICE_TOO)]
            bobs = [vacuum_job(BOB), vacuum_job(BOB)]
            assert entered["alice"].wait(HANG_GUARD) and entered["bob"].wait(HANG_GUARD)
            carol = vacuum_job(CAROL)
            service.jobs._jobs[carol].outcome.result(HANG_GUARD)  # type: ignore[attr-defined]

            def status(job_id: str, context: Context) -> str:
                got = service.execute("data/job-status", {"jobId": job_id}, context=context)
                return str(got["status"])

            got = service.execute("data/job-status", {"jobId": carol}, context=CAROL)
            # It ran (and ended: a memory database has nothing to vacuum) while the others hold.
            assert (got["status"], got["error"]["code"]) == ("failed", "not_supported")
            # Each holds one thread (its share), whichever token started the job; the rest wait.
            assert [status(j, ALICE) for j in alices] == ["running", "queued"]
            assert [status(j, BOB) for j in bobs] == ["running", "queued"]
        finally:
            release.set()
