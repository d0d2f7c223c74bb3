"""Backpressure (issue 13): a client that asks and never reads gets little computed ahead of what
it reads. The kernel holds at most ``KERNEL_UNSENT_BYTES`` of a connection's unsent output, an HTTP
connection runs its next pipelined request only once the answer before it went out, and a WebSocket
is not read while its unsent output is over ``WS_UNSENT_BYTES``.

Every server is ``server_config`` (what ``jtag serve`` runs) on loopback in a thread; every wait is
bounded, and nothing asserts a speed: the mechanisms are checked (socket options, what ran).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service
from dbhandles.server import ws as ws_module
from dbhandles.server.addresses import LOOPBACK
from dbhandles.server.backpressure import (
    KERNEL_UNSENT_BYTES,
    WS_UNSENT_BYTES,
    limit_kernel_unsent,
)
from tests.server_helpers import connect, post, read_answer, serving, wait_for

needs_lowat = pytest.mark.skipif(
    not hasattr(socket, "TCP_NOTSENT_LOWAT"), reason="no TCP_NOTSENT_LOWAT on this system"
)
#: Four records of 250 KB: a data/list answer of about 1 MB.
MB_LIST = {"collection": "big", "limit": 4}


def fill(service: Service) -> None:
    for i in range(4):
        service.execute("data/create", {"collection": "big", "id": f"r{i}",
                                        "data": {"x": "y" * 250_000}})  # fmt: skip


def counting(service: Service, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    ran: list[str] = []
    dispatch = service.dispatch

    def counted(name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        ran.append(name)
        return dispatch(name, *args, **kwargs)

    monkeypatch.setattr(service, "dispatch", counted)
    return ran


# -- the kernel ----------------------------------------------------------------------------------


@needs_lowat
def test_every_accepted_connection_bounds_what_the_kernel_holds_unsent(home: Path) -> None:
    with serving(home, header_timeout_seconds=60.0) as (_service, served):
        socks = [connect(served.port) for _ in range(3)]
        wait_for(lambda: served.call(lambda: len(served.server.server_state.connections)) >= 3,
                 "3 connections")  # fmt: skip

        def lowats() -> list[int]:
            return [
                p.transport.get_extra_info("socket").getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT
                )
                for p in served.server.server_state.connections
            ]

        assert served.call(lowats) == [KERNEL_UNSENT_BYTES] * len(socks)
        for sock in socks:
            sock.close()


def test_the_option_is_skipped_where_it_cannot_be_set() -> None:
    """A transport without a TCP socket (a Unix socket, a test double) is left as it is."""

    class NoSocket(asyncio.BaseTransport):
        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return default

    assert limit_kernel_unsent(NoSocket()) is False
    left, right = socket.socketpair()  # AF_UNIX: no TCP option
    try:

        class Unix(asyncio.BaseTransport):
            def get_extra_info(self, name: str, default: Any = None) -> Any:
                return left if name == "socket" else default

        assert limit_kernel_unsent(Unix()) is False
    finally:
        left.close()
        right.close()


# -- HTTP: pipelined requests --------------------------------------------------------------------


@needs_lowat
def test_a_pipelining_client_that_does_not_read_gets_one_answer_built(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client socket as any program opens it (its default receive buffer): forty 1 MB answers
    asked for at once, none read. Before the kernel bound, four were built (about 4 MB went into
    the kernel's send buffer before the transport's filled)."""
    with serving(home) as (service, served):
        fill(service)
        ran = counting(service, monkeypatch)
        sock = connect(served.port)
        sock.sendall(post("data/list", MB_LIST) * 40)
        wire = served.state.wire
        wait_for(lambda: served.call(lambda: wire.unsent(LOOPBACK)) > 0, "unsent")
        time.sleep(0.5)  # room for a wrong server to start the next one
        assert ran == ["data/list"]
        stream = sock.makefile("rb")
        for _ in range(40):  # every answer arrives whole once the client reads
            status, _, body = read_answer(stream)
            assert status == 200 and len(orjson.loads(body)["items"]) == 4
        assert len(ran) == 40
        stream.close()
        sock.close()


# -- WebSocket -----------------------------------------------------------------------------------


def test_a_websocket_that_does_not_read_is_not_read_either(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 requests for 1 MB answers, nothing read, an outbox that would take them all: once the
    answers waiting are over ``WS_UNSENT_BYTES`` the server reads no more messages, so no more
    than the requests it had read already (at most ``MAX_REQUESTS_IN_FLIGHT``) are run. Then the
    client reads, and every request is answered."""
    from websockets.sync.client import connect as ws_connect

    connections: list[ws_module.Connection] = []
    original = ws_module.Connection.__init__

    def record(self: ws_module.Connection, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        connections.append(self)

    monkeypatch.setattr(ws_module.Connection, "__init__", record)
    with serving(home, ws_outbox_bytes=1 << 30) as (service, served):
        fill(service)
        ran = counting(service, monkeypatch)
        url = f"ws://127.0.0.1:{served.port}/ws"
        # max_queue: the client library stops reading after two messages (as a client that
        # does not read); its own buffer and the kernel's hold little more.
        with ws_connect(url, max_queue=2, max_size=None) as client:
            for i in range(300):
                client.send(orjson.dumps({"type": "request", "id": i, "command": "data/list",
                                          "params": MB_LIST}).decode())  # fmt: skip
            wait_for(lambda: bool(connections), "the connection")
            conn = connections[0]
            wait_for(lambda: served.call(lambda: conn.gate.closed and not conn.tasks),
                     "reading paused, every request read answered")  # fmt: skip
            # Paused at the transport: uvicorn parses no more of the client's frames.
            assert served.call(lambda: conn.gate.paused_transport)
            assert conn.gate.unsent > WS_UNSENT_BYTES
            held = len(ran)
            time.sleep(0.5)  # room for a wrong server to read and run more
            # What was read before the first answer (the requests in flight), plus a few whose
            # answers the client library (two messages) and the kernels took before it stopped.
            assert len(ran) == held <= ws_module.MAX_REQUESTS_IN_FLIGHT + 8, held
            answered = set()
            hello = orjson.loads(client.recv(timeout=30))
            assert hello["type"] == "hello"
            while len(answered) < 300:
                message = orjson.loads(client.recv(timeout=30))
                assert message["type"] == "response", message
                assert message["result"]["success"] is True
                answered.add(message["id"])
        assert len(ran) == 300
        assert not conn.overflowed
