"""Which tables a delete or an update of a table reaches through its database's foreign keys.

A foreign key declared ``ON DELETE CASCADE`` (or ``SET NULL``, ``SET DEFAULT``) makes the database
delete or write rows of the referencing table when rows of the referenced one are deleted; ``ON
UPDATE`` actions do the same when a referenced key changes. dbhandles' permissions are decided per
table (``allowedCollections``, ``deniedCollections``, ``rowFilter``), so ``policy.authorize`` asks
for these tables before a delete, a truncate, a move or an update, and refuses the command when
the handle may not reach one of them (docs/foreign-tables.md "Writes", docs/security.md).

Each engine reads its catalog into edges (``sqlite_foreign_schema.cascade_edges``,
``postgres_foreign_schema.cascade_edges``); ``reached`` walks them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["ACTIONS", "CascadeEdge", "reached"]

#: The referential actions that write the referencing table (SQL's spelling).
ACTIONS = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})


@dataclass(frozen=True, slots=True)
class CascadeEdge:
    """One foreign key of ``child`` referencing ``parent``, with its actions (SQL's spelling:
    ``CASCADE``, ``SET NULL``, ``SET DEFAULT``, ``RESTRICT``, ``NO ACTION``)."""

    child: str
    parent: str
    on_delete: str
    on_update: str


def reached(
    edges: Iterable[CascadeEdge],
    table: str,
    update: bool,
    key: Callable[[str], str] = str,
) -> list[tuple[str, str]]:
    """The tables a delete of rows of ``table`` (``update``: a change of its referenced keys)
    writes through foreign-key actions, at any depth, each once with the first action that
    reaches it (``"ON DELETE CASCADE"``...), in the order reached; ``table`` itself when it
    references itself. A row deleted by ``CASCADE`` deletes further; a row set by ``SET NULL``
    or ``SET DEFAULT`` (or updated by ``ON UPDATE CASCADE``) is an update of that table.

    ``key`` is equal for two names of one table, as the database compares them (SQLite: ignoring
    ASCII case; PostgreSQL: exact).
    """
    listed = list(edges)
    found: dict[str, str] = {}
    seen: set[tuple[str, bool]] = set()
    todo = [(table, update)]
    while todo:
        current, updating = todo.pop(0)
        if (key(current), updating) in seen:
            continue
        seen.add((key(current), updating))
        for edge in listed:
            if key(edge.parent) != key(current):
                continue
            action = edge.on_update if updating else edge.on_delete
            if action not in ACTIONS:
                continue
            found.setdefault(edge.child, f"ON {'UPDATE' if updating else 'DELETE'} {action}")
            todo.append((edge.child, not (action == "CASCADE" and not updating)))
    return list(found.items())
