"""Checks of a call through a restricted handle that the database itself would widen: foreign-key
actions and triggers reaching other tables, row filters naming fields a table does not serve or
tested on rows a view computes from other tables' rows (``policy.authorize``)."""

from __future__ import annotations

from dbhandles.adapters.foreign_cascades import UNKNOWN
from dbhandles.adapters.foreign_common import ColumnPaths
from dbhandles.errors import PermissionDenied
from dbhandles.filters import FilterNode, top_fields
from dbhandles.security.permissions import Permissions, ResolvedName
from dbhandles.values import json_text

__all__ = [
    "check_cascades",
    "check_row_filter_fields",
    "check_row_filter_view",
    "row_filter_derived_refusal",
    "row_filter_view_refusal",
]


def check_cascades(
    permissions: Permissions,
    row_filter: bool,
    name: str,
    reached: tuple[tuple[str, str, str], ...],
    names: dict[str, ResolvedName],
) -> None:
    """Refuse a delete (or a key update) of ``name`` whose foreign-key actions would write a table
    this handle may not reach (``reached``: ``(table, key, action)``), or, under a row filter, any
    table at all: the database writes those rows itself, past every check of dbhandles
    (docs/security.md "Threat model")."""
    for table, key, action in reached:
        # A foreign key's action is ``ON DELETE CASCADE``...; a trigger's, ``trigger 'x' (...)``.
        how = f"a foreign key declared {action}" if action.startswith("ON ") else action
        if table == UNKNOWN:
            raise PermissionDenied(
                f"Permission denied: writing {json_text(name, 80)} runs {how}, a trigger function or rule whose "
                "writes dbhandles cannot know (PostgreSQL does not record what a function body "
                "writes), "
                "and this handle may reach only some tables or rows; nothing was done (write "
                "through a handle without allowedCollections, deniedCollections or rowFilter)"
            )
        why = permissions.collection_refusal(table, {**names, table: ResolvedName(table, key)})
        if why is None and row_filter:
            why = "this handle's row filter cannot restrict what the database writes there"
        if why is not None:
            raise PermissionDenied(
                f"Permission denied: writing {json_text(name, 80)} reaches table {json_text(table, 80)} through {how}, "
                f"and {why}; nothing was done"
            )


def check_row_filter_fields(row_filter: FilterNode, table: str, fields: frozenset[str]) -> None:
    """A row filter is a ceiling: a field it names that this table does not serve (a column
    served under another name with ``fieldNames: camel``, a filter written in the other naming,
    a column that is not there) would be missing on every row, and ``$ne``/``$nin``/``$exists:
    false`` would then let every row through. Refused rather than evaluated."""
    dotted = ColumnPaths(fields)
    if dotted.dotted and repr(dotted.filter(row_filter)) != repr(row_filter):
        # Its SQL would test the column ``a.b`` but the checks in Python (``documents``) the path
        # a -> b: refused rather than read two ways (docs/foreign-tables.md "Names").
        raise PermissionDenied(
            f"Permission denied: this handle's row filter names a column of table {json_text(table, 80)} "
            "whose name holds '.', which row filters cannot name yet"
        )
    for field in sorted(top_fields(row_filter)):
        if field != "id" and field not in fields:
            raise PermissionDenied(
                f"Permission denied: this handle's row filter names the field {json_text(field, 80)}, which "
                f"table {json_text(table, 80)} does not serve under this handle's field names; a row "
                "filter is tested on the fields as the handle serves them: open the database "
                "with the fieldNames the filter was written for"
            )


def row_filter_view_refusal(name: str, kind: str) -> str:
    """Why a row-filtered handle may not read ``name``, a ``kind`` (``view``, ``virtual table``...)
    whose rows are computed from other tables' rows (the words ``data/schema`` shows too)."""
    return (
        f"Permission denied: {kind} {json_text(name, 80)} computes its rows from other tables' rows "
        "in SQL of its own, and this handle's row filter could be tested only on the rows it "
        "computes (a constant column passes any filter), not on the rows it reads; it is refused "
        'to a handle with a rowFilter (docs/security.md "Row filters and views")'
    )


def row_filter_derived_refusal(name: str, source: str, how: str) -> str:
    """Why a row-filtered handle may not reach ``name``, a table the database writes values
    into from the rows of ``source`` (``how``: ``trigger 'x'``, ``ON UPDATE CASCADE``)."""
    through = how if how.startswith("trigger") else f"a foreign key declared {how}"
    return (
        f"Permission denied: table {json_text(name, 80)} holds values the database writes from "
        f"the rows of table {json_text(source, 80)} ({through}), and this handle's row filter "
        "cannot be applied to the rows they were made from; it is refused to a handle with a "
        'rowFilter (docs/security.md "Row filters and views")'
    )


def check_row_filter_view(name: str, found: ResolvedName) -> None:
    """Refuse, to a row-filtered handle, a table whose rows come from other tables' rows through
    SQL of its own (a view, a virtual table reading its content table: ``found.reads``) or that
    the database writes from other tables' rows (a trigger, ``ON UPDATE CASCADE``:
    ``found.derived``): its rows cannot be filtered as the rows they come from (docs/security.md
    "Row filters and views").

    Raises:
        PermissionDenied: ``found`` reads another table or view, or is written from one.
    """
    if found.reads:
        raise PermissionDenied(row_filter_view_refusal(name, found.kind or "view"))
    if found.derived:
        source, how = found.derived[0]
        raise PermissionDenied(row_filter_derived_refusal(name, source, how))
