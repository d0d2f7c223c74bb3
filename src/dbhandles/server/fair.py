"""The request threads, shared fairly: one queue per caller, served in turn.

A plain thread pool runs work in arrival order: an actor that sends 200 requests at once (over many
connections, or 64 at a time on one WebSocket) puts the next actor's one request behind all of them.
``FairPool`` keeps a queue per key (the caller's token, else its address) and hands the next free
thread to the next key in turn, so a request waits for at most one request of each other caller, never
for a whole backlog. Within one key, order is kept.

Like ``ThreadPoolExecutor``: ``submit`` returns a ``concurrent.futures.Future``, ``shutdown(wait=True)``
runs everything already submitted and then stops the threads, and ``submit`` after shutdown raises
``RuntimeError``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["FairPool"]

T = TypeVar("T")
_DEFAULT_KEY = "-"


class FairPool:
    """``threads`` worker threads over one FIFO queue per key, keys served round-robin."""

    def __init__(self, threads: int, name: str = "dbhandles") -> None:
        self._cond = threading.Condition()
        self._queues: dict[Hashable, deque[tuple[Future[Any], Callable[[], Any]]]] = {}
        self._turns: deque[Hashable] = (
            deque()
        )  # keys with queued work, in the order they are served
        self._shutdown = False
        self._size, self._name = max(1, threads), name
        self._threads: list[threading.Thread] = []  # started with the first submission

    def submit_as(self, key: Hashable, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` under ``key``; its future resolves with what it returns or raises.

        Raises:
            RuntimeError: the pool was shut down.
        """
        future: Future[T] = Future()
        with self._cond:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
                self._turns.append(key)
            queue.append((future, fn))
            self._cond.notify()
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._work, name=f"{self._name}_{i}", daemon=True)
                    for i in range(self._size)
                ]
                for thread in self._threads:
                    thread.start()
        return future

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """``submit_as`` under a key shared by every caller that names none."""
        return self.submit_as(_DEFAULT_KEY, lambda: fn(*args))

    def queued(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def _next(self) -> tuple[Future[Any], Callable[[], Any]] | None:
        with self._cond:
            while not self._turns:
                if self._shutdown:
                    return None
                self._cond.wait()
            key = self._turns.popleft()
            queue = self._queues[key]
            item = queue.popleft()
            if queue:
                self._turns.append(key)  # its next request goes to the back of the line
            else:
                del self._queues[key]
            return item

    def _work(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            future, fn = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)
            del future, fn, item

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new work; the threads finish everything queued, then stop."""
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
