"""A number literal past the double range (``1e400``, ``-2e308``) is finite JSON text that every
reader turns into an infinity: the error names the field and says so, with the value rule, on every
door (records, batches, updates, filters, counts, both cursor forms, import lines, HTTP, the
WebSocket, ``jtag``), never "NaN and infinity are not JSON numbers" as if the text held one."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service, wire
from dbhandles.cli import main as cli_main
from dbhandles.values import read_json
from tests.door_helpers import cli_home, door_envelope
from tests.servers import app_client

#: The words every such error holds (what happened, and the rule's bound).
OVERFLOW = "past the double range"
RULE = "strictly between -2**63 and 2**63"

#: (command, each param's JSON text, field, code, whether the message states the record value rule)
CASES: dict[str, tuple[str, dict[str, str], str, str, bool]] = {
    "record": ("data/create", {"data": '{"n": 1e400}'}, "data.n", "invalid_params", True),
    "nested record": ("data/create", {"data": '{"a": {"b": [1, -2e308]}}'}, "data.a.b[1]",
                      "invalid_params", True),
    "update": ("data/update", {"id": '"r"', "data": '{"n": 1E+999}'}, "data.n",
               "invalid_params", True),
    "batch": ("data/batch", {"operations": '[{"op": "create", "collection": "c", '
              '"data": {"n": 1e400}}]'}, "operations[0].data.n", "invalid_params", True),
    "filter": ("data/list", {"filter": '{"n": 1e400}'}, "filter.n", "invalid_filter", False),
    "filter $in": ("data/list", {"filter": '{"n": {"$in": [1, -1e999]}}'}, "filter.n.$in[1]",
                   "invalid_filter", False),
    "count filter": ("data/count", {"groupBy": '"n"', "filter": '{"n": {"$lt": 1e400}}'},
                     "filter.n.$lt", "invalid_filter", False),
    "cursor value": ("data/list", {"cursor": '{"field": "n", "value": 1e400, "direction": '
                     '"after"}'}, "cursor.value", "invalid_params", False),
}  # fmt: skip


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service) as test_client:
        yield test_client


def _check(envelope: dict[str, Any], field: str, code: str, rule: bool) -> None:
    assert envelope["success"] is False
    assert (envelope["code"], envelope["field"]) == (code, field), envelope
    message = envelope["error"]
    # A batch's message says the operation first ("operations[0] (create): data.n: ...").
    said = field.replace("operations[0].", "operations[0] (create): ")
    assert f"{said}: the number is infinite" in message and OVERFLOW in message
    assert "NaN" not in message
    assert (RULE in message) is rule


@pytest.mark.parametrize("door", ["in-process", "http", "ws", "cli"])
@pytest.mark.parametrize("case", list(CASES))
def test_an_overflowing_literal_is_named_as_one_on_every_door(
    service: Service, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], door: str, case: str,
) -> None:  # fmt: skip
    command, params, field, code, rule = CASES[case]
    if command != "data/batch":
        params = {"collection": '"c"', **params}
    text = "{" + ", ".join(f'"{key}": {value}' for key, value in params.items()) + "}"
    service.execute("data/create", {"collection": "c", "id": "r", "data": {"n": 1}})
    if door != "cli":
        envelope = door_envelope(door, service, client, command, text)
    else:
        cli_home(monkeypatch, tmp_path / "cli-home")
        assert cli_main(["data/create", "--collection=c", "--id=r", '--data={"n": 1}']) == 0
        capsys.readouterr()
        # A string param as plain text (--id=r), any other as its JSON text.
        argv = [command] + [f"--{key}={_arg(value)}" for key, value in params.items()]
        assert cli_main(argv) == 1
        envelope = orjson.loads(capsys.readouterr().out)
    _check(envelope, field, code, rule)
    listed = service.execute("data/list", {"collection": "c"})["items"]
    assert [(r["id"], r["n"]) for r in listed] == [("r", 1)]  # nothing written


def _arg(value: str) -> str:
    return str(json.loads(value)) if value.startswith('"') else value


def test_an_import_line_with_an_overflowing_literal_is_set_aside_naming_line_and_field(
    service: Service, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "n": 1}\n{"id": "b", "m": {"x": -1e400}}\n{"id": "c"}\n')
    result = service.execute("data/import", {"dbHandle": "default", "input": str(source),
                                             "collection": "c", "onError": "skip"})  # fmt: skip
    assert (result["imported"], result["failed"]) == (2, 1)
    [error] = result["errors"]
    assert error["line"] == 2
    assert error["reason"].startswith("m.x: the number is infinite") and OVERFLOW in error["reason"]
    assert RULE in error["reason"]


def test_a_next_cursor_holding_an_overflowing_literal_is_malformed_and_says_why(
    service: Service,
) -> None:
    service.execute("data/create", {"collection": "c", "id": "r", "data": {"n": 1}})
    raw = b'{"o": ["n", "id"], "p": [[2, 1e400], [3, "r"]]}'
    token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    refused = service.dispatch("data/list", {"collection": "c", "orderBy": "n", "cursor": token})
    assert (refused["code"], refused["field"]) == ("invalid_params", "cursor")
    assert "the number is infinite" in refused["error"] and OVERFLOW in refused["error"]


def test_nan_and_a_python_infinity_keep_words_of_their_own(service: Service) -> None:
    """In-process a caller can pass float('nan') or float('inf'): each is named for what it is."""
    nan = service.dispatch("data/create", {"collection": "c", "data": {"n": float("nan")}})
    assert nan["error"] == "data.n: NaN is not a number (JSON has no NaN)"
    inf = service.dispatch("data/list", {"collection": "c", "filter": {"n": float("-inf")}})
    assert inf["error"].startswith("filter.n: the number is infinite")


def test_the_client_door_sends_an_overflowed_literal_for_the_server_to_judge(
    service: Service,
) -> None:
    """``jtag`` against a server and ``dbhandles.Client`` write the body themselves: a literal the
    CLI read as infinity goes as ``1e400``, and the server refuses it as in-process, by the rule of
    the place that holds it (issue #14: one answer on every door)."""
    params = {"collection": "c", "data": read_json('{"n": [1, 1e400]}')}
    body = wire.encode_params(params)
    assert b"1e400" in body
    refused = service.dispatch("data/create", read_json(body))
    assert refused["field"] == "data.n[1]"
    assert OVERFLOW in refused["error"] and RULE in refused["error"]
