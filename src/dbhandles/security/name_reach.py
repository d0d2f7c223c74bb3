"""What each collection name of a command reaches in a handle's database, for the access decision
(``policy.authorize``): the table actually read, the tables a view reads, the tables a write reaches
through foreign-key actions and triggers, and, under a row filter, the tables whose writes fill it.

Permissions and the audit log decide on what is reached, never on the spelling asked for
(docs/security.md §5 "Cascades on restricted handles", "Row filters and views").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dbhandles.errors import DbHandlesError
from dbhandles.security.permissions import ResolvedName

if TYPE_CHECKING:
    from dbhandles.handle_entry import HandleEntry
    from dbhandles.registry import HandleRegistry

__all__ = ["resolve_names"]


def resolve_names(
    registry: HandleRegistry, entry: HandleEntry, names: Sequence[str], cascades: bool = False
) -> dict[str, ResolvedName]:
    """``{name: ResolvedName}`` for each of ``names`` in ``entry``'s database
    (``Session.resolve_collection``). A name the database cannot resolve (an ambiguous one: the
    command will say so) stays as asked for. ``cascades``: also the tables a write of each (a
    collection's too: a shared file is its owner's SQL) reaches through foreign-key actions and
    triggers (``Session.cascade_targets``).

    Raises:
        DbHandlesError: the handle's database cannot be reached (``registry.lease``).
    """
    found: dict[str, ResolvedName] = {}
    with registry.lease(entry) as (_, adapter), adapter.session() as session:
        key = session.collection_key
        for name in names:
            if name in found:
                continue
            try:
                table = session.table(name)
                stored = session.resolve_collection(name)
            except DbHandlesError:
                table, stored = None, name
            fields = None
            reads: tuple[tuple[str, str], ...] = ()
            if table is not None:
                fields = frozenset(c.get("field", c["name"]) for c in table.get("columns", ()))
                reads = tuple((s, key(s)) for s in session.view_sources(stored))
            deletes: tuple[tuple[str, str, str], ...] = ()
            updates: tuple[tuple[str, str, str], ...] = ()
            inserts: tuple[tuple[str, str, str], ...] = ()
            if cascades:
                deletes = tuple((t, key(t), how) for t, how in session.cascade_targets(stored))
                updates = tuple(
                    (t, key(t), how) for t, how in session.cascade_targets(stored, True)
                )
                inserts = tuple(
                    (t, key(t), how) for t, how in session.cascade_targets(stored, insert=True)
                )
            kind = None if table is None else str(table.get("kind", "table"))
            # What a row filter cannot restrict: values the database writes here from other
            # tables' rows (a trigger, ON UPDATE CASCADE).
            derived = () if entry.row_filter is None else tuple(session.derived_from(stored))
            found[name] = ResolvedName(
                stored, key(stored), fields, reads, deletes, updates, inserts, derived, kind
            )
    return found
