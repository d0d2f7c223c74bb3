"""The reference semantics of filters, ordering and keyset positions, evaluated in Python.

The memory and JSON adapters run these directly; the SQL adapters compile the same rules to SQL and the
contract suite checks, with hypothesis, that they agree with this module (the oracle).

Paths follow MongoDB's rules (docs/filters.md, "Arrays"): a path is followed through objects; a part
that meets an array is looked up in each of its elements that is an object (a non-object element gives
"missing"; nested arrays are not entered); a numeric part indexes an array. The path's *candidates*
are the values so reached; a test on a value (equality, ``$in``, ranges, ``$regex``) holds when it
holds for a candidate or for an element of a candidate that is an array (the *leaf values*). ``$exists``,
``$size``, ``$contains`` and ``$elemMatch`` test the candidates themselves. Negations are complements.

Canonical order of values (for ``orderBy`` and keyset cursors): missing/null < booleans (false < true) <
numbers < strings (by code point) < arrays and objects (all equal to each other). A sort key is the
smallest leaf value of the path (ascending) or the largest (descending), MongoDB's rule for arrays;
no leaf value at all (an empty array) sorts as missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from dbhandles.byte_cache import ByteCache, deep_sizeof
from dbhandles.filters import And, Compare, ElemMatch, FilterNode, Not, Or, Scalar, SortKey
from dbhandles.regex import search

__all__ = [
    "candidates",
    "get_path",
    "is_after",
    "leaf_values",
    "matches",
    "position_of",
    "project",
    "rank",
    "sort_key_value",
    "sort_records",
    "sort_value",
]

Record = Mapping[str, Any]
R = TypeVar("R", bound=Mapping[str, Any])


def get_path(record: Record, path: tuple[str, ...]) -> Any:
    """The value at ``path`` through objects only, or ``None`` when any part is missing (or an array)."""
    value: Any = record
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
        if value is None:
            return None
    return value


def candidates(value: Any, path: tuple[str, ...]) -> list[Any]:
    """The values ``path`` reaches from ``value`` through objects and arrays (``None`` for missing).

    An empty list means the path crossed an empty array: it reaches nothing, not even "missing".
    """
    if not path:
        return [value]
    part, rest = path[0], path[1:]
    if part.isdigit():
        if isinstance(value, list) and int(part) < len(value):
            return candidates(value[int(part)], rest)
        return [None]
    # ``dict`` first: records are dicts, and ``isinstance(_, Mapping)`` runs the ABC's Python-level
    # check, a fifth of a memory scan's time (issue 13: a 300,000-record ``$in`` held the GIL seconds).
    if isinstance(value, (dict, Mapping)):
        return candidates(value.get(part), rest)
    if isinstance(value, list):
        found: list[Any] = []
        for item in value:
            found.extend(candidates(item.get(part), rest) if isinstance(item, Mapping) else [None])
        return found
    return [None]


def leaf_values(value: Any, path: tuple[str, ...]) -> list[Any]:
    """The candidates of ``path``, each array replaced by its elements (what value tests look at)."""
    return _spread(candidates(value, path))


def _spread(found_candidates: list[Any]) -> list[Any]:
    """``found_candidates`` with each array replaced by its elements."""
    found: list[Any] = []
    for item in found_candidates:
        if isinstance(item, list):
            found.extend(item)
        else:
            found.append(item)
    return found


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


#: ``rank`` of the exact types JSON gives, looked up in one step (a memory scan calls ``_key`` once
#: a record); a subclass, or any other type, goes through ``rank``.
_RANKS: dict[type, int] = {type(None): 0, bool: 1, int: 2, float: 2, str: 3, list: 4, dict: 4}


def _key(value: Any) -> tuple[int, Any]:
    r = _RANKS.get(type(value))
    if r is None:
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


#: Plans made once per filter value or node and reused for every record: ``id`` -> (the object,
#: what was made of it). The object is kept so its ``id`` cannot be reused meanwhile, so the cache is
#: bounded by the bytes it keeps alive (the object and its plan, ``deep_sizeof``), not by a count: a
#: stream of requests with big distinct ``$in`` lists pins at most ``PLAN_CACHE_BYTES`` (issue 13).
#: A plan bigger than that is kept alone, as the one running query looks it up once per record.
PLAN_CACHE_BYTES = 16 << 20
_PLANS: ByteCache[int, tuple[object, Any]] = ByteCache(PLAN_CACHE_BYTES, keep_oversized=True)
#: From how many branches an ``$or``/``$and`` is evaluated with ``_wide``.
_WIDE = 8


def _planned(obj: object, make: Any) -> Any:
    found = _PLANS.get(id(obj))
    if found is not None and found[0] is obj:
        return found[1]
    plan = make(obj)
    _PLANS.put(id(obj), (obj, plan), deep_sizeof((obj, plan)))
    return plan


def _keys_of(wanted: tuple[Scalar, ...]) -> frozenset[tuple[int, Any]]:
    """The ``_key`` of each value of an ``$in`` list: a stored value is in it exactly when
    ``_equal`` holds for one of them (type-strict: ``true`` is not ``1``; ``1`` is ``1.0``)."""
    keys: frozenset[tuple[int, Any]] = _planned(wanted, lambda w: frozenset(_key(v) for v in w))
    return keys


def _grouped_plan(
    node: And | Or, ops: tuple[str, str]
) -> tuple[dict[tuple[str, ...], frozenset[tuple[int, Any]]], list[FilterNode]]:
    """A wide ``$or`` (``ops`` eq/in) or ``$and`` (ne/nin): the branches testing equality with
    values on one path grouped into one set per path, and the other branches."""
    equal: dict[tuple[str, ...], set[tuple[int, Any]]] = {}
    rest: list[FilterNode] = []
    for child in node.children:
        if isinstance(child, Compare) and child.path and child.op in ops:
            many = child.op == ops[1]
            values = child.value if many else (child.value,)
            equal.setdefault(child.path, set()).update(_key(v) for v in values)  # type: ignore[union-attr]
        else:
            rest.append(child)
    return {path: frozenset(keys) for path, keys in equal.items()}, rest


def _wide(node: And | Or, record: Any) -> bool:
    """``matches`` for an ``$or`` or ``$and`` of many branches, with ``_grouped_plan``: the same
    answer, one set lookup per value instead of one comparison per branch."""
    is_or = isinstance(node, Or)
    ops = ("eq", "in") if is_or else ("ne", "nin")
    equal, rest = _planned(node, lambda n: _grouped_plan(n, ops))
    for path, keys in equal.items():
        if any(_key(leaf) in keys for leaf in leaf_values(record, path)):
            return is_or
    if is_or:
        return any(matches(child, record) for child in rest)
    return all(matches(child, record) for child in rest)


def _value_test(op: str, wanted: Any, stored: Any) -> bool:
    """One positive value test (``eq in gt gte lt lte regex``) on one leaf value."""
    if op == "eq":
        return _equal(stored, wanted)
    if op == "in":
        return _key(stored) in _keys_of(wanted)
    if op == "regex":
        return isinstance(stored, str) and search(str(wanted), stored)
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


def _contains(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, str):
        return isinstance(wanted, str) and wanted in stored
    if isinstance(stored, list):
        return any(_equal(item, wanted) for item in stored)
    return False


_NEGATED = {"ne": "eq", "nin": "in"}


def _compare(node: Compare, value: Any) -> bool:
    op, wanted = node.op, node.value
    if op in _NEGATED:
        return not _compare(Compare(node.path, _NEGATED[op], wanted), value)  # type: ignore[arg-type]
    path = node.path
    if len(path) == 1 and type(value) is dict and not path[0].isdigit():
        found = [value.get(path[0])]  # ``candidates`` of a record's own field, without the walk
    else:
        found = candidates(value, path)
    if op == "exists":
        return any(item is not None for item in found) == wanted
    if op == "size":
        return any(isinstance(item, list) and len(item) == wanted for item in found)
    if op == "contains":
        return any(_contains(item, wanted) for item in found)
    # The element itself (an empty path, in $elemMatch's operator form) is never spread.
    single = len(found) == 1 and not isinstance(found[0], list)
    leaves = _spread(found) if path and not single else found
    if op == "in":  # the plan looked up once per record, not once per leaf
        keys = _keys_of(wanted)  # type: ignore[arg-type]  # an $in holds a tuple
        if len(leaves) == 1:
            return _key(leaves[0]) in keys
        return any(_key(item) in keys for item in leaves)
    return any(_value_test(op, wanted, item) for item in leaves)


def _elem_match(node: ElemMatch, value: Any) -> bool:
    for item in candidates(value, node.path):
        if isinstance(item, list):
            for element in item:
                if (node.scalar or isinstance(element, Mapping)) and matches(node.child, element):
                    return True
    return False


def matches(node: FilterNode | None, record: Any) -> bool:
    """True when ``record`` satisfies the filter tree (``None`` matches everything).

    ``record`` is a record (an object); inside ``$elemMatch``'s operator form, an array element.
    """
    if node is None:
        return True
    if isinstance(node, Compare):
        return _compare(node, record)
    if isinstance(node, And | Or) and len(node.children) > _WIDE:
        return _wide(node, record)
    if isinstance(node, And):
        return all(matches(child, record) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, record) for child in node.children)
    if isinstance(node, Not):
        return not matches(node.child, record)
    if isinstance(node, ElemMatch):
        return _elem_match(node, record)
    raise TypeError(f"unknown filter node {node!r}")


def sort_value(value: Any) -> tuple[int, Any]:
    """``(rank, value)`` of a value in the canonical order; arrays, objects and null carry no value."""
    r = rank(value)
    return (r, value if 0 < r < 4 else None)


def sort_key_value(record: Record, key: SortKey) -> Any:
    """The value a record sorts by under ``key``: its smallest leaf value (largest when descending).

    MongoDB's rule for arrays; a scalar field is its own only leaf; no leaf at all sorts as missing.
    """
    leaves = leaf_values(record, key.path)
    if not leaves:
        return None
    pick = max if key.descending else min
    return pick(leaves, key=_key)


def position_of(record: Record, keys: tuple[SortKey, ...]) -> tuple[tuple[int, Any], ...]:
    """The keyset position of a record: ``(rank, value)`` for every sort key."""
    return tuple(sort_value(sort_key_value(record, k)) for k in keys)


def _cmp(a: tuple[int, Any], b: tuple[int, Any]) -> int:
    return (a > b) - (a < b)


def is_after(
    record: Record, keys: tuple[SortKey, ...], position: tuple[tuple[int, Any], ...]
) -> bool:
    """True when ``record`` sorts strictly after ``position`` (from ``position_of``) under ``keys``."""
    for key, pos in zip(keys, position, strict=True):
        c = _cmp(_key(sort_key_value(record, key)), _pos_key(pos))
        if c:
            return (c > 0) != key.descending
    return False


def sort_records(records: Iterable[R], keys: tuple[SortKey, ...]) -> list[R]:
    """Sort by ``keys`` in the canonical order (stable, so multi-key sorts apply right to left)."""
    result = list(records)
    for key in reversed(keys):
        result.sort(key=lambda r, k=key: _key(sort_key_value(r, k)), reverse=key.descending)  # type: ignore[misc]
    return result


_WHOLE = object()


def project(record: Record, fields: tuple[tuple[str, ...], ...] | None) -> dict[str, Any]:
    """Keep ``id`` plus the requested (possibly dotted) fields that exist, nested as in the record.

    MongoDB's inclusion rule: a path through an array keeps, for each element that is an object (or
    an array), the requested part of it (``messages.role`` gives ``{"messages": [{"role": ...}, ...]}``);
    other elements are left out. A field and one of its sub-fields together keep the whole field.
    """
    if fields is None:
        return dict(record)
    tree: dict[str, Any] = {}
    for path in fields:
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if child is _WHOLE:
                break
            node = child
        else:
            node[path[-1]] = _WHOLE
    kept = _include(record, tree)
    return {"id": record["id"], **{k: v for k, v in kept.items() if k != "id"}}


def _include(value: Mapping[str, Any], tree: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, sub in tree.items():
        if name not in value:
            continue
        kept = _include_value(value[name], sub)
        if kept is not _WHOLE:
            out[name] = kept
    return out


def _include_value(value: Any, sub: Any) -> Any:
    """``value`` cut down to ``sub`` (``_WHOLE`` when nothing of it is kept)."""
    if sub is _WHOLE:
        return value
    if isinstance(value, Mapping):
        return _include(value, sub)
    if isinstance(value, list):
        kept = (_include_value(item, sub) for item in value if isinstance(item, Mapping | list))
        return [item for item in kept if item is not _WHOLE]
    return _WHOLE
