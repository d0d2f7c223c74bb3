"""Exact values through HTTP (issue 14, part 2): a body's JSON text is read once, as orjson reads it
(the last of duplicated keys wins, and that is what every adapter's filters see), and a value no
record can hold is a 400 naming its field, never a 500; the refused request writes nothing."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import DbHandlesError, Service, wire
from dbhandles.cli import main as cli_main
from dbhandles.values import read_json
from tests.conftest import ADAPTERS, adapter_config
from tests.servers import app_client
from tests.test_server_http import assert_error


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service) as test_client:
        yield test_client


def _post(client: Any, command: str, text: str) -> Any:
    return client.post(
        f"/commands/{command}", content=text.encode(), headers={"content-type": "application/json"}
    )


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_values_through_http(client: Any, tmp_path: Path, adapter: str) -> None:
    opened = client.post("/commands/data/open",
                         json={"adapter": adapter, "config": adapter_config(adapter, tmp_path)})  # fmt: skip
    handle = opened.json()["dbHandle"]
    where = f'"dbHandle": "{handle}", "collection": "c"'
    created = _post(
        client, "data/create", f'{{{where}, "id": "d", "data": {{"label": "a", "label": "b"}}}}'
    )
    assert created.status_code == 200, created.text
    for label, expected in (("a", []), ("b", ["d"])):
        listed = client.post("/commands/data/list",
                             json={"dbHandle": handle, "collection": "c", "filter": {"label": label}})  # fmt: skip
        assert [item["id"] for item in listed.json()["items"]] == expected
    refused = [
        ('{"t": "a\\u0000"}', "data.t"),
        ('{"deep": {"k\\u0000": 1}}', "data.deep"),
        ('{"n": [1, 9223372036854775808]}', "data.n[1]"),
        ('{"n": 1e300}', "data.n"),
    ]
    for data, field in refused:
        response = _post(client, "data/create", f'{{{where}, "id": "x", "data": {data}}}')
        body = assert_error(response, "invalid_params")
        assert field in body["error"], body
    batch = _post(
        client,
        "data/batch",
        f'{{"dbHandle": "{handle}", "operations": ['
        '{"op": "create", "collection": "c", "id": "ok", "data": {"v": 1}},'
        '{"op": "create", "collection": "c", "id": "bad", "data": {"v": "\\u0000"}}]}',
    )
    assert_error(batch, "invalid_params")
    listed = client.post("/commands/data/list", json={"dbHandle": handle, "collection": "c"})
    assert [item["id"] for item in listed.json()["items"]] == ["d"]
    lone = _post(client, "data/create", f'{{{where}, "data": {{"t": "\\ud800"}}}}')
    assert_error(lone, "invalid_params", "body")  # not JSON text that orjson reads (RFC 8259 §8.2)


# -- one JSON reader on every door: integers past 64 bits are read exactly, then refused -----------

#: Params with an integer orjson alone would read as a float (issue 14), and the path refused.
_BIG: dict[str, tuple[str, dict[str, Any], str]] = {
    "cursor": ("data/list", {"collection": "c", "cursor": {"field": "n", "value": 2**64,
                                                           "direction": "before"}}, "cursor.value"),
    "stored": ("data/create", {"collection": "c", "data": {"n": 2**64}}, "data.n"),
    "updated": ("data/update", {"collection": "c", "id": "r", "data": {"n": [10**30]}},
                "data.n[0]"),
}  # fmt: skip


def _in_process(service: Service, command: str, params: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(DbHandlesError) as caught:
        service.execute(command, params)
    return caught.value.code, caught.value.message


def _json_text(params: dict[str, Any]) -> str:
    """The params as JSON text with every integer written exactly (orjson cannot write 2**64)."""
    return json.dumps(params)


@pytest.mark.parametrize("case", list(_BIG))
@pytest.mark.parametrize("door", ["http", "client", "ws", "cli"])
def test_an_integer_past_64_bits_gets_the_in_process_error_on_every_door(
    service: Service, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], door: str, case: str,
) -> None:  # fmt: skip
    command, params, field = _BIG[case]
    service.execute("data/create", {"collection": "c", "id": "r", "data": {"n": 1}})
    expected = _in_process(service, command, params)
    assert expected[1].startswith(f"{field}: numbers must lie strictly between")
    envelope = _through(door, client, tmp_path, monkeypatch, capsys, command, params)
    assert envelope["success"] is False
    assert (envelope["code"], envelope["error"]) == expected
    listed = service.execute("data/list", {"collection": "c"})["items"]
    assert [(r["id"], r["n"]) for r in listed] == [("r", 1)]  # nothing written, nothing changed


#: Filters with an integer past 64 bits (issue 14: compared by value) and the ids they match.
_WIDE_FILTERS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "below": ({"n": {"$lt": 2**64}}, ["r"]),
    "equal": ({"n": -(2**63) - 1}, []),
    "not in": ({"n": {"$nin": [-(2**64) - 1]}}, ["r"]),
}


@pytest.mark.parametrize("case", list(_WIDE_FILTERS))
@pytest.mark.parametrize("door", ["http", "client", "ws", "cli"])
def test_a_filter_integer_past_64_bits_answers_as_in_process_on_every_door(
    service: Service, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], door: str, case: str,
) -> None:  # fmt: skip
    filter_, ids = _WIDE_FILTERS[case]
    service.execute("data/create", {"collection": "c", "id": "r", "data": {"n": 1}})
    params = {"collection": "c", "filter": filter_}
    assert [r["id"] for r in service.execute("data/list", params)["items"]] == ids
    envelope = _through(door, client, tmp_path, monkeypatch, capsys, "data/list", params)
    assert envelope["success"] is True, envelope
    assert [r["id"] for r in envelope["items"]] == ids


def _through(
    door: str, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], command: str, params: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    """The envelope ``door`` answers ``command`` with ``params`` (as JSON text, integers exact)."""
    if door == "http":
        envelope = _post(client, command, _json_text(params)).json()
    elif door == "client":  # what dbhandles.Client and jtag send to a server
        envelope = client.post(f"/commands/{command}", content=wire.encode_params(params)).json()
    elif door == "ws":
        with client.websocket_connect("/ws") as socket:
            socket.receive_json()  # hello
            socket.send_text(json.dumps({"type": "request", "id": 1, "command": command,
                                         "params": params}))  # fmt: skip
            message = socket.receive_json()
            while message["type"] != "response":
                message = socket.receive_json()
            envelope = message["result"]
    else:
        for name in ("JTAG_URL", "JTAG_TOKEN", "JTAG_SESSION_ID"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("DBHANDLES_HOME", str(tmp_path / "cli-home"))
        argv = [command] + [f"--{key}={_json_text(value) if isinstance(value, dict) else value}"
                            for key, value in params.items()]  # fmt: skip
        assert cli_main(["data/create", "--collection=c", "--id=r", '--data={"n": 1}']) == 0
        capsys.readouterr()
        cli_main(argv)
        envelope = orjson.loads(capsys.readouterr().out)
    return dict(envelope)


def test_the_client_sends_a_nan_as_its_literal_instead_of_null() -> None:
    """The server reads ``NaN`` back and refuses it by the rule of its place, as in-process
    (tests/test_non_finite_doors.py)."""
    body = wire.encode_params({"collection": "c", "data": {"scores": [1.0, float("nan")]}})
    assert body == b'{"collection":"c","data":{"scores":[1.0,NaN]}}'
    assert math.isnan(read_json(body)["data"]["scores"][1])


@pytest.mark.parametrize(
    ("value", "literal"), [(float("inf"), b"1e400"), (-float("inf"), b"-1e400")]
)
def test_the_client_writes_an_infinity_as_a_literal_the_server_reads_back(
    value: float, literal: bytes
) -> None:
    body = wire.encode_params({"collection": "c", "data": {"scores": [1.0, value], "s": "+"}})
    assert body == b'{"collection":"c","data":{"scores":[1.0,' + literal + b'],"s":"+"}}'
    assert read_json(body)["data"]["scores"][1] == value
    assert (
        wire.encode_params({"data": {"n": None, "m": 2**64}})
        == b'{"data":{"n":null,"m":18446744073709551616}}'
    )


def test_read_json_reads_what_orjson_reads_and_integers_exactly() -> None:
    text = b'{"a": 1.5, "b": "12345678901234567890", "c": [18446744073709551615, -9223372036854775809]}'
    assert read_json(text) == {"a": 1.5, "b": "12345678901234567890",
                               "c": [2**64 - 1, -(2**63) - 1]}  # fmt: skip
    assert type(read_json(b"[1.0000000000000000000001]")[0]) is float
    with pytest.raises(orjson.JSONDecodeError):
        read_json(b'{"n": NaN, "m": 12345678901234567890123,}')  # still strict
    assert read_json("[" * 1000 + "1234567890123456789" + "]" * 1000) is not None


def test_a_body_that_is_not_utf8_says_which_byte(client: Any) -> None:
    response = client.post("/commands/data/list", content=b'{"collection": "caf\xe9"}',
                           headers={"content-type": "application/json"})  # fmt: skip
    body = assert_error(response, "invalid_params", "body")
    assert body["error"] == "request body is not valid UTF-8 (byte 0xE9 at column 20)", body
    assert "surrogates" not in body["error"]
