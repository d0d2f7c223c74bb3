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
   export stops after its page. They get ``CANCEL_SECONDS`` to do so; a job that cannot stop (a
   vacuum) runs to its end before the process exits, and whoever waits for it is told exactly that;
4. close every WebSocket with 1012 once its last answer has been written (``CLOSE_SECONDS`` at most
   for a client that does not read).

A second SIGINT/SIGTERM skips the waiting (uvicorn's ``force_exit``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import uvicorn

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
    """

    def __init__(self, config: uvicorn.Config, state: ServerState, grace: float) -> None:
        super().__init__(config)
        self.state = state
        self.grace = grace

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Stop accepting connections first, as uvicorn would; closing them again later is a no-op.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await stop_gracefully(self.state, self.grace, lambda: self.force_exit)
        await super().shutdown(sockets=sockets)
