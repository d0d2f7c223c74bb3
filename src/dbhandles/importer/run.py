"""The import loop: chunks of lines -> parsed items -> batches, each committed in its own transaction.

Every batch is written with ``skip_existing``: a record whose id is already stored is left alone and
counted as ``skipped``; one whose fields differ from the stored record's is also reported by its line
(``collisions``: ``errors``, ``duplicates``, the rejects file), never lost in silence. Ids are deterministic (an id field, the line's ``id``, or a content hash), so a
second run, or a run resumed after the first was killed, stores each record exactly once. A batch is
all or nothing, so a kill loses at most the batch in flight, never leaves half of one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext, suppress
from dataclasses import dataclass
from itertools import islice, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal

import orjson

from dbhandles.adapters.base import Adapter, Record, Session
from dbhandles.clock import iso_now
from dbhandles.errors import DbHandlesError, InvalidParams
from dbhandles.filters import validate_collection
from dbhandles.importer.collisions import collisions
from dbhandles.importer.ids import id_function
from dbhandles.importer.parallel import ParserMode, open_parser
from dbhandles.importer.parse import ParsedChunk, Rejected
from dbhandles.importer.progress import NullProgress, Progress
from dbhandles.importer.reader import READ_ERRORS, ChunkReader, LineTooLong
from dbhandles.importer.rejects import RejectsFile
from dbhandles.importer.rows import Row, complete
from dbhandles.importer.stats import ImportStats
from dbhandles.values import json_text

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MAX_BATCH_SIZE",
    "ImportOptions",
    "OnError",
    "default_rejects_path",
    "run_import",
]

OnError = Literal["abort", "skip"]
DEFAULT_BATCH_SIZE = 100_000
MAX_BATCH_SIZE = 1_000_000
#: How many ids of a batch are kept to name the line a collision's id was stored by when it is
#: in an earlier chunk of the batch (``_Transactions._earlier``): a default batch whole, about
#: 10 MB at most, so memory stays bounded whatever ``batchSize`` is.
WRITERS_KEPT = 100_000


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What to import and how (the ``data/import`` parameters, already validated as values).

    Attributes:
        input: the JSONL file (``.gz`` or plain).
        collection: target collection.
        id_field: dotted path of each record's id; ``None``: the line's ``id``, else a content hash.
        batch_size: records per transaction.
        on_error: ``abort`` stops at the first bad line; ``skip`` sets it aside and goes on.
        rejects: where ``skip`` writes rejected lines (``None``: only counted and sampled).
        parser: parse in a second process (``process``), in this one (``inline``) or decide by the
            input's size (``auto``); see ``parallel.py``.
    """

    input: Path
    collection: str = "training_examples"
    id_field: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    on_error: OnError = "abort"
    rejects: Path | None = None
    parser: ParserMode = "auto"
    #: Create the rejects file anew with this mode (a remote caller's: private), instead of
    #: emptying the file that is there.
    rejects_mode: int | None = None
    #: The input may have other names (hard links): the local user's import, whose every readable
    #: file is its own (docs/security.md "One name per file"); never for a remote caller.
    other_names: bool = False


def _record(row: Row) -> Record:
    record: Record = {"id": row[0], **orjson.loads(row[1])}
    record["createdAt"], record["updatedAt"], record["version"] = row[2], row[3], row[4]
    return record


def _bulk(adapter: Adapter) -> AbstractContextManager[Any]:
    """The adapter's bulk-load mode where it has one (``Features.bulk_load``: fewer checkpoints, a
    bigger cache)."""
    return adapter.bulk_load() if adapter.features.bulk_load else nullcontext()


class _Transactions:
    """One write transaction per batch, fed chunk by chunk.

    Rows go into the open transaction as soon as a chunk is parsed, so memory holds one chunk, not one
    batch, whatever ``batchSize`` is; the batch is committed when it holds ``batchSize`` records.
    The adapter's raw fast path (``Session.insert_many_raw``) is used where it declares one
    (``Features.raw_inserts``).
    """

    def __init__(self, adapter: Adapter, collection: str, stats: ImportStats) -> None:
        self.adapter, self.collection, self.stats = adapter, collection, stats
        self._stack: ExitStack | None = None
        self._session: Session | None = None
        self._raw = adapter.features.raw_inserts
        self.count = 0
        self._inserted = 0
        #: Where lines not written for their id go (``collisions``), besides the counts.
        self.rejects: RejectsFile | None = None
        self._duplicates: list[tuple[int, str, str]] = []
        #: Bad lines waiting to be written to the rejects file with the next insert's collisions,
        #: merged by line (``(line, reason, text)``): the file is in line order within a batch.
        self._pending: list[tuple[int, str, bytes]] = []
        #: The ids of each insert of the open batch, with their lines, and the lines among them that
        #: were collisions: where a collision's stored id came from when that line is in an earlier
        #: chunk of the batch (``_earlier``), indexed only when a collision asks.
        self._seen: list[tuple[Sequence[int], list[str]]] = []
        self._kept = 0  # ids in ``_seen``, at most ``WRITERS_KEPT``
        self._collided: set[int] = set()
        self._index: dict[str, int] = {}
        self._indexed = 0
        # An empty write session up front fails fast on a read-only handle, before any reading.
        with adapter.session(write=True):
            pass

    def reject(self, line: int, reason: str, text: bytes) -> None:
        """Set the bad line ``line`` aside for the rejects file: written with the next insert, in
        line order among its collisions."""
        if self.rejects is not None:
            self._pending.append((line, reason, text))

    def insert(
        self, rows: Sequence[Row], last_line: int, lines: Sequence[int], texts: Sequence[bytes]
    ) -> None:
        """Add ``rows`` (``rows[i]`` from line ``lines[i]``, whose text is ``texts[i]``) to the
        open transaction (opening one if needed); when some were skipped, report each one whose id
        is stored with other fields (``collisions``), and write them to the rejects file merged by
        line with the bad lines set aside since the last insert (``reject``)."""
        count = len(rows)
        if not count:
            self._write_rejects([])
            return
        try:
            if self._stack is None:
                stack = ExitStack()
                self._session = stack.enter_context(self.adapter.session(write=True))
                self._stack = stack
            session = self._session
            assert session is not None
            if self._raw:
                inserted = session.insert_many_raw(self.collection, rows, skip_existing=True)
            else:
                records = [_record(row) for row in rows]
                inserted = session.insert_many(self.collection, records, skip_existing=True)
            found = (
                collisions(session, self.collection, rows, lines, self._earlier)
                if inserted < count
                else []
            )
        except DbHandlesError as exc:
            raise self._failed(exc, last_line) from None
        self.count += count
        self._inserted += inserted
        room = WRITERS_KEPT - self._kept
        if room > 0:  # a copy: the caller reuses its lists (``_mixed``; a range slice is small)
            self._seen.append((lines[:room], list(map(itemgetter(0), rows[:room]))))
            self._kept += min(room, count)
        self._collided.update(line for line, _, _ in found)
        self._duplicates.extend(found)
        if self.rejects is not None:
            where = {line: i for i, line in enumerate(lines)} if found else {}
            self._write_rejects([(line, reason, texts[where[line]]) for line, _, reason in found])

    def _write_rejects(self, found: list[tuple[int, str, bytes]]) -> None:
        """Write the bad lines set aside and the collisions ``found`` to the rejects file, merged
        by line (each list is in line order already)."""
        pending, self._pending = self._pending, []
        if self.rejects is None or not (pending or found):
            return
        entries = (
            sorted(pending + found, key=itemgetter(0)) if pending and found else pending or found
        )
        for line, reason, text in entries:
            self.rejects.write(line, reason, text)

    def _earlier(self, record_id: str) -> int | None:
        """The first line of an earlier insert of the open batch with id ``record_id`` that was
        not itself a collision (so its fields are the stored ones), among the batch's first
        ``WRITERS_KEPT`` records, or ``None``. The index of those ids is built on the first
        question and extended only by inserts since."""
        index, collided = self._index, self._collided
        for lines, ids in self._seen[self._indexed :]:
            for line, seen_id in zip(lines, ids, strict=True):
                if line not in collided:
                    index.setdefault(seen_id, line)
        self._indexed = len(self._seen)
        return index.get(record_id)

    def _forget_batch(self) -> None:
        self._seen.clear()
        self._kept = 0
        self._collided.clear()
        self._index.clear()
        self._indexed = 0

    def commit(self, last_line: int) -> None:
        """Commit the open transaction as one batch ending at ``last_line``."""
        stack, self._stack, self._session = self._stack, None, None
        if stack is None:
            return
        try:
            stack.close()
        except DbHandlesError as exc:
            raise self._failed(exc, last_line) from None
        stats = self.stats
        stats.imported += self._inserted
        stats.skipped += self.count - self._inserted
        for line, record_id, reason in self._duplicates:
            stats.duplicate(line, record_id, reason)
        self._duplicates.clear()
        self._forget_batch()
        stats.batches += 1
        stats.committed_line = last_line
        self.count = self._inserted = 0

    def rollback(self, exc: BaseException) -> None:
        """Roll the open transaction back (the batch in progress is lost, nothing else)."""
        stack, self._stack, self._session = self._stack, None, None
        self.count = self._inserted = 0
        self._duplicates.clear()
        self._forget_batch()
        with suppress(OSError):  # the failure being reported is ``exc``, not the rejects file's
            self._write_rejects([])  # the bad lines read stay reported (the batch is lost)
        if stack is None:
            return
        try:
            stack.__exit__(type(exc), exc, exc.__traceback__)
        except BaseException as raised:  # the session re-raises ``exc`` after rolling back
            if raised is not exc:
                raise

    def _failed(self, exc: DbHandlesError, last_line: int) -> DbHandlesError:
        exc.message = (
            f"{exc.message}; the batch in progress (up to line {last_line}) was not written, and "
            f"{self.stats.committed()}"
        )
        return exc


def _chunks(reader: ChunkReader, stats: ImportStats) -> Iterator[tuple[int, list[bytes]]]:
    it = iter(reader)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except LineTooLong as exc:
            raise InvalidParams(
                f"input: line {exc.line} is {exc.limit >> 20} MiB or longer; each JSON Lines record "
                "must fit on one shorter line (is this a JSON array, or not a JSONL file at all?); "
                f"{stats.committed()}",
                field="input",
            ) from None
        except READ_ERRORS as exc:
            raise InvalidParams(
                f"input: cannot read {json_text(str(reader.path), 80)} after line {stats.lines} ({exc}); the file is "
                f"damaged or truncated; {stats.committed()}",
                field="input",
            ) from exc
        yield item


def run_import(
    adapter: Adapter,
    options: ImportOptions,
    *,
    progress: Progress | None = None,
    stats: ImportStats | None = None,
) -> ImportStats:
    """Import a JSONL file into ``options.collection`` of the database behind ``adapter``.

    Args:
        adapter: the leased adapter of the target handle.
        options: what and how to import.
        progress: told after every chunk and batch (``NullProgress`` when omitted).
        stats: counts to fill in (pass one to still see the counts when this raises).

    Returns:
        The final counts.

    Raises:
        InvalidParams: a bad line with ``onError: abort`` (the message has the line number and what
            the database holds), a damaged input file, an invalid option.
        NotFound: the input file does not exist.
        DbHandlesError: the database refused a batch (read-only, busy, disk full...).
    """
    collection = validate_collection(options.collection)
    id_function(options.id_field)  # a malformed idField fails before anything is read
    if not 1 <= options.batch_size <= MAX_BATCH_SIZE:
        raise InvalidParams(f"batchSize: must be between 1 and {MAX_BATCH_SIZE}", field="batchSize")
    if options.parser not in ("auto", "process", "inline"):
        raise InvalidParams("parser: must be auto, process or inline", field="parser")
    stats = stats if stats is not None else ImportStats()
    progress = progress or NullProgress()
    with ChunkReader(options.input, other_names=options.other_names) as reader:
        stats.total_bytes = reader.total_bytes
        tx = _Transactions(adapter, collection, stats)
        rejects = (
            RejectsFile(options.rejects, options.rejects_mode)
            if options.on_error == "skip" and options.rejects
            else None
        )
        tx.rejects = rejects
        try:
            with _bulk(adapter):
                try:
                    _loop(reader, tx, options, stats, progress, rejects)
                except BaseException as exc:
                    tx.rollback(exc)
                    raise
        finally:
            if rejects is not None:
                rejects.close()
    stats.bytes_read = stats.total_bytes
    stats.finish()
    progress.close(stats)
    return stats


def _loop(
    reader: ChunkReader,
    tx: _Transactions,
    options: ImportOptions,
    stats: ImportStats,
    progress: Progress,
    rejects: RejectsFile | None,
) -> None:
    with open_parser(reader, options.id_field, options.parser) as parse:
        for first, lines in _chunks(reader, stats):
            stats.bytes_read = reader.bytes_read  # so far: an import that stops here reports them
            _write(parse(lines), lines, first, tx, options, stats, rejects)
            stats.lines = first + len(lines) - 1
            stats.bytes_read = reader.bytes_read
            progress.update(stats)
    tx.commit(stats.lines)


def _write(
    chunk: ParsedChunk,
    lines: list[bytes],
    first: int,
    tx: _Transactions,
    options: ImportOptions,
    stats: ImportStats,
    rejects: RejectsFile | None,
) -> None:
    """Insert one parsed chunk whose first line is line ``first``."""
    now = iso_now()
    if chunk.plain:
        # Every line is a record stored as its own text: pair ids and lines in C (zip, map), without
        # a Python step per line.
        strip, decode = bytes.strip, bytes.decode
        rows = zip(chunk.items, map(decode, map(strip, lines)), repeat(now), repeat(now), repeat(1))
        _feed(tx, rows, lines, first, options.batch_size, rejects)  # type: ignore[arg-type]
    else:
        _mixed(tx, chunk, lines, first, now, options, stats, rejects)


def _feed(
    tx: _Transactions,
    rows: Iterator[Row],
    lines: list[bytes],
    first: int,
    batch_size: int,
    rejects: RejectsFile | None,
) -> None:
    """Insert one row per line of ``lines`` (the first is line ``first``), committing full batches."""
    done, count = 0, len(lines)
    while done < count:
        take = min(count - done, batch_size - tx.count)
        start, done = done, done + take
        numbers = range(first + start, first + done)
        tx.insert(list(islice(rows, take)), first + done - 1, numbers, lines[start:done])
        if tx.count >= batch_size:
            tx.commit(first + done - 1)
            if rejects is not None:
                rejects.flush()


def _mixed(
    tx: _Transactions,
    chunk: ParsedChunk,
    lines: list[bytes],
    first: int,
    now: str,
    options: ImportOptions,
    stats: ImportStats,
    rejects: RejectsFile | None,
) -> None:
    """A chunk with blank, reserved or rejected lines: item by item, in line order."""
    batch_size, abort = options.batch_size, options.on_error == "abort"
    rows: list[Row] = []
    numbers: list[int] = []  # the line of each row
    texts: list[bytes] = []
    append = rows.append
    for offset, item in enumerate(chunk.items):
        line_no = first + offset
        if isinstance(item, str):
            append((item, lines[offset].strip().decode(), now, now, 1))
        elif item is None:  # a blank line
            continue
        elif isinstance(item, Rejected):
            stats.reject(line_no, item.reason)
            if abort:
                stats.lines = line_no  # the lines read up to the bad one, in the summary
                raise InvalidParams(
                    f"line {line_no}: {item.reason}. The import stopped (onError: abort): "
                    f"{stats.committed()}. Fix the line, or re-run with onError=skip to set bad "
                    "lines aside; a re-run skips the records already stored",
                    field="input",
                )
            tx.reject(line_no, item.reason, lines[offset])
            continue
        else:
            append(complete(item, now))
        numbers.append(line_no)
        texts.append(lines[offset])
        if tx.count + len(rows) >= batch_size:
            tx.insert(rows, line_no, numbers, texts)
            rows.clear()
            numbers.clear()
            texts.clear()
            tx.commit(line_no)
            if rejects is not None:
                rejects.flush()
    tx.insert(rows, first + len(lines) - 1, numbers, texts)


def default_rejects_path(db_path: str | os.PathLike[str] | None) -> Path | None:
    """``<database file>.rejects.jsonl`` beside a file database; ``None`` for the others."""
    return Path(f"{os.fspath(db_path)}.rejects.jsonl") if db_path else None
