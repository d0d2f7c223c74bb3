"""What a WebSocket may go on doing after its upgrade: its token is re-checked while it stays open, and
the events it receives are only those of handles its actor may read.

A socket is authenticated once, at the upgrade, but may stay open for hours: a token revoked (or
expired) in the meantime must stop working there too, not only on new connections. And events carry
records: a subscriber to ``data:*`` must not receive the writes made through a handle its actor could
not read (another actor's ``strict`` handle, a collection the handle denies). Both decisions reuse the
library's own checks (``TokenManager.authenticate`` and ``policy.authorize``), so the socket is held
to the same rules as every command.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from dbhandles.commands import builtin_commands
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError
from dbhandles.events import Event
from dbhandles.server.auth import authenticate

if TYPE_CHECKING:
    from dbhandles.service import Service

COMMANDS = builtin_commands()

__all__ = ["RECHECK_SECONDS", "WATCH_SECONDS", "Guard"]

#: A request re-checks the socket's token when the last check is older than this.
RECHECK_SECONDS = 1.0
#: An idle socket (events only) re-checks its token this often.
WATCH_SECONDS = 5.0
#: How long one "may this actor see events of this handle and collection" answer is reused.
DECISION_SECONDS = 1.0
_MAX_DECISIONS = 1024


class Guard:
    """The rules one connection lives by, checked from worker threads and event publishers."""

    def __init__(self, service: Service, context: Context, authorization: str | None) -> None:
        self.service = service
        self.context = context
        #: The header (or ``?token=``) the socket was opened with; None for an anonymous socket.
        self.authorization = authorization
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, str | None], tuple[bool, float]] = {}

    @property
    def has_token(self) -> bool:
        return self.authorization is not None

    def recheck(self, force: bool = False) -> None:
        """Check the socket's token again (at most once per ``RECHECK_SECONDS`` unless ``force``).

        Raises:
            Unauthorized: the token was revoked or has expired since the socket opened.
        """
        if self.authorization is None:
            return
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_SECONDS:
            return
        authenticate(self.service.tokens, self.authorization, None, require_token=True)
        self._checked = now

    def may_see(self, event: Event) -> bool:
        """Whether this connection's actor could read what ``event`` carries (through its handle)."""
        if self.context.is_admin:
            return True
        handle = event.payload.get("dbHandle")
        collection = event.payload.get("collection")
        key = (str(handle), collection if isinstance(collection, str) else None)
        now = time.monotonic()
        with self._lock:
            cached = self._decisions.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        allowed = self._decide(key[0], key[1])
        with self._lock:
            if len(self._decisions) >= _MAX_DECISIONS:
                self._decisions.clear()
            self._decisions[key] = (allowed, now + DECISION_SECONDS)
        return allowed

    def _decide(self, handle: str, collection: str | None) -> bool:
        # The same question the dispatcher asks before a read: would data/list (or data/schema for
        # events without a collection) through this handle be allowed for this actor?
        command = COMMANDS["data/list" if collection is not None else "data/schema"]
        fields: dict[str, Any] = {"db_handle": handle}
        if collection is not None:
            fields["collection"] = collection
        try:
            entry = self.service.registry.resolve(handle)
            self.service.authorize(
                command, command.params.model_construct(**fields), self.context, entry
            )
        except DbHandlesError:
            return False
        return True
