"""``data/import`` and ``data/export``: the JSONL importer and exporter as commands.

The server, the browser and ``jtag`` all start the same import; ``perform_import`` and
``perform_export`` are what the handlers (and the CLI, which adds a progress display) call. Paths are
paths on the machine that runs the command (the server's, for a remote call).

Events: ``import:progress`` (at most every half second: ``dbHandle``, ``collection``, ``imported``,
``skipped``, ``failed``, ``lines``, ``bytesRead``, ``totalBytes``, ``recordsPerSecond``...), then
``import:done`` with the result, or ``import:failed`` with ``error`` and ``code``; ``export:done``
after an export. An import does not publish one ``data:<collection>:created`` per record: a million
events would swamp every subscriber; ``import:done`` says that the collection changed.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from dbhandles.commands.base import Call, DataParams, DataResult, command
from dbhandles.commands.grammar import (
    MAX_COUNT,
    CollectionName,
    FieldPath,
    FieldsSpec,
    HandleName,
    OptionalFilterSpec,
    OrderBySpec,
    PathText,
)
from dbhandles.commands.recheck import AccessWatch, Use
from dbhandles.commands.selection import SampleSize, Seed, SplitSpec, sampling_of, seed_rule
from dbhandles.context import Context
from dbhandles.errors import (
    DbHandlesError,
    FileExists,
    InvalidParams,
    NotSupported,
    PathNotAllowed,
)
from dbhandles.filters import (
    check_new_collection,
    parse_fields,
    parse_filter,
    parse_order_by,
    validate_collection,
)
from dbhandles.importer.export import (
    DEFAULT_PAGE_SIZE,
    ExportStats,
    Selection,
    partial_path,
    run_export,
)
from dbhandles.importer.parallel import ParserMode
from dbhandles.importer.progress import NullProgress, Progress
from dbhandles.importer.reader import ChunkReader
from dbhandles.importer.rejects import check_rejects
from dbhandles.importer.run import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    ImportOptions,
    default_rejects_path,
    run_import,
)
from dbhandles.importer.stats import ImportStats
from dbhandles.importer.target import (
    check_file,
    check_one_target,
    check_rejects_file,
    one_target_schema,
    resolve_target,
)
from dbhandles.paging import and_filters
from dbhandles.pinned import changed
from dbhandles.registry import HandleEntry
from dbhandles.security import paths
from dbhandles.security.database_files import check_database_output
from dbhandles.security.redaction import audience, shown_path
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = [
    "ExportParams",
    "ExportResult",
    "ImportParams",
    "ImportResult",
    "perform_export",
    "perform_import",
]

#: Seconds between two ``import:progress`` events.
PROGRESS_EVENT_INTERVAL = 0.5


class ImportParams(DataParams):
    model_config = ConfigDict(json_schema_extra=one_target_schema("output"))

    db_handle: HandleName | None = None
    """Handle to import into, instead of output ('default' for the default database; never implied)."""
    input: PathText
    """JSONL file to import (gzip-compressed when it is a .gz); a path where the command runs."""
    output: PathText | None = None
    """SQLite file to import into, opened with data/open (mode create); or give dbHandle."""
    collection: CollectionName = "training_examples"
    """Target collection."""
    id_field: FieldPath | None = None
    """Dotted path of each record's id (e.g. metadata.git.hash); default: the line's id, else a content hash."""
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH_SIZE)
    """Records per transaction."""
    on_error: Literal["abort", "skip"] = "abort"
    """A bad line stops the import (abort) or goes to the rejects file (skip)."""
    rejects: PathText | None = None
    """Where skip writes rejected lines; default <database file>.rejects.jsonl."""
    suppress_events: bool = False
    """Do not publish import:progress / import:done events."""
    parser: ParserMode = "auto"
    """Parse lines in a second process (process), in this one (inline), or decide by size (auto)."""

    @model_validator(mode="after")
    def _one_target(self) -> ImportParams:
        check_one_target(self.output, self.db_handle, "output")
        return self


class ImportResult(DataResult):
    collection: str
    input: str
    output: str | None
    imported: int
    skipped: int
    failed: int
    duplicates: int
    lines: int
    batches: int
    seconds: float
    records_per_second: float
    rejects: str | None
    errors: list[dict[str, Any]]


class _EventProgress:
    """Publishes ``import:progress`` at most every ``PROGRESS_EVENT_INTERVAL`` seconds; ``watch``
    first checks, after every chunk, that the caller still may write (``commands/recheck.py``)."""

    def __init__(self, publish: Callable[[str, dict[str, Any]], None], inner: Progress,
                 watch: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.publish, self.inner, self.watch = publish, inner, watch
        self._last = 0.0

    def update(self, stats: ImportStats) -> None:
        self.inner.update(stats)
        if self.watch is not None:
            self.watch()
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVENT_INTERVAL:
            self._last = now
            self.publish("import:progress", stats.counts())

    def close(self, stats: ImportStats) -> None:
        self.inner.close(stats)


def _import_options(
    params: ImportParams, input: Path, rejects: Path | None, context: Context | None = None
) -> ImportOptions:
    return ImportOptions(
        input=input,
        collection=validate_collection(params.collection),
        id_field=params.id_field,
        batch_size=params.batch_size,
        on_error=params.on_error,
        rejects=rejects,
        parser=params.parser,
        # A remote caller's rejects file is new and private each run (security/paths.py).
        rejects_mode=None if context is None or context.trusted_local else paths.PRIVATE_MODE,
        other_names=context is None or context.trusted_local,
    )


def _regular_file(given: str, real: Path) -> None:
    """A pipe (``/dev/stdin``, ``<(zcat ...)``) or a device cannot be imported: the import reads the
    file twice at once (checks, then the parser process and the writer) and a re-run reads it again.

    Raises:
        InvalidParams: ``given`` exists but is not a regular file or a folder.
    """
    try:
        mode = os.stat(given if not real.exists() else real).st_mode
    except OSError:
        return  # missing: ChunkReader says so
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InvalidParams(
            f"input: {json_text(given)} is not a regular file (a pipe or a device); save the data to a file "
            "first (a .gz file works as it is)",
            field="input",
        )


@dataclass(frozen=True, slots=True)
class ImportHooks:
    """Observers of one import, given by the front door that runs it (``Call.hooks``).

    Attributes:
        progress: a display told after every chunk and batch (the CLI's bar).
        stats: counts to fill in, still readable when the import raises.
        on_target: called with ``(handle, database path)`` once the target is resolved.
    """

    progress: Progress | None = None
    stats: ImportStats | None = None
    on_target: Callable[[str, str | None], None] | None = None


def import_target(service: Service, params: ImportParams, context: Context) -> HandleEntry:
    """The target of ``data/import``: the database at ``output`` (opened, created if missing) or
    ``dbHandle``. Every path (input, output, rejects) is decided first, whatever ``onError`` is, so
    a refused path never leaves a new output database (and its handle) behind, and a rejects path
    is refused the same with onError abort (which never writes it) as with skip.

    Raises:
        DbHandlesError: a bad input file, rejects file or output path, two of them one file
            (``path_not_allowed``), or from ``resolve_target``.
    """
    output = None
    if params.output is not None:
        output = paths.resolve(service.settings, context, params.output, "output",
                               "database").path  # fmt: skip
        if not os.path.exists(output):
            # A new database has no collection yet: a name no new collection may have is refused
            # before the input is opened and the file (and its handle) created.
            check_new_collection(params.collection)
    source = check_file(service, params.input, "input", context)
    _regular_file(params.input, source)
    # A missing or unreadable input fails before the output is opened.
    ChunkReader(source, other_names=context.trusted_local).close()
    files: list[tuple[str, str, Path]] = [("input", params.input, source)]
    if output is not None:
        assert params.output is not None
        files.append(("output", params.output, output))
    given: str | Path | None = params.rejects
    if given is None and output is not None and params.on_error == "skip":
        given = default_rejects_path(output)
    if given is not None:
        rejects = check_rejects_file(service, given, params.rejects is not None, context)
        files.append(("rejects", os.fspath(given), rejects))
    _distinct_files(files)
    if given is not None:  # abort never writes it, and refuses it as skip would
        check_rejects(files[-1][2])
    open_before = {entry.handle for entry in service.registry.list_handles()}
    entry = resolve_target(service, "data/import", params, params.output, path_field="output",
                           mode="create", context=context)  # fmt: skip
    try:
        if output is None and (db_path := service.registry.get_db_path(entry.handle)):
            # The database of a dbHandle target, known only now (resolving a handle creates nothing).
            _distinct_files([("dbHandle", entry.handle, Path(db_path)), *files])
        _check_target_collection(service, entry, params.collection)
    except DbHandlesError:
        if entry.handle not in open_before:  # opened for this import: leave nothing behind
            service.registry.close(entry.handle)
        raise
    return entry


def _file_identity(field: str, given: str, path: Path) -> tuple[object, ...]:
    """What makes two of an import's paths one file: ``(st_dev, st_ino)`` of an existing file (any
    of its names), else its real path (a file not created yet, named twice).

    Raises:
        PathNotAllowed: a folder on the way changed while it was resolved (``pinned.changed``).
    """
    try:
        info = os.stat(path)
    except OSError:
        try:
            return ("new", os.path.realpath(path))
        except OSError as exc:  # a link on the way removed while realpath read it
            raise changed(field, given) from exc
    return ("file", info.st_dev, info.st_ino)


def _distinct_files(files: list[tuple[str, str, Path]]) -> None:
    """No two of an import's files (``(field, path as given, real path)``, in the order the
    caller named them) are one file: a rejects file that is the output database would be written
    over it, an input that is the rejects file emptied while it is read.

    Raises:
        PathNotAllowed: a later file is an earlier one; ``field`` names the later.
    """
    seen: dict[tuple[object, ...], str] = {}
    for field, given, real in files:
        key = _file_identity(field, given, real)
        if key in seen:
            raise PathNotAllowed(
                f"{field}: {json_text(given)} is the same file as the import's {seen[key]}; "
                f"name another {field} file (nothing was created)",
                field=field,
            )
        seen[key] = field


def _check_target_collection(service: Service, entry: HandleEntry, collection: str) -> None:
    """The import's collection exists in the target, or is a name a new collection may have:
    refused before a line of the input is read (``filters.check_new_collection``).

    Raises:
        InvalidParams: no collection has that name and no new one may have it.
    """
    try:
        check_new_collection(collection)
    except InvalidParams:
        with service.registry.lease(entry) as (_, adapter), adapter.session() as session:
            stored = {name.lower() for name in session.collections()}
        if collection.lower() not in stored:
            raise


def perform_import(service: Service, params: ImportParams, call: Call) -> ImportResult:
    """Run the import described by ``params`` into ``call.target`` (see ``import_target``).

    ``call.hooks`` may be an ``ImportHooks`` (the CLI's progress bar and counts).

    Raises:
        DbHandlesError: see ``run_import``; ``NotSupported`` for a collection declared with a model.
    """
    hooks = call.hooks if isinstance(call.hooks, ImportHooks) else ImportHooks()
    stats = hooks.stats if hooks.stats is not None else ImportStats()
    progress = hooks.progress
    context = call.context
    source = check_file(service, params.input, "input", context)
    assert call.target is not None
    handle = call.target.handle
    db_path = service.registry.get_db_path(handle)
    if hooks.on_target is not None:
        hooks.on_target(handle, db_path)
    # The text as given is checked (a Path would drop a trailing '/').
    # The default database lives in the home, which no data command writes: no rejects file
    # beside it unless one is named (rejected lines are still counted and sampled).
    given: str | Path | None = params.rejects or (
        default_rejects_path(db_path) if not call.target.is_default else None
    )
    rejects: Path | None = None
    if given is not None and params.on_error == "skip":
        rejects = check_rejects_file(service, given, params.rejects is not None, context)
    options = _import_options(
        params, source, rejects if params.on_error == "skip" else None, context
    )
    # What a remote non-admin is shown: never the home's paths (the default database's; an input
    # is never there, paths.resolve refuses the home).
    output = shown_path(service.settings, context, db_path)
    with service.registry.lease(handle) as (entry, adapter):
        decl = service.ensure_declared(adapter, options.collection)
        if decl is not None and decl.model is not None:
            raise NotSupported(
                f"collection {json_text(options.collection, 80)} is declared with the model {decl.model.__name__}; "
                "data/import does not validate records against declared models, so it refuses to "
                "bypass it: import into an undeclared collection, or use data/create",
                field="collection",
            )

        def publish(name: str, payload: dict[str, Any]) -> None:
            # The job's own actor (and administrators) only: it names the actor's files.
            body = {"collection": options.collection, "input": str(options.input), **payload,
                    **audience(context)}  # fmt: skip
            for key in ("input", "output", "rejects"):  # its files, as the actor is shown them
                if isinstance(body.get(key), str):
                    body[key] = shown_path(service.settings, context, body[key])
            service.publish(entry, name, body, params.suppress_events)

        watch = AccessWatch(service, context, "data/import",
                            [Use(call.target, "write", options.collection)])  # fmt: skip
        try:
            run_import(adapter, options,
                       progress=_EventProgress(publish, progress or NullProgress(), watch),
                       stats=stats)  # fmt: skip
        except DbHandlesError as exc:
            stats.finish()
            kept = {k: v for k, v in stats.counts().items() if k != "totalBytes"}
            publish("import:failed", {**kept, "error": exc.message, "code": exc.code})
            # What the database holds, as fields of the failure envelope (not only in the message).
            exc.details.update({"dbHandle": entry.handle, "output": output, **kept})
            raise
    result = _import_result(entry, options, output, stats)
    publish("import:done", result.model_dump(mode="json", by_alias=True, exclude={"db_handle"}))
    return result


def _import_result(
    entry: HandleEntry, options: ImportOptions, db_path: str | None, stats: ImportStats
) -> ImportResult:
    return ImportResult(
        db_handle=entry.handle,
        collection=options.collection,
        input=str(options.input),
        output=db_path,
        imported=stats.imported,
        skipped=stats.skipped,
        failed=stats.failed,
        duplicates=stats.duplicates,
        lines=stats.lines,
        batches=stats.batches,
        seconds=round(stats.seconds, 3),
        records_per_second=round(stats.records_per_second, 1),
        rejects=str(options.rejects) if options.rejects is not None else None,
        errors=stats.errors,
    )


@command(
    "data/import",
    params=ImportParams,
    result=ImportResult,
    target=import_target,
    # "write": handle permissions (write, collections) apply. Its files follow data/open's path
    # rules (allowed roots for remote requests), checked by ``check_file`` and data/open.
    operation="write",
    summary="Import a JSONL file into a collection, in batches, idempotently (re-runs skip stored records).",
    example="jtag data/import --input=/datasets/parsed/continuum-git.jsonl --output=/datasets/prepared/continuum-git.sqlite",
)
def data_import(service: Service, params: ImportParams, call: Call) -> ImportResult:
    return perform_import(service, params, call)


class ExportParams(DataParams):
    model_config = ConfigDict(json_schema_extra={**one_target_schema("input"), **seed_rule()})

    db_handle: HandleName | None = None
    """Handle to export from, instead of input ('default' for the default database; never implied)."""
    output: PathText
    """JSONL file to write (gzip-compressed when it ends in .gz); a path where the command runs."""
    input: PathText | None = None
    """SQLite file to export, opened with data/open (mode readonly); or give dbHandle."""
    collection: CollectionName = "training_examples"
    """Collection to export."""
    filter: OptionalFilterSpec = None
    """Only records matching this filter (same language as data/list)."""
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=100_000)
    """Records read per transaction."""
    fields: FieldsSpec = None
    """Write only these (dotted) fields, plus id unless omitReserved (e.g. messages for a fine-tuning file)."""
    omit_reserved: bool = False
    """Leave out id, createdAt, updatedAt and version (the file then cannot be imported back as the same records)."""
    limit: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    """Write at most this many records."""
    order_by: OrderBySpec = None
    """Order of the lines (as data/list; default id)."""
    sample: SampleSize | None = None
    """Write a deterministic random sample of this many matching records (as data/list)."""
    seed: Seed = 0
    """The sample's seed."""
    split: SplitSpec | None = None
    """Write one part of a deterministic split by id (as data/list)."""
    overwrite: bool = False
    """Replace an existing output file; without it an existing file is refused (file_exists)."""

    @model_validator(mode="after")
    def _one_target(self) -> ExportParams:
        check_one_target(self.input, self.db_handle, "input")
        return self


class ExportResult(DataResult):
    collection: str
    output: str
    input: str | None
    exported: int
    bytes_written: int
    seconds: float
    records_per_second: float
    caveat: str | None = None
    """What the file may lack: set when a read-only database in a folder not writable here was read as an immutable=1 snapshot (as data/list-handles shows)."""


@dataclass(frozen=True, slots=True)
class ExportHooks:
    """Observers of one export, given by the front door that runs it (``Call.hooks``).

    Attributes:
        stats: counts to fill in, still readable when the export raises.
        on_page: called after every page written.
    """

    stats: ExportStats | None = None
    on_page: Callable[[ExportStats], None] | None = None


def export_target(service: Service, params: ExportParams, context: Context) -> HandleEntry:
    """The target of ``data/export``: the database at ``input`` (opened read-only) or ``dbHandle``.

    Raises:
        DbHandlesError: a bad output file, or from ``resolve_target``.
    """
    output = _export_output(service, params.output, context)
    if not _replaces(params, context) and os.path.lexists(output):
        raise FileExists(
            f"output: {json_text(params.output)} exists; choose another name, or pass overwrite: true "
            "(jtag: --overwrite) to replace it",
            field="output",
        )
    return resolve_target(service, "data/export", params, params.input, path_field="input",
                          mode="readonly", context=context)  # fmt: skip


def _export_output(service: Service, given: str, context: Context) -> Path:
    """The real path of an export's ``output`` (``check_file``, ``writing``), whose partial file
    is checked too: it is written, and a leftover there removed, so it is never a database either
    (``database_files.check_database_output``). Checked again where the export runs (a job
    process), since a database may have been made there meanwhile.

    Raises:
        PathNotAllowed, InvalidParams: from ``check_file`` or ``check_database_output``.
    """
    output = check_file(service, given, "output", context, writing=True)
    check_database_output(service, partial_path(output), str(partial_path(given)), "output")
    return output


def _replaces(params: ExportParams, context: Context) -> bool:
    """Whether the export may replace an existing file: only when asked (``overwrite: true``),
    for every actor."""
    return params.overwrite


def perform_export(service: Service, params: ExportParams, call: Call) -> ExportResult:
    """Run the export described by ``params`` from ``call.target`` (see ``export_target``).

    ``call.hooks`` may be an ``ExportHooks`` (the CLI's counts and progress).
    """
    hooks = call.hooks if isinstance(call.hooks, ExportHooks) else ExportHooks()
    stats = hooks.stats if hooks.stats is not None else ExportStats()
    on_page = hooks.on_page
    collection = validate_collection(params.collection)
    filter_node = parse_filter(params.filter)
    selection = Selection(
        order=parse_order_by(params.order_by), fields=parse_fields(params.fields),
        omit_reserved=params.omit_reserved, limit=params.limit,
        sampling=sampling_of(params.sample, params.seed, params.split),
    )  # fmt: skip
    output = str(_export_output(service, params.output, call.context))
    assert call.target is not None
    handle = call.target.handle
    # Known before the export: nothing that can fail comes after the file is in place.
    input_path = service.registry.get_db_path(handle)
    # Each page first checks that the caller still may read (a revoked grant stops the export,
    # and a stopped export leaves no file).
    watch = AccessWatch(service, call.context, "data/export",
                        [Use(call.target, "read", collection)])  # fmt: skip
    with service.registry.lease(handle) as (entry, adapter):
        filter_node = and_filters(entry.row_filter, filter_node)
        run_export(adapter, collection, output, filter=filter_node, page_size=params.page_size,
                   on_page=watch.chain(on_page), stats=stats,
                   replace=_replaces(params, call.context), mode=paths.file_mode(call.context),
                   selection=selection)  # fmt: skip
    result = ExportResult(
        db_handle=entry.handle,
        collection=collection,
        output=output,
        input=shown_path(service.settings, call.context, input_path),
        exported=stats.exported,
        bytes_written=stats.bytes_written,
        seconds=round(stats.seconds, 3),
        records_per_second=round(stats.records_per_second, 1),
        caveat=entry.config.public().get("caveat"),
    )
    service.publish(entry, "export:done",
                    {**result.model_dump(mode="json", by_alias=True),
                     "output": shown_path(service.settings, call.context, output),
                     **audience(call.context)},
                    False)  # fmt: skip
    return result


@command(
    "data/export",
    params=ExportParams,
    result=ExportResult,
    target=export_target,
    operation="read",
    summary="Write a collection to a JSONL file, one full record (with id, createdAt, updatedAt, version) a line.",
    example="jtag data/export --input=/datasets/prepared/continuum-git.sqlite --output=/tmp/examples.jsonl",
)
def data_export(service: Service, params: ExportParams, call: Call) -> ExportResult:
    return perform_export(service, params, call)
