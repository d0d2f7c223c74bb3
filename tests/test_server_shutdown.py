"""Stopping ``jtag serve`` under load: every accepted request is answered (WebSocket writes in flight,
a long import cut at a batch boundary with what it kept), connections close cleanly, and no
acknowledged write is lost."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from dbhandles import DbHandlesError, Service, Settings
from dbhandles.client import Client, EventStream
from dbhandles.jobs import Job
from dbhandles.server.app import ServerState
from dbhandles.server.ws import CLOSE_RESTART
from tests.servers import ServerProcess, app_client


def drain(events: EventStream) -> int:
    """Read events until the server closes the socket (a hang past 10 s fails the test)."""
    count = 0
    while True:
        try:
            events.get(timeout=10)
        except StopIteration:
            return count
        count += 1


@pytest.mark.needs_server
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_under_load_loses_no_acknowledged_write(home: Path, sig: int) -> None:
    acknowledged: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    with ServerProcess(home) as server:
        token = server.token
        events = Client(server.url, token).events("data:*")

        def writer(n: int) -> None:
            with Client(server.url, token, timeout=10) as client:
                i = 0
                while not stop.is_set():
                    envelope = client.dispatch(
                        "data/create", {"collection": "load", "data": {"w": n, "i": i}}
                    )
                    i += 1
                    if envelope["success"]:
                        acknowledged.append(envelope["id"])
                    elif envelope["code"] == "server_unreachable":
                        return
                    else:
                        failures.append(f"{envelope['code']}: {envelope['error']}")

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        status = server.stop(sig)
        stop.set()
        for thread in threads:
            thread.join(timeout=20)

        # The event socket is closed by the server, not left hanging: iteration simply ends.
        with events:
            received = drain(events)

    assert status == 0, server.output
    assert "Traceback" not in server.output
    assert not failures
    assert len(acknowledged) >= 200
    assert received >= 1
    with Service(settings=Settings(home=home)) as service:
        stored = {r["id"] for r in service.execute("data/list", {"collection": "load", "limit": 500,
                                                                 "fields": ["id"], "skipCount": True})["items"]}  # fmt: skip
        count = service.execute("data/list", {"collection": "load", "limit": 0})["count"]
        missing = set(acknowledged) - stored
        if count > 500:  # more than one page: check the rest by id
            missing = {i for i in missing
                       if not service.execute("data/read", {"collection": "load", "id": i})["found"]}  # fmt: skip
    assert not missing, f"{len(missing)} acknowledged writes are missing after shutdown"
    assert count >= len(acknowledged)
    assert not (home / "server.json").exists()


@pytest.mark.needs_server
def test_restarted_server_serves_the_same_handles(home: Path, tmp_path: Path) -> None:
    config = {"path": str(tmp_path / "durable.sqlite"), "mode": "create"}
    with ServerProcess(home) as first, Client(first.url, first.token) as client:
        handle = client.execute("data/open", {"adapter": "sqlite", "config": config})["dbHandle"]
        client.execute(
            "data/create", {"dbHandle": handle, "collection": "c", "data": {"v": 1}, "id": "k"}
        )
    with Client(first.url) as client, pytest.raises(DbHandlesError, match="cannot reach") as gone:
        client.execute("data/list-handles")
    assert gone.value.code == "server_unreachable"
    with ServerProcess(home) as second, Client(second.url, second.token) as client:
        assert (
            client.execute("data/read", {"dbHandle": handle, "collection": "c", "id": "k"})["data"][
                "v"
            ]
            == 1
        )


# -- every accepted request gets its answer --------------------------------------------------------


def stored_ids(home: Path, collection: str, handle: str | None = None) -> list[str]:
    """Every record id of ``collection`` (in the default database, or ``handle``), page by page."""
    ids: list[str] = []
    with Service(settings=Settings(home=home)) as service:
        cursor = None
        while True:
            page = service.execute("data/list", {"dbHandle": handle, "collection": collection,
                                                 "limit": 500, "fields": ["id"], "skipCount": True,
                                                 "cursor": cursor})  # fmt: skip
            ids += [item["id"] for item in page["items"]]
            cursor = page.get("nextCursor")
            if not cursor:
                return ids


class SocketWriter(threading.Thread):
    """One WebSocket that sends ``data/create`` requests 16 at a time (ids ``w<n>-<i>``, the record
    id too) and reads their answers, until the server closes it."""

    def __init__(self, n: int, port: int, token: str) -> None:
        super().__init__(name=f"ws-writer-{n}")
        self.n, self.port, self.token = n, port, token
        self.sent: list[str] = []
        self.answers: dict[str, dict[str, Any]] = {}
        self.close_code: int | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with connect(f"ws://127.0.0.1:{self.port}/ws", additional_headers=headers,
                     open_timeout=10) as ws:  # fmt: skip
            assert orjson.loads(ws.recv(timeout=10))["type"] == "hello"
            try:
                while True:
                    pending = set()
                    for _ in range(16):
                        rid = f"w{self.n}-{len(self.sent):06d}"
                        ws.send(orjson.dumps({"type": "request", "id": rid, "command": "data/create",
                                              "params": {"collection": "wsload", "id": rid,
                                                         "data": {"w": self.n}}}).decode())  # fmt: skip
                        self.sent.append(rid)
                        pending.add(rid)
                    while pending:
                        message = orjson.loads(ws.recv(timeout=30))
                        if message["type"] == "response":
                            assert message["id"] not in self.answers, "answered twice"
                            self.answers[message["id"]] = message["result"]
                            pending.discard(message["id"])
            except ConnectionClosed as exc:
                self.close_code = exc.rcvd.code if exc.rcvd is not None else None


@pytest.mark.needs_server
def test_sigterm_answers_every_accepted_websocket_request(home: Path) -> None:
    with ServerProcess(home) as server:
        writers = [SocketWriter(n, server.port, server.token) for n in range(4)]
        for writer in writers:
            writer.start()
        deadline = time.monotonic() + 30
        while sum(len(w.answers) for w in writers) < 400 and time.monotonic() < deadline:
            time.sleep(0.01)
        status = server.stop(signal.SIGTERM)  # with requests in flight on every socket
        for writer in writers:
            writer.join(timeout=30)

    assert status == 0, server.output
    assert "Traceback" not in server.output
    assert [w.error for w in writers] == [None] * 4
    assert [w.close_code for w in writers] == [CLOSE_RESTART] * 4
    ok = {rid for w in writers for rid, env in w.answers.items() if env["success"]}
    refused = {env["code"] for w in writers for env in w.answers.values() if not env["success"]}
    assert refused <= {"server_unreachable"}  # arrived once shutdown began: answered, not run
    assert len(ok) >= 400
    stored = stored_ids(home, "wsload")
    assert len(stored) == len(set(stored))
    # Nothing acknowledged is lost, and nothing was written without its client being told.
    assert set(stored) == ok


def job_list(server: ServerProcess) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {server.token}"}
    jobs: list[dict[str, Any]] = httpx.post(f"{server.url}/commands/data/job-list",
                                            headers=headers).json()["jobs"]  # fmt: skip
    return jobs


@pytest.mark.needs_server
def test_sigterm_during_a_long_http_import_answers_with_what_was_kept(
    home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "big.jsonl"
    with source.open("wb") as out:
        for i in range(300_000):
            out.write(orjson.dumps({"id": f"r{i:07d}", "n": i, "text": "x" * 40}) + b"\n")
    output = tmp_path / "out.sqlite"
    answer: dict[str, Any] = {}
    server = ServerProcess(home)
    server.env["DBHANDLES_SHUTDOWN_GRACE_SECONDS"] = "0.2"
    with server:
        headers = {"Authorization": f"Bearer {server.token}"}

        def run_import() -> None:
            response = httpx.post(f"{server.url}/commands/data/import", headers=headers, timeout=120,
                                  json={"input": str(source), "output": str(output),
                                        "collection": "c", "batchSize": 100, "parser": "inline"})  # fmt: skip
            answer.update(status=response.status_code, type=response.headers.get("content-type"),
                          text=response.text)  # fmt: skip

        client = threading.Thread(target=run_import)
        client.start()

        def importing() -> bool:
            jobs = job_list(server)
            return any(j["status"] == "running" and j["progress"].get("imported") for j in jobs)

        deadline = time.monotonic() + 30
        while not importing():
            assert time.monotonic() < deadline, "the import never started"
            time.sleep(0.02)
        status = server.stop(signal.SIGTERM)
        client.join(timeout=60)

    assert status == 0, server.output
    assert "Traceback" not in server.output
    assert answer["type"] == "application/json", answer
    envelope = orjson.loads(answer["text"])
    assert (answer["status"], envelope["code"]) == (409, "job_cancelled")
    assert "shutting down" in envelope["error"]
    assert envelope["output"] == str(output)
    assert 0 < envelope["imported"] < 300_000
    assert envelope["batches"] == -(-envelope["imported"] // 100)
    # The counts are what the database holds.
    with Service(settings=Settings(home=home)) as service:
        handle = service.execute("data/open", {"adapter": "sqlite",
                                               "config": {"path": str(output), "mode": "readonly"}})  # fmt: skip
        count = service.execute("data/list", {"dbHandle": handle["dbHandle"], "collection": "c",
                                              "limit": 0})["count"]  # fmt: skip
    assert count == envelope["imported"]


@pytest.mark.needs_server
def test_an_import_that_ends_within_the_grace_is_answered_in_full(
    home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "small.jsonl"
    source.write_bytes(b"".join(orjson.dumps({"id": f"r{i:06d}", "n": i}) + b"\n"
                                for i in range(30_000)))  # fmt: skip
    server = ServerProcess(home)
    server.env["DBHANDLES_SHUTDOWN_GRACE_SECONDS"] = "60"
    answer: dict[str, Any] = {}
    with server:
        headers = {"Authorization": f"Bearer {server.token}"}

        def run_import() -> None:
            response = httpx.post(f"{server.url}/commands/data/import", headers=headers, timeout=120,
                                  json={"input": str(source), "output": str(tmp_path / "o.sqlite"),
                                        "collection": "c", "batchSize": 100})  # fmt: skip
            answer.update(status=response.status_code, body=response.json())

        client = threading.Thread(target=run_import)
        client.start()
        deadline = time.monotonic() + 30
        while not job_list(server):
            assert time.monotonic() < deadline, "the import never started"
            time.sleep(0.01)
        status = server.stop(signal.SIGTERM)
        client.join(timeout=60)
    assert status == 0, server.output
    assert answer["status"] == 200, answer
    assert (answer["body"]["imported"], answer["body"]["batches"]) == (30_000, 300)


def test_requests_after_shutdown_began_are_answered_and_not_run(service: Service) -> None:
    with app_client(service) as client:
        state: ServerState = client.app.state.dbhandles  # type: ignore[attr-defined]
        with client.websocket_connect("/ws") as ws:
            ws.receive_json()  # hello
            state.stopping = True
            ws.send_json({"type": "request", "id": 1, "command": "data/create",
                          "params": {"collection": "late", "data": {"v": 1}}})  # fmt: skip
            answer = ws.receive_json()
            response = client.post("/commands/data/create",
                                   json={"collection": "late", "data": {"v": 2}})  # fmt: skip
        state.stopping = False
        assert (answer["id"], answer["result"]["code"]) == (1, "server_unreachable")
        assert "not run" in answer["result"]["error"]
        assert response.status_code == 503
        assert response.json()["code"] == "server_unreachable"
        assert response.headers["connection"] == "close"
        assert client.post("/commands/data/list", json={"collection": "late"}).json()["count"] == 0


def test_a_job_that_outlives_the_shutdown_is_reported_as_still_running(service: Service) -> None:
    with app_client(service) as client:
        state: ServerState = client.app.state.dbhandles  # type: ignore[attr-defined]

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        finished = Job(id="done-1", command="data/export", actor="a")
        finished.outcome.set_result({"success": True, "exported": 3})
        stuck = Job(id="stuck-1", command="data/vacuum", actor="a", status="running")
        waiter = asyncio.ensure_future(state.wait_job(stuck))
        await asyncio.sleep(0.01)
        assert not waiter.done()  # it waits for the job, as long as the server does
        state.abandoned.set()
        return await state.wait_job(finished), await waiter

    answered, abandoned = asyncio.run(scenario())
    assert answered == {"success": True, "exported": 3}
    assert (abandoned["success"], abandoned["code"]) == (False, "server_unreachable")
    assert (abandoned["jobId"], abandoned["jobStatus"]) == ("stuck-1", "running")
    assert "runs to its end" in abandoned["error"]
