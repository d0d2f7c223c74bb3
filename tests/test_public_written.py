"""The routes that need no token count each answer against its client address until it was written
(server/public.py ``written``, issue 13): a client that does not read keeps its answers counted, yet
holds only its own connections: another connection from its address is served. Counts only; no
time is measured."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from dbhandles.cli.transport import health
from dbhandles.errors import ServerUnreachable
from dbhandles.server.addresses import LOOPBACK
from tests.server_helpers import connect, read_answer, serving, wait_for


def test_a_client_that_does_not_read_holds_only_its_own_connections(home: Path) -> None:
    with serving(home) as (_service, served):
        served.call(lambda: setattr(served.state.public, "limit", 2))
        request = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        readers: list[socket.socket] = []
        try:
            for _ in range(2):  # each pipelines far more than its buffers hold, reads nothing
                sock = connect(served.port, rcvbuf=4096)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.send(request * 400)
                readers.append(sock)
            wait_for(lambda: served.call(lambda: dict(served.state.public.counts)) == {LOOPBACK: 2},
                     "both answers counted, not written")  # fmt: skip
            other = connect(served.port)
            other.sendall(b"GET /commands HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, _headers, body = read_answer(other)
            other.close()
            assert status == 200, body  # eight of them refused the dashboard to everyone here
            # /health is never refused so: the administrator's jtag must always find its server
            # (it took a 429 for "no server" and ran the command in-process, beside it).
            other = connect(served.port)
            other.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, _headers, body = read_answer(other)
            other.close()
            assert status == 200 and b"homeId" in body
            # Neither non-reader ran a second request: its pipelined ones wait for its answer.
            assert served.call(lambda: dict(served.state.public.counts)) == {LOOPBACK: 2}
        finally:
            for sock in readers:
                sock.close()
        wait_for(lambda: not served.call(lambda: dict(served.state.public.counts)),
                 "the counts freed once the clients left")  # fmt: skip


@pytest.mark.parametrize("status", [429, 503])
def test_jtag_takes_a_busy_health_answer_for_a_server_never_for_none(status: int) -> None:
    """A 429 or 503 from /health means a server is there: jtag says so and runs nothing, rather
    than taking it for "no server" and running the command in-process beside it."""

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(ServerUnreachable) as caught:
            health(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert str(status) in caught.value.message and "nothing was run" in caught.value.message
