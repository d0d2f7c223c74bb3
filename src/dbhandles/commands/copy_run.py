"""The engine of ``data/copy``: keyset pages from one adapter into another, idempotently, with an
optional verified delete from the source (a move).

One batch is three short transactions, never one long one, so a kill at any point leaves a state
that a re-run completes without losing or doubling a record:

1. read the next page of the source (filter, order, ``after`` the last row of the previous page);
2. in one write transaction on the target, look up the page's ids: an absent record is inserted as
   it is (same ``id``, ``createdAt``, ``updatedAt``, ``version``), an identical one counts as
   already copied (``skipped``), a different one is a conflict (``on_conflict``: ``skip`` it,
   ``abort``, or ``replace`` it);
3. for a move, read the copies back from the target (the verification) and, in one write
   transaction on the source, delete each record that is still exactly what was copied (one that
   changed meanwhile stays, counted as a conflict).

Killed after 2 and before 3, a re-run finds the copies identical (``skipped``), verifies them and
deletes them from the source: nothing is lost, nothing doubled. Rows of a table dbhandles did not
create have no ``createdAt``/``updatedAt``/``version``: their copies get the time of the copy and
version 1, and "identical" then compares the fields the source has.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dbhandles.adapters.base import Adapter, Query, Record, Session
from dbhandles.clock import iso_now
from dbhandles.documents import check_record_id, id_text
from dbhandles.errors import Conflict, InvalidParams, PermissionDenied
from dbhandles.evaluate import matches, position_of
from dbhandles.filters import MAX_ID_LENGTH, RESERVED_FIELDS, FilterNode, SortKey

__all__ = ["MAX_CONFLICT_IDS", "CopySpec", "CopyStats", "OnConflict", "run_copy", "same_record"]

#: Conflicting ids listed in the result (the count is always complete).
MAX_CONFLICT_IDS = 100

OnConflict = Literal["skip", "abort", "replace"]


@dataclass
class CopyStats:
    """The counts of one copy, filled batch by batch (still readable when the copy raises)."""

    read: int = 0
    copied: int = 0
    skipped: int = 0
    replaced: int = 0
    conflicts: int = 0
    deleted: int = 0
    batches: int = 0
    conflict_ids: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def conflict(self, record_id: str) -> None:
        self.conflicts += 1
        if len(self.conflict_ids) < MAX_CONFLICT_IDS:
            self.conflict_ids.append(record_id)

    def counts(self) -> dict[str, Any]:
        """The counts as events and job progress show them (camelCase)."""
        seconds = self.seconds
        return {
            "read": self.read,
            "copied": self.copied,
            "skipped": self.skipped,
            "replaced": self.replaced,
            "conflicts": self.conflicts,
            "deleted": self.deleted,
            "batches": self.batches,
            "seconds": round(seconds, 3),
            "recordsPerSecond": round(self.read / seconds, 1) if seconds > 0 else 0.0,
        }


@dataclass(frozen=True, slots=True)
class CopySpec:
    """What to copy: collections (or a source table) by name, the source's filter (the handle's row
    filter included) and order (ending with ``id``), and how."""

    source: str
    target: str
    filter: FilterNode | None
    order: tuple[SortKey, ...]
    batch_size: int
    limit: int | None = None
    move: bool = False
    on_conflict: OnConflict = "skip"
    #: The target handle's row filter: every record written must match it.
    target_filter: FilterNode | None = None


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` (one JSON number), but ``True != 1`` (Python says otherwise)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def same_record(source: Record, copy: Record) -> bool:
    """Whether ``copy`` is ``source`` as ``data/copy`` stores it: the same user fields, and the same
    reserved fields where the source has them (a foreign table's row has none)."""
    kept = {k: v for k, v in copy.items() if k in source or k not in RESERVED_FIELDS}
    return _equal(source, kept)


def _as_record(row: Record, now: str) -> Record:
    """The record to store for a source row: the row itself, with the reserved fields a foreign
    table's row lacks filled in (the time of the copy, version 1)."""
    if "createdAt" in row and "updatedAt" in row and "version" in row:
        return row
    return {"createdAt": now, "updatedAt": now, "version": 1, **row}


def _text_id(row: Record) -> Record:
    """``row`` with its ``id`` as text: the key of a table dbhandles did not create may be a
    number, and a collection's ids are text (``documents.id_text``: ``7`` is ``"7"``)."""
    record_id = row.get("id")
    return row if type(record_id) is str else {**row, "id": id_text(record_id)}


def _by_id(session: Session, collection: str, ids: Sequence[str]) -> dict[str, Record]:
    # Point reads, not one ``id $in [...]`` query: the memory and json adapters evaluate a filter
    # over the whole collection, so an archive that grows would make every batch slower.
    found = {}
    for record_id in ids:
        record = session.get(collection, record_id)
        if record is not None:
            found[record_id] = record
    return found


def _write_batch(
    target: Adapter, spec: CopySpec, rows: list[Record], stats: CopyStats
) -> list[Record]:
    """Store one page in the target, in one transaction; return the rows now safely in the target
    (copied, replaced, or found identical).

    Raises:
        InvalidParams: a row's id is not a record id (a non-empty string of at most 512 characters;
            a numeric key is its text already, ``_text_id``).
    """
    now = iso_now()
    new: list[Record] = []
    replace: list[Record] = []
    present: list[Record] = []
    conflicts: list[str] = []
    for row in rows:
        # A foreign table's key may not make a record id (too long): say which row, before writing.
        try:
            check_record_id(row.get("id"), "from.collection", MAX_ID_LENGTH)
        except InvalidParams as exc:
            shown = str(row.get("id"))
            shown = shown if len(shown) <= 80 else shown[:80] + "..."
            exc.message = f"{exc.message}; a collection cannot hold the id of row {shown!r}"
            raise
    with target.session(write=True) as session:
        existing = _by_id(session, spec.target, [r["id"] for r in rows])
        for row in rows:
            have = existing.get(row["id"])
            if have is None:
                new.append(_as_record(row, now))
            elif same_record(row, have):
                present.append(row)
            elif spec.on_conflict == "replace":
                replace.append(_as_record(row, now))
            elif spec.on_conflict == "abort":
                raise Conflict(
                    f"record {row['id']!r} is already in {spec.target!r} with other content "
                    "(onConflict: abort); nothing of this batch was written",
                    field="to.collection",
                )
            else:
                conflicts.append(row["id"])
        if spec.target_filter is not None:
            for record in (*new, *replace):
                if not matches(spec.target_filter, record):
                    raise PermissionDenied(
                        f"Permission denied: record {record['id']!r} is outside the row filter of "
                        "the target handle; nothing of this batch was written",
                        field="to.dbHandle",
                    )
        if new:
            session.insert_many(spec.target, new)
        for record in replace:
            session.replace(spec.target, record)
    stats.copied += len(new)
    stats.replaced += len(replace)
    stats.skipped += len(present)
    for record_id in conflicts:
        stats.conflict(record_id)
    done = {r["id"] for r in (*new, *replace, *present)}
    return [r for r in rows if r["id"] in done]


def _move(
    source: Adapter, target: Adapter, spec: CopySpec, rows: list[Record], stats: CopyStats
) -> None:
    """Verify the copies of ``rows`` in the target, then delete from the source each row that is
    still what was copied."""
    with target.session() as session:
        copies = _by_id(session, spec.target, [r["id"] for r in rows])
    verified = [r for r in rows if r["id"] in copies and same_record(r, copies[r["id"]])]
    checked = {r["id"] for r in verified}
    deleted = 0
    # A copy that is not what was read (changed in the target meanwhile) is not deleted.
    changed: list[str] = [r["id"] for r in rows if r["id"] not in checked]
    with source.session(write=True) as session:
        for row in verified:
            current = session.get(spec.source, row["id"])
            if current is None:
                continue  # deleted by someone else meanwhile: nothing to do
            if not _equal(_text_id(current), row):
                changed.append(row["id"])
                continue
            if session.delete(spec.source, row["id"]):
                deleted += 1
    stats.deleted += deleted
    for record_id in changed:
        stats.conflict(record_id)


def run_copy(
    source: Adapter,
    target: Adapter,
    spec: CopySpec,
    stats: CopyStats,
    on_batch: Callable[[CopyStats], None] | None = None,
) -> None:
    """Copy (or move) what ``spec`` selects from ``source`` into ``target``, a batch at a time.

    ``on_batch`` is called after every batch (progress, cancellation: what it raises stops the copy
    between two batches, keeping what was done). Memory: one batch of records at a time.

    Raises:
        Conflict: a differing record in the target with ``on_conflict="abort"``.
        PermissionDenied: a record outside the target handle's row filter.
        DbHandlesError: from either adapter (each batch is its own transactions: earlier batches stay).
    """
    after: tuple[tuple[int, Any], ...] | None = None
    try:
        while True:
            want = spec.batch_size
            if spec.limit is not None:
                want = min(want, spec.limit - stats.read)
                if want <= 0:
                    break
            query = Query(filter=spec.filter, order=spec.order, limit=want, after=after)
            with source.session() as session:
                rows = session.find(spec.source, query)
            if not rows:
                break
            after = position_of(rows[-1], spec.order)
            rows = [_text_id(row) for row in rows]  # after the position: it takes the key's value
            stats.read += len(rows)
            stored = _write_batch(target, spec, rows, stats)
            if spec.move and stored:
                _move(source, target, spec, stored, stats)
            stats.batches += 1
            if on_batch is not None:
                on_batch(stats)
            if len(rows) < want:
                break
    finally:
        stats.finished = time.monotonic()
