"""Ctrl-C during an import: stop at the next chunk boundary, so the summary says exactly what was kept.

A ``KeyboardInterrupt`` raised at an arbitrary point can land between a batch's ``COMMIT`` and the
update of the counts, and the summary would then claim one batch less than the database holds. While
an import runs in the main thread, the first Ctrl-C only asks it to stop; the progress hook, called
after every chunk (when every committed batch is counted), raises ``KeyboardInterrupt`` there. A
second Ctrl-C stops at once (``hard``): the counts may then miss the batch being committed.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from dbhandles.importer.progress import Progress
from dbhandles.importer.stats import ImportStats

__all__ = ["StopOnInterrupt", "deferred_interrupt"]


class StopOnInterrupt:
    """A ``Progress`` that raises ``KeyboardInterrupt`` after a chunk once a stop was asked for."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self.requested = False
        self.hard = False

    def update(self, stats: ImportStats) -> None:
        self.inner.update(stats)
        if self.requested:
            raise KeyboardInterrupt

    def close(self, stats: ImportStats) -> None:
        self.inner.close(stats)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            self.hard = True
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def deferred_interrupt(progress: Progress) -> Iterator[StopOnInterrupt]:
    """Wrap ``progress`` and route SIGINT to it while the block runs (main thread only; elsewhere
    signals cannot be handled and the wrapper just passes progress through)."""
    stopper = StopOnInterrupt(progress)
    if threading.current_thread() is not threading.main_thread():
        yield stopper
        return
    previous = signal.signal(signal.SIGINT, stopper.on_signal)
    try:
        yield stopper
    finally:
        signal.signal(signal.SIGINT, previous)
