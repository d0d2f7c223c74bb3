"""Connections per client address (issue 13): only connections that have not authenticated count
against ``max_connections_per_address``, a newcomer past it closes the oldest of them that runs
nothing, and an administrator reaches ``/health`` and runs a command while an anonymous flood from
its own address holds the limit.

Every server is ``server_config`` (what ``jtag serve`` runs) on loopback in a thread; every wait is
bounded, and nothing asserts a speed.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.server_helpers import (
    OTHER,
    closed_by_server,
    connect,
    health_from,
    post,
    read_answer,
    serving,
    untrusted,
    wait_for,
)


def health(sock: socket.socket) -> int:
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return read_answer(sock)[0]


def test_past_the_limit_a_newcomer_closes_the_oldest_idle_connection(home: Path) -> None:
    with serving(home, header_timeout_seconds=60.0) as (_service, served):
        held = [connect(served.port) for _ in range(256)]  # idle: they send nothing
        wait_for(lambda: untrusted(served) == 256, "256")
        newcomer = connect(served.port)
        status, headers, body = read_answer(held[0])  # the oldest is answered and closed
        envelope = orjson.loads(body)
        assert (status, envelope["code"]) == (429, "too_many_requests")
        assert "DBHANDLES_MAX_CONNECTIONS_PER_ADDRESS" in envelope["error"]
        assert "nothing of it ran" in envelope["error"]
        assert headers["connection"] == "close"
        assert closed_by_server(held[0])
        assert health(newcomer) == 200  # the newcomer is served
        assert untrusted(served) == 256
        assert health(held[1]) == 200  # and the others stay open
        # Another loopback address is the same client address: it makes room as the newcomer did.
        assert health_from(served.url, OTHER).status_code == 200
        for sock in [*held, newcomer]:
            sock.close()
        wait_for(lambda: untrusted(served) == 0, "the count freed")


def test_a_head_or_body_still_arriving_makes_room_too(home: Path) -> None:
    """Nothing of a request still arriving ran: its connection may be closed for a newcomer."""
    with serving(home, max_connections_per_address=2, header_timeout_seconds=60.0,
                 body_timeout_seconds=60.0) as (_service, served):  # fmt: skip
        half_head = connect(served.port)
        half_head.sendall(b"POST /commands/data/list HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        half_body = connect(served.port)
        half_body.sendall(post("data/list", {"collection": "c"})[:-3])
        wait_for(lambda: untrusted(served) == 2, "2")
        newcomer = connect(served.port)
        assert read_answer(half_head)[0] == 429
        newcomer2 = connect(served.port)
        assert read_answer(half_body)[0] == 429
        assert health(newcomer) == 200 and health(newcomer2) == 200
        for sock in (half_head, half_body, newcomer, newcomer2):
            sock.close()


def test_a_newcomer_is_refused_only_while_every_connection_runs_a_request(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(home, max_connections_per_address=2) as (service, served):
        entered, release = threading.Semaphore(0), threading.Event()
        dispatch = service.dispatch

        def held(name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
            entered.release()
            release.wait(30)
            return dispatch(name, *args, **kwargs)

        monkeypatch.setattr(service, "dispatch", held)
        running = [connect(served.port) for _ in range(2)]
        for sock in running:
            sock.sendall(post("data/list", {"collection": "c"}))
        assert entered.acquire(timeout=20) and entered.acquire(timeout=20)
        refused = connect(served.port)
        status, _, body = read_answer(refused)
        assert (status, orjson.loads(body)["code"]) == (429, "too_many_requests")
        assert "running a request" in orjson.loads(body)["error"]
        refused.close()
        release.set()
        for sock in running:
            assert read_answer(sock)[0] == 200  # neither lost its answer
            sock.close()


def test_an_authenticated_connection_neither_counts_nor_is_closed_for_room(home: Path) -> None:
    with serving(home, max_connections_per_address=2, header_timeout_seconds=60.0) as (
        _service,
        served,
    ):
        mine = connect(served.port)
        mine.sendall(post("data/list", {"collection": "c"}))
        assert read_answer(mine)[0] == 200  # it ran as the local user: authenticated
        wait_for(lambda: untrusted(served) == 0, "no longer counted")
        flood = [connect(served.port) for _ in range(3)]  # the third closes the first
        assert read_answer(flood[0])[0] == 429
        assert untrusted(served) == 2
        mine.sendall(post("data/list", {"collection": "c"}))
        assert read_answer(mine)[0] == 200  # kept alive, never chosen to make room
        for sock in [mine, *flood]:
            sock.close()


def test_the_admin_reaches_health_and_runs_commands_during_an_anonymous_flood(
    home: Path,
) -> None:
    """Tokens required; anonymous connections hold every slot of loopback, some idle, some
    with a request in progress (``max_connections_per_address`` of those too)."""
    with serving(home, require_token=True, max_connections_per_address=4,
                 header_timeout_seconds=60.0, body_timeout_seconds=60.0) as (service, served):  # fmt: skip
        token, _ = service.tokens.create("root", admin=True)
        flood = [connect(served.port) for _ in range(4)]
        for sock in flood[:2]:  # requests in progress: bodies that never end
            sock.sendall(post("data/list", {"collection": "c"})[:-2])
        wait_for(lambda: untrusted(served) == 4, "the flood holds the limit")
        admin = connect(served.port)
        assert health(admin) == 200
        body = orjson.dumps({"collection": "c"})
        admin.sendall(
            (f"POST /commands/data/list HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
             f"{token}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
            .encode() + body
        )  # fmt: skip
        status, _, answer = read_answer(admin)
        assert status == 200, answer
        anonymous = connect(served.port)  # the flood goes on: the admin's connection stays
        admin.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(admin)[0] == 200
        for sock in [*flood, admin, anonymous]:
            sock.close()
