"""Several processes on one home while ``jtag serve`` writes to its default database (issue #10).

SQLite's POSIX advisory locks belong to a process and an inode: when a process that holds a
connection to a database opens and closes that file by other means, it silently drops its locks.
Another process that then closes its last connection believes it is the last one, checkpoints, and
deletes the ``-wal``/``-shm`` files under the server, whose later commits go to a deleted file: they
are invisible to every other process and lost when the server is killed.

Here a real ``jtag serve`` serves commands on ``default`` and writes through HTTP in a thread, while
``jtag import-jsonl``, ``jtag export-jsonl``, in-process ``jtag data/*`` and a Python ``Service`` run
on the same home, repeatedly and concurrently. Afterwards: no deleted ``-wal``/``-shm`` among the
server's open files, every acknowledged write present (through the server and after a restart),
``PRAGMA integrity_check`` ok; and the same when the server is killed with SIGKILL in the middle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from dbhandles import Service, Settings
from tests.servers import ServerProcess, envelope_of, jtag_env, run_jtag

pytestmark = [
    pytest.mark.needs_server,
    pytest.mark.timeout(150),
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc/<pid>/fd"),
]

COLLECTION = "writes"
ROUNDS = 4
#: Most records the writer thread sends through the server in one test (a bound, never reached
#: unless the rounds are slow).
MAX_SERVER_WRITES = 20_000
TIMEOUT = 60

#: ``jtag`` in-process although a server for the home is running: there is no flag or variable for
#: that (``choose_transport`` uses ``JTAG_URL``, else the server found from ``<home>/server.json``),
#: so this runs the same CLI entry point with server discovery turned off.
IN_PROCESS_JTAG = """\
import sys
import dbhandles.cli.transport as transport
transport.find_server = lambda home: None
from dbhandles.cli import main
sys.exit(main(sys.argv[1:]))
"""


# -- helpers ---------------------------------------------------------------------------------------


def deleted_sqlite_files(pid: int) -> list[str]:
    """The deleted ``-wal``/``-shm`` files process ``pid`` still has open."""
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since the listing
            continue
        name = target.removesuffix(" (deleted)")
        if name != target and name.endswith(("-wal", "-shm")):
            found.append(f"fd {fd.name} -> {target}")
    return sorted(found)


def in_process_jtag(home: Path, *argv: str) -> dict[str, Any]:
    """``jtag <argv>`` run in its own process against ``home`` directly, not through the server."""
    proc = subprocess.run(
        [sys.executable, "-c", IN_PROCESS_JTAG, *argv],
        env=jtag_env(home), cwd=tempfile.gettempdir(), capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )  # fmt: skip
    return envelope_of(proc)


def jtag_ok(home: Path, *argv: str) -> dict[str, Any]:
    """``./jtag <argv>`` on ``home``; its envelope, which must be a success."""
    proc = run_jtag(*argv, env=jtag_env(home))
    envelope = envelope_of(proc)
    assert envelope["success"] is True, f"jtag {' '.join(argv)} failed: {envelope}\n{proc.stderr}"
    return envelope


class Api:
    """``POST /commands/<name>`` on a server with the home's admin token."""

    def __init__(self, server: ServerProcess) -> None:
        import httpx

        self.client = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=TIMEOUT,
        )

    def __call__(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(f"/commands/{name}", json=params)
        envelope = response.json()
        assert isinstance(envelope, dict)
        return envelope

    def ok(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        envelope = self(name, params)
        assert envelope["success"] is True, f"{name} through the server failed: {envelope}"
        return envelope

    def ids(self, collection: str = COLLECTION) -> set[str]:
        """Every record id of ``collection`` in the default database, page by page."""
        ids: set[str] = set()
        cursor: Any = None
        for _ in range(10_000):
            params: dict[str, Any] = {"collection": collection, "limit": 500, "skipCount": True}
            if cursor is not None:
                params["cursor"] = cursor
            page = self.ok("data/list", params)
            ids.update(item["id"] for item in page["items"])
            cursor = page.get("nextCursor")
            if not page.get("hasMore") or cursor is None:
                return ids
        raise AssertionError("data/list never reached the last page")

    def close(self) -> None:
        self.client.close()


@contextlib.contextmanager
def api(server: ServerProcess) -> Iterator[Api]:
    client = Api(server)
    try:
        yield client
    finally:
        client.close()


@dataclass
class Writer:
    """Creates records in ``default`` through the server, in a thread, until stopped.

    ``acked`` holds the id of every create the server answered with ``success: true``: each must be
    stored. Refusals and transport errors (the server killed mid-request) are kept in ``failed``.
    """

    server: ServerProcess
    acked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def run(self) -> None:
        import httpx

        with api(self.server) as client:
            for n in range(MAX_SERVER_WRITES):
                if self.stop.is_set():
                    return
                try:
                    envelope = client("data/create", {"collection": COLLECTION,
                                                      "data": {"n": n, "by": "server"}})  # fmt: skip
                except (httpx.HTTPError, ValueError) as exc:
                    self.failed.append(f"{type(exc).__name__}: {exc}")
                    if len(self.failed) >= 20:  # the server is gone: stop
                        return
                    continue
                if envelope.get("success") is True:
                    self.acked.append(str(envelope["id"]))
                else:
                    self.failed.append(f"{envelope.get('code')}: {envelope.get('error')}")

    def __enter__(self) -> Writer:
        self.thread = threading.Thread(target=self.run, name="server-writer", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout=TIMEOUT)
        assert not self.thread.is_alive(), "the writer thread did not stop"


@dataclass
class OtherProcesses:
    """``jtag import-jsonl``, ``jtag export-jsonl``, in-process ``jtag data/*`` and a Python
    ``Service``, all on the server's home; ``acked`` holds the ids their writes to ``default`` got."""

    home: Path
    work: Path
    acked: list[str] = field(default_factory=list)
    #: What failed in those processes (checked after the server's files, the likely cause).
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.work / "tiny.jsonl"
        self.jsonl.write_bytes(b"".join(orjson.dumps({"id": f"r{i}", "n": i}) + b"\n"
                                        for i in range(20)))  # fmt: skip

    def _ack(self, record_id: object) -> None:
        with self.lock:
            self.acked.append(str(record_id))

    def import_export(self, round_: int) -> None:
        output = self.work / f"o{round_}.sqlite"
        imported = jtag_ok(self.home, "import-jsonl", f"--input={self.jsonl}",
                           f"--output={output}", "--progress=none")  # fmt: skip
        assert imported["imported"] == 20
        jtag_ok(self.home, "export-jsonl", f"--input={output}",
                f"--output={self.work / f'o{round_}.jsonl'}", "--quiet")  # fmt: skip
        # The default database itself, read by another process while the server writes to it.
        jtag_ok(self.home, "export-jsonl", "--db-handle=default", f"--collection={COLLECTION}",
                f"--output={self.work / f'default{round_}.jsonl'}", "--quiet")  # fmt: skip

    def cli_in_process(self, round_: int) -> None:
        listed = in_process_jtag(self.home, "data/list", f"--collection={COLLECTION}", "--limit=5")
        assert listed["success"] is True, listed
        created = in_process_jtag(self.home, "data/create", f"--collection={COLLECTION}",
                                  f'--data={{"round": {round_}, "by": "cli"}}')  # fmt: skip
        assert created["success"] is True, created
        self._ack(created["id"])
        handles = in_process_jtag(self.home, "data/list-handles")
        assert handles["success"] is True, handles

    def python_service(self, round_: int) -> None:
        service = Service(settings=Settings(home=self.home))
        try:
            service.execute("data/list", {"collection": COLLECTION, "limit": 5})
            created = service.execute(
                "data/create",
                {"collection": COLLECTION, "data": {"round": round_, "by": "service"}},
            )
            self._ack(created["id"])
        finally:
            service.close()

    def rounds(
        self,
        count: int,
        between: Callable[[int], None] | None = None,
        during: Callable[[int], None] | None = None,
    ) -> None:
        """``count`` rounds; in each, the three kinds of client run at the same time. ``during`` is
        called while they run, ``between`` once they are done."""
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="other") as pool:
            for round_ in range(count):
                futures = [pool.submit(job, round_) for job in
                           (self.import_export, self.cli_in_process, self.python_service)]  # fmt: skip
                if during is not None:
                    during(round_)
                for future in futures:
                    error = future.exception(timeout=3 * TIMEOUT)
                    if error is not None:
                        self.errors.append(f"round {round_}: {type(error).__name__}: {error}")
                if between is not None:
                    between(round_)


def integrity(home: Path) -> str:
    with contextlib.closing(sqlite3.connect(home / "default.sqlite")) as conn:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(row[0]) for row in rows)


def missing(expected: list[str], present: set[str]) -> list[str]:
    return [record_id for record_id in expected if record_id not in present]


def summary(ids: list[str]) -> str:
    return f"{len(ids)} of them, e.g. {ids[:5]}"


def serve_default(server: ServerProcess) -> None:
    """Make the server open ``default`` and serve commands on it (as ``jtag data/list`` does)."""
    listed = jtag_ok(server.home, "data/list", "--collection=users")
    assert listed["dbHandle"] == "default"
    with api(server) as client:
        client.ok("data/create", {"collection": COLLECTION, "data": {"warm": True}})


@pytest.fixture(autouse=True)
def _sqlite_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # The default database must be the home's default.sqlite, not a PostgreSQL one.
    monkeypatch.delenv("DBHANDLES_DEFAULT_URL", raising=False)
    monkeypatch.delenv("JTAG_TOKEN", raising=False)


# -- the tests -------------------------------------------------------------------------------------


def test_other_processes_on_the_home_leave_the_server_its_wal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    others = OtherProcesses(home, tmp_path / "work")
    with ServerProcess(home) as server:
        assert server.proc is not None
        pid = server.proc.pid
        serve_default(server)
        assert deleted_sqlite_files(pid) == []
        seen: list[str] = []

        def check(round_: int) -> None:
            seen.extend(f"after round {round_}: {f}" for f in deleted_sqlite_files(pid))

        with Writer(server) as writer:
            others.rounds(ROUNDS, between=check)
        assert writer.acked, f"no write through the server succeeded: {writer.failed[:5]}"
        assert not seen, (
            "the server's write-ahead log was deleted under it by another process on the home:\n"
            + "\n".join(seen)
        )
        assert others.errors == [], "other processes on the home failed:\n" + "\n".join(
            others.errors
        )
        assert writer.failed == [], f"writes through the server failed: {writer.failed[:5]}"
        acked = writer.acked + others.acked
        with api(server) as client:
            lost = missing(acked, client.ids())
        assert not lost, f"acknowledged writes not visible through the server: {summary(lost)}"
        assert server.stop() == 0, server.output

    with ServerProcess(home) as restarted, api(restarted) as client:
        lost = missing(acked, client.ids())
        assert not lost, f"acknowledged writes lost after a restart: {summary(lost)}"
    assert integrity(home) == "ok"


def test_killed_server_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    home = tmp_path / "home"
    others = OtherProcesses(home, tmp_path / "work")
    with ServerProcess(home) as server:
        assert server.proc is not None
        proc = server.proc
        serve_default(server)
        seen: list[str] = []

        def check(round_: int) -> None:
            if proc.poll() is None:
                seen.extend(f"after round {round_}: {f}" for f in deleted_sqlite_files(proc.pid))

        with Writer(server) as writer:

            def kill(round_: int) -> None:
                """SIGKILL in the middle of round 2, while the writer and the others go on."""
                if round_ != ROUNDS // 2:
                    return
                count = len(writer.acked)
                for _ in range(1000):  # a few more acknowledged writes first (bounded)
                    alive = writer.thread is not None and writer.thread.is_alive()
                    if len(writer.acked) >= count + 20 or not alive:
                        break
                    writer.stop.wait(0.01)
                seen.extend(f"before the kill: {f}" for f in deleted_sqlite_files(proc.pid))
                server.stop(signal.SIGKILL)

            others.rounds(ROUNDS, between=check, during=kill)
        assert proc.returncode == -signal.SIGKILL
        assert writer.acked, f"no write through the server succeeded: {writer.failed[:5]}"

    acked = writer.acked + others.acked
    try:
        with ServerProcess(home) as restarted, api(restarted) as client:
            lost = missing(acked, client.ids())
            assert not lost, (
                f"acknowledged writes lost after the server was killed: {summary(lost)}"
            )
    except AssertionError as exc:
        if seen:  # say what caused it
            raise AssertionError(
                f"{exc}\n(the server's write-ahead log had been deleted under it by another process "
                "on the home:\n" + "\n".join(seen) + ")"
            ) from None
        raise
    assert not seen, "the server's write-ahead log was deleted under it:\n" + "\n".join(seen)
    assert others.errors == [], "other processes on the home failed:\n" + "\n".join(others.errors)
    assert integrity(home) == "ok"
