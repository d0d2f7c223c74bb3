"""The memory a ``data/count`` with ``groupBy`` may answer: its group keys stop at ``MAX_GROUP_BYTES``.

A group's key holds each grouped field's whole value: 23 records holding different 9 MiB strings,
grouped by that field, answered 217 MB (4.5 GB with ``limit: 500``) and took 1.27 GB of the
server. The keys of one answer are bounded as a page's values are (``sqlite_pages.MAX_PAGE_BYTES``,
128 MiB): the SQL adapters count them as rows are read (``fetch_groups``), so no more is held; the
adapters counting in Python (memory, JSON, a table dbhandles did not create) count the keys kept
(``bound_groups``). Either answers ``query_failed`` naming the collection, the bound and the
largest ``limit`` that passes (docs/counting.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from dbhandles.adapters.facets import GroupCounts
from dbhandles.dbfiles import MAX_VALUE_BYTES
from dbhandles.errors import QueryFailed
from dbhandles.values import json_text

__all__ = ["MAX_GROUP_BYTES", "bound_groups", "fetch_groups", "groups_too_large"]

#: The most characters of text (and bytes of blobs) the group keys of one count may hold: the
#: bound of a page (twice the largest value, so one group of any one value is served).
MAX_GROUP_BYTES = 2 * MAX_VALUE_BYTES


class _Cursor(Protocol):
    def __iter__(self) -> Iterator[Sequence[Any]]: ...

    def close(self) -> None: ...


def groups_too_large(
    collection: str, group_by: tuple[tuple[str, ...], ...], groups: int
) -> QueryFailed:
    """The error of a count whose group keys passed ``MAX_GROUP_BYTES`` at its ``groups``-th group
    (the first ``groups - 1`` fit: the largest ``limit`` that passes)."""
    names = ", ".join(json_text(".".join(p), 80) for p in group_by)
    fewer = (
        f"ask for at most {groups - 1} groups (limit), or group by a shorter field"
        if groups > 1
        else "its first group alone passes it: group by a shorter field"
    )
    return QueryFailed(
        f"the count of {json_text(collection, 80)} by {names} would answer more than "
        f"{MAX_GROUP_BYTES >> 20} MiB of group keys (passed at its group {groups}), the most one "
        f"answer may hold in the server's memory; {fewer}"
    )


def fetch_groups(
    cursor: _Cursor, collection: str, group_by: tuple[tuple[str, ...], ...]
) -> list[Sequence[Any]]:
    """The rows of a group statement (``sql_facets``), refused once the text and blobs they hold
    (the group keys: every other column is a number) pass ``MAX_GROUP_BYTES``.

    Raises:
        QueryFailed: the keys would pass ``MAX_GROUP_BYTES`` (``groups_too_large``).
    """
    rows: list[Sequence[Any]] = []
    size = 0
    try:
        for row in cursor:
            rows.append(row)
            size += sum(len(v) for v in row if isinstance(v, str | bytes))
            if size > MAX_GROUP_BYTES:
                raise groups_too_large(collection, group_by, len(rows))
        return rows
    except BaseException:
        # Reset the statement now: a failed read would otherwise keep its lock (sqlite_pages).
        cursor.close()
        raise


def bound_groups(
    counts: GroupCounts, collection: str, group_by: tuple[tuple[str, ...], ...]
) -> GroupCounts:
    """``counts`` (``facets.group_counts``) once its keys are known to fit ``MAX_GROUP_BYTES``.

    Raises:
        QueryFailed: they do not (``groups_too_large``).
    """
    size = 0
    for i, (key, _) in enumerate(counts.groups):
        size += sum(len(v) for v in key if isinstance(v, str | bytes))
        if size > MAX_GROUP_BYTES:
            raise groups_too_large(collection, group_by, i + 1)
    return counts
