"""Issue 13: closing a connection to make room for a newcomer never writes to a transport that is
closing or half-closed (its end of stream written), and the newcomer is admitted whatever state the
closed connection was in (``RuntimeError: Cannot call write() after write_eof()`` aborted it).

Fake transports with asyncio's rules (no write after ``write_eof``), the real protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import pytest

from dbhandles.errors import InvalidParams
from dbhandles.server.connection_counts import Wire, refusal_bytes
from dbhandles.server.connections import limited_protocol
from dbhandles.settings import Settings


class HalfClosable(asyncio.Transport):
    """A transport that refuses writes after ``write_eof`` and after ``close``, as asyncio's do."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.written = b""
        self.eof = False
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = {"peername": ("127.0.0.1", self.port), "sockname": ("127.0.0.1", 7878)}
        return extra.get(name, default)

    def write(self, data: Any) -> None:
        if self.eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self.closed:
            raise RuntimeError("unable to perform operation on a closed transport")
        self.written += bytes(data)

    def write_eof(self) -> None:
        self.eof = True

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:  # never called: no request is sent
    raise AssertionError("no request was sent")


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = asyncio.new_event_loop()
    yield made
    made.close()


def _protocols(loop: asyncio.AbstractEventLoop, wire: Wire) -> Any:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    config = Config(app=_app, log_level="critical")
    state = ServerState()
    protocol = limited_protocol(wire)
    return lambda: protocol(config, state, {}, _loop=loop)  # type: ignore[call-arg]


def _half_close(held: Any) -> None:
    """Its head refused: the refusal written, then the end of stream (it lingers to read)."""
    held._end(refusal_bytes(400, InvalidParams("not HTTP", field="request")))


def _close(held: Any) -> None:
    held.transport.close()


@pytest.mark.parametrize("state", [_half_close, _close], ids=["half-closed", "closing"])
def test_evicting_a_half_closed_or_closing_connection_skips_the_write_and_admits_the_newcomer(
    loop: asyncio.AbstractEventLoop, state: Any
) -> None:
    wire = Wire(Settings(max_connections_per_address=1))
    new = _protocols(loop, wire)
    old, old_transport = new(), HalfClosable(1)
    old.connection_made(old_transport)
    state(old)
    before = old_transport.written
    newcomer, newcomer_transport = new(), HalfClosable(2)
    newcomer.connection_made(newcomer_transport)  # no RuntimeError
    assert not newcomer_transport.closed and newcomer_transport.written == b""
    assert old_transport.closed and old_transport.written == before  # nothing written after eof
    assert wire.open["loopback"] == 1 and old.evicted


def test_evicting_an_idle_open_connection_still_says_why(loop: asyncio.AbstractEventLoop) -> None:
    wire = Wire(Settings(max_connections_per_address=1))
    new = _protocols(loop, wire)
    old, old_transport = new(), HalfClosable(1)
    old.connection_made(old_transport)
    newcomer, newcomer_transport = new(), HalfClosable(2)
    newcomer.connection_made(newcomer_transport)
    assert old_transport.closed and b"429 Too Many Requests" in old_transport.written
    assert b"DBHANDLES_MAX_CONNECTIONS_PER_ADDRESS" in old_transport.written
    assert not newcomer_transport.closed


@pytest.mark.parametrize("fails", ["evict", "evict_after_answer"])
def test_a_connection_that_fails_as_it_is_closed_never_aborts_the_newcomer(fails: str) -> None:
    class Broken:
        def __init__(self) -> None:
            self.closed = False

        def evictable(self) -> bool:
            return fails == "evict"

        def evict(self, refusal: bytes) -> None:
            raise RuntimeError("Cannot call write() after write_eof()")

        def evict_after_answer(self) -> None:
            raise RuntimeError("unable to perform operation on a closed transport")

        def close(self) -> None:  # as the transport it stands for
            self.closed = True

    wire = Wire(Settings(max_connections_per_address=1))
    broken = Broken()
    assert wire.admit("loopback", 0, cast(Any, broken), broken) is None
    if fails == "evict_after_answer":
        wire.refusing.add(cast(Any, broken))
    assert wire.admit("loopback", 1, cast(Any, object()), Broken()) is None
    assert broken.closed and wire.open["loopback"] == 1 and wire.leaving == 1
