"""Issue 12: a request refused before any command ran is audited the same through every door.

The same malformed request, as ``alice`` (a non-admin token), is sent over HTTP and over the
WebSocket of a real ``jtag serve``, and in-process; each leaves one audit row with the same actor,
command (as given, or ``(no command)`` when the message named none) and code (docs/security.md,
"Audit log"). Refusals before authentication stay summarised (tests/test_audit_refusal_summary.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.servers import ServerProcess

pytestmark = pytest.mark.needs_server

MAX_BODY = 4096


@dataclass
class Door:
    server: ServerProcess
    http: httpx.Client
    admin: str
    alice: str

    def audit_rows(self) -> list[tuple[str, str, str | None]]:
        """alice's audit rows, oldest first, as (actor, command, code)."""
        body = self.http.post("/commands/data/audit", json={"actor": "alice", "limit": 10_000},
                              headers={"Authorization": f"Bearer {self.admin}"}).json()  # fmt: skip
        rows = [(e["actor"], e["command"], e["code"]) for e in body["entries"]]
        return list(reversed(rows)) if body["entries"] and _newest_first(body["entries"]) else rows

    def new_rows(self, before: int, count: int) -> list[tuple[str, str, str | None]]:
        """The rows written after the first ``before``, once ``count`` of them are there (rows
        are written in batches off the request path: polled, never timed)."""
        for _ in range(400):
            rows = self.audit_rows()
            if len(rows) >= before + count:
                return rows[before:]
            self.http.post("/commands/data/audit", json={"limit": 1},
                           headers={"Authorization": f"Bearer {self.admin}"})  # fmt: skip
        raise AssertionError(f"no {count} new audit rows: {self.audit_rows()[before:]}")

    def over_http(self, command: str, body: bytes, *, chunked: bool = False) -> str:
        headers = {"Authorization": f"Bearer {self.alice}", "Content-Type": "application/json"}
        content: Any = iter([body]) if chunked else body
        response = self.http.post(f"/commands/{command}", content=content, headers=headers)
        return str(response.json()["code"])

    def over_ws(self, *frames: bytes | str) -> list[dict[str, Any]]:
        from websockets.sync.client import connect

        url = self.server.url.replace("http://", "ws://") + f"/ws?token={self.alice}"
        answers = []
        with connect(url, open_timeout=30, max_size=None) as socket:
            assert orjson.loads(socket.recv(timeout=30))["type"] == "hello"
            for frame in frames:
                socket.send(frame)
                answers.append(orjson.loads(socket.recv(timeout=30)))
        return answers


def _newest_first(entries: list[dict[str, Any]]) -> bool:
    return len(entries) > 1 and entries[0]["timestamp"] > entries[-1]["timestamp"]


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    home: Path = tmp_path_factory.mktemp("doors") / "home"
    server = ServerProcess(home)
    server.env["DBHANDLES_MAX_BODY_BYTES"] = str(MAX_BODY)
    with server, httpx.Client(base_url=server.url, timeout=60) as http:
        admin = server.token
        alice = http.post("/commands/token/create", json={"actor": "alice"},
                          headers={"Authorization": f"Bearer {admin}"}).json()["token"]  # fmt: skip
        yield Door(server, http, admin, alice)


#: (command, params as JSON text, the code both doors answer).
MALFORMED = [
    pytest.param("data/zz-ws-unknown2", "{}", "unknown_command", id="unknown-command"),
    pytest.param("x" * 300, "{}", "unknown_command", id="long-unknown-command"),
    pytest.param("data/list", '"notobj"', "invalid_params", id="params-a-string"),
    pytest.param("data/list", "[1]", "invalid_params", id="params-a-list"),
    pytest.param("data/list", "3", "invalid_params", id="params-a-number"),
    pytest.param("data/list", '{"limit": -1}', "invalid_params", id="params-the-model-refuses"),
    pytest.param("data/read", '{"collection": "c"}', "invalid_params", id="params-missing"),
]


@pytest.mark.parametrize(("command", "params", "code"), MALFORMED)
def test_a_malformed_request_leaves_the_same_row_through_http_and_websocket(
    door: Door, command: str, params: str, code: str
) -> None:
    before = len(door.audit_rows())
    assert door.over_http(command, params.encode()) == code
    frame = f'{{"type": "request", "id": 1, "command": {orjson.dumps(command).decode()}, "params": {params}}}'
    (answer,) = door.over_ws(frame)
    assert answer["type"] == "response" and answer["result"]["code"] == code, answer
    http_row, ws_row = door.new_rows(before, 2)
    assert http_row == ws_row == ("alice", command[:200], code)


#: WebSocket messages that name no command a request could (HTTP always names one in its path).
WS_ONLY = [
    pytest.param(b"{not json", None, "invalid_params", id="not-json"),
    pytest.param(b"[1, 2]", None, "invalid_params", id="not-an-object"),
    pytest.param(b'{"type": "teleport", "id": 1}', None, "invalid_params", id="unknown-type"),
    pytest.param(
        b'{"type": "request", "id": [1], "command": "data/list"}',
        "data/list",
        "invalid_params",
        id="bad-id",
    ),
    pytest.param(
        b'{"type": "request", "command": "data/list"}',
        "data/list",
        "invalid_params",
        id="missing-id",
    ),
    pytest.param(
        b'{"type": "request", "id": 1, "command": 7}',
        None,
        "invalid_params",
        id="command-not-a-string",
    ),
    pytest.param(
        b'{"type": "request", "id": 1, "command": ""}', None, "unknown_command", id="empty-command"
    ),
    pytest.param(
        b'{"type": "request", "id": 1, "command": "data/list", "params": {"x": "'
        + b"a" * MAX_BODY
        + b'"}}',
        None,
        "payload_too_large",
        id="too-large",
    ),
]


@pytest.mark.parametrize(("frame", "command", "code"), WS_ONLY)
def test_a_refused_websocket_message_is_audited(
    door: Door, frame: bytes, command: str | None, code: str
) -> None:
    before = len(door.audit_rows())
    (answer,) = door.over_ws(frame.decode())
    got = answer["code"] if answer["type"] == "error" else answer["result"]["code"]
    assert got == code, answer
    (row,) = door.new_rows(before, 1)
    assert row == ("alice", command or "(no command)", code)


def test_a_body_too_large_after_the_token_is_audited_as_its_command(door: Door) -> None:
    """A body without a length is read once its token passed: refused, and audited as the
    command its path names (a length over the limit is refused before the token, at the door)."""
    before = len(door.audit_rows())
    body = b'{"collection": "' + b"a" * MAX_BODY + b'"}'
    assert door.over_http("data/list", body, chunked=True) == "payload_too_large"
    (row,) = door.new_rows(before, 1)
    assert row == ("alice", "data/list", "payload_too_large")


def test_an_unknown_command_in_process_is_audited(tmp_path: Path) -> None:
    """The in-process door (the Python API, ``jtag`` without a server) writes the same row."""
    from dbhandles import Service
    from dbhandles.context import Context
    from dbhandles.errors import DbHandlesError

    with Service(tmp_path / "home") as service:
        alice = Context(actor="alice")
        with pytest.raises(DbHandlesError) as caught:
            service.execute("data/zz-ws-unknown2", {}, context=alice)
        assert caught.value.code == "unknown_command"
        with pytest.raises(DbHandlesError):
            service.execute(["not", "a", "name"], {}, context=alice)  # type: ignore[arg-type]
        service.audit.flush()
        rows = [(e["actor"], e["command"], e["code"])
                for e in service.execute("data/audit", {"actor": "alice"})["entries"]]  # fmt: skip
    assert sorted(rows) == [("alice", "(no command)", "unknown_command"),
                            ("alice", "data/zz-ws-unknown2", "unknown_command")]  # fmt: skip
