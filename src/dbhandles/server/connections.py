"""What one client may hold of ``jtag serve``'s connections: a uvicorn protocol with limits.

uvicorn counts connections only globally and only once a request's head arrived: a client that opens
connections and sends nothing (or half a head) holds them for ever. ``limited_protocol`` adds, per
connection: past ``max_connections`` (in all) or ``max_connections_per_address`` (from one
address: ``addresses.address_key``, loopback being one), room made by closing the oldest connection
that has not authenticated and runs nothing, or else a refusal at accept time (the error envelope);
a deadline for each request head (``header_timeout_seconds``); a bound on each request head
(``max_header_bytes``, never buffered past it, and ``MAX_HEADER_FIELDS``: 431); flow control of
answers (a pipelined request waits until the answer before it was written to the socket, and the
kernel holds little of an answer not sent yet: ``backpressure.py``); and an end that loses no
answer: a request head the server refuses (malformed, too large) and the client's end of stream (a half-close,
RFC 9112 §9.6) are acted on only once every request received before them was answered, in order.
``Wire`` counts the answer bytes each caller's connections have not read yet
(``max_unsent_bytes_per_actor``; checked by ``http.py``).

Every refusal this protocol makes itself before a request reaches the app (a malformed request,
400; an invalid WebSocket handshake, websockets' 400; a head too large, 431; a head late, 408) is
charged to its address's public rate (``Door``: ``public.PublicRate``, the bucket of every refusal
before authentication): past it, the refusal is the rate's 429, sent after its pause. Uncharged,
50 clients that sent ``G@T / HTTP/1.1`` on new connections got 18,526 immediate 400s in 6 s, and
12,235 upgrades without ``Sec-WebSocket-Key`` as many (issue 13). uvicorn's warning of each such
request is summarized (``log_summary.ClientWarningSummary``), not a line per request.

``jtag serve`` always runs this protocol (``cli/serve.py`` passes it to uvicorn as ``Config(http=)``),
so the limits hold whatever uvicorn would pick (its h11 protocol has no head limit of ours).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from dbhandles.errors import InvalidParams, PayloadTooLarge, RequestTimeout
from dbhandles.server.addresses import address_key
from dbhandles.server.auth import TARGET_KEY
from dbhandles.server.backpressure import (
    PIPELINE_PARSED_AHEAD,
    PIPELINE_UNSENT_BYTES,
    kernel_unsent,
    limit_kernel_unsent,
)
from dbhandles.server.connection_counts import Held, Wire, refusal_bytes

if TYPE_CHECKING:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "MAX_HEADER_FIELDS",
    "TRANSPORT_KEY",
    "Door",
    "Held",
    "Upgrade",
    "Wire",
    "connection_transport",
    "limited_protocol",
    "refusal_bytes",
]

#: The charge of a refusal this protocol makes itself to the client's address (``address_key``):
#: None when within the address's public rate (the refusal is answered at once), else the seconds
#: to wait and the rate's 429 to answer then (``ServerState.door_refusal``).
Door = Callable[[str], "tuple[float, bytes] | None"]
#: Decides a WebSocket upgrade before the WebSocket protocol takes the connection
#: (``ws_serve.early_refusal``): given the client's address, the request's headers and target and
#: a callback, True if the callback was or will be called (``Door``'s answer, or None: go on).
Upgrade = Callable[[str, Iterable[tuple[bytes, bytes]], bytes, Callable[[Any], None]], bool]

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
#: How soon a connection whose answers are not sent yet (``PIPELINE_UNSENT_BYTES``) is looked at
#: again, doubled each time up to ``UNSENT_POLL_MOST``: a client that reads resumes within about
#: the time it took to read; one that never reads costs two looks a second.
UNSENT_POLL_FIRST = 0.002
UNSENT_POLL_MOST = 0.5


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


def limited_protocol(
    wire: Wire, door: Door | None = None, upgrade: Upgrade | None = None
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools HTTP/1.1 protocol with ``wire``'s limits (pass it as ``Config(http=)``),
    its own refusals charged to ``door`` (None: never charged), each WebSocket upgrade decided
    first by ``upgrade`` (None: by the app only; while it decides, nothing more is read).

    uvicorn's own ``limit_concurrency`` is left off: its refusal is plain text and comes only once a
    head arrived; this one refuses at accept time with the error envelope. Its 400 for a malformed
    request is the error envelope too, written after the answers of the requests before it.
    """
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from websockets.datastructures import Headers
    from websockets.http11 import Request
    from websockets.server import ServerProtocol

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
            #: While answers not sent yet hold the next request (``_hold_for_unsent``): the next
            #: look, and since when nothing of them was taken (``clock``) with how much unsent.
            self.unsent_timer: asyncio.TimerHandle | None = None
            self.unsent_seen = 0
            self.stuck_since = 0.0
            #: Bytes received after the ``PIPELINE_PARSED_AHEAD`` requests parsed ahead, not parsed
            #: yet (``_parse``).
            self.backlog = b""
            #: While a refusal past the address's rate waits out its pause (``_refuse``).
            self.refusal_timer: asyncio.TimerHandle | None = None
            self.refused: tuple[float, bytes] | None = None
            #: While ``upgrade`` decides this connection's WebSocket upgrade.
            self.upgrading = False

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
            if self.unsent_timer is not None:
                self.unsent_timer.cancel()
                self.unsent_timer = None
            if self.linger is not None:
                self.linger.cancel()
                self.linger = None
            if self.refusal_timer is not None:
                self.refusal_timer.cancel()
                self.refusal_timer = None
            self.limits.forget(self.transport)
            if self.address is not None:
                self.limits.release(self.transport)
                self.address = None

        def evictable(self) -> bool:
            # Idle, or its latest request still arriving (a head, a body: nothing of it ran);
            # not while a request received in full waits or runs.
            cycle = self.cycle
            return (
                not self.pipeline
                and not self.backlog
                and (cycle is None or cycle.response_complete or cycle.more_body)
            )

        def evict(self, refusal: bytes) -> None:
            self.address = None  # ``Wire`` let it go already
            self.evicted = True
            self.ending = True
            self._cancel_head_timer()
            if self.writable():
                self.transport.write(refusal)
            self.transport.close()

        def writable(self) -> bool:
            """Whether the transport may still be written to: not closing, and its end of stream
            not written (a refused head's lingering end, ``_say_last_words``). Written to after
            ``write_eof``, asyncio raises ``RuntimeError``: evicting such a connection for a
            newcomer aborted the newcomer's admission (689 times in a flood, issue 13)."""
            # ``linger`` is set where (and only where) the end of stream is written.
            return not self.transport.is_closing() and self.linger is None

        def evict_after_answer(self) -> None:
            self.address = None  # ``Wire`` let it go already
            self.evicted = True
            cycle = self.cycle
            if self.refusal_timer is None and cycle is not None and not cycle.response_complete:
                # Its refusal comes after its pause (``public.paused_refusal``): closed once written.
                self.ending = True
                self._cancel_head_timer()
                return
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
            if late is None:
                self._end(None)  # an idle connection: no refusal
            else:
                self._refuse(late)

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
            if self.upgrading:
                return  # no frame comes before the handshake's answer: nothing to keep
            if self.ending:
                # Nothing after a refused head or the end of stream is read (or kept).
                self.dropped += len(data)
                if self.linger is not None and self.dropped > LINGER_BYTES:
                    self.transport.close()
                return
            self._unset_keepalive_if_required()
            if self.backlog or len(self.pipeline) >= PIPELINE_PARSED_AHEAD:
                self.backlog += data  # reading pauses: at most one more read is kept so
                self.flow.pause_reading()
                return
            self._parse(data)

        def _parse(self, data: bytes) -> None:
            """Feed ``data`` to the parser up to the end of one request head at a time; once
            ``PIPELINE_PARSED_AHEAD`` requests wait behind the one running, the rest is kept as
            the bytes it came as (``backlog``, parsed as they run: ``_next_request``) and reading
            pauses. Parsed, a request is a scope, an event and a response cycle of about 3 KB:
            400 clients that pipelined 50 requests in one send each and never read held 20,000 of
            them (60 MB of the server's memory) and their parsing stalled the loop (issue 13)."""
            start = 0
            while start < len(data):
                end = data.find(b"\r\n\r\n", start)
                end = len(data) if end < 0 else end + 4
                if not self._receive(data if start == 0 and end == len(data) else data[start:end]):
                    return
                start = end
                if start < len(data) and len(self.pipeline) >= PIPELINE_PARSED_AHEAD:
                    self.backlog = data[start:]
                    self.flow.pause_reading()
                    return

        def _receive(self, data: bytes) -> bool:
            """Feed ``data`` within the head's bound; False when nothing more is to be fed (a
            refused head, an upgrade)."""
            limit = self.limits.max_header_bytes
            if not limit:
                return self._feed(data)
            # The parser keeps a header it has not finished (httptools joins its pieces), so it
            # is fed at most what the head may still take: a head over the limit is refused before
            # more of it is held. A body is fed in pieces of the limit too; a head that begins
            # inside a piece counts the bytes of the piece from where it began.
            if self.in_head and len(data) < limit - self.head_bytes:
                # The usual request, whole in one read: fed as it is.
                begun = self.heads_begun
                if not self._feed(data):
                    return False
                if self.in_head:
                    self.head_bytes += self._head_share(data, 0, len(data), begun)
                    if self.head_bytes >= limit:
                        self._refuse_head(limit)
                        return False
                return True
            view = memoryview(data)
            start = 0
            while start < len(data):
                room = limit - self.head_bytes if self.in_head else limit
                end = min(start + room, len(data))
                begun = self.heads_begun
                if not self._feed(view[start:end]):
                    return False
                if self.in_head:
                    self.head_bytes += self._head_share(data, start, end, begun)
                start = end
                if self.in_head and self.head_bytes >= limit:
                    self._refuse_head(limit)
                    return False
            return True

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
            self._refuse(refusal_bytes(431, PayloadTooLarge(
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
                    self._refuse(refusal_bytes(431, PayloadTooLarge(
                        f"the request head has more than {MAX_HEADER_FIELDS} header fields; send "
                        "fewer", field="headers")))  # fmt: skip
                    return False
                # One line per request: ``log_summary.ClientWarningSummary`` summarizes them.
                self.logger.warning("Invalid HTTP request received.")
                self._refuse(refusal_bytes(400, InvalidParams(
                    f"the request is not valid HTTP/1.1 ({exc}); the connection is closed after "
                    "the answers of the requests before it", field="request")))  # fmt: skip
                return False
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.upgrading = True
                    head, address = (self.scope["headers"], self.url), self.address
                    if not (upgrade and address and upgrade(address, *head, self._decided)):
                        self.upgrading = False
                        self._upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return False
            if self.head_started and not self.ending:
                self._arm_head_timer()  # a head began and is not complete yet
            return not self.ending

        def _upgrade(self) -> None:
            if self._invalid_handshake() and self._charged_past_rate():
                self._refuse(None)  # refused by the rate: answered its 429
                return
            self.handle_websocket_upgrade()

        def _decided(self, refused: tuple[float, bytes] | None) -> None:
            """``upgrade``'s answer: the rate's pause and 429, or None (the upgrade goes on)."""
            if self.upgrading and not self.transport.is_closing():
                self.upgrading, self.refused = False, refused
                if refused is None:
                    self._upgrade()
                else:
                    self._refuse(None)

        def _invalid_handshake(self) -> bool:
            """Whether the WebSocket protocol will refuse this upgrade's handshake itself (no
            ``Sec-WebSocket-Key``, a wrong version: its 400, the app never called), as websockets
            decides it."""
            headers = Headers((name.decode("latin-1"), value.decode("latin-1"))
                              for name, value in self.scope["headers"])  # fmt: skip
            request = Request(self.url.decode("latin-1"), headers)
            return ServerProtocol().accept(request).status_code != 101

        def _charged_past_rate(self) -> bool:
            """Charge a refusal to the address's rate; True (and ``refused`` set) past it."""
            if door is None or self.address is None:
                return False
            self.refused = door(self.address)
            return self.refused is not None

        def _refuse(self, answer: bytes | None) -> None:
            """Refuse the request being read with ``answer`` (None: charged already, by
            ``_charged_past_rate``), charged to the address's rate: within it, ``answer`` is
            written after the answers before it (``_end``); past it, the rate's 429 is, once its
            pause is over, while the connection holds no place of its address
            (``Wire.refusing``) and nothing more is read."""
            if answer is not None:
                self._charged_past_rate()
            if self.refused is None:
                self._end(answer)
                return
            pause, too_fast = self.refused
            self.ending = True  # nothing more is read; ``_say_last_words`` waits for the timer
            self._cancel_head_timer()
            self.limits.refusing.add(self.transport)
            self.refusal_timer = self.loop.call_later(pause, self._refused_now, too_fast)

        def _refused_now(self, too_fast: bytes) -> None:
            self.refusal_timer = None
            self.limits.refusing.discard(self.transport)
            self._end(too_fast)

        def eof_received(self) -> bool:  # type: ignore[override]  # asyncio.Protocol says bool | None
            # A client that half-closes after its requests still reads their answers (RFC 9112
            # §9.6): the transport stays open for writing until they are written.
            self.eof = True
            if self.linger is not None:
                self.transport.close()  # the client read the refusal and ended too
            elif not self.ending and not self.backlog:
                self._end(None)  # else once the requests in ``backlog`` are parsed
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
            if self.refusal_timer is not None:
                return  # said once the refusal's pause is over (``_refused_now``)
            self._unset_keepalive_if_required()
            if not self.writable():
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
            if self._hold_for_unsent():
                return
            self._next_request()

        def resume_writing(self) -> None:
            super().resume_writing()
            if self.deferred and self.unsent_timer is None and not self._hold_for_unsent():
                self.deferred = False
                self._next_request()

        def _hold_for_unsent(self) -> bool:
            """Hold the next request (not read, not run) while the answers not sent yet, the
            kernel's included, pass ``PIPELINE_UNSENT_BYTES``; looked at again after
            ``UNSENT_POLL_FIRST`` (the kernel tells asyncio nothing of its own queue). True: held."""
            if self.transport.is_closing():
                return False
            unsent = kernel_unsent(self.transport)
            if unsent <= PIPELINE_UNSENT_BYTES:
                return False
            self.deferred = True
            self.flow.pause_reading()
            self.unsent_seen = unsent
            self.stuck_since = self.loop.time()
            self.unsent_timer = self.loop.call_later(UNSENT_POLL_FIRST, self._look_again,
                                                     UNSENT_POLL_FIRST)  # fmt: skip
            return True

        def _look_again(self, delay: float) -> None:
            """The next request runs once the answers before it were sent; a client that took none
            of them within ``public_write_timeout_seconds`` is cut (it held its connection, and
            its pipelined requests, for ever)."""
            self.unsent_timer = None
            if self.transport.is_closing() or not self.deferred:
                return
            if self.flow.write_paused:
                return  # ``resume_writing`` looks again
            unsent = kernel_unsent(self.transport)
            if unsent <= PIPELINE_UNSENT_BYTES:
                self.deferred = False
                self._next_request()
                return
            now = self.loop.time()
            if unsent < self.unsent_seen:
                self.unsent_seen, self.stuck_since = unsent, now
            elif self.limits.write_timeout and now - self.stuck_since >= self.limits.write_timeout:
                self.limits.stuck += 1
                self.transport.abort()
                return
            delay = min(delay * 2, UNSENT_POLL_MOST)
            self.unsent_timer = self.loop.call_later(delay, self._look_again, delay)

        def _next_request(self) -> None:
            last = not self.pipeline
            super().on_response_complete()
            if self.backlog and not self.ending and not self.transport.is_closing():
                data, self.backlog = self.backlog, b""
                self._parse(data)
                if self.eof and not self.backlog and not self.ending:
                    self._end(None)  # the client's end of stream came after them
                return
            if self.ending and last:
                self._say_last_words()

    return LimitedProtocol
