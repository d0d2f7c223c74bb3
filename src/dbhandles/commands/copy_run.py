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
   changed meanwhile stays, counted as a conflict). A copy in a table is verified against the
   source record itself (``copy_table.changed_field``): a row whose column changed a value
   (``"007"`` stored as ``7``) is not the record, so its source row stays (a conflict, listed in
   ``changes`` with the field); without ``move`` such rows are counted in ``changed``.

Killed after 2 and before 3, a re-run finds the copies identical (``skipped``), verifies them and
deletes them from the source: nothing is lost, nothing doubled. Rows of a table dbhandles did not
create have no ``createdAt``/``updatedAt``/``version``: their copies get the time of the copy and
version 1, and "identical" then compares the fields the source has. Either side may be such a
table: a target table is written through its key (``copy_table``), a moved row is deleted from a
source table through its key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from dbhandles.adapters.base import Adapter, Query, Record, Session
from dbhandles.adapters.foreign_common import ColumnPaths
from dbhandles.adapters.sqlite_pages import page_parameter
from dbhandles.adapters.sqlite_values import system_problem
from dbhandles.clock import iso_now
from dbhandles.commands.copy_table import Placed, changed_field, write_rows
from dbhandles.documents import MAX_TABLE_ID_LENGTH, check_record_id, column_values, id_text
from dbhandles.errors import Conflict, InvalidParams, PermissionDenied, QueryFailed
from dbhandles.evaluate import matches, position_of
from dbhandles.filters import MAX_ID_LENGTH, RESERVED_FIELDS, FilterNode, SortKey
from dbhandles.row_writes import loose_field, loose_message
from dbhandles.value_equality import same_value
from dbhandles.values import check_record, json_text

__all__ = ["MAX_CONFLICT_IDS", "CopySpec", "CopyStats", "OnConflict", "run_copy", "same_record"]

#: Conflicting ids (and changed records) listed in the result (the counts are always complete).
MAX_CONFLICT_IDS = 100
#: A value shown in ``changes`` longer than this (as text) is cut, with "...".
_SHOWN = 200

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
    #: Records the target table stored with another value in some field (``copy_table``).
    changed: int = 0
    conflict_ids: list[str] = field(default_factory=list)
    #: The first ``MAX_CONFLICT_IDS`` of them: ``{"id", "field", "value", "stored"}``.
    changes: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def conflict(self, record_id: str) -> None:
        self.conflicts += 1
        if len(self.conflict_ids) < MAX_CONFLICT_IDS:
            self.conflict_ids.append(record_id)

    def change(self, placed: Placed, stored: Record) -> None:
        """Count ``placed`` as a record the table changed (``placed.changed`` names the field)."""
        self.changed += 1
        if len(self.changes) < MAX_CONFLICT_IDS and placed.changed is not None:
            name = placed.changed
            self.changes.append({"id": placed.row["id"], "field": name,
                                 "value": _shown(placed.row.get(name)),
                                 "stored": _shown(stored.get(name))})  # fmt: skip

    def inexact(self, record_id: str, found: tuple[str, Any, str], copy: Record) -> None:
        """Count a source row a move keeps because its record showed a column's value normalised
        (``found``: ``TableWriter.inexact``'s field, the source's stored value, why); ``copy``
        is what the target holds."""
        name, value, why = found
        self.changed += 1
        if len(self.changes) < MAX_CONFLICT_IDS:
            self.changes.append({"id": record_id, "field": name, "value": _shown(value),
                                 "stored": _shown(copy.get(name)), "why": why})  # fmt: skip

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
            "changed": self.changed,
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


def _shown(value: Any) -> Any:
    """``value`` for ``changes``: as it is, or a long string cut to ``_SHOWN`` characters."""
    if isinstance(value, str) and len(value) > _SHOWN:
        return value[:_SHOWN] + "..."
    if isinstance(value, dict | list) and len(str(value)) > _SHOWN:
        return str(value)[:_SHOWN] + "..."
    return value


def same_record(source: Record, copy: Record) -> bool:
    """Whether ``copy`` is ``source`` as ``data/copy`` stores it: the same user fields, and the same
    reserved fields where the source has them (a foreign table's row has none; a ``version`` column
    holding NULL is none: not versioned yet, copied as version 1, ``_as_record``)."""
    if "version" in source and source["version"] is None:
        source = {k: v for k, v in source.items() if k != "version"}
    kept = {k: v for k, v in copy.items() if k in source or k not in RESERVED_FIELDS}
    return same_value(source, kept)


def _as_record(row: Record, now: str) -> Record:
    """The record to store for a source row: the row itself, with the reserved fields a foreign
    table's row lacks filled in (the time of the copy, version 1). A ``version`` column holding NULL
    is a row not versioned yet (version 0 to the table's own updates, docs/foreign-tables.md
    "Versions and timestamps"): its copy is a record at version 1, as a row without the column."""
    if "createdAt" in row and "updatedAt" in row and row.get("version") is not None:
        return row
    record = {"createdAt": now, "updatedAt": now, "version": 1, **row}
    if record["version"] is None:
        record["version"] = 1
    return record


def _check_system(rows: list[Record], now: str) -> None:
    """Refuse, before anything of the batch is written, a row whose ``createdAt``, ``updatedAt``
    or ``version`` (columns of a table so named, or ``created_at``/... under camel field names)
    would be no record's own as dbhandles writes them (``system_problem``: version 0, an
    ``updatedAt`` of ``"x"`` or null): stored, the collection would hold a record it then calls
    unreadable, or refuse it in the words of its storage (docs/copy.md "From a table").

    Raises:
        InvalidParams: naming the record and the field; ``field`` is ``from.collection``.
    """
    for row in rows:
        record = _as_record(row, now)
        why = system_problem(
            record["id"], record["createdAt"], record["updatedAt"], record["version"]
        ) or _unreal_time(record)
        if why is not None:
            raise InvalidParams(
                f"from.collection: record {json_text(row['id'], 80)}: {why}; a copied row's "
                "createdAt, updatedAt and version are the record's own, not data, so they must be "
                "as dbhandles writes them (leave the column out, or copy from a view that renames "
                "it); nothing of this batch was written",
                field="from.collection",
            )


def _unreal_time(record: Record) -> str | None:
    """Why ``createdAt`` or ``updatedAt`` of ``record``, spelled as dbhandles writes a timestamp
    (``system_problem`` holds them to the format), is no time of the calendar (``2024-02-30``, hour
    24), which dbhandles never writes (``clock.iso_now``); ``None`` when both are. Year 0000 is
    one (RFC 3339 allows it, and reads serve it): checked as 2000, a leap year as 0000 is in the
    proleptic Gregorian calendar, since Python's ``datetime`` starts at year 1."""
    for name in ("createdAt", "updatedAt"):
        text = record[name]
        try:
            datetime.strptime(f"2000{text[4:]}" if text.startswith("0000") else text,
                              "%Y-%m-%dT%H:%M:%S.%fZ")  # fmt: skip
        except ValueError:
            return (
                f"its {name} {json_text(text, 40)} is spelled as a timestamp but is no time of "
                "the calendar (a day past the month's last, an hour past 23)"
            )
    return None


def _text_id(row: Record) -> Record:
    """``row`` with its ``id`` as text: the key of a table dbhandles did not create may be a
    number, and a collection's ids are text (``documents.id_text``: ``7`` is ``"7"``)."""
    record_id = row.get("id")
    return row if type(record_id) is str else {**row, "id": id_text(record_id)}


def _by_id(
    session: Session, collection: str, ids: Sequence[str], unreadable: set[str] | None = None
) -> dict[str, Record]:
    """The records of ``collection`` with ``ids``, by id; an id whose row dbhandles cannot read
    (another tool wrote it: ``query_failed`` naming it, docs/filters.md "Values") is left out and
    added to ``unreadable``: the copy treats it as a record with other content, never as free."""
    # Point reads, not one ``id $in [...]`` query: the memory and json adapters evaluate a filter
    # over the whole collection, so an archive that grows would make every batch slower.
    found = {}
    for record_id in ids:
        try:
            record = session.get(collection, record_id)
        except QueryFailed as exc:
            if exc.details.keys() != {"collection", "id"} or exc.details["id"] != record_id:
                raise
            if unreadable is not None:
                unreadable.add(record_id)
            continue
        if record is not None:
            found[record_id] = record
    return found


def _checked_values(rows: list[Record], table: bool) -> list[Record]:
    """``rows`` as a collection stores them (the value rule of ``dbhandles.values``: ``-0.0`` is
    ``0.0``), or a ``table`` dbhandles did not create (``documents.column_values``: a field's
    own number past +-2**63 is left to its column's rule), before anything of the batch is written.

    Raises:
        InvalidParams: a value no record can hold (a JSON file edited by hand may hold U+0000, which
            PostgreSQL refuses in its own words and SQLite's JSON functions cut), naming the record
            and the value's path; ``field`` is ``from.collection``.
    """
    checked = []
    for row in rows:
        try:
            checked.append(column_values(row) if table else check_record(row))
        except InvalidParams as exc:
            raise InvalidParams(
                f"from.collection: record {json_text(row.get('id'), 80)}: {exc.message}; nothing "
                "of this batch was written",
                field="from.collection",
            ) from exc
    return checked


def _check_ids(rows: list[Record], limit: int) -> None:
    """Refuse a row whose id cannot be a record id of the target, before anything is written.

    Raises:
        InvalidParams: naming the row (a foreign table's key may be longer than a collection's ids).
    """
    for row in rows:
        try:
            check_record_id(row.get("id"), "from.collection", limit)
        except InvalidParams as exc:
            # JSON text, never a Python repr (``None``): the id as the caller would write it.
            shown = orjson.dumps(row.get("id"), default=str).decode()
            shown = shown if len(shown) <= 80 else shown[:80] + "..."
            exc.message = f"{exc.message}; the target cannot hold the id of row {shown}"
            raise


def _write_batch(
    target: Adapter, spec: CopySpec, rows: list[Record], stats: CopyStats
) -> list[Placed]:
    """Store one page in the target, in one transaction; return the rows now safely in the target
    (copied, replaced, or found identical).

    Raises:
        InvalidParams: a row's id is not a record id (a non-empty string of at most 512 characters
            for a collection; a numeric key is its text already, ``_text_id``); a field a target
            table has no column for; a value no record can hold (``_checked_values``).
        ConstraintViolation, RecordExists, ReadOnly: a target table refused a row (``copy_table``).
    """
    now = iso_now()
    new: list[Record] = []
    replace: list[Record] = []
    present: list[Record] = []
    conflicts: list[str] = []
    with target.session(write=True) as session:
        writer = session.table_writer(spec.target)
        _check_ids(rows, MAX_ID_LENGTH if writer is None else MAX_TABLE_ID_LENGTH)
        # as data/create checks them, into a collection or a table
        rows = _checked_values(rows, writer is not None)
        if writer is None:
            _check_system(rows, now)
        if writer is not None:
            outcome = write_rows(target, session, writer, spec.target, rows, spec.on_conflict)
            stats.copied += outcome.copied
            stats.replaced += outcome.replaced
            stats.skipped += outcome.skipped
            for record_id in outcome.conflicts:
                stats.conflict(record_id)
            if not spec.move:  # a move reports them when it keeps their source rows (``_move``)
                for placed in outcome.placed:
                    if placed.changed is not None and placed.stored is not None:
                        stats.change(placed, placed.stored)
            return outcome.placed
        unreadable: set[str] = set()
        existing = _by_id(session, spec.target, [r["id"] for r in rows], unreadable)
        for row in rows:
            have = existing.get(row["id"])
            if row["id"] in unreadable:  # never overwritten, even by replace: it cannot be read
                if spec.on_conflict == "abort":
                    raise Conflict(
                        f"record {json_text(row['id'], 80)} is already in {json_text(spec.target, 80)} as "
                        "a row another tool wrote that dbhandles cannot read (onConflict: abort); "
                        'nothing of this batch was written (docs/filters.md "Values")',
                        field="to.collection",
                    )
                conflicts.append(row["id"])
            elif have is None:
                new.append(_as_record(row, now))
            elif same_record(row, have):
                present.append(row)
            elif spec.on_conflict == "replace":
                replace.append(_as_record(row, now))
            elif spec.on_conflict == "abort":
                raise Conflict(
                    f"record {json_text(row['id'], 80)} is already in {json_text(spec.target, 80)} with other content "
                    "(onConflict: abort); nothing of this batch was written",
                    field="to.collection",
                )
            else:
                conflicts.append(row["id"])
        if spec.target_filter is not None:
            for record in (*new, *replace):
                if not matches(spec.target_filter, record):
                    raise PermissionDenied(
                        f"Permission denied: record {json_text(record['id'], 80)} is outside the row filter of "
                        "the target handle; nothing of this batch was written",
                        field="to.dbHandle",
                    )
                if (loose := loose_field(spec.target_filter, record)) is not None:
                    which = f"record {json_text(record['id'], 80)}: "
                    raise PermissionDenied(loose_message(loose, which), field="to.dbHandle")
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
    return [Placed(r) for r in rows if r["id"] in done]


def _verified(placed: Placed, copy: Record | None) -> bool:
    """Whether the target's ``copy`` holds the source record: the record itself (a collection), or
    a row holding every field's value (a table dbhandles did not create: ``copy_table.changed_field``;
    a row the table stored with a changed value, ``"007"`` as ``7``, is not the record)."""
    if copy is None:
        return False
    if placed.stored is None:
        return same_record(placed.row, copy)
    return changed_field(placed.row, copy) is None


def _move(
    source: Adapter, target: Adapter, spec: CopySpec, placed: list[Placed], stats: CopyStats
) -> None:
    """Verify the copies of the ``placed`` rows in the target, then delete from the source each
    row that is still what was copied (through its key, on a table dbhandles did not create)."""
    with target.session() as session:
        copies = _by_id(session, spec.target, [p.row["id"] for p in placed])
    verified = [p.row for p in placed if _verified(p, copies.get(p.row["id"]))]
    for p in placed:
        copy = copies.get(p.row["id"])
        if copy is not None and p.stored is not None:
            field_name = changed_field(p.row, copy)
            if field_name is not None:
                stats.change(Placed(p.row, p.stored, field_name), copy)
    checked = {r["id"] for r in verified}
    deleted = 0
    # A copy that is not what was read (changed in the target meanwhile) is not deleted.
    changed: list[str] = [p.row["id"] for p in placed if p.row["id"] not in checked]
    with source.session(write=True) as session:
        writer = session.table_writer(spec.source)
        for row in verified:
            current = session.get(spec.source, row["id"])
            if current is None:
                continue  # deleted by someone else meanwhile: nothing to do
            if not same_value(_text_id(current), row):
                changed.append(row["id"])
                continue
            # The record is what a read shows; a row whose stored value it shows normalised (a
            # key written twice, a rounded number) would lose the rest with its deletion.
            inexact = None if writer is None else writer.inexact(row["id"])
            if inexact is not None:
                stats.inexact(row["id"], inexact, copies[row["id"]])
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
    # The order as the source's columns read it (a column named ``a.b``): for the keyset position.
    order = spec.order
    if any(len(key.path) > 1 for key in order):
        with source.session() as session:
            order = ColumnPaths.of(session.table(spec.source)).order(order)
    try:
        while True:
            want = spec.batch_size
            if spec.limit is not None:
                want = min(want, spec.limit - stats.read)
                if want <= 0:
                    break
            query = Query(filter=spec.filter, order=spec.order, limit=want, after=after)
            with source.session() as session, page_parameter("batchSize", 0):
                rows = session.find(spec.source, query)
            if not rows:
                break
            after = position_of(rows[-1], order)
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
