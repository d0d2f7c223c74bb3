"""What one WebSocket connection may send, counted where every byte arrives: uvicorn's protocol
``data_received``, before and while frames are parsed, not per message (issue 13).

Counting messages in the reading loop (``ws_flow``) misses what the WebSocket library handles by
itself: control frames (a ping is parsed and answered by uvicorn, never handed to the application)
and the continuation frames of a message that never ends. So ``GuardedWebSocketProtocol``, uvicorn's
sans-I/O WebSocket protocol (``cli/serve.py`` passes it as ``Config(ws=)``), adds:

* **a frame and byte rate**: the input is parsed ``WS_INPUT_SLICE`` bytes at a time, and each slice's
  bytes and frames (of every opcode but close) are taken from a token bucket of the socket
  (``WS_FRAMES_PER_SECOND``, ``WS_BYTES_PER_SECOND``) and one shared by the actor's sockets
  (``WS_ACTOR_FRAMES_PER_SECOND``, ``WS_ACTOR_BYTES_PER_SECOND``; administrators are limited by
  neither once their token is checked). Past a bucket, reading is paused at the transport
  (``pause_reading``) until a timer finds the bucket refilled;
* **the transport's own write buffer**: what uvicorn writes without the application (the pongs) is
  bounded too. The write buffer's high-water mark is ``WS_UNSENT_BYTES``: past it, reading pauses
  until the buffer drains below the low-water mark, and the socket's ``ReadGate`` counts it as unread
  output, so the gate's stall rule closes a socket that takes nothing for ``WS_STALL_SECONDS`` with
  4000, whatever filled its buffer (a socket with no gate yet is cut then);
* **a bound on one fragmented message**: past ``WS_MESSAGE_MAX_FRAMES`` frames the socket is closed
  with 1009 ("message too big", RFC 6455 §7.4.1), and once ``WS_MESSAGE_SECONDS`` passed without its
  last frame, with 1008 (policy violation); the reason says which. Its size was bounded already
  (``ws_max_size``), but a million 1-byte frames held a million objects.

Several parties pause the same transport (uvicorn while the application has not taken a message,
the ``ReadGate``, the rate, the write buffer): ``HeldTransport`` reads again only once none holds it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame

from dbhandles.server import ws_flow
from dbhandles.server.backpressure import WS_UNSENT_BYTES
from dbhandles.server.ws_flow import MessageRate

if TYPE_CHECKING:
    from dbhandles.settings import Settings

__all__ = [
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_MESSAGE_TOO_SLOW",
    "WS_ACTOR_BYTES_PER_SECOND",
    "WS_ACTOR_BYTE_BURST",
    "WS_ACTOR_FRAMES_PER_SECOND",
    "WS_ACTOR_FRAME_BURST",
    "WS_BYTES_PER_SECOND",
    "WS_BYTE_BURST",
    "WS_FRAMES_PER_SECOND",
    "WS_FRAME_BURST",
    "WS_INPUT_SLICE",
    "WS_MESSAGE_MAX_FRAMES",
    "WS_MESSAGE_SECONDS",
    "GuardedWebSocketProtocol",
    "HeldTransport",
    "WireRate",
    "actor_wire_rate",
    "guard_of",
]

#: Frames (any opcode but close) one socket may send per second, sustained, and at once above that.
WS_FRAMES_PER_SECOND = 2000.0
WS_FRAME_BURST = 500.0
#: Bytes one socket may send per second, sustained, and at once above that.
WS_BYTES_PER_SECOND = 16.0 * 1024 * 1024
WS_BYTE_BURST = 4.0 * 1024 * 1024
#: The same for all the sockets of one (non-administrator) actor together.
WS_ACTOR_FRAMES_PER_SECOND = 4000.0
WS_ACTOR_FRAME_BURST = 1000.0
WS_ACTOR_BYTES_PER_SECOND = 32.0 * 1024 * 1024
WS_ACTOR_BYTE_BURST = 8.0 * 1024 * 1024
#: Bytes of input parsed at once: the most parsing one step of the event loop does for one socket.
WS_INPUT_SLICE = 16 * 1024
#: Frames one message may come in (its first and its continuations).
WS_MESSAGE_MAX_FRAMES = 4096
#: Seconds one message may take from its first frame to its last.
WS_MESSAGE_SECONDS = 60.0
#: Close codes of a message refused for its frames: too many (RFC 6455 "message too big"), too slow
#: ("policy violation").
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_MESSAGE_TOO_SLOW = 1008
#: Seconds between two looks at a full write buffer, to see whether the client took some of it.
_OUTPUT_WATCH_SECONDS = 1.0
#: Seconds a socket closed for its message may take to read the close frame before it is cut.
_CLOSE_GRACE_SECONDS = 2.0


class WireRate:
    """Two token buckets, frames and bytes (``ws_flow.MessageRate``).

    Args:
        frames_per_second, frame_burst: the frames' rate and bucket size.
        bytes_per_second, byte_burst: the bytes' rate and bucket size.
    """

    def __init__(
        self,
        frames_per_second: float,
        frame_burst: float,
        bytes_per_second: float,
        byte_burst: float,
    ) -> None:
        self.frames = MessageRate(frames_per_second, frame_burst)
        self.bytes = MessageRate(bytes_per_second, byte_burst)

    def take(self, frames: int, size: int) -> float:
        """Take ``frames`` frames and ``size`` bytes: 0.0, or the seconds to read nothing first."""
        return max(self.frames.take(frames), self.bytes.take(size))


def socket_wire_rate(settings: Settings | None = None) -> WireRate:
    """The buckets of one socket: ``settings.ws_frames_per_second`` and ``ws_bytes_per_second``
    (``DBHANDLES_WS_*``; bursts of a quarter of each), or where one is 0 or there are no settings
    this module's constants, read at call time (tests patch them)."""
    frames, size = settings_rates(settings)
    rate = WireRate(WS_FRAMES_PER_SECOND, WS_FRAME_BURST, WS_BYTES_PER_SECOND, WS_BYTE_BURST)
    if frames is not None:
        rate.frames = MessageRate(frames, frames / 4)
    if size is not None:
        rate.bytes = MessageRate(size, size / 4)
    return rate


def actor_wire_rate(settings: Settings | None = None) -> WireRate:
    """The buckets an actor's sockets share (``ServerState.wire_rates``): twice a socket's rates
    and bursts (``socket_wire_rate``), or this module's constants as above."""
    frames, size = settings_rates(settings)
    rate = WireRate(WS_ACTOR_FRAMES_PER_SECOND, WS_ACTOR_FRAME_BURST,
                    WS_ACTOR_BYTES_PER_SECOND, WS_ACTOR_BYTE_BURST)  # fmt: skip
    if frames is not None:
        rate.frames = MessageRate(2 * frames, frames / 2)
    if size is not None:
        rate.bytes = MessageRate(2 * size, size / 2)
    return rate


def settings_rates(settings: Settings | None) -> tuple[float | None, float | None]:
    """``(frames, bytes)`` per second of one socket as ``settings`` set them (None: not set)."""
    if settings is None:
        return None, None
    frames, size = settings.ws_frames_per_second, settings.ws_bytes_per_second
    return (float(frames) if frames > 0 else None), (float(size) if size > 0 else None)


class HeldTransport:
    """A connection's transport whose reading is paused while anyone holds it.

    uvicorn's own ``pause_reading``/``resume_reading`` (a message the application has not taken)
    hold it as ``"uvicorn"``; the others call ``hold_reading``/``release_reading`` with their name.
    Everything else is the transport's.
    """

    def __init__(self, transport: asyncio.Transport, protocol: GuardedWebSocketProtocol) -> None:
        self._transport = transport
        self.guard = protocol
        self.holders: set[str] = set()
        self.reading_paused = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def pause_reading(self) -> None:
        self.hold_reading("uvicorn")

    def resume_reading(self) -> None:
        self.release_reading("uvicorn")

    def hold_reading(self, holder: str) -> None:
        """Read nothing more until ``holder`` (and every other holder) releases it."""
        self.holders.add(holder)
        if not self.reading_paused and not self._transport.is_closing():
            self._transport.pause_reading()
            self.reading_paused = True

    def release_reading(self, holder: str) -> None:
        """``holder`` no longer holds reading: once none does, parse what was received and not
        parsed yet, then read again."""
        self.holders.discard(holder)
        if self.holders:
            return
        self.guard.take_input()
        if not self.holders and self.reading_paused and not self._transport.is_closing():
            self._transport.resume_reading()
            self.reading_paused = False

    def watch_output(self, gate: ws_flow.ReadGate) -> None:
        """Tell ``gate`` (the socket's ``ReadGate``) when the write buffer is over its bound."""
        self.guard.gate = gate
        if self.guard.output_over:
            gate.wire_output(True)


def guard_of(transport: object) -> GuardedWebSocketProtocol | None:
    """The guarding protocol of a WebSocket's transport (``TRANSPORT_KEY``), if it has one."""
    return transport.guard if isinstance(transport, HeldTransport) else None


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with frame and byte rates, a bounded write buffer and
    a bounded fragmented message (see the module docstring). Counts for tests: ``rate_pauses``,
    ``output_pauses``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.input = bytearray()
        self.wire: HeldTransport | None = None
        self.socket_rate: WireRate | None = socket_wire_rate()
        self.actor_rate: WireRate | None = None
        self.gate: ws_flow.ReadGate | None = None
        self.rate_pauses = 0
        self.output_pauses = 0
        self.output_over = False
        self.message_frames = 0
        self._frames_in = 0
        self._taking = False
        self._rate_timer: asyncio.TimerHandle | None = None
        self._message_timer: asyncio.TimerHandle | None = None
        self._output_timer: asyncio.TimerHandle | None = None
        self._output_low = 0
        self._output_taken_at = 0.0

    def limit(
        self, actor_rate: WireRate | None, *, administrator: bool, settings: Settings | None = None
    ) -> None:
        """The socket's token was checked: count its input against its actor's ``actor_rate``
        too, and against the socket rate of the server's ``settings`` (``socket_wire_rate``), or
        (an administrator) against nothing."""
        if administrator:
            self.socket_rate = None
            self.actor_rate = None
        else:
            self.actor_rate = actor_rate
            if settings is not None and settings_rates(settings) != (None, None):
                self.socket_rate = socket_wire_rate(settings)

    # -- input ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        real = cast(asyncio.Transport, transport)
        # The pongs uvicorn writes are bounded like the application's answers.
        real.set_write_buffer_limits(high=WS_UNSENT_BYTES)
        self.wire = HeldTransport(real, self)
        super().connection_made(cast(asyncio.Transport, self.wire))

    def connection_lost(self, exc: Exception | None) -> None:
        self.input = bytearray()
        for timer in (self._rate_timer, self._message_timer, self._output_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.input += data
        self.take_input()

    def take_input(self) -> None:
        """Parse what was received, a slice at a time, while nobody holds reading."""
        if self._taking or self.wire is None:
            return
        self._taking = True
        try:
            while self.input and not self.wire.holders and not self.disconnected:
                chunk = bytes(self.input[:WS_INPUT_SLICE])
                del self.input[:WS_INPUT_SLICE]
                self._frames_in = 0
                super().data_received(chunk)
                self._count(self._frames_in, len(chunk))
        finally:
            self._taking = False

    def _count(self, frames: int, size: int) -> None:
        delay = 0.0
        if self.socket_rate is not None:
            delay = self.socket_rate.take(frames, size)
        if self.actor_rate is not None:
            delay = max(delay, self.actor_rate.take(frames, size))
        if delay <= 0.0 or self.wire is None:
            return
        self.rate_pauses += 1
        self.wire.hold_reading("rate")
        if self._rate_timer is not None:
            self._rate_timer.cancel()
        self._rate_timer = self.loop.call_later(delay, self._rate_refilled)

    def _rate_refilled(self) -> None:
        self._rate_timer = None
        if self.wire is not None:
            self.wire.release_reading("rate")

    # -- frames --------------------------------------------------------------------------------------

    def handle_text(self, event: Frame) -> None:
        self._frames_in += 1
        self._message_starts(event)
        super().handle_text(event)

    def handle_bytes(self, event: Frame) -> None:
        self._frames_in += 1
        self._message_starts(event)
        super().handle_bytes(event)

    def handle_cont(self, event: Frame) -> None:
        self._frames_in += 1
        if self.close_sent:
            return  # closing: what still comes is not kept
        self.message_frames += 1
        if event.fin:
            self._message_ends()
        elif self.message_frames >= WS_MESSAGE_MAX_FRAMES:
            self._refuse_message(CLOSE_MESSAGE_TOO_BIG,
                                 f"message in more than {WS_MESSAGE_MAX_FRAMES} frames")  # fmt: skip
            return
        super().handle_cont(event)

    def handle_ping(self) -> None:
        self._frames_in += 1
        super().handle_ping()

    def handle_pong(self, event: Frame) -> None:
        self._frames_in += 1
        super().handle_pong(event)

    def _message_starts(self, event: Frame) -> None:
        self._message_ends()
        if not event.fin:
            self.message_frames = 1
            self._message_timer = self.loop.call_later(WS_MESSAGE_SECONDS, self._message_late)

    def _message_ends(self) -> None:
        self.message_frames = 0
        if self._message_timer is not None:
            self._message_timer.cancel()
            self._message_timer = None

    def _message_late(self) -> None:
        self._message_timer = None
        self._refuse_message(CLOSE_MESSAGE_TOO_SLOW,
                             f"message not completed within {WS_MESSAGE_SECONDS:g} s")  # fmt: skip

    def _refuse_message(self, code: int, reason: str) -> None:
        """Close the connection for the message it is sending (its frames are dropped now)."""
        self._message_ends()
        self.frames = []
        self.input = bytearray()
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        self.conn.fail(code, reason)
        self.handle_parser_exception()  # the application's disconnect, the close frame, the close
        # A client that does not read would keep the closing transport (and its buffer) forever.
        self.loop.call_later(_CLOSE_GRACE_SECONDS, self._abort)

    def _abort(self) -> None:
        if not self.disconnected:
            self.transport.abort()

    # -- output --------------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        self.output_pauses += 1
        self.output_over = True
        if self.wire is not None:
            self.wire.hold_reading("output")
            self._output_low = self.wire.get_write_buffer_size()
        self._output_taken_at = self.loop.time()
        if self.gate is not None:
            self.gate.wire_output(True)
        if self._output_timer is None:
            self._output_timer = self.loop.call_later(_OUTPUT_WATCH_SECONDS, self._watch_output)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.output_over = False
        if self._output_timer is not None:
            self._output_timer.cancel()
            self._output_timer = None
        if self.gate is not None:
            self.gate.wire_output(False, taken=True)
        if self.wire is not None:
            self.wire.release_reading("output")

    def _watch_output(self) -> None:
        """While the write buffer is over its bound: note when the client takes some of it, and
        cut a socket no gate watches once it took nothing for ``WS_STALL_SECONDS``."""
        self._output_timer = None
        if not self.output_over or self.disconnected:
            return
        size = self.transport.get_write_buffer_size()
        now = self.loop.time()
        if size < self._output_low:
            self._output_low = size
            self._output_taken_at = now
            if self.gate is not None:
                self.gate.wire_output(True, taken=True)
        if self.gate is None and now - self._output_taken_at >= ws_flow.WS_STALL_SECONDS:
            self.transport.abort()
            return
        self._output_timer = self.loop.call_later(_OUTPUT_WATCH_SECONDS, self._watch_output)
