"""Server fairness (issue 13, outside findings): idle connections never hold a full server's places,
a connection that does not read holds only itself, requests refused at the door take from the
address's public rate, and every loopback address (an IPv6 /64) is one client address.

Real sockets on loopback, limits made small through settings; every wait is bounded, and nothing
asserts a speed.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from dbhandles.cli import transport as cli_transport
from dbhandles.errors import ServerUnreachable, TooManyRequests
from dbhandles.server import public
from dbhandles.server.addresses import LOOPBACK, address_key
from dbhandles.server.connection_counts import Wire
from dbhandles.server.public import PublicLimit
from dbhandles.service import Service
from dbhandles.settings import Settings
from tests.server_helpers import (
    closed_by_server,
    connect,
    health_from,
    post,
    read_answer,
    serving,
    untrusted,
    wait_for,
)
from tests.test_public_flood import get, non_readers

#: Source addresses a flood rotates through (Linux routes all of 127/8 to loopback).
ROTATING = ["127.0.9.1", "127.0.9.2", "127.0.9.3", "127.0.9.4", "127.0.9.5"]


def request(
    sock: socket.socket, path: str, token: str | None = None, host: str = "127.0.0.1"
) -> None:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode())


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", 0.0)


# -- the address key ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("127.0.0.1", LOOPBACK),
        ("127.0.9.5", LOOPBACK),
        ("127.255.255.254", LOOPBACK),
        ("::1", LOOPBACK),
        ("::ffff:127.0.0.2", LOOPBACK),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("unknown", "unknown"),
    ],
)
def test_every_loopback_address_is_one_client_address_and_ipv6_counts_by_its_64(
    host: str, key: str
) -> None:
    assert address_key(host) == key


# -- finding 1: idle connections never hold a full server's places ---------------------------------


class _Conn:
    """A connection ``Wire`` counts: idle (evictable) or running a request."""

    def __init__(self, idle: bool = True) -> None:
        self.idle = idle
        self.refusal: bytes | None = None

    def evictable(self) -> bool:
        return self.idle

    def evict(self, refusal: bytes) -> None:
        self.refusal = refusal


def _admit(wire: Wire, address: str, conn: _Conn, others: int) -> bytes | None:
    return wire.admit(address, others, cast(asyncio.Transport, conn), conn)


def test_past_max_connections_the_oldest_idle_of_the_address_holding_the_most_makes_room() -> None:
    wire = Wire(Settings(max_connections=4, max_connections_per_address=100))
    few, many = [_Conn()], [_Conn(idle=False), _Conn(), _Conn()]
    open_ = 0
    for address, conns in (("192.0.2.1", few), ("192.0.2.2", many)):
        for conn in conns:
            assert _admit(wire, address, conn, open_) is None
            open_ += 1
    newcomer = _Conn()
    assert _admit(wire, "192.0.2.3", newcomer, open_) is None
    # Not the oldest in all (192.0.2.1's), nor the busy one: the oldest idle of the largest holder.
    assert few[0].refusal is None and many[0].refusal is None
    assert many[1].refusal is not None and b"503 Service Unavailable" in many[1].refusal
    assert (
        b"DBHANDLES_MAX_CONNECTIONS" in many[1].refusal and b"nothing of it ran" in many[1].refusal
    )
    # It still holds its place until it is lost: the next newcomer closes one more, not two.
    late = _Conn()
    assert _admit(wire, "192.0.2.3", late, open_ + 1) is None
    assert many[2].refusal is not None and few[0].refusal is None
    wire.gone()
    wire.gone()
    # Nothing left that may make room (the rest run a request or have a token): refused.
    few[0].idle = newcomer.idle = late.idle = False
    refusal = _admit(wire, "192.0.2.4", _Conn(), 4)
    assert refusal is not None and b"503" in refusal and b"DBHANDLES_MAX_CONNECTIONS" in refusal


def test_idle_connections_from_many_loopback_addresses_never_lock_out_a_token_or_health(
    home: Path,
) -> None:
    """Finding 1: idle connections from rotating loopback addresses fill max_connections; bob's
    command (a token), /health and the dashboard still get through, each closing an idle one."""
    settings = {"max_connections": 10, "header_timeout_seconds": 60.0, "public_rate": 0.0}
    with serving(home, require_token=True, **settings) as (service, served):
        bob, _ = service.tokens.create("bob")
        idle = [connect(served.port, ROTATING[i % 5]) for i in range(10)]
        wait_for(lambda: untrusted(served) == 10, "the idle connections fill the server")
        mine = connect(served.port)
        mine.sendall(post("data/list", {"collection": "c"}, bob))
        status, _, body = read_answer(mine)
        assert status == 200, body
        status, _, body = read_answer(idle[0])  # the oldest idle one made room
        assert (status, orjson.loads(body)["code"]) == (503, "server_unreachable")
        assert "nothing of it ran" in orjson.loads(body)["error"]
        assert closed_by_server(idle[0])
        assert health_from(served.url, "127.0.0.1").status_code == 200
        assert get(served.port, "/")[0] == 200
        mine.close()
        for sock in idle:
            sock.close()


def test_jtag_says_stopping_only_when_the_server_does(home: Path) -> None:
    """A full server answers /health 503 too: jtag quotes why, and does not call it stopping."""
    with serving(home, max_connections=1, keep_alive_seconds=60.0) as (_service, served):
        held = connect(served.port)
        held.sendall(post("data/list", {"collection": "c"}))
        assert read_answer(held)[0] == 200  # authenticated: it cannot make room
        with pytest.raises(ServerUnreachable) as caught:
            cli_transport.health(served.url)
        message = str(caught.value)
        assert "503" in message and "DBHANDLES_MAX_CONNECTIONS" in message
        assert "stopping" not in message
        held.close()


# -- finding 2: a connection that does not read holds only itself ----------------------------------


def test_eight_non_readers_hold_neither_the_dashboard_nor_a_token_request(home: Path) -> None:
    settings = {"public_rate": 0.0, "public_write_timeout_seconds": 60.0}
    with serving(home, require_token=True, **settings) as (service, served):
        bob, _ = service.tokens.create("bob")
        assert get(served.port, "/openapi.json")[0] == 200  # built once before
        counts = served.state.public.counts
        pipelined = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        with non_readers(served.port, 8, pipelined):
            wait_for(lambda: served.call(lambda: sum(counts.values())) == 8, "8 answers not taken")
            assert get(served.port, "/")[0] == 200  # a browser sends no token for the dashboard
            assert get(served.port, "/openapi.json", bob)[0] == 200
            assert get(served.port, "/openapi.json")[0] == 200
            assert served.call(lambda: sum(counts.values())) == 8  # none of theirs ran further


def test_only_a_request_whose_connection_holds_an_unsent_answer_is_refused() -> None:
    limit = PublicLimit(2)
    limit.enter("a", holding=True)
    limit.enter("a", holding=False)
    limit.enter("a", holding=False)  # its connection took everything: never refused
    with pytest.raises(TooManyRequests) as caught:
        limit.enter("a", holding=True)
    message = str(caught.value)
    assert "DBHANDLES_PUBLIC_REQUESTS_PER_ADDRESS" in message and "/health" not in message
    limit.enter("b", holding=True)  # another address is counted apart


# -- finding 3: requests refused at the door take from the address's rate ---------------------------


def test_a_wrong_host_flood_is_charged_to_the_address_bucket(home: Path, no_pause: None) -> None:
    with serving(home, require_token=True, public_rate=0.1, public_burst=2) as (service, served):
        bob, _ = service.tokens.create("bob")
        sock = connect(served.port)
        for _ in range(2):
            request(sock, "/", host="evil.example")
            assert read_answer(sock)[0] == 403
            sock.close()
            sock = connect(served.port)
        request(sock, "/", host="evil.example")  # past the bucket: the rate's 429, kept open
        status, headers, body = read_answer(sock)
        assert (status, orjson.loads(body)["code"]) == (429, "too_many_requests")
        assert int(headers["retry-after"]) >= 1 and headers.get("connection") != "close"
        request(sock, "/openapi.json")  # the same bucket: the public routes are past it too
        assert read_answer(sock)[0] == 429
        sock.close()
        assert get(served.port, "/openapi.json", bob)[0] == 200  # a valid token still passes
        assert health_from(served.url, "127.0.0.1").status_code == 200  # /health is not rated


def test_a_wrong_host_websocket_upgrade_is_charged_to_the_bucket_too(
    home: Path, no_pause: None
) -> None:
    upgrade = (b"GET /ws HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\nConnection: "
               b"Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
    with serving(home, public_rate=0.1, public_burst=1) as (_service, served):
        statuses = []
        for _ in range(2):
            sock = connect(served.port)
            sock.sendall(upgrade)
            statuses.append(read_answer(sock)[0])
            sock.close()
        assert statuses == [403, 429]


# -- finding 4: rotating loopback addresses share one address's limits ------------------------------


def test_rotating_loopback_addresses_share_one_bucket(home: Path, no_pause: None) -> None:
    with serving(home, public_rate=0.1, public_burst=2) as (_service, served):
        statuses = []
        for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):
            sock = connect(served.port, source)
            request(sock, "/openapi.json")
            statuses.append(read_answer(sock)[0])
            sock.close()
        assert statuses == [200, 200, 429]


def test_rotating_loopback_addresses_share_one_connection_limit(home: Path) -> None:
    settings = {"max_connections_per_address": 2, "header_timeout_seconds": 60.0}
    with serving(home, **settings) as (_service, served):
        first, second = connect(served.port, "127.0.0.2"), connect(served.port, "127.0.0.3")
        wait_for(lambda: untrusted(served) == 2, "2 from loopback")
        third = connect(served.port, "127.0.0.4")
        status, _, body = read_answer(first)  # the oldest of loopback made room
        assert (status, orjson.loads(body)["code"]) == (429, "too_many_requests")
        assert "loopback" in orjson.loads(body)["error"]
        assert untrusted(served) == 2
        for sock in (first, second, third):
            sock.close()


# -- round 4: every refusal before authentication is charged; a paused refusal holds no place -----

#: A WebSocket upgrade's head, with ``extra`` header lines.
UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
)
CROSS_SITE = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}


def command(port: int, token: str | None = None, headers: dict[str, str] | None = None) -> int:
    """The status of one ``POST /commands/data/list`` on a new connection."""
    sock = connect(port)
    try:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        request = post("data/list", {"collection": "c"}, token).replace(
            b"\r\n\r\n", f"\r\n{extra}\r\n".encode(), 1
        )
        sock.sendall(request)
        return read_answer(sock)[0]
    finally:
        sock.close()


def upgrade(port: int, extra: str = "") -> int:
    """The status of one WebSocket upgrade (101: accepted, a token refusal then comes as a frame)."""
    sock = connect(port)
    try:
        sock.sendall(UPGRADE.format(extra=extra).encode())
        line = sock.makefile("rb").readline()
        return int(line.split()[1])
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("token", "headers", "refused"),
    [
        (None, None, 401),
        ("dbh_wrong", None, 401),
        ("bob", CROSS_SITE, 403),
        ("bob", {"Sec-Fetch-Site": "cross-site"}, 403),
    ],
    ids=["no-token", "bad-token", "cross-site-origin", "cross-site-fetch"],
)
def test_command_refusals_before_authentication_are_charged_to_the_address_rate(
    home: Path, no_pause: None, token: str | None, headers: dict[str, str] | None, refused: int
) -> None:
    with serving(home, require_token=True, public_rate=0.1, public_burst=2) as (service, served):
        bob = service.tokens.create("bob")[0]
        sent = bob if token == "bob" else token
        assert [command(served.port, sent, headers) for _ in range(2)] == [refused, refused]
        sock = connect(served.port)
        sock.sendall(post("data/list", {}))  # past the burst: the rate's 429, kept open
        status, answer_headers, body = read_answer(sock)
        sock.close()
        assert (status, orjson.loads(body)["code"]) == (429, "too_many_requests")
        assert int(answer_headers["retry-after"]) >= 1 and "connection" not in answer_headers
        assert command(served.port, sent, headers) == 429
        assert get(served.port, "/openapi.json")[0] == 429  # the bucket the public routes use
        assert command(served.port, bob) == 200  # a valid token is never charged nor refused
        assert command(served.port, bob) == 200
        assert health_from(served.url, "127.0.0.1").status_code == 200


def test_a_valid_token_is_never_charged(home: Path, no_pause: None) -> None:
    with serving(home, require_token=True, public_rate=0.1, public_burst=1) as (service, served):
        bob = service.tokens.create("bob")[0]
        assert [command(served.port, bob) for _ in range(4)] == [200] * 4
        assert command(served.port) == 401  # the burst is still whole for the first refusal
        assert command(served.port) == 429


@pytest.mark.parametrize(
    ("extra", "first"),
    [("", 101), ("Authorization: Bearer dbh_wrong\r\n", 101),
     ("Origin: https://evil.example\r\n", 403)],
    ids=["no-token", "bad-token", "cross-site-origin"],
)  # fmt: skip
def test_websocket_refusals_before_authentication_are_charged_too(
    home: Path, no_pause: None, extra: str, first: int
) -> None:
    with serving(home, require_token=True, public_rate=0.1, public_burst=2) as (service, served):
        bob = service.tokens.create("bob")[0]
        assert [upgrade(served.port, extra) for _ in range(2)] == [first, first]
        assert upgrade(served.port, extra) == 429
        assert upgrade(served.port, f"Authorization: Bearer {bob}\r\n") == 101
        assert command(served.port, bob) == 200


def test_a_websocket_token_refusal_is_audited_with_its_address(home: Path) -> None:
    from tests.servers import app_client
    from tests.test_audit_refusal_summary import auth_rows

    service = Service(settings=Settings(home=home))
    try:
        with (
            app_client(service, require_token=True) as client,
            client.websocket_connect("/ws?token=dbh_wrong") as ws,
        ):
            assert ws.receive_json()["code"] == "unauthorized"
        rows = auth_rows(service)
        assert [r["target"] for r in rows] == ["from testclient"]
    finally:
        service.close()


def test_a_connection_in_its_refusal_pause_makes_room_like_an_idle_one() -> None:
    class Running:
        def evictable(self) -> bool:
            return False  # its request "runs": the refusal's pause

        def evict(self, refusal: bytes) -> None:
            self.refusal = refusal

        def evict_after_answer(self) -> None:
            self.refusal = b"after its answer"

    wire = Wire(Settings(max_connections_per_address=1))
    paused, newcomer = cast(Any, object()), cast(Any, object())
    held = Running()
    assert wire.admit("loopback", 0, paused, held) is None
    assert wire.admit("loopback", 1, newcomer, Running()) is not None  # running: no room
    wire.refusing.add(paused)
    assert wire.admit("loopback", 1, newcomer, Running()) is None
    assert held.refusal == b"after its answer" and wire.open["loopback"] == 1
    assert paused not in wire.refusing  # released when it made room


def test_paused_refusals_never_lock_out_a_token_or_health(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refusals paused for 3 s, while every place of loopback is taken by one: a newcomer closes
    # the oldest of them (it was refused anyway) rather than being refused itself.
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", 3.0)
    settings = {"max_connections_per_address": 2, "header_timeout_seconds": 60.0,
                "public_rate": 0.1, "public_burst": 1}  # fmt: skip
    with serving(home, require_token=True, **settings) as (service, served):
        bob = service.tokens.create("bob")[0]
        assert get(served.port, "/openapi.json")[0] == 200  # the burst
        paused = [connect(served.port), connect(served.port)]
        for sock in paused:
            request(sock, "/openapi.json")
        wait_for(lambda: len(served.call(lambda: set(served.state.wire.refusing))) == 2,
                 "both in their pause")  # fmt: skip
        assert command(served.port, bob) == 200
        # The oldest made room: its refusal is sent at the end of its pause, then it is closed.
        status, _, body = read_answer(paused[0])
        assert (status, orjson.loads(body)["code"]) == (429, "too_many_requests")
        assert closed_by_server(paused[0])
        assert health_from(served.url, "127.0.0.1").status_code == 200
        for sock in paused:
            sock.close()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DBHANDLES_HEADER_TIMEOUT_SECONDS", "1e-9"), ("DBHANDLES_BODY_TIMEOUT_SECONDS", "0.05"),
     ("DBHANDLES_PUBLIC_WRITE_TIMEOUT_SECONDS", "1e-9"), ("DBHANDLES_CURSOR_TTL_SECONDS", "0.01"),
     ("DBHANDLES_PUBLIC_RATE", "1e-320"), ("DBHANDLES_PUBLIC_RATE", "0.01")],
)  # fmt: skip
def test_tiny_deadlines_and_rates_are_refused_at_start(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=f'{variable}: "{value}" is not allowed: .*at least 0.1'):
        Settings.from_env({variable: value})


def test_the_smallest_deadlines_and_rates_and_no_limit_are_accepted() -> None:
    settings = Settings.from_env({
        "DBHANDLES_HEADER_TIMEOUT_SECONDS": "0.1", "DBHANDLES_PUBLIC_RATE": "0",
        "DBHANDLES_PUBLIC_WRITE_TIMEOUT_SECONDS": "0", "DBHANDLES_BODY_TIMEOUT_SECONDS": "0.1",
    })  # fmt: skip
    assert (settings.header_timeout_seconds, settings.public_rate) == (0.1, 0.0)
