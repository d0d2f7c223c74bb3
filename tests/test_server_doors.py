"""Every door answers the same call alike (issue 13's outside check): the ``sessionId`` param is
echoed as the client sent it (never an actor-scoped key) and refused when it is not the caller's
session, a number JSON cannot hold gets one message, and a WebSocket message over the size limit
gets the documented ``error`` (the socket stays open; far over it, close code 1009).

Doors: ``Service.dispatch`` (in-process), ``jtag`` in-process and against a server, HTTP with and
without ``X-Session-Id``, the Python ``Client`` and the WebSocket. Servers are ``server_config`` on
loopback in a thread (``tests/server_helpers.py``); every wait is bounded.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from dbhandles import Service
from dbhandles.cli.serve import WS_MESSAGE_SLACK
from dbhandles.client import Client
from dbhandles.context import Context
from tests.door_helpers import jtag_envelope
from tests.server_helpers import Served, serving


@pytest.fixture
def served(home: Path) -> Iterator[tuple[Service, Served]]:
    with serving(home, max_body_bytes=4096) as pair:
        yield pair


@pytest.fixture
def jtag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[..., dict[str, Any]]:
    """``jtag(*argv, **env)``: ``jtag argv`` in this process on ``tmp_path/cli`` (against
    ``JTAG_URL`` if ``env`` gives one): its envelope."""
    return functools.partial(jtag_envelope, monkeypatch, capsys, tmp_path / "cli")


def _http(url: str, command: str, params: dict[str, Any] | str, session: str | None = None) -> Any:
    """The HTTP door's envelope for ``command``: ``params`` sent as JSON (a ``str``: JSON text
    sent as is), with ``X-Session-Id: session`` when given."""
    headers = {} if session is None else {"X-Session-Id": session}
    address = f"{url}/commands/{command}"
    if isinstance(params, str):
        headers["Content-Type"] = "application/json"
        return httpx.post(address, content=params, headers=headers, timeout=20).json()
    return httpx.post(address, json=params, headers=headers, timeout=20).json()


@contextlib.contextmanager
def _ws(url: str) -> Iterator[Any]:
    """A WebSocket to the server at ``url``, past its ``hello``."""
    address = url.replace("http://", "ws://") + "/ws"
    with ws_connect(address, open_timeout=20, close_timeout=5) as socket:
        assert orjson.loads(socket.recv(timeout=20))["type"] == "hello"
        yield socket


def _ws_request(socket: Any, params: dict[str, Any] | str, command: str = "data/list") -> Any:
    """The ``result`` of one request over ``socket``: ``params`` sent as JSON (a ``str``: JSON
    text sent as is, in a text frame)."""
    if isinstance(params, str):
        socket.send(f'{{"type": "request", "id": 1, "command": "{command}", "params": {params}}}')
    else:
        socket.send(
            orjson.dumps({"type": "request", "id": 1, "command": command, "params": params})
        )
    answer = orjson.loads(socket.recv(timeout=20))
    assert answer["type"] == "response", answer
    return answer["result"]


def _shape(envelope: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted(envelope)), envelope.get("sessionId"), envelope.get("code")


# -- the sessionId param ----------------------------------------------------------------------------


def test_the_session_id_param_is_echoed_as_sent_on_every_door(
    served: tuple[Service, Served], jtag: Callable[..., dict[str, Any]]
) -> None:
    service, server = served
    params = {"collection": "c", "sessionId": "zzz"}
    argv = ("data/list", "--collection=c", "--sessionId=zzz")
    envelopes = {
        "in-process": service.dispatch("data/list", params),
        "in-process, as an actor": service.dispatch(
            "data/list", params, context=Context(actor="alice")
        ),
        "HTTP": _http(server.url, "data/list", params),
        "HTTP with X-Session-Id": _http(server.url, "data/list", params, session="zzz"),
        "jtag": jtag(*argv),
        "jtag against a server": jtag(*argv, JTAG_URL=server.url),
    }
    shapes = {door: _shape(envelope) for door, envelope in envelopes.items()}
    assert set(shapes.values()) == {_shape(envelopes["HTTP"])}, shapes
    assert envelopes["HTTP"]["sessionId"] == "zzz"


def test_a_call_in_a_session_gets_no_scoped_key_back(served: tuple[Service, Served]) -> None:
    service, _server = served
    scoped = service.dispatch(
        "data/list", {"collection": "c"}, context=Context(actor="local", session_id="local/s1")
    )
    assert scoped["sessionId"] == "s1"
    unnamed = service.dispatch(
        "data/list", {"collection": "c"}, context=Context(actor="local", session_id="local/")
    )
    assert "sessionId" not in unnamed


def test_a_session_id_that_is_not_the_callers_is_refused_on_every_door(
    served: tuple[Service, Served], jtag: Callable[..., dict[str, Any]]
) -> None:
    service, server = served
    params = {"collection": "c", "sessionId": "zzz"}
    argv = ("data/list", "--collection=c", "--sessionId=zzz")
    with _ws(server.url) as socket:
        over_ws = _ws_request(socket, params)
    refusals = {
        "in-process": service.dispatch(
            "data/list", params, context=Context(actor="local", session_id="s1")
        ),
        "HTTP": _http(server.url, "data/list", params, session="s1"),
        "WebSocket": over_ws,
        "jtag": jtag(*argv, JTAG_SESSION_ID="s1"),
        "jtag against a server": jtag(*argv, JTAG_SESSION_ID="s1", JTAG_URL=server.url),
    }
    for door, envelope in refusals.items():
        assert (envelope["success"], envelope["code"], envelope["field"]) == (
            False,
            "session_mismatch",
            "sessionId",
        ), (door, envelope)
        assert "/" not in envelope.get("sessionId", "") and "#" not in envelope.get(
            "sessionId", ""
        ), (door, envelope)


# -- one message for a number JSON cannot hold ------------------------------------------------------


@pytest.mark.parametrize(("value", "text"), [(math.inf, "1e400"), (-math.inf, "-1e400")])
def test_an_infinite_number_gets_one_message_on_every_door(
    served: tuple[Service, Served], jtag: Callable[..., dict[str, Any]], value: float, text: str
) -> None:
    service, server = served
    body = f'{{"collection": "c", "data": {{"n": [{text}]}}}}'
    argv = ("data/create", "--collection=c", f'--data={{"n": [{text}]}}')
    with Client(server.url) as client:
        by_client = client.dispatch("data/create", {"collection": "c", "data": {"n": [value]}})
    with _ws(server.url) as socket:
        over_ws = _ws_request(socket, body, "data/create")
    answers = {
        "in-process": service.dispatch("data/create", {"collection": "c", "data": {"n": [value]}}),
        "HTTP": _http(server.url, "data/create", body),
        "Client": by_client,
        "WebSocket": over_ws,
        "jtag": jtag(*argv),
        "jtag against a server": jtag(*argv, JTAG_URL=server.url),
    }
    said = {door: (a["code"], a["field"], a["error"]) for door, a in answers.items()}
    assert len(set(said.values())) == 1, said
    assert said["in-process"][:2] == ("invalid_params", "data.n[0]")
    assert service.execute("data/list", {"collection": "c"})["items"] == []


def test_nan_gets_the_in_process_message_from_the_python_client(
    served: tuple[Service, Served],
) -> None:
    service, server = served
    with Client(server.url) as client:
        by_client = client.dispatch("data/create", {"collection": "c", "data": {"n": math.nan}})
    in_process = service.dispatch("data/create", {"collection": "c", "data": {"n": math.nan}})
    assert (by_client["code"], by_client["field"], by_client["error"]) == (
        in_process["code"],
        in_process["field"],
        in_process["error"],
    )


# -- a WebSocket message over the size limit ---------------------------------------------------------


def test_a_websocket_message_over_the_limit_gets_the_error_and_the_socket_stays(
    served: tuple[Service, Served],
) -> None:
    _service, server = served  # max_body_bytes=4096
    with _ws(server.url) as socket:
        socket.send(orjson.dumps({"type": "ping", "id": 1, "pad": "x" * 5000}))
        error = orjson.loads(socket.recv(timeout=20))
        assert (error["type"], error["code"], error["field"]) == (
            "error",
            "payload_too_large",
            "message",
        )
        socket.send(orjson.dumps({"type": "ping", "id": 2}))
        assert orjson.loads(socket.recv(timeout=20)) == {"type": "pong", "id": 2}


def test_a_websocket_message_far_over_the_limit_closes_with_1009(
    served: tuple[Service, Served],
) -> None:
    _service, server = served
    with _ws(server.url) as socket:
        socket.send(b"x" * (4096 + WS_MESSAGE_SLACK + 1))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
