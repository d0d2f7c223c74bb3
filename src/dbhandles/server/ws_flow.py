"""How much of a WebSocket's input the server takes: reading stops at the transport while the client
does not read, or while one actor's sockets send messages faster than ``WS_MESSAGES_PER_SECOND``.

A socket's reading loop (``ws_serve._serve``) waits for its ``ReadGate`` before it takes the next message.
Waiting in the loop alone is not enough: uvicorn's protocol parses every frame of each chunk it
receives (``data_received``) whatever the application does, so 16 sockets that pipelined requests
and never read kept the event loop parsing frames (issue 13: another actor's p99 went from 20 ms to
2 s). So the gate also pauses the connection's transport (``pause_reading``): nothing more is read
from the kernel, whose buffers then fill and stop the client. It closes while

* the socket's answers and events not yet handed to the transport exceed ``WS_UNSENT_BYTES``
  (``backpressure.py``), or
* ``MAX_REQUESTS_IN_FLIGHT`` of its requests are unanswered (running or waiting for a worker
  thread; not those waiting for a job), so the work queued for one socket stays short,

and opens (``resume_reading``) once both are below again. A socket whose gate stays closed for its
output ``WS_STALL_SECONDS`` without any answer taken by the client is closed with code 4000
(``ws.CLOSE_OUTBOX_FULL``), as one whose outbox filled.

Messages an actor's sockets send are also counted against a token bucket shared by all its sockets
(``MessageRate``; administrators are not limited): past ``WS_MESSAGES_PER_SECOND`` (bursts of
``WS_MESSAGE_BURST``), each socket's reading is paused until the bucket refills, so a flood of tiny
messages (``ping``, whose answers are a few bytes) cannot take the event loop from other actors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "MAX_REQUESTS_IN_FLIGHT",
    "WS_MESSAGES_PER_SECOND",
    "WS_MESSAGE_BURST",
    "WS_STALL_SECONDS",
    "MessageRate",
    "ReadGate",
]

#: Requests one socket may have unanswered (running, or waiting for a worker thread) before the
#: server reads no more of its messages.
MAX_REQUESTS_IN_FLIGHT = 16
#: Seconds a socket may keep its reading paused for unread output, with no answer or event taken by
#: its client, before it is closed with code 4000.
WS_STALL_SECONDS = 10.0
#: Messages per second one (non-administrator) actor's sockets may send together, sustained.
WS_MESSAGES_PER_SECOND = 2000.0
#: Messages such an actor may send at once above that rate.
WS_MESSAGE_BURST = 500.0


class ReadGate:
    """Whether one socket's next message may be read, and its transport's reading paused or not.

    Args:
        transport: the connection's transport (uvicorn's); None where the server gives none (the
            in-process test client): then only the reading loop waits.
        unsent_bound: the most unsent output (characters) with which reading goes on.
        max_unanswered: the most unanswered requests with which reading goes on.
        on_stall: called once when the output stayed over its bound, with nothing taken by the
            client, for ``stall_seconds``.
        stall_seconds: see ``on_stall``.
    """

    def __init__(
        self,
        transport: Any,
        unsent_bound: int,
        *,
        max_unanswered: int = MAX_REQUESTS_IN_FLIGHT,
        on_stall: Callable[[], None] | None = None,
        stall_seconds: float = WS_STALL_SECONDS,
    ) -> None:
        self.transport = transport
        self.unsent_bound = unsent_bound
        self.max_unanswered = max_unanswered
        self.on_stall = on_stall
        self.stall_seconds = stall_seconds
        self.unsent = 0
        self.unanswered = 0
        #: When the client last took an answer or event (``time.monotonic``).
        self.taken_at = time.monotonic()
        #: Whether this gate paused the transport's reading (and must resume it).
        self.paused_transport = False
        #: How many times the transport was paused (for tests: a count, not a time).
        self.pauses = 0
        self._open = asyncio.Event()
        self._open.set()
        self._ended = False
        self._stall_timer: asyncio.TimerHandle | None = None
        #: Whether the transport's own write buffer is over its bound (``ws_wire``: pongs, or
        #: answers uvicorn could not write yet).
        self.wire_over = False
        watch = getattr(transport, "watch_output", None)
        if watch is not None:
            watch(self)

    @property
    def closed(self) -> bool:
        """Whether the next message waits."""
        return not self._open.is_set()

    def output(self, unsent: int, taken: bool = False) -> None:
        """The socket's unsent output is now ``unsent`` characters (``taken``: the client just
        took some)."""
        self.unsent = unsent
        if taken:
            self.taken_at = time.monotonic()
        self._update()

    def wire_output(self, over: bool, taken: bool = False) -> None:
        """The transport's write buffer is ``over`` its bound now (``taken``: the client just took
        some of it): counted as unread output, the stall rule included."""
        self.wire_over = over
        if taken:
            self.taken_at = time.monotonic()
        self._update()

    def requests(self, delta: int) -> None:
        """``delta`` more (or fewer) unanswered requests."""
        self.unanswered += delta
        self._update()

    def end(self) -> None:
        """The socket is closing: nothing waits any more, and the transport stays as it is (a
        socket cut off for not reading stays paused until it is aborted)."""
        self._ended = True
        self._cancel_stall()
        self._open.set()

    async def wait(self) -> None:
        """Return once the next message may be read (at once when it may)."""
        await self._open.wait()

    def pause_transport(self) -> None:
        """Stop reading from the connection (idempotent)."""
        if self.paused_transport or self.transport is None:
            return
        hold = getattr(self.transport, "hold_reading", None)
        if hold is not None:  # ws_wire.HeldTransport: others may hold its reading too
            hold("gate")
            self.paused_transport = True
            self.pauses += 1
            return
        pause = getattr(self.transport, "pause_reading", None)
        if pause is None or self.transport.is_closing():
            return
        pause()
        self.paused_transport = True
        self.pauses += 1

    def resume_transport(self) -> None:
        """Read from the connection again, unless uvicorn's protocol keeps it paused itself (it
        resumes when the application takes its queued messages)."""
        if not self.paused_transport:
            return
        self.paused_transport = False
        transport = self.transport
        release = getattr(transport, "release_reading", None)
        if release is not None:
            release("gate")
            return
        if transport.is_closing():
            return
        protocol = transport.get_protocol() if hasattr(transport, "get_protocol") else None
        if not getattr(protocol, "read_paused", False):
            transport.resume_reading()

    def _update(self) -> None:
        if self._ended:
            return
        over_output = self.unsent > self.unsent_bound or self.wire_over
        if over_output or self.unanswered >= self.max_unanswered:
            if self._open.is_set():
                self._open.clear()
            self.pause_transport()
            if over_output:
                self._arm_stall()
            else:
                self._cancel_stall()
        else:
            self._cancel_stall()
            if not self._open.is_set():
                self._open.set()
                self.resume_transport()

    def _arm_stall(self) -> None:
        if self._stall_timer is None and self.on_stall is not None:
            self._stall_timer = asyncio.get_running_loop().call_later(
                self.stall_seconds, self._check_stall
            )

    def _cancel_stall(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _check_stall(self) -> None:
        self._stall_timer = None
        if self._ended or (self.unsent <= self.unsent_bound and not self.wire_over):
            return
        idle = time.monotonic() - self.taken_at
        if idle >= self.stall_seconds and self.on_stall is not None:
            self.on_stall()
        else:
            self._stall_timer = asyncio.get_running_loop().call_later(
                self.stall_seconds - idle, self._check_stall
            )


class MessageRate:
    """A token bucket of messages, one per actor, shared by its sockets.

    Args:
        rate: messages per second, sustained (``WS_MESSAGES_PER_SECOND`` if None).
        burst: messages at once above that rate, the bucket's size (``WS_MESSAGE_BURST`` if None).
        clock: ``time.monotonic`` (tests give their own).
    """

    def __init__(
        self,
        rate: float | None = None,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = WS_MESSAGES_PER_SECOND if rate is None else rate
        self.burst = WS_MESSAGE_BURST if burst is None else burst
        self.clock = clock
        self.tokens = self.burst
        self.at = clock()
        #: Messages that had to wait for the bucket (a count, for tests).
        self.waited = 0

    def take(self, amount: float = 1.0) -> float:
        """Take ``amount`` (one message, or frames or bytes: ``ws_wire``): 0.0 if it may be read
        now, else the seconds to wait first (it is then counted as taken at that time)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= amount
        if self.tokens >= 0.0:
            return 0.0
        self.waited += 1
        return -self.tokens / self.rate
