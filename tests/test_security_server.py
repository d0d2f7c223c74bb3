"""Issue 6 over the server: tokens, sessions, isolation, read-only handles, row filters, audit, paths,
cross-site requests and secrets, through HTTP and the WebSocket (in-process app), and one real
``jtag serve`` process for what only a real process shows (its logs)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dbhandles import Service
from dbhandles.clock import iso_now
from dbhandles.store import TokenRow
from tests.servers import ServerProcess, app_client
from tests.test_server_http import assert_error

#: What ``data/open`` answers when another actor's isolation refuses access.
REFUSED = {"access_denied", "permission_denied"}
WRITES: list[tuple[str, dict[str, Any]]] = [
    ("data/create", {"collection": "notes", "data": {"text": "new"}}),
    ("data/update", {"collection": "notes", "id": "n1", "data": {"text": "changed"}}),
    ("data/delete", {"collection": "notes", "id": "n1"}),
    ("data/truncate", {"collection": "notes"}),
    ("data/clear", {}),
    ("data/batch", {"operations": [{"op": "create", "collection": "notes", "data": {}}]}),
]


class Tokens:
    """The tokens of one test: an administrator and two ordinary actors."""

    def __init__(self, service: Service) -> None:
        self.admin = service.tokens.create("root", admin=True)[0]
        self.alice = service.tokens.create("alice")[0]
        self.bob = service.tokens.create("bob")[0]


@pytest.fixture
def tokens(service: Service) -> Tokens:
    return Tokens(service)


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service, require_token=True) as test_client:
        yield test_client


def auth(token: str, session: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if session is not None:
        headers["X-Session-Id"] = session
    return headers


def post(
    client: Any, token: str | None, name: str, session: str | None = None, **params: Any
) -> Any:
    headers = auth(token, session) if token is not None else {}
    return client.post(f"/commands/{name}", json=params, headers=headers)


def ok(client: Any, token: str, name: str, session: str | None = None, **params: Any) -> Any:
    response = post(client, token, name, session, **params)
    body = response.json()
    assert response.status_code == 200 and body["success"] is True, body
    return body


def receive(socket: Any, kind: str) -> dict[str, Any]:
    while True:
        message = socket.receive_json()
        if message["type"] == kind:
            return dict(message)


def ws_call(socket: Any, msg_id: int, name: str, **params: Any) -> dict[str, Any]:
    socket.send_json({"type": "request", "id": msg_id, "command": name, "params": params})
    while True:
        message = receive(socket, "response")
        if message["id"] == msg_id:
            return dict(message["result"])


def sqlite_db(client: Any, token: str, path: Path | str, records: int = 0, **options: Any) -> str:
    """Open (creating) a SQLite file as the token's actor (a non-admin names one in its own data
    space); put ``records`` notes n1..nN in it."""
    handle = ok(client, token, "data/open", adapter="sqlite",
                config={"path": str(path), "mode": "create"}, **options)["dbHandle"]  # fmt: skip
    for i in range(1, records + 1):
        ok(client, token, "data/create", dbHandle=handle, collection="notes", id=f"n{i}",
           data={"text": f"note {i}"})  # fmt: skip
    return str(handle)


# -- 401 / 403 ------------------------------------------------------------------------------------


def test_missing_token_is_401(client: Any, tokens: Tokens) -> None:
    body = assert_error(post(client, None, "data/list-handles"), "unauthorized")
    assert "Bearer" in body["error"]
    assert_error(client.post("/commands/data/list-handles",
                             headers={"Authorization": "Basic YWRtaW46YWRtaW4="}), "unauthorized")  # fmt: skip


def test_wrong_tokens_are_401_with_one_message(client: Any, tokens: Tokens) -> None:
    token_id = tokens.alice.split("_")[1]
    wrong = [
        "nonsense",
        "dbh_deadbeef00_" + "x" * 43,  # well formed, unknown id
        f"dbh_{token_id}_" + "y" * 43,  # alice's id, wrong secret
    ]
    messages = {assert_error(post(client, token, "data/list-handles"), "unauthorized")["error"]
                for token in wrong}  # fmt: skip
    assert len(messages) == 1, "a caller learns nothing about why a token is refused"
    assert not any(token in message for token in wrong for message in messages)


def test_revoked_token_is_401(client: Any, tokens: Tokens) -> None:
    ok(client, tokens.alice, "data/list-handles")
    token_id = tokens.alice.split("_")[1]
    assert ok(client, tokens.admin, "token/revoke", tokenId=token_id)["revoked"] is True
    assert_error(post(client, tokens.alice, "data/list-handles"), "unauthorized")
    with client.websocket_connect(f"/ws?token={tokens.alice}") as socket:
        refused = socket.receive_json()
        assert (refused["type"], refused["code"]) == ("error", "unauthorized")


def test_expired_token_is_401(client: Any, service: Service) -> None:
    secret = "s" * 43
    service.registry.store.put_token(TokenRow(
        "expired01", "carol", hashlib.sha256(secret.encode()).hexdigest(), False, iso_now(),
        "2000-01-01T00:00:00.000Z", None,
    ))  # fmt: skip
    body = assert_error(
        post(client, f"dbh_expired01_{secret}", "data/list-handles"), "unauthorized"
    )
    assert "expired" in body["error"]


@pytest.mark.parametrize(
    ("name", "params"),
    [("data/audit", {}), ("token/create", {"actor": "mallory", "admin": True}), ("token/list", {}),
     ("token/revoke", {"tokenId": "whatever"})],
)  # fmt: skip
def test_admin_commands_are_403_for_other_actors(
    client: Any, tokens: Tokens, name: str, params: dict[str, Any]
) -> None:
    assert_error(post(client, tokens.alice, name, **params), "forbidden")
    assert ok(client, tokens.admin, "token/list")["tokens"][0]["actor"] != "mallory"


def test_a_token_revoked_while_its_socket_is_open_stops_working(
    client: Any, tokens: Tokens
) -> None:
    with client.websocket_connect("/ws", headers=auth(tokens.alice)) as socket:
        receive(socket, "hello")
        assert ws_call(socket, 1, "data/list-handles")["success"] is True
        ok(client, tokens.admin, "token/revoke", tokenId=tokens.alice)
        time.sleep(1.1)  # the socket re-checks its token at most once a second
        assert ws_call(socket, 2, "data/list-handles")["code"] == "unauthorized"
        refused = receive(socket, "error")
        assert (refused["id"], refused["code"]) == (None, "unauthorized")


def test_an_idle_socket_loses_its_revoked_token(
    client: Any, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscriber that sends nothing is re-checked too: revoked, it is told and disconnected."""
    from starlette.websockets import WebSocketDisconnect

    from dbhandles.server import ws as ws_module

    monkeypatch.setattr(ws_module, "WATCH_SECONDS", 0.1)
    with client.websocket_connect("/ws", headers=auth(tokens.alice)) as socket:
        receive(socket, "hello")
        socket.send_json({"type": "subscribe", "id": "s", "pattern": "data:*"})
        receive(socket, "subscribed")
        ok(client, tokens.admin, "token/revoke", tokenId=tokens.alice)
        refused = receive(socket, "error")
        assert (refused["id"], refused["code"]) == (None, "unauthorized")
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 1008


# -- sessions -------------------------------------------------------------------------------------


def test_http_sessions_are_echoed_and_belong_to_their_actor(client: Any, tokens: Tokens) -> None:
    for i in range(3):
        ok(client, tokens.alice, "data/create", collection="c", data={"i": i})
    opened = ok(client, tokens.alice, "data/query-open", "s1", collection="c", pageSize=1)
    assert opened["sessionId"] == "s1"
    cursor = opened["queryHandle"]
    assert (
        ok(client, tokens.alice, "data/query-next", "s1", queryHandle=cursor)["sessionId"] == "s1"
    )
    # Another session of the same actor, no session at all, another actor with the same id: all refused.
    for token, session in ((tokens.alice, "s2"), (tokens.alice, None), (tokens.bob, "s1"),
                           (tokens.admin, "s1")):  # fmt: skip
        refused = assert_error(post(client, token, "data/query-next", session, queryHandle=cursor),
                               "cursor_not_found")  # fmt: skip
        assert refused.get("sessionId") == session
    assert ok(client, tokens.alice, "data/query-next", "s1", queryHandle=cursor)["pageNumber"] == 1
    assert "sessionId" not in ok(client, tokens.alice, "data/list-handles")


def test_ws_cursor_belongs_to_its_socket_and_closes_with_it(
    client: Any, service: Service, tokens: Tokens
) -> None:
    for i in range(3):
        ok(client, tokens.alice, "data/create", collection="c", data={"i": i})
    with client.websocket_connect("/ws", headers=auth(tokens.alice)) as first:
        session = receive(first, "hello")["sessionId"]
        opened = ws_call(first, 1, "data/query-open", collection="c", pageSize=1)
        assert opened["sessionId"] == session
        cursor = opened["queryHandle"]
        with client.websocket_connect("/ws", headers=auth(tokens.alice)) as second:
            assert receive(second, "hello")["sessionId"] != session
            assert (
                ws_call(second, 1, "data/query-next", queryHandle=cursor)["code"]
                == "cursor_not_found"
            )
        # Knowing the socket's session id does not help over HTTP either.
        assert_error(post(client, tokens.alice, "data/query-next", session, queryHandle=cursor),
                     "cursor_not_found")  # fmt: skip
        assert ws_call(first, 2, "data/query-next", queryHandle=cursor)["items"]
    deadline = time.monotonic() + 5
    while service.registry.store.get_cursor(cursor) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert service.registry.store.get_cursor(cursor) is None, "the cursor closed with its socket"


# -- isolation between actors ---------------------------------------------------------------------


def in_space(service: Service, actor: str, name: str) -> Path:
    """The real path of ``name`` in ``actor``'s data space (what another actor would have to name)."""
    return service.settings.space_root() / actor / name


def test_strict_isolation_between_two_actors(client: Any, tokens: Tokens, service: Service) -> None:
    path = in_space(service, "alice", "alice-memories.sqlite")
    handle = sqlite_db(client, tokens.alice, path.name, records=1, preset="PERSONA_KNOWLEDGE")
    # By path: the answer for any path outside his places, naming nobody (no map of her files).
    body = assert_error(post(client, tokens.bob, "data/open", adapter="sqlite",
                             config={"path": str(path)}), "path_not_allowed")  # fmt: skip
    assert "alice" not in body["error"]
    for name, params in [("data/read", {"collection": "notes", "id": "n1"}),
                         ("data/list", {"collection": "notes"}), *WRITES]:  # fmt: skip
        assert_error(post(client, tokens.bob, name, dbHandle=handle, **params), "handle_not_found")
    bob_sees = [h["handle"] for h in ok(client, tokens.bob, "data/list-handles")["handles"]]
    assert handle not in bob_sees
    assert handle in [h["handle"] for h in ok(client, tokens.alice, "data/list-handles")["handles"]]
    with client.websocket_connect("/ws", headers=auth(tokens.bob)) as socket:
        receive(socket, "hello")
        refused = ws_call(socket, 1, "data/read", dbHandle=handle, collection="notes", id="n1")
        assert refused["code"] == "handle_not_found"
    assert ok(client, tokens.alice, "data/read", dbHandle=handle, collection="notes", id="n1")[
        "found"
    ]


def test_soft_isolation_lets_others_read_not_write(
    client: Any, tokens: Tokens, service: Service
) -> None:
    path = in_space(service, "alice", "shared.sqlite")
    handle = sqlite_db(client, tokens.alice, path.name, records=2, preset="COLLABORATIVE")
    own = ok(client, tokens.bob, "data/open", adapter="sqlite", config={"path": str(path)})[
        "dbHandle"
    ]
    for through in (handle, own):
        assert ok(client, tokens.bob, "data/read", dbHandle=through, collection="notes",
                  id="n1")["found"] is True  # fmt: skip
        assert (
            ok(client, tokens.bob, "data/list", dbHandle=through, collection="notes")["count"] == 2
        )
        for name, params in WRITES:
            response = post(client, tokens.bob, name, dbHandle=through, **params)
            assert response.status_code == 403 and response.json()["code"] in REFUSED, (
                name,
                through,
            )
    assert ok(client, tokens.alice, "data/list", dbHandle=handle, collection="notes")["count"] == 2


def test_events_of_an_isolated_handle_do_not_reach_other_actors(
    client: Any, tokens: Tokens, tmp_path: Path
) -> None:
    handle = sqlite_db(client, tokens.alice, "private.sqlite", preset="PERSONA_KNOWLEDGE")
    with (
        client.websocket_connect("/ws", headers=auth(tokens.bob)) as bob,
        client.websocket_connect("/ws", headers=auth(tokens.alice)) as alice,
    ):
        for socket in (bob, alice):
            receive(socket, "hello")
            socket.send_json({"type": "subscribe", "id": "s", "pattern": "data:*"})
            receive(socket, "subscribed")
        ok(client, tokens.alice, "data/create", dbHandle=handle, collection="notes", id="secret",
           data={"text": "private"})  # fmt: skip
        ok(client, tokens.alice, "data/create", collection="public", id="p1", data={})
        assert receive(alice, "event")["payload"]["id"] == "secret"
        assert receive(alice, "event")["payload"]["id"] == "p1"
        # Bob's first event is the public one: the private write never reached him.
        assert receive(bob, "event")["payload"]["id"] == "p1"


# -- read-only handles, row filters ---------------------------------------------------------------


@pytest.mark.parametrize(("how", "code"), [("preset", "permission_denied"), ("mode", "read_only")])
@pytest.mark.parametrize("door", ["http", "ws"])
def test_read_only_handle_refuses_every_write(
    client: Any, tokens: Tokens, tmp_path: Path, how: str, code: str, door: str
) -> None:
    path = tmp_path / "dataset.sqlite"
    dataset = sqlite_db(client, tokens.admin, path, records=2)
    # The administrator's database is Alice's to use only once it is shared with her.
    ok(client, tokens.admin, "data/grant", dbHandle=dataset, actor="alice", access="full")
    options: dict[str, Any] = {"preset": "READ_ONLY"} if how == "preset" else {}
    config = {"path": str(path), "mode": "readonly" if how == "mode" else "readwrite"}
    handle = ok(client, tokens.alice, "data/open", adapter="sqlite", config=config, **options)[
        "dbHandle"
    ]
    if door == "http":
        for name, params in WRITES:
            assert_error(post(client, tokens.alice, name, dbHandle=handle, **params), code)
    else:
        with client.websocket_connect("/ws", headers=auth(tokens.alice)) as socket:
            receive(socket, "hello")
            for i, (name, params) in enumerate(WRITES):
                assert ws_call(socket, i, name, dbHandle=handle, **params)["code"] == code, name
    listed = ok(client, tokens.alice, "data/list", dbHandle=handle, collection="notes")
    assert [item["id"] for item in listed["items"]] == ["n1", "n2"]
    assert listed["items"][0]["text"] == "note 1"


def test_row_filter_hides_and_protects_rows(client: Any, tokens: Tokens, tmp_path: Path) -> None:
    path = tmp_path / "tenants.sqlite"
    full = sqlite_db(client, tokens.admin, path)
    for rid, tenant in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        ok(client, tokens.admin, "data/create", dbHandle=full, collection="rows", id=rid,
           data={"tenant": tenant})  # fmt: skip
    ok(client, tokens.admin, "data/grant", dbHandle=full, actor="alice", access="full",
       permissions={"rowFilter": {"tenant": "a"}})  # fmt: skip
    handle = ok(client, tokens.alice, "data/open", adapter="sqlite", config={"path": str(path)})[
        "dbHandle"
    ]

    def call(name: str, **params: Any) -> Any:
        return post(client, tokens.alice, name, dbHandle=handle, collection="rows", **params)

    listed = call("data/list").json()
    assert ([i["id"] for i in listed["items"]], listed["count"]) == (["a1", "a2"], 2)
    assert call("data/read", id="b1").json()["found"] is False
    assert call("data/delete", id="b1").json()["found"] is False
    assert call("data/update", id="b1", data={"x": 1}).status_code == 404
    assert_error(call("data/create", data={"tenant": "b"}), "permission_denied")
    assert_error(call("data/update", id="a1", data={"tenant": "b"}), "permission_denied")
    assert_error(call("data/truncate"), "permission_denied")
    cursor = call("data/query-open").json()["queryHandle"]
    page = post(client, tokens.alice, "data/query-next", dbHandle=handle, queryHandle=cursor).json()
    assert sorted(i["id"] for i in page["items"]) == ["a1", "a2"]
    everything = ok(client, tokens.admin, "data/list", dbHandle=full, collection="rows")
    assert {i["id"]: i["tenant"] for i in everything["items"]} == {"a1": "a", "a2": "a", "b1": "b"}


# -- audit, paths ---------------------------------------------------------------------------------


def test_audit_rows_for_success_and_refusal(client: Any, tokens: Tokens, tmp_path: Path) -> None:
    ok(client, tokens.alice, "data/create", "audit-s", collection="c", id="x1", data={})
    assert_error(
        post(client, tokens.alice, "data/close", dbHandle="default"), "default_handle_protected"
    )
    assert_error(post(client, tokens.alice, "data/audit"), "forbidden")
    entries = ok(client, tokens.admin, "data/audit", actor="alice")["entries"]
    by_command = {e["command"]: e for e in entries}
    created = by_command["data/create"]
    assert (created["success"], created["recordId"], created["code"]) == (True, "x1", None)
    assert created["sessionId"] == "alice/audit-s"
    refused = by_command["data/close"]
    assert (refused["success"], refused["code"]) == (False, "default_handle_protected")
    assert {e["actor"] for e in entries} == {"alice"}


def test_dotdot_and_symlink_escapes_are_refused(
    client: Any, tokens: Tokens, home: Path, tmp_path: Path
) -> None:
    outside = Path("/usr/share")  # neither the home nor the temp folder
    link = tmp_path / "escape"
    link.symlink_to(outside, target_is_directory=True)
    file_link = tmp_path / "passwd.sqlite"
    file_link.symlink_to("/etc/passwd")
    paths = [
        str(home) + "/.." * 30 + "/usr/share/dbh-dotdot.sqlite",
        str(tmp_path / "sub" / ".." / ".." / ".." / ".." / ".." / ".." / "usr/share/dbh-dd.sqlite"),
        str(link / "dbh-link.sqlite"),
        str(file_link),
        "/etc/passwd",
    ]
    for path in paths:
        for token in (tokens.alice, tokens.admin):  # the roots hold for remote administrators too
            body = assert_error(post(client, token, "data/open", adapter="sqlite",
                                     config={"path": path, "mode": "create"}),
                                "path_not_allowed", "config.path")  # fmt: skip
            assert ("allowed" if token == tokens.admin else "data space") in body["error"]
    assert not list(outside.glob("dbh-*.sqlite")), "nothing was created outside the roots"


# -- cross-site requests --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
     {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}],
)  # fmt: skip
def test_cross_site_requests_are_refused(
    client: Any, tokens: Tokens, headers: dict[str, str]
) -> None:
    from starlette.testclient import WebSocketDenialResponse

    response = client.post("/commands/data/create", json={"collection": "c", "data": {}},
                           headers={**auth(tokens.admin), **headers})  # fmt: skip
    assert_error(response, "forbidden")
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect(f"/ws?token={tokens.admin}", headers=headers),
    ):
        pass
    assert refused.value.status_code == 403
    assert refused.value.json()["code"] == "forbidden"
    assert ok(client, tokens.admin, "data/list", collection="c")["count"] == 0


def test_same_origin_requests_work(client: Any, tokens: Tokens) -> None:
    same = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    response = client.post("/commands/data/list-handles", headers={**auth(tokens.alice), **same})
    assert response.status_code == 200
    with client.websocket_connect(f"/ws?token={tokens.alice}", headers=same) as socket:
        assert receive(socket, "hello")["actor"] == "alice"


# -- secrets --------------------------------------------------------------------------------------


def test_tokens_never_appear_in_listings_or_errors(client: Any, tokens: Tokens) -> None:
    secrets = [t.split("_", 2)[2] for t in (tokens.admin, tokens.alice, tokens.bob)]
    bodies = [
        post(client, tokens.admin, "data/list-handles").text,
        post(client, tokens.admin, "token/list").text,
        post(client, tokens.admin, "data/audit").text,
        post(client, tokens.admin, "token/revoke", tokenId=tokens.bob + "x").text,
        post(client, tokens.alice + "x", "data/list-handles").text,
        post(client, f"{tokens.alice} extra", "data/list-handles").text,
    ]
    for body in bodies:
        for secret in secrets:
            assert secret not in body


def test_postgres_password_not_in_errors(client: Any, tokens: Tokens) -> None:
    """A PostgreSQL that cannot be reached: the error names the server, never the password."""
    pytest.importorskip("psycopg")
    response = post(client, tokens.admin, "data/open", adapter="postgres",
                    config={"url": "postgresql://app:Pa55-w0rd-xyz@127.0.0.1:1/db"})  # fmt: skip
    body = response.json()
    assert body["success"] is False
    assert "Pa55-w0rd-xyz" not in response.text


@pytest.mark.postgres
def test_postgres_password_not_in_list_handles(client: Any, tokens: Tokens, tmp_path: Path) -> None:
    from tests.pgserver import require_postgres, schema_for

    server = require_postgres()
    url = server.tcp_url.replace("postgres@", "postgres:Pa55-w0rd-xyz@", 1)
    opened = post(client, tokens.admin, "data/open", adapter="postgres",
                  config={"url": url, "schema": schema_for(tmp_path), "mode": "create"})  # fmt: skip
    assert opened.json()["success"] is True, opened.text
    assert "Pa55-w0rd-xyz" not in opened.text
    listing = post(client, tokens.admin, "data/list-handles")
    assert opened.json()["dbHandle"] in listing.text
    assert "Pa55-w0rd-xyz" not in listing.text
    post(client, tokens.admin, "data/close", dbHandle=opened.json()["dbHandle"])


# -- a real `jtag serve` --------------------------------------------------------------------------


@pytest.mark.needs_server
def test_real_server_denials_and_no_token_in_its_logs(home: Path) -> None:
    from websockets.sync.client import connect

    with ServerProcess(home, None, "--log-level=debug") as server:
        admin = server.token
        assert server.banner().count(admin) == 1, "the new admin token is printed once"
        http = httpx.Client(base_url=server.url, timeout=30)
        created = http.post("/commands/token/create", json={"actor": "alice"},
                            headers=auth(admin)).json()  # fmt: skip
        alice = created["token"]
        wrong = "dbh_0123456789ab_" + "w" * 43

        def status(token: str | None, name: str = "data/list-handles", **extra: str) -> int:
            headers = {**(auth(token) if token else {}), **extra}
            return http.post(f"/commands/{name}", json={}, headers=headers).status_code

        assert [status(None), status(wrong), status(alice), status(alice, "data/audit")] == [
            401, 401, 200, 403]  # fmt: skip
        assert status(alice, Origin="https://evil.example") == 403
        ws_url = server.url.replace("http://", "ws://") + "/ws"
        with connect(f"{ws_url}?token={alice}", open_timeout=10) as socket:
            hello = orjson.loads(socket.recv(timeout=10))
            assert (hello["type"], hello["actor"]) == ("hello", "alice")
            socket.send(
                orjson.dumps({"type": "request", "id": 1, "command": "data/list-handles"}).decode()
            )
            assert orjson.loads(socket.recv(timeout=10))["result"]["success"] is True
        with connect(f"{ws_url}?token={wrong}", open_timeout=10) as socket:
            assert orjson.loads(socket.recv(timeout=10))["code"] == "unauthorized"
        with connect(ws_url, additional_headers=auth(admin), open_timeout=10) as socket:
            assert orjson.loads(socket.recv(timeout=10))["actor"] == "admin"
        http.post("/commands/token/revoke", json={"tokenId": alice}, headers=auth(admin))
        assert status(alice) == 401
        http.close()
        assert server.stop() == 0
        logs = server.output
    assert "WebSocket /ws" in logs, "debug logs were on (the check below means something)"
    for secret in (alice, alice.split("_", 2)[2], wrong):
        assert secret not in logs
    assert logs.count(admin) == 1, "the handshake's Authorization header is not logged either"
    with ServerProcess(home) as again:
        again.banner()
        assert again.stop() == 0
    assert admin not in again.output, "a later start never prints the admin token"
    assert os.stat(home / "admin.token").st_mode & 0o077 == 0
