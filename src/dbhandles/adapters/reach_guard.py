"""What a restricted handle's access decision found each name reaching, checked again inside the
transaction of the command's own statements (docs/security.md "Cascades on restricted handles").

The access decision (``security.policy.authorize``) reads the catalog in a transaction of its own
(``security.name_reach.resolve_names``), before the command's session begins: a DDL still
uncommitted then (``CREATE POLICY ... USING (f())``, ``CREATE TRIGGER``, ``ALTER TABLE ...
ENABLE TRIGGER``) is not seen, and commits before the command's statement runs. So the decision
leaves here, for the rest of the command, what it found (``Guard``): an adapter whose catalog
other sessions may change (``postgres_session``) locks the relations each name reaches as its
statements will (``ACCESS SHARE`` to read, ``ROW EXCLUSIVE`` to write: a DDL changing what they
run holds a lock conflicting with one of them, and must commit or abort first), then reads what
each name reaches again in that transaction, and refuses the command when it is not what was
decided on (``PermissionDenied``: run it again, to be decided on what is there now).

Reading again is skipped when it cannot find anything else: an adapter whose checks fingerprint
the catalog (``postgres_closure_cache``) notes each state it read (``note``); a decision whose
session read one state throughout, in one snapshot, keeps it (``Guard.states``); when the
command's transaction, after its locks, reads that same state, every catalog row the decision
read is as it was, and so is what each name reaches.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["Guard", "clear", "current", "expect", "note"]


@dataclass(frozen=True)
class Guard:
    """``adapter``: the adapter the decision read (the guard holds for its sessions only);
    ``asked``: what the decision was asked besides the names (a later decision asked the same
    replaces this one); ``found``: each name asked -> what it reached (compared with ``==``);
    ``relations``: the relations those reach, as stored (what to lock); ``resolve``: ``(session,
    name)`` -> what ``name`` reaches, read in that session's transaction; ``states``: the
    catalog states (``(database, state)``, ``note``) read while deciding (set by ``expect``)."""

    adapter: object
    asked: Hashable
    found: dict[str, Hashable]
    relations: tuple[str, ...]
    resolve: Callable[[Any, str], Hashable]
    states: tuple[tuple[Hashable, Hashable | None], ...] = ()

    def unchanged(self, database: Hashable, state: Hashable) -> bool:
        """Whether the decision read ``database`` in ``state`` and only in it, each time in one
        snapshot (no ``None`` noted): then what each name reaches is what it found."""
        return bool(self.states) and all(s == (database, state) for s in self.states)

    def changed(self, session: Any) -> list[str]:
        """The names whose reach read in ``session``'s transaction is not what was decided on,
        sorted."""
        return sorted(n for n, was in self.found.items() if self.resolve(session, n) != was)


#: The command's guards: one per decision (a copy decides on its source and its target).
_GUARDS: ContextVar[tuple[Guard, ...]] = ContextVar("dbhandles_reach_guards", default=())
#: The catalog states noted since the last decision (``note``), for the next one (``expect``).
_NOTED: ContextVar[tuple[tuple[Hashable, Hashable | None], ...]] = ContextVar(
    "dbhandles_reach_states", default=()
)


def note(database: Hashable, state: Hashable | None) -> None:
    """A check read ``database``'s catalog in ``state`` (``None``: in no single snapshot, so no
    state a later read may be compared with)."""
    _NOTED.set((*_NOTED.get(), (database, state)))


def expect(guard: Guard) -> None:
    """Leave ``guard`` for the rest of the command (the next one's ``clear`` ends it), in place
    of an earlier decision on the same names of the same adapter (a long command's batches),
    with the catalog states noted since the previous decision (``Guard.states``)."""
    guard = replace(guard, states=_NOTED.get())
    _NOTED.set(())
    kept = tuple(
        g
        for g in _GUARDS.get()
        if not (
            g.adapter is guard.adapter
            and g.asked == guard.asked
            and g.found.keys() == guard.found.keys()
        )
    )
    _GUARDS.set((*kept, guard))


def current(adapter: object) -> tuple[Guard, ...]:
    """The command's guards that hold for ``adapter``'s sessions."""
    return tuple(g for g in _GUARDS.get() if g.adapter is adapter)


def clear() -> None:
    """Before a command's access decision: no guard of an earlier command holds in it."""
    _GUARDS.set(())
    _NOTED.set(())
