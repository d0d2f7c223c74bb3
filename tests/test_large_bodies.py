"""Large request bodies and WebSocket messages (issue 13): what runs per body holds Python's GIL as
briefly as it can, and a large message is read in a worker thread, with the same answers as before.
Behaviour only; the speed is ``benchmarks/long_digits.py``'s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.server.http import LARGE_BODY
from dbhandles.values import _has_long_digits, read_json
from tests.servers import app_client


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("1" * 18, False),
        ("1" * 19, True),
        ("x" + "9" * 19 + "x", True),
        ("12345678901234567.89", False),  # 17 + 2 digits, split by the point
        ("-" + "0" * 19, True),
        ("\u0661" * 30, False),  # Arabic-Indic digits are not JSON digits
        ("é" * 10 + "1" * 19, True),
        ("", False),
    ],
)
def test_long_digit_runs_are_found_in_every_form_of_text(text: str, found: bool) -> None:
    data = text.encode()
    for form in (text, data, bytearray(data), memoryview(data)):
        assert _has_long_digits(form) is found


@pytest.mark.parametrize("form", ["str", "bytes", "bytearray", "memoryview"])
def test_read_json_keeps_long_integers_exact_in_every_form(form: str) -> None:
    text = '{"a": 18446744073709551616, "b": [1, 123456789012345678], "c": "1234567890123456789"}'
    value: Any = {"str": text, "bytes": text.encode(), "bytearray": bytearray(text.encode()),
                  "memoryview": memoryview(text.encode())}[form]  # fmt: skip
    assert read_json(value) == json.loads(text)
    assert read_json(value)["a"] == 2**64


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service) as test_client:
        yield test_client


def _receive(socket: Any, kind: str) -> dict[str, Any]:
    while True:
        message = socket.receive_json()
        if message["type"] == kind:
            return dict(message)


@pytest.mark.parametrize("binary", [False, True])
def test_a_large_websocket_message_is_answered_as_a_small_one(client: Any, binary: bool) -> None:
    big = "y" * (2 * LARGE_BODY)
    with client.websocket_connect("/ws") as socket:
        _receive(socket, "hello")
        request = {"type": "request", "id": 1, "command": "data/create",
                   "params": {"collection": "c", "id": "r1", "data": {"t": big, "n": 2**64}}}  # fmt: skip
        text = json.dumps(request)
        assert len(text) > LARGE_BODY
        if binary:
            socket.send_bytes(text.encode())
        else:
            socket.send_text(text)
        result = _receive(socket, "response")["result"]
        # The value rule saw the exact integer (too large to store), as for a small message.
        assert (result["success"], result["code"]) == (False, "invalid_params"), result
        del request["params"]["data"]["n"]  # type: ignore[index]
        socket.send_text(json.dumps(request))
        assert _receive(socket, "response")["result"]["success"] is True
        socket.send_text("{" + " " * (2 * LARGE_BODY))  # a large message that is not JSON
        error = _receive(socket, "error")
        assert (error["code"], error["field"]) == ("invalid_params", "message")
        socket.send_text(json.dumps({"type": "request", "id": 2, "command": "data/read",
                                     "params": {"collection": "c", "id": "r1"}}))  # fmt: skip
        record = _receive(socket, "response")["result"]["data"]
        assert orjson.dumps(record["t"]) == orjson.dumps(big)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Every ``read_json`` of the server's HTTP and WebSocket paths: the size it parsed and whether
    it ran on an event loop's thread."""
    from dbhandles.server import http, ws

    seen: list[tuple[int, bool]] = []

    def recording(data: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        seen.append((len(data), on_loop))
        return read_json(data)

    monkeypatch.setattr(http, "read_json", recording)
    monkeypatch.setattr(ws, "read_json", recording)
    return seen


@pytest.mark.parametrize("command", ["data/read", "data/list", "data/create"])
def test_a_large_http_body_is_never_parsed_on_the_event_loop(
    client: Any, parses: list[tuple[int, bool]], command: str
) -> None:
    """Whatever the command (``data/read`` may run on the loop: its small bodies are parsed there),
    a body over ``LARGE_BODY`` is parsed in a worker thread."""
    params = {"collection": "c", "id": "r1", "data": {"t": "y" * (2 * LARGE_BODY)}}
    body = orjson.dumps(params)
    response = client.post(f"/commands/{command}", content=body,
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code < 500, response.text
    large = [on_loop for size, on_loop in parses if size > LARGE_BODY]
    assert large and not any(large), parses


def test_a_small_data_read_body_may_be_parsed_on_the_event_loop(
    client: Any, parses: list[tuple[int, bool]]
) -> None:
    """The other side of the threshold (what makes the test above able to fail): a small
    ``data/read`` body is parsed on the loop, to decide whether the read can run there."""
    client.post("/commands/data/read", json={"collection": "c", "id": "r1"})
    assert [on_loop for size, on_loop in parses if size <= LARGE_BODY] == [True]


def test_a_large_websocket_message_is_never_parsed_on_the_event_loop(
    client: Any, parses: list[tuple[int, bool]]
) -> None:
    request = {"type": "request", "id": 1, "command": "data/create",
               "params": {"collection": "c", "id": "r1", "data": {"t": "y" * (2 * LARGE_BODY)}}}  # fmt: skip
    with client.websocket_connect("/ws") as socket:
        _receive(socket, "hello")
        socket.send_text(json.dumps(request))
        assert _receive(socket, "response")["result"]["success"] is True
    large = [on_loop for size, on_loop in parses if size > LARGE_BODY]
    assert large and not any(large), parses
