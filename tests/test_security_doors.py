"""Issue 12, round 8 of the outside checks: the server's doors, the audit row's names and the owner
an answer shows, each tested as a kind against a real ``jtag serve`` as a non-admin actor.

5. Params nested as deep as a body can hold (orjson reads 1024 levels), or deeper from Python, get
   their error envelope through every door (HTTP, WebSocket, in-process), for administrators and
   non-admins alike, never a 500; the audit row's code is the one the client got.
7. An absolute-form request target (``POST http://evil.example/commands/...``) is held to the rule
   of ``Host`` on every route and on the WebSocket upgrade (a denial response, as any refused
   upgrade gets); a target that is no path and no http(s)/ws(s) URL is ``invalid_params``.
8. Every refusal at the door (Host, absolute-form, several or no Host) is audited on HTTP routes
   and WebSocket upgrades alike: operation ``auth``, the actor the request claimed.
9. A name that is not a string (``dbHandle``, ``collection``) is audited as ``?`` and its JSON text,
   never as the default database.
10. ``permissions.owner`` naming the stored owner is accepted and changes nothing; any other name
    from a non-admin is ``permission_denied`` with ``field: "permissions.owner"``; every answer's
    ``owner`` is the stored owner, never the opener's name unless it is stored.

See docs/security.md ("Audit log", "HTTP and WebSocket hardening", "Ownership, isolation and
grants").
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Context, Service, Settings
from dbhandles.commands.base import COMMANDS
from tests.test_security_tenants import Tenants, serve_tenants

pytestmark = pytest.mark.needs_server

ADMIN = Context(actor="admin", is_admin=True, session_id="s-admin", trusted_local=False)
ALICE = Context(actor="alice", is_admin=False, session_id="s-alice", trusted_local=False)
#: The deepest a body may nest: orjson reads 1024 levels and refuses the 1025th.
BODY_DEPTH = 1024
#: Errors of params that are refused as bad params, whatever the command.
BAD_PARAMS = {"invalid_params", "invalid_config", "invalid_filter", "invalid_query"}


@pytest.fixture
def t(tmp_path: Path) -> Iterator[Tenants]:
    yield from serve_tenants(tmp_path)


def nested(depth: int, kind: str = "object") -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value} if kind == "object" else [value]
    return value


#: Where ``deep_json`` puts the nested value (orjson writes at most 254 levels).
DEEP = "\x00deep"


def deep_json(value: Any, depth: int) -> bytes:
    """``value`` as JSON text, each ``DEEP`` in it replaced by ``depth`` nested objects."""
    inner = b'{"a":' * depth + b'"x"' + b"}" * depth
    return orjson.dumps(value).replace(orjson.dumps(DEEP), inner)


def token_id(token: str) -> str:
    return token.split("_")[1]


def raw(t: Tenants, request: str) -> tuple[int, bytes]:
    """Send ``request`` as written (httpx would rewrite its target and headers): status and body."""
    with socket.create_connection(("127.0.0.1", t.server.port), timeout=30) as conn:
        conn.sendall(request.encode("latin-1"))
        data = b""
        while not data.startswith(b"HTTP/1.1 101") and (chunk := conn.recv(65536)):
            data += chunk  # to the end, or only the head of an accepted upgrade
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")  # fmt: skip


def door_rows(t: Tenants, command: str) -> list[dict[str, Any]]:
    return [e for e in t.audit(operation="auth") if e["command"] == command]


# -- 5. deep params: an envelope through every door, and the row says what the client got ----------


def _deep_calls(depth: int) -> list[tuple[str, bytes]]:
    """Calls whose params nest ``depth`` levels in all (as JSON text: ``deep_json``)."""
    calls = [
        ("data/create", {"collection": "c", "data": DEEP}, 2),
        ("data/update", {"collection": "c", "id": "r", "data": DEEP}, 2),
        ("data/list", {"collection": "c", "filter": DEEP}, 2),
        ("data/open", {"adapter": "sqlite", "config": DEEP}, 2),
        ("data/open", {"adapter": "sqlite", "config": {"path": "p.sqlite"},
                       "permissions": DEEP}, 2),
        ("data/batch", {"operations": [{"op": "create", "collection": "c", "data": DEEP}]}, 4),
        ("data/delete", {"dbHandle": DEEP, "collection": "c", "id": "1"}, 2),
        ("data/job-start", {"command": "data/export", "params": DEEP}, 2),
    ]  # fmt: skip
    return [(name, deep_json(params, depth - used)) for name, params, used in calls]


def test_5_params_nested_to_the_body_limit_get_an_envelope_over_http(t: Tenants) -> None:
    for token in (t.alice, t.admin):
        for name, params in _deep_calls(BODY_DEPTH):
            response = t.http.post(f"/commands/{name}", content=params,
                                   headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            body = response.json()
            assert response.status_code == 400 and body["code"] in BAD_PARAMS, (name, body)
            rows = [e for e in t.audit() if e["command"] == name and not e["success"]]
            assert rows and {e["code"] for e in rows} <= BAD_PARAMS, (name, rows)
    # One level more is no JSON a body can carry: still an envelope, audited as sent.
    too_deep = b'{"collection":"c","data":' + b'{"a":' * BODY_DEPTH + b"1" + b"}" * (BODY_DEPTH + 1)
    response = t.http.post("/commands/data/create", content=too_deep,
                           headers={"Authorization": f"Bearer {t.alice}"})  # fmt: skip
    assert response.status_code == 400 and response.json()["code"] == "invalid_params"
    t.server.stop()
    assert "Traceback" not in t.server.output and "RecursionError" not in t.server.output


def test_5_params_nested_to_the_body_limit_get_an_envelope_over_websocket(t: Tenants) -> None:
    from websockets.sync.client import connect

    url = t.server.url.replace("http://", "ws://") + "/ws"
    for token in (t.alice, t.admin):
        with connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                     open_timeout=10, max_size=None) as ws:  # fmt: skip
            assert orjson.loads(ws.recv(timeout=10))["type"] == "hello"
            # The message is one level more than its params: the deepest a message holds.
            for i, (name, params) in enumerate(_deep_calls(BODY_DEPTH - 1)):
                head = b'{"type":"request","id":%d,"command":"%s","params":' % (i, name.encode())
                ws.send((head + params + b"}").decode())
                answer = orjson.loads(ws.recv(timeout=30))
                envelope = answer["result"]
                assert envelope["success"] is False and envelope["code"] in BAD_PARAMS, answer
    codes = {e["code"] for e in t.audit() if e["command"] in dict(_deep_calls(2))}
    assert codes and codes <= BAD_PARAMS, codes


@pytest.mark.parametrize("kind", ["object", "array"])
def test_5_params_nested_past_pythons_recursion_limit_get_an_envelope_in_process(
    tmp_path: Path, kind: str
) -> None:
    """Every field of every command (and one no command has), nested deeper than Python's
    recursion limit: what a Python caller can send."""
    settings = Settings(home=tmp_path / "home", data_root=tmp_path / "data")
    with Service(settings=settings) as service:
        for name, command in sorted(COMMANDS.items()):
            fields = [f.alias or k for k, f in command.params.model_fields.items()]
            for field in [*fields, "notAField"]:
                for context in (ALICE, ADMIN):
                    params = {"collection": "c", field: nested(1500, kind)}
                    envelope = service.dispatch(name, params, context=context)
                    assert envelope.get("code") != "internal_error", (name, field, envelope)
        rows = service.execute("data/audit", {"limit": 10_000}, context=ADMIN)["entries"]
        assert rows and all(e.get("code") != "internal_error" for e in rows)


# -- 7 and 8. absolute-form targets, and every refusal at the door audited --------------------------


@pytest.mark.parametrize(
    ("request_line", "extra", "command"),
    [("POST http://evil.example/commands/data/list HTTP/1.1", "post", "data/list"),
     ("GET http://evil.example/ HTTP/1.1", "", "GET /"),
     ("GET http://evil.example/commands HTTP/1.1", "", "GET /commands"),
     ("GET http://evil.example:80/health HTTP/1.1", "", "GET /health"),
     ("GET http://evil.example/ws HTTP/1.1", "upgrade", "(websocket)"),
     ("GET ws://evil.example/ws HTTP/1.1", "upgrade", "(websocket)")],
)  # fmt: skip
def test_7_an_absolute_target_naming_another_host_is_refused_and_audited(
    t: Tenants, request_line: str, extra: str, command: str
) -> None:
    headers = f"Host: 127.0.0.1\r\nAuthorization: Bearer {t.alice}\r\n"
    body = '{"collection":"c"}' if extra == "post" else ""
    if extra == "post":
        headers += f"Content-Length: {len(body)}\r\n"
    headers += UPGRADE if extra == "upgrade" else "Connection: close\r\n"
    status, answer = raw(t, f"{request_line}\r\n{headers}\r\n{body}")
    envelope = orjson.loads(answer)
    assert status == 403 and envelope["code"] == "forbidden", (request_line, answer)
    assert envelope["field"] == "target" and "host" in envelope["error"], envelope
    rows = door_rows(t, command)
    assert [(e["actor"], e["code"]) for e in rows] == [(f"token:{token_id(t.alice)}", "forbidden")]


def test_7_an_absolute_target_naming_this_server_is_served(t: Tenants) -> None:
    here = f"http://127.0.0.1:{t.server.port}"
    headers = f"Host: 127.0.0.1\r\nAuthorization: Bearer {t.alice}\r\n"
    status, body = raw(t, f"POST {here}/commands/data/list-handles HTTP/1.1\r\n{headers}"
                          "Content-Length: 2\r\nConnection: close\r\n\r\n{}")  # fmt: skip
    assert status == 200 and orjson.loads(body)["success"] is True, body
    status, _ = raw(t, f"GET {here}/health HTTP/1.1\r\n{headers}Connection: close\r\n\r\n")
    assert status == 200
    for scheme in ("http", "ws"):
        status, _ = raw(t, f"GET {scheme}://localhost:{t.server.port}/ws HTTP/1.1\r\n{headers}"
                           f"{UPGRADE}\r\n")  # fmt: skip
        assert status == 101, scheme


@pytest.mark.parametrize(
    "target",
    ["ftp://127.0.0.1/commands", "http://alice@127.0.0.1/commands"],
)  # fmt: skip
def test_7_a_target_that_is_no_path_and_no_web_url_is_invalid_params(
    t: Tenants, target: str
) -> None:
    for extra in ("Connection: close\r\n", UPGRADE):
        status, body = raw(t, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n")
        envelope = orjson.loads(body)
        assert status == 400 and envelope["code"] == "invalid_params", (target, body)
        assert envelope["field"] == "target", envelope
    codes = [e["code"] for e in t.audit(operation="auth")]
    assert codes.count("invalid_params") == 2, codes


@pytest.mark.parametrize(
    ("request_line", "command"),
    [("POST /commands/data/list HTTP/1.1", "data/list"), ("GET /health HTTP/1.1", "GET /health"),
     ("GET / HTTP/1.1", "GET /"), ("GET /ws HTTP/1.1", "(websocket)")],
)  # fmt: skip
def test_8_every_refusal_at_the_door_is_audited_on_every_route(
    t: Tenants, request_line: str, command: str
) -> None:
    upgrade = "/ws" in request_line
    extra = UPGRADE if upgrade else "Connection: close\r\n"
    auth = f"Authorization: Bearer {t.alice}\r\n"
    body = ""
    if request_line.startswith("POST"):
        extra, body = extra + "Content-Length: 2\r\n", "{}"
    cases = [("Host: evil.example\r\n", 403, "forbidden"),
             ("Host: 127.0.0.1\r\nHost: 127.0.0.1\r\n", 400, "invalid_params"),
             ("", 400, "invalid_params")]  # fmt: skip
    for hosts, status, code in cases:
        got, answer = raw(t, f"{request_line}\r\n{hosts}{auth}{extra}\r\n{body}")
        assert got == status and orjson.loads(answer)["code"] == code, (hosts, answer)
    # Anonymous when no token came; a WebSocket's ?token= is the claim of an upgrade.
    line = request_line.replace("/ws ", "/ws?token=" + t.bob + " ") if upgrade else request_line
    raw(t, f"{line}\r\nHost: evil.example\r\n{extra}\r\n{body}")
    raw(t, f"{request_line}\r\nHost: evil.example\r\n{extra}\r\n{body}")
    rows = [(e["actor"], e["code"]) for e in door_rows(t, command)]
    alice = f"token:{token_id(t.alice)}"
    expected = [(alice, code) for _, _, code in cases]
    expected += [(f"token:{token_id(t.bob)}" if upgrade else "anonymous", "forbidden"),
                 ("anonymous", "forbidden")]  # fmt: skip
    # One row at once per (actor, code); the repeats are counted in the window's summary row.
    assert sorted(rows) == sorted(set(expected)), rows
    assert all(t.bob.split("_", 2)[2] not in orjson.dumps(e).decode() for e in t.audit())


# -- 9. a name that is not a string is audited as sent, never as default ---------------------------


def test_9_a_name_that_is_not_a_string_is_audited_as_sent(t: Tenants) -> None:
    calls = [
        ("data/delete", {"dbHandle": {"a": 1}, "collection": "x", "id": "1"}, '?{"a":1}', "x"),
        ("data/delete", {"dbHandle": 123, "collection": "x", "id": "1"}, "?123", "x"),
        ("data/read", {"dbHandle": "default", "collection": ["x"], "id": "1"}, "default", '?["x"]'),
        ("data/clear", {"dbHandle": False}, "?false", "*"),
        ("data/batch", {"dbHandle": [1], "operations": [{"op": "delete", "collection": 7,
                                                         "id": "1"}]}, "?[1]", "?7"),
        ("data/copy", {"from": {"dbHandle": 1, "collection": "c"}, "to": {"dbHandle": 2.5}},
         "?2.5", "c"),
        ("data/job-start", {"command": "data/export", "params": {"dbHandle": {"q": 1},
                            "collection": "c", "output": "o.jsonl"}}, '?{"q":1}', "c"),
        ("data/query-next", {"dbHandle": {"z": 1}, "queryHandle": "q1"}, '?{"z":1}', None),
    ]  # fmt: skip
    for name, params, _, _ in calls:
        t.refused(t.alice, name, BAD_PARAMS | {"cursor_not_found"}, **params)
    rows = {(e["command"], e["handle"], e["collection"]) for e in t.audit(actor="alice")}
    for name, _, handle, collection in calls:
        assert (name, handle, collection) in rows, (name, rows)
    assert not any(e["handle"] == "default" for e in t.audit(actor="alice")
                   if e["command"] in ("data/delete", "data/clear", "data/batch")), rows  # fmt: skip
    # A long value is cut: the row stays small.
    t.refused(
        t.alice, "data/delete", "invalid_params", dbHandle=["y" * 500], collection="x", id="1"
    )
    longest = max(len(e["handle"] or "") for e in t.audit(actor="alice"))
    assert longest <= 101


# -- 10. permissions.owner: the stored owner, or refused naming the field ---------------------------


def _bob_soft(t: Tenants) -> str:
    handle = t.ok(t.bob, "data/open", adapter="sqlite", config={"path": "soft.sqlite",
                  "mode": "create"}, permissions={"isolationMode": "soft"})["dbHandle"]  # fmt: skip
    t.ok(t.bob, "data/create", dbHandle=handle, collection="c", id="r", data={"n": 1})
    return str(t.space("bob") / "soft.sqlite")


def test_10_naming_the_stored_owner_is_accepted_and_changes_nothing(t: Tenants) -> None:
    path = _bob_soft(t)
    for permissions in ({"owner": "bob"}, {"owner": "bob", "isolationMode": "none"},
                        {"owner": "bob", "isolationMode": "strict"}):  # fmt: skip
        opened = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": path},
                      permissions=permissions)  # fmt: skip
        assert opened["owner"] == "bob" and opened["permissions"]["owner"] == "bob", opened
        assert opened["permissions"]["isolationMode"] == "soft", opened  # alice set nothing
        t.refused(t.alice, "data/create", {"access_denied", "permission_denied"}, dbHandle=opened["dbHandle"],
                  collection="c", data={"n": 2})  # fmt: skip
    # Bob still reads and writes his database; its mode is still his.
    listed = {h["handle"]: h for h in t.ok(t.bob, "data/list-handles")["handles"]}
    assert all(h["permissions"]["isolationMode"] == "soft" for h in listed.values()
               if h["config"].get("path") == path)  # fmt: skip


def test_10_any_other_owner_is_refused_naming_the_field(t: Tenants) -> None:
    path = _bob_soft(t)
    for owner in ("alice", "carol", "BOB"):
        body = t.call(t.alice, "data/open", adapter="sqlite", config={"path": path},
                      permissions={"owner": owner})  # fmt: skip
        assert body["code"] == "permission_denied" and body["field"] == "permissions.owner", body
        assert '"bob"' in body["error"], body  # the owner it may name (it reads the database)
    # In its own space: itself (recorded by this open) is accepted, anyone else refused.
    mine = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": "a.sqlite",
                "mode": "create"}, permissions={"owner": "alice"})  # fmt: skip
    assert mine["owner"] == "alice" and mine["permissions"]["owner"] == "alice"
    body = t.call(t.alice, "data/open", adapter="sqlite", config={"path": "a.sqlite"},
                  permissions={"owner": "bob"})  # fmt: skip
    assert body["code"] == "permission_denied" and body["field"] == "permissions.owner", body
    # A memory database is its opener's: another owner is refused the same way.
    body = t.call(t.alice, "data/open", adapter="memory", config={"name": "m"},
                  permissions={"owner": "bob"})  # fmt: skip
    assert body["code"] == "permission_denied" and body["field"] == "permissions.owner", body
    memory = t.ok(t.alice, "data/open", adapter="memory", config={"name": "m"},
                  permissions={"owner": "alice"})  # fmt: skip
    assert memory["owner"] == "alice"


def test_10_every_answer_shows_the_stored_owner_not_the_opener(t: Tenants) -> None:
    path = _bob_soft(t)
    opened = t.ok(t.alice, "data/open", adapter="sqlite", config={"path": path})
    assert opened["owner"] == "bob", opened
    listed = {h["handle"]: h for h in t.ok(t.alice, "data/list-handles")["handles"]}
    assert listed[opened["dbHandle"]]["owner"] == "bob", listed
    admin = {h["handle"]: h for h in t.ok(t.admin, "data/list-handles")["handles"]}
    assert admin[opened["dbHandle"]]["owner"] == "bob"
    # A database nobody owns (an administrator's, opened without isolation) shows no owner.
    plain = t.ok(t.admin, "data/open", adapter="sqlite",
                 config={"path": str(t.data_root / "plain.sqlite"), "mode": "create"})  # fmt: skip
    assert plain["owner"] is None, plain
    admin = {h["handle"]: h for h in t.ok(t.admin, "data/list-handles")["handles"]}
    assert admin[plain["dbHandle"]]["owner"] is None
