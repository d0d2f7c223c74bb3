"""Where in a command's params a field path a collection refuses was written (``filter.x y``).

A dbhandles collection's fields are identifiers (``filters.COLLECTION_PART``), while a table
dbhandles did not create may have a column ``Order Total``; so the params' parser takes both, and
only the adapter, which knows what the collection is, refuses such a path
(``filters.check_collection_path``), by then without knowing which parameter held it. This module
finds that parameter again in the params, named as every other path error names it
(``filter.x y``, ``filter.$or[0].x y``, ``orderBy[0].field``, ``orderBy[1]``, ``groupBy[0]``,
``from.filter.x y``), so that the error gets its ``field`` and the message its prefix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from dbhandles.errors import InvalidFilter
from dbhandles.filters import COLLECTION_PART, NOT_A_COLLECTION_PATH
from dbhandles.values import json_text, name_text

__all__ = ["placed_path_error"]

#: The words of ``NOT_A_COLLECTION_PATH`` after the quoted path: how its error is recognised.
_WORDS = NOT_A_COLLECTION_PATH.split("{}", 1)[1]


def placed_path_error(exc: InvalidFilter, params: BaseModel) -> InvalidFilter | None:
    """``exc`` (an adapter's refusal of a path in a collection, without ``field``) again, naming
    the parameter that holds the first such path, or ``None`` when it is no such refusal or no
    parameter holds one (the path was the handle's own row filter's).

    Args:
        exc: the refusal the adapter raised.
        params: the command's validated params (``filter``, ``orderBy``, ``groupBy``; a copy's
            ``from.filter`` and ``from.orderBy``).
    """
    if exc.field is not None or not exc.message.endswith(_WORDS):
        return None
    for where, key, top in _places(params):
        parts = key.split(".")
        if all(COLLECTION_PART.fullmatch(p) for p in parts) and not (top and parts[0].isdigit()):
            continue
        return InvalidFilter(
            f"{where}: {NOT_A_COLLECTION_PATH.format(json_text(key, 80))}", field=where
        )
    return None


def _places(params: BaseModel) -> Iterator[tuple[str, str, bool]]:
    """``(where, path text, top)`` for each field path the params name, in the order the
    parser reads them; ``top``: a path from the record (not from an ``$elemMatch`` element)."""
    for prefix, holder in (("", params), ("from.", getattr(params, "from_", None))):
        if holder is None:
            continue
        yield from _filter_places(getattr(holder, "filter", None), f"{prefix}filter", True, 0)
        yield from _order_places(getattr(holder, "order_by", None), f"{prefix}orderBy")
        group_by = getattr(holder, "group_by", None)
        if isinstance(group_by, str):
            yield "groupBy", group_by, True
        elif isinstance(group_by, list):
            for i, name in enumerate(group_by):
                if isinstance(name, str):
                    yield f"groupBy[{i}]", name, True


def _filter_places(spec: Any, where: str, top: bool, depth: int) -> Iterator[tuple[str, str, bool]]:
    if not isinstance(spec, Mapping) or depth > 64:
        return
    for key, value in spec.items():
        if not isinstance(key, str):
            continue
        sub = f"{where}.{name_text(key)}"
        if key in ("$and", "$or") and isinstance(value, list):
            for i, child in enumerate(value):
                yield from _filter_places(child, f"{sub}[{i}]", top, depth + 1)
        elif key == "$not":
            yield from _filter_places(value, sub, top, depth + 1)
        elif not key.startswith("$"):
            yield sub, key, top
            yield from _element_places(value, sub, depth + 1)


def _element_places(ops: Any, where: str, depth: int) -> Iterator[tuple[str, str, bool]]:
    """The paths inside an ``$elemMatch`` of a field's operators (also under ``$not``)."""
    if not isinstance(ops, Mapping) or depth > 64:
        return
    inner = ops.get("$elemMatch")
    if isinstance(inner, Mapping):
        yield from _filter_places(inner, f"{where}.$elemMatch", False, depth + 1)
    yield from _element_places(ops.get("$not"), f"{where}.$not", depth + 1)


def _order_places(spec: Any, where: str) -> Iterator[tuple[str, str, bool]]:
    items = spec if isinstance(spec, list | tuple) else [spec]
    for i, item in enumerate(items):
        if isinstance(item, str):
            text = item.strip()
            if text.startswith("-"):
                text = text[1:]
            elif " " in text or ":" in text:
                text = text.replace(":", " ").partition(" ")[0]
            yield f"{where}[{i}]", text, True
        elif isinstance(item, Mapping) and isinstance(item.get("field"), str):
            yield f"{where}[{i}].field", item["field"], True
