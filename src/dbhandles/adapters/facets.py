"""Counts per value (facets) for ``data/count``: the rule every adapter follows, and its Python form.

The values of one ``groupBy`` path in one record (``path_values``), MongoDB's ``$unwind`` applied along
the path:

* walking the path, an array met on the way is entered: each element continues on its own (an element
  that is not an object has no sub-fields, so it gives ``null``); an array at the end of the path gives
  each of its elements;
* an empty array, a missing field and ``null`` give ``null`` (one value), so every record is counted;
* a record is counted once per value it holds: ``topics: ["a", "b"]`` counts under ``a`` and under
  ``b`` (and twice under ``a`` for ``["a", "a"]``); several ``groupBy`` paths count every combination;
* a value that is an object, or an array inside an array, is not a group: ``data/count`` refuses the
  call (``invalid_params``) and names the path, rather than lumping such values together;
* numbers group by value (``1`` and ``1.0`` are one group); a group of an integral number is shown
  as an integer (``1``, ``9007199254740992``), any other as its float; booleans, numbers and
  strings never group together (PostgreSQL's ``jsonb`` holds a float as its shortest decimal text:
  past 2**53 that text may equal an integer the float is not, and the two then group together
  there; docs/counting.md);
* with several paths, a record whose numbers of values multiply to more than ``MAX_COMBINATIONS``
  is refused (``invalid_params`` on ``groupBy``, before any object is refused): four paths over
  45-element arrays would make four million groups out of one record.

Groups come most frequent first, ties in the canonical order of ``evaluate`` (per path, in order).
``total`` is the number of records that matched the filter, whatever their values.
The memory and JSON adapters run ``group_counts``; the SQL adapters compile the same rule
(``sql_facets``) and the contract suite checks that they agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dbhandles import budget
from dbhandles.errors import InvalidParams
from dbhandles.evaluate import rank
from dbhandles.values import NUMBER_BOUND, json_text

__all__ = [
    "MAX_COMBINATIONS",
    "GroupCounts",
    "combinations_error",
    "container_error",
    "group_counts",
    "key_value",
    "path_values",
]

#: The most combinations of values one record may give with several ``groupBy`` paths.
MAX_COMBINATIONS = 10_000
#: Records counted between two looks at the clock (each gives at most ``MAX_COMBINATIONS`` keys).
_CHECK_EVERY = 16

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class GroupCounts:
    """What ``Session.group_count`` returns.

    Attributes:
        groups: ``(key, count)`` pairs, one value per ``groupBy`` path in the key, most frequent
            first, at most the limit asked for.
        total: records that matched the filter.
        group_count: distinct groups before the limit.
    """

    groups: list[tuple[Key, int]] = field(default_factory=list)
    total: int = 0
    group_count: int = 0


def key_value(value: Any) -> Any:
    """A group's value as shown: an integral float as the integer (numbers group by value), as
    every number of a record lies within ±2**63 (``dbhandles.values``); the same key on every
    adapter, whichever of ``1`` and ``1.0`` a group met first.

    >>> key_value(9007199254740992.0), key_value(2.5), key_value(True)
    (9007199254740992, 2.5, True)
    """
    if isinstance(value, float) and value.is_integer() and -NUMBER_BOUND < value < NUMBER_BOUND:
        return int(value)
    return value


def _fan(value: Any) -> list[Any]:
    if isinstance(value, list):
        return list(value) if value else [None]
    return [value]


def path_values(record: Mapping[str, Any], path: tuple[str, ...]) -> list[Any]:
    """The values of ``path`` in ``record`` under the rule above (never empty)."""
    current: list[Any] = [record]
    for part in path:
        nxt: list[Any] = []
        for value in current:
            sub = value.get(part) if isinstance(value, Mapping) else None
            nxt.extend(_fan(sub))
        current = nxt
    return current


def container_error(path: tuple[str, ...]) -> InvalidParams:
    """The refusal for a path whose values include objects (or arrays inside arrays)."""
    name = ".".join(path)
    return InvalidParams(
        f"groupBy: {json_text(name, 80)} holds objects (or arrays inside arrays), which are not "
        f"values to count by; group by a field inside them, such as {json_text(name + '.<field>', 90)}",
        field="groupBy",
    )


def combinations_error(group_by: tuple[tuple[str, ...], ...]) -> InvalidParams:
    """The refusal for a record whose values of several paths give too many combinations."""
    names = ", ".join(json_text(".".join(path), 80) for path in group_by)
    return InvalidParams(
        f"groupBy: a matching record gives more than {MAX_COMBINATIONS} combinations of values of "
        f"{names} (the product of their numbers of values, each array element one value); "
        "group by fewer fields, or filter such records out",
        field="groupBy",
    )


def _order_key(value: Any) -> tuple[int, Any]:
    r = rank(value)
    return (r, value if 0 < r < 4 else 0)


def group_counts(
    records: Iterable[Mapping[str, Any]], group_by: tuple[tuple[str, ...], ...], limit: int
) -> GroupCounts:
    """Count ``records`` per value of the ``group_by`` paths (the reference for every adapter).

    Raises:
        InvalidParams: with several paths, a record gives more than ``MAX_COMBINATIONS``
            combinations; else a value of a path is an object or an array inside an array (the
            first such path in ``group_by`` order, as the SQL adapters find it).
        QueryTimeout: past the command's time budget (``dbhandles.budget``).
    """
    # Keys are (rank, value) pairs: in Python True == 1, and they must not be one group.
    counts: dict[tuple[tuple[int, Any], ...], int] = {}
    total = 0
    containers: set[int] = set()
    several = len(group_by) > 1
    for record in records:
        if not total % _CHECK_EVERY:
            budget.check()
        total += 1
        per_path = [path_values(record, path) for path in group_by]
        if several and math.prod(len(values) for values in per_path) > MAX_COMBINATIONS:
            raise combinations_error(group_by)
        bad = {i for i, values in enumerate(per_path) if any(rank(v) == 4 for v in values)}
        if bad or containers:  # refused at the end: only the combinations rule comes first
            containers |= bad
            continue
        combos: list[tuple[tuple[int, Any], ...]] = [()]
        for values in per_path:
            combos = [(*c, _order_key(key_value(v))) for c in combos for v in values]
        for combo in combos:
            counts[combo] = counts.get(combo, 0) + 1
    if containers:
        raise container_error(group_by[min(containers)])
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    groups = [(tuple(None if r == 0 else v for r, v in key), n) for key, n in ordered[:limit]]
    return GroupCounts(groups=groups, total=total, group_count=len(counts))
