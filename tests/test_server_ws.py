"""The /ws socket in-process: correlated requests, pattern subscriptions, events, malformed messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from dbhandles import Context, Service
from dbhandles.server import ws as ws_module
from dbhandles.server.fanout import Fanout
from tests.servers import app_client


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    with app_client(service) as test_client:
        yield test_client


def receive(socket: Any, kind: str | None = None) -> dict[str, Any]:
    """The next message (skipping others until one of ``kind`` when given)."""
    while True:
        message = socket.receive_json()
        assert isinstance(message, dict)
        if kind is None or message["type"] == kind:
            return message


def test_hello_carries_a_session_id(client: Any) -> None:
    with client.websocket_connect("/ws") as socket:
        hello = receive(socket)
        assert hello["type"] == "hello"
        assert len(hello["sessionId"]) == 36


def test_request_response_with_correlation_id(client: Any) -> None:
    with client.websocket_connect("/ws") as socket:
        session = receive(socket, "hello")["sessionId"]
        socket.send_json(
            {"type": "request", "id": "abc", "command": "data/list", "params": {"collection": "u"}}
        )
        response = receive(socket, "response")
        assert response["id"] == "abc"
        assert response["result"]["success"] is True
        assert response["result"]["sessionId"] == session


def test_concurrent_requests_are_each_answered(client: Any) -> None:
    with client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        for i in range(20):
            socket.send_json({"type": "request", "id": i, "command": "data/create",
                              "params": {"collection": "n", "data": {"i": i}}})  # fmt: skip
        ids = {receive(socket, "response")["id"] for _ in range(20)}
        assert ids == set(range(20))


def test_command_errors_come_back_as_envelopes(client: Any) -> None:
    with client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        socket.send_json(
            {"type": "request", "id": 1, "command": "data/close", "params": {"dbHandle": "default"}}
        )
        result = receive(socket, "response")["result"]
        assert (result["success"], result["code"]) == (False, "default_handle_protected")
        socket.send_json({"type": "request", "id": 2, "command": "data/nope"})
        assert receive(socket, "response")["result"]["code"] == "unknown_command"
        socket.send_json({"type": "request", "id": 3, "command": "data/list", "params": [1]})
        assert receive(socket, "response")["result"]["code"] == "invalid_params"
        socket.send_json({"type": "request", "id": 4, "command": 7})
        assert receive(socket, "response")["result"]["field"] == "command"
        socket.send_json(
            {"type": "request", "id": 5, "command": "data/list", "params": {"limit": "x"}}
        )
        assert receive(socket, "response")["result"]["code"] == "invalid_params"


def test_subscriber_gets_events_from_another_client(client: Any, service: Service) -> None:
    with client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        socket.send_json({"type": "subscribe", "id": 1, "pattern": "data:users:*"})
        assert receive(socket) == {"type": "subscribed", "id": 1, "pattern": "data:users:*"}
        # Another client writes over HTTP; one write to a collection nobody listens to comes first.
        client.post("/commands/data/create", json={"collection": "orders", "data": {"n": 1}})
        client.post(
            "/commands/data/create",
            json={"collection": "users", "data": {"name": "Ada"}, "id": "u1"},
        )
        event = receive(socket, "event")
        assert event["event"] == "data:users:created"
        assert event["pattern"] == "data:users:*"
        assert event["payload"]["dbHandle"] == "default"
        assert event["payload"]["record"]["name"] == "Ada"


def test_wildcard_subscription_and_unsubscribe(client: Any, service: Service) -> None:
    with client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        socket.send_json({"type": "subscribe", "id": 1, "pattern": "data:*"})
        receive(socket, "subscribed")
        service.execute("data/create", {"collection": "a", "data": {}, "id": "1"})
        service.execute("data/delete", {"collection": "a", "id": "1"})
        assert receive(socket, "event")["event"] == "data:a:created"
        assert receive(socket, "event")["event"] == "data:a:deleted"
        socket.send_json({"type": "unsubscribe", "id": 2, "pattern": "data:*"})
        assert receive(socket, "unsubscribed")["found"] is True
        service.execute("data/create", {"collection": "a", "data": {}})
        socket.send_json({"type": "ping", "id": 3})
        assert receive(socket) == {"type": "pong", "id": 3}  # no event came in between
    assert not service.events._subs, "closing the socket drops its subscriptions"


def test_subscriptions_end_with_the_connection(client: Any, service: Service) -> None:
    with client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        socket.send_json({"type": "subscribe", "id": 1, "pattern": "data:x:*"})
        receive(socket, "subscribed")
        assert len(service.events._subs) == 1
    service.execute("data/create", {"collection": "x", "data": {}})  # must not fail the write
    assert not service.events._subs


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("{not json", "message"),
        ("[1, 2]", "message"),
        ('{"type": "dance", "id": 1}', "type"),
        ('{"id": 1}', "type"),
        ('{"type": "request", "command": "data/list"}', "id"),
        ('{"type": "request", "id": {"a": 1}, "command": "data/list"}', "id"),
        ('{"type": "subscribe", "id": 1, "pattern": ""}', "pattern"),
        ('{"type": "subscribe", "id": 1, "pattern": 5}', "pattern"),
    ],
)
def test_malformed_messages_get_an_error_and_the_socket_stays_open(
    client: Any, raw: str, field: str
) -> None:
    with client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        socket.send_text(raw)
        error = receive(socket)
        assert error["type"] == "error"
        assert (error["code"], error["field"]) == ("invalid_params", field)
        socket.send_json({"type": "ping", "id": 9})
        assert receive(socket) == {"type": "pong", "id": 9}


def test_oversized_message(tmp_path: Any) -> None:
    from dbhandles import Settings

    with (
        Service(settings=Settings(home=tmp_path / "h", max_body_bytes=1024)) as svc,
        app_client(svc) as client,
        client.websocket_connect("/ws") as socket,
    ):
        receive(socket, "hello")
        socket.send_text(orjson.dumps({"type": "ping", "id": 1, "pad": "x" * 1100}).decode())
        error = receive(socket)
        assert (error["type"], error["code"]) == ("error", "payload_too_large")
        socket.send_json({"type": "ping", "id": 2})
        assert receive(socket)["type"] == "pong"


def test_binary_frames_are_read_as_json(client: Any) -> None:
    with client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        socket.send_bytes(b'{"type": "ping", "id": 1}')
        assert receive(socket) == {"type": "pong", "id": 1}


class _SlowSocket:
    """A WebSocket whose sends wait for a gate: a client that is not reading."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sent: list[dict[str, Any]] = []
        self.scope: dict[str, Any] = {}  # no transport to pause

    async def send_text(self, text: str) -> None:
        await self.gate.wait()
        self.sent.append(orjson.loads(text))


def test_slow_reader_loses_events_and_is_told(
    monkeypatch: pytest.MonkeyPatch, service: Service
) -> None:
    """Past the per-connection limit, events are dropped and counted; writers are never blocked."""
    monkeypatch.setattr(ws_module, "MAX_PENDING_EVENTS", 3)

    async def scenario() -> list[dict[str, Any]]:
        fake = _SlowSocket()
        state = type("State", (), {"service": service, "max_body_bytes": 10**6})()
        context = Context(session_id="s")
        conn = ws_module.Connection(fake, state, context, "s")  # type: ignore[arg-type]
        writer = asyncio.create_task(conn.writer())
        fanout = Fanout(service.events, asyncio.get_running_loop())
        fanout.add(conn, "data:*")
        for i in range(10):  # published from another thread in real life; never waits
            await asyncio.to_thread(service.events.publish, f"data:c:e{i}", {"i": i})
        deadline = time.monotonic() + 5
        while conn.dropped < 6 and time.monotonic() < deadline:  # delivered by the fan-out thread
            await asyncio.sleep(0.01)
        assert conn.dropped >= 6
        fake.gate.set()
        conn.close()
        fanout.close()
        await asyncio.wait_for(writer, 5)
        return fake.sent

    sent = asyncio.run(scenario())
    events = [m for m in sent if m["type"] == "event"]
    assert 1 <= len(events) <= 4
    assert sent[-1]["type"] == "overflow"
    assert sent[-1]["dropped"] + len(events) == 10


def test_ws_token_in_query_or_header(service: Service) -> None:
    token, _ = service.tokens.create("alice", admin=False)
    with app_client(service, require_token=True) as client:
        with client.websocket_connect("/ws") as socket:
            refused = receive(socket)
            assert (refused["type"], refused["code"]) == ("error", "unauthorized")
        with client.websocket_connect(f"/ws?token={token}") as socket:
            assert receive(socket, "hello")["actor"] == "alice"
        with client.websocket_connect(
            "/ws", headers={"Authorization": f"Bearer {token}"}
        ) as socket:
            assert receive(socket, "hello")["actor"] == "alice"


def test_ws_from_another_site_is_refused(client: Any) -> None:
    from starlette.testclient import WebSocketDenialResponse

    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect("/ws", headers={"Origin": "http://evil.example"}),
    ):
        pass
    assert refused.value.status_code == 403
    assert refused.value.json()["code"] == "forbidden"


def test_closing_the_socket_closes_its_cursors(client: Any, service: Service) -> None:
    service.execute("data/create", {"collection": "c", "data": {}})
    with client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        socket.send_json(
            {
                "type": "request",
                "id": 1,
                "command": "data/query-open",
                "params": {"collection": "c"},
            }
        )
        cursor = receive(socket, "response")["result"]["queryHandle"]
        socket.send_json({"type": "request", "id": 2, "command": "data/query-next",
                          "params": {"queryHandle": cursor}})  # fmt: skip
        assert receive(socket, "response")["result"]["success"] is True
    deadline = __import__("time").monotonic() + 5
    while (
        service.registry.store.get_cursor(cursor) is not None
        and __import__("time").monotonic() < deadline
    ):
        __import__("time").sleep(0.02)
    assert service.registry.store.get_cursor(cursor) is None
