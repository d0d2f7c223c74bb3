"""``data/list`` and the query cursors ``data/query-open``, ``query-next``, ``query-close``."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from dbhandles.clock import now_ms
from dbhandles.commands.base import (
    COMMANDS,
    Context,
    DataParams,
    DataResult,
    Params,
    Result,
    command,
)
from dbhandles.commands.records import CollectionParams
from dbhandles.errors import CursorNotFound, HandleNotFound, InvalidParams
from dbhandles.filters import (
    Compare,
    FilterNode,
    parse_fields,
    parse_filter,
    parse_order_by,
    validate_path,
)
from dbhandles.paging import and_filters, decode_token, encode_token, fetch_page
from dbhandles.security.policy import authorize
from dbhandles.store import CursorRow

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["ListParams", "QueryCloseParams", "QueryNextParams", "QueryOpenParams"]


class KeyCursor(Params):
    """The original system's cursor: rows whose ``field`` is after/before ``value``."""

    field: str
    value: str | int | float | bool
    direction: Literal["after", "before"] = "after"


class ListParams(CollectionParams):
    filter: dict[str, Any] | None = None
    """Mongo-style filter, e.g. {"metadata.qualityScore": {"$gte": 0.8}}."""
    order_by: list[Any] | str | dict[str, Any] | None = None
    """List of {field, direction}; a bare 'name' or '-name' is a shorthand. id breaks ties."""
    limit: int | None = Field(default=None, ge=0)
    """Page size (default 100, at most 500); 0 returns only the count."""
    fields: list[str] | str | None = None
    """Projection: only these (dotted) fields, plus id."""
    cursor: str | KeyCursor | None = None
    """nextCursor from the previous page (or {field, value, direction})."""
    skip_count: bool = False
    """Do not compute count (faster on big collections)."""


class ListResult(DataResult):
    collection: str
    items: list[dict[str, Any]]
    count: int | None
    has_more: bool
    next_cursor: str | None = None


def _limit(service: Service, value: int | None, default: int, field: str) -> int:
    if value is None:
        return default
    if value > service.settings.max_limit:
        raise InvalidParams(
            f"{field}: at most {service.settings.max_limit} per page; page with nextCursor or "
            "data/query-open for more",
            field=field,
        )
    return value


@command(
    "data/list",
    params=ListParams,
    result=ListResult,
    operation="read",
    summary="List records with a filter, sort, projection and keyset paging (nextCursor).",
    example="""jtag data/list --collection=training_examples --filter='{"metadata.qualityScore":{"$gte":0.8}}' --limit=10""",
)
def data_list(service: Service, params: ListParams, context: Context) -> ListResult:
    collection = params.checked_collection()
    limit = _limit(service, params.limit, service.settings.default_limit, "limit")
    filter_node = parse_filter(params.filter)
    order = parse_order_by(params.order_by)
    fields = parse_fields(params.fields)
    after = None
    extra: FilterNode | None = None
    if isinstance(params.cursor, str):
        after = decode_token(params.cursor, order)
    elif isinstance(params.cursor, KeyCursor):
        path = validate_path(params.cursor.field, "cursor.field")
        extra = Compare(
            path, "gt" if params.cursor.direction == "after" else "lt", params.cursor.value
        )
    with service.lease(params, context) as (entry, adapter), adapter.session() as session:
        filter_node = and_filters(entry.row_filter, filter_node)
        items: list[dict[str, Any]] = []
        last, has_more = None, False
        if limit > 0:
            items, last, has_more = fetch_page(
                session, collection, and_filters(filter_node, extra), order, limit, after, fields
            )
        count = (
            None
            if params.skip_count
            else session.count(collection, and_filters(filter_node, extra))
        )
    return ListResult(
        db_handle=entry.handle, collection=collection, items=items, count=count, has_more=has_more,
        next_cursor=encode_token(order, last) if has_more and last is not None else None,
    )  # fmt: skip


# -- query cursors ---------------------------------------------------------------------------------

# Striped locks: calls on one cursor take turns in this process (the store's compare-and-swap covers
# other processes) without a lock per cursor that would have to be cleaned up when cursors expire.
_CURSOR_LOCKS = tuple(threading.Lock() for _ in range(64))


def _lock_for(cursor_id: str) -> threading.Lock:
    return _CURSOR_LOCKS[hash(cursor_id) % len(_CURSOR_LOCKS)]


class QueryOpenParams(CollectionParams):
    filter: dict[str, Any] | None = None
    """Mongo-style filter."""
    order_by: list[Any] | str | dict[str, Any] | None = None
    """Sort; default createdAt descending. id breaks ties."""
    page_size: int | None = Field(default=None, ge=1)
    """Rows per query-next (default 100, at most 500)."""
    fields: list[str] | str | None = None
    """Projection: only these fields, plus id."""


class QueryOpenResult(DataResult):
    query_handle: str
    collection: str
    total_count: int
    page_size: int


@command(
    "data/query-open",
    params=QueryOpenParams,
    result=QueryOpenResult,
    operation="read",
    summary="Open a server-side cursor over a query; page it with data/query-next.",
    example="jtag data/query-open --collection=training_examples --pageSize=50",
)
def data_query_open(service: Service, params: QueryOpenParams, context: Context) -> QueryOpenResult:
    collection = params.checked_collection()
    page_size = _limit(service, params.page_size, service.settings.query_page_size, "pageSize")
    filter_node = parse_filter(params.filter)
    order = parse_order_by(params.order_by if params.order_by is not None else "desc")
    parse_fields(params.fields)
    with service.lease(params, context) as (entry, adapter), adapter.session() as session:
        total = session.count(collection, and_filters(entry.row_filter, filter_node))
    spec_filter = params.filter
    if entry.permissions is not None and entry.permissions.row_filter:
        row = entry.permissions.row_filter
        spec_filter = {"$and": [params.filter, row]} if params.filter else row
    now = now_ms()
    store = service.registry.store
    store.expire_cursors(now)
    row = CursorRow(
        cursor_id=str(uuid.uuid4()), handle=entry.handle, collection=collection,
        spec={"filter": spec_filter, "orderBy": [k.to_wire() for k in order], "fields": params.fields},
        position=None, page_number=0, total_count=total, page_size=page_size, exhausted=False,
        session_id=context.session_id, expires_at=now + int(service.settings.cursor_ttl_seconds * 1000),
    )  # fmt: skip
    if entry.durable:
        store.put_cursor(row)
    else:
        service.local_cursors[row.cursor_id] = row
    return QueryOpenResult(db_handle=entry.handle, query_handle=row.cursor_id, collection=collection,
                           total_count=total, page_size=page_size)  # fmt: skip


class QueryNextParams(DataParams):
    query_handle: str
    """The queryHandle from data/query-open."""


class QueryNextResult(DataResult):
    query_handle: str
    collection: str
    items: list[dict[str, Any]]
    page_number: int
    has_more: bool
    total_count: int


def _get_cursor(service: Service, cursor_id: str, context: Context) -> CursorRow:
    row = service.local_cursors.get(cursor_id) or service.registry.store.get_cursor(cursor_id)
    if row is not None and row.session_id != context.session_id:
        row = None  # another session's cursor is invisible, not merely forbidden
    if row is None:
        raise CursorNotFound(f"queryHandle: no open query {cursor_id!r} (closed, expired, or its "
                             "handle was closed)", field="queryHandle")  # fmt: skip
    if row.expires_at < now_ms():
        _drop_cursor(service, cursor_id)
        raise CursorNotFound(
            f"queryHandle: query {cursor_id!r} expired after being idle", field="queryHandle"
        )
    return row


def _drop_cursor(service: Service, cursor_id: str) -> bool:
    local = service.local_cursors.pop(cursor_id, None) is not None
    return service.registry.store.delete_cursor(cursor_id) or local


@command(
    "data/query-next",
    params=QueryNextParams,
    result=QueryNextResult,
    operation="read",
    summary="Fetch the next page of a cursor; past the end it returns an empty page.",
    example='jtag data/query-next --queryHandle="<UUID>"',
)
def data_query_next(service: Service, params: QueryNextParams, context: Context) -> QueryNextResult:
    with _lock_for(params.query_handle):
        while True:
            row = _get_cursor(service, params.query_handle, context)
            if params.db_handle is not None:
                try:
                    named = service.registry.resolve(params.db_handle).handle
                except HandleNotFound:
                    named = None
                if named != row.handle:
                    raise CursorNotFound("queryHandle: this query belongs to another dbHandle",
                                         field="queryHandle")  # fmt: skip
            if row.exhausted:
                return _page(row, [], row.page_number, False)
            items, last, has_more = _serve_page(service, row, params, context)
            new = CursorRow(
                **{**_fields(row), "position": [list(p) for p in last] if last else row.position,
                   "page_number": row.page_number + 1, "exhausted": not has_more,
                   "expires_at": now_ms() + int(service.settings.cursor_ttl_seconds * 1000)},
            )  # fmt: skip
            if row.cursor_id in service.local_cursors:
                service.local_cursors[row.cursor_id] = new
                return _page(row, items, row.page_number, has_more)
            # Compare-and-swap: another process may have served this page; then read the next one.
            if service.registry.store.advance_cursor(row, new):
                return _page(row, items, row.page_number, has_more)


def _serve_page(
    service: Service, row: CursorRow, params: QueryNextParams, context: Context
) -> tuple[list[dict[str, Any]], tuple[tuple[int, Any], ...] | None, bool]:
    order = parse_order_by(row.spec["orderBy"])
    after = tuple((int(r), v) for r, v in row.position) if row.position is not None else None
    try:
        entry = service.registry.resolve(row.handle)
        # The cursor's own handle is checked too (isolation, read permission), not just the one named.
        authorize(COMMANDS["data/query-next"], params, context, entry)
        with service.registry.lease(entry) as (_entry, adapter), adapter.session() as session:
            return fetch_page(
                session, row.collection, parse_filter(row.spec["filter"]), order, row.page_size,
                after, parse_fields(row.spec["fields"]),
            )  # fmt: skip
    except HandleNotFound as exc:
        _drop_cursor(service, row.cursor_id)
        raise CursorNotFound("queryHandle: its dbHandle was closed", field="queryHandle") from exc


def _fields(row: CursorRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in CursorRow.__dataclass_fields__}


def _page(
    row: CursorRow, items: list[dict[str, Any]], page: int, has_more: bool
) -> QueryNextResult:
    return QueryNextResult(db_handle=row.handle, query_handle=row.cursor_id, collection=row.collection,
                           items=items, page_number=page, has_more=has_more,
                           total_count=row.total_count)  # fmt: skip


class QueryCloseParams(DataParams):
    query_handle: str
    """The queryHandle to close (closing twice is fine)."""


class QueryCloseResult(Result):
    query_handle: str
    closed: bool


@command(
    "data/query-close",
    params=QueryCloseParams,
    result=QueryCloseResult,
    operation="read",
    summary="Close a cursor (idempotent: closing an unknown or closed cursor succeeds with closed=false).",
    example='jtag data/query-close --queryHandle="<UUID>"',
)
def data_query_close(
    service: Service, params: QueryCloseParams, context: Context
) -> QueryCloseResult:
    try:
        _get_cursor(service, params.query_handle, context)
    except CursorNotFound:
        return QueryCloseResult(query_handle=params.query_handle, closed=False)
    closed = _drop_cursor(service, params.query_handle)
    return QueryCloseResult(query_handle=params.query_handle, closed=closed)


class SessionEndParams(Params):
    pass


class SessionEndResult(Result):
    cursors_closed: int


@command(
    "session/end",
    params=SessionEndParams,
    result=SessionEndResult,
    operation="read",
    summary="End the caller's session: close every query cursor it opened.",
    example="jtag session end",
)
def session_end(service: Service, params: SessionEndParams, context: Context) -> SessionEndResult:
    closed = service.end_session(context.session_id) if context.session_id is not None else 0
    return SessionEndResult(cursors_closed=closed)
