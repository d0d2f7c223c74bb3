"""Turns of the job threads: each actor holds at most its share of them (issues 12 and 13).

A process runs ``threads`` job threads; one actor's jobs (whatever token started them) run on at
most ``share`` of them at once, and the runner keeps at least ``2 * share + 1`` threads, so two
actors' stuck jobs (an open that never returns, a long import) always leave a thread for a third.
Jobs that cannot start wait here, one queue per actor. When a thread comes free it goes to the
waiting actor that holds the fewest threads (the earliest waiting job breaks a tie): a waiting
actor's job starts before a busy actor's next one. ``submit`` is only called while a thread is
free, so the executor never queues a job behind another actor's.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections import deque
from collections.abc import Callable

__all__ = ["Turns"]


class Turns:
    """Hands jobs to ``submit`` while a thread is free and their actor holds fewer than ``share``.

    Args:
        share: threads one actor's jobs may hold at once (at least 1).
        submit: puts a job on the executor (a callable with no arguments that runs it).
        threads: the executor's thread count (at least ``share``).
    """

    def __init__(
        self, share: int, submit: Callable[[Callable[[], None]], None], threads: int | None = None
    ) -> None:
        self.share = max(1, share)
        self.threads = max(self.share, threads if threads is not None else 2 * self.share + 1)
        self._submit = submit
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._running = 0
        self._order = itertools.count()
        self._waiting: dict[str, deque[tuple[int, Callable[[], None]]]] = {}

    def add(self, actor: str, run: Callable[[], None]) -> None:
        """Run ``run`` (a job of ``actor``) on a thread now, or once it is ``actor``'s turn."""
        with self._lock:
            self._waiting.setdefault(actor, deque()).append((next(self._order), run))
            ready = self._next()
        self._start(ready)

    def waiting(self, actor: str) -> int:
        """How many of ``actor``'s jobs wait here for a thread."""
        with self._lock:
            return len(self._waiting.get(actor, ()))

    def held(self, actor: str) -> int:
        """How many threads ``actor``'s jobs hold (submitted and not ended)."""
        with self._lock:
            return self._held.get(actor, 0)

    def _next(self) -> list[tuple[str, Callable[[], None]]]:
        """Take the jobs that may start now (called with the lock held)."""
        ready: list[tuple[str, Callable[[], None]]] = []
        while self._running < self.threads:
            eligible = [
                (self._held.get(actor, 0), queue[0][0], actor)
                for actor, queue in self._waiting.items()
                if self._held.get(actor, 0) < self.share
            ]
            if not eligible:
                break
            actor = min(eligible)[2]
            queue = self._waiting[actor]
            run = queue.popleft()[1]
            if not queue:
                del self._waiting[actor]
            self._held[actor] = self._held.get(actor, 0) + 1
            self._running += 1
            ready.append((actor, run))
        return ready

    def _start(self, ready: list[tuple[str, Callable[[], None]]]) -> None:
        for actor, run in ready:
            self._submit(functools.partial(self._turn, actor, run))

    def _turn(self, actor: str, run: Callable[[], None]) -> None:
        try:
            run()
        finally:
            with self._lock:
                self._running -= 1
                self._held[actor] -= 1
                if not self._held[actor]:
                    del self._held[actor]
                ready = self._next()
            self._start(ready)
