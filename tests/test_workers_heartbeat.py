"""``jtag serve --workers``: a worker that stops taking its connections (``SIGSTOP``) is noticed by
its heartbeat, dealt no more connections, then killed and started again (``server/workers.py``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from typing import Any

import pytest

from dbhandles.server.workers import Supervisor, bind_listener, receive_connections
from tests.servers import index_worker

TIMEOUT = 30.0


def _wait(condition: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def _ask(port: int) -> tuple[int, int]:
    """Connect; the (worker index, pid) that answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
        index, pid = client.recv(64).split()
    return int(index), int(pid)


def test_a_stopped_worker_is_dealt_nothing_then_killed_and_started_again() -> None:
    listener = bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    supervisor = Supervisor(
        index_worker,
        listener, 2, env=dict(os.environ),
        heartbeat_seconds=0.1, stall_seconds=1.0, hung_seconds=4.0, start_seconds=TIMEOUT,
    )  # fmt: skip
    runner = threading.Thread(target=supervisor.run)
    runner.start()
    stopped: int | None = None
    try:
        pids = dict(_ask(port) for _ in range(2))  # dealt in turn: one each
        assert sorted(pids) == [0, 1]
        stopped = pids[0]
        os.kill(stopped, signal.SIGSTOP)
        _wait(lambda: supervisor.taking == [False, True], "the dealer to skip the stopped worker")
        # Every new connection goes to the worker that takes them, none waits on the stopped one.
        assert [_ask(port) for _ in range(4)] == [(1, pids[1])] * 4
        _wait(lambda: supervisor.hung == [1, 0], "the stopped worker to be killed")
        _wait(lambda: supervisor.taking == [True, True], "its successor")
        answers = {_ask(port) for _ in range(4)}
        successor = {pid for index, pid in answers if index == 0}
        assert successor and stopped not in successor, answers
        assert supervisor.failed is None
    finally:
        if stopped is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped, signal.SIGCONT)
        supervisor.stop()
        runner.join()
        listener.close()


def test_a_worker_answers_heartbeats_without_taking_them_for_connections() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a, b = socket.socketpair()
    try:
        mine.sendall(b"h")
        socket.send_fds(mine, [b"c"], [b.fileno()])
        mine.sendall(b"h")
        b.close()
        theirs.setblocking(False)
        taken = receive_connections(theirs)
        assert taken is not None and len(taken) == 1
        taken[0].close()
        mine.settimeout(TIMEOUT)
        answers = b""
        while len(answers) < 2:
            answers += mine.recv(2 - len(answers))
        assert answers == b"aa"  # one answer per heartbeat
    finally:
        for sock in (mine, theirs, a):
            sock.close()
