"""``Wire``: the connections each client address holds and the answer bytes each caller has not
read, counted for ``connections.limited_protocol`` (and ``http.py``), and the refusals it writes."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import TYPE_CHECKING, Protocol

import orjson

from dbhandles.commands.envelope import error_envelope
from dbhandles.errors import DbHandlesError, ServerUnreachable, TooManyRequests

if TYPE_CHECKING:
    from dbhandles.settings import Settings

__all__ = ["SMALL_ANSWER", "Held", "Wire", "refusal_bytes"]

log = logging.getLogger(__name__)

#: Answers up to this size are always written, whatever the caller left unread: acknowledgements
#: of writes (which ran and must be reported) stay far below it.
SMALL_ANSWER = 64 * 1024
_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def refusal_bytes(status: int, exc: DbHandlesError, *, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 answer (status line, headers, envelope) that closes the connection, with
    ``Retry-After`` (whole seconds) when ``retry_after`` is given."""
    body = orjson.dumps(error_envelope(exc))
    retry = b"" if retry_after is None else b"retry-after: %d\r\n" % retry_after
    head = (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"%sconnection: close\r\n\r\n" % (status, _REASONS[status], len(body), retry)
    )
    return head + body


class Held(Protocol):
    """What ``Wire`` asks of a connection it counts (``limited_protocol``'s protocol)."""

    def evictable(self) -> bool:
        """Whether no request of it is being run (so closing it loses nothing that ran)."""

    def evict(self, refusal: bytes) -> None:
        """Write ``refusal`` and close."""

    def evict_after_answer(self) -> None:
        """Read no more requests, and close once the one being answered (a refusal in its pause:
        ``Wire.refusing``) was written."""


def _decrement(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]


class Wire:
    """Connections per address and unread answer bytes per caller (only touched on the event loop).

    Args:
        settings: ``max_connections``, ``max_connections_per_address``, ``header_timeout_seconds``,
            ``max_header_bytes`` and ``max_unsent_bytes_per_actor`` (0 turns either off).
    """

    def __init__(self, settings: Settings) -> None:
        self.max_connections = settings.max_connections
        self.per_address = settings.max_connections_per_address
        self.header_timeout = settings.header_timeout_seconds
        self.max_header_bytes = settings.max_header_bytes
        self.max_unsent = settings.max_unsent_bytes_per_actor
        #: Seconds a connection whose unsent answers hold its next request may take nothing of
        #: them before it is cut (0: never), and how many were (a count, for tests and logs).
        self.write_timeout = settings.public_write_timeout_seconds
        self.stuck = 0
        #: HTTP connections open per client address that have not authenticated (``trust``).
        self.open: Counter[str] = Counter()
        #: Those connections per address, oldest first, and the address of each.
        self._untrusted: dict[str, dict[asyncio.Transport, Held]] = {}
        self._address: dict[asyncio.Transport, str] = {}
        #: Connections a request authenticated on, per actor (``trust``), and the actor of each.
        self.trusted: Counter[str] = Counter()
        self._trusted: dict[asyncio.Transport, str] = {}
        #: The connections that carry (or carried) answers of each caller, and the reverse.
        self._carriers: dict[str, set[asyncio.Transport]] = {}
        self._caller: dict[asyncio.Transport, str] = {}
        #: Connections closed to make room whose loss uvicorn has not reported yet: they still
        #: count among ``others`` (``admit``), so one newcomer closes one connection, not two.
        self.leaving = 0
        #: Connections whose request was refused for its address's rate and waits out the pause
        #: before its 429 (``public.paused_refusal``): closable to make room as an idle one is. Held
        #: as running, 256 of them (``wrk -c300`` without a token) locked every newcomer out: bob's
        #: token, the administrator's ``jtag``, ``/health`` (issue 13).
        self.refusing: set[asyncio.Transport] = set()

    def admit(
        self, address: str, others: int, transport: asyncio.Transport, held: Held
    ) -> bytes | None:
        """Count a new connection ``held`` from ``address`` (``others`` are open already), or the
        answer that refuses it (``refusal_bytes``): past ``max_connections`` in all, or past
        ``max_connections_per_address`` connections of ``address`` that have not authenticated
        (``trust``), when none of those can make room.

        Making room: the oldest connection that has not authenticated and has no request being run
        (idle, a head or a body still arriving: nothing of it ran, or its request refused and
        waiting out the refusal's pause: ``refusing``, closed once that refusal is sent) is
        answered and closed: of
        ``address`` past its limit (429), of the address holding the most such connections past
        ``max_connections`` (503). So a flood of connections that send nothing, or trickle, from
        one address or many, can never lock out a newcomer (the administrator's own ``jtag``, its
        ``/health``, another actor with a token): it only loses its own oldest connections. A
        newcomer is refused only while every connection that could make room runs a request,
        which ends within the request deadlines.
        """
        full = self.max_connections and others - self.leaving >= self.max_connections
        if full and (refused := self._room_or_refusal(None, 503, ServerUnreachable, (
            f"the server holds {self.max_connections} connections (the limit is "
            "DBHANDLES_MAX_CONNECTIONS): this one, the oldest without a token or a request "
            "running, of the address holding the most, was closed to make room; nothing of it "
            "ran"), (
            f"the server already holds {self.max_connections} connections, each "
            "authenticated or running a request (the limit is DBHANDLES_MAX_CONNECTIONS); "
            "try again in a moment"))):  # fmt: skip
            return refused
        crowded = self.per_address and self.open[address] >= self.per_address
        if crowded and (refused := self._room_or_refusal(address, 429, TooManyRequests, (
            f"{address} opened more than {self.per_address} connections that have not "
            "authenticated (the limit is DBHANDLES_MAX_CONNECTIONS_PER_ADDRESS): this one, "
            "the oldest without a request running, was closed to make room; nothing of it "
            "ran"), (
            f"{address} already has {self.per_address} connections open that have not "
            "authenticated, each running a request (the limit is "
            "DBHANDLES_MAX_CONNECTIONS_PER_ADDRESS); reuse or close some"))):  # fmt: skip
            return refused
        self._untrusted.setdefault(address, {})[transport] = held
        self._address[transport] = address
        self.open[address] += 1
        return None

    def _room_or_refusal(
        self,
        address: str | None,
        status: int,
        error: type[ServerUnreachable | TooManyRequests],
        closed: str,
        refused: str,
    ) -> bytes | None:
        """None once a connection is closed with ``status`` and ``closed`` to make room
        (``_make_room``), else the answer refusing the newcomer with ``refused``."""
        if self._make_room(address, refusal_bytes(status, error(closed, field="connection"))):
            return None
        return refusal_bytes(status, error(refused, field="connection"))

    def _make_room(self, address: str | None, refusal: bytes) -> bool:
        """Close the oldest connection of ``address`` (None: of the address holding the most, then
        the next) that has not authenticated and runs no request, with ``refusal``; False if none
        can be. The closed connection counts in ``leaving`` until it is lost (``gone``)."""
        if address is not None:
            addresses = [address]
        else:
            addresses = sorted(self._untrusted, key=lambda a: len(self._untrusted[a]), reverse=True)
        for key in addresses:
            victim = next(
                (t for t, h in self._untrusted.get(key, {}).items()
                 if t in self.refusing or h.evictable()),
                None,
            )  # fmt: skip
            if victim is not None:
                held = self._untrusted[key][victim]
                paused = victim in self.refusing
                self.release(victim)
                self.leaving += 1
                try:
                    if paused:
                        # Its place is free now, its connection closed once its refusal is sent:
                        # closed at once, wrk -c300 reconnected at once, and the loop spent itself
                        # on 3,000 connections a second (bob's p99 33 times slower, not 11).
                        held.evict_after_answer()
                    else:
                        held.evict(refusal)
                except (RuntimeError, OSError) as exc:
                    # A transport that broke under it (half-closed, reset): it is going anyway,
                    # and the newcomer's admission must not fail with it (issue 13).
                    log.debug("closing a connection to make room failed: %r", exc)
                    close = getattr(victim, "close", None)
                    if close is not None:
                        close()
                return True
        return False

    def gone(self) -> None:
        """A connection ``_make_room`` closed is lost: it no longer holds a place."""
        self.leaving = max(0, self.leaving - 1)

    def closable(self, transport: asyncio.Transport | None) -> bool:
        """Whether ``transport``'s connection is counted here and has not authenticated: so
        ``_make_room`` may close it while its request's head or body is still arriving. Such a
        request holds its connection's place only, not one of the address's requests in progress
        (``http.serve_command``): else 400 bodies trickling without a token held all of them and a
        valid token was refused (issue 13). False under another server than ``jtag serve``'s."""
        return transport is not None and transport in self._address

    def trust(self, transport: asyncio.Transport | None, actor: str, admin: bool) -> None:
        """A request on ``transport`` authenticated as ``actor``: the connection no longer counts
        against ``max_connections_per_address`` (nor can it be closed to make room), so an
        anonymous flood from its address never takes it. A non-admin actor has at most that
        many such connections; past it, a connection stays counted by its address."""
        if transport is None:
            return
        address = self._address.get(transport)
        if address is None:
            return
        if not admin and self.per_address and self.trusted[actor] >= self.per_address:
            return
        self._drop(transport, address)
        self._trusted[transport] = actor
        self.trusted[actor] += 1

    def release(self, transport: asyncio.Transport) -> None:
        """A connection ``admit`` counted closed (or became a WebSocket, counted by the app);
        idempotent."""
        self.refusing.discard(transport)
        address = self._address.get(transport)
        if address is not None:
            self._drop(transport, address)
        actor = self._trusted.pop(transport, None)
        if actor is not None:
            _decrement(self.trusted, actor)

    def _drop(self, transport: asyncio.Transport, address: str) -> None:
        del self._address[transport]
        untrusted = self._untrusted.get(address)
        if untrusted is not None:
            untrusted.pop(transport, None)
            if not untrusted:
                del self._untrusted[address]
        _decrement(self.open, address)

    def unsent(self, caller: str) -> int:
        """Bytes of ``caller``'s answers its connections have not taken from the server yet
        (connections that took everything are dropped from the count on the way)."""
        carriers = self._carriers.get(caller)
        if not carriers:
            return 0
        total = 0
        for transport in list(carriers):
            size = transport.get_write_buffer_size()
            if size:
                total += size
            else:
                self.forget(transport)
        return total

    def over_budget(self, caller: str, who: str) -> TooManyRequests | None:
        """Why a new request of ``caller`` (``who`` names it in the message) is not run: it has
        ``max_unsent_bytes_per_actor`` bytes or more of answers unread, or None."""
        if not self.max_unsent:
            return None
        unsent = self.unsent(caller)
        if unsent < self.max_unsent:
            return None
        return TooManyRequests(
            f"{who} has {unsent} bytes of answers its connections have not read yet (the limit is "
            "DBHANDLES_MAX_UNSENT_BYTES_PER_ACTOR): this request was not run; read the answers you "
            "asked for before asking for more",
            field="connection",
        )

    def too_much(self, caller: str, who: str, size: int) -> TooManyRequests | None:
        """Why an answer of ``size`` bytes for ``caller`` is not written (it ran; its answer is
        dropped), or None: it is over ``SMALL_ANSWER``, the caller has answers unread, and both
        together are over ``max_unsent_bytes_per_actor`` (requests that were let in at once)."""
        if not self.max_unsent or size <= SMALL_ANSWER:
            return None
        unsent = self.unsent(caller)
        if not unsent or unsent + size <= self.max_unsent:
            return None
        return TooManyRequests(
            f"the command ran, but its answer of {size} bytes was dropped: {who} has {unsent} "
            "bytes of answers its connections have not read yet, and both are over "
            "DBHANDLES_MAX_UNSENT_BYTES_PER_ACTOR; read the answers you asked for, then ask again",
            field="connection",
        )

    def carry(self, transport: asyncio.Transport, caller: str) -> None:
        """``transport`` was just written an answer of ``caller``: counted while part of it is
        unsent (only those connections are summed by ``unsent``, so a caller whose connections read
        costs nothing per request)."""
        if not transport.get_write_buffer_size():
            return
        previous = self._caller.get(transport)
        if previous == caller:
            return
        if previous is not None:
            self.forget(transport)
        self._caller[transport] = caller
        self._carriers.setdefault(caller, set()).add(transport)

    def forget(self, transport: asyncio.Transport) -> None:
        """``transport`` closed: its unsent bytes are gone with it."""
        caller = self._caller.pop(transport, None)
        if caller is not None:
            carriers = self._carriers[caller]
            carriers.discard(transport)
            if not carriers:
                del self._carriers[caller]
