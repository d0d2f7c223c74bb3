"""Frames and bytes counted where they arrive (server/ws_wire.py, issue 13): control-frame floods
and endless fragmented messages, which never reach the application as messages, pause reading at
the transport and are closed.

Nothing here measures a speed: the tests look at counts (pauses, frames that waited), close codes
and whether an answer came at all, with every wait bounded.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles.server import ws as ws_module
from dbhandles.server import ws_flow, ws_wire
from dbhandles.server.ws_wire import GuardedWebSocketProtocol, HeldTransport, guard_of
from tests.server_helpers import serving, wait_for
from tests.test_ws_flow import connections_of, raw_socket

PING, PONG, TEXT, CONT = 0x9, 0xA, 0x1, 0x0


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked frame (a client's) of any opcode, payload under 126 bytes."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def upgraded(port: int, token: str) -> socket.socket:
    """An upgraded WebSocket whose answer head was read to its end, and no further (so that
    ``read_frames`` starts at a frame)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())  # fmt: skip
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, head
        head += byte
    assert b" 101 " in head.split(b"\r\n")[0]
    return sock


def read_frames(sock: socket.socket) -> list[tuple[int, bytes]]:
    """The server's (unmasked) frames until it closes the connection: (opcode, payload)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    frames = []
    while len(data) >= 2:
        size, start = data[1] & 0x7F, 2
        if size == 126:
            size, start = struct.unpack(">H", data[2:4])[0], 4
        elif size == 127:
            size, start = struct.unpack(">Q", data[2:10])[0], 10
        frames.append((data[0] & 0x0F, data[start : start + size]))
        data = data[start + size :]
    return frames


def close_of(frames: list[tuple[int, bytes]]) -> tuple[int, str]:
    payload = next(payload for opcode, payload in frames if opcode == 0x8)
    return struct.unpack(">H", payload[:2])[0], payload[2:].decode()


def flood(sock: socket.socket, chunk: bytes, stop: threading.Event) -> threading.Thread:
    """Send ``chunk`` again and again from a thread until ``stop`` or the server stops reading."""

    def run() -> None:
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                sock.sendall(chunk)
            except TimeoutError:
                continue  # the server reads nothing now: try again
            except OSError:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    """No frame or byte rate, so a test reaches the bound it looks at quickly."""
    for name in ("WS_FRAMES_PER_SECOND", "WS_FRAME_BURST", "WS_ACTOR_FRAMES_PER_SECOND",
                 "WS_ACTOR_FRAME_BURST", "WS_BYTES_PER_SECOND", "WS_BYTE_BURST",
                 "WS_ACTOR_BYTES_PER_SECOND", "WS_ACTOR_BYTE_BURST"):  # fmt: skip
        monkeypatch.setattr(ws_wire, name, 1e12)


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return False


class FakeGuard:
    def __init__(self) -> None:
        self.taken = 0

    def take_input(self) -> None:
        self.taken += 1


def test_reading_resumes_only_once_every_holder_released_it() -> None:
    transport, guard = FakeTransport(), FakeGuard()
    held = HeldTransport(transport, guard)  # type: ignore[arg-type]
    held.pause_reading()  # uvicorn: a message the application has not taken
    held.hold_reading("rate")
    held.hold_reading("output")
    assert transport.calls == ["pause"]
    held.resume_reading()
    held.release_reading("rate")
    assert transport.calls == ["pause"] and guard.taken == 0
    held.release_reading("output")
    assert transport.calls == ["pause", "resume"]
    assert guard.taken == 1  # what was received and not parsed is parsed first


def test_control_pings_not_read_pause_reading_and_close_with_4000(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pings (answered by the protocol itself, never messages) sent without reading the pongs:
    the pongs fill the transport's write buffer, reading pauses (counted), the gate counts them as
    unread output and closes the socket (4000) once nothing was taken for the stall time."""
    unlimited(monkeypatch)
    monkeypatch.setattr(ws_module, "WS_STALL_SECONDS", 0.5)
    made = connections_of(monkeypatch)
    reasons: list[str] = []
    original = ws_module.Connection._cut_off

    async def recording(self: ws_module.Connection, reason: str = "") -> None:
        reasons.append(reason)
        await original(self, reason)

    monkeypatch.setattr(ws_module.Connection, "_cut_off", recording)
    stop = threading.Event()
    with serving(home, require_token=True) as (service, served):
        token = service.tokens.create("alice")[0]
        sock = raw_socket(served.port, token)
        try:
            sender = flood(sock, frame(PING, b"x" * 125) * 200, stop)
            wait_for(lambda: bool(made), "the connection")
            conn = made[0]
            guard = served.call(lambda: guard_of(conn.gate.transport))
            assert isinstance(guard, GuardedWebSocketProtocol)
            wait_for(lambda: served.call(lambda: guard.output_pauses) >= 1, "reading paused")
            wait_for(lambda: served.call(lambda: conn.overflowed), "the socket closed")
            assert reasons and reasons[0].startswith("not reading")  # the 4000 close's reason
            wait_for(lambda: not served.call(lambda: served.state.connections),
                     "the connection gone")  # fmt: skip
        finally:
            stop.set()
            sock.close()
            sender.join(5)


@pytest.mark.parametrize("opcode", [TEXT, 0x2])
def test_a_message_in_too_many_frames_is_closed_with_1009(
    home: Path, monkeypatch: pytest.MonkeyPatch, opcode: int
) -> None:
    """One message sent as endless 1-byte continuations (text or binary) is closed once it has
    ``WS_MESSAGE_MAX_FRAMES`` frames; its frames are dropped."""
    unlimited(monkeypatch)
    monkeypatch.setattr(ws_wire, "WS_MESSAGE_MAX_FRAMES", 100)
    with serving(home, require_token=True) as (service, served):
        sock = upgraded(served.port, service.tokens.create("alice")[0])
        try:
            sock.sendall(frame(opcode, b"{", fin=False) + frame(CONT, b" ", fin=False) * 300)
            code, reason = close_of(read_frames(sock))
        finally:
            sock.close()
        assert (code, reason) == (1009, "message in more than 100 frames")
        wait_for(lambda: not served.call(lambda: served.state.connections), "the connection gone")


def test_a_message_not_completed_in_time_is_closed_with_1008(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_wire, "WS_MESSAGE_SECONDS", 0.3)
    with serving(home, require_token=True) as (service, served):
        sock = upgraded(served.port, service.tokens.create("alice")[0])
        try:
            sock.sendall(frame(TEXT, b"{", fin=False) + frame(CONT, b" ", fin=False))
            code, reason = close_of(read_frames(sock))
        finally:
            sock.close()
        assert (code, reason) == (1008, "message not completed within 0.3 s")


def test_an_actors_frames_are_read_at_its_rate(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sockets of one actor sending control frames (pings, unsolicited pongs) share one
    bucket of frames: past it, reading pauses (counted) and frames wait for it."""
    unlimited(monkeypatch)
    monkeypatch.setattr(ws_wire, "WS_ACTOR_FRAMES_PER_SECOND", 200.0)
    monkeypatch.setattr(ws_wire, "WS_ACTOR_FRAME_BURST", 20.0)
    made = connections_of(monkeypatch)
    with serving(home, require_token=True) as (service, served):
        token = service.tokens.create("alice")[0]
        socks = [raw_socket(served.port, token) for _ in range(2)]
        try:
            for sock, opcode in zip(socks, (PING, PONG), strict=True):
                sock.sendall(frame(opcode, b"x" * 20) * 300)
            wait_for(lambda: len(made) == 2, "both connections")
            rates = served.call(lambda: dict(served.state.wire_rates))
            assert set(rates) == {"alice"}
            wait_for(lambda: served.call(lambda: rates["alice"].frames.waited) >= 2,
                     "frames waiting for the actor's bucket")  # fmt: skip
            guards = [served.call(lambda c=conn: guard_of(c.gate.transport)) for conn in made]
            assert all(isinstance(guard, GuardedWebSocketProtocol) for guard in guards)
            wait_for(lambda: all(served.call(lambda g=g: g.rate_pauses) >= 1 for g in guards),
                     "each socket paused")  # fmt: skip
        finally:
            for sock in socks:
                sock.close()


def test_an_administrators_socket_has_no_frame_rate(home: Path) -> None:
    made: list[Any] = []
    with serving(home, require_token=True) as (service, served):
        sock = raw_socket(served.port, service.tokens.create("root", admin=True)[0])
        try:
            wait_for(lambda: bool(served.call(lambda: list(served.state.connections))),
                     "the connection")  # fmt: skip
            made.extend(served.call(lambda: list(served.state.connections)))
            guard = served.call(lambda: guard_of(made[0].gate.transport))
            assert guard is not None
            assert (guard.socket_rate, guard.actor_rate) == (None, None)
            assert served.call(lambda: dict(served.state.wire_rates)) == {}
        finally:
            sock.close()


def test_another_actor_is_answered_while_one_floods_control_frames(home: Path) -> None:
    """Alice floods pings on one socket (at the default rates); Bob's request on another socket
    is answered (at all: no time is measured)."""
    stop = threading.Event()
    with serving(home, require_token=True) as (service, served):
        alice = raw_socket(served.port, service.tokens.create("alice")[0])
        sender = flood(alice, frame(PING, b"x" * 125) * 200, stop)
        bob = raw_socket(served.port, service.tokens.create("bob")[0])
        try:
            bob.sendall(frame(TEXT, orjson.dumps({"type": "ping", "id": 7})))
            bob.settimeout(20)
            seen = b""
            while b'"pong"' not in seen:
                chunk = bob.recv(65536)
                assert chunk, "bob's connection closed before the answer"
                seen += chunk
            wait_for(lambda: served.call(lambda: sum(
                getattr(guard_of(c.gate.transport), "rate_pauses", 0)
                for c in served.state.connections)) >= 1, "alice paused")  # fmt: skip
        finally:
            stop.set()
            alice.close()
            bob.close()
            sender.join(5)


def test_the_stall_rule_counts_the_transports_buffer() -> None:
    """A gate told the transport's buffer is over its bound pauses like for its own output."""
    import asyncio

    async def scenario() -> list[int]:
        stalls: list[int] = []
        gate = ws_flow.ReadGate(None, 10, on_stall=lambda: stalls.append(1), stall_seconds=0.01)
        gate.wire_output(True)
        assert gate.closed
        for _ in range(100):
            if stalls:
                break
            await asyncio.sleep(0.01)
        return stalls

    assert asyncio.run(scenario()) == [1]
