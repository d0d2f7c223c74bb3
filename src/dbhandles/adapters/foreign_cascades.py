"""Which tables a delete or an update of a table reaches through its database's foreign keys.

A foreign key declared ``ON DELETE CASCADE`` (or ``SET NULL``, ``SET DEFAULT``) makes the database
delete or write rows of the referencing table when rows of the referenced one are deleted; ``ON
UPDATE`` actions do the same when a referenced key changes. dbhandles' permissions are decided per
table (``allowedCollections``, ``deniedCollections``, ``rowFilter``), so ``policy.authorize`` asks
for these tables before a delete, a truncate, a move or an update, and refuses the command when
the handle may not reach one of them (docs/foreign-tables.md "Writes", docs/security.md).

Triggers write tables too: a trigger on a table runs its body when rows are inserted, updated or
deleted (and an insert is checked as well: ``event``). Each engine says what a write of a table
fires (``TriggerWrites``): SQLite compiles the write (``EXPLAIN``, which runs nothing) and its
authorizer reports every table the trigger bodies write, at any depth
(``sqlite_foreign_schema.trigger_writes``); PostgreSQL's trigger functions are opaque (their bodies
are not in ``pg_depend``, and may run dynamic SQL), so a trigger there writes ``UNKNOWN``, which no
restricted handle may reach (``postgres_foreign_schema.trigger_writes``).

Each engine reads its catalog into edges (``sqlite_foreign_schema.cascade_targets``,
``postgres_foreign_schema.cascade_targets``); ``reached`` walks them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dbhandles.values import json_text

__all__ = [
    "ACTIONS",
    "EVENTS",
    "UNKNOWN",
    "CascadeEdge",
    "ReplaceConstraint",
    "TriggerWrites",
    "reached",
]

#: The referential actions that write the referencing table (SQL's spelling).
ACTIONS = frozenset({"CASCADE", "SET NULL", "SET DEFAULT"})
#: The writes of rows a trigger fires on (and a trigger body makes).
EVENTS = ("insert", "update", "delete")
#: The table a trigger writes when what it writes cannot be known (a PostgreSQL trigger function).
UNKNOWN = "\x00unknown"

#: What a write of rows (``event``) of a table fires: ``(trigger, table written, event)`` for
#: every table a trigger body writes (``[]`` for none), given ``(table, event)``. A body's write
#: that may resolve a conflict by REPLACE is listed again with the event ``replace``: a delete.
TriggerWrites = Callable[[str, str], Iterable[tuple[str, str, str]]]
#: The constraint of a table declared ``ON CONFLICT REPLACE`` (``None``: none), given the table:
#: an insert or an update of it may delete the row it conflicts with.
ReplaceConstraint = Callable[[str], str | None]


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
    triggers: TriggerWrites | None = None,
    event: str | None = None,
    replaces: ReplaceConstraint | None = None,
) -> list[tuple[str, str]]:
    """The tables a delete of rows of ``table`` (``update``: a change of its referenced keys;
    ``event``, when given, says which write: ``insert``, ``update`` or ``delete``) writes through
    foreign-key actions and triggers, at any depth, each once with the first way that reaches it
    (``"ON DELETE CASCADE"``, ``"trigger 'audit' (on insert into 't')"``), in the order reached;
    ``table`` itself when it references itself or a trigger writes it. A row deleted by
    ``CASCADE`` deletes further; a row set by ``SET NULL`` or ``SET DEFAULT`` (or updated by ``ON
    UPDATE CASCADE``) is an update of that table; a trigger's write is the write it makes.
    ``UNKNOWN`` is reached by a trigger whose writes cannot be known, and walked no further.

    ``key`` is equal for two names of one table, as the database compares them (SQLite: ignoring
    ASCII case; PostgreSQL: exact).

    An insert or an update of a table with a constraint declared ``ON CONFLICT REPLACE``
    (``replaces``) deletes the rows it conflicts with: the table is reached (its own rows: a row
    filter cannot say which go) and walked as deleted, and what that delete reaches says so.
    """
    listed = list(edges)
    found: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    #: (table, write, why it is written when a REPLACE's delete led there, else "")
    todo = [(table, event or ("update" if update else "delete"), "")]
    while todo:
        current, doing, via = todo.pop(0)
        if (key(current), doing) in seen:
            continue
        seen.add((key(current), doing))
        constraint = replaces(current) if replaces is not None and doing != "delete" else None
        if constraint is not None:
            how = (
                f"its constraint {json_text(constraint, 120)} (ON CONFLICT REPLACE: a write that "
                "conflicts deletes the row it conflicts with)"
            )
            found.setdefault(current, how)
            todo.append((current, "delete", (
                f", after the constraint {json_text(constraint, 120)} of {json_text(current, 80)} "
                "deletes the row a write conflicts with"
            )))  # fmt: skip
        for edge in listed if doing != "insert" else ():  # an insert fires no referential action
            if key(edge.parent) != key(current):
                continue
            updating = doing == "update"
            action = edge.on_update if updating else edge.on_delete
            if action not in ACTIONS:
                continue
            found.setdefault(edge.child, f"ON {'UPDATE' if updating else 'DELETE'} {action}{via}")
            todo.append(
                (edge.child, "delete" if action == "CASCADE" and not updating else "update", via)
            )
        for trigger, target, writes in triggers(current, doing) if triggers is not None else ():
            verb = {"insert": "insert into", "update": "update of", "delete": "delete from"}[doing]
            found.setdefault(
                target,
                f"trigger {json_text(trigger, 80)} (on {verb} {json_text(current, 80)}){via}",
            )
            if target != UNKNOWN:
                later = via
                if writes == "replace":
                    writes = "delete"
                    later = (
                        f", after trigger {json_text(trigger, 80)}'s REPLACE deletes rows of "
                        f"{json_text(target, 80)}"
                    )
                todo.append((target, writes, later))
    return list(found.items())
