"""What each collection name of a command reaches in a handle's database, for the access decision
(``policy.authorize``): the table actually read, the tables a view reads, the tables a write reaches
through foreign-key actions and triggers, and, under a row filter, the tables whose writes fill it.

Permissions and the audit log decide on what is reached, never on the spelling asked for
(docs/security.md §5 "Cascades on restricted handles", "Row filters and views"). What was found
is read again inside the command's own transaction, its relations locked first
(``adapters.reach_guard``): a DDL uncommitted while it was found cannot change it unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dbhandles.adapters import reach_guard
from dbhandles.adapters.foreign_cascades import UNKNOWN
from dbhandles.errors import DbHandlesError
from dbhandles.security.permissions import ResolvedName

if TYPE_CHECKING:
    from dbhandles.handle_entry import HandleEntry
    from dbhandles.registry import HandleRegistry

__all__ = ["resolve_name", "resolve_names"]


def resolve_names(
    registry: HandleRegistry, entry: HandleEntry, names: Sequence[str], cascades: bool = False
) -> dict[str, ResolvedName]:
    """``{name: ResolvedName}`` for each of ``names`` in ``entry``'s database
    (``resolve_name``), and the same left for the command's sessions to check again
    (``reach_guard.expect``).

    Raises:
        DbHandlesError: the handle's database cannot be reached (``registry.lease``).
    """
    found: dict[str, ResolvedName] = {}
    filtered = entry.row_filter is not None
    with registry.lease(entry) as (_, adapter), adapter.session() as session:
        for name in names:
            if name not in found:
                found[name] = resolve_name(session, name, cascades, filtered)
    relations: dict[str, None] = {}
    for resolved in found.values():
        relations[resolved.name] = None
        for row in (*resolved.reads, *resolved.deletes, *resolved.updates, *resolved.inserts):
            if not row[0].startswith(UNKNOWN):
                relations[row[0]] = None

    def again(session: Any, name: str) -> ResolvedName:
        return resolve_name(session, name, cascades, filtered)

    reach_guard.expect(
        reach_guard.Guard(adapter, (cascades, filtered), dict(found), tuple(relations), again)
    )
    return found


def resolve_name(session: Any, name: str, cascades: bool, filtered: bool) -> ResolvedName:
    """What ``name`` reaches, read in ``session`` (``Session.resolve_collection``). A name the
    database cannot resolve (an ambiguous one: the command will say so) stays as asked for.
    ``cascades``: also the tables a write of it (a collection's too: a shared file is its
    owner's SQL) reaches through foreign-key actions and triggers (``Session.cascade_targets``);
    ``filtered``: the handle has a row filter (``Session.derived_from``)."""
    key = session.collection_key
    try:
        table = session.table(name)
        stored = session.resolve_collection(name)
    except DbHandlesError:
        table, stored = None, name
    fields = None
    if table is not None:
        fields = frozenset(c.get("field", c["name"]) for c in table.get("columns", ()))
    # A collection's own table too: another role may have added code its reads run (a
    # PostgreSQL row-level security policy, an index's operator class, a child table); an
    # adapter without such reports nothing.
    reads = tuple((s, key(s)) for s in session.view_sources(stored))
    deletes: tuple[tuple[str, str, str], ...] = ()
    updates: tuple[tuple[str, str, str], ...] = ()
    inserts: tuple[tuple[str, str, str], ...] = ()
    if cascades:
        deletes = tuple((t, key(t), how) for t, how in session.cascade_targets(stored))
        updates = tuple((t, key(t), how) for t, how in session.cascade_targets(stored, True))
        inserts = tuple((t, key(t), how) for t, how in session.cascade_targets(stored, insert=True))
    kind = None if table is None else str(table.get("kind", "table"))
    # What a row filter cannot restrict: values the database writes here from other tables'
    # rows (a trigger, ON UPDATE CASCADE).
    derived = tuple(session.derived_from(stored)) if filtered else ()
    return ResolvedName(
        stored, key(stored), fields, reads, deletes, updates, inserts, derived, kind
    )
