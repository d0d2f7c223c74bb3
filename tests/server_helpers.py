"""A real server for the tests of connections: ``create_app`` under ``server_config`` (what
``jtag serve`` runs) on loopback in a thread, and raw sockets to it. Every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import orjson

from dbhandles import Service, Settings
from dbhandles.cli.serve import bind, server_config
from dbhandles.server import create_app
from dbhandles.server.addresses import LOOPBACK
from dbhandles.server.app import ServerState
from tests.servers import wait_for_health

#: Another source address on loopback (Linux routes all of 127/8 there): the same client address
#: for every per-address limit (``addresses.LOOPBACK``), so what it tells apart is only the socket.
OTHER = "127.0.0.2"


class Served:
    """``create_app`` under ``server_config`` in a thread, on a free loopback port."""

    def __init__(self, service: Service, require_token: bool = False) -> None:
        import uvicorn

        self.app = create_app(service, require_token=require_token)
        self.state: ServerState = self.app.state.dbhandles
        self.sock = bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = server_config(self.app, service.settings)
        config.timeout_graceful_shutdown = 2
        config.app, config.interface = self._capture_loop, "asgi3"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    async def _capture_loop(self, scope: Any, receive: Any, send: Any) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def call(self, fn: Any) -> Any:
        """``fn()`` on the server's event loop (where ``Wire`` lives), its result."""
        done = threading.Event()
        out: list[Any] = []

        def run() -> None:
            out.append(fn())
            done.set()

        assert self.loop is not None
        self.loop.call_soon_threadsafe(run)
        assert done.wait(10), "the event loop did not answer"
        return out[0]

    def __enter__(self) -> Served:
        self.thread.start()
        try:
            wait_for_health(self.url)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@contextlib.contextmanager
def serving(
    home: Path, require_token: bool = False, **settings: Any
) -> Iterator[tuple[Service, Served]]:
    service = Service(settings=Settings(home=home, **settings))
    try:
        with Served(service, require_token) as served:
            yield service, served
    finally:
        service.close()


def connect(port: int, source: str = "127.0.0.1", rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source, 0))
    sock.settimeout(20)  # generous: every wait below is for the server to act
    sock.connect(("127.0.0.1", port))
    return sock


def post(name: str, params: dict[str, Any], token: str | None = None) -> bytes:
    body = orjson.dumps(params)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST /commands/{name} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{auth}Content-Length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip


def read_answer(sock: socket.socket | BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer: status, headers, body. Pipelined answers are read from one
    ``sock.makefile("rb")``, which keeps what it read past an answer for the next."""
    stream = sock.makefile("rb") if isinstance(sock, socket.socket) else sock
    status_line = stream.readline()
    assert status_line, "connection closed without an answer"
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers["content-length"]))
    assert len(body) == int(headers["content-length"]), "connection closed in an answer"
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (read until end of stream; a reset counts)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def wait_for(condition: Any, message: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        time.sleep(0.02)


def health_from(url: str, source: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=20) as client:
        return client.get(f"{url}/health")


def untrusted(served: Served) -> int:
    """How many connections from loopback ``served`` counts as not yet authenticated."""
    return int(served.call(lambda: served.state.wire.open[LOOPBACK]))
