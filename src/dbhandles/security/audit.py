"""The audit log: one append-only row per data command, refused ones included.

What a row names (docs/security.md, "Audit log"): ``handle`` is the handle id the named handle or
alias resolves to, the name as the caller sent it only when it resolves to nothing (unknown, closed,
mistyped); ``collection`` is the table or collection the name reaches (``Session.resolve_collection``),
the cursor's collection for a cursor command (``note_collection``), ``*`` for a command that touches
every collection (data/clear), the name as sent when it reaches nothing.

Rows are queued and written in batches by a background thread (so a read does not pay for a write
transaction); ``flush`` writes what is queued, and ``close`` flushes before the service stops. A crash can
lose at most the last ``FLUSH_SECONDS`` of rows.

Refusals before authentication (no token, a bad token, a wrong ``Host``, another site's page) are
summarised (``record_refusal``): per (address, claimed actor, command, code), the first refusal of a window of
``REFUSAL_WINDOW_SECONDS`` is written at once, the rest only counted, and one row carrying their
count is written when the window closes (or at ``close``). A flood of them writes O(windows) rows,
not one per request, and an administrator still sees who knocked and how often.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from dbhandles.clock import iso_from_epoch
from dbhandles.store import AuditRow, HandleStore

__all__ = [
    "FLUSH_SECONDS",
    "MAX_REFUSAL_KEYS",
    "OTHER",
    "REFUSAL_WINDOW_SECONDS",
    "AuditLog",
    "begin_notes",
    "end_notes",
    "note_collection",
]

log = logging.getLogger(__name__)
FLUSH_SECONDS = 0.25
MAX_QUEUE = 10_000
#: Refusals before authentication are written once per (address, actor, command, code) and window.
REFUSAL_WINDOW_SECONDS = 60.0
#: (address, actor, command, code) keys one window tells apart; past it (forged token ids, made-up
#: command names, many addresses) refusals are counted per code under actor and command ``OTHER``
#: and no address, never dropped.
MAX_REFUSAL_KEYS = 1024
OTHER = "(other)"
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


def _plain(
    at: float,
    actor: object,
    session: object,
    handle: object,
    command: object,
    operation: object,
    collection: object,
    record_id: object,
    code: object,
    target: object,
) -> tuple[Any, ...] | None:
    """A row's column values as the store writes them, when every text is a plain ``str`` (or
    ``None`` where the column allows it) of printable ASCII, which nothing need escape (nearly
    every row, decided with one look at them joined); ``None`` for any other row."""
    # Written out field by field (no generator, no list): every command writes a row.
    if (
        type(actor) is str
        and type(command) is str
        and type(operation) is str
        and (session is None or type(session) is str)
        and (handle is None or type(handle) is str)
        and (collection is None or type(collection) is str)
        and (record_id is None or type(record_id) is str)
        and (code is None or type(code) is str)
        and (target is None or type(target) is str)
    ):
        joined = (
            f"{actor}{session or ''}{handle or ''}{command}{operation}{collection or ''}"
            f"{record_id or ''}{code or ''}{target or ''}"
        )
        if joined.isascii() and joined.isprintable():
            return (iso_from_epoch(at), actor, session, handle, command, operation, collection,
                    record_id, code is None, code, target)  # fmt: skip
    return None


@dataclass(slots=True)
class _Knocks:
    """The refusals of one (address, actor, command, code) key in its open window after the first
    one (which was written at once)."""

    first: float
    last: float
    more: int = 0


class AuditLog:
    """Queues ``AuditRow``s and appends them to the handle store."""

    def __init__(self, store: HandleStore, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._lock = threading.Lock()
        #: Held for a whole flush (taken before ``_lock``, never after it).
        self._flushing = threading.Lock()
        #: The column values of each row not written yet (``_values``), in the order they came.
        self._queue: list[tuple[Any, ...]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The open refusal windows (``record_refusal``), by (address, actor, command, code); under
        #: ``_lock``.
        self._knocks: dict[tuple[str | None, str, str, str], _Knocks] = {}

    def record(self, row: AuditRow | tuple[Any, ...]) -> None:
        """Queue a row: an ``AuditRow``, or the tuple ``record_call`` takes (its arguments in order)."""
        if self.enabled:
            self._enqueue(self._values(row))

    def _enqueue(self, values: tuple[Any, ...]) -> None:
        """Queue the column values of one row, as the store writes them."""
        with self._lock:
            self._queue.append(values)
            full = len(self._queue) >= MAX_QUEUE
            self._start()
        if full:
            self.flush()

    def start(self) -> None:
        """Start the writer thread now, at the calling thread's priority (a thread inherits its
        starter's niceness: ``jobs.JobRunner.start`` calls this so that a job thread, at
        ``JOB_NICENESS``, never starts it); idempotent, nothing when the log is disabled."""
        if self.enabled:
            with self._lock:
                self._start()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dbhandles-audit", daemon=True)
            self._thread.start()

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
        """The hot-path form of ``record``: the row's column values are made once, here, and
        written as they are (``_plain``; any other row as ``AuditRow.storable`` stores it).

        ``target``: the real files or databases the command resolved, one per line (``None`` when
        the handle says it all)."""
        if not self.enabled:
            return
        values = _plain(at, actor, session_id, handle, command, operation, collection, record_id,
                        code, target)  # fmt: skip
        if values is None:
            values = self._values(
                (at, actor, session_id, handle, command, operation, collection, record_id, code,
                 target)
            )  # fmt: skip
        self._enqueue(values)

    def record_refusal(
        self,
        actor: str,
        command: str,
        code: str,
        *,
        address: str | None = None,
        at: float | None = None,
    ) -> None:
        """A request refused before authentication (operation ``auth``), summarised per
        (``address``, ``actor``, ``command``, ``code``): the first of a window of ``REFUSAL_WINDOW_SECONDS`` is
        queued at once (``target`` names the address), the next ones of that window are only
        counted, and ``close_windows`` writes one row with their count when the window ends.

        Args:
            actor: who the request claimed to be (``anonymous``, ``token:<id>``, ``invalid-token``).
            command: what it asked for (a command name, ``(websocket)``, ``GET /path``).
            code: the error code it was refused with (``unauthorized``, ``forbidden``...).
            address: the client address, when the door knows it.
            at: when it was refused (seconds since the epoch; default now).
        """
        if not self.enabled:
            return
        at = time.time() if at is None else at
        with self._lock:
            key = (address, actor, command, code)
            knocks = self._knocks.get(key)
            if knocks is None and len(self._knocks) >= MAX_REFUSAL_KEYS:
                key = (None, OTHER, OTHER, code)  # at most one more key per code
                knocks = self._knocks.get(key)
            if knocks is not None:
                knocks.more += 1
                knocks.last = at
                return
            self._knocks[key] = _Knocks(at, at)
        where = None if key[0] is None else f"from {key[0]}"
        self.record_call(at, key[1], None, None, key[2], "auth", None, None, code, where)

    def close_windows(self, now: float | None = None, *, every: bool = False) -> int:
        """Queue the summary row of every refusal window that ended by ``now`` (all of them when
        ``every``: at ``close``): ``target`` says how many more refusals the window counted after
        its first row, from which address, between which times; a window that counted none ends
        with no row. Returns how many summary rows were queued."""
        now = time.time() if now is None else now
        with self._lock:
            ended = [key for key, knocks in self._knocks.items()
                     if every or now - knocks.first >= REFUSAL_WINDOW_SECONDS]  # fmt: skip
            closed = [(key, self._knocks.pop(key)) for key in ended]
        written = 0
        for (address, actor, command, code), knocks in closed:
            if knocks.more:
                where = address if address is not None else "any address"
                target = (
                    f"summary: {knocks.more} more refusals from {where} between "
                    f"{iso_from_epoch(knocks.first)} and {iso_from_epoch(knocks.last)}"
                )
                self.record_call(knocks.last, actor, None, None, command, "auth", None,
                                 None, code, target)  # fmt: skip
                written += 1
        return written

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

    @staticmethod
    def _values(item: AuditRow | tuple[Any, ...]) -> tuple[Any, ...]:
        """The fields of ``_row(item).storable()`` as a tuple (``HandleStore.append_audit_values``):
        ``item`` as it is when its texts are plain printable ASCII (``_plain``), else escaped by
        ``AuditRow.storable``."""
        if type(item) is tuple and len(item) == 10:
            values = _plain(*item)
            if values is not None:
                return values
        return dataclasses.astuple(AuditLog._row(item).storable())

    def flush(self) -> None:
        """Write every queued row now, in the order they were queued (the writer thread calls it
        every ``FLUSH_SECONDS``; ``close`` calls it last; data/audit before it reads).

        One flush at a time: a flush that starts while another writes waits for it, so when it
        returns every row queued before it was called is in the store (or kept, the store being
        down), and batches reach the store in queue order.
        """
        with self._flushing:
            with self._lock:
                rows, self._queue = self._queue, []
            if not rows:
                return
            try:
                self.store.append_audit_values(rows)
                return
            except Exception:
                # One row the store refuses must never hold back the others: one by one.
                kept = [row for row in rows if not self._append_one(row)]
            if len(kept) == len(rows):  # nothing went in: the store is down, try again later
                log.exception(
                    "could not write %d audit rows; they are kept for the next flush", len(rows)
                )
                with self._lock:
                    self._queue = [*kept, *self._queue]
            else:
                log.error("dropped %d audit rows the store refused: %r", len(kept), kept)

    def _append_one(self, row: tuple[Any, ...]) -> bool:
        try:
            self.store.append_audit_values([row])
        except Exception:
            return False
        return True

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            if self._knocks:
                self.close_windows()
            self.flush()

    def close(self) -> None:
        """Stop the writer thread and write everything queued, open refusal windows included."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.close_windows(every=True)
        self.flush()
