"""Serving one ``/ws`` connection: the upgrade's checks and limits, then its reading loop (what each
message does is ``ws.Connection``'s; how much is read, ``ws_flow``'s)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketDisconnect

from dbhandles.commands.audit_rows import record_unrun
from dbhandles.errors import DbHandlesError, TooManyRequests, Unauthorized
from dbhandles.server import auth, public
from dbhandles.server.http import client_address as http_address
from dbhandles.server.token_gate import BAD_TOKEN
from dbhandles.server.ws import CLOSE_TRY_LATER, Connection
from dbhandles.server.ws_flow import MessageRate, ReadGate
from dbhandles.server.ws_guard import deny_upgrade, refuse_socket
from dbhandles.server.ws_wire import actor_wire_rate, guard_of
from dbhandles.values import json_text

#: The ``command`` of the audit row of a WebSocket upgrade refused once its token passed.
SOCKET_COMMAND = "(websocket)"

if TYPE_CHECKING:
    from dbhandles.context import Context
    from dbhandles.server.app import ServerState

__all__ = ["early_refusal", "websocket_endpoint"]

log = logging.getLogger(__name__)


async def websocket_endpoint(websocket: WebSocket) -> None:
    """Serve one WebSocket client until it (or the server) closes the connection.

    A token comes as ``Authorization: Bearer <token>`` or, from a browser (which cannot set
    headers on a WebSocket), as ``/ws?token=<token>``. The same door as a command request
    (``http.fast_command``): every upgrade takes one request of its address's rate
    (``public.PublicRate``) before anything is checked, and gives it back once its token checked;
    past the rate, an upgrade whose token does not check gets the rate's 429 after
    ``public.REFUSAL_PAUSE_SECONDS``. A token that cannot be one is refused on the event loop
    (``state.token_gate``), without a worker thread; once the token checked, the socket counts in
    its actor's share (``max_requests_per_actor``; an administrator's in none), or without a token
    (``--allow-anonymous``) against its address (``max_connections_per_address``).
    """
    state: ServerState = websocket.app.state.dbhandles
    headers = websocket.headers
    authorization = auth.socket_credential(
        headers.getlist("authorization"), auth.query_token(websocket.scope)
    )
    address = http_address(websocket.scope)
    due = state.public_rate.take(address)
    try:
        state.check_site(headers.get("origin"), headers.get("sec-fetch-site"), headers.get("host"))
    except DbHandlesError as exc:
        # Another site's page gets no socket at all: the upgrade is answered 403.
        if due:
            await _past_rate(websocket, state, address, due)
        else:
            state.audit_refusal(None, exc, authorization, address)
            await deny_upgrade(websocket, exc)
        return
    context = await _authenticate(websocket, state, authorization, address, due)
    if context is None:
        return
    # A socket of a token counts in its actor's share (an administrator's in none), never
    # against its address: alice's slow bodies on loopback closed bob's socket 1013 (issue 13).
    actor = None if authorization is None else context.actor
    try:
        if actor is None:
            state.enter(address)
        elif not context.is_admin:
            state.shares.enter(actor)
    except DbHandlesError as exc:
        if actor is not None:  # its actor's share: audited as the socket limit's refusal is
            record_unrun(state.service.audit, SOCKET_COMMAND, context, exc.code)
        await refuse_socket(websocket, exc, CLOSE_TRY_LATER)
        return
    try:
        await _serve(websocket, state, context, authorization)
    finally:
        if actor is None:
            state.leave(address)
        elif not context.is_admin:
            state.shares.leave(actor)


def early_refusal(
    state: ServerState,
    address: str,
    headers: Iterable[tuple[bytes, bytes]],
    target: bytes,
    decide: Callable[[tuple[float, bytes] | None], None],
) -> bool:
    """Decide an upgrade in the HTTP protocol (``connections.Upgrade``: ``headers`` and
    ``target`` as received), before any WebSocket or ASGI machinery: True if ``decide`` was (or
    will be) called, with the rate's pause and 429 (the upgrade is refused) or None (it goes on to
    ``websocket_endpoint``); False: it goes on now.

    Only an upgrade from an address past its rate of refusals (``PublicRate.due``, taking nothing)
    whose credential cannot be valid (none where one is required, more than one, or one
    ``state.token_gate`` refuses: an id it does not know after a reading begun since) is refused
    here: with the same 429 after the same pause as ``websocket_endpoint`` would send (a bad token
    audited the same way), and the connection closed. Taken through the WebSocket handshake and
    the app, each such refusal cost the loop about 1.4 ms, and 300 connections of made-up tokens
    made bob's reads 5.4 times slower (p99, issue 13). A credential that may be valid is never
    refused here."""
    if not state.public_rate.due(address):
        return False
    authorization = auth.socket_credential(
        [value.decode("latin-1") for key, value in headers if key == b"authorization"],
        auth.query_token({"query_string": target.partition(b"?")[2].partition(b"#")[0]}),
    )
    if authorization == auth.AMBIGUOUS or authorization is None:
        if authorization is None and not state.require_token:
            return False
        _refuse(state, address, decide)
        return True
    gate = state.token_gate
    found = gate.verdict(authorization)
    if found is True:
        return False

    def refuse(plausible: bool) -> None:
        if plausible:  # a token made since, or a store that could not be read: checked in full
            decide(None)
            return
        state.audit_refusal(None, Unauthorized(BAD_TOKEN), authorization, address)
        _refuse(state, address, decide)

    if found is None:
        gate.after_reading(authorization, refuse)
    else:
        refuse(False)
    return True


def _refuse(
    state: ServerState, address: str, decide: Callable[[tuple[float, bytes] | None], None]
) -> None:
    """Refuse an upgrade past the rate (``state.door_refusal``); if the bucket holds a request
    again by now, the upgrade goes on to ``websocket_endpoint``, which takes its own."""
    refused = state.door_refusal(address)
    if refused is None:
        state.public_rate.give_back(address)
    decide(refused)


async def _authenticate(
    websocket: WebSocket, state: ServerState, authorization: str | None, address: str, due: float
) -> Context | None:
    """Who the upgrade runs as, or None once it was refused (answered here).

    ``due``: what ``PublicRate.take`` answered for it (0.0: one request was taken, given back once
    the token checked). Checked after the upgrade and charged only then, 300 concurrent upgrades
    with made-up token ids each took a worker thread and found the bucket full together: 3,000 to
    5,700 refusals in 6 s where the bucket allows 180, and other actors' p99 six times slower
    (issue 13). So no token where one is required, more than one, or one the gate says cannot be
    valid is refused on the loop; only a token that may be valid is checked in a worker thread.
    """
    refusal: DbHandlesError | None = None
    if authorization == auth.AMBIGUOUS or (authorization is None and state.require_token):
        if due:  # no audit row: the rate's refusals are a flood's, told by the rate
            await _past_rate(websocket, state, address, due)
            return None
        try:
            state.context(authorization, None, address=address)  # raises, reading no store
        except DbHandlesError as exc:
            refusal = exc
    elif authorization is not None and not await state.token_gate.plausible(authorization):
        refusal = Unauthorized(BAD_TOKEN)
        state.audit_refusal(None, refusal, authorization, address)
    if refusal is None:
        try:
            context = await state.run(
                functools.partial(state.context, authorization, None, address=address)
            )
        except DbHandlesError as exc:
            if exc.http_status == 401:
                refusal = exc
            else:  # not a refusal of the token: a store that was busy checking it
                if not due:
                    state.public_rate.give_back(address)
                await refuse_socket(websocket, exc, 1008)
                return None
        else:
            if not due:
                state.public_rate.give_back(address)
            return context
    if due:
        await _past_rate(websocket, state, address, due)
    else:
        await refuse_socket(websocket, refusal, 1008)
    return None


async def _past_rate(websocket: WebSocket, state: ServerState, address: str, due: float) -> None:
    """Answer an upgrade past ``address``'s rate of refusals: the rate's 429, after the pause, with
    ``Retry-After`` as every other refusal of the rate (``ServerState.door_refusal``'s): ``due``
    (``PublicRate.take``'s wait) less the pause, at least 1 s. Without it, an upgrade with a made-up
    token id let through by the early refusal got its 429 with no ``Retry-After`` (issue 13)."""
    exc = await public.paused_refusal(state, address)
    await deny_upgrade(websocket, exc, public.retry_after(due))


async def _serve(
    websocket: WebSocket, state: ServerState, context: Context, authorization: str | None
) -> None:
    limit = state.service.settings.max_sockets_per_actor
    limited = not context.is_admin
    refused = state.cooling_off(context.actor) if limited else None
    if refused is None and limited and state.sockets[context.actor] >= limit:
        refused = TooManyRequests(
            f"{json_text(context.actor, 80)} already has {limit} WebSockets open (the limit is "
            "DBHANDLES_MAX_SOCKETS_PER_ACTOR); close one, or share one socket for requests and "
            "events", field="connection")  # fmt: skip
    if refused is not None:  # an authenticated actor's upgrade: audited as its requests are
        record_unrun(state.service.audit, SOCKET_COMMAND, context, refused.code)
        await refuse_socket(websocket, refused, CLOSE_TRY_LATER)
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
