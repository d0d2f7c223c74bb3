"""FairPool, the request threads: callers served in turn, and a spare thread for a caller that arrives
while another one fills every regular thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import pytest

from dbhandles.server.fair import FairPool

WAIT = 10.0  # a bound on waiting for a condition, never a measured duration


@pytest.fixture
def pool() -> Iterator[FairPool]:
    pool = FairPool(2, "test-fair")
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


def blocker(started: list[str], name: str, release: threading.Event) -> Callable[[], str]:
    def run() -> str:
        started.append(name)
        assert release.wait(WAIT), "the test never released this work"
        return name

    return run


def wait_until(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met")


def test_a_caller_arriving_while_another_fills_every_thread_starts_at_once(pool: FairPool) -> None:
    release = threading.Event()
    started: list[str] = []
    noisy = [pool.submit_as("noisy", blocker(started, f"n{i}", release)) for i in range(5)]
    wait_until(lambda: len(started) == 2)  # both regular threads hold the noisy caller's work
    reader = pool.submit_as("reader", lambda: "read")
    assert reader.result(timeout=WAIT) == "read"  # on the spare thread, before any noisy one ends
    assert not any(f.done() for f in noisy)
    release.set()
    assert [f.result(timeout=WAIT) for f in noisy] == [f"n{i}" for i in range(5)]


def test_the_spare_thread_never_adds_to_a_caller_with_work_running(pool: FairPool) -> None:
    release = threading.Event()
    started: list[str] = []
    futures = [pool.submit_as("one", blocker(started, f"w{i}", release)) for i in range(3)]
    wait_until(lambda: len(started) == 2)
    other = pool.submit_as("two", lambda: "other")  # the spare runs another caller meanwhile
    assert other.result(timeout=WAIT) == "other"
    assert started == ["w0", "w1"]  # the third waits for a regular thread, not for the spare
    release.set()
    assert [f.result(timeout=WAIT) for f in futures] == ["w0", "w1", "w2"]


def test_callers_take_turns_and_each_keeps_its_order() -> None:
    pool = FairPool(1, "test-fair", spare=False)
    gate = threading.Event()
    order: list[str] = []

    def hold() -> None:
        assert gate.wait(WAIT)

    futures: list[Future[None]] = [pool.submit_as("gate", hold)]
    for key, count in (("a", 3), ("b", 2), ("c", 1)):
        for i in range(count):
            futures.append(pool.submit_as(key, lambda name=f"{key}{i}": order.append(name)))
    gate.set()
    pool.shutdown(wait=True)  # runs everything already submitted
    assert all(f.done() for f in futures)
    assert order == ["a0", "b0", "c0", "a1", "b1", "a2"]
    with pytest.raises(RuntimeError):
        pool.submit_as("a", lambda: None)


def test_a_caller_queued_while_a_thread_wakes_for_another_gets_the_spare() -> None:
    """Issue 13: with the regular thread idle, a noisy caller's request wakes it; a reader's request
    submitted before that thread has taken the noisy one found no thread idle and no thread busy, so
    nobody was told; the thread then took the noisy request (a 1.4 s scan) and the reader waited for
    it, its spare thread asleep. A regular thread that takes work while others are queued and every
    regular thread is busy now wakes the spare."""
    pool = FairPool(1, "test-fair")
    try:
        pool.submit_as("warm", lambda: None).result(timeout=WAIT)
        for _ in range(50):  # the window is a thread's wake-up: most rounds open it
            release = threading.Event()
            noisy = pool.submit_as("noisy", blocker([], "noisy", release))
            reader = pool.submit_as("reader", lambda: "read")
            assert reader.result(timeout=WAIT) == "read"  # before the noisy work ends
            assert not noisy.done()
            release.set()
            assert noisy.result(timeout=WAIT) == "noisy"
    finally:
        pool.shutdown(wait=True)
