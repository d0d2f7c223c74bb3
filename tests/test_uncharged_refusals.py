"""Issue 13: the refusals ``jtag serve`` makes before a request reaches the app are charged to the
address's public rate like every other refusal before authentication: a malformed request line (50
clients got 18,526 immediate 400s in 6 s), an upgrade without ``Sec-WebSocket-Key`` (12,235), a
head too large; and ``/health`` with a method other than GET/HEAD. uvicorn's warning of each
malformed request is summarized (one line per 10 s), and ``jtag serve`` logs ``dbhandles.*`` at
uvicorn's level with its handler.

Real sockets on loopback; the only bound asserted is the bucket's own (burst + rate x elapsed)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbhandles.cli.serve import log_like_uvicorn, server_config
from dbhandles.server import create_app, public
from dbhandles.server.log_summary import CLIENT_WARNING_SECONDS, ClientWarningSummary
from dbhandles.service import Service
from dbhandles.settings import Settings
from tests.server_helpers import connect, read_answer, serving

CONNECTIONS = 60
BURST = 10
RATE = 1.0

MALFORMED = b"G@T / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
NO_KEY = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
          b"Sec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
HEALTH_PUT = b"PUT /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
HEALTH_OPTIONS = b"OPTIONS /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", 0.0)


def flood(port: int, request: bytes) -> tuple[list[int], list[dict[str, str]], float]:
    """``CONNECTIONS`` concurrent ``request``s, each on its own connection, all sent before any
    answer is read: their statuses and headers, and the seconds from the first send to the last
    answer read."""
    socks: list[socket.socket] = []
    try:
        for _ in range(CONNECTIONS):
            socks.append(connect(port))
        start = time.monotonic()
        for sock in socks:
            sock.sendall(request)
        answers = [read_answer(sock) for sock in socks]
        return [a[0] for a in answers], [a[1] for a in answers], time.monotonic() - start
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize(
    ("request_bytes", "refusal"),
    [(MALFORMED, 400), (NO_KEY, 400), (HEALTH_PUT, 405), (HEALTH_OPTIONS, 405)],
    ids=["malformed-request-line", "upgrade-without-key", "health-put", "health-options"],
)
def test_refusals_before_the_app_stay_within_the_bucket(
    home: Path, no_pause: None, request_bytes: bytes, refusal: int
) -> None:
    with serving(home, public_rate=RATE, public_burst=BURST) as (_service, served):
        statuses, headers, elapsed = flood(served.port, request_bytes)
    refused_at_once = statuses.count(refusal)
    assert set(statuses) <= {refusal, 429}, statuses
    assert refused_at_once <= BURST + RATE * elapsed + 2, (refused_at_once, elapsed)
    assert statuses.count(429) >= CONNECTIONS - BURST - RATE * elapsed - 2
    assert all("retry-after" in h for s, h in zip(statuses, headers, strict=True) if s == 429)


def test_a_head_too_large_is_charged(home: Path, no_pause: None) -> None:
    big = b"GET /commands HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 2048 + b"\r\n\r\n"
    with serving(home, public_rate=RATE, public_burst=BURST, max_header_bytes=1024) as (_s, served):
        statuses, _headers, elapsed = flood(served.port, big)
    assert set(statuses) <= {431, 429}, statuses
    assert statuses.count(431) <= BURST + RATE * elapsed + 2


def test_health_get_is_never_charged(home: Path, no_pause: None) -> None:
    with serving(home, public_rate=RATE, public_burst=BURST) as (_service, served):
        get = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        statuses, _headers, _elapsed = flood(served.port, get)
        assert statuses == [200] * CONNECTIONS
        # Nothing was taken: the whole burst is left for a refusal.
        sock = connect(served.port)
        with sock:
            sock.sendall(HEALTH_PUT)
            assert read_answer(sock)[0] == 405


def test_malformed_requests_within_the_rate_are_answered_400_with_the_envelope(home: Path) -> None:
    with serving(home) as (_service, served), connect(served.port) as sock:
        sock.sendall(MALFORMED)
        status, _headers, body = read_answer(sock)
    assert status == 400
    assert b'"invalid_params"' in body


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_invalid_request_warnings_are_summarized_once_per_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    logger = logging.getLogger("tests.uncharged_refusals")
    summary = ClientWarningSummary(clock)
    logger.addFilter(summary)
    try:
        with caplog.at_level(logging.WARNING, logger=logger.name):
            for _ in range(500):
                logger.warning("Invalid HTTP request received.")
            clock.now += CLIENT_WARNING_SECONDS
            logger.warning("Invalid HTTP request received.")
            logger.warning("something else")
    finally:
        logger.removeFilter(summary)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Invalid HTTP request received: 1 since the last such line (one line at most every 10 s)",
        "Invalid HTTP request received: 500 since the last such line (one line at most every 10 s)",
        "something else",
    ]


@pytest.fixture
def dbhandles_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("dbhandles")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield logger
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


@pytest.mark.parametrize("level", ["info", "warning"])
def test_serve_logs_dbhandles_at_uvicorns_level_with_its_handler(
    home: Path, dbhandles_logger: logging.Logger, capsys: pytest.CaptureFixture[str], level: str
) -> None:
    service = Service(settings=Settings(home=home))
    try:
        server_config(create_app(service), service.settings, log_level=level)
        log_like_uvicorn()
        logging.getLogger("dbhandles.server.public").info("1 connection(s) cut")
        logging.getLogger("dbhandles.server.shutdown").warning("shutdown summary")
    finally:
        service.close()
    err = capsys.readouterr().err
    assert ("INFO:     1 connection(s) cut" in err) is (level == "info")
    assert "WARNING:  shutdown summary" in err
