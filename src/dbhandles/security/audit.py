"""The audit log: one append-only row per data command, refused ones included.

Rows are queued and written in batches by a background thread (so a read does not pay for a write
transaction); ``flush`` writes what is queued, and ``close`` flushes before the service stops. A crash can
lose at most the last ``FLUSH_SECONDS`` of rows.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dbhandles.clock import iso_from_epoch
from dbhandles.store import AuditRow, HandleStore

__all__ = ["FLUSH_SECONDS", "AuditLog"]

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.25
MAX_QUEUE = 10_000


class AuditLog:
    """Queues ``AuditRow``s and appends them to the handle store."""

    def __init__(self, store: HandleStore, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._lock = threading.Lock()
        self._queue: list[AuditRow | tuple[Any, ...]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, row: AuditRow | tuple[Any, ...]) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._queue.append(row)
            full = len(self._queue) >= MAX_QUEUE
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dbhandles-audit", daemon=True
                )
                self._thread.start()
        if full:
            self.flush()

    def record_call(
        self,
        at: float,
        actor: str,
        session_id: str | None,
        handle: str | None,
        command: str,
        operation: str,
        collection: str | None,
        record_id: str | None,
        code: str | None,
    ) -> None:
        """The hot-path form of ``record``: a plain tuple now, an ``AuditRow`` at flush time."""
        if self.enabled:
            self.record(
                (at, actor, session_id, handle, command, operation, collection, record_id, code)
            )

    @staticmethod
    def _row(item: AuditRow | tuple[Any, ...]) -> AuditRow:
        if isinstance(item, AuditRow):
            return item
        at, actor, session_id, handle, command, operation, collection, record_id, code = item
        return AuditRow(
            iso_from_epoch(at), actor, session_id, handle, command, operation, collection, record_id,
            code is None, code,
        )  # fmt: skip

    def flush(self) -> None:
        with self._lock:
            queued, self._queue = self._queue, []
        rows = [self._row(item) for item in queued]
        if rows:
            try:
                self.store.append_audit(rows)
            except Exception:
                log.exception(
                    "could not write %d audit rows; they are kept for the next flush", len(rows)
                )
                with self._lock:
                    self._queue = [*rows, *self._queue]

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
