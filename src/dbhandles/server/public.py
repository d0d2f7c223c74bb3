"""The routes that need no token: ``GET /health``, ``/commands``, ``/commands/<name>``, ``/openapi.json``
and the dashboard's files, each O(1) small work on the event loop.

Anyone who can reach the server may call them, so none may cost the loop more than a lookup: every
document is built once per server (its settings never change; ``/openapi.json`` and ``/commands`` at
start-up, ``Documents.build``) as the bytes it is sent as, with an ``ETag`` (``If-None-Match`` is
answered 304 without a body); the dashboard's files are read once.
Building ``/openapi.json`` with the server's limits costs 15 ms and ``/commands`` 10 ms of one core:
built per request, four clients asking in a loop held every other client's requests for up to 400 ms
(issue 13).

Three bounds (``serve_public``): each address (``addresses.address_key``: all of loopback is one)
may send ``public_rate`` requests a second (``public_burst`` at once) without a valid token
(``PublicRate``, a token bucket; past it 429 with ``Retry-After``: a client that reads, ``wrk -c32``
on ``/openapi.json``, made another actor's reads 6-11 times slower), every request refused before
authentication taking from the same bucket (a wrong Host: ``DbHandlesApp``; no token, a bad one or
another site's page on a command route, ``http.py``, or a WebSocket upgrade, ``ws_serve.py``); a
connection waiting out the pause of its 429 holds no place (``Wire.refusing``); an answer must be
taken within ``public_write_timeout_seconds``, or its connection is cut (a client that never read
kept it for ever); and a connection that has not taken its answer holds only itself: uvicorn reads
none of its pipelined requests while its answer waits to be written (``connections.py``), and a
request on such a connection is refused (429, closed) once its address has
``PUBLIC_REQUESTS_PER_ADDRESS`` answers not taken (``PublicLimit``). A request on a connection that
holds no unsent answer is never refused for the others: eight connections that never read held every
"slot" of their address, and the dashboard was refused to everyone there. ``/health`` keeps its own
path (``DbHandlesApp``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dbhandles.adapters import adapter_names
from dbhandles.commands import builtin_commands
from dbhandles.commands.envelope import error_envelope
from dbhandles.errors import DbHandlesError, TooManyRequests, UnknownCommand
from dbhandles.server.auth import AMBIGUOUS
from dbhandles.server.connections import connection_transport
from dbhandles.server.openapi import command_info, commands_listing, openapi_document
from dbhandles.values import json_text
from dbhandles.wire import home_id

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from dbhandles.server.app import ServerState

__all__ = [
    "PUBLIC_REQUESTS_PER_ADDRESS",
    "REFUSAL_PAUSE_SECONDS",
    "STATIC_FILES",
    "Document",
    "Documents",
    "PublicLimit",
    "PublicRate",
    "command_info_endpoint",
    "commands_endpoint",
    "health_endpoint",
    "openapi_endpoint",
    "paused_refusal",
    "refuse",
    "retry_after",
    "serve_public",
    "static_endpoint",
    "written",
]

COMMANDS = builtin_commands()
JSON = "application/json"
#: Requests to the routes that need no token one client address may have in progress at once
#: (the default of ``Settings.public_requests_per_address``).
PUBLIC_REQUESTS_PER_ADDRESS = 8
#: Seconds a request refused for the address's rate waits at least before its 429 is sent.
REFUSAL_PAUSE_SECONDS = 1.0
#: Paused refusals are sent at most one per this many seconds (the whole server's): 500 a second.
REFUSAL_SPACING_SECONDS = 0.002
#: The longest pause of a refusal, in pauses: past it refusals are no longer spread.
REFUSAL_MOST_PAUSES = 3.0
#: Connections cut at the write deadline are told in one log line at most this often (seconds).
CUT_LOG_SECONDS = 10.0
#: Addresses whose buckets ``PublicRate`` keeps before it forgets the full ones (memory bound).
_RATE_ADDRESSES = 4096
log = logging.getLogger(__name__)
STATIC_FILES = {
    "/": "index.html",
    "/jtag.js": "jtag.js",
    "/app.js": "app.js",
    "/page.js": "page.js",
    "/editor.js": "editor.js",
    "/token.js": "token.js",
    "/show.js": "show.js",
    "/style.css": "style.css",
    # A file rather than a data: URL in the page, which the page's own policy (img-src 'self') refuses.
    "/favicon.svg": "favicon.svg",
}
_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: The dashboard is never framed by another page (clickjacking), runs only its own scripts, talks
#: only to this server, and is never scripted by the page that opened it.
_PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # A page of another site that opens the dashboard (window.open) gets no handle on the tab.
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Document:
    """One answer as it is sent: ``body`` (bytes), its ``media_type``, and ``etag`` (a quoted hash
    of the body)."""

    body: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, media_type: str = JSON) -> Document:
        return cls(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def response(self, request: Request, headers: dict[str, str] | None = None) -> Response:
        """200 with the body, or 304 without it when the request's ``If-None-Match`` names it."""
        sent = {"ETag": self.etag, "Cache-Control": "no-cache", **(headers or {})}
        given = request.headers.get("if-none-match", "")
        if self.etag in (tag.strip() for tag in given.split(",")) or given.strip() == "*":
            return Response(status_code=304, headers=sent)
        return Response(self.body, media_type=self.media_type, headers=sent)


class Documents:
    """The documents of one server, each built on first use and kept (``Documents.builds`` counts
    the builds, for tests). The command table can grow (adapters registered from entry points
    after start-up): the documents that list it are rebuilt once when it did.

    Args:
        state: the server whose settings and version the documents show.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._kept: dict[str, Document] = {}
        self._key: tuple[str, ...] = ()
        self.builds = 0
        self._home_id: str | None = None

    def _get(self, name: str, build: Callable[[], bytes], media_type: str = JSON) -> Document:
        key = (*sorted(COMMANDS), *adapter_names())
        if key != self._key:
            self._kept.clear()
            self._key = key
        found = self._kept.get(name)
        if found is None:
            self.builds += 1
            found = self._kept[name] = Document.of(build(), media_type)
        return found

    def build(self) -> None:
        """Build ``/openapi.json`` and ``/commands`` now (at start-up, before any connection): the
        first build imports every adapter's modules, 360 ms of the loop and 13 MB; built on the
        first request, it stalled every client at the start of a flood of them (issue 13)."""
        self.openapi()
        self.commands()

    def openapi(self) -> Document:
        state = self.state
        return self._get("openapi", lambda: orjson.dumps(
            openapi_document(state.version, state.service.settings)))  # fmt: skip

    def commands(self) -> Document:
        settings = self.state.service.settings
        return self._get("commands", lambda: orjson.dumps({"commands": commands_listing(settings)}))

    def command(self, name: str) -> Document | None:
        """One command's entry of ``/commands``, or None if there is no such command."""
        command = COMMANDS.get(name)
        if command is None:
            return None
        settings = self.state.service.settings
        return self._get(f"command:{name}", lambda: orjson.dumps(command_info(command, settings)))

    def static(self, path: str) -> Document:
        name = STATIC_FILES[path]
        media = _STATIC_TYPES[os.path.splitext(name)[1]]
        return self._get(
            f"static:{name}",
            lambda: files("dbhandles.server").joinpath("static", name).read_bytes(),
            media,
        )

    def home_id(self) -> str:
        """``wire.home_id`` of the resolved home folder (resolved once: a path lookup is I/O)."""
        if self._home_id is None:
            home = self.state.service.settings.home.expanduser().resolve()
            self._home_id = home_id(str(home))
        return self._home_id


class PublicLimit:
    """Requests in progress on the routes that need no token, per client address, up to their
    answers taken (only touched on the event loop).

    Args:
        limit: the most one address may have in progress at once.
    """

    def __init__(self, limit: int = PUBLIC_REQUESTS_PER_ADDRESS) -> None:
        self.limit = limit
        self.counts: Counter[str] = Counter()
        #: Connections cut at the write deadline (``serve_public``; a count, for tests and logs),
        #: and how many of them the last log line told (``_told_cut``).
        self.cut = 0
        self.cut_told = 0
        self.cut_told_at = -math.inf

    def enter(self, address: str, holding: bool) -> None:
        """Count one more request from ``address``; ``holding``: its connection still holds an
        unsent answer (pipelined behind it).

        Only such a request is ever refused: a connection that has not taken its answer holds
        itself, never its address's other connections (eight that never read held the dashboard
        for everyone at their address, issue 13).

        Raises:
            TooManyRequests: ``holding``, and ``address`` already has ``limit`` of them in progress.
        """
        if holding and self.counts[address] >= self.limit:
            raise TooManyRequests(
                f"{json_text(address, 80)} already has {self.limit} answers of the routes that "
                "need no token (GET /commands, /openapi.json, the dashboard, wrong URLs) not taken "
                "yet, and this connection has not taken the answer before this request; read "
                "your answers before sending more (DBHANDLES_PUBLIC_REQUESTS_PER_ADDRESS)",
                field="connection",
            )
        self.counts[address] += 1

    def leave(self, address: str) -> None:
        self.counts[address] -= 1
        if self.counts[address] <= 0:
            del self.counts[address]


class PublicRate:
    """A token bucket per client address of the requests without a valid token to the routes that
    need no token and of the requests refused before authentication (only touched on the event
    loop).

    Args:
        rate: requests per second, sustained (0: no limit).
        burst: requests at once above that rate, the bucket's size.
        clock: ``time.monotonic`` (tests give their own).
    """

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, float(burst))
        self.clock = clock
        #: ``{address: (tokens, when)}``.
        self.buckets: dict[str, tuple[float, float]] = {}
        #: When the next paused refusal may be sent (``refusal_pause``), on ``clock``.
        self.next_refusal = 0.0

    def take(self, address: str) -> float:
        """Take one request of ``address``: 0.0 if it may be answered, else the seconds until the
        bucket holds one again (a refused request takes nothing, so a client that waits that
        long is answered)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self.buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self.buckets[address] = (tokens, now)
            return (1.0 - tokens) / self.rate
        if address not in self.buckets and len(self.buckets) >= _RATE_ADDRESSES:
            self._forget_full(now)
        self.buckets[address] = (tokens - 1.0, now)
        return 0.0

    def give_back(self, address: str) -> None:
        """Return the request ``take`` took of ``address`` (its token checked after all: a valid
        token is never charged). Taken before the check and given back after it, never checked
        first and charged after: a check awaits a worker thread, and 300 connections that all found
        the bucket full before any was charged got 566-1514 immediate refusals in 6 s where the
        bucket allows 180 (issue 13)."""
        if self.rate <= 0:
            return
        found = self.buckets.get(address)
        if found is None:  # forgotten full (``_forget_full``): it still is
            return
        now = self.clock()
        tokens, at = found
        self.buckets[address] = (min(self.burst, tokens + (now - at) * self.rate + 1.0), now)

    def due(self, address: str) -> float:
        """Seconds until ``address``'s bucket holds a request again (0.0: it holds one now), taking
        nothing: a request that turns out to be refused is charged after (``take``)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self.buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def refusal_pause(self, pause: float) -> float:
        """Seconds the refusal made now waits before it is sent: at least ``pause``, and one
        ``REFUSAL_SPACING_SECONDS`` after the refusal before it (every address's), up to
        ``REFUSAL_MOST_PAUSES`` times ``pause`` (a flood larger than the spacing allows is then
        no longer spread, but bounded: its refusals wait no longer).

        Paused for the same ``pause`` each, the refusals of a flood came due together: ``wrk
        -c300`` was refused 300 times at once, answered within the same few milliseconds once a
        second and its next 300 requests parsed, so another actor's read that came then waited for
        all of it (its p99 8.7 times its p99 with no flood, issue 13). Spread, the loop does the same
        work a little at a time."""
        now = self.clock()
        due = max(now + pause, self.next_refusal)
        if due > now + pause * REFUSAL_MOST_PAUSES:
            return pause * REFUSAL_MOST_PAUSES
        self.next_refusal = due + REFUSAL_SPACING_SECONDS
        return due - now

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that refilled (an address seen again starts full anyway)."""
        for address, (tokens, at) in list(self.buckets.items()):
            if tokens + (now - at) * self.rate >= self.burst:
                del self.buckets[address]


def too_fast(address: str, rate: float, burst: float) -> TooManyRequests:
    """The refusal of a request past ``PublicRate`` (its 429 says when to retry: ``Retry-After``)."""
    return TooManyRequests(
        f"{json_text(address, 80)} sent more than {rate:g} requests a second (bursts of "
        f"{burst:g}) without a token to the routes that need none (GET /commands, /openapi.json, "
        "the dashboard) or refused before authenticating (a Host header this server does not "
        "answer to, no token or a bad one, another site's page); retry after the seconds of "
        "Retry-After (DBHANDLES_PUBLIC_RATE)",
        field="connection",
    )


async def paused_refusal(
    state: ServerState, address: str, transport: asyncio.Transport | None = None
) -> TooManyRequests:
    """Wait ``REFUSAL_PAUSE_SECONDS`` or more (``PublicRate.refusal_pause``: refusals are spread,
    one per ``REFUSAL_SPACING_SECONDS``), then the refusal of a request past ``address``'s rate
    (``too_fast``). Answered at once, a refusal let wrk -c32 send 10,000 of them a second and the
    loop was as busy as without the rate; paused, each connection costs one a second. Meanwhile its
    connection (``transport``, uvicorn's) may be closed to make room for a newcomer
    (``Wire.refusing``): its client was refused anyway."""
    refusing = state.wire.refusing
    if transport is not None:
        refusing.add(transport)
    try:
        await asyncio.sleep(state.public_rate.refusal_pause(REFUSAL_PAUSE_SECONDS))
    finally:
        if transport is not None:
            refusing.discard(transport)
    settings = state.service.settings
    return too_fast(address, settings.public_rate, settings.public_burst)


def retry_after(wait: float) -> int:
    """The ``Retry-After`` of a refusal of the rate, in whole seconds (at least 1): ``wait``
    (``PublicRate.take``'s seconds until the address may send again) less the pause the refusal
    was sent after (``REFUSAL_PAUSE_SECONDS``), rounded up. Every 429 of the rate (HTTP, an
    upgrade refused at the door or by ``ws_serve``, a closed connection's) says it this way."""
    return max(1, math.ceil(wait - REFUSAL_PAUSE_SECONDS))


async def refuse(
    send: Send, exc: TooManyRequests, retry: int | None, *, close: bool = False
) -> None:
    """Answer ``exc`` (429), with ``Retry-After: retry`` (``retry_after``) when ``retry`` is given.
    A refusal of the rate keeps the connection unless ``close`` (a request body not read): closing
    it would make a flooding client open another, which costs the loop more than this answer."""
    body = orjson.dumps(error_envelope(exc))
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    if retry is None or close:
        headers.append((b"connection", b"close"))
    if retry is not None:
        headers.append((b"retry-after", b"%d" % retry))
    await send({"type": "http.response.start", "status": exc.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _authorization(scope: Scope) -> str | None:
    found = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"authorization"]
    if len(found) > 1:
        return AMBIGUOUS
    return found[0] if found else None


async def _has_valid_token(state: ServerState, scope: Scope) -> bool:
    """Whether the request carries a token that checks (in a worker thread, in the token's turn),
    once ``state.token_gate`` found it may be one: a flood of made-up tokens takes no thread."""
    authorization = _authorization(scope)
    if authorization is None or not await state.token_gate.plausible(authorization):
        return False
    check = functools.partial(state.context, authorization, None, f"GET {scope['path']}")
    try:
        await state.run_as(authorization, check)
    except DbHandlesError:
        return False
    return True


async def serve_public(
    app: ASGIApp, state: ServerState, address: str, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer one request to the routes that need no token (and wrong URLs) with ``app``, within
    the address's rate (``PublicRate``; a request whose token checks passes, checked only once the
    address is past its rate) and ``PublicLimit`` (counted up to the answer taken by the client,
    ``written``; refused only when its own connection holds an unsent answer), all of it within
    ``public_write_timeout_seconds``: past it the connection is cut (``abort``: its unread answer
    is dropped) and its count freed. ``address``: the client's (``http.client_address``)."""
    settings = state.service.settings
    deadline = settings.public_write_timeout_seconds
    timer = asyncio.timeout(deadline if deadline > 0 else None)
    try:
        async with timer:
            wait = state.public_rate.take(address)
            if wait and not await _has_valid_token(state, scope):
                exc = await paused_refusal(state, address, connection_transport(send))
                await refuse(send, exc, retry_after(wait))
                return
            limit = state.public
            transport = connection_transport(send)
            try:
                limit.enter(
                    address, transport is not None and transport.get_write_buffer_size() > 0
                )
            except TooManyRequests as exc:
                await refuse(send, exc, None)
                return
            try:
                await app(scope, receive, send)
                await written(send)  # a client that does not read keeps its slot
            finally:
                limit.leave(address)
    except TimeoutError:
        if not timer.expired():
            raise
        transport = connection_transport(send)
        if transport is not None:
            transport.abort()
            # Returned before its connection_lost (which ``abort`` only schedules), the request
            # made uvicorn log "ASGI callable returned without completing response" at ERROR
            # (283 lines for a flood of 400 non-readers, issue 13): it runs first, then uvicorn
            # sees the connection lost, and says nothing of the answer it no longer sends.
            await asyncio.sleep(0)
        state.public.cut += 1
        _told_cut(state.public, f"{scope['method']} {scope['path']} from {address}", deadline)


def _told_cut(limit: PublicLimit, latest: str, deadline: float) -> None:
    """One INFO line for the connections cut at the write deadline since the last one, at most
    every ``CUT_LOG_SECONDS``: a flood of non-readers is cut hundreds of times a second, on
    purpose (``latest``: the request cut now, ``METHOD /path from address``)."""
    now = time.monotonic()
    if now - limit.cut_told_at < CUT_LOG_SECONDS:
        return
    log.info("%d connection(s) cut, the latest %s: answer not taken within %g s (DBHANDLES_PUBLIC_"
             "WRITE_TIMEOUT_SECONDS)", limit.cut - limit.cut_told, json_text(latest, 120), deadline)  # fmt: skip
    limit.cut_told, limit.cut_told_at = limit.cut, now


async def written(send: object) -> None:
    """Return once the answer handed to ``send`` (uvicorn's request cycle's) left the connection's
    write buffer for the kernel (below its low-water mark), or the connection was lost; at once
    elsewhere (an in-process test client). A request holds its ``PublicLimit`` slot until then:
    released when handed over, the slot of a client that never reads was free again at once, and
    the limit never applied (issue 13)."""
    flow = getattr(getattr(send, "__self__", None), "flow", None)
    if flow is not None and getattr(flow, "write_paused", False):
        await flow.drain()


def _documents(request: Request) -> Documents:
    state: ServerState = request.app.state.dbhandles
    return state.documents


async def command_info_endpoint(request: Request) -> Response:
    """``GET /commands/<name>``: one command's description and schemas."""
    name = request.path_params["name"]
    found = _documents(request).command(name)
    if found is None:
        exc = UnknownCommand(f"unknown command {json_text(name, 80)}; GET /commands lists them",
                             field="command")  # fmt: skip
        return Response(
            orjson.dumps(error_envelope(exc)), status_code=exc.http_status, media_type=JSON
        )
    return found.response(request)


async def commands_endpoint(request: Request) -> Response:
    """``GET /commands``: every command with its params/result JSON schemas."""
    return _documents(request).commands().response(request)


async def openapi_endpoint(request: Request) -> Response:
    """``GET /openapi.json``: the OpenAPI 3.1 document, with this server's limits."""
    return _documents(request).openapi().response(request)


async def health_endpoint(request: Request) -> Response:
    """``GET /health``: liveness plus what the CLI checks before using this server: the pid and
    ``homeId`` (``wire.home_id`` of the resolved home folder; the path itself is not shown)."""
    state: ServerState = request.app.state.dbhandles
    body: dict[str, Any] = {
        "status": "ok",
        "service": "dbhandles",
        "version": state.version,
        "pid": os.getpid(),
        "homeId": state.documents.home_id(),
        "connections": state.websockets,
    }
    return Response(orjson.dumps(body), media_type=JSON)


async def static_endpoint(request: Request) -> Response:
    """The dashboard and the browser client, from the package's ``static`` folder."""
    return _documents(request).static(request.url.path).response(request, _PAGE_HEADERS)
