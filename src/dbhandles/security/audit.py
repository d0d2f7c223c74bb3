"""The audit log: one append-only row per data command, refused ones included.

What a row names (docs/security.md, "Audit log"): ``handle`` is the handle id the named handle or
alias resolves to, the name as the caller sent it only when it resolves to nothing (unknown, closed,
mistyped); ``collection`` is the table or collection the name reaches (``Session.resolve_collection``),
the cursor's collection for a cursor command (``note_collection``), ``*`` for a command that touches
every collection (data/clear), the name as sent when it reaches nothing.

Rows are queued and written in batches by a background thread (so a read does not pay for a write
transaction); ``flush`` writes what is queued, and ``close`` flushes before the service stops. A crash can
lose at most the last ``FLUSH_SECONDS`` of rows.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any

from dbhandles.clock import iso_from_epoch
from dbhandles.store import AuditRow, HandleStore

__all__ = [
    "FLUSH_SECONDS",
    "AuditLog",
    "begin_notes",
    "end_notes",
    "note_collection",
]

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.25
MAX_QUEUE = 10_000
_NOTES: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "dbhandles_audit_notes", default=None
)


def begin_notes() -> contextvars.Token[list[str] | None]:
    """Start collecting what the running command learns of its target (``Service.execute``;
    nested calls get their own)."""
    return _NOTES.set([])


def end_notes(token: contextvars.Token[list[str] | None]) -> str | None:
    """Stop collecting; the collection the command's target rule found, if it noted one."""
    notes = _NOTES.get()
    _NOTES.reset(token)
    return notes[0] if notes else None


def note_collection(name: str) -> None:
    """Name the collection the running command works on when its params need not name it (a query
    cursor's collection, found from its ``queryHandle``); the first note wins."""
    notes = _NOTES.get()
    if notes is not None and not notes:
        notes.append(name)


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
        target: str | None = None,
    ) -> None:
        """The hot-path form of ``record``: a plain tuple now, an ``AuditRow`` at flush time.

        ``target``: the real files or databases the command resolved, one per line (``None`` when
        the handle says it all)."""
        if self.enabled:
            self.record(
                (at, actor, session_id, handle, command, operation, collection, record_id, code,
                 target)
            )  # fmt: skip

    @staticmethod
    def _row(item: AuditRow | tuple[Any, ...]) -> AuditRow:
        if isinstance(item, AuditRow):
            return item
        at, actor, session_id, handle, command, operation, collection, record_id, code, target = (
            item
        )
        # Text as the caller sent it: the store escapes what it could not hold (``AuditRow.storable``).
        return AuditRow(
            iso_from_epoch(at), actor, session_id, handle, command, operation, collection,
            record_id, code is None, code, target,
        )  # fmt: skip

    def flush(self) -> None:
        with self._lock:
            queued, self._queue = self._queue, []
        rows = [self._row(item) for item in queued]
        if not rows:
            return
        try:
            self.store.append_audit(rows)
            return
        except Exception:
            # One row the store refuses must never hold back the others: write them one by one.
            kept = [row for row in rows if not self._append_one(row)]
        if len(kept) == len(rows):  # nothing went in: the store is down, try again later
            log.exception(
                "could not write %d audit rows; they are kept for the next flush", len(rows)
            )
            with self._lock:
                self._queue = [*kept, *self._queue]
        else:
            log.error("dropped %d audit rows the store refused: %r", len(kept), kept)

    def _append_one(self, row: AuditRow) -> bool:
        try:
            self.store.append_audit([row])
        except Exception:
            return False
        return True

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
