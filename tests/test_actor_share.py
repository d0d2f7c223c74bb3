"""One actor's share of requests in progress (issue 13): a request whose token is known from its
headers counts in its actor's ``max_requests_per_actor`` (its body still arriving included), never
against its address, so alice's slow bodies or flood on loopback refuse only alice: never bob, the
administrator, ``/health`` or the dashboard.

Every server is ``server_config`` (what ``jtag serve`` runs) on loopback in a thread; every wait is
bounded, and nothing asserts a speed.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import orjson
from websockets.sync.client import connect as ws_connect

from dbhandles import Service
from dbhandles.clock import iso_now
from dbhandles.server.addresses import LOOPBACK
from tests.server_helpers import (
    Served,
    closed_by_server,
    connect,
    read_answer,
    serving,
    untrusted,
    wait_for,
)
from tests.test_connections_fairness import command, upgrade
from tests.test_public_flood import get

SETTINGS = {
    "max_requests_per_actor": 4,
    "max_connections_per_address": 16,
    "body_timeout_seconds": 60.0,
    "header_timeout_seconds": 60.0,
}


#: A valid ``data/list`` body: a slow body of its size sends its first byte, then ``REST``.
BODY, REST = b'{"collection": "c"}', b'"collection": "c"}'


def slow_body(port: int, token: str, size: int = 60_000) -> socket.socket:
    """A ``data/list`` whose head says ``size`` bytes of body and whose body has barely begun."""
    sock = connect(port)
    sock.sendall(
        (
            "POST /commands/data/list HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n{{"
        ).encode()
    )
    return sock


def held(served: Served, actor: str) -> int:
    return int(served.call(lambda: served.state.shares.held[actor]))


def address_count(served: Served) -> int:
    return int(served.call(lambda: served.state.addresses[LOOPBACK]))


def no_waiting(served: Served) -> None:
    """A request past its actor's share is refused at once (no wait for a place)."""
    served.call(lambda: setattr(served.state.shares, "wait_seconds", 0))


def refusals(service: Service, actor: str) -> set[tuple[str, str]]:
    """``(command, code)`` of ``actor``'s audit rows (``data/audit`` writes what is queued)."""
    entries = service.execute("data/audit", {"actor": actor, "limit": 1000})["entries"]
    return {(e["command"], e["code"]) for e in entries}


def waiting(served: Served, actor: str) -> int:
    return int(served.call(lambda: len(served.state.shares.waiting.get(actor, ()))))


def test_a_request_past_the_share_waits_for_a_place_first_come_first_served(home: Path) -> None:
    """A flood of one token waits for its own places (nothing to reconnect for), not refused."""
    with serving(home, require_token=True, **SETTINGS) as (service, served):
        alice = service.tokens.create("alice")[0]
        bob = service.tokens.create("bob")[0]
        served.call(lambda: setattr(served.state.shares, "wait_seconds", 60.0))
        slow = [slow_body(served.port, alice, size=len(BODY)) for _ in range(4)]
        wait_for(lambda: held(served, "alice") == 4, "alice's four bodies counted")
        later = [slow_body(served.port, alice, size=len(BODY)) for _ in range(2)]
        wait_for(lambda: waiting(served, "alice") == 2, "two waiting")
        assert command(served.port, bob) == 200  # bob's share is his own
        for sock in later:
            sock.sendall(REST)  # their bodies are complete: they wait for a place only
        slow[0].sendall(REST)  # the first ends: its place goes to the oldest waiter, then on
        assert read_answer(slow[0])[0] == 200
        assert read_answer(later[0])[0] == 200
        assert read_answer(later[1])[0] == 200
        assert waiting(served, "alice") == 0
        assert held(served, "alice") == 3  # the three slow bodies still arriving
        for sock in slow[1:]:
            sock.sendall(REST)
            assert read_answer(sock)[0] == 200
        for sock in slow + later:
            sock.close()
        wait_for(lambda: held(served, "alice") == 0, "alice's share freed")
        assert waiting(served, "alice") == 0


def test_one_actors_slow_bodies_refuse_only_that_actor(home: Path) -> None:
    with serving(home, require_token=True, **SETTINGS) as (service, served):
        alice = service.tokens.create("alice")[0]
        bob = service.tokens.create("bob")[0]
        root = service.tokens.create("root", admin=True)[0]
        no_waiting(served)
        slow = [slow_body(served.port, alice) for _ in range(4)]
        wait_for(lambda: held(served, "alice") == 4, "alice's four bodies counted")
        # Counted in alice's share from their headers on, not against loopback.
        assert address_count(served) == 0
        fifth = slow_body(served.port, alice)
        status, headers, body = read_answer(fifth)
        envelope = orjson.loads(body)
        assert (status, envelope["code"]) == (429, "too_many_requests")
        assert "DBHANDLES_MAX_REQUESTS_PER_ACTOR" in envelope["error"]
        assert envelope["limit"] == 4
        assert headers["retry-after"] == "1"
        assert closed_by_server(fifth)
        fifth.close()
        # Refused before its token was checked in full: in the audit log, summarised per address
        # and actor as the refusals before authentication are.
        assert ("data/list", "too_many_requests") in refusals(service, "alice")
        # Everyone else gets in: bob, his WebSocket, the administrator, /health, the dashboard.
        assert command(served.port, bob) == 200
        assert command(served.port, root) == 200
        assert upgrade(served.port, f"Authorization: Bearer {bob}\r\n") == 101
        assert get(served.port, "/health")[0] == 200
        assert get(served.port, "/")[0] == 200
        assert held(served, "alice") == 4
        for sock in slow:
            sock.close()
        wait_for(lambda: held(served, "alice") == 0, "alice's share freed")
        assert command(served.port, alice) == 200


def test_an_actors_websockets_count_in_its_share(home: Path) -> None:
    with serving(home, require_token=True, **SETTINGS) as (service, served):
        alice = service.tokens.create("alice")[0]
        bob = service.tokens.create("bob")[0]
        url = f"ws://127.0.0.1:{served.port}/ws"
        auth = {"Authorization": f"Bearer {alice}"}
        no_waiting(served)
        with contextlib.ExitStack() as stack:
            for _ in range(3):
                stack.enter_context(ws_connect(url, additional_headers=auth, open_timeout=20))
            wait_for(lambda: held(served, "alice") == 3, "alice's sockets counted")
            one = slow_body(served.port, alice)
            wait_for(lambda: held(served, "alice") == 4, "and her body")
            assert command(served.port, alice) == 429  # her share is full
            with ws_connect(url, additional_headers=auth, open_timeout=20) as refused:
                said = orjson.loads(refused.recv(timeout=20))
                assert said["code"] == "too_many_requests"
            assert ("(websocket)", "too_many_requests") in refusals(service, "alice")
            assert command(served.port, bob) == 200
            assert address_count(served) == 0
            one.close()
        wait_for(lambda: held(served, "alice") == 0, "alice's share freed")


def test_a_flood_of_requests_without_a_known_token_still_counts_by_address(home: Path) -> None:
    """Without a token (``--allow-anonymous``) nothing is known of the actor: the address counts."""
    with serving(home, max_connections_per_address=2, body_timeout_seconds=60.0,
                 header_timeout_seconds=60.0) as (_service, served):  # fmt: skip
        slow = [connect(served.port) for _ in range(2)]
        for sock in slow:
            sock.sendall(
                b"POST /commands/data/list HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Length: 100000\r\n\r\n{"
            )
        wait_for(lambda: address_count(served) == 2, "two large bodies counted by address")
        assert served.call(lambda: dict(served.state.shares.held)) == {}
        for sock in slow:
            sock.close()


def test_an_expired_token_is_counted_by_its_address_not_trusted(home: Path) -> None:
    """An expired token (not revoked) names no actor to the gate: an administrator's is not
    trusted past every limit, an actor's does not count in that actor's share; both count against
    their address's connections (the administrator's closed to make room, alice's 401 once read)."""
    settings = {**SETTINGS, "max_connections_per_address": 2}
    with serving(home, require_token=True, **settings) as (service, served):
        root, root_row = service.tokens.create("root", admin=True, expires="1s")
        alice, alice_row = service.tokens.create("alice", expires="1s")
        assert root_row.expires_at is not None and alice_row.expires_at is not None
        last = max(root_row.expires_at, alice_row.expires_at)
        wait_for(lambda: iso_now() > last, "both tokens expired")
        slow = [slow_body(served.port, root, len(BODY)), slow_body(served.port, alice, len(BODY))]
        # Both connections count against loopback's as not authenticated: none is trusted, and
        # alice's share holds nothing.
        wait_for(lambda: untrusted(served) == 2, "both counted by their address")
        assert served.call(lambda: dict(served.state.shares.held)) == {}
        newcomer = connect(served.port)  # so the administrator's may be closed to make room
        status, _headers, body = read_answer(slow[0])
        envelope = orjson.loads(body)
        assert (status, envelope["code"]) == (429, "too_many_requests")
        assert "DBHANDLES_MAX_CONNECTIONS_PER_ADDRESS" in envelope["error"]
        slow[1].sendall(REST)  # alice's body arrives: refused as the expired token it is
        assert read_answer(slow[1])[0] == 401
        for sock in [*slow, newcomer]:
            sock.close()
        wait_for(lambda: untrusted(served) == 0, "loopback's places freed")
        assert command(served.port, root) == 401
