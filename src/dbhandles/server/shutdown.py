"""Stopping ``jtag serve`` without leaving an accepted request unanswered.

uvicorn's own shutdown closes every WebSocket at once (code 1012, answers in flight are lost) and,
past its timeout, cancels the requests still running (a plain-text ``Internal Server Error`` while
their work goes on). ``GracefulServer`` runs ``stop_gracefully`` first, then uvicorn's shutdown,
which by then finds nothing left to cut:

1. stop listening, and refuse every request that arrives from now on (``server_unreachable``, 503:
   nothing of it ran), on HTTP and on open WebSockets alike;
2. wait, up to the grace (``DBHANDLES_SHUTDOWN_GRACE_SECONDS``), until every accepted request and
   every job has finished and every answer has been written;
3. past the grace, cancel the jobs still running (``JobRunner.stop``): an import stops at its next
   chunk and answers ``job_cancelled`` with what it kept (``imported``, ``batches``... as fields); an
   export stops after its page. They get ``CANCEL_SECONDS`` to do so. The SQLite statement any of
   them, or any command, is still running is interrupted at once (``Service.interrupt``,
   ``budget.stopping``); a job that cannot stop (a vacuum on another adapter) runs to its end before
   the process exits, and whoever waits for it is told exactly that;
4. close every WebSocket with 1012 once its last answer has been written (``CLOSE_SECONDS`` at most
   for a client that does not read);
5. close every connection (uvicorn's ``shutdown`` of each), and cut off those whose clients took
   none of the bytes waiting for them over ``CLOSE_SECONDS`` (logged with their count: INFO, or
   WARNING when a client had not read an answer in full).
   uvicorn's own wait then finds nothing left; before, it waited its ``timeout_graceful_shutdown``
   for those connections and logged ``ERROR: Cancel 0 running task(s), timeout graceful shutdown
   exceeded`` on every shutdown under load, though nothing was cancelled and the exit was clean.

A second SIGINT/SIGTERM skips the waiting (uvicorn's ``force_exit``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import uvicorn

from dbhandles.errors import ServerUnreachable
from dbhandles.server.workers import receive_connections

if TYPE_CHECKING:
    from dbhandles.server.app import ServerState

__all__ = ["CANCEL_SECONDS", "CLOSE_SECONDS", "GracefulServer", "stop_gracefully"]

#: Seconds cancelled jobs get, after the grace, to reach their next batch boundary and answer.
CANCEL_SECONDS = 10.0
#: Seconds WebSocket clients get to take their last answers, and then the close frame.
CLOSE_SECONDS = 2.0
#: How often the conditions are looked at while waiting.
POLL_SECONDS = 0.02
STOP_REASON = "the server is shutting down"

log = logging.getLogger(__name__)


async def _until(done: Callable[[], bool], seconds: float, forced: Callable[[], bool]) -> bool:
    """Wait until ``done()`` or ``seconds`` have passed (or ``forced()``); return ``done()``."""
    deadline = time.monotonic() + seconds
    while not done() and not forced() and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)
    return done()


def _idle(state: ServerState) -> bool:
    """Nothing accepted is left unanswered: no command in a worker thread, no job, no socket with a
    request running or an answer not yet written."""
    return (
        state.in_flight == 0
        and state.service.jobs.active == 0
        and all(conn.idle() for conn in state.connections)
    )


async def stop_gracefully(
    state: ServerState, grace: float, forced: Callable[[], bool] = lambda: False
) -> None:
    """Steps 1 to 4 of the module docstring, for the app whose state is ``state``.

    Args:
        state: the app's ``ServerState`` (``app.state.dbhandles``).
        grace: seconds running commands and jobs may take before jobs are cancelled.
        forced: true once waiting should stop (a second signal).
    """
    state.stopping = True
    await _until(lambda: _idle(state), grace, forced)
    jobs = state.service.jobs
    # Past the grace, a statement that would not end (a view that recurses forever) is stopped.
    state.service.interrupt(
        ServerUnreachable(f"{STOP_REASON}: the statement this command ran was interrupted; retry")
    )
    if jobs.stop(STOP_REASON):
        await _until(lambda: jobs.active == 0, CANCEL_SECONDS, forced)
    state.abandoned.set()  # whoever still waits for a job that would not stop is answered now
    await _until(lambda: _idle(state), CLOSE_SECONDS, forced)
    for conn in list(state.connections):
        conn.restart()
    await _until(lambda: not state.connections, CLOSE_SECONDS, forced)


class GracefulServer(uvicorn.Server):
    """``uvicorn.Server`` whose shutdown first runs ``stop_gracefully`` on the app's state.

    Args:
        config: uvicorn's configuration (its ``timeout_graceful_shutdown`` then only bounds what
            is left: idle keep-alive connections, the lifespan).
        state: the app's ``ServerState``.
        grace: see ``stop_gracefully``.
        channel: a worker's end of its supervisor's connection channel (``server/workers.py``):
            the server then takes the connections dealt there (``receive_connections``) as if it
            had accepted them, instead of listening itself.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        state: ServerState,
        grace: float,
        *,
        channel: socket.socket | None = None,
    ) -> None:
        super().__init__(config)
        self.state = state
        self.grace = grace
        self.channel = channel
        #: Dealt connections being set up (``connect_accepted_socket``), kept until they are.
        self._accepting: set[asyncio.Task[object]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        channel = self.channel
        if channel is None or not self.started:
            return
        config, loop = self.config, asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:
            # What uvicorn's own listener builds for a connection it accepted.
            made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            return made

        def take() -> None:
            taken = receive_connections(channel)
            if taken is None:  # the supervisor is gone: ``watch_parent`` stops this worker
                loop.remove_reader(channel.fileno())
                return
            for sock in taken:
                task = loop.create_task(loop.connect_accepted_socket(protocol, sock))
                self._accepting.add(task)
                task.add_done_callback(self._accepted)

        channel.setblocking(False)
        loop.add_reader(channel.fileno(), take)

    def _accepted(self, task: asyncio.Task[object]) -> None:
        self._accepting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not serve a connection dealt by the supervisor",
                        exc_info=task.exception())  # fmt: skip

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting connections first, as uvicorn would; closing them again later is a no-op.
        if self.channel is not None and self.channel.fileno() >= 0:
            # Connections dealt from now on stay in the channel for the worker that replaces
            # this one (or are closed with the supervisor).
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await stop_gracefully(self.state, self.grace, lambda: self.force_exit)
        await self._close_connections()
        await super().shutdown(sockets=sockets)

    async def _close_connections(self) -> None:
        """Step 5 of the module docstring: a connection is cut off only when its client took none
        of the bytes waiting for it over ``CLOSE_SECONDS`` (one still taking its last answers,
        or completing a close handshake, is left to close by itself, within uvicorn's timeout)."""
        connections = self.server_state.connections
        for connection in list(connections):
            connection.shutdown()
        unsent = {id(connection): _unsent(connection) for connection in connections}
        cut = unread = 0
        deadline = time.monotonic() + max(
            CLOSE_SECONDS, (self.config.timeout_graceful_shutdown or 0) - 1
        )
        while connections and not self.force_exit and time.monotonic() < deadline:
            await _until(lambda: not connections, CLOSE_SECONDS, lambda: self.force_exit)
            for connection in list(connections):
                now = _unsent(connection)
                if 0 < now >= unsent.get(id(connection), 0):  # nothing taken meanwhile
                    cycle = getattr(connection, "cycle", None)
                    unread += cycle is not None and not getattr(cycle, "response_complete", True)
                    cut += 1
                    connection.transport.abort()  # connection_lost follows: uvicorn forgets it
                unsent[id(connection)] = now
        if cut:
            log.log(logging.WARNING if unread else logging.INFO,
                    "shutdown: cut off %d connection(s) whose clients took none of their last "
                    "bytes in %g s (%d with an answer not read in full); nothing was cancelled",
                    cut, CLOSE_SECONDS, unread)  # fmt: skip
            await asyncio.sleep(0)


def _unsent(connection: Any) -> int:
    """Bytes a uvicorn connection holds for its client, not yet taken by the kernel."""
    transport = getattr(connection, "transport", None)
    return 0 if transport is None else int(transport.get_write_buffer_size())
