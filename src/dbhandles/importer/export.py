"""Write a collection to JSONL: one full record (``id``, fields, ``createdAt``, ``updatedAt``, ``version``) a line.

A ``Selection`` narrows that: a projection (``fields``), the reserved fields left out, an order, a
limit, a sample or a split (``adapters.sampling``). Pages are read in the selection's order (``id`` by
default) with a keyset position, each in its own short read transaction, so an export never holds the
database for long and never skips or repeats a record that is not changed while it runs. The file is written under a temporary name and renamed at the end: a killed export never
leaves a truncated file that looks complete. A name ending in ``.gz`` is gzip-compressed. Importing the
file gives back the same records, timestamps and versions included (see ``rows.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import orjson

from dbhandles.adapters.base import Adapter, Query, Record, Sampling
from dbhandles.dbfiles import check_plain, create_exclusive
from dbhandles.documents import id_text
from dbhandles.errors import FileExists, InvalidParams
from dbhandles.evaluate import position_of, project
from dbhandles.filters import RESERVED_FIELDS, FilterNode, SortKey, validate_collection

__all__ = ["DEFAULT_PAGE_SIZE", "ExportStats", "Selection", "run_export"]

DEFAULT_PAGE_SIZE = 1000
_ORDER = (SortKey(("id",)),)


@dataclass(frozen=True, slots=True)
class Selection:
    """What an export writes of the matching records (the default: every record, whole, by id).

    Attributes:
        order: sort keys ending with ``id`` (``filters.parse_order_by``).
        fields: a projection (``filters.parse_fields``); ``id`` is kept unless ``omit_reserved``.
        omit_reserved: leave out ``id``, ``createdAt``, ``updatedAt`` and ``version``.
        limit: write at most this many records.
        sampling: only this sample or split.
    """

    order: tuple[SortKey, ...] = _ORDER
    fields: tuple[tuple[str, ...], ...] | None = None
    omit_reserved: bool = False
    limit: int | None = None
    sampling: Sampling | None = None

    def shape(self, row: Record) -> Record:
        """The line written for ``row``."""
        out = project(row, self.fields)
        if self.omit_reserved:
            for name in RESERVED_FIELDS:
                out.pop(name, None)
        return out


@dataclass(slots=True)
class ExportStats:
    """Counts of one export."""

    exported: int = 0
    bytes_written: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return max(end - self.started, 0.0)

    @property
    def records_per_second(self) -> float:
        return self.exported / self.seconds if self.seconds > 0 else 0.0

    def counts(self) -> dict[str, Any]:
        return {
            "exported": self.exported,
            "bytesWritten": self.bytes_written,
            "seconds": round(self.seconds, 3),
            "recordsPerSecond": round(self.records_per_second, 1),
        }


class _Output:
    """The partial file, and the gzip stream over it for a ``.gz`` name; ``close`` closes both."""

    def __init__(self, path: Path, compress: bool, mode: int = 0o666) -> None:
        self.raw: IO[bytes] = create_exclusive(path, "output", mode)
        self.stream: IO[bytes] = self.raw
        if compress:
            self.stream = cast(
                IO[bytes], gzip.GzipFile(fileobj=self.raw, mode="wb", compresslevel=6)
            )
        self.write = self.stream.write

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            self.raw.close()


def _open(path: Path, compress: bool, mode: int) -> _Output:
    if os.path.lexists(path) and not os.path.islink(path):
        # Another export to the same name is writing it, or one was killed: never deleted here
        # (a planted link is removed, never followed: dbfiles.create_exclusive). Through the gate
        # first: a database there is answered as such.
        check_plain(path, "output", writing=True)
        raise FileExists(
            f"output: {path.name} exists: another export to this name is running, or one was "
            "killed; delete it (when no export runs) and run again",
            field="output",
        )
    try:
        return _Output(path, compress, mode)
    except OSError as exc:
        raise InvalidParams(f"output: cannot create a file in {str(path.parent)!r}: {exc.strerror}",
                            field="output") from exc  # fmt: skip


def _partial_name(name: str) -> str:
    """``.<name>.partial``, or ``.<digest>.partial`` when that would be too long a file name."""
    partial = f".{name}.partial"
    if len(os.fsencode(partial)) <= 255:
        return partial
    return f".{hashlib.sha1(os.fsencode(name)).hexdigest()[:20]}.partial"


def run_export(
    adapter: Adapter,
    collection: str,
    output: str | os.PathLike[str],
    *,
    filter: FilterNode | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    on_page: Callable[[ExportStats], None] | None = None,
    stats: ExportStats | None = None,
    replace: bool = True,
    mode: int = 0o666,
    selection: Selection | None = None,
) -> ExportStats:
    """Export the records of ``collection`` (matching ``filter``) to the JSONL file ``output``.

    Args:
        replace: an existing ``output`` is replaced (atomically); else the finished file is linked
            into place only if the name is still free, and an existing file is ``FileExists``.
        mode: the mode of the new file (the umask applies).
        selection: which records and fields, in which order (``Selection``; default all, by id).

    Raises:
        InvalidParams: a bad collection name or page size, or the file cannot be written.
        FileExists: ``output`` exists and ``replace`` is false.
        DbHandlesError: the database failed.
    """
    collection = validate_collection(collection)
    if not 1 <= page_size <= 100_000:
        raise InvalidParams("pageSize: must be between 1 and 100000", field="pageSize")
    stats = stats if stats is not None else ExportStats()
    target = Path(output).expanduser()
    partial = target.with_name(_partial_name(target.name))
    out = _open(partial, target.suffix == ".gz", mode)
    try:
        try:
            _pages(adapter, collection, filter, page_size, out, stats, on_page,
                   selection if selection is not None else Selection())  # fmt: skip
            out.close()
            if replace:
                # Checked again at the end: a database may have been opened there meanwhile.
                check_plain(target, "output", writing=True)
                os.replace(partial, target)
            else:
                _link_new(partial, target)
        except OSError as exc:
            raise InvalidParams(f"output: cannot write {str(target)!r}: {exc.strerror or exc}",
                                field="output") from exc  # fmt: skip
    except BaseException:
        out.close()
        partial.unlink(missing_ok=True)
        raise
    stats.finished = time.monotonic()
    return stats


def _link_new(partial: Path, target: Path) -> None:
    """Put the finished file at ``target`` only if nothing is there (a hard link fails on an
    existing name, atomically), then drop the partial name.

    Raises:
        FileExists: ``target`` exists.
    """
    try:
        os.link(partial, target, follow_symlinks=False)
    except FileExistsError as exc:
        raise FileExists(
            f"output: {target.name} exists; choose another name, or pass overwrite: true "
            "(jtag: --overwrite)",
            field="output",
        ) from exc
    partial.unlink()


def _pages(
    adapter: Adapter,
    collection: str,
    filter: FilterNode | None,
    page_size: int,
    out: _Output,
    stats: ExportStats,
    on_page: Callable[[ExportStats], None] | None,
    selection: Selection,
) -> None:
    after: tuple[tuple[int, Any], ...] | None = None
    dumps = orjson.dumps
    order = selection.order
    left = selection.limit
    while left is None or left > 0:
        size = page_size if left is None else min(page_size, left)
        with adapter.session() as session:
            query = Query(filter=filter, order=order, limit=size, after=after)
            if selection.sampling is None:
                rows = session.find(collection, query)
            else:
                rows = session.find_sampled(collection, query, selection.sampling)
        if not rows:
            return
        shape = selection.shape
        # A numeric key's id is written as its text, the id data/import takes back
        # (docs/foreign-tables.md "id"); the position below keeps the key's value.
        data = b"".join(
            [
                dumps(
                    shape(row if type(row.get("id")) is str else {**row, "id": id_text(row["id"])})
                )
                + b"\n"
                for row in rows
            ]
        )
        out.write(data)
        stats.exported += len(rows)
        stats.bytes_written += len(data)
        after = position_of(rows[-1], order)
        if left is not None:
            left -= len(rows)
        if on_page is not None:
            on_page(stats)
        if len(rows) < size:
            return
