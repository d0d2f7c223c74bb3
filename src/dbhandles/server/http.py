"""HTTP routes: ``POST /commands/<name>``, ``GET /commands``, ``/health``, ``/openapi.json``, static files.

Every body the server writes for a command is the result envelope; the status is 200 on success and the
error class's ``http_status`` otherwise. Bad input (malformed JSON, unknown command, wrong types, a body
over the limit) is an envelope with a 4xx status, never a 500 or a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from dbhandles.commands import builtin_commands
from dbhandles.commands.audit_rows import record_unrun
from dbhandles.commands.envelope import error_envelope
from dbhandles.context import MAX_SESSION_ID, SESSION_ID_RULE, Context, is_session_id
from dbhandles.errors import (
    DbHandlesError,
    InvalidParams,
    NotFound,
    Unauthorized,
    UnknownCommand,
)
from dbhandles.jobs import JOB_COMMANDS, Job
from dbhandles.server import public
from dbhandles.server.actor_share import retry_after_of
from dbhandles.server.addresses import address_key
from dbhandles.server.auth import AMBIGUOUS
from dbhandles.server.bodies import QUERY_OPEN, declared_length, read_body
from dbhandles.server.connections import TRANSPORT_KEY, connection_transport
from dbhandles.server.openapi import error_codes
from dbhandles.server.public import STATIC_FILES
from dbhandles.server.rate_charge import Charge
from dbhandles.server.token_gate import BAD_TOKEN
from dbhandles.values import dump_json, json_problem, json_text, read_json

if TYPE_CHECKING:
    from dbhandles.server.app import ServerState

COMMANDS = builtin_commands()

__all__ = [
    "JSON",
    "STATIC_FILES",
    "answer_caller",
    "command_endpoint",
    "envelope_response",
    "error_response",
    "http_exception_handler",
    "internal_error_handler",
    "serve_command",
    "status_for",
]

log = logging.getLogger(__name__)

JSON = "application/json"
COMMAND_PREFIX = "/commands/"
#: Bodies up to this size are read with the headers (the server buffers that much anyway); a larger
#: one, or one of unknown length, only once the token was checked.
LARGE_BODY = 64 * 1024
#: Commands that may run on the event loop (see ``ServerState.can_run_inline``).
INLINE_COMMANDS = frozenset({"data/read"})
#: A JSON escape (``\u00e9``) takes up to 3 times the bytes of what it stands for in the query the
#: cursor measures, and a client may indent: a ``data/query-open`` body gets 4 times the spec limit.
QUERY_BODY_FACTOR = 4
_INTERNAL = "the server failed unexpectedly; its log has the details"
_STATUS: dict[str, int] = {}


def status_for(code: object) -> int:
    """The HTTP status of an error code (the exception class's ``http_status``; 500 if unknown)."""
    if not _STATUS:
        _STATUS.update(error_codes())
    return _STATUS.get(code, 500) if isinstance(code, str) else 500


def envelope_response(envelope: dict[str, Any]) -> Response:
    status = 200 if envelope.get("success") is True else status_for(envelope.get("code"))
    return Response(dump_json(envelope), status_code=status, media_type=JSON)


def error_response(exc: DbHandlesError, context: Context | None = None) -> Response:
    return envelope_response(error_envelope(exc, context))


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.dbhandles
    return state


def body_limit(state: ServerState, name: str) -> int:
    """The largest body ``name`` may be sent with: ``max_body_bytes``; for ``data/query-open``
    ``QUERY_BODY_FACTOR`` times ``max_cursor_spec_bytes`` plus ``LARGE_BODY`` (its other params),
    so that a query the cursor would refuse is refused from its ``Content-Length``, before it is
    read and parsed (a 2.7 MB filter holds the GIL for tens of milliseconds to parse and check)."""
    spec = state.service.settings.max_cursor_spec_bytes
    if name == QUERY_OPEN and spec:
        return min(state.max_body_bytes, QUERY_BODY_FACTOR * spec + LARGE_BODY)
    return state.max_body_bytes


def parse_params(body: bytes) -> dict[str, Any]:
    """A request body as a params object; an empty body (no bytes at all) is ``{}``.

    A body of only whitespace is no JSON text (RFC 8259) and is refused like any other.

    Raises:
        InvalidParams: the body is not a JSON object (field ``body``).
    """
    if not body:
        return {}
    try:
        params = read_json(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParams(f"request body {json_problem(body, exc)}", field="body") from exc
    if not isinstance(params, dict):
        raise InvalidParams("request body must be a JSON object of parameters", field="body")
    return params


def _check_session_id(session_id: str | None) -> None:
    if session_id is not None and not is_session_id(session_id):
        # Header bytes arrive decoded as Latin-1: shown as the UTF-8 the client most likely sent.
        try:
            shown = session_id.encode("latin-1").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            shown = session_id
        raise InvalidParams(
            f"X-Session-Id: {json_text(shown[: MAX_SESSION_ID + 1], 80)} is not a valid session id "
            f"({SESSION_ID_RULE})",
            field="X-Session-Id",
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """The request headers that decide who may run a command."""

    authorization: str | None = None
    session_id: str | None = None
    origin: str | None = None
    fetch_site: str | None = None
    host: str | None = None
    #: ``client_address`` of the request (what its refusal's audit row is summarised by).
    address: str | None = None

    @classmethod
    def from_scope(cls, scope: Scope) -> tuple[Caller, str | None]:
        """The caller and the declared Content-Length of an ASGI request."""
        found: dict[bytes, str] = {}
        for key, value in scope["headers"]:
            if key in _CALLER_HEADERS:
                # Two Authorization headers are refused (AMBIGUOUS), never one of them picked.
                ambiguous = key == b"authorization" and key in found
                found[key] = AMBIGUOUS if ambiguous else value.decode("latin-1")
        caller = cls(
            found.get(b"authorization"), found.get(b"x-session-id"), found.get(b"origin"),
            found.get(b"sec-fetch-site"), found.get(b"host"), client_address(scope),
        )  # fmt: skip
        return caller, found.get(b"content-length")

    @property
    def valid_session_id(self) -> str | None:
        """``session_id`` if it is a session id (``None`` otherwise: it is refused once the token is
        checked, and never echoed back)."""
        session_id = self.session_id
        return session_id if session_id is not None and is_session_id(session_id) else None


_CALLER_HEADERS = frozenset(
    {b"authorization", b"x-session-id", b"origin", b"sec-fetch-site", b"host", b"content-length"}
)


def client_address(scope: Scope) -> str:
    """The address a request or socket comes from, as every per-address limit counts it
    (``addresses.address_key``: ``"loopback"`` for all of loopback, an IPv6 address's ``/64``)."""
    client = scope.get("client")
    return address_key(str(client[0])) if client else "unknown"


def answer_caller(authorization: str | None, scope: Scope) -> tuple[str, str]:
    """Whose budget of unread answers a request counts against, and how a message names it: its
    ``Authorization`` header (a token: "this token", never echoed; two are one budget of their
    own, refused when authenticated), else its client address."""
    if authorization is not None:
        return "token " + authorization, "this token"
    address = client_address(scope)
    return address, address


def authenticate(state: ServerState, caller: Caller, command: str | None = None) -> Context:
    """In a worker thread: who is calling, from the headers alone (site, then token). A refusal is
    audited, naming ``command``. The ``X-Session-Id`` header is checked after the token, once the
    params are read (``check_session_header``): a bad token is 401 whatever the session id, and a
    bad session id is refused as the token's actor.

    Raises:
        DbHandlesError: another site's page, or ``unauthorized``.
    """
    try:
        state.check_site(caller.origin, caller.fetch_site, caller.host)
    except DbHandlesError as exc:
        state.audit_refusal(command, exc, caller.authorization, caller.address)
        raise
    return state.context(
        caller.authorization, caller.valid_session_id, command, address=caller.address
    )


def check_session_header(
    state: ServerState, caller: Caller, name: str, params: dict[str, Any], context: Context
) -> None:
    """Refuse a bad ``X-Session-Id`` of an authenticated request for command ``name``, audited as
    the ``sessionId`` param's refusal is (``Service.audit_refusal``): the token's actor, the
    command, its operation and what its params name.

    Raises:
        InvalidParams: the header is not a session id (field ``X-Session-Id``).
    """
    try:
        _check_session_id(caller.session_id)
    except DbHandlesError as exc:
        state.service.audit_refusal(COMMANDS[name], params, context, exc.code)
        raise


def run_command(
    state: ServerState,
    name: str,
    body: bytes,
    caller: Caller,
    context: Context | None = None,
    params: dict[str, Any] | None = None,
    door: list[Context] | None = None,
) -> tuple[int, bytes] | Job:
    """In a worker thread: who is calling (unless ``context`` says so already), the params (unless
    ``params`` is ``body`` parsed already: ``_peek``), the command, the serialised envelope. A long
    command (``JOB_COMMANDS``) is started as a job and the job is returned: the caller waits for it
    without holding this thread. The context the caller was authenticated as is appended to
    ``door``, if given."""
    dispatched = False
    try:
        if context is None:
            context = authenticate(state, caller, name)
            if door is not None:
                door.append(context)
        if name not in COMMANDS:
            raise UnknownCommand(
                f"unknown command {json_text(name, 80)}; GET /commands lists them (e.g. data/list, data/open)",
                field="command",
            )
        if params is None:
            params = parse_params(body)
        dispatched = True  # the dispatcher (and the job runner) audit what they run or refuse
        check_session_header(state, caller, name, params, context)
        if name in JOB_COMMANDS:
            return state.service.jobs.start(name, params, context)
        envelope = state.service.dispatch(name, params, context=context)
    except DbHandlesError as exc:
        envelope = error_envelope(exc, context)
        if context is not None and not dispatched:
            # An authenticated request refused before any command ran (an unknown command, a body
            # that is no params object) is in the audit log too, as at every door.
            record_unrun(state.service.audit, name, context, exc.code)
    return finish(envelope, context is not None, caller.valid_session_id)


def finish(
    envelope: dict[str, Any], authenticated: bool, session_id: str | None
) -> tuple[int, bytes]:
    """The status and body of an envelope. The session runs scoped by the actor (``alice/s1``); the
    client is told the id it sent (its ``X-Session-Id``, else the ``sessionId`` param the session
    was taken from, as the envelope says: ``commands/envelope.py`` never shows a scoped key), and
    an unauthenticated caller none."""
    if not authenticated:
        envelope.pop("sessionId", None)
    elif session_id is not None:
        envelope["sessionId"] = session_id
    status = 200 if envelope.get("success") is True else status_for(envelope.get("code"))
    return status, dump_json(envelope)  # exact: a hand-edited JSON file's 2**70 (docs/filters.md)


def _peek(body: bytes) -> dict[str, Any] | None:
    """The params object of a body, or ``None`` when it is not one (``run_command`` reports why)."""
    try:
        params = read_json(body) if body else {}
    except orjson.JSONDecodeError:
        return None
    return params if isinstance(params, dict) else None


async def _respond(
    send: Send, status: int, body: bytes, close: bool = False, retry: int | None = None
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    if retry is not None:
        headers.append((b"retry-after", b"%d" % retry))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_error(send: Send, exc: DbHandlesError) -> None:
    """Answer ``exc``'s error envelope with its status and close the connection (before routing)."""
    await _respond(send, exc.http_status, orjson.dumps(error_envelope(exc)), close=True)


async def fast_command(state: ServerState, scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /commands/<name>`` as a bare ASGI handler (see ``DbHandlesApp``).

    Under uvicorn, the caller's answers not yet read by its connections are bounded
    (``connections.Wire``): over ``max_unsent_bytes_per_actor`` its request is refused before
    anything runs (429, connection closed, body unread); a large answer that would take it past the
    bound is dropped and replaced by a 429 that says the command ran.

    Every request takes one request of its address's rate of refusals (``public.PublicRate``)
    before anything is checked, and gives it back once its token checked (``Charge``): so the
    bucket is exact however many connections ask at once. Past the rate, a request whose token
    does not check (none, a bad one, another site's page) gets the rate's 429 after
    ``public.REFUSAL_PAUSE_SECONDS``, its body unread; a valid token passes (checked once, then
    run as usual).
    """
    transport = connection_transport(send)
    parsed = Caller.from_scope(scope)
    caller, who = answer_caller(parsed[0].authorization, scope) if transport else ("", "")
    refusal = state.wire.over_budget(caller, who) if transport is not None else None
    if refusal is not None:
        await _respond(send, status_for(refusal.code), orjson.dumps(error_envelope(refusal)), True)
        return
    name = scope["path"][len(COMMAND_PREFIX) :]
    address = client_address(scope)
    checked: Context | None = None
    due = state.public_rate.take(address)
    if due:
        checked = await _past_rate(state, parsed[0], name, parsed[0].authorization or address)
        if checked is None:
            exc = await public.paused_refusal(state, address, transport)
            retry = public.retry_after(due)
            await public.refuse(send, exc, retry, close=not _small_body(parsed[1]))
            return
    charge = Charge(state, address, taken=not due)
    answer = await serve_command(state, name, scope, receive, transport, parsed, checked, charge)
    if answer is None:
        return
    if transport is not None:
        _, payload, close, _retry = answer
        dropped = state.wire.too_much(caller, who, len(payload))
        if dropped is not None:
            answer = status_for(dropped.code), orjson.dumps(error_envelope(dropped)), close, None
    await _respond(send, *answer)
    if transport is not None:
        state.wire.carry(transport, caller)


def _small_body(length: str | None) -> bool:
    """Whether a declared ``Content-Length`` is at most ``LARGE_BODY`` (what uvicorn may read and
    drop after an answer without closing the connection)."""
    return length is not None and length.isdigit() and int(length) <= LARGE_BODY


async def _past_rate(state: ServerState, caller: Caller, name: str, turn: str) -> Context | None:
    """Who a request from an address past its rate of refusals runs as, or None when it would be
    refused (no token where one is required, or a token that cannot be one: a malformed one, an id
    no token has, a wrong secret, a revoked one, told on the event loop by ``state.token_gate``,
    without a worker thread; a bad token, another site's page: audited as ever). A valid token is
    never refused for its address's rate."""
    if caller.authorization is None and state.require_token:
        return None
    if caller.authorization is not None and not await state.token_gate.plausible(
        caller.authorization
    ):
        state.audit_refusal(name, Unauthorized(BAD_TOKEN), caller.authorization, caller.address)
        return None
    try:
        return await state.run_as(turn, functools.partial(authenticate, state, caller, name))
    except DbHandlesError:
        return None


async def serve_command(
    state: ServerState,
    name: str,
    scope: Scope,
    receive: Receive,
    transport: asyncio.Transport | None = None,
    parsed: tuple[Caller, str | None] | None = None,
    checked: Context | None = None,
    charge: Charge | None = None,
) -> tuple[int, bytes, bool, int | None] | None:
    """Run one command request: ``(status, body, close the connection, Retry-After or None)``, or
    None if the client left.

    In order: a token the gate knows (``TokenGate.owner``) counts the request in its actor's share
    (``max_requests_per_actor``: ``actor_share.ActorShare``; an administrator's in none) from its
    headers on, and never against its address; otherwise, for a body over ``LARGE_BODY`` bytes or of unknown length (or a token checked
    already), the address's request count (``max_connections_per_address``; an administrator's
    token, checked from the headers once the address is at its limit, is let in past it, so an
    anonymous flood from the administrator's own address never locks the administrator out) and
    the token, from the headers, before any of the body is read (and the actor's
    ``max_uploads_per_actor``); the body, within ``body_timeout`` seconds; a smaller body's request
    on a connection that has not authenticated (``Wire.closable``) is counted only once its body
    arrived (until then it holds only its connection, which ``Wire`` may close to make room);
    then the command in a worker thread, or as a job (whose end is awaited without holding a
    thread). A refusal before the body was read closes the connection, so the rest is never read.
    Once the token passed, ``transport``'s connection no longer counts against its address's
    connections (``Wire.trust``). ``parsed``: ``Caller.from_scope(scope)``, if made already;
    ``checked``: the request's context, if its token was checked already (``fast_command``). A
    refusal before authentication is charged to the address's rate (``charge``: ``Charge``).
    """
    address = client_address(scope)
    charge = charge or Charge(state, address)
    caller, length = parsed or Caller.from_scope(scope)
    # Whose turn this request waits for in the worker threads: its token, else its address.
    turn = caller.authorization or address
    context: Context | None = checked
    counted = body_read = False
    door: list[Context] = []
    retry: int | None = None
    shared: str | None = None  # the actor whose share counts this request
    try:
        limit = body_limit(state, name)
        declared = declared_length(length, limit, name)
        large = declared is None or declared > LARGE_BODY
        known = await _known_actor(state, caller, context)
        if known is not None and not known[1]:
            try:
                await state.shares.admit(known[0])
            except DbHandlesError as exc:
                if context is None:  # not authenticated yet (a checked one: audited below)
                    state.service.audit.record_refusal(known[0], name, exc.code, address=address)
                raise
            shared = known[0]
        if known is not None:  # its connection counts by its actor now, not by its address
            state.wire.trust(transport, *known)
        if known is None and (context is not None or large or not state.wire.closable(transport)):
            # Counted before its body. A small body on a connection ``Wire`` may close to make
            # room is counted once it arrived (below): bodies trickling without a token held
            # all of loopback's requests in progress, and bob's token was refused (issue 13).
            context, counted = await _enter(state, address, caller, name, turn, context)
        if context is not None:
            charge.passed()
            state.wire.trust(transport, context.actor, context.is_admin)
        if context is None and large:
            context = await state.run_as(turn, functools.partial(authenticate, state, caller, name))
            charge.passed()
            state.wire.trust(transport, context.actor, context.is_admin)
        if large:
            assert context is not None
            state.start_upload(context.actor)
            try:
                body = await read_body(receive, limit, state.body_timeout, name)
            finally:
                state.end_upload(context.actor)
        else:
            body = await read_body(receive, limit, state.body_timeout, name)
        if body is None:
            return None  # the client went away
        body_read = True
        if known is None and not counted and context is None:
            context, counted = await _enter(state, address, caller, name, turn)
            if context is not None:  # an administrator's, let in past the address's limit
                charge.passed()
                state.wire.trust(transport, context.actor, context.is_admin)
        state.refuse_if_stopping()  # a request complete only after shutdown began is not run
        # Database work is blocking: it runs in a worker thread so the event loop keeps serving.
        # Only a small body (``LARGE_BODY`` at most, as for a WebSocket message) of a command that
        # may run inline is parsed here (once: ``run_command`` takes the params, inline or not);
        # any other body is parsed in the worker thread, off the loop (``orjson.loads`` of 10 MB
        # holds the GIL for 9 to 43 ms, and the loop with it when it runs there).
        small = context is None and len(body) <= LARGE_BODY
        params = _peek(body) if small and name in INLINE_COMMANDS else None
        if params is not None and state.can_run_inline(name, params):
            outcome = run_command(state, name, body, caller, params=params, door=door)
        else:
            outcome = await state.run_as(turn, functools.partial(
                run_command, state, name, body, caller, context, params, door))  # fmt: skip
        if door:
            charge.passed()
            state.wire.trust(transport, door[0].actor, door[0].is_admin)
        if isinstance(outcome, Job):
            envelope = await state.wait_job(outcome)
            status, payload = finish(envelope, True, caller.valid_session_id)
        else:
            status, payload = outcome
    except DbHandlesError as exc:
        if context is not None:  # authenticated, refused before its command (body too large...)
            record_unrun(state.service.audit, name, context, exc.code)
        status, payload = status_for(exc.code), orjson.dumps(error_envelope(exc))
        retry = retry_after_of(exc)
    except Exception as exc:
        log.error("unhandled error on POST %s", scope["path"], exc_info=exc)
        status, payload = 500, orjson.dumps(error_envelope(DbHandlesError(_INTERNAL)))
    finally:
        if counted:
            state.leave(address)
        if shared is not None:
            state.shares.leave(shared)
    charge.settle(status, context is not None or bool(door))
    return status, payload, not body_read or state.stopping, retry


async def _known_actor(
    state: ServerState, caller: Caller, checked: Context | None
) -> tuple[str, bool] | None:
    """``(actor, is administrator)`` of a request whose token is known before its body is read:
    checked already, or one the gate knows from a recent reading (``TokenGate.current_owner``);
    None otherwise (no token, a bad, expired or revoked one: counted by its address)."""
    if checked is not None:
        return checked.actor, checked.is_admin
    authorization = caller.authorization
    if authorization is None or authorization == AMBIGUOUS:
        return None
    return await state.token_gate.current_owner(authorization)


async def _enter(
    state: ServerState,
    address: str,
    caller: Caller,
    name: str,
    turn: str,
    checked: Context | None = None,
) -> tuple[Context | None, bool]:
    """Count the request against its address (``ServerState.enter``): ``(checked, True)``. At the
    address's limit, a request that carries an administrator's token is let in uncounted:
    ``(its context, False)``. ``checked``: the request's context, if its token was checked already.

    Raises:
        DbHandlesError: the address is at its limit and the request has no administrator's
            token (``too_many_requests``; a token that is refused answers as such).
    """
    try:
        state.enter(address)
    except DbHandlesError:
        if caller.authorization is None:
            raise
        context = checked
        if context is None:
            check = functools.partial(authenticate, state, caller, name)
            context = await state.run_as(turn, check)
        if not context.is_admin:
            raise
        return context, False
    return checked, True


async def command_endpoint(request: Request) -> Response:
    """``POST /commands/<name>`` through Starlette's routing (when the app is mounted elsewhere)."""
    state = _state(request)
    answer = await serve_command(state, request.path_params["name"], request.scope, request.receive)
    if answer is None:
        return Response(status_code=400)  # the client went away: nobody reads this
    status, payload, close, retry = answer
    headers = {"connection": "close"} if close else {}
    if retry is not None:
        headers["retry-after"] = str(retry)
    return Response(payload, status_code=status, media_type=JSON, headers=headers)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 as envelopes, so even a wrong URL gets the documented body."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        error: DbHandlesError = NotFound(
            f"no route {request.method} {request.url.path}; commands are POST /commands/<name>, "
            "GET /commands lists them",
            field="path",
        )
    else:
        error = InvalidParams(f"{request.method} is not allowed on {request.url.path}; commands are POST",
                              field="method")  # fmt: skip
    response = Response(orjson.dumps(error_envelope(error)), status_code=status, media_type=JSON)
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    return response


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged here, and an ``internal_error`` envelope without a traceback. A
    write to a connection the client closed is no server error: ``DbHandlesApp`` logs it (debug)."""
    transport = request.scope.get(TRANSPORT_KEY)
    if isinstance(exc, RuntimeError) and transport is not None and transport.is_closing():
        raise exc
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(DbHandlesError(_INTERNAL))
