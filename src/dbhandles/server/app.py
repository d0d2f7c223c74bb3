"""``create_app(service)``: the Starlette application (HTTP routes, the ``/ws`` socket, the dashboard)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from dbhandles.commands.envelope import error_envelope
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError, ServerUnreachable, TooManyRequests
from dbhandles.server import auth, http, public
from dbhandles.server.actor_share import ActorShare
from dbhandles.server.connection_counts import Wire, refusal_bytes
from dbhandles.server.connections import connection_transport
from dbhandles.server.fair import FairPool
from dbhandles.server.fanout import Fanout
from dbhandles.server.http import LARGE_BODY
from dbhandles.server.job_process import ChildJobs
from dbhandles.server.token_gate import TOKEN_READINGS, TokenGate
from dbhandles.server.ws import TRANSPORT_KEY
from dbhandles.server.ws_flow import MessageRate
from dbhandles.server.ws_serve import websocket_endpoint
from dbhandles.server.ws_wire import WireRate
from dbhandles.values import json_text
from dbhandles.wire import HEALTH_PATH

if TYPE_CHECKING:
    from dbhandles.jobs import Job
    from dbhandles.server.ws import Connection
    from dbhandles.service import Service

__all__ = ["DbHandlesApp", "ServerState", "create_app"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long shutdown waits for commands already running in worker threads to finish.
DRAIN_SECONDS = 30.0
#: Worker threads for database work. SQLite releases the GIL while it reads, but Python work between
#: calls does not; a small pool keeps GIL hand-offs (the main cost per request) low. Measured with
#: benchmarks/server_read.py on 2 cores: 2 threads 0.50-0.54x the ceiling, 4 threads 0.42x, 8 threads
#: 0.31x, 1 thread 0.39x. Raise it (--threads) when commands wait on slow I/O rather than the CPU.
#: ``FairPool`` adds one spare thread that only serves a caller with nothing running (fair.py).
DEFAULT_THREADS = 2
#: Commands that may run on the event loop (see ``ServerState.can_run_inline``).
INLINE_COMMANDS = http.INLINE_COMMANDS


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _version() -> str:
    try:
        return version("dbhandles")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0"


class ServerState:
    """What the routes share: the service, limits, the worker threads and who may call."""

    def __init__(
        self,
        service: Service,
        *,
        close_service: bool = False,
        require_token: bool = True,
        threads: int = DEFAULT_THREADS,
        hosts: Iterable[str] = (),
    ) -> None:
        self.service = service
        self.close_service = close_service
        self.require_token = require_token
        #: The names a request's Host header may give (``auth.allowed_hosts``).
        self.hosts = auth.allowed_hosts(service.settings.allowed_hosts, hosts)
        #: ``Host`` values ``check_site`` accepted (of requests without Origin or Sec-Fetch-Site).
        self._hosts_seen: set[str] = set()
        #: Contexts of requests authenticated before, reused once their token is checked again.
        self._contexts: dict[tuple[str, str | None], Context] = {}
        settings = service.settings
        self.max_body_bytes = settings.max_body_bytes
        #: Seconds a request body has to arrive in full (``request_timeout`` past it).
        self.body_timeout = settings.body_timeout_seconds
        self.version = _version()
        #: Connections per address and answer bytes not yet read, per caller (server/connections.py).
        self.wire = Wire(settings)
        self.websockets = 0
        #: What each client address and actor holds now (only touched on the event loop).
        self.addresses: Counter[str] = Counter()
        self.uploads: Counter[str] = Counter()
        self.shares = ActorShare(settings.max_requests_per_actor)  # known actors: not by address
        self.sockets: Counter[str] = Counter()
        self.subscriptions: Counter[str] = Counter()
        #: The messages each actor's sockets may still send (``ws_flow.MessageRate``).
        self.message_rates: dict[str, MessageRate] = {}
        #: The frames and bytes each actor's sockets may still send (``ws_wire.WireRate``).
        self.wire_rates: dict[str, WireRate] = {}
        #: Until when (``time.monotonic``) each actor whose socket was closed for unread answers
        #: may not open another (``ws_overflow_cooldown_seconds``; only touched on the event loop).
        self.cooling: dict[str, float] = {}
        #: The one bus subscription of every WebSocket (created with the first subscription).
        self.fanout: Fanout | None = None
        #: The documents of the routes that need no token, built once, and their requests in
        #: progress per address (server/public.py).
        self.documents = public.Documents(self)
        self.public = public.PublicLimit(settings.public_requests_per_address)
        self.public_rate = public.PublicRate(settings.public_rate, settings.public_burst)
        #: Which tokens could be valid, told on the loop (a flood of made-up ids takes no thread).
        self.token_gate = TokenGate(lambda: self.run_as(TOKEN_READINGS, service.tokens.list))
        #: Run at shutdown once running commands finished, before the service closes.
        self.shutdown_hooks: list[Callable[[], None]] = []
        # A plain pool, not anyio's thread limiter: it is about twice as fast per hand-off, and
        # shutting it down waits for every command already started (acknowledged or not yet). It
        # serves callers in turn (fair.py): one caller's backlog never queues another's request.
        self.executor = FairPool(threads, "dbhandles")
        #: Commands handed to worker threads and not finished yet (only touched on the event loop).
        self.in_flight = 0
        #: The open WebSockets (only touched on the event loop).
        self.connections: set[Connection] = set()
        #: Set once shutdown began (``server/shutdown.py``): new requests are refused, not run.
        self.stopping = False
        #: Set when shutdown stops waiting for jobs that would not stop (``wait_job``).
        self.abandoned = asyncio.Event()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work (database access, token checks) in a worker thread."""
        return await self.run_as(None, functools.partial(fn, *args, **kwargs))

    async def run_as(self, caller: object, fn: Callable[[], T]) -> T:
        """``run``, in the turn of ``caller`` (a token, an address: see ``FairPool``)."""
        self.in_flight += 1
        try:
            key = caller if caller is not None else "-"
            return await asyncio.wrap_future(self.executor.submit_as(key, fn))
        finally:
            self.in_flight -= 1

    async def wait_job(self, job: Job) -> dict[str, Any]:
        """The envelope ``job`` answered, awaited without holding a thread. If the server shuts
        down and stops waiting for it first (``abandoned``: a job that cannot be stopped, such as
        a vacuum, outlived the shutdown grace), a ``server_unreachable`` envelope that says so, with
        ``jobId`` and ``jobStatus``: the job runs to its end before the process exits."""
        if not job.outcome.done() and not self.abandoned.is_set():
            outcome = asyncio.wrap_future(job.outcome)
            gave_up = asyncio.ensure_future(self.abandoned.wait())
            either: set[asyncio.Future[Any]] = {outcome, gave_up}
            try:
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gave_up.cancel()
                outcome.cancel()  # only this wrapper: a job's outcome cannot be (jobs.Job)
        if job.outcome.done():
            return dict(job.outcome.result())
        return error_envelope(ServerUnreachable(
            f"the server is shutting down and stopped waiting for {job.command} (job {job.id}), "
            "which cannot be stopped: it runs to its end before the server exits, but its result "
            "is not reported here; check the database once the server is back",
            details={"jobId": job.id, "jobStatus": job.status}))  # fmt: skip

    def refuse_if_stopping(self) -> None:
        """Refuse a request that arrives once shutdown began: nothing of it runs.

        Raises:
            ServerUnreachable: the server is shutting down.
        """
        if self.stopping:
            raise ServerUnreachable(
                "the server is shutting down: this request was not run; send it again once the "
                "server is back"
            )

    def can_run_inline(self, name: str, params: dict[str, Any] | None) -> bool:
        """Whether a command may run on the event loop itself: a point read (``data/read``) on a
        SQLite WAL database while no worker thread and no job is running anything, so no lock of
        ours is held and WAL readers never wait for writers. A thread hand-off costs more than the
        read itself (measured: 2.5x the throughput of ``data/read``); everything else goes to a
        worker."""
        return (
            name in INLINE_COMMANDS
            and self.in_flight == 0
            and self.service.jobs.active == 0
            and params is not None
            and self.service.reads_without_waiting(params.get("dbHandle"))
        )

    # -- limits (docs/server.md, "Limits") -----------------------------------------------------------

    def enter(self, address: str) -> None:
        """Count one more HTTP request in progress (or WebSocket open) from ``address``.

        Raises:
            TooManyRequests: ``address`` already has ``max_connections_per_address`` of them.
        """
        limit = self.service.settings.max_connections_per_address
        if self.addresses[address] >= limit:
            raise TooManyRequests(
                f"{address} already has {limit} requests in progress or WebSockets open (the limit "
                "is DBHANDLES_MAX_CONNECTIONS_PER_ADDRESS); wait for some to finish",
                field="connection",
            )
        self.addresses[address] += 1

    def leave(self, address: str) -> None:
        _decrement(self.addresses, address)

    def start_upload(self, actor: str) -> None:
        """Count one more large body being received for ``actor``.

        Raises:
            TooManyRequests: the actor is already sending ``max_uploads_per_actor`` of them.
        """
        limit = self.service.settings.max_uploads_per_actor
        if self.uploads[actor] >= limit:
            raise TooManyRequests(
                f"{json_text(actor, 80)} is already sending {limit} request bodies over {LARGE_BODY} bytes (the "
                "limit is DBHANDLES_MAX_UPLOADS_PER_ACTOR); wait for one to finish",
                field="body",
            )
        self.uploads[actor] += 1

    def end_upload(self, actor: str) -> None:
        _decrement(self.uploads, actor)

    def cool_off(self, context: Context) -> None:
        """A socket of ``context``'s actor was closed for unread answers: refuse its new sockets
        for ``ws_overflow_cooldown_seconds`` (a client that reconnects at once would have the
        server build answers it never reads, over and over). Not for an administrator."""
        cooldown = self.service.settings.ws_overflow_cooldown_seconds
        if cooldown and not context.is_admin:
            self.cooling[context.actor] = time.monotonic() + cooldown

    def cooling_off(self, actor: str) -> TooManyRequests | None:
        """Why a new socket of ``actor`` is refused while it cools off (``cool_off``), or None."""
        left = self.cooling.get(actor, 0.0) - time.monotonic()
        if left <= 0:
            self.cooling.pop(actor, None)
            return None
        return TooManyRequests(
            f"a WebSocket of {json_text(actor, 80)} was just closed for not reading its answers (code 4000), so "
            f"its new sockets are refused for {left:.1f} s more (the pause is "
            "DBHANDLES_WS_OVERFLOW_COOLDOWN_SECONDS); read the answers you ask for",
            field="connection",
        )

    def sweep_seconds(self) -> float:
        """How often expired query cursors are deleted: a tenth of their TTL, within 0.1 s to 60 s."""
        return self.service.cursors.sweep_seconds

    async def sweep_cursors(self) -> None:
        """Delete expired query cursors now and then, even when no command would notice them."""
        while True:
            await asyncio.sleep(self.sweep_seconds())
            try:
                await self.run(self.service.cursors.expire)
            except RuntimeError:  # the worker threads stopped: the server is shutting down
                return
            except DbHandlesError:
                log.warning("could not delete expired query cursors", exc_info=True)

    def check_site(self, origin: str | None, fetch_site: str | None, host: str | None) -> None:
        """Refuse a request for another host name (DNS rebinding) or that a browser made on behalf
        of another site (see ``auth.check_site``).

        Raises:
            Forbidden: a Host this server does not answer to, or another site's page.
        """
        if origin is None and fetch_site is None and host in self._hosts_seen:
            return  # this Host was accepted before, and ``hosts`` never changes
        auth.check_site(origin, fetch_site, host, self.hosts)
        if origin is None and fetch_site is None and host is not None:
            if len(self._hosts_seen) >= 64:  # Host values are the caller's: keep a few
                self._hosts_seen.clear()
            self._hosts_seen.add(host)

    def context(
        self,
        authorization: str | None,
        session_id: str | None,
        command: str | None = None,
        *,
        address: str | None = None,
    ) -> Context:
        """Who a request runs as, in which (actor-scoped) session; see ``auth.authenticate``. A
        refusal is written to the audit log (``audit_refusal``), naming ``command``.

        Raises:
            Unauthorized: a malformed, unknown, expired or revoked token, or none when one is required.
        """
        try:
            return auth.authenticate(self.service.tokens, authorization, session_id,
                                     require_token=self.require_token, known=self._contexts)  # fmt: skip
        except DbHandlesError as exc:
            self.audit_refusal(command, exc, authorization, address)
            raise

    def audit_refusal(
        self,
        command: str | None,
        exc: DbHandlesError,
        authorization: str | None,
        address: str | None = None,
    ) -> None:
        """Write the audit row of a request refused before it reached its command: a missing or
        bad token (401), another site's page (403). The actor is who the request claimed to be
        (``auth.claimed_actor``: a token's id, never its secret); repeats are summarised per client
        ``address`` (``AuditLog.record_refusal``)."""
        name = (command or "(websocket)")[:100]
        actor = auth.claimed_actor(authorization)
        self.service.audit.record_refusal(actor, name, exc.code, address=address)

    def door_refusal(self, address: str) -> tuple[float, bytes] | None:
        """Charge a refusal ``server/connections.py`` makes itself (a malformed request, an invalid
        WebSocket handshake, a head too large or late) to ``address``'s public rate
        (``connections.Door``): None within it (that refusal is answered at once), else the
        seconds of the rate's pause (``PublicRate.refusal_pause``) and its 429, with
        ``Retry-After``, closing the connection (its parser cannot go on)."""
        wait = self.public_rate.take(address)
        if not wait:
            return None
        settings = self.service.settings
        exc = public.too_fast(address, settings.public_rate, settings.public_burst)
        retry = public.retry_after(wait)
        pause = self.public_rate.refusal_pause(public.REFUSAL_PAUSE_SECONDS)
        return pause, refusal_bytes(429, exc, retry_after=retry)

    async def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Wait for every command already started, so a write the server began is finished (and
        durable) before the service closes."""
        waiter = asyncio.to_thread(self.executor.shutdown, wait=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, timeout)


class DbHandlesApp(Starlette):
    """Starlette, with ``POST /commands/<name>`` answered before routing and middleware.

    That route is the hot path (every command of every client): skipping the generic request
    machinery roughly doubles its throughput. Everything else goes through Starlette as usual.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # The connection's transport (uvicorn's), so that a client that never reads can be cut
            # off: a close frame would wait behind everything it did not read.
            scope[TRANSPORT_KEY] = getattr(getattr(send, "__self__", None), "transport", None)
            send = _denial_completes_handshake(send)
        if scope["type"] in ("http", "websocket") and not await self._host_allowed(scope, send):
            return
        if scope["type"] == "websocket":
            # Take the browser's ``?token=`` out of the scope before anything logs the request line.
            auth.query_token(scope)
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            if scope["method"] == "POST" and scope["path"].startswith(http.COMMAND_PREFIX):
                await http.fast_command(self.state.dbhandles, scope, receive, send)
            else:
                scope[TRANSPORT_KEY] = connection_transport(send)
                await self._public_request(scope, receive, send)
        except RuntimeError as exc:
            # Writing to a connection the client closed raises (uvloop: "unable to perform
            # operation on <TCPTransport closed=True>"): a client that went away is no server error.
            transport = connection_transport(send)
            if transport is None or not transport.is_closing():
                raise
            log.debug("%s %s: the client closed the connection before its answer was written (%s)",
                      scope["method"], scope["path"], exc)  # fmt: skip

    async def _public_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every HTTP request but ``POST /commands/<name>`` (the routes that need no token, and
        wrong URLs), within its address's rate and slots and the write deadline
        (``public.serve_public``; server/public.py)."""
        if scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            # A few hundred bytes, built once: a client that does not read it holds nothing, and
            # the administrator's jtag must always find its server (docs/server.md). Any other
            # method is refused (405) within the address's rate, like every other refusal before
            # authentication: uncharged, PUT /health made bob's reads 12-21 times slower (p99).
            await super().__call__(scope, receive, send)
            return
        state = self.state.dbhandles
        address = http.client_address(scope)
        await public.serve_public(super().__call__, state, address, scope, receive, send)

    async def _host_allowed(self, scope: Scope, send: Send) -> bool:
        """Every door (the command routes, the WebSocket upgrade, the dashboard, ``/health``)
        answers a request only with one ``Host`` header (and, in HTTP/1.1, at least one), naming a
        host it is called by (DNS rebinding: ``auth.check_site``), and a target that is a path or
        an absolute URL naming such a host (``auth.check_target``); otherwise ``False``, and the
        error envelope (400 ``invalid_params``, 403 ``forbidden``) with an audit row
        (``_audit_door``). A WebSocket upgrade gets the same envelope and status as a denial
        response (``_deny_upgrade``); its ``Origin`` is checked by ``ws.py``, which audits that
        refusal.

        A refusal takes a request from the address's public rate (``public.PublicRate``, the
        bucket of the routes that need no token): past it, the refusal is the rate's 429, sent
        after ``public.REFUSAL_PAUSE_SECONDS`` on a connection kept open, and not audited. Answered
        at once and audited, 3,000 wrong-Host requests a second made another actor's reads 4.5-6.3
        times slower (issue 13)."""
        state = self.state.dbhandles
        try:
            host = auth.request_host(scope.get("headers", ()))
            auth.require_host(scope, host)
            state.check_site(None, None, host)
            auth.check_target(scope, state.hosts)
        except DbHandlesError as exc:
            await _refuse_at_door(state, scope, send, exc)
            return False
        return True


async def _refuse_at_door(
    state: ServerState, scope: Scope, send: Send, exc: DbHandlesError
) -> None:
    """Answer ``exc`` (``DbHandlesApp._host_allowed``), or the rate's delayed 429 past the address's
    public rate."""
    address = http.client_address(scope)
    wait = state.public_rate.take(address)
    answer: DbHandlesError = exc
    if wait:
        answer = await public.paused_refusal(state, address, connection_transport(send))
    else:
        _audit_door(state, scope, exc)
    with contextlib.suppress(RuntimeError):  # the client already left: nothing to answer
        if scope["type"] == "websocket":  # past the rate: Retry-After, as every 429 of the rate
            retry = public.retry_after(wait) if wait else None
            await _deny_upgrade(scope, send, answer, retry)
        elif isinstance(answer, TooManyRequests):
            await public.refuse(send, answer, public.retry_after(wait))
        else:
            await http.respond_error(send, answer)


def _audit_door(state: ServerState, scope: Scope, exc: DbHandlesError) -> None:
    """The audit row of a request refused at the door (``_host_allowed``), as a refused token or
    another site's page is written (``ServerState.audit_refusal``): operation ``auth``, the actor
    the request claimed (its ``Authorization``, or an upgrade's ``?token=``), and as command the
    command a ``POST /commands/<name>`` names, ``(websocket)`` for an upgrade, else the method and
    path (``GET /health``)."""
    headers = [value.decode("latin-1") for key, value in scope.get("headers", ())
               if key == b"authorization"]  # fmt: skip
    path = str(scope.get("path", ""))
    if scope["type"] == "websocket":
        authorization = auth.socket_credential(headers, auth.query_token(scope))
        name: str | None = None
    else:
        authorization = auth.AMBIGUOUS if len(headers) > 1 else next(iter(headers), None)
        method = str(scope.get("method", ""))
        command = method == "POST" and path.startswith(http.COMMAND_PREFIX)
        name = path[len(http.COMMAND_PREFIX) :] if command else f"{method} {path}"
    state.audit_refusal(name, exc, authorization, http.client_address(scope))


def _denial_completes_handshake(send: Send) -> Send:
    """``send`` of a WebSocket connection, marking the server's handshake complete once a denial
    response (``websocket.http.response.body``) is sent.

    uvicorn's ``websockets-sansio`` protocol does not (uvicorn pull request #3138, open): for every
    refused upgrade it then logs ERROR "ASGI callable returned without completing handshake", which
    its ``wsproto`` protocol does not; a refusal is no server error. Other servers: ``send`` as is.
    """
    protocol = getattr(send, "__self__", None)
    if protocol is None or not hasattr(protocol, "handshake_complete"):
        return send

    async def sending(message: Any) -> None:
        await send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            protocol.handshake_complete = True

    return sending


async def _deny_upgrade(
    scope: Scope, send: Send, exc: DbHandlesError, retry_after: int | None = None
) -> None:
    """Refuse a WebSocket upgrade before routing with ``exc``'s error envelope and status (the
    ASGI denial response, as ``ws.py`` answers), with ``Retry-After`` (whole seconds) when
    ``retry_after`` is given, or a bare close where the server cannot send one."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008})
        return
    body = orjson.dumps(error_envelope(exc))
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if retry_after is not None:
        headers.append((b"retry-after", b"%d" % retry_after))
    await send({"type": "websocket.http.response.start", "status": exc.http_status,
                "headers": headers})  # fmt: skip
    await send({"type": "websocket.http.response.body", "body": body})


def create_app(
    service: Service,
    *,
    close_service: bool = False,
    require_token: bool = True,
    threads: int = DEFAULT_THREADS,
    hosts: Iterable[str] = (),
) -> Starlette:
    """The ASGI app serving ``service``.

    Args:
        service: the service whose commands the app runs (the caller keeps ownership by default).
        close_service: close ``service`` when the app shuts down (after running commands finish).
        require_token: refuse requests without a valid bearer token (``unauthorized``, 401); when
            false, a request without a token runs as the local user (for development only).
        threads: worker threads for database work.
        hosts: names the server is bound to, which a request's Host may give besides the loopback
            names and ``DBHANDLES_ALLOWED_HOSTS`` (a wildcard address adds nothing).
    """
    state = ServerState(
        service,
        close_service=close_service,
        require_token=require_token,
        threads=threads,
        hosts=hosts,
    )
    # Large jobs on shared databases run in child processes, off this process's GIL.
    service.jobs.elsewhere = ChildJobs(service)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.documents.build()  # before any connection: the first build is 360 ms of the loop
        sweeper = asyncio.create_task(state.sweep_cursors())
        try:
            yield
        finally:
            sweeper.cancel()
        if state.fanout is not None:
            state.fanout.close()
        await state.drain()
        for hook in state.shutdown_hooks:
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")
        if state.close_service:
            service.close()

    routes = [
        Route("/commands/{name:path}", http.command_endpoint, methods=["POST"]),
        Route("/commands/{name:path}", public.command_info_endpoint, methods=["GET"]),
        Route("/commands", public.commands_endpoint, methods=["GET"]),
        Route("/health", public.health_endpoint, methods=["GET"]),
        Route("/openapi.json", public.openapi_endpoint, methods=["GET"]),
        WebSocketRoute("/ws", websocket_endpoint),
        *(Route(path, public.static_endpoint, methods=["GET"]) for path in public.STATIC_FILES),
    ]
    app = DbHandlesApp(
        routes=routes,
        exception_handlers={
            HTTPException: http.http_exception_handler,
            Exception: http.internal_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.dbhandles = state
    return app
