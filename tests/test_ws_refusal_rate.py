"""Issue 13: a WebSocket upgrade goes through the same door as a command request. 300 concurrent
``GET /ws?token=dbh_<random 12 hex>_...`` got 3,000-5,700 refusals in 6 s where the address's
bucket allows 60 + 20 a second: each token was checked in a worker thread and the address charged
only after (or not at all, when its count of connections refused it first). Now every upgrade
takes from the bucket before anything is checked (given back once its token checks), a token that
cannot be valid is refused on the event loop (``token_gate``), and the count of connections is
asked only once the token checked.

Real sockets on loopback; the only bound asserted is the bucket's own (burst + rate x elapsed)."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dbhandles.server import public
from tests.server_helpers import connect, serving

CONNECTIONS = 120
BURST = 10
RATE = 1.0
SLACK = 2


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", 0.0)


def upgrade(path: str = "/ws", extra: str = "") -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()  # fmt: skip


def made_up() -> str:
    return f"dbh_{secrets.token_hex(6)}_{secrets.token_urlsafe(30)}"


def status_of(sock: socket.socket) -> int:
    line = sock.makefile("rb").readline()
    assert line, "closed without an answer"
    return int(line.split()[1])


def first_message(sock: socket.socket) -> bytes:
    """What the server sent after its ``101``: headers and the first frame (``hello`` or
    ``error``), read until one of them is seen."""
    data = b""
    while b'"type":"hello"' not in data and b'"type":"error"' not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def flood(port: int, requests: list[bytes]) -> tuple[list[int], float]:
    """Every upgrade of ``requests`` on its own connection, all sent before any answer is read:
    their statuses, and the seconds from the first send to the last answer read."""
    socks: list[socket.socket] = []
    try:
        for _ in requests:
            socks.append(connect(port))
        start = time.monotonic()
        for sock, request in zip(socks, requests, strict=True):
            sock.sendall(request)
        statuses = [status_of(sock) for sock in socks]
        return statuses, time.monotonic() - start
    finally:
        for sock in socks:
            sock.close()


@contextmanager
def counting_threads(served: Any) -> Iterator[list[int]]:
    """The worker-thread runs ``state.run`` made meanwhile (a count in a one-item list)."""
    state = served.state
    runs = [0]
    original = state.run

    async def run(fn: Any, *args: Any, **kwargs: Any) -> Any:
        runs[0] += 1
        return await original(fn, *args, **kwargs)

    served.call(lambda: setattr(state, "run", run))
    try:
        yield runs
    finally:
        served.call(lambda: delattr(state, "run"))


FLOODS = {
    "query-made-up-ids": lambda: upgrade(f"/ws?token={made_up()}"),
    "header-made-up-ids": lambda: upgrade(extra=f"Authorization: Bearer {made_up()}\r\n"),
    "malformed": lambda: upgrade("/ws?token=garbage"),
    "no-token": lambda: upgrade(),
    "two-credentials": lambda: upgrade(f"/ws?token={made_up()}", "Authorization: Bearer x\r\n"),
}


@pytest.mark.parametrize("kind", list(FLOODS))
@pytest.mark.parametrize("per_address", [2, 1000], ids=["connections-full", "connections-free"])
def test_refused_upgrades_stay_within_the_bucket_and_take_no_worker_thread(
    home: Path, no_pause: None, kind: str, per_address: int
) -> None:
    """With a count of connections the address fills (``connections-full``: bob holds its two),
    refusals for that count came uncharged before: they are charged as refusals of the token now."""
    settings = {"public_rate": RATE, "public_burst": BURST,
                "max_connections_per_address": per_address}  # fmt: skip
    with serving(home, require_token=True, **settings) as (svc, served):
        bob = svc.tokens.create("bob")[0]
        held = [connect(served.port) for _ in range(min(per_address, 2))]
        try:
            for sock in held:
                sock.sendall(upgrade(extra=f"Authorization: Bearer {bob}\r\n"))
                assert b'"type":"hello"' in first_message(sock)
            with counting_threads(served) as runs:
                statuses, elapsed = flood(served.port, [FLOODS[kind]() for _ in range(CONNECTIONS)])
                # 101: accepted, then closed at once with the token's refusal (1008); 429: the rate's.
                assert set(statuses) <= {101, 429}, statuses
                at_once = statuses.count(101)
                assert at_once <= BURST + RATE * elapsed + SLACK, (at_once, elapsed)
                assert statuses.count(429) >= CONNECTIONS - BURST - RATE * elapsed - SLACK
                gate = served.call(lambda: served.state.token_gate)
                # The store's tokens read a few times at most; no check of a refused token.
                assert runs[0] <= 1 + (elapsed + 1) / 0.05, runs[0]
                assert runs[0] <= gate.readings + SLACK, (runs[0], gate.readings)
        finally:
            for sock in held:
                sock.close()


def test_a_valid_token_still_upgrades_past_the_rate_and_is_not_charged(
    home: Path, no_pause: None
) -> None:
    with serving(home, require_token=True, public_rate=RATE, public_burst=BURST) as (svc, served):
        bob = svc.tokens.create("bob")[0]
        statuses, _ = flood(served.port, [upgrade(f"/ws?token={made_up()}")] * 60)
        assert statuses.count(429) >= 60 - BURST - SLACK - RATE * 30
        assert flood(served.port, [upgrade()])[0] == [429]  # the address is past its rate
        for request in (upgrade(f"/ws?token={bob}"),
                        upgrade(extra=f"Authorization: Bearer {bob}\r\n")):  # fmt: skip
            sock = connect(served.port)
            try:
                sock.sendall(request)
                assert b'"type":"hello"' in first_message(sock)
            finally:
                sock.close()


def test_valid_upgrades_give_back_what_they_took(home: Path, no_pause: None) -> None:
    """Bob's upgrades (more than the burst, all at once) are never charged: the whole burst is
    left for refusals afterwards."""
    settings = {"public_rate": RATE, "public_burst": BURST, "max_sockets_per_actor": 100,
                "max_connections_per_address": 100}  # fmt: skip
    with serving(home, require_token=True, **settings) as (svc, served):
        bob = svc.tokens.create("bob")[0]
        socks = [connect(served.port) for _ in range(3 * BURST)]
        try:
            for sock in socks:
                sock.sendall(upgrade(f"/ws?token={bob}"))
            assert all(b'"type":"hello"' in first_message(sock) for sock in socks)
        finally:
            for sock in socks:
                sock.close()
        statuses, elapsed = flood(served.port, [upgrade()] * (BURST + 5))
        assert statuses.count(101) >= BURST, statuses  # refused at once: the burst was left
        assert statuses.count(101) <= BURST + RATE * elapsed + SLACK


def test_a_refused_upgrade_says_why(home: Path) -> None:
    """Within the rate, each refusal is still told (an ``error`` after the ``101``, close 1008):
    a token that cannot be one, no token, two credentials."""
    with serving(home, require_token=True) as (_svc, served):
        for request, words in [(upgrade(f"/ws?token={made_up()}"), b"the token is not valid"),
                               (upgrade(), b"this server requires a token"),
                               (upgrade("/ws?token=a", "Authorization: Bearer b\r\n"),
                                b"more than one credential")]:  # fmt: skip
            sock = connect(served.port)
            try:
                sock.sendall(request)
                answer = first_message(sock)
                assert answer.startswith(b"HTTP/1.1 101"), answer
                assert b'"code":"unauthorized"' in answer and words in answer, answer
            finally:
                sock.close()
