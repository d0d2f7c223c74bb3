"""Whole-collection commands: ``data/schema``, ``data/truncate``, ``data/clear``, ``data/vacuum``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from dbhandles import budget
from dbhandles.adapters.base import Adapter, Query, Session
from dbhandles.commands.base import Call, DataParams, DataResult, command, every_collection
from dbhandles.commands.grammar import CollectionName
from dbhandles.commands.records import CollectionParams
from dbhandles.errors import DbHandlesError, PermissionDenied
from dbhandles.evaluate import rank
from dbhandles.events import event_name
from dbhandles.filters import RESERVED_FIELDS, FilterNode, top_fields, validate_collection
from dbhandles.security.permissions import Permissions, ResolvedName
from dbhandles.security.write_checks import row_filter_derived_refusal, row_filter_view_refusal

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["SchemaParams", "TruncateParams"]

SAMPLE_SIZE = 100
_TYPE_NAMES = {0: "null", 1: "boolean", 2: "number", 3: "string"}


class SchemaParams(DataParams):
    collection: CollectionName | None = None
    """A collection or table; omitted lists every collection, table and view with its record count."""


class SchemaResult(DataResult):
    collection: str | None = None
    collections: list[dict[str, Any]] | None = None
    record_count: int | None = None
    declared: bool | None = None
    fields: list[dict[str, Any]] | None = None
    indexes: list[str] | None = None
    #: A table or view dbhandles did not create (docs/foreign-tables.md): kind, columns, key, ...
    table: dict[str, Any] | None = None
    #: Rows left out as unreadable (``ListResult.unreadable``); ``null`` under a row filter.
    unreadable: int | None = None


def _json_type(value: Any) -> str:
    r = rank(value)
    if r < 4:
        return _TYPE_NAMES[r]
    return "array" if isinstance(value, list) else "object"


def _infer(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for record in records:
        for key, value in record.items():
            if key in RESERVED_FIELDS:
                continue
            info = seen.setdefault(
                key, {"name": key, "types": set(), "present": 0, "example": value}
            )
            info["types"].add(_json_type(value))
            info["present"] += 1
    return [
        {"name": i["name"], "type": "|".join(sorted(i["types"])), "required": i["present"] == len(records),
         "example": i["example"]}
        for i in seen.values()
    ]  # fmt: skip


def _shown(session: Session, permissions: Permissions, table: dict[str, Any]) -> bool:
    """Whether a handle with ``permissions`` may see ``table``: not refused, and for a view
    with collection lists, nothing it reads is refused either (docs/security.md)."""
    name = table["name"]
    if permissions.allowed_collections is None and not permissions.denied_collections:
        return True
    try:
        sources = session.view_sources(name)
    except DbHandlesError:
        # What it reads cannot be told (SQLite refuses to prepare it): under collection lists
        # it is not listed, as a view reading a denied table is not; the others still are.
        return False
    # Names compared as collection_refusal compares names it was not given resolved (any case).
    reads = tuple((s, s.lower()) for s in sources)
    resolved = {name: ResolvedName(name, name.lower(), None, reads)}
    return permissions.collection_refusal(name, resolved) is None


def _filtered(
    session: Session, table: dict[str, Any], row_filter: FilterNode | None
) -> dict[str, Any]:
    """``table`` marked ``refused`` (``permission_denied``) when a row-filtered handle may not
    read it: a view or virtual table computing its rows from other tables' (or one whose reads
    cannot be told), or a table (a collection too) the database writes from other tables' rows
    (a trigger, ``ON UPDATE CASCADE``), as every read of it answers
    (``write_checks.check_row_filter_view``)."""
    if row_filter is None or "refused" in table:
        return table
    name = table["name"]
    try:
        reads = table.get("kind") != "collection" and bool(session.view_sources(name))
        derived = session.derived_from(name)
    except DbHandlesError:
        reads, derived = True, []
    if reads:
        why = row_filter_view_refusal(name, str(table.get("kind", "view")))
    elif derived:
        why = row_filter_derived_refusal(name, *derived[0])
    else:
        return table
    return {**table, "refused": why, "refusedCode": PermissionDenied.code, "recordCount": None}


@command(
    "data/schema",
    params=SchemaParams,
    result=SchemaResult,
    operation="read",
    summary="Without a collection: every collection, table and view with its kind and record "
    "count (tables and views with columns, key, indexes, foreign keys). With one: its fields.",
    example="jtag data/schema --collection=training_examples",
)
def data_schema(service: Service, params: SchemaParams, call: Call) -> SchemaResult:
    with service.lease(call) as (entry, adapter), adapter.session() as session:
        if params.collection is None:
            # What the handle may see, as a per-collection call would: no collection it is denied,
            # counts under its row filter.
            permissions = entry.permissions
            names = [
                n
                for n in session.collections()
                if permissions is None or permissions.collection_refusal(n) is None
            ]
            listing = [
                _filtered(session, {"name": n, "kind": "collection"}, entry.row_filter)
                for n in names
            ]
            listing = [
                c
                if "refused" in c
                else {
                    **c,
                    "recordCount": session.count(c["name"], entry.row_filter),
                    "unreadable": _unreadable(session, c["name"], entry.row_filter),
                }
                for c in listing
            ]
            for c in listing:
                c["declared"] = service.schemas.get(c["name"]) is not None
            if adapter.features.foreign_tables:
                listing.extend(
                    _foreign_entry(adapter, _filtered(session, table, entry.row_filter),
                                   entry.row_filter)
                    for table in session.tables()
                    if permissions is None or _shown(session, permissions, table)
                )  # fmt: skip
            return SchemaResult(db_handle=entry.handle, collections=listing)
        collection = validate_collection(params.collection)
        foreign = session.table(collection) if adapter.features.foreign_tables else None
        if foreign is not None:
            described = _foreign_entry(adapter, foreign, entry.row_filter)
            return SchemaResult(
                db_handle=entry.handle, collection=foreign["name"], declared=False,
                record_count=described["recordCount"], table=described,
                fields=[_column_field(c) for c in foreign["columns"]],
                indexes=[i["name"] for i in foreign["indexes"]],
            )  # fmt: skip
        count = session.count(collection, entry.row_filter)
        decl = service.schemas.get(collection)
        if decl is not None and decl.model is not None:
            fields = decl.fields()
        else:
            fields = _infer(
                session.find(collection, Query(filter=entry.row_filter, limit=SAMPLE_SIZE))
            )
        return SchemaResult(
            db_handle=entry.handle, collection=collection, record_count=count,
            unreadable=_unreadable(session, collection, entry.row_filter),
            declared=decl is not None, fields=fields,
            indexes=[".".join(p) for p in decl.indexes] if decl else [],
        )  # fmt: skip


def _unreadable(session: Session, collection: str, row_filter: FilterNode | None) -> int | None:
    """``Session.unreadable``, ``None`` under a row filter (it hides such rows as missing)."""
    return None if row_filter is not None else session.unreadable(collection)


def _foreign_entry(
    adapter: Adapter, table: dict[str, Any], row_filter: FilterNode | None
) -> dict[str, Any]:
    """A table or view as ``data/schema`` lists it: its description and a row count
    (``recordCount``, under the handle's row filter; ``null`` when it cannot be read, with
    ``refused`` saying why and ``refusedCode`` the error code a read of it answers: a view
    refused by ``sqlite_guard``, or one whose count ran past its share of the time budget,
    ``query_timeout``, is marked so and the listing goes on). The count is exact, except for a large PostgreSQL table read without a row filter: the adapter's estimate
    (``recordCountEstimate``, from ``pg_class.reltuples``), with ``recordCountEstimated: true``.
    Each count runs in a session nested in the command's (a savepoint): a count PostgreSQL
    cancels aborts only its savepoint, never the listing's transaction."""
    estimate = table.pop("recordCountEstimate", None)
    if estimate is not None and row_filter is None:
        return {**table, "recordCount": estimate, "recordCountEstimated": True, "declared": False}
    served = {c.get("field", c["name"]) for c in table.get("columns", ())} | {"id"}
    # A row filter naming a field this table does not serve would count rows it hides (the
    # field is missing on each; see write_checks.check_row_filter_fields): no count then.
    unfit = row_filter is not None and not top_fields(row_filter) <= served
    count = None
    if "refused" not in table and not unfit:
        try:
            # Each count gets half of what is left of the command's budget, so one slow view
            # is marked and the tables after it are still counted.
            left = budget.remaining_ms()
            with (
                budget.query_budget(0 if left is None else max(1, left // 2)),
                adapter.session() as nested,
            ):
                count = nested.count(table["name"], row_filter)
        except DbHandlesError as exc:  # a view SQLite or sqlite_guard refuses, a slow view
            table = {**table, "refused": exc.message, "refusedCode": exc.code}
    return {**table, "recordCount": count, "recordCountEstimated": False, "declared": False}


def _column_field(column: dict[str, Any]) -> dict[str, Any]:
    """A column in the shape of an inferred field (``name``, ``type``, ``required``)."""
    return {"name": column.get("field", column["name"]), "type": column["type"],
            "required": not column["nullable"]}  # fmt: skip


class TruncateParams(CollectionParams):
    suppress_events: bool = False
    """Do not publish data:<collection>:truncated."""


class TruncateResult(DataResult):
    collection: str
    records_deleted: int


@command(
    "data/truncate",
    params=TruncateParams,
    result=TruncateResult,
    operation="schema",
    summary="Delete every record of one collection (the collection stays).",
    example="jtag data/truncate --collection=training_examples",
)
def data_truncate(service: Service, params: TruncateParams, call: Call) -> TruncateResult:
    collection = params.checked_collection()
    with (
        service.lease(call) as (entry, adapter),
        adapter.session(write=True) as session,
    ):
        deleted = session.truncate(collection)
    service.publish(entry, event_name(collection, "truncated"),
                    {"collection": collection, "recordsDeleted": deleted}, params.suppress_events)  # fmt: skip
    return TruncateResult(db_handle=entry.handle, collection=collection, records_deleted=deleted)


class ClearParams(DataParams):
    suppress_events: bool = False
    """Do not publish data:*:cleared."""


class ClearResult(DataResult):
    collections_cleared: int
    records_cleared: int
    collections: list[str]


@command(
    "data/clear",
    params=ClearParams,
    result=ClearResult,
    audit_names=every_collection,
    operation="schema",
    summary="Delete every record of every collection of the handle's database (structure stays).",
    example='jtag data/clear --dbHandle="<UUID>"',
)
def data_clear(service: Service, params: ClearParams, call: Call) -> ClearResult:
    with (
        service.lease(call) as (entry, adapter),
        adapter.session(write=True) as session,
    ):
        names = session.collections()
        records = sum(session.truncate(n) for n in names)
    service.publish(entry, "data:*:cleared",
                    {"collections": names, "recordsCleared": records}, params.suppress_events)  # fmt: skip
    return ClearResult(db_handle=entry.handle, collections_cleared=len(names), records_cleared=records,
                       collections=names)  # fmt: skip


class VacuumParams(DataParams):
    pass


class VacuumResult(DataResult):
    before_size: int
    after_size: int
    duration_ms: float


@command(
    "data/vacuum",
    params=VacuumParams,
    result=VacuumResult,
    operation="schema",
    summary="Reclaim free space in the handle's database; reports sizes in bytes.",
    example='jtag data/vacuum --dbHandle="<UUID>"',
)
def data_vacuum(service: Service, params: VacuumParams, call: Call) -> VacuumResult:
    with service.lease(call) as (entry, adapter):
        if adapter.readonly:
            from dbhandles.errors import ReadOnly

            raise ReadOnly(
                "this handle was opened with mode 'readonly'; vacuum rewrites the database"
            )
        adapter.connect()
        before = adapter.size_bytes()
        started = time.perf_counter()
        adapter.vacuum()
        elapsed = (time.perf_counter() - started) * 1000
        after = adapter.size_bytes()
    return VacuumResult(db_handle=entry.handle, before_size=before, after_size=after,
                        duration_ms=round(elapsed, 3))  # fmt: skip
