"""Write a collection to JSONL: one full record (``id``, fields, ``createdAt``, ``updatedAt``, ``version``) a line.

A ``Selection`` narrows that: a projection (``fields``), the reserved fields left out, an order, a
limit, a sample or a split (``adapters.sampling``). Pages are read in the selection's order (``id`` by
default) with a keyset position, each in its own short read transaction, so an export never holds the
database for long and never skips or repeats a record that is not changed while it runs. The file is
written under a temporary name and renamed at the end: a killed export never leaves a truncated file
that looks complete. A name ending in ``.gz`` is gzip-compressed. Importing the file gives back the
same records, timestamps and versions included (see ``rows.py``).

The partial file ``.<name>.partial`` belongs to the export that created it: it carries the extended
attribute ``user.dbhandles.partial`` and, while the export writes it, that export's exclusive
``flock`` (the kernel drops it when the process ends, however it ends). So a partial file found at
the start of an export is one of three things: another export writing it (locked: ``file_exists``),
the leftover of an export that was killed (marked, unlocked: removed, and this export goes on), or a
file the export did not write (unmarked: never touched, ``file_exists``). ``remove_leftover`` is the
same check for whoever sees an export's process die (``server/job_process.py``). On a file system
without extended attributes no partial file is ever recognised as a leftover, nor is the empty file
of an export killed between creating its partial file and marking it (a few system calls).

The output's folder is opened once, without following links (``pinned.Pinned``), and held for the
whole export: the partial file is created, checked, renamed (or linked) over the output and removed
by name relative to that descriptor, never by a path looked up again. So a folder on the way
swapped for a link to another place (the service's home) after the path was checked is refused
(``path_not_allowed``) or still written in the folder that was checked, never where the link leads.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as with_changes
from pathlib import Path
from typing import IO, Any, cast

import orjson

from dbhandles.adapters.base import Adapter, Query, Record, Sampling
from dbhandles.adapters.sqlite_pages import page_parameter
from dbhandles.dbfiles import check_plain
from dbhandles.documents import id_text
from dbhandles.errors import DbHandlesError, FileExists, InvalidParams
from dbhandles.evaluate import position_of, project
from dbhandles.filters import RESERVED_FIELDS, FilterNode, SortKey, validate_collection
from dbhandles.new_files import create_exclusive, open_in
from dbhandles.pinned import Pinned, gone
from dbhandles.values import dump_json, json_text

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "PARTIAL_MARK",
    "ExportStats",
    "Selection",
    "partial_path",
    "remove_leftover",
    "run_export",
]

DEFAULT_PAGE_SIZE = 1000
_ORDER = (SortKey(("id",)),)
#: The extended attribute that marks a partial file as written by an export (its value: b"export").
PARTIAL_MARK = "user.dbhandles.partial"


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

    #: The fields ``omit_reserved`` leaves out: a table dbhandles did not create keeps only the
    #: reserved fields its columns are (``reservedFields``; a ``version`` TEXT column is data).
    reserved: frozenset[str] = RESERVED_FIELDS

    def shape(self, row: Record) -> Record:
        """The line written for ``row``."""
        out = project(row, self.fields)
        if self.omit_reserved:
            for name in self.reserved:
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

    def __init__(
        self, path: Path, compress: bool, mode: int = 0o666, *, folder: Pinned | None = None
    ) -> None:
        at = folder.at() if folder is not None else None
        self.raw: IO[bytes] = create_exclusive(path, "output", mode, folder=at)
        fd = self.raw.fileno()
        # A new inode nobody else has: the lock is free. Held until the file is closed (or this
        # process ends), it tells a later export that this one is still writing.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with contextlib.suppress(OSError):  # no extended attributes there: never a leftover
            os.setxattr(fd, PARTIAL_MARK, b"export")
        st = os.fstat(fd)
        #: The partial file's identity: it is renamed into place only if it is still this file.
        self.identity = (st.st_dev, st.st_ino)
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


def _open(path: Path, folder: Pinned, compress: bool, mode: int) -> _Output:
    """The partial file ``path``, created in ``folder`` (its pinned folder).

    Raises:
        FileExists: a partial file there is not a leftover of a killed export.
        InvalidParams: it cannot be created.
        PathNotAllowed: it may not be replaced (``check_plain``).
    """
    try:
        there: os.stat_result | None = os.lstat(path.name, dir_fd=folder.at())
    except FileNotFoundError:
        there = None
    except OSError as exc:
        raise InvalidParams(f"output: cannot use {json_text(str(path.parent), 80)}: {exc.strerror}",
                            field="output") from exc  # fmt: skip
    if there is not None and not stat.S_ISLNK(there.st_mode):
        # Through the gate first: a database there is answered as such. A planted link is
        # removed, never followed (new_files.create_exclusive).
        check_plain(path, "output", writing=True)
        found = _leftover(path.name, folder)
        if found == "running":
            raise FileExists(
                f"output: {json_text(path.name)} exists: another export to this name is writing it; wait "
                "for it to finish, or choose another name",
                field="output",
            )
        if found == "unknown":
            raise FileExists(
                f"output: {json_text(path.name)} exists: an export to this name was killed, or someone put a "
                "file there (this file system keeps no mark that tells them apart); delete it "
                "when no export runs, or choose another output name",
                field="output",
            )
        if found == "foreign":
            raise FileExists(
                f"output: {json_text(path.name)} exists and was not written by an export (it is never "
                "deleted by one); delete or rename it, or choose another output name",
                field="output",
            )
        # else: an export that was killed left it; create_exclusive replaces it.
    try:
        return _Output(path, compress, mode, folder=folder)
    except OSError as exc:
        if (refusal := gone(exc, "output", str(path))) is not None:
            raise refusal from exc
        raise InvalidParams(f"output: cannot create a file in {json_text(str(path.parent), 80)}: {exc.strerror}",
                            field="output") from exc  # fmt: skip


def _leftover(name: str, folder: Pinned) -> str:
    """What the partial file ``name`` in ``folder`` is: ``"leftover"`` (an export's, no export
    writes it: it was killed), ``"running"`` (an export writes it), ``"foreign"`` (not an export's,
    a link, or unreadable), ``"unknown"`` (its file system keeps no marks) or ``"gone"``.

    Opened read-only without following a link; the caller checked it with ``check_plain`` (never
    a database, so closing it releases no lock)."""
    try:
        fd = open_in(folder.at(), name)
    except FileNotFoundError:
        return "gone"
    except OSError:
        return "foreign"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "foreign"
        try:
            if os.getxattr(fd, PARTIAL_MARK) != b"export":
                return "foreign"
        except OSError as exc:
            return "unknown" if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP) else "foreign"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "running"
        opened, there = os.fstat(fd), os.lstat(name, dir_fd=folder.at())
        if (opened.st_dev, opened.st_ino) != (there.st_dev, there.st_ino):
            return "running"  # replaced meanwhile: by an export that started since
        return "leftover"
    except FileNotFoundError:
        return "gone"
    except OSError:
        return "foreign"
    finally:
        os.close(fd)


def partial_path(output: str | os.PathLike[str]) -> Path:
    """The partial file an export to ``output`` writes (``.<name>.partial`` next to it)."""
    target = Path(output).expanduser()
    return target.with_name(_partial_name(target.name))


def remove_leftover(output: str | os.PathLike[str]) -> bool:
    """Remove the partial file of an export to ``output`` if an export that is no longer running
    left it (marked, unlocked; see the module docstring); whether it did. Never raises for a
    missing or refused file (nothing is done then)."""
    path = partial_path(output)
    try:
        check_plain(path, "output", writing=True)  # before it is opened: never a database
        with Pinned(path, "output") as folder:
            if _leftover(path.name, folder) != "leftover":
                return False
            os.unlink(path.name, dir_fd=folder.at())
    except (OSError, DbHandlesError):
        return False
    return True


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
    partial = partial_path(target)
    try:
        folder = Pinned(target, "output")
    except OSError as exc:
        if (refusal := gone(exc, "output", str(target))) is not None:
            raise refusal from exc
        raise InvalidParams(f"output: cannot create a file in {json_text(str(target.parent), 80)}: "
                            f"{exc.strerror}", field="output") from exc  # fmt: skip
    with folder:
        _export_in(adapter, collection, target, partial, folder, filter, page_size, on_page,
                   stats, replace, mode, selection)  # fmt: skip
    stats.finished = time.monotonic()
    return stats


def _export_in(
    adapter: Adapter,
    collection: str,
    target: Path,
    partial: Path,
    folder: Pinned,
    filter: FilterNode | None,
    page_size: int,
    on_page: Callable[[ExportStats], None] | None,
    stats: ExportStats,
    replace: bool,
    mode: int,
    selection: Selection | None,
) -> None:
    """``run_export``'s work in the output's pinned ``folder``: every name is relative to it."""
    at = folder.at()
    out = _open(partial, folder, target.suffix == ".gz", mode)
    try:
        try:
            _pages(adapter, collection, filter, page_size, out, stats, on_page,
                   selection if selection is not None else Selection())  # fmt: skip
            out.close()
            there = os.lstat(partial.name, dir_fd=at)
            if (there.st_dev, there.st_ino) != out.identity:
                raise FileExists(
                    f"output: another export to {json_text(target.name)} replaced this one's partial file "
                    "while it ran; nothing was written by this one",
                    field="output",
                )
            if replace:
                # Checked again at the end: a database may have been opened there meanwhile.
                check_plain(target, "output", writing=True)
                os.replace(partial.name, target.name, src_dir_fd=at, dst_dir_fd=at)
            else:
                _link_new(partial.name, target.name, at)
        except OSError as exc:
            raise InvalidParams(f"output: cannot write {json_text(str(target), 80)}: {exc.strerror or exc}",
                                field="output") from exc  # fmt: skip
    except BaseException:
        out.close()
        with contextlib.suppress(OSError):  # only its own: another export's is left alone
            there = os.lstat(partial.name, dir_fd=at)
            if (there.st_dev, there.st_ino) == out.identity:
                os.unlink(partial.name, dir_fd=at)
        raise


def _link_new(partial: str, target: str, folder: int) -> None:
    """Put the finished file at ``target`` only if nothing is there (a hard link fails on an
    existing name, atomically), then drop the partial name; both names in ``folder``.

    Raises:
        FileExists: ``target`` exists.
    """
    try:
        os.link(partial, target, src_dir_fd=folder, dst_dir_fd=folder, follow_symlinks=False)
    except FileExistsError as exc:
        raise FileExists(
            f"output: {json_text(str(target))} exists; choose another name, or pass overwrite: true "
            "(jtag: --overwrite)",
            field="output",
        ) from exc
    os.unlink(partial, dir_fd=folder)


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
        with adapter.session() as session, page_parameter("pageSize", 0):
            if after is None and selection.omit_reserved:
                table = session.table(collection)
                if table is not None:
                    kept = frozenset({"id", *table.get("reservedFields", ())})
                    selection = with_changes(selection, reserved=kept)
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
        lines = [
            shape(row if type(row.get("id")) is str else {**row, "id": id_text(row["id"])})
            for row in rows
        ]
        try:
            data = b"".join([dumps(line) + b"\n" for line in lines])
        except orjson.JSONEncodeError:  # an integer past 64 bits (a JSON file edited by hand),
            data = b"".join([dump_json(line) + b"\n" for line in lines])  # written exactly
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
