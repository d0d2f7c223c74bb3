"""The request threads, shared fairly: one queue per caller, served in turn, and a spare thread.

A plain thread pool runs work in arrival order: an actor that sends 200 requests at once (over many
connections, or 64 at a time on one WebSocket) puts the next actor's one request behind all of them.
``FairPool`` keeps a queue per key (the caller's token, else its address) and hands the next free
thread to the next key in turn, so a request waits for at most one request of each other caller, never
for a whole backlog. Within one key, order is kept.

Turns alone still let one caller hold *every* thread: with two threads busy on an actor's 1 MB answers,
another actor's 1 ms read waits for one of them to finish (measured: the reader's p99 went from 3 ms to
over 30 ms). So the pool has one **spare** thread beside its ``threads``: it runs work only for a key
that has nothing running, and only when no regular thread is idle. A caller with requests already
running never gets it (its throughput is what ``threads`` gives, as before); a caller arriving while
the others fill the pool starts at once instead of waiting for them.

Like ``ThreadPoolExecutor``: ``submit`` returns a ``concurrent.futures.Future``, ``shutdown(wait=True)``
runs everything already submitted and then stops the threads, and ``submit`` after shutdown raises
``RuntimeError``.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import Any, TypeVar

__all__ = ["FairPool"]

T = TypeVar("T")
_DEFAULT_KEY = "-"
_Item = tuple[Future[Any], Callable[[], Any]]


class FairPool:
    """``threads`` worker threads (plus one spare) over one FIFO queue per key, keys served
    round-robin.

    Args:
        threads: the regular threads (at least 1).
        name: the prefix of the threads' names.
        spare: whether to add the spare thread (see the module docstring).
    """

    def __init__(self, threads: int, name: str = "dbhandles", *, spare: bool = True) -> None:
        self._lock = threading.Lock()
        # Two conditions on one lock: a submission wakes the kind of thread that may take it.
        self._regular = threading.Condition(self._lock)
        self._spare = threading.Condition(self._lock)
        self._queues: dict[Hashable, deque[_Item]] = {}
        #: Keys with queued work, in the order they are served.
        self._turns: deque[Hashable] = deque()
        self._running: Counter[Hashable] = Counter()  # work running now, per key
        self._busy = 0  # regular threads running work
        self._idle = 0  # regular threads waiting for work...
        self._waking = 0  # ...and how many of them were woken for new work and are on their way
        self._shutdown = False
        self._size, self._name, self._has_spare = max(1, threads), name, spare
        self._threads: list[threading.Thread] = []  # started with the first submission

    def submit_as(self, key: Hashable, fn: Callable[[], T]) -> Future[T]:
        """Queue ``fn`` under ``key``; its future resolves with what it returns or raises.

        Raises:
            RuntimeError: the pool was shut down.
        """
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
                self._turns.append(key)
            queue.append((future, fn))
            if self._idle > self._waking:
                self._waking += 1
                self._regular.notify()
            elif self._busy >= self._size and not self._running[key]:
                self._spare.notify()  # every regular thread is busy, and this key has none
            if not self._threads:
                self._start()
        return future

    def _start(self) -> None:
        threads = [
            threading.Thread(
                target=self._work, args=(False,), name=f"{self._name}_{i}", daemon=True
            )
            for i in range(self._size)
        ]
        if self._has_spare:
            threads.append(threading.Thread(target=self._work, args=(True,),
                                            name=f"{self._name}_spare", daemon=True))  # fmt: skip
        self._threads = threads
        for thread in threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """``submit_as`` under a key shared by every caller that names none."""
        return self.submit_as(_DEFAULT_KEY, lambda: fn(*args))

    def queued(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queues.values())

    def _pick(self, spare: bool) -> Hashable | None:
        """The next key in turn this thread may serve (under the lock), taken out of the turns."""
        if not spare:
            return self._turns.popleft() if self._turns else None
        if self._busy < self._size:
            return None  # a regular thread is (or is about to be) free to take it
        for i, key in enumerate(self._turns):
            if self._running[key] == 0:
                del self._turns[i]
                return key
        return None

    def _next(self, spare: bool) -> tuple[Hashable, _Item] | None:
        waiting = self._spare if spare else self._regular
        with self._lock:
            while (key := self._pick(spare)) is None:
                if self._shutdown and (spare or not self._turns):
                    return None  # the regular threads run what is left
                if spare:
                    waiting.wait()
                    continue
                self._idle += 1
                try:
                    waiting.wait()
                finally:
                    self._idle -= 1
                    self._waking = max(0, self._waking - 1)
            queue = self._queues[key]
            item = queue.popleft()
            if queue:
                self._turns.append(key)  # its next request goes to the back of the line
            else:
                del self._queues[key]
            self._running[key] += 1
            self._busy += not spare
            if not spare and self._turns and self._busy >= self._size:
                # A caller queued while this thread was on its way (it was neither idle nor busy, so
                # its submission woke nobody) would otherwise wait for this work to end: the spare
                # may serve it (issue 13: a reader's p99 was half of another actor's 1.4 s scans).
                self._spare.notify()
            return key, item

    def _done(self, key: Hashable, spare: bool) -> None:
        with self._lock:
            self._busy -= not spare
            self._running[key] -= 1
            if self._running[key] <= 0:
                del self._running[key]

    def _work(self, spare: bool) -> None:
        while True:
            picked = self._next(spare)
            if picked is None:
                return
            key, (future, fn) = picked
            try:
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    result = fn()
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            finally:
                self._done(key, spare)
            del future, fn, picked

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new work; the threads finish everything queued, then stop."""
        with self._lock:
            self._shutdown = True
            self._regular.notify_all()
            self._spare.notify_all()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
