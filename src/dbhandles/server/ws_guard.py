"""What a WebSocket may go on doing after its upgrade: its token is re-checked while it stays open, and
the events it receives are only those of handles its actor may read.

A socket is authenticated once, at the upgrade, but may stay open for hours: a token revoked (or
expired) in the meantime must stop working there too, not only on new connections. And events carry
records: a subscriber to ``data:*`` must not receive the writes made through a handle its actor could
not read (another actor's ``strict`` handle, a collection the handle denies), and a job's events
(``import:*``, ``export:done``, ``copy:*``, which name the files and handles of the actor who ran
it, under ``actor``) reach that actor and administrators only. Both decisions reuse the
library's own checks (``TokenManager.authenticate`` and ``policy.authorize``), so the socket is held
to the same rules as every command.

Decisions are cached, but never across a change of access: each is kept with the access generation
it was made in (``security/generation.py``), which every grant, revocation, closed handle, changed
isolation and revoked token bumps. After ``data/revoke`` (or ``token/revoke``) returns, the next event
is decided afresh, so no further event reaches the actor that lost access; a changed generation
also makes the next request re-check the socket's token at once.

A socket refused at its upgrade is told why here too (``deny_upgrade``, ``refuse_socket``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from dbhandles.commands import builtin_commands
from dbhandles.commands.envelope import error_envelope
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError
from dbhandles.events import Event
from dbhandles.security.redaction import AUDIENCE_KEY
from dbhandles.server.auth import authenticate

if TYPE_CHECKING:
    from dbhandles.service import Service

COMMANDS = builtin_commands()

__all__ = ["RECHECK_SECONDS", "WATCH_SECONDS", "Guard", "deny_upgrade", "refuse_socket"]

#: A request re-checks the socket's token when the last check is older than this.
RECHECK_SECONDS = 1.0
#: An idle socket (events only) re-checks its token this often.
WATCH_SECONDS = 5.0
#: How long one "may this actor see events of this handle and collection" answer is reused at most
#: (a change of access ends it at once: see the module docstring).
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
        #: The access generation the cached decisions belong to (``None``: not looked at yet).
        self._generation: tuple[int, str | None] | None = None
        #: The token was refused once: nothing more is delivered (the socket is being closed).
        self._refused = False

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
        if not force and now - self._checked < RECHECK_SECONDS and not self._access_changed():
            return
        try:
            authenticate(self.service.tokens, self.authorization, None, require_token=True)
        except DbHandlesError:
            self._refused = True
            raise
        self._checked = now

    def generation_now(self) -> tuple[int, str | None]:
        """The access generation now (``security/generation.py``; a read of the handle store)."""
        return self.service.registry.access_generation.current()

    def _access_changed(self, generation: tuple[int, str | None] | None = None) -> bool:
        """Whether the access generation (``generation``, read now when None) moved since the
        last look; if so, forget every decision (and make the token's next check a real one)."""
        if generation is None:
            generation = self.generation_now()
        with self._lock:
            if generation == self._generation:
                return False
            self._generation = generation
            self._decisions.clear()
            self._checked = float("-inf")
        return True

    def may_see(self, event: Event, generation: tuple[int, str | None] | None = None) -> bool:
        """Whether this connection's actor could read what ``event`` carries (through its handle).

        Args:
            event: the event.
            generation: the access generation read after ``event`` was published (the fan-out
                reads it once for every socket and event of a batch); None reads it now.
        """
        if self._refused:
            return False
        try:
            if self._access_changed(generation):
                self.recheck()  # a revoked token sees nothing more, even before the socket closes
        except DbHandlesError:
            return False
        if self.context.is_admin:
            return True
        owner = event.payload.get(AUDIENCE_KEY)
        if owner is not None and owner != self.context.actor:
            return False  # a job's event (import, export, copy): its own actor's alone
        handle = event.payload.get("dbHandle")
        collection = event.payload.get("collection")
        key = (str(handle), collection if isinstance(collection, str) else None)
        now = time.monotonic()
        with self._lock:
            cached = self._decisions.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        with self._lock:
            generation = self._generation
        allowed = self._decide(key[0], key[1])
        with self._lock:
            if generation != self._generation:
                return allowed  # decided while access changed: not kept for the next events
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


async def refuse_socket(websocket: WebSocket, exc: DbHandlesError, code: int) -> None:
    """Accept, say why in one ``error``, and close with ``code``: a browser cannot read a refused
    upgrade, so it learns why this way."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.accept()
        await websocket.send_text(orjson.dumps({"type": "error", "id": None, "error": exc.message,
                                          "code": exc.code}).decode())  # fmt: skip
        await websocket.close(code=code)


async def deny_upgrade(
    websocket: WebSocket, exc: DbHandlesError, retry_after: int | None = None
) -> None:
    """Refuse the upgrade with the error envelope and its status (403, 429), or a bare close;
    ``Retry-After`` (whole seconds) when ``retry_after`` is given (a refusal of the rate)."""
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    try:
        await websocket.send_denial_response(
            Response(orjson.dumps(error_envelope(exc)), status_code=exc.http_status,
                     headers=headers, media_type="application/json")
        )  # fmt: skip
    except RuntimeError:  # the server cannot send a response to an upgrade: close it instead
        await websocket.close(code=1008)
