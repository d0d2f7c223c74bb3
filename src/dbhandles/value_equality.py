"""When two JSON values are one value (docs/filters.md "Values"): for the importer and data/copy."""

from __future__ import annotations

from typing import Any

__all__ = ["same_value"]


def same_value(a: Any, b: Any) -> bool:
    """Whether the JSON values ``a`` and ``b`` (as ``orjson`` loads them) are one value.

    Numbers compare by value (``1`` and ``1.0`` are one JSON number), a boolean is never a number
    (``True != 1``, though Python says otherwise), objects compare by their keys whatever the
    order, arrays item by item. Never raises.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)
