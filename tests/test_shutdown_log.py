"""A clean shutdown under load logs what happened at its level: no uvicorn ``ERROR: Cancel 0 running
task(s), timeout graceful shutdown exceeded`` when nothing was cancelled (issue 13)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from dbhandles import Service
from dbhandles.cli.serve import bind, server_config
from dbhandles.server import create_app
from dbhandles.server.shutdown import GracefulServer
from tests.servers import wait_for_health


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "dbhandles.server.shutdown")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_client_that_does_not_read_is_cut_off_without_an_error(
    service: Service, records: Records
) -> None:
    app = create_app(service, require_token=False)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = server_config(app, service.settings, log_level="info")
    server = GracefulServer(config, app.state.dbhandles, 0.2)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    client = socket.socket()
    try:
        wait_for_health(f"http://127.0.0.1:{port}")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        # Pipelined requests for a 200 KB document, none of whose answers is read.
        client.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 4)
        wait_for_health(f"http://127.0.0.1:{port}")  # the server took the first request meanwhile
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the server did not stop"
    finally:
        client.close()
        sock.close()
    errors = [r.getMessage() for r in records.records if r.levelno >= logging.ERROR]
    assert errors == []
    cut = [r for r in records.records if "cut off" in r.getMessage()]
    assert len(cut) == 1
    assert "1 connection(s)" in cut[0].getMessage()
    assert "1 with an answer not read in full" in cut[0].getMessage()
    assert cut[0].levelno == logging.WARNING
