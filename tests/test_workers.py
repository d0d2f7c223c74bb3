"""``jtag serve --workers=2`` on the SQLite default: two processes, one port, one home.

Each request is sent through a connection known to reach a given worker (``/health`` answers with
the worker's pid), so "the other worker" is checked, not hoped for. The event log under the bridge
(``events/sqlite_log.py``) is also tested on its own, between two services in this process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from dbhandles import Service
from dbhandles.cli.serve import parse_options
from dbhandles.errors import InvalidParams
from dbhandles.events import EventBus, sqlite_log
from dbhandles.events.sqlite_log import RESUMED, SqliteEventLog
from dbhandles.server.workers import Supervisor, bind_listener, receive_connections, settings_env
from dbhandles.settings import Settings
from tests.servers import (
    ServerProcess,
    envelope_of,
    index_worker,
    jtag_env,
    next_event,
    run_jtag,
    subscribed,
)

TIMEOUT = 30.0


def _wait(condition: Any, what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An orphan that exited stays a zombie until an init that reaps gets to it: that is stopped too.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


class Pinned:
    """Commands over one kept-alive connection, so every request reaches the same worker."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}", "X-Session-Id": "walker"},
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=30,
        )
        self.pid = int(self.health()["pid"])

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get("/health").json()
        return body

    def __call__(self, command: str, **params: Any) -> dict[str, Any]:
        envelope: dict[str, Any] = self.http.post(f"/commands/{command}", json=params).json()
        assert envelope["success"] is True, (self.pid, command, envelope)
        return envelope

    def close(self) -> None:
        self.http.close()


def _pin_both(server: ServerProcess) -> dict[int, Pinned]:
    """One pinned connection to each of the two workers (new connections until both answered)."""
    found: dict[int, Pinned] = {}
    deadline = time.monotonic() + TIMEOUT
    while len(found) < 2:
        if time.monotonic() > deadline:
            for client in found.values():
                client.close()
            pytest.fail(f"every connection reached the same worker: {sorted(found)}")
        client = Pinned(server.url, server.token)
        if client.pid in found:
            client.close()
        else:
            found[client.pid] = client
    return found


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A two-worker server for the tests that leave it running."""
    with ServerProcess(tmp_path_factory.mktemp("workers") / "home", None, "--workers=2") as proc:
        yield proc


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A two-worker server of this test's own (it stops or kills it)."""
    with ServerProcess(tmp_path / "home", None, "--workers=2") as proc:
        yield proc


def _workers(server: ServerProcess) -> Iterator[tuple[Pinned, Pinned]]:
    found = _pin_both(server)
    try:
        first, second = found.values()
        yield first, second
    finally:
        for client in found.values():
            client.close()


@pytest.fixture
def workers(shared: ServerProcess) -> Iterator[tuple[Pinned, Pinned]]:
    yield from _workers(shared)


@pytest.fixture
def own_workers(server: ServerProcess) -> Iterator[tuple[Pinned, Pinned]]:
    yield from _workers(server)


# -- the server ------------------------------------------------------------------------------------


@pytest.mark.needs_server
def test_a_write_through_one_worker_reaches_a_subscriber_on_the_other(
    shared: ServerProcess, workers: tuple[Pinned, Pinned]
) -> None:
    server = shared
    with subscribed(server, server.token) as sock:
        # The worker that holds the WebSocket reports it; the write goes through the other one.
        _wait(lambda: any(w.health()["connections"] for w in workers), "the socket to be counted")
        holder = next(w for w in workers if w.health()["connections"])
        writer = next(w for w in workers if w is not holder)
        assert writer.pid != holder.pid
        writer("data/create", collection="notes", id="n1", data={"text": "hello"})
        event = next_event(sock)
        assert event["event"] == "data:notes:created" and event["pattern"] == "data:*"
        assert event["payload"]["dbHandle"] == "default"
        assert event["payload"]["record"]["text"] == "hello"
        # Order is kept, and a write on the subscriber's own worker arrives once (no echo).
        writer("data/update", collection="notes", id="n1", data={"text": "x" * 20_000})
        holder("data/delete", collection="notes", id="n1")
        updated, deleted = next_event(sock), next_event(sock)
        assert updated["event"] == "data:notes:updated"
        assert len(updated["payload"]["record"]["text"]) == 20_000
        assert deleted["event"] == "data:notes:deleted"
        # A Python service on the same home (no server involved) reaches it too.
        with Service(settings=Settings(home=server.home)) as local:
            local.execute("data/create", {"collection": "notes", "id": "n2", "data": {}})
        event = next_event(sock)
        assert event["event"] == "data:notes:created" and event["payload"]["id"] == "n2"


@pytest.mark.needs_server
def test_a_cursor_opened_on_one_worker_continues_on_the_other(
    workers: tuple[Pinned, Pinned],
) -> None:
    a, b = workers
    ops = [
        {"op": "create", "collection": "rows", "id": f"r{i:03d}", "data": {"i": i}}
        for i in range(23)
    ]
    a("data/batch", operations=ops)
    cursor = a("data/query-open", collection="rows", orderBy=["id"], pageSize=5)["queryHandle"]
    pages = [(b, a)[turn % 2]("data/query-next", queryHandle=cursor) for turn in range(6)]
    assert [p["pageNumber"] for p in pages[:5]] == [0, 1, 2, 3, 4]
    assert [i["id"] for p in pages for i in p["items"]] == [f"r{i:03d}" for i in range(23)]
    assert pages[4]["hasMore"] is False and pages[5]["items"] == []


@pytest.mark.needs_server
def test_a_job_started_on_one_worker_is_followed_and_cancelled_on_the_other(
    workers: tuple[Pinned, Pinned], tmp_path: Path
) -> None:
    a, b = workers
    source = tmp_path / "big.jsonl"
    with source.open("wb") as out:  # large enough to be running still when the cancel arrives
        for i in range(600_000):
            out.write(orjson.dumps({"id": f"r{i:07d}", "n": i, "text": "x" * 40}) + b"\n")
    params = {"input": str(source), "output": str(tmp_path / "out.sqlite"), "collection": "c",
              "batchSize": 50, "parser": "inline"}  # fmt: skip
    # ``command`` is a field of data/job-start, so the body is sent as it is.
    started = a.http.post(
        "/commands/data/job-start", json={"command": "data/import", "params": params}
    )
    job_id = started.json()["jobId"]
    _wait(lambda: b("data/job-status", jobId=job_id)["progress"].get("imported"), "progress")
    seen = b("data/job-status", jobId=job_id)
    assert (seen["status"], seen["params"]["input"]) == ("running", str(source))
    assert job_id in [j["jobId"] for j in b("data/job-list")["jobs"]]
    assert b("data/job-cancel", jobId=job_id)["cancelRequested"] is True
    _wait(lambda: a("data/job-status", jobId=job_id)["status"] != "running", "the job to stop")
    final = b("data/job-status", jobId=job_id)
    assert (final["status"], final["error"]["code"]) == ("cancelled", "job_cancelled"), final
    assert 0 < final["progress"]["imported"] < 600_000


@pytest.mark.needs_server
def test_tokens_and_handles_made_through_one_worker_work_on_the_other(
    shared: ServerProcess, workers: tuple[Pinned, Pinned], tmp_path: Path
) -> None:
    server, (a, b) = shared, workers
    made = a("token/create", actor="helper", admin=True)
    other = Pinned(server.url, made["token"])
    try:
        _wait(lambda: other.pid == b.pid or _repin(other, server, made["token"], b.pid), "pin")
        assert other("data/list-handles")["success"] is True
        path = tmp_path / "data" / "t.sqlite"
        path.parent.mkdir()
        a("data/open", adapter="sqlite", config={"path": str(path), "mode": "create"},
          alias="training")  # fmt: skip
        b("data/create", dbHandle="training", collection="x", id="1", data={"v": 1})
        assert a("data/read", dbHandle="training", collection="x", id="1")["data"]["v"] == 1
        a("token/revoke", tokenId=made["tokenId"])
        refused = other.http.post("/commands/data/list-handles", json={})
        assert refused.status_code == 401
    finally:
        other.close()


def _repin(client: Pinned, server: ServerProcess, token: str, pid: int) -> bool:
    """Reconnect ``client`` until its connection reaches worker ``pid``."""
    client.close()
    fresh = Pinned(server.url, token)
    client.http, client.pid = fresh.http, fresh.pid
    return client.pid == pid


@pytest.mark.needs_server
def test_a_dead_worker_is_replaced_and_sigterm_stops_every_worker(
    server: ServerProcess, own_workers: tuple[Pinned, Pinned]
) -> None:
    victim, survivor = (w.pid for w in own_workers)
    assert orjson.loads((server.home / "server.json").read_bytes())["url"] == server.url
    for client in own_workers:
        client.close()
    os.kill(victim, signal.SIGKILL)
    seen: set[int] = set()

    def replaced() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            seen.add(int(httpx.get(f"{server.url}/health", timeout=5).json()["pid"]))
        return len(seen - {victim, survivor}) > 0

    _wait(replaced, "a new worker")
    assert victim not in seen
    pids = seen | {survivor}
    assert server.stop(signal.SIGTERM) == 0, server.output
    assert "Traceback" not in server.output
    _wait(lambda: not any(_alive(pid) for pid in pids), "the workers to exit")
    assert not (server.home / "server.json").exists()


@pytest.mark.needs_server
def test_workers_stop_when_the_supervisor_is_killed(
    server: ServerProcess, own_workers: tuple[Pinned, Pinned]
) -> None:
    pids = [w.pid for w in own_workers]
    for client in own_workers:
        client.close()
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    _wait(lambda: not any(_alive(pid) for pid in pids), "the orphaned workers to stop")


@pytest.mark.needs_server
def test_a_second_server_cannot_join_the_port(shared: ServerProcess, tmp_path: Path) -> None:
    # SO_REUSEPORT would let it share the port silently: it is refused like any busy port.
    for extra in (["--workers=2"], []):
        proc = run_jtag("serve", f"--port={shared.port}", *extra, env=jtag_env(tmp_path / "h"))
        envelope = envelope_of(proc)
        assert envelope["code"] == "invalid_params" and envelope["field"] == "port", envelope
        assert "Address already in use" in envelope["error"]


def test_a_worker_that_keeps_failing_at_start_stops_the_supervisor() -> None:
    listener = bind_listener("127.0.0.1", 0)
    try:
        supervisor = Supervisor(
            lambda index, fd, watch: [sys.executable, "-c", "import sys; sys.exit(3)"],
            listener, 1, env=dict(os.environ),
        )  # fmt: skip
        assert supervisor.run() == 1
        assert supervisor.failed is not None and "(last status 3)" in supervisor.failed
    finally:
        listener.close()


def test_stopping_the_supervisor_stops_its_workers() -> None:
    listener = bind_listener("127.0.0.1", 0)
    # A worker that would outlive the test unless it is stopped (SIGTERM ends it).
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    try:
        supervisor = Supervisor(lambda index, fd, watch: sleeper, listener, 2, env=dict(os.environ))
        supervisor.start()
        pids = supervisor.pids
        assert len(pids) == 2
        threading.Timer(0.2, supervisor.stop).start()
        assert supervisor.run() == 0 and supervisor.failed is None
        assert not any(_alive(pid) for pid in pids)
    finally:
        listener.close()


@pytest.mark.parametrize("count", [2, 3])
def test_connections_are_dealt_to_the_workers_in_turn(count: int) -> None:
    # SO_REUSEPORT hashed each connection's addresses: 8 connections of one client could land 7/1
    # (and two workers then served little more than one). Dealt in turn, each worker gets its share.
    listener = bind_listener("127.0.0.1", 0)
    port = listener.getsockname()[1]
    try:
        supervisor = Supervisor(
            index_worker,
            listener, count, env=dict(os.environ),
        )  # fmt: skip
        runner = threading.Thread(target=supervisor.run)
        runner.start()
        clients = []
        try:
            for _ in range(4 * count):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
            answers = [int(client.recv(64).split()[0]) for client in clients]
        finally:
            for client in clients:
                client.close()
            supervisor.stop()
            runner.join()
        assert sorted(answers) == sorted(list(range(count)) * 4), answers
        assert supervisor.dealt == [4] * count and supervisor.failed is None
    finally:
        listener.close()


def test_a_connection_dealt_while_its_worker_was_gone_reaches_the_next_one() -> None:
    # The channel outlives a worker: what was dealt to it and not taken is served by its successor.
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a, b = socket.socketpair()
    try:
        socket.send_fds(mine, [b"c"], [b.fileno()])
        b.close()
        theirs.setblocking(False)
        taken = receive_connections(theirs)
        assert taken is not None and len(taken) == 1
        with taken[0] as sock:
            sock.sendall(b"hello")
        assert a.recv(5) == b"hello"
        assert receive_connections(theirs) == []  # nothing more dealt yet
        mine.close()
        assert receive_connections(theirs) is None  # the supervisor is gone
    finally:
        for sock in (mine, theirs, a):
            sock.close()


# -- options and settings --------------------------------------------------------------------------


def test_workers_option_is_checked() -> None:
    assert parse_options([]).workers == 1
    assert parse_options(["--workers=4"]).workers == 4
    for bad in ("0", "65", "two"):
        with pytest.raises(InvalidParams) as caught:
            parse_options([f"--workers={bad}"])
        assert caught.value.field == "workers"


def test_workers_rebuild_the_same_settings(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "h", max_limit=77, audit=False, read_roots=(tmp_path / "r1", tmp_path / "r2"),
        shutdown_grace_seconds=2.5, postgres_servers=("a:1", "b:2"),
    )  # fmt: skip
    env = settings_env(settings, {"DBHANDLES_DATA_ROOT": "/elsewhere", "PATH": "/bin"})
    assert Settings.from_env(env) == settings
    assert env["PATH"] == "/bin" and "DBHANDLES_DATA_ROOT" not in env


# -- the event log between two services ------------------------------------------------------------


def _collect(bus: EventBus) -> list[tuple[str, dict[str, Any]]]:
    got: list[tuple[str, dict[str, Any]]] = []
    bus.subscribe("*", lambda event: got.append((event.name, event.payload)))
    return got


def test_events_cross_services_on_one_home_in_one_order_without_echo(tmp_path: Path) -> None:
    with Service(tmp_path) as a, Service(tmp_path) as b:
        on_a, on_b = _collect(a.events), _collect(b.events)
        ids = []
        for i in range(6):  # each write starts after the previous returned
            service, name = (a, f"a{i}") if i % 2 == 0 else (b, f"b{i}")
            service.execute("data/create", {"collection": "c", "id": name, "data": {}})
            ids.append(name)
        service.execute("data/delete", {"collection": "c", "id": "a0"})
        _wait(lambda: len(on_b) == 7 and len(on_a) == 7, "the events on both sides")
        # Both see every event once, in the order the writes happened, whoever made them.
        assert [p["id"] for _, p in on_a] == [p["id"] for _, p in on_b] == [*ids, "a0"]
        assert (
            [n for n, _ in on_a]
            == [n for n, _ in on_b]
            == ["data:c:created"] * 6 + ["data:c:deleted"]
        )


def test_nothing_is_logged_while_no_other_process_listens(tmp_path: Path) -> None:
    with Service(tmp_path) as a:
        _collect(a.events)  # its own subscriber needs no log
        a.execute("data/create", {"collection": "c", "id": "x", "data": {}})
        assert isinstance(a.bridge, SqliteEventLog)
    log = SqliteEventLog(tmp_path, EventBus())
    try:
        assert log.info() == {"events": 0, "readers": 0}
    finally:
        log.close()


def test_a_reader_behind_retention_is_told_it_may_have_missed_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_log, "KEEP_EVENTS", 3)
    monkeypatch.setattr(sqlite_log, "_PRUNE_EVERY", 0.0)
    bus = EventBus()
    reader = SqliteEventLog(tmp_path, bus, poll_seconds=3600).attach()  # polled by hand below
    got = _collect(bus)
    try:
        assert reader.listening
        with Service(tmp_path) as writer:
            for i in range(10):
                writer.execute("data/create", {"collection": "c", "id": f"w{i}", "data": {}})
        reader.poll()
        assert got[0][0] == RESUMED
        assert got[0][1] == {"dbHandle": None, "mayHaveMissed": True, "missed": 7,
                             "downSeconds": got[0][1]["downSeconds"]}  # fmt: skip
        assert [p["id"] for _, p in got[1:]] == ["w7", "w8", "w9"]
    finally:
        reader.close()


def test_an_unwritable_home_keeps_events_in_the_process(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    bus = EventBus()
    log = SqliteEventLog(missing, bus).attach()
    got = _collect(bus)  # listening fails quietly: nothing to read
    bus.publish("data:c:created", {"dbHandle": "default"})
    assert got == [("data:c:created", {"dbHandle": "default"})] and not log.listening
    log.close()
