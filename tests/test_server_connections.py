"""One client cannot hold the server's connections or memory (issue 13): idle and half-sent
connections are closed at the head deadline, connections in all are refused at accept time with
the error envelope (per address: test_server_per_address.py), a caller's unread answers are bounded, a pipelined request waits
for the answer before it, and a client that left is not logged as a server error.

Every server is ``server_config`` (what ``jtag serve`` runs) on loopback in a thread; every wait is
bounded, and nothing asserts a speed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service, Settings
from dbhandles.server import create_app
from dbhandles.server.addresses import LOOPBACK
from tests.server_helpers import (
    OTHER,
    closed_by_server,
    connect,
    health_from,
    post,
    read_answer,
    serving,
    wait_for,
)

# -- the request head's deadline ------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_at_the_head_deadline(home: Path) -> None:
    with serving(home, header_timeout_seconds=1.0) as (_service, served):
        sock = connect(served.port)
        assert sock.recv(100) == b""  # closed without an answer (no request was made)
        sock.close()
        wait_for(lambda: not served.call(lambda: dict(served.state.wire.open)), "the count freed")


def test_a_partial_request_head_is_answered_408_and_closed(home: Path) -> None:
    with serving(home, header_timeout_seconds=1.0) as (_service, served):
        sock = connect(served.port)
        sock.sendall(
            b"POST /commands/data/list HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        )  # then nothing more
        status, headers, body = read_answer(sock)
        envelope = orjson.loads(body)
        assert (status, envelope["code"]) == (408, "request_timeout")
        assert "DBHANDLES_HEADER_TIMEOUT_SECONDS" in envelope["error"]
        assert headers["connection"] == "close"
        assert closed_by_server(sock)
        sock.close()


def test_a_second_request_head_on_a_kept_alive_connection_has_the_same_deadline(
    home: Path,
) -> None:
    with serving(home, header_timeout_seconds=1.0, keep_alive_seconds=30.0) as (_service, served):
        sock = connect(served.port)
        sock.sendall(post("data/list", {"collection": "c"}))
        assert read_answer(sock)[0] == 200
        sock.sendall(b"POST /commands/data/list HTTP/1.1\r\n")  # the next head stalls
        status, _, body = read_answer(sock)
        assert (status, orjson.loads(body)["code"]) == (408, "request_timeout")
        assert closed_by_server(sock)
        sock.close()


def test_an_idle_kept_alive_connection_is_closed(home: Path) -> None:
    with serving(home, keep_alive_seconds=1.0) as (_service, served):
        sock = connect(served.port)
        sock.sendall(post("data/list", {"collection": "c"}))
        assert read_answer(sock)[0] == 200
        assert sock.recv(100) == b""  # then closed by the server, without an answer
        sock.close()


# -- connections in all, refused at accept time (per address: test_server_per_address.py) ---------


def test_past_max_connections_a_new_one_gets_the_envelope(home: Path) -> None:
    """Only when no connection can make room (each authenticated, here: a command ran on it)."""
    with serving(home, max_connections=3, keep_alive_seconds=60.0) as (_service, served):
        held = [connect(served.port, source) for source in ("127.0.0.3", "127.0.0.4", OTHER)]
        for sock in held:
            sock.sendall(post("data/list", {"collection": "c"}))
            assert read_answer(sock)[0] == 200  # authenticated (the local user): never closed
        wait_for(lambda: served.call(lambda: sum(served.state.wire.trusted.values())) == 3, "3")
        extra = connect(served.port)
        status, _, body = read_answer(extra)
        envelope = orjson.loads(body)
        assert (status, envelope["code"]) == (503, "server_unreachable")
        assert "DBHANDLES_MAX_CONNECTIONS" in envelope["error"]
        extra.close()
        held.pop().close()
        wait_for(lambda: served.call(lambda: sum(served.state.wire.trusted.values())) == 2, "2")
        assert health_from(served.url, "127.0.0.1").status_code == 200
        for sock in held:
            sock.close()


# -- answers not read yet ------------------------------------------------------------------------

BIG = {"collection": "huge", "limit": 8}  # 8 records of 1 MB: an 8 MB answer


def _fill(service: Service) -> None:
    for i in range(8):
        service.execute("data/create", {"collection": "huge", "id": f"r{i}", "data": {"x": "y" * 1_000_000}})  # fmt: skip


def test_a_caller_over_its_unread_answer_budget_gets_429_while_another_is_served(
    home: Path,
) -> None:
    with serving(home, max_unsent_bytes_per_actor=1 << 20) as (service, served):
        _fill(service)
        wire = served.state.wire
        reader = connect(served.port, rcvbuf=4096)
        reader.sendall(post("data/list", BIG))  # and does not read (yet)
        wait_for(lambda: served.call(lambda: wire.unsent(LOOPBACK)) >= 1 << 20, "unsent")
        again = connect(served.port)
        again.sendall(post("data/list", {"collection": "huge", "limit": 1}))
        status, headers, body = read_answer(again)
        envelope = orjson.loads(body)
        assert (status, envelope["code"]) == (429, "too_many_requests")
        assert "DBHANDLES_MAX_UNSENT_BYTES_PER_ACTOR" in envelope["error"]
        assert headers["connection"] == "close"
        again.close()
        # Another caller (a token: loopback is one address) is served in full meanwhile.
        token, _ = service.tokens.create("root", admin=True)
        other = connect(served.port, OTHER)
        other.sendall(post("data/list", BIG, token))
        status, _, body = read_answer(other)
        assert status == 200 and len(orjson.loads(body)["items"]) == 8
        other.close()
        status, _, body = read_answer(reader)  # the first caller reads its answer, whole
        assert status == 200 and len(orjson.loads(body)["items"]) == 8
        wait_for(lambda: served.call(lambda: wire.unsent(LOOPBACK)) == 0, "drained")
        reader.sendall(post("data/list", {"collection": "huge", "limit": 1}))
        assert read_answer(reader)[0] == 200  # and is served again
        reader.close()


def test_a_pipelined_request_runs_only_once_the_answer_before_it_was_written(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(home) as (service, served):
        _fill(service)
        ran: list[str] = []
        dispatch = service.dispatch

        def counted(name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
            ran.append(name)
            return dispatch(name, *args, **kwargs)

        monkeypatch.setattr(service, "dispatch", counted)
        sock = connect(served.port, rcvbuf=4096)
        sock.sendall(post("data/list", BIG) * 3)  # three 8 MB answers, and nothing read yet
        wait_for(lambda: served.call(lambda: served.state.wire.unsent(LOOPBACK)) > 0, "unsent")
        time.sleep(0.5)  # room for a wrong server to start the next one
        assert ran == ["data/list"]
        stream = sock.makefile("rb")
        for _ in range(3):
            status, _, body = read_answer(stream)
            assert status == 200 and len(orjson.loads(body)["items"]) == 8
        assert ran == ["data/list"] * 3
        stream.close()
        sock.close()


# -- a client that went away ----------------------------------------------------------------------


class _ClosedTransport(asyncio.Transport):
    def is_closing(self) -> bool:
        return True


class _Cycle:
    """What uvicorn's ``send`` is bound to once the client closed the connection."""

    def __init__(self) -> None:
        self.transport = _ClosedTransport()

    async def send(self, message: Any) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")


@pytest.mark.parametrize(("method", "path"), [("GET", "/health"), ("POST", "/commands/data/list")])
def test_a_client_that_left_is_no_server_error(
    home: Path, caplog: pytest.LogCaptureFixture, method: str, path: str
) -> None:
    service = Service(settings=Settings(home=home))
    try:
        app = create_app(service, require_token=False)
        scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                 "headers": [(b"host", b"127.0.0.1")], "query_string": b"",
                 "client": ("127.0.0.1", 1), "scheme": "http",
                 "server": ("127.0.0.1", 2), "root_path": "", "http_version": "1.1",
                 "asgi": {"version": "3.0"}}  # fmt: skip

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b'{"collection": "c"}', "more_body": False}

        with caplog.at_level(logging.DEBUG, logger="dbhandles"):
            asyncio.run(app(scope, receive, _Cycle().send))  # no exception
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert any("closed the connection" in r.getMessage() for r in caplog.records)
    finally:
        app.state.dbhandles.executor.shutdown(wait=True)
        service.close()


@pytest.mark.parametrize("path", ["/", "/health", "/commands", "/openapi.json", "/app.js"])
def test_every_route_answers_only_the_host_names_it_is_called_by(home: Path, path: str) -> None:
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 reads nothing,
    the dashboard and /health included (issue 12); the loopback names still work."""
    with serving(home) as (_service, served):
        for host, expected in (("evil.example", 403), ("localhost..", 403), ("127.0.0.1", 200),
                               ("LOCALHOST.", 200)):  # fmt: skip
            sock = connect(served.port)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status, _headers, body = read_answer(sock)
            sock.close()
            assert status == expected, (host, body)
            if expected == 403:
                answer = orjson.loads(body)
                assert (answer["code"], answer["field"]) == ("forbidden", "Host")


def test_two_host_headers_are_a_bad_request(home: Path) -> None:
    with serving(home) as (_service, served):
        for first, second in (("127.0.0.1", "evil.example"), ("evil.example", "127.0.0.1")):
            sock = connect(served.port)
            sock.sendall(post("data/list", {"collection": "c"}).replace(
                b"Host: 127.0.0.1\r\n", f"Host: {first}\r\nHost: {second}\r\n".encode()))  # fmt: skip
            status, _headers, body = read_answer(sock)
            sock.close()
            assert status == 400 and orjson.loads(body)["field"] == "Host", body


def test_a_websocket_upgrade_for_another_host_is_refused(home: Path) -> None:
    with serving(home) as (_service, served):
        sock = connect(served.port)
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        status_line = sock.makefile("rb").readline()
        sock.close()
        assert b" 101 " not in status_line, status_line


def test_a_bracketed_host_with_anything_after_it_is_not_ours(home: Path) -> None:
    with serving(home) as (_service, served):
        for host, expected in (("[::1]evil.com", 403), ("[::1].evil.com", 403), ("[::1]:x", 403),
                               ("[::1]:7878", 200), ("[::1]", 200)):  # fmt: skip
            sock = connect(served.port)
            sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status, _headers, body = read_answer(sock)
            sock.close()
            assert status == expected, (host, body)


def test_an_http_1_1_request_without_host_is_a_bad_request(home: Path) -> None:
    with serving(home) as (_service, served):
        sock = connect(served.port)
        sock.sendall(b"GET /health HTTP/1.1\r\n\r\n")
        status, _headers, body = read_answer(sock)
        sock.close()
        assert status == 400 and orjson.loads(body)["field"] == "Host", body
        sock = connect(served.port)
        sock.sendall(b"GET /health HTTP/1.0\r\n\r\n")  # HTTP/1.0 need not name its host
        assert read_answer(sock)[0] == 200
        sock.close()
