"""``ActorShare``: the requests in progress and WebSockets open of each actor known from the
headers, capped per actor (``max_requests_per_actor``) apart from its address's count.

The address's count (``max_connections_per_address``) is shared by every actor behind that address
(loopback, a proxy, a NAT). Counted there, 500 slow bodies of alice's token (each ``Content-Length:
60000``, a byte a second) held all 256 of loopback's requests in progress until the body deadline:
bob's requests got 429, his WebSocket 1013 (issue 13). A request whose token the gate knows
(``TokenGate.owner``: only the holder of its secret) is counted here from the moment its headers
arrived, before any of its body is read, and not against its address: one actor's slow bodies or
flood refuse only that actor. An administrator's token is counted nowhere (it must always get in).

A command request past its actor's share waits for a place (``admit``: first come, first served,
at most ``WAIT_SECONDS`` and ``WAITING_PER_PLACE`` waiters a place) rather than being refused at
once: refused at once, ``wrk -c400`` of one token reconnected after every 429 and the event loop
spent itself accepting, parsing and refusing (the other actor's p50 65 times its quiet one). A
waiting request holds only its connection, which sends nothing more meanwhile.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque

from dbhandles.errors import TooManyRequests
from dbhandles.values import json_text

__all__ = ["RETRY_AFTER_SECONDS", "WAITING_PER_PLACE", "WAIT_SECONDS", "ActorShare",
           "retry_after_of"]  # fmt: skip

#: The ``Retry-After`` of a refusal for the actor's share: its own requests end within the request
#: deadlines, the first of them frees a place.
RETRY_AFTER_SECONDS = 1
_RETRY_KEY = "retryAfterSeconds"
#: How long a request past its actor's share waits for a place before its 429, and how many may
#: wait per place of the share.
WAIT_SECONDS = 5.0
WAITING_PER_PLACE = 32


def retry_after_of(exc: Exception) -> int | None:
    """The ``Retry-After`` (seconds) a refusal asks for, if it is ``ActorShare``'s."""
    if isinstance(exc, TooManyRequests):
        retry = exc.details.get(_RETRY_KEY)
        return retry if isinstance(retry, int) else None
    return None


class ActorShare:
    """Requests in progress plus WebSockets open per actor (only touched on the event loop).

    Args:
        limit: ``max_requests_per_actor``.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held: Counter[str] = Counter()
        #: Requests waiting for a place, per actor, oldest first (``admit``).
        self.waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self.wait_seconds = WAIT_SECONDS
        self.max_waiting = limit * WAITING_PER_PLACE
        #: Requests and sockets refused for their actor's share (a count, for tests and logs).
        self.refused = 0

    def enter(self, actor: str) -> None:
        """Count one more request in progress (or WebSocket open) of ``actor``.

        Raises:
            TooManyRequests: ``actor`` holds ``limit`` of them already (with ``retryAfterSeconds``).
        """
        if self.held[actor] >= self.limit:
            raise self._refusal(actor)
        self.held[actor] += 1

    async def admit(self, actor: str) -> None:
        """``enter``, waiting for a place when ``actor`` holds ``limit`` already: the place of
        the first of its requests to end goes to its oldest waiter.

        Raises:
            TooManyRequests: no place within ``wait_seconds``, or ``max_waiting`` wait already.
        """
        queue = self.waiting.get(actor)
        if self.held[actor] < self.limit and not queue:
            self.held[actor] += 1
            return
        if not self.wait_seconds or (queue is not None and len(queue) >= self.max_waiting):
            raise self._refusal(actor)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.waiting.setdefault(actor, deque()).append(future)
        timer = loop.call_later(self.wait_seconds, _expire, future)
        try:
            await future
        except TimeoutError:
            raise self._refusal(actor) from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.leave(actor)  # given a place it will not use: to the next
            raise
        finally:
            timer.cancel()
            waiting = self.waiting.get(actor)
            if waiting is not None:
                if future in waiting:
                    waiting.remove(future)
                if not waiting:
                    del self.waiting[actor]

    def _refusal(self, actor: str) -> TooManyRequests:
        self.refused += 1
        return TooManyRequests(
            f"{json_text(actor, 80)} already has {self.limit} requests in progress or "
            "WebSockets open (the limit is DBHANDLES_MAX_REQUESTS_PER_ACTOR): this one was "
            "not run; wait for some to finish (bodies still arriving count too)",
            field="connection",
            details={"limit": self.limit, _RETRY_KEY: RETRY_AFTER_SECONDS},
        )

    def leave(self, actor: str) -> None:
        """One request (or socket) of ``actor`` ended: its place goes to its oldest waiter."""
        waiting = self.waiting.get(actor)
        while waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_result(None)  # the place passes on: ``held`` stays
                return
        self.held[actor] -= 1
        if self.held[actor] <= 0:
            del self.held[actor]


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
