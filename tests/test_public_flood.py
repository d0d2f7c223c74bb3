"""The routes that need no token under an anonymous flood (server/public.py, issue 13): a rate per
client address for requests without a valid token (429 with Retry-After; loopback not exempt, a
valid token passes), and a write deadline that cuts a client that does not read
(test_connections_fairness.py: such a client holds only its own connection).
Counts and states only; no time is measured."""

from __future__ import annotations

import contextlib
import itertools
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles.server import public, ws_wire
from dbhandles.server.public import PublicRate
from dbhandles.settings import Settings
from tests.server_helpers import connect, read_answer, serving, wait_for

#: Every kind of route the rate covers: the dashboard, a static file, the documents, a wrong URL.
RATED = ["/", "/jtag.js", "/openapi.json", "/commands", "/commands/data/list", "/no/such/page"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_its_burst_then_its_rate_and_a_refusal_takes_nothing() -> None:
    clock = Clock()
    rate = PublicRate(2.0, 3, clock)
    assert [rate.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rate.take("a") == pytest.approx(0.5)  # one more token in half a second at 2/s
    assert rate.take("a") == pytest.approx(0.5)  # the refused one took nothing
    assert rate.take("b") == 0.0  # addresses are counted apart
    clock.now += 0.5
    assert rate.take("a") == 0.0
    assert rate.take("a") == pytest.approx(0.5)


def test_a_rate_of_zero_never_refuses() -> None:
    rate = PublicRate(0.0, 1, Clock())
    assert {rate.take("a") for _ in range(100)} == {0.0}


def test_the_buckets_of_many_addresses_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(public, "_RATE_ADDRESSES", 10)
    clock = Clock()
    rate = PublicRate(1.0, 2, clock)
    for i in range(10):
        rate.take(f"10.0.0.{i}")
    clock.now += 5  # every bucket refilled: forgotten when an 11th address comes
    rate.take("10.0.1.1")
    assert list(rate.buckets) == ["10.0.1.1"]
    for i in range(9):
        rate.take(f"10.0.2.{i}")
    rate.take("10.0.3.1")  # none full: kept (an address mid-flood is never forgotten)
    assert len(rate.buckets) == 11


def test_paused_refusals_are_spread_and_their_pause_bounded() -> None:
    # wrk -c300 refused at once: 300 refusals paused alike all came due together (issue 13).
    clock = Clock()
    rate = PublicRate(1.0, 1, clock)
    spacing, most = public.REFUSAL_SPACING_SECONDS, public.REFUSAL_MOST_PAUSES
    pauses = [rate.refusal_pause(1.0) for _ in range(300)]
    assert pauses[:3] == [1.0, pytest.approx(1.0 + spacing), pytest.approx(1.0 + 2 * spacing)]
    due = [clock.now + p for p in pauses]
    assert min(b - a for a, b in itertools.pairwise(due)) == pytest.approx(spacing)
    # Past the most a refusal waits, the rest are not spread but wait no longer.
    many = [rate.refusal_pause(1.0) for _ in range(round(2.0 / spacing))]
    assert max(many) == pytest.approx(most) and many[-1] == pytest.approx(most)
    clock.now += 10  # the queue drained: the next one waits the pause alone
    assert rate.refusal_pause(1.0) == 1.0
    assert rate.refusal_pause(0.0) == 0.0  # no pause (tests): none added either
    assert rate.refusal_pause(0.0) == 0.0


def get(port: int, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    sock = connect(port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode())
    try:
        return read_answer(sock)
    finally:
        sock.close()


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", 0.0)


@pytest.mark.parametrize("path", RATED)
def test_each_public_route_is_refused_past_the_rate_with_retry_after(
    home: Path, path: str, no_pause: None
) -> None:
    # A rate of one request in 10 s: the burst is all there is within the test.
    with serving(home, public_rate=0.1, public_burst=2) as (_service, served):
        statuses = [get(served.port, path)[0] for _ in range(2)]
        assert 429 not in statuses
        status, headers, body = get(served.port, path)
        assert status == 429
        assert int(headers["retry-after"]) >= 1
        envelope = orjson.loads(body)
        assert (
            envelope["code"] == "too_many_requests" and "DBHANDLES_PUBLIC_RATE" in envelope["error"]
        )
        assert headers.get("connection") != "close"  # a flooder is not made to reconnect
        # /health keeps its own path: never refused so, the administrator's jtag finds its server.
        assert get(served.port, "/health")[0] == 200


def test_a_valid_token_passes_the_rate_and_a_wrong_one_does_not(home: Path, no_pause: None) -> None:
    with serving(home, require_token=True, public_rate=0.1, public_burst=1) as (service, served):
        token = service.tokens.create("bob")[0]
        assert get(served.port, "/openapi.json")[0] == 200
        assert get(served.port, "/openapi.json")[0] == 429
        assert get(served.port, "/openapi.json", token)[0] == 200
        assert get(served.port, "/", token)[0] == 200
        assert get(served.port, "/openapi.json", "dbh_wrong")[0] == 429


@contextlib.contextmanager
def non_readers(port: int, count: int, request: bytes) -> Iterator[list[socket.socket]]:
    """``count`` connections that pipeline far more answers than their buffers hold, read none."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = connect(port, rcvbuf=4096)
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.send(request * 400)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Read what is left until the connection ends (a reset, or EOF once the kernel's bytes were
    read); a connection the server still holds open times out instead (an error)."""
    sock.setblocking(True)
    sock.settimeout(20)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        return True
    return True


def cuts(served: Any) -> int:
    """Connections cut at the write deadline: with an answer the transport could not hand over
    (``serve_public``), or with answers the kernel holds unsent holding the next request
    (``connections.limited_protocol``: a small answer, the dashboard's page)."""
    return int(served.call(lambda: served.state.public.cut + served.state.wire.stuck))


@pytest.mark.parametrize("path", ["/openapi.json", "/", "/commands"])
def test_a_client_that_does_not_read_loses_its_slot_at_the_write_deadline(
    home: Path, path: str
) -> None:
    settings = {"public_requests_per_address": 1, "public_rate": 0.0,
                "public_write_timeout_seconds": 0.2}  # fmt: skip
    with serving(home, **settings) as (_service, served):
        assert get(served.port, path)[0] == 200  # its document built: the deadline is the write's
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        with non_readers(served.port, 1, request) as (sock,):
            # Nothing read until the server cut the connection at the deadline and freed the slot.
            wait_for(lambda: cuts(served) == 1, "the cut")
            wait_for(lambda: not served.call(lambda: dict(served.state.public.counts)),
                     "the slot freed at the deadline")  # fmt: skip
            assert closed_by_server(sock)
        assert cuts(served) == 1
        assert get(served.port, path)[0] == 200


def test_non_readers_past_the_slots_hold_nothing(home: Path) -> None:
    """Two connections that read nothing, a limit of one answer not taken: each holds only itself
    (the second's first request is not refused for the first's answer), both are cut at the
    deadline, and neither holds anything after."""
    settings = {"public_requests_per_address": 1, "public_rate": 0.0,
                "public_write_timeout_seconds": 0.2}  # fmt: skip
    with serving(home, **settings) as (_service, served):
        assert get(served.port, "/openapi.json")[0] == 200
        request = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        with non_readers(served.port, 2, request) as socks:
            wait_for(lambda: cuts(served) == 2, "both cut")
            for sock in socks:
                assert closed_by_server(sock)
        wait_for(lambda: not served.call(lambda: dict(served.state.public.counts)),
                 "every slot freed")  # fmt: skip
        assert get(served.port, "/openapi.json")[0] == 200


def test_the_limits_are_settings_read_from_the_environment() -> None:
    settings = Settings.from_env({
        "DBHANDLES_PUBLIC_REQUESTS_PER_ADDRESS": "3", "DBHANDLES_PUBLIC_RATE": "2.5",
        "DBHANDLES_PUBLIC_BURST": "7", "DBHANDLES_PUBLIC_WRITE_TIMEOUT_SECONDS": "4",
        "DBHANDLES_WS_FRAMES_PER_SECOND": "100", "DBHANDLES_WS_BYTES_PER_SECOND": "4096",
    })  # fmt: skip
    assert (settings.public_requests_per_address, settings.public_rate, settings.public_burst,
            settings.public_write_timeout_seconds) == (3, 2.5, 7, 4.0)  # fmt: skip
    with pytest.raises(ValueError, match="DBHANDLES_PUBLIC_RATE"):
        Settings(public_rate=-1)


def test_the_websocket_rates_follow_the_settings() -> None:
    """A socket's buckets (bursts of a quarter) and its actor's (twice as much); 0 keeps the
    built-in rates."""
    settings = Settings(ws_frames_per_second=100, ws_bytes_per_second=4096)
    sock, actor = ws_wire.socket_wire_rate(settings), ws_wire.actor_wire_rate(settings)
    assert [(b.rate, b.burst) for b in (sock.frames, sock.bytes)] == [(100, 25), (4096, 1024)]
    assert [(b.rate, b.burst) for b in (actor.frames, actor.bytes)] == [(200, 50), (8192, 2048)]
    built_in = ws_wire.socket_wire_rate(Settings())
    assert (built_in.frames.rate, built_in.bytes.burst) == (
        ws_wire.WS_FRAMES_PER_SECOND, ws_wire.WS_BYTE_BURST)  # fmt: skip
    built_in = ws_wire.actor_wire_rate(Settings(ws_bytes_per_second=4096))
    assert (built_in.frames.rate, built_in.bytes.rate) == (ws_wire.WS_ACTOR_FRAMES_PER_SECOND, 8192)
