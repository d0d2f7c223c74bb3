"""The reference semantics of filters, ordering and keyset positions, evaluated in Python.

The memory and JSON adapters run these directly; the SQL adapters compile the same rules to SQL and the
contract suite checks, with hypothesis, that they agree with this module (the oracle).

Canonical order of values (for ``orderBy`` and keyset cursors): missing/null < booleans (false < true) <
numbers < strings (by code point) < arrays and objects (all equal to each other).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from dbhandles.filters import And, Compare, FilterNode, Not, Or, Scalar, SortKey
from dbhandles.regex import search

__all__ = [
    "get_path",
    "is_after",
    "matches",
    "position_of",
    "project",
    "rank",
    "sort_records",
    "sort_value",
]

Record = Mapping[str, Any]
R = TypeVar("R", bound=Mapping[str, Any])


def get_path(record: Record, path: tuple[str, ...]) -> Any:
    """The value at ``path``, or ``None`` when any part is missing (missing and null are the same)."""
    value: Any = record
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def rank(value: Any) -> int:
    """Type bracket of a value in the canonical order."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return 2
    if isinstance(value, str):
        return 3
    return 4


def _key(value: Any) -> tuple[int, Any]:
    r = rank(value)
    return (r, value if 0 < r < 4 else 0)


def _pos_key(pos: tuple[int, Any] | list[Any]) -> tuple[int, Any]:
    r, v = pos
    return (r, v if 0 < r < 4 else 0)


def _equal(stored: Any, wanted: Scalar) -> bool:
    if wanted is None:
        return stored is None
    r = rank(wanted)
    return rank(stored) == r and stored == wanted


def _compare(node: Compare, record: Record) -> bool:
    stored = get_path(record, node.path)
    op, wanted = node.op, node.value
    if op == "eq":
        return _equal(stored, wanted)  # type: ignore[arg-type]
    if op == "ne":
        return not _equal(stored, wanted)  # type: ignore[arg-type]
    if op == "in":
        return any(_equal(stored, w) for w in wanted)  # type: ignore[union-attr]
    if op == "nin":
        return not any(_equal(stored, w) for w in wanted)  # type: ignore[union-attr]
    if op == "exists":
        return (stored is not None) == wanted
    if op == "regex":
        return isinstance(stored, str) and search(str(wanted), stored)
    if op == "contains":
        if isinstance(stored, str):
            return isinstance(wanted, str) and wanted in stored
        if isinstance(stored, list):
            return any(_equal(item, wanted) for item in stored)  # type: ignore[arg-type]
        return False
    # Ordering comparisons: only within one type bracket.
    if rank(stored) != rank(wanted) or stored is None:
        return False
    if op == "gt":
        return bool(stored > wanted)
    if op == "gte":
        return bool(stored >= wanted)
    if op == "lt":
        return bool(stored < wanted)
    return bool(stored <= wanted)


def matches(node: FilterNode | None, record: Record) -> bool:
    """True when ``record`` satisfies the filter tree (``None`` matches everything)."""
    if node is None:
        return True
    if isinstance(node, Compare):
        return _compare(node, record)
    if isinstance(node, And):
        return all(matches(child, record) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, record) for child in node.children)
    if isinstance(node, Not):
        return not matches(node.child, record)
    raise TypeError(f"unknown filter node {node!r}")


def sort_value(value: Any) -> tuple[int, Any]:
    """``(rank, value)`` of a value in the canonical order; arrays, objects and null carry no value."""
    r = rank(value)
    return (r, value if 0 < r < 4 else None)


def position_of(record: Record, keys: tuple[SortKey, ...]) -> tuple[tuple[int, Any], ...]:
    """The keyset position of a record: ``(rank, value)`` for every sort key."""
    return tuple(sort_value(get_path(record, k.path)) for k in keys)


def _cmp(a: tuple[int, Any], b: tuple[int, Any]) -> int:
    return (a > b) - (a < b)


def is_after(
    record: Record, keys: tuple[SortKey, ...], position: tuple[tuple[int, Any], ...]
) -> bool:
    """True when ``record`` sorts strictly after ``position`` (from ``position_of``) under ``keys``."""
    for key, pos in zip(keys, position, strict=True):
        c = _cmp(_key(get_path(record, key.path)), _pos_key(pos))
        if c:
            return (c > 0) != key.descending
    return False


def sort_records(records: Iterable[R], keys: tuple[SortKey, ...]) -> list[R]:
    """Sort by ``keys`` in the canonical order (stable, so multi-key sorts apply right to left)."""
    result = list(records)
    for key in reversed(keys):
        path = key.path
        result.sort(key=lambda r: _key(get_path(r, path)), reverse=key.descending)
    return result


def project(record: Record, fields: tuple[tuple[str, ...], ...] | None) -> dict[str, Any]:
    """Keep ``id`` plus the requested (possibly dotted) fields that exist, nested as in the record."""
    if fields is None:
        return dict(record)
    out: dict[str, Any] = {"id": record["id"]}
    for path in fields:
        value = get_path(record, path)
        if value is None and not _has_path(record, path):
            continue
        target = out
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return out


def _has_path(record: Record, path: tuple[str, ...]) -> bool:
    value: Any = record
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True
