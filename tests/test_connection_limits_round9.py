"""Server fairness (issue 13, round 9 outside findings): what an anonymous client holds of the
connection limits. A body still arriving without a token holds only its connection (closable to make
room), never one of its address's requests in progress; at the global limit a newcomer closes the
oldest connection that runs nothing, idle or with a head or a body still arriving; a connection closed
in its refusal's pause still reads its refusal.

Real sockets on loopback, limits made small through settings; every wait is bounded, and nothing
asserts a speed.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, cast

import orjson

from dbhandles.server.addresses import LOOPBACK
from dbhandles.server.connection_counts import Wire
from dbhandles.settings import Settings
from tests.server_helpers import (
    Served,
    closed_by_server,
    connect,
    health_from,
    post,
    read_answer,
    serving,
    untrusted,
    wait_for,
)

#: Source addresses a flood rotates through (one client address: all of loopback is one).
ROTATING = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
#: A data/list body padded to this many bytes (under ``LARGE_BODY``: read without a token first).
BODY_BYTES = 60_000
BODY = b'{"collection": "c"}'.ljust(BODY_BYTES)


def trickle(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A connection whose data/list request (no token) sends its head and the first byte of its
    body, then nothing."""
    sock = connect(port, source)
    sock.sendall(
        b"POST /commands/data/list HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % BODY_BYTES + BODY[:1]
    )
    return sock


def half_head(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = connect(port, source)
    sock.sendall(b"GET /health HTTP/1.1\r\n")
    return sock


def bodies_arriving(served: Served) -> int:
    """Connections from loopback whose request head was read and whose body is still arriving."""

    def count() -> int:
        held = served.state.wire._untrusted.get(LOOPBACK, {})
        return sum(1 for h in held.values() if getattr(h, "cycle", None) is not None)

    return int(served.call(count))


def in_progress(served: Served) -> int:
    """Loopback's requests in progress (``ServerState.addresses``), read on the event loop."""
    return int(served.call(lambda: served.state.addresses[LOOPBACK]))


def refusal(sock: socket.socket) -> tuple[int, str, str]:
    status, _, body = read_answer(sock)
    answer = orjson.loads(body)
    return status, answer["code"], answer["error"]


# -- finding 2: bodies trickling without a token hold no request in progress -----------------------


def test_bodies_trickling_without_a_token_never_hold_a_request_in_progress(home: Path) -> None:
    """400 connections trickling bodies without a token held loopback's 256 requests in progress:
    bob's valid token got 429 "already has 256 requests in progress". Such a request now holds
    only its connection; it is counted once its body arrived, and nothing of it is lost."""
    settings: dict[str, Any] = {
        "max_connections_per_address": 4, "public_rate": 0.0,
        "header_timeout_seconds": 60.0, "body_timeout_seconds": 60.0,
    }  # fmt: skip
    with serving(home, **settings) as (service, served):
        bob, _ = service.tokens.create("bob")
        tricklers = [trickle(served.port) for _ in range(4)]
        wait_for(lambda: bodies_arriving(served) == 4, "4 bodies arriving")
        served.call(lambda: None)  # the requests' tasks took their first step
        assert in_progress(served) == 0
        mine = connect(served.port)
        mine.sendall(post("data/list", {"collection": "c"}, bob))
        status, _, body = read_answer(mine)
        assert status == 200, body
        # Its connection made room: the oldest trickle was closed, saying why; nothing of it ran.
        status, code, error = refusal(tricklers[0])
        assert (status, code) == (429, "too_many_requests")
        assert "DBHANDLES_MAX_CONNECTIONS_PER_ADDRESS" in error and "nothing of it ran" in error
        # The others' bodies arrive: each is counted then, and runs.
        for sock in tricklers[1:]:
            sock.sendall(BODY[1:])
            assert read_answer(sock)[0] == 200
        wait_for(lambda: in_progress(served) == 0, "every request done")
        for sock in (mine, *tricklers):
            sock.close()


class _Conn:
    """A connection ``Wire`` counts, with nothing running."""

    def evictable(self) -> bool:
        return True

    def evict(self, refusal: bytes) -> None:
        raise AssertionError("not closed here")

    def evict_after_answer(self) -> None:
        raise AssertionError("not closed here")


def test_only_a_counted_connection_that_has_not_authenticated_defers_its_count() -> None:
    """``Wire.closable``: a connection ``Wire`` counts and may close to make room. Under another
    server (an unknown transport, or none) nothing can close a trickle, so its request is counted
    from its head as before (tests/test_fairness.py, under plain uvicorn); once its connection
    authenticated, it is no longer closable either (an actor's own connections are bounded)."""
    wire = Wire(Settings(max_connections_per_address=4))
    conn = _Conn()
    transport = cast(asyncio.Transport, conn)
    assert not wire.closable(None) and not wire.closable(transport)
    assert wire.admit(LOOPBACK, 0, transport, conn) is None
    assert wire.closable(transport)
    wire.trust(transport, "bob", admin=False)
    assert not wire.closable(transport)
    wire.release(transport)
    assert not wire.closable(transport)


# -- finding 1: at the global limit, anything that runs nothing makes room ------------------------


def test_at_the_global_limit_idle_heads_and_bodies_arriving_make_room_for_a_token_and_health(
    home: Path,
) -> None:
    """Connections from rotating loopback addresses fill ``max_connections`` (the per-address
    limit far above): idle ones, ones whose head is arriving, ones whose body is. A token request,
    /health and another token request each close the oldest of them (503, naming the limit);
    the rest are left alone, and a body that then arrives in full runs."""
    settings: dict[str, Any] = {
        "max_connections": 6, "max_connections_per_address": 100, "public_rate": 0.0,
        "header_timeout_seconds": 60.0, "body_timeout_seconds": 60.0,
    }  # fmt: skip
    with serving(home, **settings) as (service, served):
        bob, _ = service.tokens.create("bob")
        idle = [connect(served.port, ROTATING[i]) for i in range(2)]
        heads = [half_head(served.port, ROTATING[2 + i]) for i in range(2)]
        wait_for(lambda: untrusted(served) == 4, "4 connections")
        bodies = [trickle(served.port, ROTATING[i]) for i in range(2)]
        wait_for(lambda: untrusted(served) == 6, "the server is full")
        wait_for(lambda: bodies_arriving(served) == 2, "2 bodies arriving")
        mine = connect(served.port)
        mine.sendall(post("data/list", {"collection": "c"}, bob))
        assert read_answer(mine)[0] == 200
        assert health_from(served.url, "127.0.0.1").status_code == 200
        # /health's connection closed: the flood takes its place back, and the server is full.
        idle.append(connect(served.port, ROTATING[0]))
        wait_for(lambda: untrusted(served) == 5, "full again (bob's own connection the sixth)")
        again = connect(served.port, ROTATING[3])
        again.sendall(post("data/count", {"collection": "c"}, bob))
        assert read_answer(again)[0] == 200
        for sock in (idle[0], idle[1], heads[0]):  # the oldest three, one per newcomer
            status, code, error = refusal(sock)
            assert (status, code) == (503, "server_unreachable")
            assert "DBHANDLES_MAX_CONNECTIONS" in error and "nothing of it ran" in error
            assert closed_by_server(sock)
        bodies[0].sendall(BODY[1:])
        assert read_answer(bodies[0])[0] == 200
        for sock in (mine, again, *idle, *heads, *bodies):
            sock.close()


# -- a connection closed in its refusal's pause still reads the refusal -----------------------------


def test_a_connection_closed_to_make_room_in_its_refusal_pause_still_reads_its_refusal(
    home: Path,
) -> None:
    """A request past the address's rate waits out its refusal's pause, its body unread, and may be
    closed to make room meanwhile. It was closed at once with no answer (the connection taken for
    one whose body was cut: 11,660 bare closes in 20 s of a flood); it now reads its 429."""
    settings: dict[str, Any] = {
        "max_connections_per_address": 2, "public_rate": 0.1, "public_burst": 1,
        "header_timeout_seconds": 60.0, "body_timeout_seconds": 60.0,
    }  # fmt: skip
    with serving(home, require_token=True, **settings) as (_service, served):
        first = connect(served.port)  # refused without a token: charged the burst's one request
        first.sendall(post("data/list", {"collection": "c"}))
        assert read_answer(first)[0] == 401
        first.close()
        wait_for(lambda: untrusted(served) == 0, "the first connection gone")
        paused = trickle(served.port)
        wait_for(lambda: served.call(lambda: len(served.state.wire.refusing)) == 1, "its pause")
        idle = connect(served.port)
        wait_for(lambda: untrusted(served) == 2, "the address at its limit")
        newcomer = connect(served.port)  # closes the oldest: the one in its pause
        status, code, error = refusal(paused)
        assert (status, code) == (429, "too_many_requests"), error
        assert closed_by_server(paused)
        for sock in (paused, idle, newcomer):
            sock.close()
