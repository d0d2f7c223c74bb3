"""``data/list`` and the query cursors ``data/query-open``, ``query-next``, ``query-close``.

The cursors' life (open, next, close, expiry, sessions, closed handles) is ``query_cursors.QueryCursors``,
one per service (``service.cursors``); the handlers here parse params and shape results.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema

from dbhandles.adapters.base import Adapter, Session
from dbhandles.commands.base import (
    Call,
    DataParams,
    DataResult,
    Params,
    QueryHandle,
    Result,
    command,
)
from dbhandles.commands.fast_params import build, parse_filter_once
from dbhandles.commands.grammar import (
    MAX_COUNT,
    CollectionName,
    FieldsSpec,
    OptionalFilterSpec,
    OrderBySpec,
    SettingMaximum,
)
from dbhandles.commands.legacy_cursor import (
    KeyCursor,
    LegacyPosition,
    check_cursor,
    legacy_position,
)
from dbhandles.commands.records import CollectionParams
from dbhandles.commands.selection import (
    SampleSize,
    Seed,
    SplitSpec,
    add_seed_rule,
    sampling_of,
)
from dbhandles.context import Context
from dbhandles.errors import AccessDenied, CursorNotFound, HandleNotFound, InvalidParams
from dbhandles.filters import (
    SortKey,
    parse_fields,
    parse_order_by,
)
from dbhandles.paging import (
    and_filters,
    check_shape,
    count_matching,
    decode_token,
    encode_token,
    fetch_page,
    shape_of,
    token_shape,
)
from dbhandles.query_cursors import CursorPage
from dbhandles.registry import HandleEntry
from dbhandles.security.redaction import restricted
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["ListParams", "QueryCloseParams", "QueryNextParams", "QueryOpenParams"]

#: A ``nextCursor``: opaque, and only valid with the ``orderBy`` of the list that returned it.
CURSOR_TOKEN = {"type": "string", "format": "dbh-cursor"}


class ListParams(CollectionParams):
    model_config = ConfigDict(json_schema_extra=add_seed_rule)

    filter: OptionalFilterSpec = None
    """Mongo-style filter, e.g. {"metadata.qualityScore": {"$gte": 0.8}}."""
    order_by: OrderBySpec = None
    """List of {field, direction}; a bare 'name' or '-name' is a shorthand. id breaks ties."""
    limit: Annotated[int, Field(ge=0, le=MAX_COUNT), SettingMaximum("max_limit")] | None = None
    """Page size (default 100, at most 500); 0 returns only the count."""
    fields: FieldsSpec = None
    """Projection: only these (dotted) fields, plus id."""
    cursor: Annotated[
        Annotated[str, WithJsonSchema(CURSOR_TOKEN)] | KeyCursor | None,
        BeforeValidator(check_cursor),
    ] = None
    """nextCursor from the previous page (or {field, value, direction})."""
    skip_count: bool = False
    """Do not compute count (faster on big collections)."""
    sample: SampleSize | None = None
    """Keep a deterministic random sample of this many matching records (same seed, same sample)."""
    seed: Seed = 0
    """The sample's seed."""
    split: SplitSpec | None = None
    """Keep one part of a deterministic split by id, e.g. {"name": "train", "fractions": {"train": 0.8, "test": 0.2}}."""


class ListResult(DataResult):
    json_fields = ("items",)

    collection: str
    items: list[dict[str, Any]]
    count: int | None
    has_more: bool
    next_cursor: str | None = None
    #: Rows of the collection left out as no record dbhandles can read (another tool wrote them:
    #: docs/filters.md "Values"); ``count`` never counts them. ``null`` with ``skipCount``, and for
    #: a handle with a row filter, which hides such rows as missing ones (docs/security.md).
    unreadable: int | None = None


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


#: ``paging.shape_of`` as found, by ``(the session's schema stamp, how the table's rows are named,
#: collection, order)`` (``_shape``).
_SHAPES: dict[tuple[Hashable, Hashable, str, tuple[SortKey, ...]], str | None] = {}
_MAX_SHAPES = 256


def _shape(
    adapter: Adapter, session: Session, collection: str, order: tuple[SortKey, ...]
) -> str | None:
    """``paging.shape_of(session, collection, order)``, kept per schema: a fingerprint depends only
    on the table's description, which is the same under the same ``Adapter.schema_stamp`` (a
    session whose adapter cannot tell one describes the table again). A change of the schema (a column
    added, the table re-created or replaced by a view) gives another stamp, so it is seen by
    the next call; nothing about access is kept here."""
    stamp = adapter.schema_stamp(session)
    if stamp is None:
        return shape_of(session, collection, order)
    # A table served by rowid while its key holds NULL (and by its key again once it does not)
    # has another fingerprint under the same schema (``Session.row_naming``).
    key = (stamp, session.row_naming(collection), collection, order)
    try:
        return _SHAPES[key]
    except KeyError:
        pass
    shape = shape_of(session, collection, order)
    if len(_SHAPES) >= _MAX_SHAPES:  # bounded; a stamp holds its catalog, so no id is reused
        _SHAPES.clear()
    _SHAPES[key] = shape
    return shape


#: ``parse_order_by`` of ``None`` and of a text (pure; its trees are immutable), by the value.
_ORDERS: dict[str | None, tuple[SortKey, ...]] = {}


def _order(spec: object) -> tuple[SortKey, ...]:
    """``parse_order_by(spec)``, remembered for ``None`` and texts (a refusal is never kept).

    Raises:
        InvalidFilter: as ``parse_order_by``.
    """
    if spec is not None and type(spec) is not str:
        return parse_order_by(spec)
    found = _ORDERS.get(spec)
    if found is None:
        found = parse_order_by(spec)
        if len(_ORDERS) >= _MAX_SHAPES:
            _ORDERS.clear()
        _ORDERS[spec] = found
    return found


@command(
    "data/list",
    params=ListParams,
    result=ListResult,
    operation="read",
    summary="List records with a filter, sort, projection and keyset paging (nextCursor).",
    example="""jtag data/list --collection=training_examples --filter='{"metadata.qualityScore":{"$gte":0.8}}' --limit=10""",
)
def data_list(service: Service, params: ListParams, call: Call) -> ListResult:
    collection = params.checked_collection()
    limit = _limit(service, params.limit, service.settings.default_limit, "limit")
    filter_node = parse_filter_once(params.filter)  # parsed as the params were, not again
    order = _order(params.order_by)
    fields = parse_fields(params.fields)
    sampling = sampling_of(params.sample, params.seed, params.split)
    after = None
    legacy: LegacyPosition | None = None
    if isinstance(params.cursor, str):
        after = decode_token(params.cursor, order)
    elif isinstance(params.cursor, KeyCursor):
        legacy = legacy_position(params.cursor, params.order_by)
        order, after = legacy.order, legacy.after
    with service.lease(call) as (entry, adapter), adapter.session() as session:
        filter_node = and_filters(entry.row_filter, filter_node)
        if legacy is not None:  # the id placed as the table's rows hold it
            after = legacy.place(session, collection, filter_node)
        shape = None
        if isinstance(params.cursor, str):  # a table replaced or altered since: refused (paging)
            shape = _shape(adapter, session, collection, order)
            check_shape(token_shape(params.cursor), shape, collection, "cursor",
                        "list again without cursor")  # fmt: skip
        items: list[dict[str, Any]] = []
        last, has_more = None, False
        if limit > 0:
            items, last, has_more = fetch_page(
                session, collection, filter_node, order, limit, after, fields, sampling
            )
        if has_more and shape is None and not isinstance(params.cursor, str):
            shape = _shape(adapter, session, collection, order)
        # As in the original, count is every match, not what is left after the cursor.
        count = (
            None
            if params.skip_count
            else count_matching(session, collection, filter_node, sampling)
        )
        hidden = params.skip_count or entry.row_filter is not None
        unreadable = None if hidden else session.unreadable(collection)
    # Built without validation, as data/read's: the items are the adapter's records, fresh for this
    # call, and validating would copy every one of them (a page of 2 KB records: ~0.1 ms).
    return build(ListResult, {
        "db_handle": entry.handle, "collection": collection, "items": items, "count": count,
        "has_more": has_more,
        "next_cursor": encode_token(order, last, shape) if has_more and last is not None else None,
        "unreadable": unreadable,
    })  # fmt: skip


# -- query cursors ---------------------------------------------------------------------------------


class QueryOpenParams(CollectionParams):
    model_config = ConfigDict(json_schema_extra=add_seed_rule)

    filter: OptionalFilterSpec = None
    """Mongo-style filter."""
    order_by: OrderBySpec = None
    """Sort; default createdAt descending. id breaks ties."""
    page_size: Annotated[int, Field(ge=1, le=MAX_COUNT), SettingMaximum("max_limit")] | None = None
    """Rows per query-next (default 100, at most 500)."""
    fields: FieldsSpec = None
    """Projection: only these fields, plus id."""
    sample: SampleSize | None = None
    """Page a deterministic random sample of this many matching records."""
    seed: Seed = 0
    """The sample's seed."""
    split: SplitSpec | None = None
    """Page one part of a deterministic split by id (as data/list)."""


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
def data_query_open(service: Service, params: QueryOpenParams, call: Call) -> QueryOpenResult:
    context = call.context
    collection = params.checked_collection()
    page_size = _limit(service, params.page_size, service.settings.query_page_size, "pageSize")
    filter_node = parse_filter_once(params.filter)
    order = _order(params.order_by if params.order_by is not None else "desc")
    parse_fields(params.fields)
    sampling = sampling_of(params.sample, params.seed, params.split)
    # Non-admin actors hold a limited number of cursors; a too large spec is refused before the count.
    owner = None if context.is_admin else context.actor
    service.cursors.check(params.filter, order, params.fields, owner)
    with service.lease(call) as (entry, adapter), adapter.session() as session:
        total = count_matching(
            session, collection, and_filters(entry.row_filter, filter_node), sampling
        )
        shape = _shape(adapter, session, collection, order)
    row = service.cursors.open(
        entry, collection, filter=params.filter, order=order, fields=params.fields,
        page_size=page_size, total_count=total, session_id=context.session_id, owner=owner,
        sampling=sampling, shape=shape,
    )  # fmt: skip
    return QueryOpenResult(db_handle=entry.handle, query_handle=row.cursor_id, collection=collection,
                           total_count=total, page_size=page_size)  # fmt: skip


class QueryNextParams(DataParams):
    query_handle: QueryHandle
    """The queryHandle from data/query-open."""
    collection: CollectionName | None = None
    """The cursor's collection, as the original sends it: checked, a different one is refused."""


class QueryNextResult(DataResult):
    json_fields = ("items",)

    query_handle: str
    collection: str
    items: list[dict[str, Any]]
    page_number: int
    has_more: bool
    total_count: int


def cursor_target(
    service: Service, params: QueryNextParams | QueryCloseParams, context: Context
) -> HandleEntry:
    """The target of query-next: the handle the cursor was opened on (a ``dbHandle`` the caller
    names must be that handle), so it is what is authorised and audited.

    Raises:
        CursorNotFound: unknown, closed, expired, another session's, or another handle's.
        InvalidParams: ``collection`` names another collection than the cursor's.
    """
    row = service.cursors.get(params.query_handle, context.session_id)
    if params.collection is not None and params.collection.lower() != row.collection.lower():
        raise InvalidParams(
            f"collection: this query is over {json_text(row.collection, 80)}, not {json_text(params.collection, 80)}",
            field="collection",
        )
    if params.db_handle is not None:
        try:  # as the caller names handles: its own aliases are per actor (handle_entry.alias_key)
            named = service.registry.resolve_for(
                params.db_handle, context.actor, context.is_admin
            ).handle
        except (HandleNotFound, AccessDenied):
            named = None
        if named != row.handle:
            raise CursorNotFound(
                "queryHandle: this query belongs to another dbHandle", field="queryHandle"
            )
    try:
        return service.registry.resolve(row.handle)
    except HandleNotFound as exc:
        raise CursorNotFound("queryHandle: its dbHandle was closed", field="queryHandle") from exc


def closing_cursor_target(
    service: Service, params: QueryCloseParams, context: Context
) -> HandleEntry | None:
    """The target of query-close: the cursor's handle, or none for a cursor that is already gone
    (closing is idempotent)."""
    try:
        return cursor_target(service, params, context)
    except CursorNotFound:
        return None


@command(
    "data/query-next",
    params=QueryNextParams,
    result=QueryNextResult,
    target=cursor_target,
    operation="read",
    summary="Fetch the next page of a cursor; past the end it returns an empty page.",
    example='jtag data/query-next --queryHandle="<UUID>"',
)
def data_query_next(service: Service, params: QueryNextParams, call: Call) -> QueryNextResult:
    # The dispatcher authorised the cursor's own handle (``cursor_target``), not just the one named.
    # The handle the caller named is the cursor's (``cursor_target`` checked it, aliases resolved
    # as the caller names them): its id is passed on.
    named = call.target.handle if params.db_handle is not None and call.target else None
    if call.target is not None and restricted(call.target):
        # What the cursor's collection reaches may have changed since query-open (a policy
        # added): decided again, and checked in the page's transaction (``recheck``).
        # Imported here: only a restricted handle's next page needs it (a listing never does).
        from dbhandles.commands.recheck import AccessWatch, Use

        collection = service.cursors.get(params.query_handle, call.context.session_id).collection
        AccessWatch(service, call.context, "data/query-next",
                    [Use(call.target, "read", collection)])()  # fmt: skip
    page = service.cursors.next(params.query_handle, call.context.session_id, handle_name=named)
    return _page(page)


def _page(page: CursorPage) -> QueryNextResult:
    row = page.cursor
    return QueryNextResult(db_handle=row.handle, query_handle=row.cursor_id, collection=row.collection,
                           items=page.items, page_number=page.page_number, has_more=page.has_more,
                           total_count=row.total_count)  # fmt: skip


class QueryCloseParams(DataParams):
    query_handle: QueryHandle
    """The queryHandle to close (closing twice is fine)."""
    collection: CollectionName | None = None
    """The cursor's collection, as the original sends it: checked, a different one is refused."""


class QueryCloseResult(Result):
    query_handle: str
    closed: bool


@command(
    "data/query-close",
    params=QueryCloseParams,
    result=QueryCloseResult,
    target=closing_cursor_target,
    operation="read",
    summary="Close a cursor (idempotent: closing an unknown or closed cursor succeeds with closed=false).",
    example='jtag data/query-close --queryHandle="<UUID>"',
)
def data_query_close(service: Service, params: QueryCloseParams, call: Call) -> QueryCloseResult:
    context = call.context
    closed = service.cursors.close(params.query_handle, context.session_id)
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
def session_end(service: Service, params: SessionEndParams, call: Call) -> SessionEndResult:
    context = call.context
    closed = service.end_session(context.session_id) if context.session_id is not None else 0
    return SessionEndResult(cursors_closed=closed)
