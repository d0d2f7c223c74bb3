"""What one client may hold of ``jtag serve``'s connections: a uvicorn protocol with limits.

uvicorn counts connections only globally and only once a request's head arrived: a client that opens
connections and sends nothing (or half a head) holds them for ever. ``limited_protocol`` adds, per
connection: past ``max_connections`` (in all) or ``max_connections_per_address`` (from one
address: ``addresses.address_key``, loopback being one), room made by closing the oldest
connection that has not authenticated and runs nothing, or else a refusal at accept time,
answered with the error envelope; a deadline
for each request head (``header_timeout_seconds``); a bound on each request head (``max_header_bytes``,
never buffered past it, and ``MAX_HEADER_FIELDS``: 431); flow control of answers (a pipelined request
waits until the answer before it was written to the socket, and the kernel holds little of an
answer not sent yet: ``backpressure.py``); and an end that loses no answer: a
request head the server refuses (malformed, too large) and the client's end of stream (a half-close,
RFC 9112 §9.6) are acted on only once every request received before them was answered, in order.
``Wire`` counts the answer bytes each caller's connections have not read yet
(``max_unsent_bytes_per_actor``; checked by ``http.py``).

``jtag serve`` always runs this protocol (``cli/serve.py`` passes it to uvicorn as ``Config(http=)``),
so the limits hold whatever uvicorn would pick by itself (its h11 protocol has no head limit of
ours: ``h11_max_incomplete_event_size`` is never in play).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, cast

from dbhandles.errors import InvalidParams, PayloadTooLarge, RequestTimeout
from dbhandles.server.addresses import address_key
from dbhandles.server.auth import TARGET_KEY
from dbhandles.server.backpressure import limit_kernel_unsent
from dbhandles.server.connection_counts import Held, Wire, refusal_bytes

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "MAX_HEADER_FIELDS",
    "TRANSPORT_KEY",
    "Held",
    "Wire",
    "connection_transport",
    "limited_protocol",
    "refusal_bytes",
]

#: Where ``DbHandlesApp`` keeps a request's (or socket's) transport in its ASGI scope.
TRANSPORT_KEY = "dbhandles.transport"
#: Header fields one request head may carry (as Python's ``http.client`` reads at most): a browser
#: sends about 20; past it the head is refused (431) as one over ``max_header_bytes`` is.
MAX_HEADER_FIELDS = 100
#: How long a connection refused for its head (400, 431) keeps reading (and dropping) what the client
#: still sends, after the answer and the end of stream were written: closing at once with unread
#: bytes would reset the connection, and a reset can destroy the answer before the client reads it.
LINGER_SECONDS = 2.0
#: What a lingering connection drops at most: a client still sending past it is not reading the
#: refusal either, and is cut off at once (its reads would cost everyone else's CPU).
LINGER_BYTES = 1 << 20


class _TooManyFields(Exception):
    """Raised once a head is parsed with more than ``MAX_HEADER_FIELDS`` fields (httptools stops)."""


def connection_transport(send: object) -> asyncio.Transport | None:
    """The transport under an ASGI ``send`` of uvicorn (its request cycle's), or None elsewhere
    (an in-process test client)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    # uvloop's transports are no subclasses of asyncio's: what they can do decides.
    if transport is None or not hasattr(transport, "get_write_buffer_size"):
        return None
    return cast("asyncio.Transport", transport)


def limited_protocol(wire: Wire) -> type[HttpToolsProtocol]:
    """uvicorn's httptools HTTP/1.1 protocol with ``wire``'s limits (pass it as ``Config(http=)``).

    uvicorn's own ``limit_concurrency`` is left off: its refusal is plain text and comes only once a
    head arrived; this one refuses at accept time with the error envelope. Its 400 for a malformed
    request is the error envelope too, written after the answers of the requests before it.
    """
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class LimitedProtocol(HttpToolsProtocol):
        limits: ClassVar[Wire] = wire

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.limit_concurrency = None
            self.address: str | None = None
            self.head_timer: asyncio.TimerHandle | None = None
            self.head_started = False
            self.deferred = False
            #: Reading a request head (not its body): bytes of it fed to the parser, and how many
            #: heads began (a head that begins inside a piece fed counts that piece's bytes from
            #: where it began: ``_begun_bytes``).
            self.in_head = True
            self.head_bytes = 0
            self.heads_begun = 0
            #: Body bytes the parser gave in the piece fed last, since the last head ended
            #: (``_head_share``).
            self.body_bytes = 0
            #: No more requests are read (a refused head, the client's end of stream): once the
            #: requests received before are answered, ``last_words`` (if any) and close.
            self.ending = False
            self.last_words: bytes | None = None
            self.linger: asyncio.TimerHandle | None = None
            self.dropped = 0
            self.eof = False
            self.evicted = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            address = address_key(str(self.client[0])) if self.client else "unknown"
            refusal = self.limits.admit(address, len(self.connections) - 1, transport, self)
            if refusal is not None:
                self.connections.discard(self)
                transport.write(refusal)
                transport.close()
                return
            self.address = address
            limit_kernel_unsent(transport)  # answers wait where pause_writing sees them
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.evicted:
                self.limits.gone()
            self._release()
            super().connection_lost(exc)

        def _release(self) -> None:
            self._cancel_head_timer()
            if self.linger is not None:
                self.linger.cancel()
                self.linger = None
            self.limits.forget(self.transport)
            if self.address is not None:
                self.limits.release(self.transport)
                self.address = None

        def evictable(self) -> bool:
            # Idle, or its latest request still arriving (a head, a body: nothing of it ran);
            # not while a request received in full waits or runs.
            cycle = self.cycle
            return not self.pipeline and (
                cycle is None or cycle.response_complete or cycle.more_body
            )

        def evict(self, refusal: bytes) -> None:
            self.address = None  # ``Wire`` let it go already
            self.evicted = True
            self.ending = True
            self._cancel_head_timer()
            self.transport.write(refusal)
            self.transport.close()

        def evict_after_answer(self) -> None:
            self.address = None  # ``Wire`` let it go already
            self.evicted = True
            self._end(None)  # its refusal (in its pause) is written, then the connection closes

        # -- the request head's deadline -------------------------------------------------------

        def _arm_head_timer(self) -> None:
            if self.head_timer is None and self.limits.header_timeout:
                self.head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

        def _cancel_head_timer(self) -> None:
            if self.head_timer is not None:
                self.head_timer.cancel()
                self.head_timer = None

        def _head_late(self) -> None:
            self.head_timer = None
            if self.transport.is_closing() or self.ending:
                return
            late = None
            if self.head_started:
                late = refusal_bytes(408, RequestTimeout(
                    f"the request head did not arrive within {self.limits.header_timeout:g} s (the "
                    "limit is DBHANDLES_HEADER_TIMEOUT_SECONDS)", field="headers"))  # fmt: skip
            # Requests received in full before it (pipelined) are answered first, in order.
            self._end(late)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.head_started = True
            self.head_bytes = 0
            self.heads_begun += 1
            # Its deadline is armed once the piece read is fed, if it is still incomplete
            # (``_feed``): a head whole in one read makes and cancels no timer.

        if not wire.max_header_bytes:  # nothing else bounds a head as it is parsed

            def on_header(self, name: bytes, value: bytes) -> None:
                if len(self.headers) >= MAX_HEADER_FIELDS:
                    raise _TooManyFields
                super().on_header(name, value)

        def on_headers_complete(self) -> None:
            # Fields are counted once the head is whole (``max_header_bytes`` bounds what it holds
            # until then): no override runs per field.
            if len(self.headers) > MAX_HEADER_FIELDS:
                raise _TooManyFields  # httptools stops parsing: ``_feed`` answers 431
            self._cancel_head_timer()
            self.head_started = False
            self.in_head = False
            self.body_bytes = 0
            if self.url[:1] != b"/":
                # An absolute-form target: the scope keeps only its path, and its host is checked
                # as Host is (``auth.check_target``).
                cast(dict[str, Any], self.scope)[TARGET_KEY] = self.url.decode("latin-1")
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            self.body_bytes += len(body)
            super().on_body(body)

        def on_message_complete(self) -> None:
            self.in_head = True
            self.head_bytes = 0
            super().on_message_complete()

        # -- reading: the head's bound, and refusals that come after the answers before them ------

        def data_received(self, data: bytes) -> None:
            if self.ending:
                # Nothing after a refused head or the end of stream is read (or kept).
                self.dropped += len(data)
                if self.linger is not None and self.dropped > LINGER_BYTES:
                    self.transport.close()
                return
            self._unset_keepalive_if_required()
            limit = self.limits.max_header_bytes
            if not limit:
                self._feed(data)
                return
            # The parser keeps a header it has not finished (httptools joins its pieces), so it
            # is fed at most what the head may still take: a head over the limit is refused before
            # more of it is held. A body is fed in pieces of the limit too; a head that begins
            # inside a piece counts the bytes of the piece from where it began.
            if self.in_head and len(data) < limit - self.head_bytes:
                # The usual request, whole in one read: fed as it is.
                begun = self.heads_begun
                if self._feed(data) and self.in_head:
                    self.head_bytes += self._head_share(data, 0, len(data), begun)
                    if self.head_bytes >= limit:
                        self._refuse_head(limit)
                return
            view = memoryview(data)
            start = 0
            while start < len(data):
                room = limit - self.head_bytes if self.in_head else limit
                end = min(start + room, len(data))
                begun = self.heads_begun
                if not self._feed(view[start:end]):
                    return
                if self.in_head:
                    self.head_bytes += self._head_share(data, start, end, begun)
                start = end
                if self.in_head and self.head_bytes >= limit:
                    self._refuse_head(limit)
                    return

        def _head_share(self, data: bytes, start: int, end: int, begun: int) -> int:
            """Bytes of ``data[start:end]`` (just fed, the parser now inside a head) that belong to
            the head being read.

            All of them when the head began before the piece. When it began inside, the parser
            cannot say where: it began after the last blank line of the piece (the end of the head
            before it, or of a chunked body), with the last message's body bytes after that line
            not its own (a body that holds a blank line of its own is taken as ending there).
            """
            if self.heads_begun == begun:
                return end - start
            blank = data.rfind(b"\r\n\r\n", start, end)
            after = start if blank < 0 else blank + 4
            body = self.body_bytes
            if blank > start and data[blank - 1] == 0x30:  # a chunked body ended there
                body = 0
            return max(end - after - body, 0)

        def _refuse_head(self, limit: int) -> None:
            self._end(refusal_bytes(431, PayloadTooLarge(
                f"the request head is larger than {limit} bytes (the limit is "
                "DBHANDLES_MAX_HEADER_BYTES); send fewer or shorter headers",
                field="headers")))  # fmt: skip

        def _feed(self, piece: bytes | memoryview) -> bool:
            """Feed the parser; False when nothing more of this connection is to be fed."""
            self.body_bytes = 0
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserError as exc:
                if isinstance(exc.__context__, _TooManyFields):
                    self._end(refusal_bytes(431, PayloadTooLarge(
                        f"the request head has more than {MAX_HEADER_FIELDS} header fields; send "
                        "fewer", field="headers")))  # fmt: skip
                    return False
                self.logger.warning("Invalid HTTP request received.")
                self._end(refusal_bytes(400, InvalidParams(
                    f"the request is not valid HTTP/1.1 ({exc}); the connection is closed after "
                    "the answers of the requests before it", field="request")))  # fmt: skip
                return False
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return False
            if self.head_started and not self.ending:
                self._arm_head_timer()  # a head began and is not complete yet
            return not self.ending

        def eof_received(self) -> bool:  # type: ignore[override]  # asyncio.Protocol says bool | None
            # A client that half-closes after its requests still reads their answers (RFC 9112
            # §9.6): the transport stays open for writing until they are written.
            self.eof = True
            if self.linger is not None:
                self.transport.close()  # the client read the refusal and ended too
            elif not self.ending:
                self._end(None)
            return True

        def _end(self, last_words: bytes | None) -> None:
            """Read no more requests; once every request received in full is answered, write
            ``last_words`` (if any) and close. A request received in part is never run: queued,
            it is dropped; running (its body was cut), the connection closes now."""
            self.ending = True
            self.last_words = last_words
            self._cancel_head_timer()
            cycle = self.cycle
            if cycle is not None and cycle.more_body and not cycle.response_complete:
                if self.pipeline and self.pipeline[0][0] is cycle:
                    self.pipeline.popleft()
                else:
                    self._say_last_words()
                    return
            if not self.pipeline and (cycle is None or cycle.response_complete):
                self._say_last_words()

        def _say_last_words(self) -> None:
            self._unset_keepalive_if_required()
            if self.transport.is_closing() or self.linger is not None:
                return
            if not self.last_words or self.eof or not self.transport.can_write_eof():
                if self.last_words:
                    self.transport.write(self.last_words)
                self.transport.close()
                return
            self.transport.write(self.last_words)
            self.transport.write_eof()
            # What the client still sends is read and dropped (``data_received``) until it ends
            # too, for ``LINGER_SECONDS`` or up to ``LINGER_BYTES``.
            self.flow.resume_reading()
            self.linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)

        def handle_websocket_upgrade(self) -> None:
            # The socket is counted by the app from here on (requests plus WebSockets per address).
            self._release()
            super().handle_websocket_upgrade()

        # -- flow control: a pipelined request runs once the answer before it was written ---------

        def on_response_complete(self) -> None:
            if self.flow.write_paused and not self.transport.is_closing():
                self.deferred = True
                return
            self._next_request()

        def resume_writing(self) -> None:
            super().resume_writing()
            if self.deferred:
                self.deferred = False
                self._next_request()

        def _next_request(self) -> None:
            last = not self.pipeline
            super().on_response_complete()
            if self.ending and last:
                self._say_last_words()

    return LimitedProtocol
