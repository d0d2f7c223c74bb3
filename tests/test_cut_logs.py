"""Issue 13: a connection the server cuts on purpose writes no ERROR line. 400 non-reading
pipelining connections cut at the write deadline wrote 283 x uvicorn's ``ASGI callable returned
without completing response.`` per flood: ``public.serve_public`` aborted the transport and
returned before uvicorn learnt the connection was lost. Its siblings: an upgrade refused for the
address's rate, a token, another site's page. Counts of log records only; no time is measured."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbhandles.server import public
from tests.server_helpers import connect, serving, wait_for
from tests.test_public_flood import closed_by_server, cuts, non_readers
from tests.test_ws_refusal_rate import made_up, status_of, upgrade

#: uvicorn's (the server's own propagate to the root, where ``caplog`` listens).
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")


class Errors:
    """The ERROR (and worse) records of uvicorn's and the server's loggers once ``listen`` was
    called: after the server started, whose logging configuration replaces the handlers of
    uvicorn's loggers (which do not propagate to the root, where ``caplog`` listens)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.loggers = [logging.getLogger(name) for name in LOGGERS]

    def listen(self) -> None:
        for logger in self.loggers:
            logger.addHandler(self.caplog.handler)

    def stop(self) -> None:
        for logger in self.loggers:
            logger.removeHandler(self.caplog.handler)

    def saying(self, words: str) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if words in r.getMessage()]

    def found(self) -> list[str]:
        records = self.caplog.records
        return [r.getMessage() for r in records if r.levelno >= logging.ERROR]


@pytest.fixture
def errors(caplog: pytest.LogCaptureFixture) -> Iterator[Errors]:
    caplog.set_level(logging.INFO)
    found = Errors(caplog)
    try:
        yield found
    finally:
        found.stop()


@pytest.mark.parametrize("path", ["/openapi.json", "/commands", "/no/such/page", "/", "/jtag.js"])
def test_connections_cut_at_the_write_deadline_log_no_error(
    home: Path, path: str, errors: Errors
) -> None:
    settings = {"public_requests_per_address": 1000, "public_rate": 0.0,
                "public_write_timeout_seconds": 0.2}  # fmt: skip
    count = 40
    with serving(home, **settings) as (_service, served):
        errors.listen()
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        with non_readers(served.port, count, request) as socks:
            wait_for(lambda: cuts(served) >= count, "every connection cut")
            for sock in socks:
                assert closed_by_server(sock)
        assert cuts(served) >= count  # they were cut, on purpose: quietly
    assert errors.found() == []


def test_refused_upgrades_log_no_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, errors: Errors
) -> None:
    """Refused within the rate (``101`` then close 1008), past it (429 as the denial response),
    and another site's page (403)."""
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", 0.0)
    cross = "Origin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n"
    requests = [upgrade(f"/ws?token={made_up()}") for _ in range(8)] + [upgrade(extra=cross)] * 4
    with serving(home, require_token=True, public_rate=1.0, public_burst=4) as (_svc, served):
        errors.listen()
        socks: list[socket.socket] = []
        try:
            for request in requests:
                sock = connect(served.port)
                sock.sendall(request)
                socks.append(sock)
            statuses = [status_of(sock) for sock in socks]
        finally:
            for sock in socks:
                sock.close()
        assert set(statuses) <= {101, 403, 429} and 429 in statuses, statuses
    assert errors.found() == []


@pytest.mark.parametrize("stall", ["body", "start"])
def test_an_answer_cut_halfway_at_the_deadline_logs_no_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, errors: Errors, stall: str
) -> None:
    """The flood's case made certain: the answer's head is written, and its body's ``send`` waits
    for the client to read (uvicorn's ``drain``), which it never does, until the deadline. Cut
    there, uvicorn logged ``ASGI callable returned without completing response`` (with no answer
    started, ``... without starting response`` and a 500 it would write to a cut connection)."""
    original = public.serve_public

    async def stalled(app: Any, *args: Any) -> None:
        async def half(scope: Any, receive: Any, send: Any) -> None:
            if stall == "body":
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-length", b"10")]})  # fmt: skip
            await asyncio.Event().wait()  # as a drain that never ends

        await original(half, *args)

    monkeypatch.setattr(public, "serve_public", stalled)
    settings = {"public_rate": 0.0, "public_write_timeout_seconds": 0.2}
    with serving(home, **settings) as (_service, served):
        errors.listen()
        for _ in range(5):
            sock = connect(served.port)
            try:
                sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert closed_by_server(sock)
            finally:
                sock.close()
        wait_for(lambda: cuts(served) >= 5, "every answer cut")
    assert errors.found() == []
    # At most one summary line for them all (``public.CUT_LOG_SECONDS``), not one each.
    told = errors.saying("answer not taken within")
    assert len(told) == 1 and told[0].startswith("1 connection(s) cut, the latest "), told


def test_upgrades_whose_client_left_before_the_refusal_log_no_error(
    home: Path, monkeypatch: pytest.MonkeyPatch, errors: Errors
) -> None:
    """Clients that leave while their refusal is paused (past the rate) or checked: the refusal
    is sent to nobody, quietly."""
    monkeypatch.setattr(public, "REFUSAL_PAUSE_SECONDS", 0.3)
    with serving(home, require_token=True, public_rate=1.0, public_burst=2) as (_svc, served):
        errors.listen()
        for _ in range(12):
            sock = connect(served.port)
            sock.sendall(upgrade(f"/ws?token={made_up()}"))
            sock.close()
        wait_for(lambda: served.call(lambda: served.state.public_rate.next_refusal) > 0, "paused")
        sock = connect(served.port)  # answered once those were: the server is past them
        try:
            sock.sendall(upgrade())
            assert status_of(sock) in (101, 429)
        finally:
            sock.close()
    assert errors.found() == []
