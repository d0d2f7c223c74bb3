"""An actor's own handle on another actor's database is re-decided on every use.

A non-admin actor may open another actor's database when its owner shares it (``soft`` isolation, a
grant); the handle is its own from then on. Its owner may narrow that later (a stricter isolation, a
revoked or narrower grant): the handle must then lose what its opener lost, at its next use, through
every door (HTTP, a WebSocket's cached decisions, query cursors, a running job's re-checks), since
every one of them asks ``policy.authorize``. The rights are asked of the handle store again, and
kept (``BorrowedRights``) only for one access generation (``security/generation.py``), which every
change of isolation, grant or ownership bumps.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from dbhandles.context import Context
from dbhandles.errors import AccessDenied, PathNotAllowed
from dbhandles.security import paths
from dbhandles.security.permissions import Permissions
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.registry import HandleEntry
    from dbhandles.security.generation import AccessGeneration
    from dbhandles.security.policy import AccessPolicy

__all__ = ["BorrowedRights"]

_MAX_KEPT = 4096

#: What one question answered: the ceiling (``None``: the actor's own database) or the refusal.
_Answer = tuple[Permissions | None, str | None, str]


class BorrowedRights:
    """The rights of actors on other actors' databases behind their own handles (thread-safe).

    Args:
        policy: whose ``database_rights`` decide.
    """

    def __init__(self, policy: AccessPolicy) -> None:
        self.policy = policy
        #: Set by the service: answers are kept for one generation (``None``: never kept).
        self.generation: AccessGeneration | None = None
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str, bool], _Answer] = {}
        self._stamp: tuple[int, str | None] | None = None

    def check(self, context: Context, entry: HandleEntry, operations: set[str]) -> None:
        """Refuse ``operations`` through ``context``'s own handle ``entry`` unless the database's
        owner still lets ``context`` do them, with the restrictions the handle applies.

        Raises:
            AccessDenied: the owner narrowed the database (isolation, grant) since the handle was
                opened.
        """
        database = self.policy.database_of(entry.config)
        if database is None:
            return  # a memory database or a server: its opener's alone
        ceiling, refusal, owner = self._rights(context, entry, database)
        if refusal is None and ceiling is not None:
            refusal = _beyond(ceiling, entry.permissions, operations)
        if refusal is not None:
            raise AccessDenied(
                f"Access denied: {json_text(owner, 80)} changed who may use this database since this handle "
                f"was opened ({refusal}); close this handle (data/close), and open the database "
                "again if it is still shared with you"
            )

    def _rights(self, context: Context, entry: HandleEntry, database: str) -> _Answer:
        readonly = bool(getattr(entry.config, "readonly", False))
        key = (context.actor, database, readonly)
        stamp = self.generation.current() if self.generation is not None else None
        with self._lock:
            if stamp is not None and stamp == self._stamp:
                kept = self._kept.get(key)
                if kept is not None:
                    return kept
            elif stamp != self._stamp:
                self._kept.clear()
                self._stamp = stamp
        answer = self._ask(context, database, readonly)
        if stamp is not None:
            with self._lock:
                if stamp == self._stamp:
                    if len(self._kept) >= _MAX_KEPT:
                        self._kept.clear()
                    self._kept[key] = answer
        return answer

    def _ask(self, context: Context, database: str, readonly: bool) -> _Answer:
        policy = self.policy
        record = policy.store.get_database(database)
        if record is None or record.owner == context.actor:
            return None, None, context.actor
        real = Path(database.removeprefix("file:"))
        place = paths.place_of(policy.settings, context, real, "database") or "other"
        try:
            ceiling, _ = policy.database_rights(context, database, place, readonly=readonly)
        except (PathNotAllowed, AccessDenied):
            return (
                None,
                f"it is not shared with {json_text(context.actor, 80)} any more",
                record.owner,
            )
        return ceiling, None, record.owner


def _beyond(ceiling: Permissions, handle: Permissions | None, operations: set[str]) -> str | None:
    """Why ``handle`` (a handle's permissions) would do more than ``ceiling`` now, or ``None``."""
    for op in sorted(operations):
        # What the handle itself refuses is refused by its own check (``permission_denied``).
        if (handle is None or handle.allows(op)) and not ceiling.allows(op):
            return f"{op} is not allowed any more"
    if ceiling.row_filter is not None:
        mine = handle.row_filter if handle is not None else None
        parts = [mine, *((mine or {}).get("$and") or ())] if mine is not None else []
        if ceiling.row_filter not in parts:
            return "its rows are limited by a row filter this handle does not apply"
    denied = {c.lower() for c in (handle.denied_collections if handle is not None else ())}
    if any(c.lower() not in denied for c in ceiling.denied_collections):
        return "some collections are denied that this handle does not deny"
    if ceiling.allowed_collections is not None:
        allowed = {c.lower() for c in ceiling.allowed_collections}
        mine_allowed = handle.allowed_collections if handle is not None else None
        if mine_allowed is None or any(c.lower() not in allowed for c in mine_allowed):
            return "only some collections are allowed, more than this handle allows"
    return None
