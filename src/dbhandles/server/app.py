"""``create_app(service)``: the Starlette application (HTTP routes, the ``/ws`` socket, the dashboard)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from dbhandles.context import Context
from dbhandles.server import auth, http
from dbhandles.server.ws import websocket_endpoint

if TYPE_CHECKING:
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
DEFAULT_THREADS = 2
#: Commands that may run on the event loop (see ``ServerState.can_run_inline``).
INLINE_COMMANDS = frozenset({"data/read"})


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
    ) -> None:
        self.service = service
        self.close_service = close_service
        self.require_token = require_token
        self.max_body_bytes = service.settings.max_body_bytes
        self.version = _version()
        self.websockets = 0
        #: Run at shutdown once running commands finished, before the service closes.
        self.shutdown_hooks: list[Callable[[], None]] = []
        # A plain executor, not anyio's thread limiter: it is about twice as fast per hand-off, and
        # shutting it down waits for every command already started (acknowledged or not yet).
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dbhandles")
        #: Commands handed to worker threads and not finished yet (only touched on the event loop).
        self.in_flight = 0

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking work (database access, token checks) in a worker thread."""
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        try:
            return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))
        finally:
            self.in_flight -= 1

    def can_run_inline(self, name: str, params: dict[str, Any] | None) -> bool:
        """Whether a command may run on the event loop itself: a point read (``data/read``) on a
        SQLite WAL database while no worker thread is running anything, so no lock of ours is held
        and WAL readers never wait for writers. A thread hand-off costs more than the read itself
        (measured: 2.5x the throughput of ``data/read``); everything else goes to a worker."""
        return (
            name in INLINE_COMMANDS
            and self.in_flight == 0
            and params is not None
            and self.service.reads_without_waiting(params.get("dbHandle"))
        )

    #: Refuse a request a browser made on behalf of another site (see ``auth.check_site``).
    check_site = staticmethod(auth.check_site)

    def context(self, authorization: str | None, session_id: str | None) -> Context:
        """Who a request runs as, in which (actor-scoped) session; see ``auth.authenticate``.

        Raises:
            Unauthorized: a malformed, unknown, expired or revoked token, or none when one is required.
        """
        return auth.authenticate(
            self.service.tokens, authorization, session_id, require_token=self.require_token
        )

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
            # Take the browser's ``?token=`` out of the scope before anything logs the request line.
            auth.query_token(scope)
        elif (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(http.COMMAND_PREFIX)
        ):
            await http.fast_command(self.state.dbhandles, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    service: Service,
    *,
    close_service: bool = False,
    require_token: bool = True,
    threads: int = DEFAULT_THREADS,
) -> Starlette:
    """The ASGI app serving ``service``.

    Args:
        service: the service whose commands the app runs (the caller keeps ownership by default).
        close_service: close ``service`` when the app shuts down (after running commands finish).
        require_token: refuse requests without a valid bearer token (``unauthorized``, 401); when
            false, a request without a token runs as the local user (for development only).
        threads: worker threads for database work.
    """
    state = ServerState(
        service, close_service=close_service, require_token=require_token, threads=threads
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
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
        Route("/commands/{name:path}", http.command_info_endpoint, methods=["GET"]),
        Route("/commands", http.commands_endpoint, methods=["GET"]),
        Route("/health", http.health_endpoint, methods=["GET"]),
        Route("/openapi.json", http.openapi_endpoint, methods=["GET"]),
        WebSocketRoute("/ws", websocket_endpoint),
        *(Route(path, http.static_endpoint, methods=["GET"]) for path in http.STATIC_FILES),
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
