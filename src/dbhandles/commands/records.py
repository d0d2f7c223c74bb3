"""Single-record commands: ``data/create``, ``read``, ``update``, ``delete`` and the atomic ``batch``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from dbhandles.commands.base import Call, DataParams, DataResult, Params, command
from dbhandles.commands.fast_params import build
from dbhandles.commands.grammar import (
    CollectionName,
    DataSpec,
    ExpectedVersion,
    NewRecordId,
    PatchSpec,
    RecordId,
    ref,
)
from dbhandles.documents import (
    check_held_id,
    check_record_id,
    create_record,
    delete_record,
    id_text,
    record_version,
    seen,
    update_record,
)
from dbhandles.errors import DbHandlesError, InvalidParams
from dbhandles.events import event_name
from dbhandles.filters import FilterNode, validate_collection
from dbhandles.leases import Lease
from dbhandles.values import item_path

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["BatchOp", "BatchParams", "CreateParams", "DeleteParams", "ReadParams", "UpdateParams"]


class CollectionParams(DataParams):
    collection: CollectionName
    """Collection, table or view name (e.g. training_examples); a new collection's: letters, digits, _."""

    def checked_collection(self) -> str:
        return validate_collection(self.collection)


class CreateParams(CollectionParams):
    # The record's id comes from id, else from data.id: data carries no other id than its own.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"id": {"type": "null"}}},
                {"required": ["id"], "properties": {"data": ref("RecordPatch")}},
            ]
        }
    )

    data: DataSpec
    """The record's fields (a JSON object)."""
    id: NewRecordId | None = None
    """Record id; data.id or a new UUID4 when omitted."""
    suppress_events: bool = False
    """Do not publish data:<collection>:created."""


class RecordResult(DataResult):
    json_fields = ("data",)

    collection: str
    id: str
    data: dict[str, Any] | None = None


@command(
    "data/create",
    params=CreateParams,
    result=RecordResult,
    operation="write",
    summary="Create a record; returns the stored record with id, createdAt, updatedAt, version.",
    example="""jtag data/create --collection=training_examples --data='{"text":"example","label":"positive"}' --id=test-001""",
)
def data_create(service: Service, params: CreateParams, call: Call) -> RecordResult:
    collection = params.checked_collection()
    with service.lease(call) as (entry, adapter):
        decl = service.ensure_declared(adapter, collection)
        with adapter.session(write=True) as session:
            record = create_record(
                session, collection, params.data, params.id, decl, row_filter=entry.row_filter
            )
            # The key of a table dbhandles did not create may be a number: results and events
            # carry every id as text (``id_text``), records the key's value
            # (docs/foreign-tables.md). The result is built before the session commits: a
            # result that cannot be built rolls the write back (never written and unanswered).
            record_id = str(id_text(record["id"]))
            result = RecordResult(db_handle=entry.handle, collection=collection, id=record_id,
                                  data=record)  # fmt: skip
    service.publish(entry, event_name(collection, "created"),
                    {"collection": collection, "id": record_id, "record": record},
                    params.suppress_events)  # fmt: skip
    return result


class ReadParams(CollectionParams):
    id: RecordId
    """Record id."""


class ReadResult(RecordResult):
    found: bool


@command(
    "data/read",
    params=ReadParams,
    result=ReadResult,
    operation="read",
    summary="Read one record by id; a missing record is success with found=false.",
    example="jtag data/read --collection=training_examples test-001",
    positional="id",
)
def data_read(service: Service, params: ReadParams, call: Call) -> ReadResult:
    collection = params.checked_collection()
    record_id = check_record_id(params.id, held=True)
    with Lease(service.registry, call.target) as (entry, adapter):  # ``service.lease``, inlined
        if "\x00" in record_id:  # only a table dbhandles did not create holds it
            with adapter.session() as session:
                check_held_id(session, collection, record_id)
        record = seen(adapter.read_one, collection, record_id, entry.row_filter)
    # Built without validation: every value is already checked (the record is the adapter's, fresh
    # for this call), and validating would copy the record (the hot path of data/read).
    return build(ReadResult, {"db_handle": entry.handle, "collection": collection, "id": params.id,
                              "data": record, "found": record is not None})  # fmt: skip


class UpdateParams(CollectionParams):
    id: RecordId
    """Record id."""
    data: PatchSpec
    """Fields to change (merged into the record at the top level)."""
    increment_version: bool = True
    """Add 1 to version."""
    expected_version: ExpectedVersion | None = None
    """Fail with 'conflict' unless the stored version is this (optimistic concurrency)."""
    suppress_events: bool = False
    """Do not publish data:<collection>:updated."""


class UpdateResult(RecordResult):
    found: bool = True
    previous_version: int | None
    """The version before the update; null on a table without a version column."""
    new_version: int | None
    """The version after it; null on a table without a version column."""


@command(
    "data/update",
    params=UpdateParams,
    result=UpdateResult,
    operation="write",
    summary="Merge fields into a record; optional expectedVersion for optimistic concurrency.",
    example="""jtag data/update --collection=training_examples --id=test-001 --data='{"label":"negative"}'""",
)
def data_update(service: Service, params: UpdateParams, call: Call) -> UpdateResult:
    collection = params.checked_collection()
    check_record_id(params.id, held=True)  # ``check_held_id`` once the table is known
    with service.lease(call) as (entry, adapter):
        decl = service.ensure_declared(adapter, collection)
        with adapter.session(write=True) as session:
            record, previous = update_record(
                session, collection, params.id, params.data, decl,
                increment_version=params.increment_version, expected_version=params.expected_version,
                row_filter=entry.row_filter,
            )  # fmt: skip
            # Built before the session commits, as in data/create.
            result = UpdateResult(
                db_handle=entry.handle, collection=collection, id=params.id, data=record,
                previous_version=previous, new_version=record_version(session, collection, record),
            )  # fmt: skip
    service.publish(entry, event_name(collection, "updated"),
                    {"collection": collection, "id": params.id, "record": record},
                    params.suppress_events)  # fmt: skip
    return result


class DeleteParams(CollectionParams):
    id: RecordId
    """Record id."""
    suppress_events: bool = False
    """Do not publish data:<collection>:deleted."""


class DeleteResult(DataResult):
    collection: str
    id: str
    found: bool
    deleted: bool


@command(
    "data/delete",
    params=DeleteParams,
    result=DeleteResult,
    operation="delete",
    summary="Delete a record by id; a missing record is success with found=false.",
    example="jtag data/delete --collection=training_examples test-001",
    positional="id",
)
def data_delete(service: Service, params: DeleteParams, call: Call) -> DeleteResult:
    collection = params.checked_collection()
    check_record_id(params.id, held=True)  # ``check_held_id`` once the table is known
    with (
        service.lease(call) as (entry, adapter),
        adapter.session(write=True) as session,
    ):
        deleted = delete_record(session, collection, params.id, entry.row_filter)
    if deleted:
        service.publish(entry, event_name(collection, "deleted"),
                        {"collection": collection, "id": params.id}, params.suppress_events)  # fmt: skip
    return DeleteResult(db_handle=entry.handle, collection=collection, id=params.id,
                        found=deleted, deleted=deleted)  # fmt: skip


class BatchOp(Params):
    # What each op needs: create data (with an id in data or in id, not both), update and delete id.
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["data"],
         "properties": {"op": {"const": "create"}, "id": {"type": "null"}, "data": ref("RecordData")}},
        {"required": ["id", "data"],
         "properties": {"op": {"const": "create"}, "data": ref("RecordPatch")}},
        {"required": ["id"], "properties": {"op": {"const": "update"}, "id": ref("RecordIdValue"),
                                            "data": {"anyOf": [ref("RecordPatch"), {"type": "null"}]}}},
        {"required": ["id"], "properties": {"op": {"const": "delete"}, "id": ref("RecordIdValue")}},
    ]})  # fmt: skip

    op: Literal["create", "update", "delete"]
    collection: CollectionName
    id: RecordId | None = None
    data: dict[str, Any] | None = None
    increment_version: bool = True
    expected_version: ExpectedVersion | None = None


class BatchParams(DataParams):
    operations: list[BatchOp] = Field(max_length=10_000)
    """List of {op: create|update|delete, collection, id, data, expectedVersion}; all or nothing."""
    suppress_events: bool = False
    """Do not publish events for the operations."""


class BatchResult(DataResult):
    results: list[dict[str, Any]]


@command(
    "data/batch",
    params=BatchParams,
    result=BatchResult,
    operation="write",
    summary="Apply a list of create/update/delete operations atomically (all or nothing).",
    example="""jtag data/batch --operations='[{"op":"create","collection":"notes","data":{"text":"a"}}]'""",
)
def data_batch(service: Service, params: BatchParams, call: Call) -> BatchResult:
    results: list[dict[str, Any]] = []
    events: list[tuple[str, dict[str, Any]]] = []
    with service.lease(call) as (entry, adapter):
        decls = {}
        for i, op in enumerate(params.operations):
            name = validate_collection(op.collection, f"operations[{i}].collection")
            if name.lower() not in decls:
                decls[name.lower()] = service.ensure_declared(adapter, name)
        with adapter.session(write=True) as session:
            for i, op in enumerate(params.operations):
                try:
                    results.append(
                        _apply(session, op, decls[op.collection.lower()], events, entry.row_filter)
                    )
                except DbHandlesError as exc:
                    exc.restate(f"operations[{i}] ({op.op}): ", "nothing was applied")
                    exc.field = _in_operation(i, exc.field)
                    raise
    for name, payload in events:
        service.publish(entry, name, payload, params.suppress_events)
    return BatchResult(db_handle=entry.handle, results=results)


def _in_operation(index: int, field: str | None) -> str:
    """``field`` (a place in one operation: ``collection``, ``data.a["b.c"]``, ``["x.y"]``) as
    the place in the batch's params: ``operations[1].collection``, ``operations[1]["x.y"]``."""
    where = item_path("operations", index)
    if not field:
        return where
    return f"{where}{field}" if field.startswith("[") else f"{where}.{field}"


def _apply(
    session: Any,
    op: BatchOp,
    decl: Any,
    events: list[tuple[str, dict[str, Any]]],
    row_filter: FilterNode | None,
) -> dict[str, Any]:
    collection = op.collection
    if op.op == "create":
        if op.data is None:
            raise InvalidParams("data: create needs data", field="data")
        record = create_record(session, collection, op.data, op.id, decl, row_filter=row_filter)
        record_id = str(id_text(record["id"]))
        events.append(
            (
                event_name(collection, "created"),
                {"collection": collection, "id": record_id, "record": record},
            )
        )
        return {"op": "create", "collection": collection, "id": record_id,
                "version": record_version(session, collection, record)}  # fmt: skip
    if op.id is None:
        raise InvalidParams(f"id: {op.op} needs an id", field="id")
    if op.op == "update":
        record, previous = update_record(
            session, collection, op.id, op.data or {}, decl,
            increment_version=op.increment_version, expected_version=op.expected_version,
            row_filter=row_filter,
        )  # fmt: skip
        events.append(
            (
                event_name(collection, "updated"),
                {"collection": collection, "id": op.id, "record": record},
            )
        )
        return {"op": "update", "collection": collection, "id": op.id, "previousVersion": previous,
                "newVersion": record_version(session, collection, record)}  # fmt: skip
    deleted = delete_record(session, collection, op.id, row_filter)
    if deleted:
        events.append((event_name(collection, "deleted"), {"collection": collection, "id": op.id}))
    return {"op": "delete", "collection": collection, "id": op.id, "deleted": deleted}
