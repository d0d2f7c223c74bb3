"""Event messages encoded once for every socket that receives them, and written as one frame each.

The fan-out (``fanout.py``) serialises an event once and every connection with the same view of it
(the same matching patterns, allowed by its guard) gets the same ``EventFrame``. The connection's
writer then hands the frame's bytes to the transport in one ``write``: the WebSocket text frame
(RFC 6455 §5.2: FIN, opcode 1, the length, unmasked from a server) is built once per event and
shared too. Through Starlette's ``send_text`` each socket encoded the text to UTF-8 again,
uvicorn's protocol built the frame around a copy of it and joined it into a third, so a 100 KB
event to 16 sockets made some 50 copies of 100 KB on the event loop, which every other actor's
request waits for (issue 13).

A raw write is used only where it sends exactly what the protocol would have sent: uvicorn's
sans-I/O protocol (``ws_wire.GuardedWebSocketProtocol``) open in both directions, no extension
negotiated (``cli/serve.py`` offers no ``permessage-deflate``), the application not closing, and
the transport accepting writes (its flow control is awaited as uvicorn's ``send`` awaits it).
Otherwise (the in-process test client, a closing socket) the text goes through ``send_text``.
"""

from __future__ import annotations

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.protocol import State

from dbhandles.server.ws_wire import GuardedWebSocketProtocol, guard_of

__all__ = ["EventFrame", "FrameWriter", "text_frame"]


def text_frame(data: bytes) -> bytes:
    """The unmasked, unfragmented WebSocket text frame (RFC 6455 §5.2) carrying ``data`` (UTF-8)."""
    size = len(data)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return head + data


class EventFrame:
    """One event message (a JSON object, UTF-8), shared by every connection that receives it.

    Args:
        data: the message's bytes.

    ``len()`` is the message's size in bytes, what an outbox counts. ``text`` and ``wire`` are
    built on first use, once for all the connections that share the frame.
    """

    __slots__ = ("_text", "_wire", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._text: str | None = None
        self._wire: bytes | None = None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def text(self) -> str:
        """The message as text (for ``send_text``)."""
        if self._text is None:
            self._text = self.data.decode()
        return self._text

    @property
    def wire(self) -> bytes:
        """The message's whole WebSocket frame (``text_frame``)."""
        if self._wire is None:
            self._wire = text_frame(self.data)
        return self._wire


class FrameWriter:
    """Writes one connection's ``EventFrame`` s: raw to its transport when that sends what
    uvicorn's protocol would (see the module docstring), else with ``send_text``.

    Args:
        websocket: the connection.
        transport: what the server put in the scope for it (``ws.TRANSPORT_KEY``), or None.
    """

    def __init__(self, websocket: WebSocket, transport: object) -> None:
        self.websocket = websocket
        self.protocol: GuardedWebSocketProtocol | None = guard_of(transport)
        #: Frames written raw, and through ``send_text`` (for tests: counts, not times).
        self.raw_writes = 0
        self.text_writes = 0

    def _raw_ok(self) -> bool:
        protocol = self.protocol
        return (
            protocol is not None
            and protocol.handshake_complete
            and not protocol.close_sent
            and not protocol.disconnected
            and protocol.conn.state is State.OPEN
            and not protocol.conn.extensions
            and self.websocket.application_state is WebSocketState.CONNECTED
            and not protocol.transport.is_closing()
        )

    async def send(self, frame: EventFrame) -> None:
        """Send ``frame``.

        Raises:
            WebSocketDisconnect: the client is gone (as ``send_text`` raises it).
            RuntimeError, OSError: as ``send_text`` raises them, for a socket closing meanwhile.
        """
        protocol = self.protocol
        if protocol is not None and self._raw_ok():
            await protocol.writable.wait()  # the transport's flow control, as uvicorn's send
            if self._raw_ok():
                protocol.transport.write(frame.wire)
                self.raw_writes += 1
                return
            if protocol.disconnected:
                raise WebSocketDisconnect(1006)
        self.text_writes += 1
        await self.websocket.send_text(frame.text)
