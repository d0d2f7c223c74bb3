"""``data/count``: how many records match, and how many per value of one or more fields (facets)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from dbhandles.commands.base import Call, DataResult, Result, command
from dbhandles.commands.grammar import (
    FIELD_PATH_PATTERN,
    MAX_COUNT,
    OptionalFilterSpec,
    SettingMaximum,
)
from dbhandles.commands.records import CollectionParams
from dbhandles.errors import InvalidParams
from dbhandles.filters import RESERVED_FIELDS, parse_filter, validate_path
from dbhandles.paging import and_filters
from dbhandles.values import item_path, json_text

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["CountParams", "CountResult"]

#: The most ``groupBy`` fields one count may combine.
MAX_GROUP_FIELDS = 4


def _check_group_path(value: str) -> str:
    validate_path(value, "groupBy")
    return value


#: A path to count by: a field path that is not a system field (``_group_paths`` refuses those).
_GROUP_PATH = {
    "type": "string",
    "pattern": "^(?!(?:" + "|".join(sorted(RESERVED_FIELDS)) + ")$)" + FIELD_PATH_PATTERN[1:],
}
GroupPath = Annotated[str, AfterValidator(_check_group_path), WithJsonSchema(_GROUP_PATH)]
GroupBySpec = Annotated[
    list[GroupPath],
    Field(min_length=1, max_length=MAX_GROUP_FIELDS, json_schema_extra={"uniqueItems": True}),
]


def _check_group_by(value: object) -> object:
    """The shape of ``groupBy``, checked first: a union's own errors name its branches
    (``function-after[...]``), not what the caller should send; a bad path of a list is named by
    its index (``groupBy[1]``), as every list parameter's element is."""
    if value is None:
        return value
    if isinstance(value, str):
        validate_path(value, "groupBy")
        return value
    if isinstance(value, list) and 1 <= len(value) <= MAX_GROUP_FIELDS:
        for i, item in enumerate(value):
            where = item_path("groupBy", i)
            if not isinstance(item, str):
                raise InvalidParams(f"{where}: a field path is a string, got {json_text(item, 80)}",
                                    field=where)  # fmt: skip
            validate_path(item, where)
        return value
    # What the caller sent, quoted as JSON (``3``, ``null``), never as Python names it.
    got = json_text(value, 80) if not isinstance(value, list) else f"a list of {len(value)}"
    raise InvalidParams(
        f"groupBy: 1 to {MAX_GROUP_FIELDS} field paths, as one string or a list of strings "
        f'("metadata.topics", ["metadata.source", "metadata.topics"]); got {got}',
        field="groupBy",
    )


class CountParams(CollectionParams):
    filter: OptionalFilterSpec = None
    """Mongo-style filter (as data/list); only matching records are counted."""
    group_by: Annotated[GroupPath | GroupBySpec | None, BeforeValidator(_check_group_by)] = None
    """Count per value of this field, or of these fields (at most 4; dotted paths; an array counts each element)."""
    limit: Annotated[int, Field(ge=1, le=MAX_COUNT), SettingMaximum("max_limit")] | None = None
    """Most groups returned (default 100, at most 500), most frequent first."""


class CountGroup(Result):
    key: dict[str, Any]
    """The value of each groupBy field (null for missing, null or an empty array)."""
    count: int


class CountResult(DataResult):
    collection: str
    total: int
    """Records matching the filter."""
    groups: list[CountGroup]
    """Most frequent first, ties by value; empty without groupBy."""
    group_count: int
    """Distinct groups before the limit (more than len(groups) when the limit cut some off)."""


def _group_paths(spec: str | list[str] | None) -> tuple[tuple[str, ...], ...]:
    names = [spec] if isinstance(spec, str) else list(spec or [])
    paths: list[tuple[str, ...]] = []
    for i, name in enumerate(names):
        where = "groupBy" if isinstance(spec, str) else f"groupBy[{i}]"
        path = validate_path(name, where)
        if path[0] in RESERVED_FIELDS:
            raise InvalidParams(
                f"{where}: {json_text(name, 80)} is a system field; count per values of the "
                "record's own fields",
                field=where,
            )
        if path in paths:
            raise InvalidParams(f"{where}: {json_text(name, 80)} is named twice", field=where)
        paths.append(path)
    return tuple(paths)


@command(
    "data/count",
    params=CountParams,
    result=CountResult,
    operation="read",
    summary="Count matching records, or count them per value of fields (facets: each array element counts).",
    example="""jtag data/count --collection=training_examples --groupBy=metadata.topics --filter='{"metadata.qualityScore":{"$gte":0.8}}'""",
)
def data_count(service: Service, params: CountParams, call: Call) -> CountResult:
    """One query on every adapter: ``Session.count`` without ``groupBy``, ``Session.group_count``
    with it (the rule is ``adapters.facets``). The handle's row filter applies as in data/list.

    Raises:
        InvalidParams: a bad ``groupBy``, a ``limit`` over ``max_limit``, or a field whose values
            are objects.
        InvalidFilter: a bad filter.
    """
    collection = params.checked_collection()
    group_by = _group_paths(params.group_by)
    limit = params.limit if params.limit is not None else service.settings.default_limit
    if limit > service.settings.max_limit:
        raise InvalidParams(f"limit: at most {service.settings.max_limit} groups", field="limit")
    filter_node = parse_filter(params.filter)
    with service.lease(call) as (entry, adapter), adapter.session() as session:
        filter_node = and_filters(entry.row_filter, filter_node)
        if not group_by:
            total = session.count(collection, filter_node)
            return CountResult(db_handle=entry.handle, collection=collection, total=total,
                               groups=[], group_count=0)  # fmt: skip
        counts = session.group_count(collection, filter_node, group_by, limit)
    names = [".".join(p) for p in group_by]
    groups = [
        CountGroup(key=dict(zip(names, key, strict=True)), count=n) for key, n in counts.groups
    ]
    return CountResult(db_handle=entry.handle, collection=collection, total=counts.total,
                       groups=groups, group_count=counts.group_count)  # fmt: skip
