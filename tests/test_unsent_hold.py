"""Issue 13: a connection whose answers are not sent yet (the kernel's queue included) gets its next
request neither read nor run (``connections.limited_protocol``, ``backpressure.kernel_unsent``):
400 clients that pipelined 50 requests each and never read (SO_RCVBUF 2 KB) had every small answer
taken by the kernel and their next request answered, for ever. Once the client reads, every request
is answered, in order; one that takes nothing within the write deadline is cut.

A real server on loopback; waits are for states, bounded; nothing asserts a speed."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from dbhandles.server.backpressure import (
    PIPELINE_PARSED_AHEAD,
    PIPELINE_UNSENT_BYTES,
    kernel_unsent,
)
from tests.test_server_connections import connect, read_answer, serving, wait_for

REQUESTS = 3000
PIPELINED = 1500
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _held(served: Any) -> bool:
    def look() -> bool:
        return any(getattr(c, "deferred", False) for c in served.server.server_state.connections)

    return bool(served.call(look))


def _answered(served: Any) -> int:
    return int(served.call(lambda: served.server.server_state.total_requests))


def test_a_client_that_does_not_read_gets_no_more_answers_than_the_bound(home: Path) -> None:
    with serving(home) as (_service, served):
        sock = connect(served.port, rcvbuf=2048)
        sock.setblocking(False)
        sent = 0
        data = HEALTH * REQUESTS
        with contextlib.suppress(BlockingIOError):
            while sent < len(data):
                sent += sock.send(data[sent:])
        try:
            wait_for(lambda: _held(served), "the connection to be held for its unsent answers")
            with connect(served.port) as other:
                other.sendall(HEALTH)
                answer = len(read_answer(other)[2]) + 120  # head + body
            answered = _answered(served)
            # What the kernel of both ends took, and the bound, in answers (a generous head room
            # for the receiver's buffer and loopback's accounting): far from all of them.
            assert answered <= (PIPELINE_UNSENT_BYTES + 256 * 1024) // answer + 2, answered
            assert answered < REQUESTS // 2
            # It reads: every request it sent is answered, in order, none lost.
            sock.setblocking(True)
            sock.sendall(b"")  # still open
            stream = sock.makefile("rb")
            rest = data[sent:]
            if rest:
                sock.sendall(rest)
            statuses = [read_answer(stream)[0] for _ in range(REQUESTS)]
            assert statuses == [200] * REQUESTS
        finally:
            sock.close()


def test_a_client_that_takes_nothing_within_the_write_deadline_is_cut(home: Path) -> None:
    with serving(home, public_write_timeout_seconds=0.5) as (_service, served):
        sock = connect(served.port, rcvbuf=2048)
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.send(HEALTH * REQUESTS)
        try:
            wait_for(lambda: served.call(lambda: served.state.wire.stuck) >= 1, "the cut")
            assert not _held(served)
        finally:
            sock.close()


def test_kernel_unsent_counts_what_the_kernel_holds() -> None:
    import asyncio

    async def run() -> tuple[int, int]:
        accepted: list[asyncio.StreamWriter] = []

        async def keep(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)  # the other end: never reads

        server = await asyncio.start_server(keep, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x" * 300_000)
        for _ in range(200):
            if writer.transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        held, buffered = kernel_unsent(writer.transport), writer.transport.get_write_buffer_size()
        writer.transport.abort()
        for other in accepted:
            other.transport.abort()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0)
        return held, buffered

    held, buffered = asyncio.run(run())
    if held == buffered:
        pytest.skip("this system does not report a socket's unsent bytes (SIOCOUTQNSD)")
    assert held > PIPELINE_UNSENT_BYTES


def _parsed(served: Any) -> list[tuple[int, int]]:
    """Per connection: its requests parsed and queued, and its bytes received not parsed yet."""

    def look() -> list[tuple[int, int]]:
        conns = served.server.server_state.connections
        return [(len(c.pipeline), len(getattr(c, "backlog", b""))) for c in conns]

    return list(served.call(look))


def test_pipelined_requests_past_the_bound_wait_unparsed(home: Path) -> None:
    # 400 clients that pipelined 50 requests each and never read held 20,000 parsed requests
    # (60 MB); now a connection parses at most PIPELINE_PARSED_AHEAD ahead of the one running.
    # Each client sends until its answers fill both kernels' buffers (a few pipelined /health
    # answers fit in them whole on an idle machine, and then nothing is held back).
    with serving(home) as (_service, served):
        socks = [connect(served.port, rcvbuf=2048) for _ in range(4)]
        data = HEALTH * PIPELINED
        sent = []
        try:
            for sock in socks:
                sock.setblocking(False)
                done = 0
                with contextlib.suppress(BlockingIOError):
                    while done < len(data):
                        done += sock.send(data[done:])
                sent.append(done)
            wait_for(lambda: sum(1 for _q, b in _parsed(served) if b) == len(socks),
                     "every connection to keep its requests past the bound unparsed")  # fmt: skip
            parsed = _parsed(served)
            assert max(queued for queued, _b in parsed) <= PIPELINE_PARSED_AHEAD, parsed
            # Read: every request is answered, in order, none lost (the rest sent meanwhile).
            for sock, done in zip(socks, sent, strict=True):
                sock.setblocking(True)
                rest = threading.Thread(target=sock.sendall, args=(data[done:],))
                rest.start()
                stream = sock.makefile("rb")
                assert [read_answer(stream)[0] for _ in range(PIPELINED)] == [200] * PIPELINED
                rest.join()
        finally:
            for sock in socks:
                sock.close()


def test_a_half_close_after_unparsed_requests_answers_them_all(home: Path) -> None:
    # The client's end of stream (RFC 9112 9.6) comes after requests kept unparsed: each is
    # answered before the connection closes.
    with serving(home) as (_service, served):
        sock = connect(served.port, rcvbuf=2048)
        try:
            sock.sendall(HEALTH * 200)
            wait_for(lambda: any(b for _q, b in _parsed(served)), "requests kept unparsed")
            sock.shutdown(socket.SHUT_WR)
            stream = sock.makefile("rb")
            assert [read_answer(stream)[0] for _ in range(200)] == [200] * 200
            assert stream.read() == b""  # then closed
        finally:
            sock.close()
