"""``Client(url)``: the same ``execute(name, params)`` as the in-process API, over HTTP; events over WebSocket.

>>> with Client("http://127.0.0.1:7878") as client:          # doctest: +SKIP
...     h = client.execute("data/open", {"adapter": "memory"})["dbHandle"]
...     with client.events(["data:notes:*"]) as events:
...         client.execute("data/create", {"dbHandle": h, "collection": "notes", "data": {"t": 1}})
...         next(events).name
'data:notes:created'

A failed command raises the exception the in-process ``Service.execute`` would raise (same class, same
``code``, same ``field``); ``dispatch`` returns the failure envelope instead. A server that cannot be
reached is a ``ServerUnreachable`` (a ``DbHandlesError`` whose ``code`` is ``server_unreachable``).
The wire protocol itself (routes, headers, envelopes) is ``dbhandles.wire``, shared with ``jtag``.
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import orjson
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import ClientConnection, connect

from dbhandles import wire
from dbhandles.errors import InvalidParams, error_class_for_code
from dbhandles.events import Event
from dbhandles.wire import DEFAULT_URL, UNREACHABLE, server_unreachable

__all__ = ["DEFAULT_URL", "UNREACHABLE", "Client", "EventStream", "server_unreachable"]


class Client:
    """A dbhandles server, used like the in-process service.

    Args:
        url: the server's base URL (``jtag serve`` prints it).
        token: a bearer token, sent as ``Authorization``; the server runs commands as its actor.
        timeout: seconds to wait for one command.
        session_id: sent as ``X-Session-Id``: query cursors belong to the session that opened them.
            Each client gets a new one by default (``session_id`` attribute); pass the same id to
            share cursors between clients of the same actor.
        transport: an ``httpx`` transport (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        session_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.session_id = session_id or str(uuid.uuid4())
        self.headers = wire.request_headers(token, self.session_id)
        self._http = httpx.Client(
            base_url=self.url, headers=self.headers, timeout=timeout, transport=transport
        )

    def dispatch(
        self, name: str, params: Mapping[str, Any] | BaseModel | None = None
    ) -> dict[str, Any]:
        """Run a command; return its envelope, success or failure (never raises for a command error)."""
        if isinstance(params, BaseModel):
            params = params.model_dump(mode="json", by_alias=True, exclude_unset=True)
        try:
            body = wire.encode_params(params)
        except TypeError as exc:
            return wire.failure_envelope(
                InvalidParams(f"params: not JSON-serialisable: {exc}", field="params")
            )
        try:
            response = self._http.post(wire.command_path(name), content=body)
        except httpx.TransportError as exc:
            return wire.cannot_reach(self.url, exc)
        return wire.read_envelope(self.url, response.status_code, response.content)

    def execute(
        self, name: str, params: Mapping[str, Any] | BaseModel | None = None
    ) -> dict[str, Any]:
        """Run a command; return its success envelope.

        Raises:
            DbHandlesError: the same subclass (and ``code``/``field``) the in-process API raises;
                ``server_unreachable`` when the server cannot be reached.
        """
        envelope = self.dispatch(name, params)
        wire.raise_for(envelope)
        return envelope

    def events(self, patterns: str | Iterable[str], *, open_timeout: float = 10.0) -> EventStream:
        """Subscribe to event patterns (``data:users:*``, ``data:*``) over the server's WebSocket.

        Returns once every subscription is acknowledged, so a write made after this call is seen.

        Raises:
            DbHandlesError: code ``server_unreachable``, the WebSocket cannot be opened.
            InvalidParams: the server refused a pattern.
        """
        names = [patterns] if isinstance(patterns, str) else list(patterns)
        return EventStream(wire.ws_url(self.url), names, self.headers, open_timeout)

    def close(self) -> None:
        """Close the HTTP connection pool; idempotent."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventStream:
    """Events matching some patterns, as an iterator; ``close()`` (or ``with``) ends the subscription.

    Iteration ends when the server closes the socket. ``get(timeout)`` waits at most ``timeout`` seconds
    and raises ``TimeoutError`` when nothing came.
    """

    def __init__(
        self, url: str, patterns: list[str], headers: Mapping[str, str], open_timeout: float
    ) -> None:
        extra = {k: v for k, v in headers.items() if k == "Authorization"}
        try:
            self._ws: ClientConnection = connect(url, legacy=True, additional_headers=extra,
                                                 open_timeout=open_timeout, max_size=None)  # fmt: skip
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise server_unreachable(f"cannot open the event socket {url} ({exc})") from exc
        self.patterns = patterns
        self.session_id: str | None = None
        self.dropped = 0
        self._buffer: collections.deque[Event] = collections.deque()
        try:
            self._subscribe(patterns, open_timeout)
        except BaseException:
            self.close()
            raise

    def _subscribe(self, patterns: list[str], timeout: float) -> None:
        for i, pattern in enumerate(patterns):
            self._ws.send(orjson.dumps({"type": "subscribe", "id": i, "pattern": pattern}).decode())
        waiting = set(range(len(patterns)))
        while waiting:
            message = self._receive(timeout)
            if message is None:
                raise server_unreachable("the server closed the event socket while subscribing")
            kind = message.get("type")
            if kind == "subscribed":
                waiting.discard(message.get("id"))
            elif kind == "error":
                raise error_class_for_code(str(message.get("code")))(
                    str(message.get("error")), field=message.get("field")
                )

    def _handle(self, raw: str | bytes) -> dict[str, Any] | None:
        """Buffer an event or note a notice; return any other (control) message."""
        message = wire.decode_exact(raw)  # an integer past 64 bits stays exact
        if not isinstance(message, dict):
            return None
        kind = message.get("type")
        if kind == "event":
            self._buffer.append(
                Event(str(message.get("event")), dict(message.get("payload") or {}))
            )
        elif kind == "hello":
            self.session_id = message.get("sessionId")
        elif kind == "overflow":
            self.dropped = int(message.get("dropped", 0))
        else:
            return message
        return None

    def _receive(self, timeout: float | None) -> dict[str, Any] | None:
        """The next control message (events go to the buffer); None when the socket closed."""
        while True:
            try:
                raw = self._ws.recv(timeout=timeout)
            except ConnectionClosed:
                return None
            message = self._handle(raw)
            if message is not None:
                return message

    def get(self, timeout: float | None = None) -> Event:
        """The next event, waiting at most ``timeout`` seconds (forever when None).

        Raises:
            TimeoutError: no event within ``timeout``.
            StopIteration: the server closed the socket.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                raw = self._ws.recv(timeout=left)
            except ConnectionClosed:
                raise StopIteration from None
            self._handle(raw)
        return self._buffer.popleft()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        return self.get()

    def close(self) -> None:
        """Close the socket (the server drops the subscriptions); idempotent."""
        self._ws.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
