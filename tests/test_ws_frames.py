"""An event is encoded once for every socket with the same view of it, and written to each as one
ready-made frame (server/ws_frames.py, issue 13); the delivery rules stay: who may see the event,
which patterns it names, its order, and a subscriber that does not read is cut with 4000.

Nothing here measures a speed: the tests look at which frame objects were queued, how they were
written (counts) and what each client received.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from dbhandles import Service
from dbhandles.server import ws as ws_module
from dbhandles.server.ws_frames import EventFrame, text_frame
from tests.server_helpers import serving, wait_for
from tests.servers import app_client
from tests.test_ws_flow import connections_of, raw_socket


@pytest.mark.parametrize("size", [0, 125, 126, 65_535, 65_536, 300_000])
def test_text_frame_is_the_frame_the_websocket_library_sends(size: int) -> None:
    data = b"x" * size
    assert text_frame(data) == Frame(Opcode.TEXT, data).serialize(mask=False, extensions=[])
    frame = EventFrame(data)
    assert (len(frame), frame.wire, frame.text) == (size, text_frame(data), data.decode())
    assert frame.wire is frame.wire  # built once, shared


def queued_frames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[ws_module.Connection, Any]]:
    """Every (connection, frame) the fan-out hands to a connection's outbox."""
    seen: list[tuple[ws_module.Connection, Any]] = []
    original = ws_module.Connection.queue_event

    def record(self: ws_module.Connection, frame: EventFrame) -> None:
        seen.append((self, frame))
        original(self, frame)

    monkeypatch.setattr(ws_module.Connection, "queue_event", record)
    return seen


def subscribed(
    stack: contextlib.ExitStack, port: int, token: str, *patterns: str
) -> ClientConnection:
    """A socket (closed with ``stack``) subscribed to ``patterns``."""
    socket = stack.enter_context(connect(
        f"ws://127.0.0.1:{port}/ws", additional_headers={"Authorization": f"Bearer {token}"},
        max_size=None, open_timeout=20))  # fmt: skip
    assert orjson.loads(socket.recv(timeout=20))["type"] == "hello"
    for i, pattern in enumerate(patterns):
        socket.send(orjson.dumps({"type": "subscribe", "id": i, "pattern": pattern}).decode())
        assert orjson.loads(socket.recv(timeout=20))["type"] == "subscribed"
    return socket


def events_then_pong(socket: ClientConnection) -> list[str | bytes]:
    """What the socket receives before the answer to a ping sent once the events were written."""
    socket.send(orjson.dumps({"type": "ping", "id": "end"}).decode())
    got = []
    while orjson.loads(message := socket.recv(timeout=20))["type"] != "pong":
        got.append(message)
    return got


def test_one_frame_per_view_of_an_event_written_raw(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice writes 3 records through her isolated handle. Her two sockets with the same pattern get
    the same frame object (one encoding) and the same bytes; the administrator's socket, with one
    more pattern, gets a frame of its own naming both; Bob, who may not read the handle, gets
    nothing. Every event goes out raw (one write of the ready-made frame), in order."""
    made = connections_of(monkeypatch)
    queued = queued_frames(monkeypatch)
    with serving(home, require_token=True) as (service, served), contextlib.ExitStack() as stack:
        alice, bob = service.tokens.create("alice")[0], service.tokens.create("bob")[0]
        admin = service.tokens.create("root", admin=True)[0]

        def call(token: str, name: str, **params: Any) -> Any:
            answer = httpx.post(f"{served.url}/commands/{name}", json=params, timeout=20,
                                headers={"Authorization": f"Bearer {token}"}).json()  # fmt: skip
            assert answer["success"] is True, answer
            return answer

        handle = call(alice, "data/open", adapter="sqlite", preset="PERSONA_KNOWLEDGE",
                      config={"path": "private.sqlite", "mode": "create"})["dbHandle"]  # fmt: skip
        sockets = {
            "alice 1": subscribed(stack, served.port, alice, "data:*"),
            "alice 2": subscribed(stack, served.port, alice, "data:*"),
            "admin": subscribed(stack, served.port, admin, "data:*", "data:notes:*"),
            "bob": subscribed(stack, served.port, bob, "data:*"),
        }
        for i in range(3):
            call(alice, "data/create", dbHandle=handle, collection="notes", id=f"n{i}",
                 data={"text": "é" * 70_000})  # fmt: skip
        wait_for(lambda: served.call(lambda: len(queued)) == 9, "9 events queued")
        got = {name: [orjson.loads(m) for m in events_then_pong(s)] for name, s in sockets.items()}
        assert [e["payload"]["id"] for e in got["alice 1"]] == ["n0", "n1", "n2"]
        assert got["alice 1"] == got["alice 2"]
        assert [e["patterns"] for e in got["admin"]] == [["data:*", "data:notes:*"]] * 3
        assert [e["payload"] for e in got["admin"]] == [e["payload"] for e in got["alice 1"]]
        assert got["bob"] == []
        by_actor: dict[str, list[tuple[ws_module.Connection, Any]]] = {}
        for conn, frame in queued:
            by_actor.setdefault(conn.context.actor, []).append((conn, frame))
        assert sorted(by_actor) == ["alice", "root"]
        alices = by_actor["alice"]
        assert len({id(conn) for conn, _ in alices}) == 2
        for n in range(3):  # per event: one frame shared by Alice's sockets, another for the admin
            first, second = (frame for _, frame in alices[2 * n : 2 * n + 2])
            assert first is second
            assert by_actor["root"][n][1] is not first
        writes = served.call(lambda: [(c.frames.raw_writes, c.frames.text_writes) for c in made])
        assert sorted(writes) == [(0, 0), (3, 0), (3, 0), (3, 0)]


def test_events_go_through_send_text_without_a_raw_transport(service: Service) -> None:
    """The in-process client has no uvicorn transport: the same frame's text is sent."""
    made: list[ws_module.Connection] = []
    with app_client(service) as client, client.websocket_connect("/ws") as socket:
        assert socket.receive_json()["type"] == "hello"
        made.extend(client.app.state.dbhandles.connections)
        socket.send_json({"type": "subscribe", "id": 1, "pattern": "data:c:*"})
        assert socket.receive_json()["type"] == "subscribed"
        service.execute("data/create", {"collection": "c", "id": "r1", "data": {}})
        event = socket.receive_json()
        assert (event["type"], event["payload"]["id"]) == ("event", "r1")
    assert [(c.frames.raw_writes, c.frames.text_writes) for c in made] == [(0, 1)]


def test_a_subscriber_that_does_not_read_raw_frames_is_cut_with_4000(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events written raw fill the transport's buffer of a client that reads nothing: later events
    are dropped (counted), and once nothing was taken for ``WS_STALL_SECONDS`` the socket is
    cut off (``overflow``: closed with 4000), as for answers not read."""
    monkeypatch.setattr(ws_module, "WS_STALL_SECONDS", 0.3)
    made = connections_of(monkeypatch)
    with serving(home, require_token=True) as (service, served):
        sock = raw_socket(served.port, service.tokens.create("alice")[0])
        try:
            subscribe = orjson.dumps({"type": "subscribe", "id": 1, "pattern": "data:big:*"})
            sock.sendall(bytes((0x81, 0x80 | len(subscribe))) + b"\x00" * 4 + subscribe)
            wait_for(lambda: bool(made) and served.call(lambda: bool(made[0].subscriptions)),
                     "the subscription")  # fmt: skip
            conn = made[0]
            for i in range(40):
                service.execute("data/create", {"collection": "big", "id": f"r{i}",
                                                "data": {"text": "x" * 200_000}})  # fmt: skip
            wait_for(lambda: served.call(lambda: conn.overflowed), "the socket cut off")
            assert served.call(lambda: conn.frames.raw_writes) >= 1
            assert served.call(lambda: conn.dropped) >= 1
            assert served.call(lambda: conn.queued_bytes) == 0  # what it held is dropped
            wait_for(lambda: not served.call(lambda: served.state.connections),
                     "the connection gone")  # fmt: skip
        finally:
            sock.close()
