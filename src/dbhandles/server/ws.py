"""The ``/ws`` WebSocket: commands with correlation ids, and events pushed to pattern subscribers.

Client to server::

    {"type": "request", "id": 7, "command": "data/list", "params": {...}}
    {"type": "subscribe", "id": 8, "pattern": "data:users:*"}
    {"type": "unsubscribe", "id": 9, "pattern": "data:users:*"}
    {"type": "ping", "id": 10}

Server to client: ``hello`` (with the connection's ``sessionId``) on connect, ``response`` (``result`` is
the envelope), ``subscribed`` / ``unsubscribed``, ``pong``, ``event`` (``event``, ``pattern``, ``payload``),
``overflow`` (events dropped for a slow reader) and ``error`` for a message that cannot be understood;
the socket stays open after an error.

Events reach connections through the server's one ``Fanout`` (fanout.py): the writer's thread only
queues them; a thread of the fan-out serialises each once and hands it to this connection's outbox,
as an ``EventFrame`` shared with every connection that has the same view of it, which the
connection's writer sends in one write of its ready-made frame (ws_frames.py).

The outbox is bounded in bytes (``DBHANDLES_WS_OUTBOX_BYTES``): past it, events are dropped (counted and
reported with ``overflow``), and a response that does not fit closes the socket with code 4000
(``CLOSE_OUTBOX_FULL``): a client that sends requests and never reads the answers cannot make the
server hold them, nor build more (what it sent is dropped; its actor cools off, 1013 on a new socket:
``DBHANDLES_WS_OVERFLOW_COOLDOWN_SECONDS``). Before that, the server reads nothing more of a socket
(its transport paused) while its unsent output or its unanswered requests are over their bounds,
closes it with 4000 too once it took no answer for ``ws_flow.WS_STALL_SECONDS``, and reads one
actor's sockets at most ``ws_flow.WS_MESSAGES_PER_SECOND`` messages a second together (ws_flow.py).
One actor holds at most ``DBHANDLES_MAX_SOCKETS_PER_ACTOR`` sockets and ``DBHANDLES_MAX_SUBSCRIPTIONS_PER_ACTOR`` subscriptions; a socket over the limit gets a
``too_many_requests`` error and is closed with code 1013 (``CLOSE_TRY_LATER``). When the server stops, a
request that arrives is answered ``server_unreachable`` and not run, and the socket is closed with 1012
(``CLOSE_RESTART``) once every request it accepted has been answered (``server/shutdown.py``).

Each connection is served by ``ws_serve.websocket_endpoint``. Who may connect, and what an open
socket may go on doing, is decided by ``auth`` (at the upgrade) and ``ws_guard`` (tokens re-checked
while open, events filtered by what the actor may read).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from dbhandles.commands.audit_rows import record_unrun
from dbhandles.commands.envelope import error_envelope
from dbhandles.context import Context
from dbhandles.errors import (
    DbHandlesError,
    InvalidParams,
    PayloadTooLarge,
    TooManyRequests,
    Unauthorized,
)
from dbhandles.jobs import JOB_COMMANDS, Job
from dbhandles.server.backpressure import WS_UNSENT_BYTES
from dbhandles.server.fanout import Fanout
from dbhandles.server.http import LARGE_BODY, client_address
from dbhandles.server.ws_flow import MAX_REQUESTS_IN_FLIGHT, WS_STALL_SECONDS, ReadGate
from dbhandles.server.ws_frames import EventFrame, FrameWriter
from dbhandles.server.ws_guard import WATCH_SECONDS, Guard
from dbhandles.values import dump_json, json_problem, json_text, read_json

if TYPE_CHECKING:
    from dbhandles.server.app import ServerState

__all__ = [
    "CLOSE_OUTBOX_FULL",
    "CLOSE_RESTART",
    "CLOSE_TRY_LATER",
    "MAX_PENDING_EVENTS",
    "MAX_REQUESTS_IN_FLIGHT",
    "TRANSPORT_KEY",
    "Connection",
]

log = logging.getLogger(__name__)

#: Events waiting to be written to one client before new ones are dropped.
MAX_PENDING_EVENTS = 1000
MAX_PATTERN = 200
MAX_SUBSCRIPTIONS = 100
#: Close code for a client whose unread answers filled its outbox (``DBHANDLES_WS_OUTBOX_BYTES``).
CLOSE_OUTBOX_FULL = 4000
#: Close code (RFC 6455 "try again later") for a socket over its actor's or address's limit.
CLOSE_TRY_LATER = 1013
#: Close code ("service restart") once the server stops, after every accepted request was answered.
CLOSE_RESTART = 1012
#: Seconds a socket closed for a full outbox has to take the close frame before it is cut off.
CLOSE_GRACE_SECONDS = 2.0
#: Where ``DbHandlesApp`` keeps the connection's transport in the scope (to cut off a non-reader).
TRANSPORT_KEY = "dbhandles.transport"
_TYPES = ("request", "subscribe", "unsubscribe", "ping")


class _Close:
    """In the outbox: close the socket with ``code`` once what is queued before it has been sent."""

    def __init__(self, code: int = 1008, reason: str = "") -> None:
        self.code, self.reason = code, reason


_CLOSE = _Close()


def _dumps(message: dict[str, Any]) -> str:
    return dump_json(message).decode()


class Connection:
    """One WebSocket client: its session, its subscriptions, its outgoing queue."""

    def __init__(
        self,
        websocket: WebSocket,
        state: ServerState,
        context: Context,
        session_id: str,
        authorization: str | None = None,
    ) -> None:
        self.websocket = websocket
        self.state = state
        #: Commands run in the actor-scoped session (``alice/<id>``); the client sees ``session_id``.
        self.context = context
        self.session_id = session_id
        self.guard = Guard(state.service, context, authorization)
        #: Set when the token stopped being valid; the socket is then closed.
        self.refused: DbHandlesError | None = None
        self.loop = asyncio.get_running_loop()
        # (message, is_event): an event is an ``EventFrame`` shared with other connections;
        # None stops the writer.
        self.outbox: asyncio.Queue[tuple[str | EventFrame, bool] | _Close | None] = asyncio.Queue()
        self.frames = FrameWriter(websocket, websocket.scope.get(TRANSPORT_KEY))
        self.pending_events = 0
        self.dropped = 0
        self._reported = 0
        #: Characters (an event's bytes) queued in the outbox or being written now, the limit, and
        #: the most ever held.
        self.queued_bytes = 0
        self.outbox_limit = state.service.settings.ws_outbox_bytes
        self.peak_bytes = 0
        # Reading waits, and the transport reads nothing, while too much of its output is unsent or
        # too many of its requests unanswered (ws_flow.py).
        self.gate = ReadGate(websocket.scope.get(TRANSPORT_KEY), WS_UNSENT_BYTES,
                             on_stall=self.stalled, stall_seconds=WS_STALL_SECONDS)  # fmt: skip
        self.subscriptions: dict[str, object] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        #: Requests waiting for a job: not waited for when the socket closes (the job goes on).
        self.job_waits: set[asyncio.Task[Any]] = set()
        self.open = True
        #: Set when the socket was closed because its client did not read (code 4000).
        self.overflowed = False
        self.writer_task: asyncio.Task[None] | None = None
        #: Limits per actor apply to non-administrators.
        self.limited = not context.is_admin
        #: Whose turn this socket's requests wait for in the worker threads (``FairPool``).
        self.turn = authorization or f"actor:{context.actor}"

    # -- writing -----------------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if self.open:
            self._put(_dumps(message), False)

    def _put(self, text: str | EventFrame, is_event: bool) -> bool:
        """Queue ``text`` unless the outbox is full: then an event is dropped, and anything else
        closes the socket (its client does not read what it asked for). One message always fits
        in an empty outbox, however large."""
        size = len(text)
        if self.queued_bytes and self.queued_bytes + size > self.outbox_limit:
            if is_event:
                self.dropped += 1
            else:
                self.overflow()
            return False
        self.queued_bytes += size
        self.gate.output(self.queued_bytes)
        self.peak_bytes = max(self.peak_bytes, self.queued_bytes)
        self.outbox.put_nowait((text, is_event))
        return True

    def queue_event(self, frame: EventFrame) -> None:
        """In the loop (from the fan-out): queue one serialised event, or drop it if this client
        is too far behind (``MAX_PENDING_EVENTS`` events, or a full outbox)."""
        if not self.open:
            return
        if self.pending_events >= MAX_PENDING_EVENTS:
            self.dropped += 1
            return
        if self._put(frame, True):
            self.pending_events += 1

    def lost_events(self, count: int) -> None:
        """In the loop: ``count`` events were dropped before they reached this connection."""
        if self.open:
            self.dropped += count

    async def writer(self) -> None:
        while True:
            item = await self.outbox.get()
            if item is None:
                return
            if isinstance(item, _Close):
                with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                    await self.websocket.close(code=item.code, reason=item.reason)
                self.open = False
                self.gate.end()
                return
            text, is_event = item
            if is_event:
                self.pending_events -= 1
            try:
                if isinstance(text, EventFrame):
                    await self.frames.send(text)
                else:
                    await self.websocket.send_text(text)
                if self.dropped > self._reported and self.pending_events == 0:
                    self._reported = self.dropped
                    await self.websocket.send_text(
                        _dumps({"type": "overflow", "dropped": self.dropped})
                    )
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.open = False
                self.gate.end()
                return
            finally:
                self.queued_bytes = max(0, self.queued_bytes - len(text))
                self.gate.output(self.queued_bytes, taken=True)

    def stalled(self) -> None:
        """The client took no answer for ``WS_STALL_SECONDS`` while its output was over the
        bound: close the socket (4000), as for a full outbox."""
        self.overflow(f"not reading: no answer taken for {self.gate.stall_seconds:g} s")

    def overflow(self, reason: str = "") -> None:
        """The client let its outbox fill up (or stopped reading: ``stalled``): drop what is
        queued, read nothing more, and close the socket (4000)."""
        if self.overflowed:
            return
        self.overflowed = True
        self.open = False
        self.state.cool_off(self.context)
        while not self.outbox.empty():  # the memory goes now, not when the socket is gone
            self.outbox.get_nowait()
        self.queued_bytes = 0
        self.pending_events = 0
        self.gate.pause_transport()  # nothing more is read: it would only be dropped
        self.gate.end()
        task = asyncio.ensure_future(self._cut_off(reason))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _cut_off(self, reason: str = "") -> None:
        """Close with ``CLOSE_OUTBOX_FULL``: the close frame if the connection takes it within the
        grace time (it waits behind what the client did not read), then the transport is cut."""
        writer = self.writer_task
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer
        reason = (
            reason or f"outbox full: more than {self.outbox_limit} bytes of answers were not read"
        )
        deadline = time.monotonic() + CLOSE_GRACE_SECONDS
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.websocket.close(code=CLOSE_OUTBOX_FULL, reason=reason), CLOSE_GRACE_SECONDS
            )
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        transport = self.websocket.scope.get(TRANSPORT_KEY)
        abort = getattr(transport, "abort", None)
        if callable(abort):
            abort()  # its buffer is dropped: nothing more is held for this client

    # -- reading -----------------------------------------------------------------------------------

    def error(self, msg_id: Any, exc: DbHandlesError, command: object = None) -> None:
        """Refuse a message: audited as the same request over HTTP would be (``record_unrun``:
        the ``command`` it named, else ``(no command)``), then answered."""
        record_unrun(self.state.service.audit, command, self.context, exc.code)
        self.send({"type": "error", "id": msg_id, "error": exc.message, "code": exc.code,
                   **({"field": exc.field} if exc.field else {})})  # fmt: skip

    async def handle(self, raw: str | bytes) -> None:
        if self.overflowed:
            return  # closing for unread answers: nothing more is parsed or run
        if len(raw) > self.state.max_body_bytes:
            self.error(None, PayloadTooLarge(f"message is larger than {self.state.max_body_bytes} bytes",
                                             field="message"))  # fmt: skip
            return
        try:  # a large message is read in a thread: the loop keeps serving while it is parsed
            message = (
                await asyncio.to_thread(read_json, raw) if len(raw) > LARGE_BODY else read_json(raw)
            )
        except orjson.JSONDecodeError as exc:
            self.error(None, InvalidParams(f"message {json_problem(raw, exc)}", field="message"))
            return
        if not isinstance(message, dict):
            self.error(
                None, InvalidParams("message must be a JSON object with a 'type'", field="message")
            )
            return
        msg_id = message.get("id")
        kind = message.get("type")
        if msg_id is not None and (
            isinstance(msg_id, bool) or not isinstance(msg_id, str | int | float)
        ):
            self.error(None, InvalidParams("id must be a string or a number", field="id"),
                       message.get("command"))  # fmt: skip
            return
        if kind == "request":
            await self._request(msg_id, message)
        elif kind == "subscribe":
            self._subscribe(msg_id, message.get("pattern"))
        elif kind == "unsubscribe":
            self._unsubscribe(msg_id, message.get("pattern"))
        elif kind == "ping":
            self.send({"type": "pong", "id": msg_id})
        else:
            self.error(msg_id, InvalidParams(f"type must be one of {', '.join(_TYPES)} (got {json_text(kind, 80)})",
                                             field="type"), message.get("command"))  # fmt: skip

    async def _request(self, msg_id: Any, message: dict[str, Any]) -> None:
        name = message.get("command")
        params = message.get("params", {})
        if msg_id is None:
            self.error(None, InvalidParams("a request needs an id to correlate its response",
                                           field="id"), name)  # fmt: skip
            return
        bad: DbHandlesError | None = None
        if not isinstance(name, str):
            bad = InvalidParams("command must be a string such as 'data/list'", field="command")
        elif params is not None and not isinstance(params, dict):
            bad = InvalidParams("params must be a JSON object", field="params")
        if bad is None and self.state.stopping:  # answered, never run: see server/shutdown.py
            try:
                self.state.refuse_if_stopping()
            except DbHandlesError as exc:
                bad = exc
        if bad is not None:
            record_unrun(self.state.service.audit, name, self.context, bad.code)
            result = self._public(error_envelope(bad, self.context))
            self.send({"type": "response", "id": msg_id, "result": result})
            return
        name, params = str(name), params or {}
        if self.gate.unanswered < self.gate.max_unanswered and self.state.can_run_inline(
            name, params
        ):
            # A point read the loop may answer never waits: it runs here, without a task of its
            # own (one costs about as much as the read), and ends before anything else runs, so
            # it is never among the gate's unanswered requests.
            outcome = self._execute(msg_id, name, params)
            assert not isinstance(outcome, Job)  # INLINE_COMMANDS holds no long command
            self._answer(outcome)
            return
        self.gate.requests(+1)
        task = asyncio.create_task(self._run(msg_id, name, params))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, msg_id: Any, name: str, params: dict[str, Any]) -> None:
        counted = True  # among the gate's unanswered requests
        try:
            if self.state.can_run_inline(name, params):
                outcome: str | Job = self._execute(msg_id, name, params)
            else:
                outcome = await self.state.run_as(
                    self.turn, functools.partial(self._execute, msg_id, name, params)
                )
            if isinstance(outcome, Job):  # a long command: its end is awaited without a thread
                task = asyncio.current_task()
                assert task is not None
                self.job_waits.add(task)
                counted = False  # a job's wait holds no worker: more requests may be read
                self.gate.requests(-1)
                try:
                    envelope = await self.state.wait_job(outcome)
                finally:
                    self.job_waits.discard(task)
                outcome = self._response(msg_id, envelope)
        except RuntimeError:  # the server is shutting down: the client is being disconnected
            return
        finally:
            if counted:
                self.gate.requests(-1)
        self._answer(outcome)

    def _answer(self, outcome: str) -> None:
        if self.open:
            self._put(outcome, False)
        if self.refused is not None:
            self.shut(self.refused)

    def _execute(self, msg_id: Any, name: str, params: dict[str, Any]) -> str | Job:
        """In a worker thread, or on the loop for a point read (nothing once the socket overflowed):
        check the token, run the command, serialise the response; a long command (``JOB_COMMANDS``)
        is started as a job. A token check that fails otherwise (store busy) answers with why."""
        if self.overflowed:
            return ""  # nobody would read it
        try:
            if self.refused is None:
                self.guard.recheck()
        except Unauthorized as exc:
            self.refused = exc
        except DbHandlesError as exc:
            return self._response(msg_id, error_envelope(exc, self.context))
        if self.refused is not None:  # nothing runs once the token is known to be bad
            self.state.audit_refusal(name, self.refused, self.guard.authorization,
                                     client_address(self.websocket.scope))  # fmt: skip
            envelope = error_envelope(self.refused, self.context)
        elif name in JOB_COMMANDS:
            try:
                return self.state.service.jobs.start(name, params, self.context)
            except DbHandlesError as exc:
                envelope = error_envelope(exc, self.context)
        else:
            envelope = self.state.service.dispatch(name, params, context=self.context)
        return self._response(msg_id, envelope)

    def _response(self, msg_id: Any, envelope: dict[str, Any]) -> str:
        return _dumps({"type": "response", "id": msg_id, "result": self._public(envelope)})

    def shut(self, exc: DbHandlesError) -> None:
        """The token is no longer valid: say so (as at the upgrade) and close the socket (1008)."""
        self.refused = exc
        if not self.open:
            return
        self.send({"type": "error", "id": None, "error": exc.message, "code": exc.code})
        self.outbox.put_nowait(_CLOSE)
        self.open = False

    async def watch(self) -> None:
        """Re-check the token of an open socket now and then, so that a subscriber that sends no
        requests also loses access when its token is revoked or expires."""
        while self.open:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                await self.state.run(self.guard.recheck, True)
            except Unauthorized as exc:
                self.shut(exc)
                return
            except (RuntimeError, DbHandlesError):  # shutting down, or the store is busy: next time
                continue

    def _public(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """The envelope as the client sees it: with the connection's own ``sessionId``."""
        if "sessionId" in envelope:
            envelope["sessionId"] = self.session_id
        return envelope

    def _subscribe(self, msg_id: Any, pattern: Any) -> None:
        if (
            not isinstance(pattern, str)
            or not 0 < len(pattern) <= MAX_PATTERN
            or not pattern.isprintable()
        ):
            self.error(msg_id, InvalidParams(f"pattern must be a string of 1 to {MAX_PATTERN} characters, "
                                             "e.g. 'data:users:*' or 'data:*'", field="pattern"))  # fmt: skip
            return
        if pattern not in self.subscriptions:
            if len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
                self.error(msg_id, InvalidParams(f"at most {MAX_SUBSCRIPTIONS} patterns per connection",
                                                 field="pattern"))  # fmt: skip
                return
            actor = self.context.actor
            limit = self.state.service.settings.max_subscriptions_per_actor
            if self.limited and self.state.subscriptions[actor] >= limit:
                self.error(msg_id, TooManyRequests(
                    f"{json_text(actor, 80)} already holds {limit} subscriptions over its WebSockets (the limit "
                    "is DBHANDLES_MAX_SUBSCRIPTIONS_PER_ACTOR); unsubscribe some, or use a broader "
                    "pattern such as 'data:*'", field="pattern"))  # fmt: skip
                return
            self.subscriptions[pattern] = self._fanout().add(self, pattern)
            if self.limited:
                self.state.subscriptions[actor] += 1
        self.send({"type": "subscribed", "id": msg_id, "pattern": pattern})

    def _fanout(self) -> Fanout:
        state = self.state
        if state.fanout is None:
            state.fanout = Fanout(state.service.events, self.loop)
        return state.fanout

    def _unsubscribe(self, msg_id: Any, pattern: Any) -> None:
        key = self.subscriptions.pop(pattern, None) if isinstance(pattern, str) else None
        if key is not None:
            self._forget(key)
        self.send(
            {"type": "unsubscribed", "id": msg_id, "pattern": pattern, "found": key is not None}
        )

    def _forget(self, key: object) -> None:
        if self.state.fanout is not None:
            self.state.fanout.remove(key)
        if self.limited:
            counts, actor = self.state.subscriptions, self.context.actor
            counts[actor] -= 1
            if counts[actor] <= 0:
                del counts[actor]

    def idle(self) -> bool:
        """Every request of this socket answered, and every answer written to it."""
        return not self.tasks and self.queued_bytes == 0 and self.outbox.empty()

    def restart(self) -> None:
        """The server is stopping: close with 1012 once what is queued has been written."""
        if self.open:
            self.outbox.put_nowait(_Close(CLOSE_RESTART, "the server is restarting"))
            self.open = False

    def close(self) -> None:
        self.open = False
        for key in self.subscriptions.values():
            self._forget(key)
        self.subscriptions.clear()
        self.outbox.put_nowait(None)
