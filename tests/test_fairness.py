"""One actor cannot starve or freeze the server for everyone else (issue 13, parts 2 to 4).

Jobs run apart from the request threads; a WebSocket client that does not read is closed; query
cursors expire and are capped; slow or unauthenticated bodies are cut off; sockets and subscriptions
are capped, and events are delivered off the writer's thread. Every server here is on loopback, every
loop is bounded in count and time, and nothing asserts a speed ratio (benchmarks/fairness.py does).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dbhandles import Context, Service, Settings
from dbhandles.commands import COMMANDS, Command
from dbhandles.errors import DbHandlesError
from dbhandles.server import ws as ws_module
from dbhandles.server.addresses import LOOPBACK
from dbhandles.server.ws_guard import Guard
from tests.servers import ThreadServer, app_client

BOB = Context(actor="bob", is_admin=False, session_id="bob/", trusted_local=False)


def make_service(home: Path, **settings: Any) -> Service:
    return Service(settings=Settings(home=home, **settings))


@contextlib.contextmanager
def serving(
    home: Path, *, require_token: bool = False, **settings: Any
) -> Iterator[tuple[Service, ThreadServer]]:
    service = make_service(home, **settings)
    try:
        with ThreadServer(service, require_token=require_token) as server:
            yield service, server
    finally:
        service.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(condition: Any, timeout: float = 10.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.02)


def write_jsonl(path: Path, lines: int, width: int = 200) -> Path:
    filler = "x" * width
    with path.open("wb") as out:
        for i in range(lines):
            out.write(orjson.dumps({"id": f"r{i:07d}", "text": filler, "n": i}) + b"\n")
    return path


# -- 2. jobs: long commands never hold the request threads ------------------------------------------


def blocking_import(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Semaphore, list[str]]:
    """Make data/import block until released; returns (release, started, threads it ran on)."""
    release = threading.Event()
    started = threading.Semaphore(0)
    threads: list[str] = []

    def handler(service: Service, params: Any, call: Any) -> Any:
        threads.append(threading.current_thread().name)
        started.release()
        if not release.wait(20):
            raise DbHandlesError("the test never released the import")
        raise DbHandlesError("released")

    blocked: Command = dataclasses.replace(
        COMMANDS["data/import"], handler=handler, target=lambda *a: None
    )
    monkeypatch.setitem(COMMANDS, "data/import", blocked)
    return release, started, threads


def test_a_second_actor_is_served_while_two_imports_run(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two imports that never end (before: both request threads held) leave data/list answered."""
    release, started, threads = blocking_import(monkeypatch)
    source = write_jsonl(tmp_path / "in.jsonl", 10)
    # Both imports hold a job thread at once (one actor's share is 1 by default).
    with serving(home, require_token=True, job_threads_per_actor=2) as (service, server):
        admin, _ = service.tokens.create("importer", admin=True)
        reader, _ = service.tokens.create("reader", admin=False)
        service.execute("data/create", {"collection": "c", "data": {"n": 1}})
        answers: list[httpx.Response] = []

        def run_import() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                answers.append(http.post("/commands/data/import", headers=bearer(admin),
                                         json={"input": str(source), "output": str(tmp_path / "o.sqlite")}))  # fmt: skip

        importers = [threading.Thread(target=run_import) for _ in range(2)]
        for t in importers:
            t.start()
        try:
            for _ in range(2):
                assert started.acquire(timeout=10), "the imports did not start"
            with httpx.Client(base_url=server.url, timeout=10) as http:
                t0 = time.monotonic()
                listed = http.post(
                    "/commands/data/list", headers=bearer(reader), json={"collection": "c"}
                )
                elapsed = time.monotonic() - t0
                assert listed.status_code == 200, listed.text
                assert len(listed.json()["items"]) == 1
                assert elapsed < 5, elapsed  # bounded, not a ratio: it used to wait for the imports
                jobs = http.post("/commands/data/job-list", headers=bearer(admin)).json()["jobs"]
                assert sorted(j["status"] for j in jobs) == ["running", "running"]
                # A third job of the same actor is refused at once (DBHANDLES_MAX_JOBS_PER_ACTOR = 2).
                third = http.post("/commands/data/job-start", headers=bearer(admin),
                                  json={"command": "data/vacuum"})  # fmt: skip
                assert (third.status_code, third.json()["code"]) == (429, "too_many_requests")
                # The reader sees none of the importer's jobs.
                assert (
                    http.post("/commands/data/job-list", headers=bearer(reader)).json()["jobs"]
                    == []
                )
                missing = http.post("/commands/data/job-status", headers=bearer(reader),
                                    json={"jobId": jobs[0]["jobId"]})  # fmt: skip
                assert missing.json()["code"] == "job_not_found"
        finally:
            release.set()
            for t in importers:
                t.join(30)
        assert all(name.startswith("dbhandles-job") for name in threads), threads
        assert [a.json()["error"] for a in answers] == ["released", "released"]


def _stop_at_first_chunk(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    """Hold the first progress report of an import until the test says go (deterministic cancel)."""
    from dbhandles import job_hooks

    progressed, go = threading.Event(), threading.Event()
    original = job_hooks.ImportProgress.update

    def update(self: Any, stats: Any) -> None:
        if not progressed.is_set():
            progressed.set()
            go.wait(20)
        original(self, stats)

    monkeypatch.setattr(job_hooks.ImportProgress, "update", update)
    return progressed, go


def test_job_start_status_cancel_and_rerun(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancelled import stops at a chunk boundary and keeps its committed batches; a re-run ends it."""
    source = write_jsonl(tmp_path / "big.jsonl", 12_000, width=300)  # about 4 MiB: several chunks
    output = tmp_path / "big.sqlite"
    progressed, go = _stop_at_first_chunk(monkeypatch)
    params = {"input": str(source), "output": str(output), "batchSize": 1000, "parser": "inline"}
    job = service.execute("data/job-start", {"command": "data/import", "params": params})
    assert job["status"] in ("queued", "running")
    assert progressed.wait(20)
    running = service.execute("data/job-status", {"jobId": job["jobId"]})
    assert running["status"] == "running"
    cancelled = service.execute("data/job-cancel", {"jobId": job["jobId"]})
    assert cancelled["cancelRequested"] is True
    go.set()
    wait_for(
        lambda: service.execute("data/job-status", {"jobId": job["jobId"]})["status"] != "running"
    )
    final = service.execute("data/job-status", {"jobId": job["jobId"]})
    assert final["status"] == "cancelled", final
    assert final["error"]["code"] == "job_cancelled"
    assert "batch" in final["error"]["error"]
    kept = final["progress"]["imported"]
    assert 0 < kept < 12_000
    handle = service.execute("data/open", {"adapter": "sqlite", "config": {"path": str(output)}})[
        "dbHandle"
    ]
    assert service.execute("data/list", {"dbHandle": handle, "collection": "training_examples",
                                         "limit": 1})["count"] == kept  # fmt: skip
    # The re-run stores the rest and skips what the cancelled run kept.
    again = service.execute("data/job-start", {"command": "data/import", "params": params})
    wait_for(
        lambda: service.execute("data/job-status", {"jobId": again["jobId"]})["status"] == "done",
        60,
    )
    result = service.execute("data/job-status", {"jobId": again["jobId"]})["result"]
    assert (result["imported"], result["skipped"]) == (12_000 - kept, kept)


def test_queued_jobs_cancel_at_once_and_only_job_commands_run_as_jobs(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, started, _ = blocking_import(monkeypatch)
    service = make_service(home, job_threads=1, max_jobs_per_actor=3)
    try:
        first = service.execute(
            "data/job-start",
            {"command": "data/import", "params": {"input": "x", "output": "o.sqlite"}},
        )
        assert started.acquire(timeout=10)
        second = service.execute("data/job-start", {"command": "data/vacuum"})
        assert service.execute("data/job-status", {"jobId": second["jobId"]})["status"] == "queued"
        assert (
            service.execute("data/job-cancel", {"jobId": second["jobId"]})["status"] == "cancelled"
        )
        with pytest.raises(DbHandlesError) as refused:
            service.execute(
                "data/job-start", {"command": "data/list", "params": {"collection": "c"}}
            )
        assert refused.value.code == "invalid_params"
        with pytest.raises(DbHandlesError) as bad:
            service.execute("data/job-start", {"command": "data/export", "params": {"nope": 1}})
        assert bad.value.code == "invalid_params"  # params are checked before a job exists
        release.set()
        wait_for(
            lambda: (
                service.execute("data/job-status", {"jobId": first["jobId"]})["status"] == "failed"
            )
        )
        listed = {j["jobId"]: j["status"] for j in service.execute("data/job-list")["jobs"]}
        assert listed == {first["jobId"]: "failed", second["jobId"]: "cancelled"}
    finally:
        release.set()
        service.close()


def test_a_real_import_over_http_runs_as_a_job(home: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", 500)
    with serving(home) as (_service, server), httpx.Client(base_url=server.url, timeout=30) as http:
        body = http.post("/commands/data/import", headers={"X-Session-Id": "s1"},
                         json={"input": str(source), "output": str(tmp_path / "o.sqlite")}).json()  # fmt: skip
        assert body["success"] is True, body
        assert (body["imported"], body["sessionId"]) == (500, "s1")
        jobs = http.post("/commands/data/job-list").json()["jobs"]
        assert [(j["command"], j["status"], j["result"]["imported"]) for j in jobs] == [
            ("data/import", "done", 500)
        ]


# -- 3. memory: a client that does not read, cursors, bodies ----------------------------------------


def _ws_frame(payload: bytes) -> bytes:
    """One masked text frame, as a client sends it."""
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes([0x81, 0x80 | size])
    elif size < 65536:
        head = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _raw_socket(port: int) -> socket.socket:
    """A loopback TCP connection with a small receive buffer (so unread data pushes back fast)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def test_a_websocket_client_that_never_reads_is_closed_within_the_outbox_bound(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 256 * 1024
    connections: list[ws_module.Connection] = []
    original = ws_module.Connection.__init__

    def record(self: ws_module.Connection, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        connections.append(self)

    monkeypatch.setattr(ws_module.Connection, "__init__", record)
    with serving(home, ws_outbox_bytes=limit) as (service, server):
        rows = [
            {"op": "create", "collection": "big", "data": {"text": "y" * 2000}} for _ in range(50)
        ]
        service.execute("data/batch", {"operations": rows})
        sock = _raw_socket(server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())  # fmt: skip
        assert sock.recv(12) == b"HTTP/1.1 101"  # the upgrade; nothing after it is ever read
        request = orjson.dumps({"type": "request", "id": 0, "command": "data/list",
                                "params": {"collection": "big", "limit": 50}})  # fmt: skip
        sent = 0
        with contextlib.suppress(OSError):  # the server cut the connection
            for _ in range(300):  # ~100 KB answers each: about 30 MB asked for, never read
                sock.sendall(_ws_frame(request))
                sent += 1
        wait_for(
            lambda: bool(connections) and connections[0].overflowed, 20, "the socket to be closed"
        )
        wait_for(lambda: httpx.get(f"{server.url}/health").json()["connections"] == 0, 20,
                 "the server to let the socket go")  # fmt: skip
        conn = connections[0]
        biggest = (
            len(orjson.dumps(service.execute("data/list", {"collection": "big", "limit": 50})))
            + 200
        )
        assert conn.peak_bytes <= limit + biggest, (conn.peak_bytes, limit)
        assert conn.queued_bytes == 0 and conn.outbox.qsize() <= 1  # at most the writer's stop
        assert sent < 300 or conn.peak_bytes < 300 * biggest  # what was not read was not kept
        sock.close()


def test_a_socket_closed_for_unread_answers_runs_nothing_more(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a socket is closed for a full outbox, its requests not started yet are dropped and what
    it still sends is not run: building answers nobody reads would take the CPU from others."""
    connections: list[ws_module.Connection] = []
    original = ws_module.Connection.__init__

    def record(self: ws_module.Connection, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        connections.append(self)

    monkeypatch.setattr(ws_module.Connection, "__init__", record)
    with serving(home, ws_outbox_bytes=64 * 1024) as (service, server):
        calls = {"before": 0, "after": 0}
        dispatch = service.dispatch

        def counted(name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
            calls["after" if connections and connections[0].overflowed else "before"] += 1
            return dispatch(name, *args, **kwargs)

        monkeypatch.setattr(service, "dispatch", counted)
        rows = [{"op": "create", "collection": "big", "data": {"text": "y" * 2000}}
                for _ in range(50)]  # fmt: skip
        service.execute("data/batch", {"operations": rows})
        sock = _raw_socket(server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())  # fmt: skip
        assert sock.recv(12) == b"HTTP/1.1 101"
        request = _ws_frame(orjson.dumps({"type": "request", "id": 0, "command": "data/list",
                                          "params": {"collection": "big", "limit": 50}}))  # fmt: skip
        with contextlib.suppress(OSError):  # the server cut the connection
            for _ in range(200):
                sock.sendall(request)
        wait_for(lambda: bool(connections) and connections[0].overflowed, 20, "the overflow")
        wait_for(lambda: httpx.get(f"{server.url}/health").json()["connections"] == 0, 20,
                 "the server to let the socket go")  # fmt: skip
        # At most the commands already past the check in the worker threads (2 + the spare).
        assert calls["after"] <= 3, calls
        assert calls["before"] < 200, calls
        sock.close()


def test_an_actor_whose_socket_overflowed_cools_off(home: Path) -> None:
    """After a non-admin actor's socket was closed for unread answers, its new sockets are refused
    (too_many_requests, 1013) for ``ws_overflow_cooldown_seconds``; other actors' are not."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with serving(home, require_token=True, ws_outbox_bytes=64 * 1024,
                 ws_overflow_cooldown_seconds=600) as (service, server):  # fmt: skip
        bob, _ = service.tokens.create("bob", admin=False)
        carol, _ = service.tokens.create("carol", admin=False)
        rows = [{"op": "create", "collection": "big", "data": {"text": "y" * 2000}}
                for _ in range(50)]  # fmt: skip
        service.execute("data/batch", {"operations": rows})
        sock = _raw_socket(server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                      f"Authorization: Bearer {bob}\r\n\r\n").encode())  # fmt: skip
        assert sock.recv(12) == b"HTTP/1.1 101"
        request = _ws_frame(orjson.dumps({"type": "request", "id": 0, "command": "data/list",
                                          "params": {"collection": "big", "limit": 50}}))  # fmt: skip
        with contextlib.suppress(OSError):
            for _ in range(200):
                sock.sendall(request)
        wait_for(lambda: httpx.get(f"{server.url}/health").json()["connections"] == 0, 20,
                 "the server to close the socket")  # fmt: skip
        sock.close()
        url = f"ws://127.0.0.1:{server.port}/ws"
        with connect(url, additional_headers=bearer(bob)) as again:
            refused = orjson.loads(again.recv(timeout=10))
            assert (refused["type"], refused["code"]) == ("error", "too_many_requests")
            assert "DBHANDLES_WS_OVERFLOW_COOLDOWN_SECONDS" in refused["error"]
            with pytest.raises(ConnectionClosed) as closed:
                again.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == ws_module.CLOSE_TRY_LATER
        with connect(url, additional_headers=bearer(carol)) as other:
            assert orjson.loads(other.recv(timeout=10))["type"] == "hello"


def test_memory_cursors_expire_on_a_timer_and_are_capped(home: Path) -> None:
    with serving(home, cursor_ttl_seconds=0.3, max_cursors_per_actor=3) as (service, server):
        token, _ = service.tokens.create("bob", admin=False)
        with httpx.Client(base_url=server.url, timeout=10, headers=bearer(token)) as http:
            handle = http.post(
                "/commands/data/open", json={"adapter": "memory", "config": {}}
            ).json()["dbHandle"]
            http.post(
                "/commands/data/create", json={"dbHandle": handle, "collection": "c", "data": {}}
            )
            opened = [http.post("/commands/data/query-open", json={"dbHandle": handle, "collection": "c"})
                      for _ in range(3)]  # fmt: skip
            assert all(r.status_code == 200 for r in opened)
            assert len(service.cursors.in_process()) == 3
            # No command runs from now on: the server's own timer expires them.
            wait_for(lambda: not service.cursors.in_process(), 10, "memory cursors to expire")


def test_cursors_per_actor_and_spec_size_are_capped(home: Path) -> None:
    service = make_service(home, max_cursors_per_actor=2, max_cursor_spec_bytes=4096)
    try:
        handle = service.execute("data/open", {"adapter": "memory", "config": {}}, context=BOB)[
            "dbHandle"
        ]
        service.execute(
            "data/create", {"dbHandle": handle, "collection": "c", "data": {}}, context=BOB
        )
        durable = service.execute("data/query-open", {"collection": "c"}, context=BOB)
        service.execute("data/query-open", {"dbHandle": handle, "collection": "c"}, context=BOB)
        refused = service.dispatch(
            "data/query-open", {"dbHandle": handle, "collection": "c"}, context=BOB
        )
        assert refused["code"] == "too_many_requests", refused
        assert "DBHANDLES_MAX_CURSORS_PER_ACTOR" in refused["error"]
        # Another actor, and administrators, are not held back by bob's cursors.
        service.execute("data/query-open", {"collection": "c"})
        # Closing one makes room again.
        service.execute("data/query-close", {"queryHandle": durable["queryHandle"]}, context=BOB)
        service.execute("data/query-open", {"dbHandle": handle, "collection": "c"}, context=BOB)
        # A spec over the limit is refused before anything is counted or stored.
        huge = {"tag": {"$in": [f"value-{i}" for i in range(1000)]}}
        for who in (BOB, Context()):
            too_big = service.dispatch(
                "data/query-open", {"collection": "c", "filter": huge}, context=who
            )
            assert (too_big["code"], too_big["field"]) == ("payload_too_large", "filter")
        assert service.registry.store.get_cursor(durable["queryHandle"]) is None
    finally:
        service.close()


def _http_head(port: int, path: str, length: int, token: str | None = None) -> socket.socket:
    sock = _raw_socket(port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"{auth}Content-Length: {length}\r\n\r\n").encode())  # fmt: skip
    return sock


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, Any]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(rest) < int(headers["content-length"]):
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, orjson.loads(rest)


def test_a_slow_body_is_cut_at_the_deadline(home: Path) -> None:
    with serving(home, body_timeout_seconds=1.0) as (_service, server):
        sock = _http_head(server.port, "/commands/data/list", 1000)
        sock.sendall(b'{"collection": ')  # then nothing more
        t0 = time.monotonic()
        status, headers, body = _answer(sock)
        assert (status, body["code"]) == (408, "request_timeout")
        assert time.monotonic() - t0 < 5
        assert headers.get("connection") == "close"
        assert sock.recv(10) == b""  # closed by the server
        sock.close()


def test_an_unauthenticated_large_body_is_refused_before_it_is_read(home: Path) -> None:
    with serving(home, require_token=True) as (service, server):
        sock = _http_head(server.port, "/commands/data/batch", 9 * 1024 * 1024)
        status, headers, body = _answer(sock)  # answered before a single body byte was sent
        assert (status, body["code"]) == (401, "unauthorized")
        assert headers.get("connection") == "close"
        sock.close()
        token, _ = service.tokens.create("carol", admin=False)
        ok = httpx.post(f"{server.url}/commands/data/list", headers=bearer(token),
                        content=orjson.dumps({"collection": "c", "filter": {"x": "y" * 100_000}}))  # fmt: skip
        assert ok.status_code == 200, ok.text  # a large body with a good token is read and run


def test_requests_in_progress_per_address_are_capped(home: Path) -> None:
    with serving(home, max_connections_per_address=2, body_timeout_seconds=10) as (
        _service,
        server,
    ):
        stalled = [_http_head(server.port, "/commands/data/list", 100) for _ in range(2)]
        time.sleep(0.3)  # both reached the app and wait for their bodies
        third = _http_head(server.port, "/commands/data/list", 100)
        status, _, body = _answer(third)
        assert (status, body["code"]) == (429, "too_many_requests")
        for sock in stalled:
            sock.sendall(b'{"collection": "c"}' + b" " * 81)
            assert _answer(sock)[0] == 200
            sock.close()
        third.close()


def test_an_admin_token_is_let_in_past_the_requests_in_progress_of_its_address(
    home: Path,
) -> None:
    """Anonymous requests in progress hold the address's limit: an administrator's request is
    still run (its token checked from the headers), and so is a non-admin's (counted in its
    actor's share, ``max_requests_per_actor``, not against the address); a bad token's is not,
    nor another anonymous one."""
    with serving(home, require_token=True, max_connections_per_address=2,
                 body_timeout_seconds=10) as (service, server):  # fmt: skip
        admin, _ = service.tokens.create("root", admin=True)
        user, _ = service.tokens.create("carol", admin=False)
        stalled = [_http_head(server.port, "/commands/data/list", 100) for _ in range(2)]
        wait_for(lambda: server_addresses(server) >= 2, message="both in progress")
        body = orjson.dumps({"collection": "c"})
        refused = httpx.post(f"{server.url}/commands/data/list", headers=bearer("dbh_nope"),
                             content=body)  # fmt: skip
        assert refused.json()["code"] == "unauthorized", refused.text
        for token in (admin, user):
            ok = httpx.post(f"{server.url}/commands/data/list", headers=bearer(token), content=body)
            assert ok.status_code == 200, ok.text
        anonymous = httpx.post(f"{server.url}/commands/data/list", content=body)
        assert anonymous.json()["code"] == "too_many_requests"
        for sock in stalled:
            sock.close()


def server_addresses(server: ThreadServer) -> int:
    """Requests in progress from loopback (``ServerState.addresses``), read without the loop: a
    ``Counter`` lookup."""
    state = server.server.config.app.state.dbhandles  # type: ignore[attr-defined]
    return int(state.addresses[LOOPBACK])


# -- 4. subscriptions: capped, and delivered off the writer's thread --------------------------------


def test_sockets_and_subscriptions_per_actor_are_capped(home: Path) -> None:
    service = make_service(home, max_sockets_per_actor=2, max_subscriptions_per_actor=3)
    try:
        token, _ = service.tokens.create("dave", admin=False)
        with app_client(service, require_token=True) as client:
            url = f"/ws?token={token}"
            with client.websocket_connect(url) as one, client.websocket_connect(url) as two:
                for socket_ in (one, two):
                    assert socket_.receive_json()["type"] == "hello"
                with client.websocket_connect(url) as three:
                    refused = three.receive_json()
                    assert (refused["type"], refused["code"]) == ("error", "too_many_requests")
                    closed = three.receive()
                    assert (closed["type"], closed["code"]) == (
                        "websocket.close",
                        ws_module.CLOSE_TRY_LATER,
                    )
                for i, pattern in enumerate(["data:a:*", "data:b:*", "data:c:*"]):
                    (one if i < 2 else two).send_json(
                        {"type": "subscribe", "id": i, "pattern": pattern}
                    )
                assert [one.receive_json()["type"] for _ in range(2)] == ["subscribed"] * 2
                assert two.receive_json()["type"] == "subscribed"
                two.send_json({"type": "subscribe", "id": 9, "pattern": "data:d:*"})
                over = two.receive_json()
                assert (over["type"], over["code"], over["id"]) == ("error", "too_many_requests", 9)
                one.send_json({"type": "unsubscribe", "id": 10, "pattern": "data:a:*"})
                assert one.receive_json()["found"] is True
                two.send_json({"type": "subscribe", "id": 11, "pattern": "data:d:*"})
                assert two.receive_json()["type"] == "subscribed"
    finally:
        service.close()


def test_a_write_never_delivers_events_itself(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many sockets and subscriptions exist, the bus holds one subscription, and permission
    checks and serialisation happen in the fan-out thread, never in the writer's."""
    checked_in: set[str] = set()
    original = Guard.may_see

    def may_see(self: Guard, event: Any, generation: Any = None) -> bool:
        checked_in.add(threading.current_thread().name)
        return original(self, event, generation)

    monkeypatch.setattr(Guard, "may_see", may_see)
    with app_client(service) as client, contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(client.websocket_connect("/ws")) for _ in range(4)]
        for socket_ in sockets:
            assert socket_.receive_json()["type"] == "hello"
            for i in range(25):
                socket_.send_json(
                    {"type": "subscribe", "id": i, "pattern": f"data:c{i}:*" if i else "data:*"}
                )
            assert [socket_.receive_json()["type"] for _ in range(25)] == ["subscribed"] * 25
        assert len(service.events._subs) == 1  # the server's fan-out, not 100 subscriptions
        writer = threading.current_thread().name
        service.execute("data/create", {"collection": "c1", "data": {"text": "z" * 100_000}})
        for socket_ in sockets:
            got = socket_.receive_json()  # one message, for "data:*" and "data:c1:*"
            assert (got["type"], got["pattern"]) == ("event", "data:*")
            assert got["patterns"] == ["data:*", "data:c1:*"]
            assert len(got["payload"]["record"]["text"]) == 100_000
            socket_.send_json({"type": "ping", "id": "p"})
            assert socket_.receive_json()["type"] == "pong"  # and no second copy of the event
        assert checked_in == {"dbhandles-events"}, (checked_in, writer)
    assert not service.events._subs
