"""Query cursors (``data/query-open``, ``query-next``, ``query-close``): one owner for their whole life.

A cursor over a durable handle is a row in the store (``_dbh_cursors``), so another ``jtag`` invocation
or server can continue it; a cursor over a non-durable (memory) handle lives in this process, like the
handle. ``QueryCursors`` opens, advances, closes and expires both kinds, closes a session's cursors when
the session ends, and a handle's cursors when the handle closes (the registry calls ``close_handle``).

Thread-safety: the in-process cursors are a dict behind one lock and are never iterated unlocked. Each
advance is a compare-and-swap on the page number (in the store, and by identity in the dict), so
concurrent ``query-next`` calls, from threads here or from other processes, each get a distinct page;
striped locks make calls on one cursor take turns in this process, so they rarely lose that race.
Pages are read by ``paging.fetch_page``, which ``data/list`` shares.

Limits (one actor must not fill the server's memory or the default database): a cursor's spec (filter,
order, fields as JSON) is at most ``max_cursor_spec_bytes``; a non-admin actor holds at most
``max_cursors_per_actor`` live cursors, counted over both kinds: the rows the store holds for it (every
process's, counted and inserted in one write transaction, so opens racing in several processes on one
home never overshoot) plus the in-process ones (the opens of one process take turns); every cursor,
durable or not, expires ``cursor_ttl_seconds`` after its last use.

Expiry never waits for the next ``query-open``: ``reap`` deletes expired cursors (here and in the store)
when the owner is created (rows that ended processes left), on every cursor command (at most once per
``sweep_seconds``), every ``sweep_seconds`` on a timer thread once this process opened a cursor, and at
``close``. A server also sweeps on a timer of its own (``ServerState.sweep_cursors``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from dbhandles.adapters.base import Record, Sampling
from dbhandles.adapters.sqlite_pages import page_parameter
from dbhandles.clock import now_ms
from dbhandles.errors import (
    Conflict,
    CursorNotFound,
    DbHandlesError,
    HandleNotFound,
    PayloadTooLarge,
    TooManyRequests,
)
from dbhandles.filters import SortKey, parse_fields, parse_filter, parse_order_by
from dbhandles.paging import check_shape, fetch_page, shape_of
from dbhandles.registry import HandleEntry, HandleRegistry
from dbhandles.security.audit import note_collection
from dbhandles.store import CursorRow
from dbhandles.values import dump_json, json_text

__all__ = ["CursorPage", "QueryCursors"]

log = logging.getLogger(__name__)

_STRIPES = 64


def _now() -> int:
    return now_ms()


@dataclass(frozen=True, slots=True)
class CursorPage:
    """One ``query-next`` answer: the cursor as it was before this page, the page and whether more follow."""

    cursor: CursorRow
    items: list[Record]
    has_more: bool

    @property
    def page_number(self) -> int:
        return self.cursor.page_number


class QueryCursors:
    """Every query cursor of a service: durable ones in the registry's store, the others in this process.

    Args:
        registry: the handles the cursors query; its store keeps the durable cursors, its settings give
            the idle TTL (``cursor_ttl_seconds``). ``QueryCursors`` registers itself to hear about
            closed handles.
        clock: epoch milliseconds (``clock.now_ms`` by default); the ``clock`` attribute may be replaced.

    Errors callers should expect: ``CursorNotFound`` (unknown, closed, expired, another session's, or its
    handle closed) and ``HandleNotFound`` (``open`` racing a close of the handle).
    """

    def __init__(self, registry: HandleRegistry, *, clock: Callable[[], int] | None = None) -> None:
        self._registry = registry
        self.clock: Callable[[], int] = clock if clock is not None else _now
        self._lock = threading.Lock()
        self._local: dict[str, CursorRow] = {}
        # Striped, not one lock per cursor, so nothing has to be cleaned up when cursors go away.
        self._turns = tuple(threading.Lock() for _ in range(_STRIPES))
        #: Opens counted against an actor's limit take turns in this process (count, then insert).
        self._opening = threading.Lock()
        #: ``time.monotonic()`` before which ``reap`` does nothing, and the timer thread.
        self._next_reap = 0.0
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        registry.on_close(self.close_handle)
        self.reap()  # what processes that ended left behind

    @property
    def ttl_ms(self) -> int:
        return int(self._registry.settings.cursor_ttl_seconds * 1000)

    @property
    def sweep_seconds(self) -> float:
        """Seconds between two sweeps: a tenth of the TTL, within 0.1 s to 60 s."""
        return min(max(self._registry.settings.cursor_ttl_seconds / 10, 0.1), 60.0)

    # -- expiry --------------------------------------------------------------------------------------

    def reap(self, *, force: bool = False) -> int:
        """``expire``, unless it ran less than ``sweep_seconds`` ago (and not ``force``); return how
        many cursors were deleted. A store that cannot be written now (busy) is tried next time."""
        now = time.monotonic()
        if not force and now < self._next_reap:
            return 0
        self._next_reap = now + self.sweep_seconds
        try:
            return self.expire()
        except DbHandlesError:
            log.warning("could not delete expired query cursors", exc_info=True)
            return 0

    def _sweep(self) -> None:
        while not self._stop.wait(self.sweep_seconds):
            self.reap(force=True)

    def _start_sweeper(self) -> None:
        """Start the timer thread (once, on the first cursor this process opens)."""
        with self._lock:
            if self._sweeper is not None or self._stop.is_set():
                return
            self._sweeper = threading.Thread(
                target=self._sweep, name="dbhandles-cursors", daemon=True
            )
        self._sweeper.start()

    def stop(self) -> None:
        """Stop the timer thread and delete the cursors that expired; idempotent. The service
        calls it before it closes the registry."""
        if self._stop.is_set():
            return
        self._stop.set()
        with self._lock:
            sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.join(timeout=5)
        self.reap(force=True)

    # -- open ----------------------------------------------------------------------------------------

    def check(
        self,
        filter: dict[str, Any] | None,
        order: tuple[SortKey, ...],
        fields: list[str] | str | None,
        owner: str | None,
    ) -> None:
        """Refuse early (before any query runs) a spec over the size limit, or an ``owner`` at its
        cursor limit; ``open`` checks both again.

        Raises:
            PayloadTooLarge: the spec is larger than ``max_cursor_spec_bytes``.
            TooManyRequests: ``owner`` already holds ``max_cursors_per_actor`` live cursors.
        """
        self._check_spec(
            {"filter": filter, "orderBy": [k.to_wire() for k in order], "fields": fields}
        )
        if owner is not None:
            self._room_for(owner, self.clock())

    def _check_spec(self, spec: dict[str, Any]) -> None:
        limit = self._registry.settings.max_cursor_spec_bytes
        size = len(dump_json(spec))  # a filter's integer past 64 bits too
        if limit and size > limit:
            raise PayloadTooLarge(
                f"filter: a query cursor keeps its query for its whole life, and this one is {size} "
                f"bytes (filter, orderBy and fields as JSON), over the limit of {limit} "
                "(DBHANDLES_MAX_CURSOR_SPEC_BYTES); use a smaller filter, or data/list",
                field="filter",
            )

    def _held(self, owner: str, now: int) -> tuple[int, int]:
        """``(in this process, in the store)``: the live cursors ``owner`` holds."""
        with self._lock:
            local = sum(1 for r in self._local.values() if r.owner == owner and r.expires_at >= now)
        return local, self._registry.store.count_cursors(owner, now)

    def _room_for(self, owner: str, now: int) -> None:
        """Refuse ``owner`` at its limit.

        Raises:
            TooManyRequests: ``owner`` holds ``max_cursors_per_actor`` live cursors.
        """
        held = sum(self._held(owner, now))
        if held >= self._registry.settings.max_cursors_per_actor:
            raise self._too_many(owner, held)

    def _too_many(self, owner: str, held: int) -> TooManyRequests:
        limit = self._registry.settings.max_cursors_per_actor
        return TooManyRequests(
            f"{json_text(owner, 80)} already has {held} open query cursors (the limit is {limit}, "
            "DBHANDLES_MAX_CURSORS_PER_ACTOR); close some with data/query-close, or let them "
            "expire",
            field="queryHandle",
        )

    def open(
        self,
        entry: HandleEntry,
        collection: str,
        *,
        filter: dict[str, Any] | None,
        order: tuple[SortKey, ...],
        fields: list[str] | str | None,
        page_size: int,
        total_count: int,
        session_id: str | None,
        owner: str | None = None,
        sampling: Sampling | None = None,
        shape: str | None = None,
    ) -> CursorRow:
        """Open a cursor over ``collection`` through ``entry``; its handle's row filter is folded in.

        Idle cursors (of any handle) are expired first.

        Args:
            owner: the actor the cursor counts against (``max_cursors_per_actor``); ``None``: no
                limit (administrators, in-process callers).
            sampling: page only this sample or split (kept in the spec as ``sample``).
            shape: the fingerprint of the table paged (``paging.shape_of``, ``None`` for a
                collection), kept in the spec: a page read after it changed is refused.

        Raises:
            HandleNotFound: the handle was closed while the cursor was being opened.
            PayloadTooLarge: the spec is larger than ``max_cursor_spec_bytes``.
            TooManyRequests: ``owner`` already holds ``max_cursors_per_actor`` live cursors.
        """
        now = self.clock()
        self.expire(now)
        spec_filter = filter
        if entry.permissions is not None and entry.permissions.row_filter:
            row_filter = entry.permissions.row_filter
            spec_filter = {"$and": [filter, row_filter]} if filter else row_filter
        spec = {"filter": spec_filter, "orderBy": [k.to_wire() for k in order], "fields": fields}
        if sampling is not None:
            spec["sample"] = sampling.to_wire()
        spec["shape"] = shape
        self._check_spec(spec)
        row = CursorRow(
            cursor_id=str(uuid.uuid4()), handle=entry.handle, collection=collection,
            spec=spec,
            position=None, page_number=0, total_count=total_count, page_size=page_size,
            exhausted=False, session_id=session_id, expires_at=now + self.ttl_ms, owner=owner,
        )  # fmt: skip
        if owner is None:
            self._insert(row, entry.durable)
        else:
            with self._opening:
                self._insert_counted(row, owner, entry.durable, now)
        self._start_sweeper()
        # A close of the handle that ran between its resolution and the insert above did not see this
        # cursor: look again now that it is visible, so a closed handle never keeps one.
        if not self._still_open(entry):
            self._drop(row.cursor_id)
            raise HandleNotFound(
                f"dbHandle: {json_text(entry.handle, 80)} was closed while the query was opened",
                field="dbHandle",
            )
        return row

    def _insert(self, row: CursorRow, durable: bool) -> None:
        if durable:
            self._registry.store.put_cursor(row)
        else:
            with self._lock:
                self._local[row.cursor_id] = row

    def _insert_counted(self, row: CursorRow, owner: str, durable: bool, now: int) -> None:
        """Insert ``row`` unless ``owner`` is at its limit (under ``_opening``).

        Raises:
            TooManyRequests: ``owner`` holds ``max_cursors_per_actor`` live cursors.
        """
        limit = self._registry.settings.max_cursors_per_actor
        local, stored = self._held(owner, now)
        if durable:
            # The store counts its rows again inside the insert's transaction: another process
            # may have inserted some since.
            if not self._registry.store.put_cursor(row, room=limit - local, now_ms=now):
                raise self._too_many(owner, limit)
            return
        if local + stored >= limit:
            raise self._too_many(owner, local + stored)
        with self._lock:
            self._local[row.cursor_id] = row

    def _still_open(self, entry: HandleEntry) -> bool:
        if entry.is_default:
            return True
        if entry.durable:
            return self._registry.store.get_handle(entry.handle) is not None
        return self._registry.is_open(entry.handle)

    # -- next ----------------------------------------------------------------------------------------

    def next(
        self,
        cursor_id: str,
        session_id: str | None,
        *,
        handle_name: str | None = None,
        authorize: Callable[[HandleEntry], None] | None = None,
    ) -> CursorPage:
        """Serve the cursor's next page (an empty one past the end) and move the cursor past it.

        Args:
            handle_name: the ``dbHandle`` the caller named, if any: it must resolve to the cursor's.
            authorize: checks the caller against the cursor's own handle before a page is read.

        Raises:
            CursorNotFound: unknown, closed, expired, another session's, another handle's, or its
                handle was closed.
            Conflict: the table it pages changed since the open (``paging.shape_of``: replaced by a
                view, dropped, its key or a sorted column changed); the cursor is closed.
        """
        self.reap()
        with self._turns[hash(cursor_id) % _STRIPES]:
            while True:
                row, local = self._get(cursor_id, session_id)
                if handle_name is not None:
                    try:
                        named = self._registry.resolve(handle_name).handle
                    except HandleNotFound:
                        named = None
                    if named != row.handle:
                        raise CursorNotFound(
                            "queryHandle: this query belongs to another dbHandle",
                            field="queryHandle",
                        )
                if row.exhausted:
                    return CursorPage(row, [], False)
                items, last, has_more = self._fetch(row, authorize)
                new = replace(
                    row,
                    position=[list(p) for p in last] if last else row.position,
                    page_number=row.page_number + 1,
                    exhausted=not has_more,
                    expires_at=self.clock() + self.ttl_ms,
                )
                # Compare-and-swap: if another caller (another process) served this page first, or the
                # cursor was closed meanwhile, look again: read the next page, or report it gone.
                if self._advance(row, new, local):
                    return CursorPage(row, items, has_more)

    def _fetch(
        self, row: CursorRow, authorize: Callable[[HandleEntry], None] | None
    ) -> tuple[list[Record], tuple[tuple[int, Any], ...] | None, bool]:
        order = parse_order_by(row.spec["orderBy"])
        after = tuple((int(r), v) for r, v in row.position) if row.position is not None else None
        registry = self._registry
        try:
            entry = registry.resolve(row.handle)
            if authorize is not None:
                authorize(entry)
            with (
                registry.lease(entry) as (_entry, adapter),
                adapter.session() as session,
                page_parameter("pageSize"),  # a page too large advises on the cursor's own size
            ):
                if "shape" in row.spec:  # cursors stored before fingerprints have none
                    self._check_shape(row, shape_of(session, row.collection, order))
                return fetch_page(
                    session, row.collection, parse_filter(row.spec["filter"]), order, row.page_size,
                    after, parse_fields(row.spec["fields"]),
                    Sampling.from_wire(row.spec.get("sample")),
                )  # fmt: skip
        except HandleNotFound as exc:
            self._drop(row.cursor_id)
            raise CursorNotFound(
                "queryHandle: its dbHandle was closed", field="queryHandle"
            ) from exc

    def _check_shape(self, row: CursorRow, now: str | None) -> None:
        """Close the cursor and refuse the page when its table changed shape since the open.

        Raises:
            Conflict: field ``queryHandle``, ``details.reason`` ``schema_changed``.
        """
        try:
            check_shape(row.spec["shape"], now, row.collection, "queryHandle",
                        "the query was closed: open it again with data/query-open")  # fmt: skip
        except Conflict:
            self._drop(row.cursor_id)
            raise

    def _advance(self, old: CursorRow, new: CursorRow, local: bool) -> bool:
        if not local:
            return self._registry.store.advance_cursor(old, new)
        with self._lock:
            if self._local.get(old.cursor_id) is not old:
                return False
            self._local[old.cursor_id] = new
            return True

    # -- lookup and close ----------------------------------------------------------------------------

    def get(self, cursor_id: str, session_id: str | None) -> CursorRow:
        """The cursor as it is now (dropping it if it has expired).

        Raises:
            CursorNotFound: unknown, closed, expired or another session's.
        """
        self.reap()
        return self._get(cursor_id, session_id)[0]

    def _get(self, cursor_id: str, session_id: str | None) -> tuple[CursorRow, bool]:
        with self._lock:
            row = self._local.get(cursor_id)
        local = row is not None
        if row is None:
            row = self._registry.store.get_cursor(cursor_id)
        if row is not None and row.session_id != session_id:
            row = None  # another session's cursor is invisible, not merely forbidden
        if row is None:
            raise CursorNotFound(f"queryHandle: no open query {json_text(cursor_id, 80)} (closed, expired, or its "
                                 "handle was closed)", field="queryHandle")  # fmt: skip
        if row.expires_at < self.clock():
            self._drop(cursor_id)
            raise CursorNotFound(
                f"queryHandle: query {json_text(cursor_id, 80)} expired after being idle",
                field="queryHandle",
            )
        # query-next and query-close name no collection: their audit row names the cursor's.
        note_collection(row.collection)
        return row, local

    def close(self, cursor_id: str, session_id: str | None) -> bool:
        """Close a cursor of this session; ``False`` if it was unknown, closed, expired or another's."""
        self.reap()
        try:
            self._get(cursor_id, session_id)
        except CursorNotFound:
            return False
        return self._drop(cursor_id)

    def _drop(self, cursor_id: str) -> bool:
        with self._lock:
            local = self._local.pop(cursor_id, None) is not None
        return local or self._registry.store.delete_cursor(cursor_id)

    def end_session(self, session_id: str) -> int:
        """Close every cursor of a session that ended (a closed connection); return how many."""
        with self._lock:
            gone = [c for c, row in self._local.items() if row.session_id == session_id]
            for cursor_id in gone:
                del self._local[cursor_id]
        return len(gone) + self._registry.store.delete_session_cursors(session_id)

    def close_handle(self, handle: str) -> int:
        """Close the in-process cursors of a handle that closed; return how many.

        ``HandleRegistry.close`` calls it for every handle it closes. A durable handle's cursors are
        rows the store deletes together with the handle (``HandleStore.delete_handle``).
        """
        with self._lock:
            gone = [c for c, row in self._local.items() if row.handle == handle]
            for cursor_id in gone:
                del self._local[cursor_id]
        return len(gone)

    def expire(self, now: int | None = None) -> int:
        """Delete cursors idle past their expiry, here and in the store; return how many."""
        now = self.clock() if now is None else now
        with self._lock:
            gone = [c for c, row in self._local.items() if row.expires_at < now]
            for cursor_id in gone:
                del self._local[cursor_id]
        return len(gone) + self._registry.store.expire_cursors(now)

    def in_process(self) -> list[CursorRow]:
        """A snapshot of the cursors kept in this process (those over non-durable handles)."""
        with self._lock:
            return list(self._local.values())
