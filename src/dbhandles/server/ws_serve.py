"""Serving one ``/ws`` connection: the upgrade's checks and limits, then its reading loop (what each
message does is ``ws.Connection``'s; how much is read, ``ws_flow``'s)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect

from dbhandles.errors import DbHandlesError, TooManyRequests
from dbhandles.server import auth, public
from dbhandles.server.http import client_address as http_address
from dbhandles.server.ws import CLOSE_TRY_LATER, Connection
from dbhandles.server.ws_flow import MessageRate, ReadGate
from dbhandles.server.ws_guard import deny_upgrade, refuse_socket
from dbhandles.server.ws_wire import actor_wire_rate, guard_of
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.server.app import ServerState

__all__ = ["websocket_endpoint"]

log = logging.getLogger(__name__)


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Serve one WebSocket client until it (or the server) closes the connection.

    A token comes as ``Authorization: Bearer <token>`` or, from a browser (which cannot set
    headers on a WebSocket), as ``/ws?token=<token>``. An upgrade refused before authenticating
    (another site's page, no token or a bad one) is charged to its address's rate
    (``public.PublicRate``): past it, the rate's 429 after ``public.REFUSAL_PAUSE_SECONDS``.
    """
    state: ServerState = websocket.app.state.dbhandles
    headers = websocket.headers
    authorization = auth.socket_credential(
        headers.getlist("authorization"), auth.query_token(websocket.scope)
    )
    address = http_address(websocket.scope)
    try:
        state.check_site(headers.get("origin"), headers.get("sec-fetch-site"), headers.get("host"))
    except DbHandlesError as exc:
        # Another site's page gets no socket at all: the upgrade is answered 403.
        if not await _past_rate(websocket, state, address):
            state.audit_refusal(None, exc, authorization, address)
            await deny_upgrade(websocket, exc)
        return
    if authorization is None and state.require_token and state.public_rate.due(address):
        # Refused anyway, and its address is past its rate: no worker thread, no audit row.
        await _past_rate(websocket, state, address)
        return
    try:
        state.enter(address)
    except DbHandlesError as exc:
        await refuse_socket(websocket, exc, CLOSE_TRY_LATER)
        return
    try:
        await _serve(websocket, state, authorization, address)
    finally:
        state.leave(address)


async def _past_rate(websocket: WebSocket, state: ServerState, address: str) -> bool:
    """Charge an upgrade refused before authenticating to ``address``'s rate; past it, answer the
    rate's 429 after the pause (``True``: answered; ``False``: the caller answers its refusal).
    Uncharged, a flood of token-less upgrades was answered as fast as it came (issue 13)."""
    if not state.public_rate.take(address):
        return False
    await deny_upgrade(websocket, await public.paused_refusal(state, address))
    return True


async def _serve(
    websocket: WebSocket, state: ServerState, authorization: str | None, address: str
) -> None:
    try:
        context = await state.run(
            functools.partial(state.context, authorization, None, address=address)
        )
    except DbHandlesError as exc:
        refused = exc.http_status == 401  # not a store that was busy checking it
        if not refused or not await _past_rate(websocket, state, address):
            await refuse_socket(websocket, exc, 1008)
        return
    limit = state.service.settings.max_sockets_per_actor
    limited = not context.is_admin
    cooling = state.cooling_off(context.actor) if limited else None
    if cooling is not None:
        await refuse_socket(websocket, cooling, CLOSE_TRY_LATER)
        return
    if limited and state.sockets[context.actor] >= limit:
        await refuse_socket(websocket, TooManyRequests(
            f"{json_text(context.actor, 80)} already has {limit} WebSockets open (the limit is "
            "DBHANDLES_MAX_SOCKETS_PER_ACTOR); close one, or share one socket for requests and "
            "events", field="connection"), CLOSE_TRY_LATER)  # fmt: skip
        return
    await websocket.accept()
    session_id = str(uuid.uuid4())
    context = replace(context, session_id=auth.socket_session(context.actor, session_id))
    conn = Connection(websocket, state, context, session_id, authorization)
    state.websockets += 1
    state.connections.add(conn)
    if limited:
        state.sockets[context.actor] += 1
    rate = state.message_rates.setdefault(context.actor, MessageRate()) if limited else None
    guard = guard_of(conn.gate.transport)
    if guard is not None:  # frames and bytes, counted at the transport (ws_wire.py)
        settings = state.service.settings
        wire_rate = (
            state.wire_rates.setdefault(context.actor, actor_wire_rate(settings))
            if limited
            else None
        )
        guard.limit(wire_rate, administrator=not limited, settings=settings)
    writer = conn.writer_task = asyncio.create_task(conn.writer())
    watcher = asyncio.create_task(conn.watch()) if conn.guard.has_token else None
    conn.send({"type": "hello", "sessionId": conn.session_id, "actor": context.actor,
               "server": "dbhandles", "version": state.version})  # fmt: skip
    try:
        while True:
            await conn.gate.wait()  # the client reads what it was sent before it is read again
            if conn.overflowed or not conn.open:
                # Cut off (``_cut_off``, awaited below), gone (its writer failed), or closing:
                # what uvicorn still holds of it would be parsed and run for nobody.
                break
            if rate is not None and (delay := rate.take()) > 0:
                await _slow_down(conn.gate, delay)
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            await conn.handle(raw)
    except WebSocketDisconnect:
        pass
    finally:
        state.websockets -= 1
        state.connections.discard(conn)
        if limited:
            state.sockets[context.actor] -= 1
            if state.sockets[context.actor] <= 0:
                del state.sockets[context.actor]
                state.message_rates.pop(context.actor, None)
                state.wire_rates.pop(context.actor, None)
        if watcher is not None:
            watcher.cancel()
        conn.close()
        _end_session(state, str(context.session_id))
        # Let responses already computed go out; running commands finish in their threads anyway,
        # and jobs go on (data/job-list shows them).
        for task in conn.job_waits:
            task.cancel()
        if conn.tasks:
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        if not writer.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 2.0)


async def _slow_down(gate: ReadGate, delay: float) -> None:
    """The actor's sockets sent messages faster than ``WS_MESSAGES_PER_SECOND``: read nothing of
    this socket (its transport paused) for ``delay`` seconds."""
    gate.pause_transport()
    await asyncio.sleep(delay)
    if not gate.closed:
        gate.resume_transport()


def _end_session(state: ServerState, session_id: str) -> None:
    """The connection's query cursors close with it, handed to the worker threads without waiting,
    so it happens even if this task is cancelled (a server shutting down, a test client tearing down)."""
    try:
        state.executor.submit(_close_cursors, state, session_id)
    except RuntimeError:  # the worker threads are already stopped: the server is shutting down
        _close_cursors(state, session_id)


def _close_cursors(state: ServerState, session_id: str) -> None:
    try:
        state.service.end_session(session_id)
    except DbHandlesError:
        log.warning("could not close the cursors of session %s", session_id, exc_info=True)
