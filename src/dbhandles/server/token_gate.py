"""``TokenGate``: which bearer tokens could be valid, told on the event loop without a worker thread.

A request past its address's rate of refusals is answered only if its token checks
(``http._past_rate``, ``public._has_valid_token``). Checked in a worker thread each, a flood of
wrong tokens with made-up ids (``dbh_<random 12 hex>_xxx``, ``wrk -c300``) took a thread turn per
request, each token a caller of its own for the fair pool, and made bob's p99 3.7-4.3 times
slower (issue 13). The gate refuses on the loop what cannot be a token: a malformed one, an id no
token has, a secret whose hash is not its id's, a revoked or expired one. It never lets a token in: what it
does not refuse still gets the full check (``TokenManager.authenticate``: expiry, a revocation
made by another process since).

It knows every token's id, secret hash, revocation and expiry, read from the store. A token created since
(by this process or another one on the same home) has an id the gate does not know yet: such a
request waits for a reading of the store that began after it arrived, so no valid token is ever
refused; the readings are shared (one at a time, each serving every request that waits for it)
and spaced (``READ_SPACING_SECONDS``), so a flood of made-up ids costs at most a few readings a
second. A token revoked since the last reading (here or by another process) passes the gate and is
refused at once by the full check, which reads its row.

Who a token's holder is (``owner``) decides more than a refusal: the request is counted in its
actor's share instead of its address's, and an administrator's in neither, its connection trusted.
So ``current_owner`` answers from a reading at most ``OWNER_FRESH_SECONDS`` old (waiting for one,
shared and spaced as the others, when the last is older), and an expired token has no owner from
the moment it expires: a token revoked is counted as its actor's for at most that long (plus one
reading) after the revocation, and then by its address like any caller without a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from dbhandles.clock import iso_now

if TYPE_CHECKING:
    from dbhandles.store import TokenRow

__all__ = [
    "BAD_TOKEN",
    "OWNER_FRESH_SECONDS",
    "READ_SPACING_SECONDS",
    "TOKEN_READINGS",
    "TokenGate",
]

#: The refusal of a token that is not valid, the same for every reason (``TokenManager``'s).
BAD_TOKEN = "the token is not valid (wrong, expired or revoked)"
#: Readings of the store's tokens are at least this far apart (a flood of made-up ids: at most 20
#: a second, each one ``list_tokens``).
READ_SPACING_SECONDS = 0.05
#: ``current_owner`` answers from a reading of the store begun at most this long ago: the bound on
#: how long a revoked token still counts as its actor's (an administrator's: trusted).
OWNER_FRESH_SECONDS = 1.0
#: Whose turn the readings take in the worker threads (``FairPool``): one caller of their own.
TOKEN_READINGS = "(token readings)"
_BEARER = re.compile(r"^\s*bearer\s+dbh_([A-Za-z0-9]{8,32})_([A-Za-z0-9_-]{20,128})\s*$", re.I)


class TokenGate:
    """Every token's ``(secret hash, revoked, expires at)`` by id, read from the store (only
    touched on the event loop).

    Args:
        read: the store's tokens (``TokenManager.list``), awaited (in a worker thread).
        clock: ``time.monotonic`` (tests give their own).
        now: ``clock.iso_now``, what a token's ``expires_at`` is compared with, as
            ``TokenManager.authenticate`` does (tests give their own).
    """

    def __init__(
        self,
        read: Callable[[], Awaitable[list[TokenRow]]],
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], str] = iso_now,
    ) -> None:
        self.read = read
        self.clock = clock
        self.now = now
        self.known: dict[str, tuple[str, bool, str | None]] = {}
        #: Every known token's actor and whether it is an administrator's, by id (``owner``).
        self.owners: dict[str, tuple[str, bool]] = {}
        #: When the last reading that ended began, and when the next may begin (``clock``).
        self.read_at = -math.inf
        self.next_at = -math.inf
        self._reading: asyncio.Future[None] | None = None
        #: Readings made (a count, for tests).
        self.readings = 0

    def verdict(self, authorization: str) -> bool | None:
        """``plausible`` without waiting: False if ``authorization`` cannot be a valid token, True
        if it may be, None if it names an id the gate does not know (only a reading of the store
        begun since may say: ``after_reading``)."""
        match = _BEARER.match(authorization)
        if match is None:
            return False
        found = self.known.get(match.group(1))
        if found is None:
            return None
        secret_hash, revoked, expires_at = found
        if revoked or (expires_at is not None and expires_at < self.now()):
            return False
        given = hashlib.sha256(match.group(2).encode()).hexdigest()
        return hmac.compare_digest(secret_hash, given)

    def owner(self, authorization: str) -> tuple[str, bool] | None:
        """``(actor, is administrator)`` of the token ``authorization`` names when ``verdict``
        says it may be valid (its secret checks), else None. Only the holder of a token's secret
        is ever counted as its actor (``actor_share.ActorShare``)."""
        if self.verdict(authorization) is not True:
            return None
        match = _BEARER.match(authorization)
        return None if match is None else self.owners.get(match.group(1))

    async def current_owner(self, authorization: str) -> tuple[str, bool] | None:
        """``owner`` from a reading of the store begun at most ``OWNER_FRESH_SECONDS`` ago (one
        begun since this call for an id the gate does not know yet), waiting for one when the
        last is older; None too when the store cannot be read (the full check decides)."""
        since = self.clock()
        if self.verdict(authorization) is not None:
            since -= OWNER_FRESH_SECONDS
        if self.read_at < since:
            try:
                await self._read_since(since)
            except Exception:  # counted by its address; the full check reports the store
                return None
        return self.owner(authorization)

    def after_reading(self, authorization: str, done: Callable[[bool], None]) -> None:
        """Call ``done`` (on the event loop) with what ``plausible`` would answer for an id the
        gate does not know yet: once a reading of the store begun now or later ended, whether
        ``authorization`` may be valid then (True too if the store could not be read: the full
        check decides). The readings are shared and spaced as ``plausible``'s."""
        since = self.clock()
        waiter = asyncio.ensure_future(self._read_since(since))

        def ended(reading: asyncio.Future[None]) -> None:
            failed = reading.cancelled() or reading.exception() is not None
            done(failed or self.read_at < since or self.verdict(authorization) is True)

        waiter.add_done_callback(ended)

    async def plausible(self, authorization: str) -> bool:
        """Whether ``authorization`` (an ``Authorization`` header's value) may be a valid token:
        False if it is no ``Bearer dbh_<id>_<secret>``, names an id no token has (after a reading
        of the store begun since this call), or a secret or revocation that is not its token's.
        A store that cannot be read says True (the full check decides)."""
        found = self.verdict(authorization)
        if found is None:
            try:
                await self._read_since(self.clock())
            except Exception:  # the full check reports what is wrong with the store
                return True
            found = self.verdict(authorization) is True  # an id still unknown: none has it
        return found

    async def _read_since(self, since: float) -> None:
        """Return once a reading that began at ``since`` or later ended."""
        while self.read_at < since:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read())
            await asyncio.shield(self._reading)

    async def _read(self) -> None:
        try:
            wait = self.next_at - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            began = self.clock()
            rows = await self.read()
            self.known = {
                row.token_id: (row.secret_hash, row.revoked_at is not None, row.expires_at)
                for row in rows
            }
            self.owners = {row.token_id: (row.actor, row.is_admin) for row in rows}
            self.read_at = began
            self.readings += 1
        finally:
            self.next_at = self.clock() + READ_SPACING_SECONDS
            self._reading = None
