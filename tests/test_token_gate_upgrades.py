"""Issue 13: a WebSocket upgrade past its address's rate of refusals whose credential cannot be valid
is refused by the HTTP protocol (``connections.Upgrade``, ``ws_serve.early_refusal``), before the
WebSocket handshake and the app: taken through both, each refusal cost the loop about 1.4 ms and a
flood of 300 connections of made-up tokens made another actor's reads 5.4 times slower (p99).

Real sockets on loopback. What is counted is whether the WebSocket protocol was made for a
connection (``GuardedWebSocketProtocol.connection_made``), never a time."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from dbhandles.server import public
from dbhandles.server.token_gate import OWNER_FRESH_SECONDS, READ_SPACING_SECONDS, TokenGate
from dbhandles.server.ws_wire import GuardedWebSocketProtocol
from dbhandles.service import Service
from dbhandles.settings import Settings
from tests.server_helpers import connect, post, read_answer, serving
from tests.test_ws_refusal_rate import first_message, made_up, upgrade

BURST = 3
#: The least rate the settings take: the bucket does not refill within a test.
RATE = 0.1


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", 0.0)


@pytest.fixture
def handshakes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many connections the WebSocket protocol took (a count in a one-item list)."""
    made = [0]
    original = GuardedWebSocketProtocol.connection_made

    def counted(self: Any, transport: Any) -> None:
        made[0] += 1
        original(self, transport)

    monkeypatch.setattr(GuardedWebSocketProtocol, "connection_made", counted)
    return made


def answer_of(sock: socket.socket) -> bytes:
    """Everything the server sent before it closed the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def send_one(port: int, request: bytes) -> bytes:
    sock = connect(port)
    try:
        sock.sendall(request)
        return answer_of(sock)
    finally:
        sock.close()


def use_up_the_burst(port: int) -> None:
    """Requests without a token, refused at once (401) and charged, until the bucket is empty."""
    sock = connect(port)
    try:
        for _ in range(BURST):
            sock.sendall(post("data/list", {}))
            assert read_answer(sock)[0] == 401
    finally:
        sock.close()


def refused_kinds(known_id: str) -> dict[str, bytes]:
    return {
        "header-made-up-id": upgrade(extra=f"Authorization: Bearer {made_up()}\r\n"),
        "query-made-up-id": upgrade(f"/ws?token={made_up()}"),
        "malformed": upgrade("/ws?token=garbage"),
        "no-token": upgrade(),
        "two-credentials": upgrade(f"/ws?token={made_up()}", "Authorization: Bearer x\r\n"),
        "known-id-wrong-secret": upgrade(f"/ws?token=dbh_{known_id}_{'w' * 43}"),
    }


def test_refused_past_the_rate_before_the_websocket_protocol_with_a_closing_429(
    home: Path, no_pause: None, handshakes: list[int]
) -> None:
    with serving(home, require_token=True, public_rate=RATE, public_burst=BURST) as (svc, served):
        known_id = svc.tokens.create("bob")[0].split("_")[1]
        use_up_the_burst(served.port)
        before = handshakes[0]
        for kind, request in refused_kinds(known_id).items():
            answer = send_one(served.port, request)  # read until the server closed it
            head = answer.split(b"\r\n\r\n", 1)[0].lower()
            assert head.startswith(b"http/1.1 429"), (kind, answer)
            assert b"connection: close" in head and b"retry-after:" in head, (kind, head)
            assert b'"code":"too_many_requests"' in answer, (kind, answer)
        assert handshakes[0] == before, "a refused upgrade reached the WebSocket protocol"


def test_a_token_made_after_the_gates_last_reading_still_upgrades_past_the_rate(
    home: Path, no_pause: None, handshakes: list[int]
) -> None:
    """The gate reads the store during the flood; carol's token is made after (by the service,
    as another process would: the gate is not told) and must never be refused for the rate."""
    with serving(home, require_token=True, public_rate=RATE, public_burst=BURST) as (svc, served):
        use_up_the_burst(served.port)
        for _ in range(5):
            assert send_one(served.port, upgrade(f"/ws?token={made_up()}")).startswith(
                b"HTTP/1.1 429"
            )
        carol = svc.tokens.create("carol")[0]
        for request in (upgrade(f"/ws?token={carol}"),
                        upgrade(extra=f"Authorization: Bearer {carol}\r\n")):  # fmt: skip
            sock = connect(served.port)
            try:
                sock.sendall(request)
                assert b'"type":"hello"' in first_message(sock)
            finally:
                sock.close()


def test_a_store_that_cannot_be_read_leaves_the_upgrade_to_the_full_check(
    home: Path, no_pause: None, handshakes: list[int]
) -> None:
    with serving(home, require_token=True, public_rate=RATE, public_burst=BURST) as (_, served):
        use_up_the_burst(served.port)
        gate = served.call(lambda: served.state.token_gate)

        async def broken() -> list[Any]:
            raise OSError("the store cannot be read")

        served.call(lambda: setattr(gate, "read", broken))
        before = handshakes[0]
        answer = send_one(served.port, upgrade(f"/ws?token={made_up()}"))
        assert answer.startswith(b"HTTP/1.1 429"), answer  # refused by the app, as before
        assert handshakes[0] == before + 1


def test_the_gates_verdict_without_waiting_and_after_a_reading(home: Path) -> None:
    service = Service(settings=Settings(home=home))
    try:
        bob = service.tokens.create("bob")[0]
        failing = [False]

        async def read() -> Any:
            if failing[0]:
                raise OSError("the store cannot be read")
            return await asyncio.to_thread(service.tokens.list)

        gate = TokenGate(read)

        async def after(authorization: str) -> bool:
            told: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            gate.after_reading(authorization, told.set_result)
            return await told

        async def run() -> None:
            assert gate.verdict(f"Bearer {bob}") is None  # nothing read yet
            assert gate.verdict("Bearer garbage") is False
            assert await after(f"Bearer {bob}") is True
            assert gate.verdict(f"Bearer {bob}") is True
            assert gate.verdict(f"Bearer dbh_{bob.split('_')[1]}_{'w' * 43}") is False
            made = f"Bearer {made_up()}"
            assert gate.verdict(made) is None
            assert await after(made) is False  # no token has its id after a reading since
            carol = service.tokens.create("carol")[0]
            assert await after(f"Bearer {carol}") is True  # made after the last reading
            failing[0] = True
            assert await after(f"Bearer {made_up()}") is True  # the full check decides

        asyncio.run(run())
    finally:
        service.close()


def test_the_gate_names_no_owner_for_a_token_expired_or_revoked_since(home: Path) -> None:
    """``current_owner`` (who a request is counted as before its body: an administrator's is
    trusted) answers from a reading at most ``OWNER_FRESH_SECONDS`` old and never for a token past
    its ``expires_at``. The gate's clocks are the test's own: nothing waits."""
    service = Service(settings=Settings(home=home))
    try:
        root = service.tokens.create("root", admin=True)[0]
        alice, alice_row = service.tokens.create("alice", expires="1h")
        assert alice_row.expires_at is not None
        ticks = [0.0]
        now = ["2000-01-01T00:00:00.000Z"]

        async def read() -> Any:
            return await asyncio.to_thread(service.tokens.list)

        gate = TokenGate(read, clock=lambda: ticks[0], now=lambda: now[0])

        async def run() -> None:
            assert await gate.current_owner(f"Bearer {root}") == ("root", True)
            assert await gate.current_owner(f"Bearer {alice}") == ("alice", False)
            now[0] = "9999-01-01T00:00:00.000Z"  # past alice's expiry: she is no one now
            assert gate.verdict(f"Bearer {alice}") is False
            assert await gate.current_owner(f"Bearer {alice}") is None
            service.tokens.revoke(root)
            readings = gate.readings
            assert await gate.current_owner(f"Bearer {root}") == ("root", True)  # same reading
            assert gate.readings == readings
            ticks[0] += OWNER_FRESH_SECONDS + READ_SPACING_SECONDS + 0.01  # the reading is stale
            assert await gate.current_owner(f"Bearer {root}") is None
            assert gate.readings == readings + 1

        asyncio.run(run())
    finally:
        service.close()
