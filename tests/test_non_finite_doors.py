"""Issue #14, fifth outside round: NaN, the infinities and a literal past the double range get one
answer on every door (in-process, HTTP, the WebSocket, ``dbhandles.Client``, ``jtag`` in-process and
against a server): the code of the place that holds them (a filter's ``invalid_filter``, a record's
``invalid_params``), the words of ``dbhandles.values`` (``NAN_WORDS``) and the field's path. The
``Client`` once refused a NaN itself (``invalid_params``) and ``jtag`` called ``NaN`` "not valid
JSON"; now both send or read the literal and the server judges it, as in-process."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service, wire
from dbhandles.cli import main as cli_main
from dbhandles.client import Client
from dbhandles.values import NAN_WORDS, read_json
from tests.servers import ThreadServer, app_client

#: Each literal as JSON text and the float every door reads it as.
LITERALS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "1e400": math.inf}
#: (command, params with ``VALUE`` where the literal goes, field, code)
PLACES: dict[str, tuple[str, str, str, str]] = {
    "filter": ("data/list", '{"collection": "c", "filter": {"n": VALUE}}', "filter.n",
               "invalid_filter"),
    "filter $in": ("data/count", '{"collection": "c", "filter": {"n": {"$in": [1, VALUE]}}}',
                   "filter.n.$in[1]", "invalid_filter"),
    "record": ("data/create", '{"collection": "c", "data": {"m": [1, {"n": VALUE}]}}',
               "data.m[1].n", "invalid_params"),
    "update": ("data/update", '{"collection": "c", "id": "r", "data": {"n": VALUE}}', "data.n",
               "invalid_params"),
}  # fmt: skip
DOORS = ["in-process", "http", "ws", "client", "jtag", "jtag remote"]


@pytest.fixture
def server(service: Service) -> Iterator[ThreadServer]:
    with ThreadServer(service) as running:
        yield running


def _params(place: str, literal: str) -> tuple[str, str]:
    command, text, _, _ = PLACES[place]
    return command, text.replace("VALUE", literal)


def _through(door: str, command: str, text: str, service: Service, server: ThreadServer,
             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             tmp_path: Path) -> dict[str, Any]:  # fmt: skip
    params = read_json(text)
    if door == "in-process":
        return service.dispatch(command, params)
    if door == "client":
        with Client(server.url) as remote:
            return remote.dispatch(command, params)
    if door == "http":
        with app_client(service) as client:
            return dict(client.post(f"/commands/{command}", content=text.encode()).json())
    if door == "ws":
        with app_client(service) as client, client.websocket_connect("/ws") as socket:
            socket.receive_json()  # hello
            socket.send_text(f'{{"type": "request", "id": 1, "command": "{command}", '
                             f'"params": {text}}}')  # fmt: skip
            message = socket.receive_json()
            while message["type"] != "response":
                message = socket.receive_json()
            return dict(message["result"])
    for name in ("JTAG_URL", "JTAG_TOKEN", "JTAG_SESSION_ID"):
        monkeypatch.delenv(name, raising=False)
    if door == "jtag remote":
        monkeypatch.setenv("JTAG_URL", server.url)
    else:
        monkeypatch.setenv("DBHANDLES_HOME", str(tmp_path / "cli-home"))
        assert cli_main(["data/create", "--collection=c", "--id=r", '--data={"n": 1}']) == 0
    capsys.readouterr()
    argv = [command, *(f"--{key}={value}" for key, value in _top_level(text).items())]
    assert cli_main(argv) == 1
    return dict(orjson.loads(capsys.readouterr().out))


def _top_level(text: str) -> dict[str, str]:
    """Each top-level param of ``text`` as ``jtag`` takes it: a string as itself, any other value
    as the JSON text it was written as (so the literal reaches ``jtag``'s own reader)."""
    params = read_json(text)
    shown: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, str):
            shown[key] = value
        else:
            start = text.index(f'"{key}": ') + len(key) + 4
            shown[key] = _one_value(text, start)
    return shown


def _one_value(text: str, start: int) -> str:
    """The JSON value (an object) starting at ``text[start]``, by balancing braces (no string of
    ``PLACES`` holds a brace)."""
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start : end + 1]
    raise AssertionError(text)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("literal", list(LITERALS))
@pytest.mark.parametrize("place", list(PLACES))
def test_a_non_finite_value_gets_one_answer_on_every_door(
    service: Service, server: ThreadServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], place: str, literal: str, door: str,
) -> None:  # fmt: skip
    service.execute("data/create", {"collection": "c", "id": "r", "data": {"n": 1}})
    command, text = _params(place, literal)
    _, _, field, code = PLACES[place]
    expected = service.dispatch(command, read_json(text))
    assert (expected["code"], expected["field"]) == (code, field), expected
    if math.isnan(LITERALS[literal]):
        assert expected["error"].startswith(f"{field}: {NAN_WORDS}"), expected["error"]
    else:
        assert expected["error"].startswith(f"{field}: the number is infinite"), expected
    got = _through(door, command, text, service, server, monkeypatch, capsys, tmp_path)
    assert (got["code"], got.get("field"), got["error"]) == (
        expected["code"], expected["field"], expected["error"]
    )  # fmt: skip
    listed = service.execute("data/list", {"collection": "c"})["items"]
    assert [(r["id"], r["n"]) for r in listed] == [("r", 1)]  # nothing written, nothing changed


@pytest.mark.parametrize("literal", list(LITERALS))
def test_every_reader_takes_the_literal_as_its_float(literal: str) -> None:
    """``read_json`` (HTTP, WebSocket, jtag) reads each literal as the float Python's ``json`` would,
    and ``wire.encode_params`` (Client, jtag remote) writes each non-finite float back as one."""
    value = read_json(f'{{"n": [{literal}]}}')["n"][0]
    assert math.isnan(value) if math.isnan(LITERALS[literal]) else value == LITERALS[literal]
    sent = read_json(wire.encode_params({"n": [value], "s": "NaN"}))
    assert sent["s"] == "NaN"  # a string holding the word is left alone
    assert math.isnan(sent["n"][0]) if math.isnan(value) else sent["n"][0] == value


@pytest.mark.parametrize("text", ['{"n": NaN,}', '{"n": Nan}', '{"n": "\\ud800", "m": NaN}'])
def test_a_text_that_is_not_json_otherwise_stays_refused(text: str) -> None:
    with pytest.raises(orjson.JSONDecodeError, match=r"unexpected|surrogate|trailing|expected"):
        read_json(text)
