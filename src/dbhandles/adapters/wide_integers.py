"""Filter integers past 64 bits, compared exactly by value where the engine binds only 64 bits.

The oracle (``evaluate.py``) compares numbers by value, as MongoDB does: ``{"n": {"$lt": 2**64}}``
matches every stored number, ``{"n": 18446744073709551615}`` none of a collection's (no record holds
an integer past 64 bits: ``dbhandles.values``). PostgreSQL binds such an integer as ``numeric`` and
compares it exactly; the memory and JSON adapters compare Python ints. SQLite binds 64 bits only,
and keeps every number as a 64-bit integer or a double, so ``double_bounds`` rewrites a comparison
with a wider integer ``B`` into one with a double that gives the same answer for every value SQLite
holds (SQLite compares an integer with a double exactly):

* ``B`` a double exactly (``2**64``): the double itself, same operator;
* otherwise, between the doubles ``lo < B < hi``: ``x > B`` and ``x >= B`` are ``x >= hi``,
  ``x < B`` and ``x <= B`` are ``x <= lo``, ``x == B`` is false (``$in`` drops it, ``$all``
  holding it matches nothing). Past the doubles, ``hi`` or ``lo`` is an infinity.

A table dbhandles did not create may hold such an integer in JSON text, which SQLite's JSON
functions read as the nearest double while dbhandles serves the integer: there no rewrite is exact,
and ``refuse`` names the value and the adapter (docs/filters.md "Values").
"""

from __future__ import annotations

import math
import sys
from typing import Literal, TypeAlias

from dbhandles.errors import InvalidFilter
from dbhandles.filters import And, Compare, ElemMatch, FilterNode, Not, Or, Scalar

__all__ = ["WideIntegers", "double_bounds", "is_wide", "narrowed", "refuse"]

_INT64 = 2**63
_MAX = sys.float_info.max
#: How a dialect compares a filter's integer past 64 bits: ``exact`` (it binds any integer),
#: ``doubles`` (``double_bounds``), ``refused`` (``refuse``).
WideIntegers: TypeAlias = Literal["exact", "doubles", "refused"]


def is_wide(value: object) -> bool:
    """Whether ``value`` is an integer outside the 64 bits -2**63 .. 2**63 - 1."""
    return type(value) is int and not -_INT64 <= value < _INT64


def _double(value: int) -> float | None:
    """``value`` as a double when it is one exactly, else None."""
    try:
        near = float(value)
    except OverflowError:
        return None
    return near if int(near) == value else None


def _bound(value: int) -> tuple[float | None, float | None]:
    """The doubles ``lo < value < hi`` next to an integer no double equals; past the doubles,
    None on the far side (no double lies there) and the largest double on the near one."""
    try:
        near = float(value)
    except OverflowError:
        return (_MAX, None) if value > 0 else (None, -_MAX)
    if int(near) < value:
        return near, math.nextafter(near, math.inf)
    return math.nextafter(near, -math.inf), near


def _compare(node: Compare) -> FilterNode:
    op, value = node.op, node.value
    if op in ("eq", "ne", "contains") and is_wide(value):
        exact = _double(value)  # type: ignore[arg-type]
        if exact is not None:
            return Compare(node.path, op, exact)
        nothing = Compare(node.path, "in", ())
        return Not(nothing) if op == "ne" else nothing
    if op in ("in", "nin") and isinstance(value, tuple) and any(is_wide(v) for v in value):
        kept: list[Scalar] = []
        for item in value:
            if is_wide(item):
                exact = _double(item)  # type: ignore[arg-type]
                if exact is not None:
                    kept.append(exact)
            else:
                kept.append(item)
        return Compare(node.path, op, tuple(kept))
    if op in ("gt", "gte", "lt", "lte") and is_wide(value):
        exact = _double(value)  # type: ignore[arg-type]
        if exact is not None:
            return Compare(node.path, op, exact)
        lo, hi = _bound(value)  # type: ignore[arg-type]
        op, bound = ("gte", hi) if op in ("gt", "gte") else ("lte", lo)
        return Compare(node.path, "in", ()) if bound is None else Compare(node.path, op, bound)
    return node


def double_bounds(node: FilterNode) -> FilterNode:
    """``node`` with every integer past 64 bits turned into a double bound (module docstring)."""
    if isinstance(node, Compare):
        return _compare(node)
    if isinstance(node, And):
        return And(tuple(double_bounds(c) for c in node.children))
    if isinstance(node, Or):
        return Or(tuple(double_bounds(c) for c in node.children))
    if isinstance(node, Not):
        return Not(double_bounds(node.child))
    if isinstance(node, ElemMatch):
        return ElemMatch(node.path, double_bounds(node.child), node.scalar)
    return node


def refuse(node: FilterNode, adapter: str) -> None:
    """Raise when ``node`` compares with an integer past 64 bits (a table where ``adapter`` cannot
    compare one exactly: module docstring).

    Raises:
        InvalidFilter: naming the field, the value and the adapter.
    """
    if isinstance(node, And | Or):
        for child in node.children:
            refuse(child, adapter)
    elif isinstance(node, (Not, ElemMatch)):
        refuse(node.child, adapter)
    else:
        for value in node.value if isinstance(node.value, tuple) else (node.value,):
            if is_wide(value):
                where = ".".join(("filter", *node.path))
                raise InvalidFilter(
                    f"{where}: the integer {value} lies outside 64 bits; on a {adapter} table "
                    "dbhandles did not create, SQLite reads such a number in JSON text as the "
                    "nearest double, so it cannot be compared exactly: compare with a float bound "
                    'instead (docs/filters.md "Values")',
                    field=where,
                )


def narrowed(node: Compare, mode: WideIntegers) -> FilterNode | None:
    """What a dialect of ``mode`` compiles instead of ``node``, or None when ``node`` holds no
    integer past 64 bits or the dialect binds one.

    Raises:
        InvalidFilter: ``mode`` is ``refused`` and ``node`` holds one (``refuse``).
    """
    if mode == "exact":
        return None
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    if not any(is_wide(v) for v in values):
        return None
    if mode == "refused":
        refuse(node, "sqlite")
    return double_bounds(node)
