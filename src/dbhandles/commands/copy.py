"""``data/copy``: copy (or move) records from a collection of one handle to a collection of another.

The original system's archive daemon as one command: ``from`` (handle, collection, filter, orderBy)
into ``to`` (handle, collection), a batch at a time (``commands/copy_run.py`` says how a re-run after
a kill completes the copy without losing or doubling a record), with ``move: true`` deleting each
record from the source once its copy is verified. Any two adapters; either side may be a table or
view dbhandles did not create (written and deleted through its primary key: ``copy_table``; a view
or a table without a key is read-only, so it can be copied from, but not moved nor copied into).

Permissions: read on the source (and delete, for a move), write on the target, each with its
collection rules; the source handle's row filter restricts what is copied; a target handle with a
row filter is refused (``permission_denied``: a copy keeps ids, and through such a handle dbhandles
chooses them). The dispatcher writes two audit rows, whatever the outcome (refused params too):
one for the target and one for the source (``copy_audit_names``).

Events (on the target handle, unless ``suppressEvents``): ``copy:progress`` (at most every half
second), then ``copy:done`` with the result or ``copy:failed`` with ``error``, ``code`` and the counts.
No ``data:<collection>:created`` per record (as ``data/import``). On a server it runs as a job
(``data/job-start``, ``data/job-status``, ``data/job-cancel``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from dbhandles.commands.base import (
    AuditName,
    Call,
    CallerParams,
    DataResult,
    Params,
    Result,
    audit_text,
    command,
)
from dbhandles.commands.copy_run import MAX_CONFLICT_IDS, CopySpec, CopyStats, run_copy
from dbhandles.commands.grammar import MAX_COUNT, check_order_keywords, like, ref
from dbhandles.commands.recheck import AccessWatch, Use
from dbhandles.context import Context
from dbhandles.errors import (
    DbHandlesError,
    HandleNotFound,
    InvalidParams,
    NotSupported,
    PermissionDenied,
    ReadOnly,
)
from dbhandles.filters import (
    COLLECTION_PATTERN,
    MAX_IN_VALUES,
    check_new_collection,
    parse_filter,
    parse_order_by,
    validate_collection,
)
from dbhandles.handle_entry import HANDLE_PATTERN, check_handle_name
from dbhandles.paging import and_filters
from dbhandles.security.policy import authorize
from dbhandles.security.redaction import audience
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.adapters import Adapter
    from dbhandles.registry import HandleEntry
    from dbhandles.service import Service

__all__ = ["CopyFrom", "CopyHooks", "CopyParams", "CopyResult", "CopyTo", "perform_copy"]

#: Seconds between two ``copy:progress`` events.
PROGRESS_EVENT_INTERVAL = 0.5
DEFAULT_BATCH_SIZE = 500

_Handle = Annotated[str, WithJsonSchema({"type": "string", "pattern": HANDLE_PATTERN})]
_Collection = Annotated[str, WithJsonSchema({"type": "string", "pattern": COLLECTION_PATTERN})]


class CopyFrom(Params):
    """Where records are copied from."""

    db_handle: _Handle
    """Handle or alias of the source ('default' for the default database; never implied)."""
    collection: _Collection
    """Source collection, or a table or view dbhandles did not create."""
    filter: Annotated[
        dict[str, Any] | None, WithJsonSchema({"anyOf": [ref("Filter"), {"type": "null"}]})
    ] = None
    """Only records matching this filter (same language as data/list)."""
    order_by: Annotated[list[Any] | str | dict[str, Any] | None, like("OrderBy")] = None
    """Order in which records are copied (as data/list; default id; id is always the last key)."""

    @model_validator(mode="after")
    def _check(self) -> CopyFrom:
        # Each error names the nested field (from.filter), which the shared grammar types cannot.
        check_handle_name(self.db_handle, "from.dbHandle")
        validate_collection(self.collection, "from.collection")
        parse_filter(self.filter, "from.filter")
        check_order_keywords(self.order_by, "from.orderBy")
        parse_order_by(self.order_by, "from.orderBy")
        return self


class CopyTo(Params):
    """Where records are copied to."""

    db_handle: _Handle
    """Handle or alias of the target ('default' for the default database; never implied)."""
    collection: _Collection | None = None
    """Target collection (created if missing), or a table dbhandles did not create that has a primary key; default: the source's name."""

    @model_validator(mode="after")
    def _check(self) -> CopyTo:
        check_handle_name(self.db_handle, "to.dbHandle")
        if self.collection is not None:
            validate_collection(self.collection, "to.collection")
        return self


class CopyParams(CallerParams):
    from_: CopyFrom = Field(alias="from")
    """The source: {dbHandle, collection, filter?, orderBy?}."""
    to: CopyTo
    """The target: {dbHandle, collection?} (collection defaults to the source's)."""
    move: bool = False
    """Delete each record from the source once its copy is verified in the target."""
    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=MAX_IN_VALUES)
    """Records per batch (each batch is read, written and, for a move, deleted in its own transactions)."""
    limit: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    """Copy at most this many records this run (the archive daemon's rows per cycle)."""
    on_conflict: Literal["skip", "abort", "replace"] = "skip"
    """A record whose id is in the target with other content: leave both and report it (skip), stop (abort), or overwrite the target's (replace)."""
    suppress_events: bool = False
    """Do not publish copy:progress / copy:done / copy:failed events."""

    @property
    def target_collection(self) -> str:
        return self.to.collection or self.from_.collection

    # The dispatcher's audit row (service.py ``_audit``) names a command's ``db_handle`` and
    # ``collection`` when it has them: for data/copy those are the target's (the source gets a row of
    # its own). Properties, not fields: they are not params, and policy.py reads fields only.
    @property
    def db_handle(self) -> str:
        return self.to.db_handle

    @property
    def collection(self) -> str:
        return self.target_collection


class CopySide(Result):
    db_handle: str
    collection: str


class CopyResult(DataResult):
    """``dbHandle`` is the target handle (resolved)."""

    from_: CopySide = Field(alias="from")
    to: CopySide
    move: bool
    read: int
    copied: int
    skipped: int
    replaced: int
    conflicts: int
    conflict_ids: list[str]
    changed: int
    """Records a target table stored with another value in a field ("007" as 7; docs/copy.md)."""
    changes: list[dict[str, Any]]
    """The first 100 of them: id, field, value (the source's), stored (the table's)."""
    deleted: int
    batches: int
    seconds: float
    records_per_second: float


@dataclass(frozen=True, slots=True)
class CopyHooks:
    """Observers of one copy, given by the front door that runs it (``Call.hooks``).

    Attributes:
        stats: counts to fill in, still readable when the copy raises.
        on_batch: called after every batch; what it raises stops the copy there (a job's cancel).
    """

    stats: CopyStats | None = None
    on_batch: Callable[[CopyStats], None] | None = None


def _resolve(service: Service, name: str, context: Context, where: str) -> HandleEntry:
    """``registry.resolve_for``, its errors naming ``where`` (``from.dbHandle``) instead of ``dbHandle``.

    Another actor's handle on a database not shared with the caller is answered here, as the
    same ``HandleNotFound`` as a name that reaches nothing (byte for byte: the name as sent, the
    same ``where``), before ``authorize`` would answer it naming plain ``dbHandle``: a nested
    handle must not tell that it exists (docs/security.md §6).
    """
    try:
        entry = service.registry.resolve_for(name, context.actor, context.is_admin)
        foreign = not entry.is_default and entry.owner != context.actor and not context.is_admin
        if foreign and not service.access.shared_with(context, entry):
            raise HandleNotFound.unknown(json_text(name, 80))
        return entry
    except DbHandlesError as exc:
        exc.message = f"{where}: {exc.message.removeprefix('dbHandle: ')}"
        exc.args = (exc.message,)
        exc.field = where
        raise


def copy_target(service: Service, params: CopyParams, context: Context) -> HandleEntry:
    """The target of ``data/copy``: the handle of ``to`` (what the dispatcher authorises for write,
    quota-checks and audits); the source is resolved and authorised by the handler.

    Raises:
        HandleNotFound, AccessDenied: as ``registry.resolve_for``, naming ``to.dbHandle``.
    """
    return _resolve(service, params.to.db_handle, context, "to.dbHandle")


@dataclass(frozen=True, slots=True)
class _Side:
    """One side of a copy as ``policy.authorize`` sees a command (``policy.Authorizable``)."""

    name: str
    operation: str
    admin_only: bool = False


class _SideParams(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built by the first data/copy, not at import

    collection: str


def _authorize(
    service: Service, context: Context, entry: HandleEntry, operation: str, collection: str
) -> None:
    authorize(_Side("data/copy", operation), _SideParams(collection=collection), context, entry,
              service.access)  # fmt: skip


def copy_audit_names(raw: Mapping[str, Any]) -> tuple[AuditName, ...]:
    """What ``data/copy``'s params name for its audit rows, from the raw params (refused ones too):
    the target (``to``; its collection defaults to the source's), then the source (``from``), read,
    and deleted from for a move. The dispatcher writes a row for each."""
    to, source = raw.get("to"), raw.get("from")
    to = to if isinstance(to, Mapping) else {}
    source = source if isinstance(source, Mapping) else {}
    source_collection = audit_text(source.get("collection"))
    return (
        AuditName(
            audit_text(to.get("dbHandle")), audit_text(to.get("collection")) or source_collection
        ),
        AuditName(
            audit_text(source.get("dbHandle")),
            source_collection,
            "delete,read" if raw.get("move") is True else "read",
        ),
    )


def _same_database(
    service: Service, a: tuple[HandleEntry, Adapter], b: tuple[HandleEntry, Adapter]
) -> bool:
    if a[1] is b[1]:
        return True
    database = service.access.database_of(a[0].config)
    return database is not None and database == service.access.database_of(b[0].config)


def _foreign(adapter: Adapter, collection: str) -> dict[str, Any] | None:
    """The description of the table or view dbhandles did not create that ``collection`` names
    (``Session.table``), else ``None``."""
    if not adapter.features.foreign_tables:
        return None
    with adapter.session() as session:
        return session.table(collection)


def _check_new_target(adapter: Adapter, name: str) -> None:
    """The target collection exists, or may be created (refused as ``to.collection``, before a
    record is read: ``filters.check_new_collection``)."""
    try:
        check_new_collection(name, "to.collection")
    except InvalidParams:
        with adapter.session() as session:
            if name.lower() not in {stored.lower() for stored in session.collections()}:
                raise


def _check_sides(service: Service, params: CopyParams, source: tuple[HandleEntry, Adapter],
                 target: tuple[HandleEntry, Adapter]) -> None:  # fmt: skip
    """Refuse what cannot be copied, before anything is written."""
    name = params.target_collection
    if _same_database(service, source, target) and params.from_.collection.lower() == name.lower():
        raise InvalidParams(
            "to.collection: the source and the target are the same collection of the same database; "
            "name another collection or handle",
            field="to.collection",
        )
    into = _foreign(target[1], name)
    if into is None:
        _check_new_target(target[1], name)
    if into is not None and "readOnly" in into:
        raise ReadOnly(
            f"to.collection: {into['kind']} {json_text(into['name'], 80)} was not created by dbhandles and is "
            f"read-only: {into['readOnly']}; copy into a table with a primary key or a collection",
            field="to.collection",
        )
    if params.move and source[1].readonly:
        raise ReadOnly(
            "move: the source handle is read-only, so nothing can be deleted from it; open it "
            "read-write, or copy without move",
            field="move",
        )
    if params.move:
        out = _foreign(source[1], params.from_.collection)
        if out is not None and "readOnly" in out:
            raise ReadOnly(
                f"move: {out['kind']} {json_text(out['name'], 80)} was not created by dbhandles and is "
                f"read-only: {out['readOnly']}; copy it without move",
                field="move",
            )
        _check_deletable(source[1])
    decl = service.ensure_declared(target[1], name)
    if decl is not None and decl.model is not None:
        raise NotSupported(
            f"to.collection: {json_text(name, 80)} is declared with the model {decl.model.__name__}; data/copy "
            "does not validate records against declared models, so it refuses to bypass it",
            field="to.collection",
        )


def _check_deletable(adapter: Adapter) -> None:
    """Refuse a move whose source cannot be written, before anything is read or written: an
    empty write session commits nothing, and refuses as the first delete would (a JSON file
    read-only for a value a rewrite would lose, or a record it cannot serve: ``jsonfile``).

    Raises:
        ReadOnly: the source refuses writes; ``field`` is ``move``.
    """
    try:
        with adapter.session(write=True):
            pass
    except ReadOnly as exc:
        raise ReadOnly(
            f"move: the source refuses writes, so nothing can be deleted from it: {exc.message}; "
            "copy without move (nothing was read or written)",
            field="move",
        ) from exc


class _Progress:
    """Publishes ``copy:progress`` at most every ``PROGRESS_EVENT_INTERVAL`` seconds, then calls the
    front door's ``on_batch``."""

    def __init__(self, publish: Callable[[str, dict[str, Any]], None],
                 inner: Callable[[CopyStats], None] | None) -> None:  # fmt: skip
        self.publish, self.inner = publish, inner
        self._last = 0.0

    def __call__(self, stats: CopyStats) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVENT_INTERVAL:
            self._last = now
            self.publish("copy:progress", stats.counts())
        if self.inner is not None:
            self.inner(stats)


def _check_ids_choosable(target: HandleEntry) -> None:
    """Refuse a copy into a handle with a row filter, before anything is read or written.

    A copy keeps the ids of its source, and through a row-filtered handle dbhandles chooses the ids
    of new records (``documents.create_record``): looking a kept id up in the target would tell
    which hidden ids exist (``conflictIds``, ``onConflict: abort``) and ``replace`` would overwrite
    rows the filter hides. The same rule as ``data/import`` (``importer.target.resolve_target``).

    Raises:
        PermissionDenied: the target handle has a row filter.
    """
    if target.row_filter is not None:
        raise PermissionDenied(
            "Permission denied: to.dbHandle has a row filter, and through such a handle dbhandles "
            "chooses the ids of new records, while data/copy keeps the ids of its source; copy into "
            "a handle without a row filter (nothing was read or written)",
            field="to.dbHandle",
        )


def perform_copy(service: Service, params: CopyParams, call: Call) -> CopyResult:
    """Run the copy described by ``params`` into ``call.target`` (see ``copy_target``).

    ``call.hooks`` may be a ``CopyHooks`` (a job's progress and cancellation).

    Raises:
        HandleNotFound, AccessDenied, PermissionDenied: the source handle, or a right missing on
            either side (read, plus delete for a move, on the source; write on the target).
        InvalidParams: the same collection on both sides; a source row whose id is not a record id.
        ReadOnly: a target that is a view or key-less table dbhandles did not create; a move from one.
        ConstraintViolation, RecordExists: a target table refused a row (nothing of that batch is
            written).
        Conflict: a differing record in the target with ``onConflict: abort``.
        DbHandlesError: from either adapter; the envelope then holds the counts of what was done.
    """
    hooks = call.hooks if isinstance(call.hooks, CopyHooks) else CopyHooks()
    stats = hooks.stats if hooks.stats is not None else CopyStats()
    context = call.context
    assert call.target is not None
    source_name = params.from_.collection
    # The dispatcher audits the source as well as the target (``copy_audit_names``).
    _check_ids_choosable(call.target)
    source = _resolve(service, params.from_.db_handle, context, "from.dbHandle")
    _authorize(service, context, source, "read", source_name)
    if params.move:
        _authorize(service, context, source, "delete", source_name)
    _authorize(service, context, call.target, "write", params.target_collection)
    uses = [
        Use(source, "read", source_name),
        Use(call.target, "write", params.target_collection),
    ]
    if params.move:
        uses.append(Use(source, "delete", source_name))
    # Each batch first checks that the caller still may (a revoked grant stops the copy).
    on_batch = AccessWatch(service, context, "data/copy", uses).chain(hooks.on_batch)
    return _run(service, params, call, source, stats, on_batch)


def _run(service: Service, params: CopyParams, call: Call, source_entry: HandleEntry,
         stats: CopyStats, on_batch: Callable[[CopyStats], None] | None) -> CopyResult:  # fmt: skip
    assert call.target is not None
    name = params.target_collection
    with (
        service.registry.lease(source_entry) as source,
        service.registry.lease(call.target) as target,
    ):
        _check_sides(service, params, source, target)
        (src_entry, src_adapter), (dst_entry, dst_adapter) = source, target
        spec = CopySpec(
            source=params.from_.collection, target=name,
            filter=and_filters(src_entry.row_filter, parse_filter(params.from_.filter, "from.filter")),
            order=parse_order_by(params.from_.order_by, "from.orderBy"),
            batch_size=params.batch_size, limit=params.limit, move=params.move,
            on_conflict=params.on_conflict, target_filter=dst_entry.row_filter,
        )  # fmt: skip
        sides = {
            "from": {"dbHandle": src_entry.handle, "collection": spec.source},
            "to": {"dbHandle": dst_entry.handle, "collection": name},
        }

        def publish(event: str, payload: dict[str, Any]) -> None:
            # The job's own actor (and administrators) only: it names the actor's handles.
            service.publish(dst_entry, event, {**sides, "move": params.move, **payload,
                                               **audience(call.context)},
                            params.suppress_events)  # fmt: skip

        try:
            run_copy(src_adapter, dst_adapter, spec, stats, _Progress(publish, on_batch))
        except DbHandlesError as exc:
            counts = {**stats.counts(), "conflictIds": list(stats.conflict_ids),
                      "changes": list(stats.changes)}  # fmt: skip
            publish("copy:failed", {**counts, "error": exc.message, "code": exc.code})
            # What was done, as fields of the failure envelope (a re-run completes the rest).
            exc.details.update(counts)
            raise
    counts = stats.counts()
    result = CopyResult(
        db_handle=dst_entry.handle,
        from_=CopySide(db_handle=src_entry.handle, collection=spec.source),
        to=CopySide(db_handle=dst_entry.handle, collection=name),
        move=params.move,
        conflict_ids=stats.conflict_ids[:MAX_CONFLICT_IDS],
        changes=stats.changes[:MAX_CONFLICT_IDS],
        **{k: counts[k] for k in ("read", "copied", "skipped", "replaced", "conflicts", "deleted",
                                  "changed", "batches", "seconds")},
        records_per_second=counts["recordsPerSecond"],
    )  # fmt: skip
    publish("copy:done", result.model_dump(mode="json", by_alias=True, exclude={"db_handle"}))
    return result


@command(
    "data/copy",
    params=CopyParams,
    result=CopyResult,
    target=copy_target,
    audit_names=copy_audit_names,
    # "write" on the target (the dispatcher checks it, and the target's quota); read (and delete,
    # for a move) on the source are checked by the handler.
    operation="write",
    summary="Copy (or move: true) records between collections of any two handles, in batches, idempotently (a re-run completes a killed copy).",
    example='jtag data/copy --from=\'{"dbHandle": "primary", "collection": "chat_messages", "filter": {"timestamp": {"$lt": "2026-01-01"}}}\' --to=\'{"dbHandle": "archive"}\' --move',
)
def data_copy(service: Service, params: CopyParams, call: Call) -> CopyResult:
    return perform_copy(service, params, call)
