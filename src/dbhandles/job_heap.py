"""What a job run in the server keeps in its memory is frozen out of the cycle collector, batch by batch.

An import into a memory database adds millions of Python objects (each record a tree of dicts and
lists) to the server process. CPython's cycle collector walks every tracked object in a full
(generation 2) collection, holding the GIL: such a collection comes each time the long-lived objects
have grown by a quarter, so each one is longer than the last (measured: a 71 MB import into a memory
database, six full collections, the longest 0.19 s, a quarter of the import's time), and every
other client's request waits for it. A job's hooks call ``HeapKeeper.batch`` at each batch boundary:
at most every ``FREEZE_SECONDS`` it runs a young collection (generations 0 and 1: the cyclic garbage
made since the last) and then ``gc.freeze()``, which moves every object the process holds into the
permanent generation in constant time. Full collections then walk only what was made since the
last freeze (measured, same import: one full collection, 0.02 s).

The price: an object frozen is never examined by the collector again. The records hold no cycles (they
are JSON), so they are freed by their reference counts as before; an object of another request that
was alive at a freeze and later becomes part of unreachable cycles stays in memory (measured in
docs/performance.md). Only ``jtag serve`` turns this on (``JobRunner.freeze_heap``), as it freezes
what it made at start-up; an in-process ``Service`` leaves the collector alone.
"""

from __future__ import annotations

import gc
import time

__all__ = ["FREEZE_SECONDS", "HeapKeeper"]

#: A job's batch boundaries freeze the heap at most this often.
FREEZE_SECONDS = 0.25


class HeapKeeper:
    """Freezes the process's heap at a job's batch boundaries (at most every ``FREEZE_SECONDS``);
    does nothing while the collector is disabled (whoever disabled it decides).

    Attributes:
        freezes: how many times ``batch`` froze the heap.
    """

    __slots__ = ("_last", "freezes")

    def __init__(self) -> None:
        self._last = float("-inf")
        self.freezes = 0

    def batch(self) -> None:
        """At a batch boundary: a young collection, then ``gc.freeze()``, unless one ran less than
        ``FREEZE_SECONDS`` ago."""
        now = time.monotonic()
        if now - self._last < FREEZE_SECONDS or not gc.isenabled():
            return
        self._last = now
        gc.collect(1)
        gc.freeze()
        self.freezes += 1
