"""``ActorShare``: the requests in progress and WebSockets open of each actor known from the
headers, capped per actor (``max_requests_per_actor``) apart from its address's count.

The address's count (``max_connections_per_address``) is shared by every actor behind that address
(loopback, a proxy, a NAT). Counted there, 500 slow bodies of alice's token (each ``Content-Length:
60000``, a byte a second) held all 256 of loopback's requests in progress until the body deadline:
bob's requests got 429, his WebSocket 1013 (issue 13). A request whose token the gate knows
(``TokenGate.owner``: only the holder of its secret) is counted here from the moment its headers
arrived, before any of its body is read, and not against its address: one actor's slow bodies or
flood refuse only that actor. An administrator's token is counted nowhere (it must always get in).
"""

from __future__ import annotations

from collections import Counter

from dbhandles.errors import TooManyRequests
from dbhandles.values import json_text

__all__ = ["RETRY_AFTER_SECONDS", "ActorShare", "retry_after_of"]

#: The ``Retry-After`` of a refusal for the actor's share: its own requests end within the request
#: deadlines, the first of them frees a place.
RETRY_AFTER_SECONDS = 1
_RETRY_KEY = "retryAfterSeconds"


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
        #: Requests and sockets refused for their actor's share (a count, for tests and logs).
        self.refused = 0

    def enter(self, actor: str) -> None:
        """Count one more request in progress (or WebSocket open) of ``actor``.

        Raises:
            TooManyRequests: ``actor`` holds ``limit`` of them already (with ``retryAfterSeconds``).
        """
        if self.held[actor] >= self.limit:
            self.refused += 1
            raise TooManyRequests(
                f"{json_text(actor, 80)} already has {self.limit} requests in progress or "
                "WebSockets open (the limit is DBHANDLES_MAX_REQUESTS_PER_ACTOR): this one was "
                "not run; wait for some to finish (bodies still arriving count too)",
                field="connection",
                details={"limit": self.limit, _RETRY_KEY: RETRY_AFTER_SECONDS},
            )
        self.held[actor] += 1

    def leave(self, actor: str) -> None:
        self.held[actor] -= 1
        if self.held[actor] <= 0:
            del self.held[actor]
