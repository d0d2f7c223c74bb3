"""How much of a WebSocket's input the server takes (server/ws_flow.py, issue 13): reading paused at
the transport while the client does not read or too many of its requests are unanswered, a socket
that stays stalled closed with 4000, and one actor's messages read at a bounded rate.

Nothing here measures a speed: the tests look at the mechanisms (a transport paused, a count of
messages that waited, a close code), with every wait bounded.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles.server import ws as ws_module
from dbhandles.server import ws_flow
from dbhandles.server.ws_flow import MessageRate, ReadGate
from tests.server_helpers import serving, wait_for


class FakeTransport:
    """What the gate calls on a transport, recorded; ``read_paused`` as uvicorn's protocol has it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.read_paused = False
        self.closing = False

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return self.closing

    def get_protocol(self) -> Any:
        return self


def test_gate_pauses_the_transport_over_the_output_bound_and_resumes_below() -> None:
    async def scenario() -> FakeTransport:
        transport = FakeTransport()
        gate = ReadGate(transport, 100)
        gate.output(101)
        assert gate.closed and transport.calls == ["pause"]
        gate.output(150)  # still over: paused once
        waiter = asyncio.ensure_future(gate.wait())
        await asyncio.sleep(0)
        assert not waiter.done()
        gate.output(100, taken=True)
        await asyncio.sleep(0)
        assert waiter.done() and not gate.closed
        assert transport.calls == ["pause", "resume"]
        return transport

    asyncio.run(scenario())


def test_gate_counts_unanswered_requests() -> None:
    async def scenario() -> None:
        transport = FakeTransport()
        gate = ReadGate(transport, 100, max_unanswered=3)
        gate.requests(+2)
        assert not gate.closed
        gate.requests(+1)
        assert gate.closed and transport.calls == ["pause"]
        gate.requests(-1)
        assert not gate.closed and transport.calls == ["pause", "resume"]

    asyncio.run(scenario())


def test_gate_leaves_resuming_to_uvicorn_while_its_queue_holds_messages() -> None:
    async def scenario() -> None:
        transport = FakeTransport()
        gate = ReadGate(transport, 10)
        gate.output(11)
        transport.read_paused = True  # uvicorn resumes once the application took its messages
        gate.output(0)
        assert transport.calls == ["pause"]

    asyncio.run(scenario())


def test_an_ended_gate_never_waits_and_keeps_the_transport_paused() -> None:
    async def scenario() -> None:
        transport = FakeTransport()
        gate = ReadGate(transport, 10)
        gate.output(11)
        gate.end()
        gate.output(10**9)
        assert not gate.closed
        assert transport.calls == ["pause"]  # a socket being cut off reads nothing more

    asyncio.run(scenario())


def test_a_gate_stalled_on_unread_output_calls_on_stall_once() -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        stalls: list[int] = []
        gate = ReadGate(FakeTransport(), 10, on_stall=lambda: stalls.append(1), stall_seconds=0.01)
        gate.output(11)
        for _ in range(100):
            if stalls:
                break
            await asyncio.sleep(0.01)
        # A gate whose output went below the bound again never stalls.
        calm: list[int] = []
        other = ReadGate(FakeTransport(), 10, on_stall=lambda: calm.append(1), stall_seconds=0.01)
        other.output(11)
        other.output(5, taken=True)
        await asyncio.sleep(0.05)
        return stalls, calm

    stalls, calm = asyncio.run(scenario())
    assert stalls == [1]
    assert calm == []


def test_message_rate_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    rate = MessageRate(rate=100.0, burst=10.0, clock=lambda: now[0])
    assert [rate.take() for _ in range(10)] == [0.0] * 10
    assert rate.take() == pytest.approx(0.01)
    assert rate.waited == 1
    now[0] += 1.0  # a second later: the bucket is full again, never fuller
    assert [rate.take() for _ in range(10)] == [0.0] * 10
    assert rate.take() > 0


# -- on a real server --------------------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    """One masked text frame (a client's)."""
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([0x81]) + (
        bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack(">H", size)
    )
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def raw_socket(port: int, token: str) -> socket.socket:
    """An upgraded WebSocket that reads nothing (a small receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())  # fmt: skip
    assert b" 101 " in sock.recv(200).split(b"\r\n")[0]
    return sock


def connections_of(monkeypatch: pytest.MonkeyPatch) -> list[ws_module.Connection]:
    made: list[ws_module.Connection] = []
    original = ws_module.Connection.__init__

    def record(self: ws_module.Connection, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(ws_module.Connection, "__init__", record)
    return made


def test_a_ping_flood_is_read_at_the_actors_rate(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An actor's sockets sending pings as fast as they can (never reading the pongs) are read at
    most at ``WS_MESSAGES_PER_SECOND``: past the burst, messages wait for the bucket (counted),
    with the transport paused meanwhile."""
    monkeypatch.setattr(ws_flow, "WS_MESSAGES_PER_SECOND", 200.0)
    monkeypatch.setattr(ws_flow, "WS_MESSAGE_BURST", 20.0)
    made = connections_of(monkeypatch)
    with serving(home, require_token=True) as (service, served):
        token = service.tokens.create("alice")[0]
        socks = [raw_socket(served.port, token) for _ in range(2)]
        try:
            pings = b"".join(frame(orjson.dumps({"type": "ping", "id": i})) for i in range(300))
            for sock in socks:
                sock.sendall(pings)
            wait_for(lambda: len(made) == 2, "both connections")
            rates = served.call(lambda: dict(served.state.message_rates))
            assert set(rates) == {"alice"}  # one bucket for the actor's two sockets
            wait_for(lambda: served.call(lambda: rates["alice"].waited) > 100,
                     "messages waiting for the actor's bucket")  # fmt: skip
            assert any(conn.gate.pauses for conn in made)
        finally:
            for sock in socks:
                sock.close()


def test_a_socket_that_stays_stalled_is_closed_with_4000(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests for large answers, none read, an outbox that would hold them all: reading pauses,
    and once no answer was taken for ``WS_STALL_SECONDS`` the socket is closed (4000) and what it
    held is dropped; its work queued but not started is not run."""
    monkeypatch.setattr(ws_module, "WS_STALL_SECONDS", 0.3)
    made = connections_of(monkeypatch)
    with serving(home, require_token=True, ws_outbox_bytes=1 << 30) as (service, served):
        for i in range(4):
            service.execute("data/create", {"collection": "big", "id": f"r{i}",
                                            "data": {"text": "x" * 250_000}})  # fmt: skip
        token = service.tokens.create("alice")[0]
        sock = raw_socket(served.port, token)
        try:
            sock.sendall(b"".join(frame(orjson.dumps({"type": "request", "id": i, "command": "data/list",
                                                      "params": {"collection": "big"}}))
                                  for i in range(50)))  # fmt: skip
            wait_for(lambda: bool(made), "the connection")
            conn = made[0]
            wait_for(lambda: served.call(lambda: conn.overflowed), "the stalled socket closed")
            assert served.call(lambda: conn.queued_bytes) == 0
            assert served.call(lambda: conn.gate.paused_transport)
            # Reading was paused before all 50 were read: at most the unanswered bound ran.
            assert served.call(lambda: conn.gate.unanswered) <= ws_flow.MAX_REQUESTS_IN_FLIGHT
            wait_for(lambda: not served.call(lambda: served.state.connections),
                     "the connection gone")  # fmt: skip
            assert served.call(lambda: "alice" in served.state.cooling)
        finally:
            sock.close()


def test_what_a_client_that_left_had_sent_is_not_run(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pings flooded at a slow rate, then the client goes away: the server stops taking the
    messages uvicorn had parsed already (they would be run for nobody, at the actor's rate) and
    the connection ends; the count of messages handled stays far below the count sent."""
    monkeypatch.setattr(ws_flow, "WS_MESSAGES_PER_SECOND", 100.0)
    monkeypatch.setattr(ws_flow, "WS_MESSAGE_BURST", 20.0)
    made = connections_of(monkeypatch)
    handled: list[int] = []
    original = ws_module.Connection.handle

    async def counting(self: ws_module.Connection, raw: str | bytes) -> None:
        handled.append(1)
        await original(self, raw)

    monkeypatch.setattr(ws_module.Connection, "handle", counting)
    with serving(home, require_token=True) as (service, served):
        token = service.tokens.create("alice")[0]
        sock = raw_socket(served.port, token)
        sock.sendall(b"".join(frame(orjson.dumps({"type": "ping", "id": i})) for i in range(3000)))
        wait_for(lambda: bool(made) and len(handled) > 20, "the first pings handled")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset: the client is gone
        wait_for(lambda: not served.call(lambda: served.state.connections), "the connection gone")
        assert len(handled) < 1000
