"""What a write through a handle with a row filter must leave: a record the filter confines, not
only one it matches (docs/security.md §5; issue 12, rounds 20 and 22).

A condition on a field matches an array that holds a matching element, and a path reaches across
arrays (MongoDB's semantics, ``evaluate.matches``): ``{"owner": ["alice", "carol"]}`` matches alice's
``{"owner": "alice"}`` and carol's ``{"owner": "carol"}``, whatever the operator that pins it
(``$eq``, ``$in``, ``$all``, an anchored ``$regex``, ``$gte`` + ``$lte`` of one value, ``$not`` of
``$ne``, ``$elemMatch``, an index path ``owner.0``). A record written through alice's handle would
show in carol's view, where carol could edit it. So a written record must hold, at every field
path its filter names (any operator), a value reached through objects only (never across an array,
not even by an index) that is not itself an array: in every conjunct (``$and``, the fields of one
object) and under every ``$not``, and in some ``$or`` branch that matches. A filter whose condition
is about an array itself (``$size``, ``$elemMatch``, or an index path) therefore lets no record
through that holds that field: such a handle cannot write the field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from dbhandles.evaluate import matches
from dbhandles.filters import And, Compare, ElemMatch, FilterNode, Or

__all__ = ["loose_field", "loose_message"]


def _single(record: Any, path: tuple[str, ...]) -> bool:
    """Whether ``path`` reaches at most one value of ``record`` through objects only and it is not
    an array: ``False`` as soon as the path meets an array (also at an index, ``items.0``)."""
    value = record
    for part in path:
        if isinstance(value, list):
            return False
        if not isinstance(value, Mapping) or part.isdigit():
            # Past a scalar, or an index into an object: missing (``evaluate.candidates``).
            return True
        value = value.get(part)
    return not isinstance(value, list)


def _named_paths(node: FilterNode) -> Iterator[tuple[str, ...]]:
    """Every path of ``node`` from the record (an ``$elemMatch``'s own, not its element tests)."""
    if isinstance(node, Compare | ElemMatch):
        yield node.path
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from _named_paths(child)
    else:
        yield from _named_paths(node.child)


def _first_loose(node: FilterNode, record: Any) -> str | None:
    for path in _named_paths(node):
        if path and not _single(record, path):
            return ".".join(path)
    return None


def loose_field(node: FilterNode | None, record: Any) -> str | None:
    """The dotted field named by a condition of ``node`` that ``record`` (which ``node`` matches)
    holds as an array or reaches across one, or ``None`` when the filter confines it.

    Every path of a conjunction and of a ``$not`` counts (which of a negation's paths it relies on
    depends on the others); of an ``$or``, one matching branch whose paths all hold strictly is
    enough (when no branch matches, every path counts).

    Args:
        node: a handle's row filter (``Permissions.row_filter_node``).
        record: the record as it would be stored (user fields, ``id``...).

    Returns:
        The first such field, to name in the refusal (``permission_denied``, ``loose_message``).
    """
    if node is None:
        return None
    if isinstance(node, And):
        for child in node.children:
            if (field := loose_field(child, record)) is not None:
                return field
        return None
    if isinstance(node, Or):
        first = None
        for child in node.children:
            if matches(child, record):
                field = loose_field(child, record)
                if field is None:
                    return None
                first = first or field
        return first if first is not None else _first_loose(node, record)
    return _first_loose(node, record)


def loose_message(field: str, which: str = "") -> str:
    """The words of the refusal of a record that ``loose_field`` found loose at ``field``;
    ``which`` names the record when the write carries many (``'record "r1": '``)."""
    return (
        f"Permission denied: {which}{field} must hold a single value, neither an array nor a value "
        "reached across one, since this handle's row filter names it (an array would show the "
        "record to other row filters too); a row filter on an array field leaves that field "
        "unwritable through the handle"
    )
