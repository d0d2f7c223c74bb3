"""The memory a ``data/count`` with ``groupBy`` may answer: its group keys stop at ``MAX_GROUP_BYTES``.

A group's key holds each grouped field's whole value: 23 records holding different 9 MiB strings,
grouped by that field, answered 217 MB (4.5 GB with ``limit: 500``) and took 1.27 GB of the
server. The keys of one answer are bounded as a page's values are (``sqlite_pages.MAX_PAGE_BYTES``,
128 MiB): the SQL adapters count them as rows are read (``fetch_groups``), so no more is held; the
adapters counting in Python (memory, JSON, a table dbhandles did not create) count the keys kept
(``bound_groups``); PostgreSQL counts them in SQL (``postgres_bytes``), before the rows leave
the database. Either answers ``query_failed`` naming the collection, the bound and the largest
``limit`` that passes (docs/counting.md). Every bound counts UTF-8 bytes (``encoded_size``), never
characters: a key of 4-byte characters (emoji, CJK) counts four times its length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from dbhandles.adapters.facets import GroupCounts
from dbhandles.dbfiles import MAX_VALUE_BYTES
from dbhandles.errors import QueryFailed
from dbhandles.values import json_text

__all__ = [
    "MAX_GROUP_BYTES",
    "bound_groups",
    "bound_words",
    "encoded_size",
    "fetch_groups",
    "first_past",
    "groups_too_large",
    "most_bytes",
    "row_size",
]

#: The most bytes of text (UTF-8) and blobs the group keys of one count may hold: the bound of a
#: page (twice the largest value, so one group of any one value is served).
MAX_GROUP_BYTES = 2 * MAX_VALUE_BYTES


def bound_words(size: int) -> str:
    """A bound of ``size`` bytes in an error's words: whole MiB (the bounds as shipped), else
    bytes (a bound an embedding application or a test lowered)."""
    mib = 1 << 20
    return f"{size // mib} MiB" if size >= mib and size % mib == 0 else f"{size} bytes"


def encoded_size(value: str | bytes) -> int:
    """The bytes ``value`` takes as UTF-8 (a blob's own length).

    An ASCII string's length is its size, told without reading it (CPython keeps the flag), so
    only a string holding other characters is encoded to be measured; a lone surrogate (which
    no driver hands out, but a Python caller may store in memory) counts as its 3 bytes.
    """
    if isinstance(value, bytes) or value.isascii():
        return len(value)
    return len(value.encode("utf-8", "surrogatepass"))


def most_bytes(value: str | bytes) -> int:
    """The most bytes ``value`` may take as UTF-8, told without reading it: an ASCII text's (or a
    blob's) length, four a character otherwise (a blob of other bytes is over-counted the same)."""
    return len(value) if value.isascii() else 4 * len(value)


def row_size(row: Sequence[Any]) -> int:
    """The bytes of ``row``'s text (as UTF-8) and blobs; numbers and NULLs count nothing."""
    return sum(encoded_size(v) for v in row if isinstance(v, str | bytes))


def first_past(
    rows: Sequence[Any], start: int, settled: int, size: Callable[[Any], int], bound: int
) -> tuple[int, int | None]:
    """``settled`` (the exact bytes of ``rows[:start]``) plus the exact ``size`` of each row
    from ``start`` on, and the number of rows at which that passed ``bound`` (``None``: never).

    The readers count each row's ``most_bytes`` as it comes, and measure exactly only when that
    estimate reaches the bound: a page far below it encodes nothing, and no value is encoded
    twice (``rows[:start]`` are settled)."""
    for i in range(start, len(rows)):
        settled += size(rows[i])
        if settled > bound:
            return settled, i + 1
    return settled, None


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
        f"{bound_words(MAX_GROUP_BYTES)} of group keys (passed at its group {groups}), the most one "
        f"answer may hold in the server's memory; {fewer}"
    )


def fetch_groups(
    cursor: _Cursor, collection: str, group_by: tuple[tuple[str, ...], ...]
) -> list[Sequence[Any]]:
    """The rows of a group statement (``sql_facets``), refused once the text (as UTF-8) and blobs
    they hold (the group keys: every other column is a number) pass ``MAX_GROUP_BYTES``.

    Raises:
        QueryFailed: the keys would pass ``MAX_GROUP_BYTES`` (``groups_too_large``).
    """
    rows: list[Sequence[Any]] = []
    settled, measured, ahead = 0, 0, 0  # exact bytes of rows[:measured]; most of the others
    try:
        for row in cursor:
            rows.append(row)
            ahead += sum(most_bytes(v) for v in row if isinstance(v, str | bytes))
            if settled + ahead > MAX_GROUP_BYTES:
                settled, past = first_past(rows, measured, settled, row_size, MAX_GROUP_BYTES)
                if past is not None:
                    raise groups_too_large(collection, group_by, past)
                measured, ahead = len(rows), 0
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
        size += sum(encoded_size(v) for v in key if isinstance(v, str | bytes))
        if size > MAX_GROUP_BYTES:
            raise groups_too_large(collection, group_by, i + 1)
    return counts
