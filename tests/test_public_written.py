"""The routes that need no token hold their per-address slot until the answer was written
(server/public.py ``written``, issue 13): a client that does not read keeps its slots, and the
address's next request past the limit is refused. Counts only; no time is measured."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from dbhandles.cli.transport import health
from dbhandles.errors import ServerUnreachable
from tests.test_server_connections import connect, read_answer, serving, wait_for


def test_a_client_that_does_not_read_keeps_its_public_slots(home: Path) -> None:
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
            wait_for(lambda: served.call(lambda: dict(served.state.public.counts)) == {"127.0.0.1": 2},
                     "both slots held by answers not written")  # fmt: skip
            other = connect(served.port)
            other.sendall(b"GET /commands HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, _headers, body = read_answer(other)
            other.close()
            assert status == 429 and b"requests in progress" in body
            # /health is never refused so: the administrator's jtag must always find its server
            # (it took a 429 for "no server" and ran the command in-process, beside it).
            other = connect(served.port)
            other.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, _headers, body = read_answer(other)
            other.close()
            assert status == 200 and b"homeId" in body
        finally:
            for sock in readers:
                sock.close()
        wait_for(lambda: not served.call(lambda: dict(served.state.public.counts)),
                 "the slots freed once the clients left")  # fmt: skip


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
