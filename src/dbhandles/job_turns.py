"""Turns of the job threads: one actor never holds all of them (issue 12, round 20).

A process runs ``DBHANDLES_JOB_THREADS`` job threads (at least two); an actor's jobs take at most all
but one of them at once, queued or running on the executor. Its other jobs wait here, in order, until
one of its own ends; so a job of another actor always finds a thread within the jobs ahead of it,
even while the first actor's jobs are stuck (an open that never returns, a long import).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

__all__ = ["Turns"]


class Turns:
    """Hands an actor's jobs to ``submit`` while it holds fewer than ``share`` of the threads.

    Args:
        share: threads one actor's jobs may hold at once (the thread count less one, at least 1).
        submit: puts a job on the executor (a callable with no arguments that runs it).
    """

    def __init__(self, share: int, submit: Callable[[Callable[[], None]], None]) -> None:
        self.share = max(1, share)
        self._submit = submit
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._waiting: dict[str, deque[Callable[[], None]]] = {}

    def add(self, actor: str, run: Callable[[], None]) -> None:
        """Run ``run`` (a job of ``actor``) on a thread now, or once one of ``actor``'s jobs ends."""
        with self._lock:
            if self._held.get(actor, 0) >= self.share:
                self._waiting.setdefault(actor, deque()).append(run)
                return
            self._held[actor] = self._held.get(actor, 0) + 1
        self._submit(lambda: self._turn(actor, run))

    def waiting(self, actor: str) -> int:
        """How many of ``actor``'s jobs wait here for a thread."""
        with self._lock:
            return len(self._waiting.get(actor, ()))

    def _turn(self, actor: str, run: Callable[[], None]) -> None:
        try:
            run()
        finally:
            with self._lock:
                queue = self._waiting.get(actor)
                following = queue.popleft() if queue else None
                if queue is not None and not queue:
                    del self._waiting[actor]
                if following is None:
                    self._held[actor] -= 1
                    if not self._held[actor]:
                        del self._held[actor]
            if following is not None:
                self._submit(lambda: self._turn(actor, following))
