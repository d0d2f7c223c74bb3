"""The server's hot path keeps every check: WebSocket point reads on the loop, reused contexts."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from dbhandles import Service
from dbhandles.errors import StorageBusy, Unauthorized
from dbhandles.server import ws as ws_module
from dbhandles.server.app import ServerState
from dbhandles.server.auth import MAX_KNOWN_CONTEXTS
from tests.servers import app_client


def receive(socket: Any, kind: str) -> dict[str, Any]:
    while True:
        message = socket.receive_json()
        assert isinstance(message, dict)
        if message["type"] == kind:
            return message


@pytest.fixture
def wal_handle(service: Service, tmp_path: Path) -> str:
    config = {"path": str(tmp_path / "w.sqlite"), "mode": "create"}
    handle = str(service.execute("data/open", {"adapter": "sqlite", "config": config})["dbHandle"])
    service.execute("data/create", {"dbHandle": handle, "collection": "c", "id": "a", "data": {}})
    return handle


def _recording_threads(service: Service, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread each dispatched command ran on."""
    threads: list[str] = []
    real = service.dispatch

    def recording(name: str, params: Any = None, *, context: Any = None) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return real(name, params, context=context)

    monkeypatch.setattr(service, "dispatch", recording)
    return threads


def test_a_websocket_point_read_is_answered_on_the_loop_in_order(
    service: Service, wal_handle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read the loop may answer runs in the socket's reading loop (no task of its own, no worker
    # thread); everything else still goes to a worker thread, and every request is answered.
    threads = _recording_threads(service, monkeypatch)
    read = {"dbHandle": wal_handle, "collection": "c", "id": "a"}
    with app_client(service) as client, client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        for i in range(5):
            socket.send_json({"type": "request", "id": i, "command": "data/read", "params": read})
        answers = [receive(socket, "response") for _ in range(5)]
        # Each ran before the next message was read: answered in the order sent.
        assert [a["id"] for a in answers] == list(range(5))
        assert all(a["result"]["found"] is True for a in answers)
        socket.send_json({"type": "request", "id": "l", "command": "data/list",
                          "params": {"dbHandle": wal_handle, "collection": "c"}})  # fmt: skip
        assert receive(socket, "response")["result"]["success"] is True
    # The first read connects the database in a worker thread; the loop answers the later ones.
    assert not any(name.startswith("dbhandles") for name in threads[1:5]), threads
    assert threads[5].startswith("dbhandles"), threads


def test_a_websocket_read_while_a_worker_thread_runs_goes_to_a_thread(
    service: Service, wal_handle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = _recording_threads(service, monkeypatch)
    read = {"dbHandle": wal_handle, "collection": "c", "id": "a"}
    with app_client(service) as client, client.websocket_connect("/ws") as socket:
        receive(socket, "hello")
        state: ServerState = client.app.state.dbhandles  # type: ignore[attr-defined]
        socket.send_json({"type": "request", "id": 0, "command": "data/read", "params": read})
        receive(socket, "response")
        state.in_flight += 1  # as while another command runs in a worker thread
        try:
            socket.send_json({"type": "request", "id": 1, "command": "data/read", "params": read})
            assert receive(socket, "response")["result"]["found"] is True
        finally:
            state.in_flight -= 1
    assert threads[-1].startswith("dbhandles"), threads


@pytest.mark.timeout(60)  # unanswered, the request would leave the test waiting for it
@pytest.mark.parametrize("command", ["data/read", "data/list"])
def test_a_websocket_request_whose_token_check_cannot_be_made_is_answered(
    service: Service, wal_handle: str, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    # The store busy while the socket's token is checked again: the request is answered with why
    # (on the loop and in a worker thread alike), nothing runs, and the socket stays open.
    threads = _recording_threads(service, monkeypatch)
    token, _ = service.tokens.create("alice", admin=False)
    busy = [True]

    def recheck(self: Any, force: bool = False) -> None:
        if busy[0]:
            raise StorageBusy("the handle store is busy")

    monkeypatch.setattr(ws_module.Guard, "recheck", recheck)
    params = {"dbHandle": wal_handle, "collection": "c", "id": "a"}
    with (
        app_client(service, require_token=True) as client,
        client.websocket_connect(f"/ws?token={token}") as socket,
    ):
        receive(socket, "hello")
        socket.send_json({"type": "request", "id": 1, "command": command, "params": params})
        answer = receive(socket, "response")
        assert answer["id"] == 1
        assert answer["result"]["success"] is False
        assert answer["result"]["code"] == "storage_busy"
        assert threads == []
        busy[0] = False
        socket.send_json({"type": "request", "id": 2, "command": "data/list",
                          "params": {"collection": "c"}})  # fmt: skip
        assert receive(socket, "response")["id"] == 2


def test_a_reused_context_follows_its_token(service: Service) -> None:
    # A request's context is reused only for the same token and session id, and only after the
    # token was checked again: a revoked token is refused at its very next request.
    token, row = service.tokens.create("alice", admin=False)
    state = ServerState(service)
    try:
        header = f"Bearer {token}"
        first = state.context(header, None)
        assert state.context(header, None) is first
        assert (first.actor, first.is_admin, first.token_id) == ("alice", False, row.token_id)
        scoped = state.context(header, "s1")
        assert scoped.session_id == "alice/s1" and first.session_id == "alice/"
        other, _ = service.tokens.create("bob", admin=False)
        assert state.context(f"Bearer {other}", None).actor == "bob"
        service.tokens.revoke(row.token_id)
        with pytest.raises(Unauthorized):
            state.context(header, None)
    finally:
        state.executor.shutdown()


def test_the_kept_contexts_are_bounded(service: Service) -> None:
    token, _ = service.tokens.create("alice", admin=False)
    state = ServerState(service)
    try:
        for i in range(MAX_KNOWN_CONTEXTS + 10):
            assert state.context(f"Bearer {token}", f"s{i}").session_id == f"alice/s{i}"
        assert len(state._contexts) <= MAX_KNOWN_CONTEXTS
    finally:
        state.executor.shutdown()


def test_a_revoked_token_is_refused_over_http_at_its_next_request(service: Service) -> None:
    token, row = service.tokens.create("alice", admin=False)
    with app_client(service, require_token=True) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            answer = client.post("/commands/data/list", json={"collection": "c"}, headers=headers)
            assert answer.status_code == 200, answer.json()
        service.tokens.revoke(row.token_id)
        answer = client.post("/commands/data/list", json={"collection": "c"}, headers=headers)
        assert (answer.status_code, answer.json()["code"]) == (401, "unauthorized")
