"""Fairness: one actor's read latency while another actor runs each of the four loads of issue 13.

    python benchmarks/fairness.py [--seconds=8] [--import-mb=300] [--json=FILE] [--job-duty=D]
        [--loads=imports,...,heavy-pages,authenticated-flood] [--source=FILE]

A real ``jtag serve`` (tokens required, defaults for every limit) on a loopback port and a temporary
home. The reader (a non-admin token) runs ``POST /commands/data/list`` (20 small records) on one
connection with ``wrk`` for ``--seconds``; its p99 is taken with no load, then while another actor runs:

1. imports: two ``data/import`` of a ``--import-mb`` MB JSONL file at once (an admin's; files are the
   admin's business), cancelled with ``data/job-cancel`` after the measurement;
1m. memory import: one ``data/import`` job of the same file into a memory database, in the server
   process (paced to ``DBHANDLES_JOB_DUTY``: ``--job-duty``, 1 turns pacing off); RSS is sampled;
2. a WebSocket client that sends ``data/list`` requests with 1 MB answers and never reads (4 sockets,
   reconnecting when the server closes them); the server's RSS is sampled;
3. memory: ``query-open`` with a 2.7 MB filter (40 on a memory handle, 20 on the default database,
   with ``wrk``), 100 unauthenticated connections trickling a 9 MB body, one connection sending a
   byte every 2 s; RSS and the home's size are sampled;
4. subscriptions: 20 sockets x 100 subscriptions that match every write, while the same actor writes
   100 KB records with ``wrk``; here the reader's own 100 KB ``data/create`` p99 is measured too,
   against its p99 with no subscription;
5. big-in, heavy-pages, authenticated-flood (``benchmarks/_fairness_heavy.py``): a 65 KB ``$in`` over
   300,000 memory records; 10 MB pages; ``wrk -c400`` of ``data/list`` with the actor's token.

The ratio is each p99 over the no-load p99 (target: at most 3), the median of the no-load windows
taken before and after each load (drift of the machine shows instead of skewing one ratio). wrk's
p99 is corrected for coordinated omission: one stall of 100 ms at 2,000 reads a second counts as
some 200 slow reads, so a window's p99 is set by its few longest stalls. Each window also reports
the machine's CPU pressure (the share of its time some task waited for a CPU) and the CPU seconds
the server's job processes used. HTTP loads are driven by ``wrk`` (installed with apt-get when
missing and the script may). Every connection goes to 127.0.0.1, every load stops with its window,
and jobs are waited for after their cancel. On a machine shared with other work, run it at ``nice -n
-10`` (as root): it then runs in a session of its own whose scheduling group has that niceness
(``_machine.own_session``); docs/performance.md has the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from _datagen import generate_file  # noqa: E402
from _fairness_heavy import load_authenticated_flood, load_big_in, load_heavy_pages  # noqa: E402
from _fairness_report import report  # noqa: E402
from _machine import TreeCpu, cpu_pressure_us, own_session  # noqa: E402
from _wrk import lua_script, need_wrk, wrk  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the server and its actors ---------------------------------------------------------------------


class Server:
    def __init__(self, work: Path, settings: dict[str, str] | None = None) -> None:
        self.home = work / "home"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JTAG_", "DBHANDLES_"))}
        env["DBHANDLES_HOME"] = str(self.home)
        env.update(settings or {})
        self.proc = subprocess.Popen(
            [str(REPO / "jtag"), "serve", f"--port={self.port}"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(work),
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                self.pid = int(httpx.get(f"{self.url}/health", timeout=1).json()["pid"])
                break
            except (httpx.HTTPError, ValueError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("jtag serve did not start") from None
                time.sleep(0.1)
        self.admin = (self.home / "admin.token").read_text().strip()

    def call(self, token: str, name: str, params: dict[str, Any] | None = None,
             timeout: float = 60) -> dict[str, Any]:  # fmt: skip
        response = httpx.post(f"{self.url}/commands/{name}", json=params or {}, timeout=timeout,
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        body: dict[str, Any] = response.json()
        return body

    def token(self, actor: str, admin: bool = False) -> str:
        return str(self.call(self.admin, "token/create", {"actor": actor, "admin": admin})["token"])

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def home_mb(self) -> float:
        return sum(p.stat().st_size for p in self.home.glob("default.sqlite*")) / 1e6

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def background(fn: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def sampling(server: Server) -> Iterator[dict[str, float]]:
    """The server's RSS (and the home's size) before and at its peak while the block runs."""
    seen = {
        "rss_before": server.rss_mb(),
        "rss_peak": 0.0,
        "home_before": server.home_mb(),
        "home_peak": 0.0,
    }
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            seen["rss_peak"] = max(seen["rss_peak"], server.rss_mb())
            seen["home_peak"] = max(seen["home_peak"], server.home_mb())

    thread = background(sample)
    try:
        yield seen
    finally:
        stop.set()
        thread.join()
        seen["rss_after"] = server.rss_mb()


# -- the loads -------------------------------------------------------------------------------------


def source_file(work: Path, mb: int, given: str | None = None) -> Path:
    """The JSONL file imported: ``given`` (``--source``) or one in ``work``, generated when missing."""
    if not (source := Path(given) if given else work / "import.jsonl").exists():
        print(f"  generating a {mb} MB JSONL file at {source}...", flush=True)
        generate_file(source, max(1000, mb * 1_000_000 // 2000), seed=13)
    return source


def load_imports(
    server: Server,
    work: Path,
    loader: str,
    mb: int,
    measure: Callable[[], dict[str, float]],
    given: str | None = None,
) -> dict[str, Any]:
    source = source_file(work, mb, given)
    size_mb = source.stat().st_size / 1e6
    ids = [start_job(server, loader, "data/import", {"input": str(source), "collection": "imported",
                                                     "output": str(work / f"import-{i}.sqlite")})
           for i in range(2)]  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [server.call(loader, "data/job-status", {"jobId": i})["status"] for i in ids]
        if states == ["running", "running"]:
            break
        time.sleep(0.05)
    result = measure()
    states = [server.call(loader, "data/job-status", {"jobId": i}) for i in ids]
    running = all(s["status"] == "running" for s in states)
    lines = [s["progress"].get("lines", 0) for s in states]
    for i in ids:
        server.call(loader, "data/job-cancel", {"jobId": i})
    ended = wait_ended(server, loader, ids)
    return {**result, "note": f"2 imports of a {size_mb:.0f} MB file, {'still running' if running else 'ended'} "
                              f"after the window ({sum(lines):,} lines read), then cancelled "
                              f"(ended {ended:.1f} s after the cancel)"}  # fmt: skip


def wait_ended(server: Server, token: str, ids: list[str], timeout: float = 60) -> float:
    """Seconds until the jobs ``ids`` have ended (they hold the actor's job slots)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        states = {server.call(token, "data/job-status", {"jobId": i})["status"] for i in ids}
        if not states & {"queued", "running"}:
            return time.monotonic() - start
        time.sleep(0.1)
    raise RuntimeError(f"jobs {ids} still running {timeout:.0f} s after data/job-cancel")


def start_job(server: Server, token: str, command: str, params: dict[str, Any]) -> str:
    answer = server.call(token, "data/job-start", {"command": command, "params": params})
    if "jobId" not in answer:
        raise RuntimeError(f"data/job-start {command} was refused: {answer}")
    return str(answer["jobId"])


def load_memory_import(
    server: Server,
    work: Path,
    loader: str,
    mb: int,
    measure: Callable[[], dict[str, float]],
    given: str | None = None,
) -> dict[str, Any]:
    source = source_file(work, mb, given)
    handle = server.call(loader, "data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    job = start_job(server, loader, "data/import",
                    {"input": str(source), "dbHandle": handle, "collection": "imported"})  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.call(loader, "data/job-status", {"jobId": job})["status"] != "queued":
            break
        time.sleep(0.05)
    with sampling(server) as memory:
        result = measure()
    state = server.call(loader, "data/job-status", {"jobId": job})
    server.call(loader, "data/job-cancel", {"jobId": job})
    wait_ended(server, loader, [job])
    ended = state["status"] if state["status"] != "running" else "still running"
    error = f" ({state.get('error', {}).get('code')})" if state["status"] == "failed" else ""
    server.call(loader, "data/close", {"dbHandle": handle})
    return {**result, **memory, "note": f"1 import into a memory database, {ended}{error} after the "
            f"window ({state['progress'].get('lines', 0):,} lines read), then cancelled"}  # fmt: skip


def _ws_open(port: int, token: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                  f"Authorization: Bearer {token}\r\n\r\n").encode())  # fmt: skip
    return sock


def _frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    size = len(payload)
    head = (
        bytes([0x81, 0x80 | size])
        if size < 126
        else bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    )
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def load_non_reader(
    server: Server, noisy: str, measure: Callable[[], dict[str, float]]
) -> dict[str, Any]:
    handle = server.call(noisy, "data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    ops = [{"op": "create", "collection": "big", "data": {"text": "y" * 20_000}} for _ in range(50)]
    server.call(noisy, "data/batch", {"dbHandle": handle, "operations": ops})
    request = _frame(orjson.dumps({"type": "request", "id": 1, "command": "data/list",
                                   "params": {"dbHandle": handle, "collection": "big", "limit": 50}}))  # fmt: skip
    stop = threading.Event()
    counts = {"sockets": 0, "requests": 0}

    def client() -> None:
        while not stop.is_set():
            try:
                sock = _ws_open(server.port, noisy)
                counts["sockets"] += 1
                for _ in range(300):  # 300 answers of 1 MB, never read
                    if stop.is_set():
                        break
                    sock.sendall(request)
                    counts["requests"] += 1
                stop.wait(0.5)
                sock.close()
            except OSError:
                stop.wait(0.2)  # closed by the server: connect again

    with sampling(server) as memory:
        threads = [background(client) for _ in range(4)]
        result = measure()
        stop.set()
        for t in threads:
            t.join(10)
    return {**result, **memory, "note": f"{counts['sockets']} sockets opened, {counts['requests']} requests "
                                        "for 1 MB answers sent, none read"}  # fmt: skip


def load_memory(
    server: Server, work: Path, noisy: str, seconds: float, measure: Callable[[], dict[str, float]]
) -> dict[str, Any]:
    handle = server.call(noisy, "data/open", {"adapter": "memory", "config": {}})["dbHandle"]
    huge = {"tag": {"$in": [f"value-{i:07d}-" + "z" * 8 for i in range(120_000)]}}  # ~2.7 MB
    memory_body = orjson.dumps({"dbHandle": handle, "collection": "c", "filter": huge})
    durable_body = orjson.dumps({"collection": "c", "filter": huge})
    url = f"{server.url}/commands/data/query-open"
    scripts = [lua_script(work, "cursor-memory", noisy, memory_body, limit=40),
               lua_script(work, "cursor-durable", noisy, durable_body, limit=20)]  # fmt: skip
    stop = threading.Event()
    answers: dict[str, int] = {}
    host = f"127.0.0.1:{server.port}"  # the server's own name: refused for the body, not the Host

    def trickle() -> None:  # unauthenticated, 9 MB announced, 1 KB every 0.5 s
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=seconds + 30)
            sock.sendall(f"POST /commands/data/batch HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                         "\r\nContent-Length: 9437184\r\n\r\n".encode())  # fmt: skip
            sock.settimeout(0.5)
            while not stop.is_set():
                try:
                    data = sock.recv(4096)
                    status = data.split(b" ")[1].decode() if data else "closed"
                    answers[status] = answers.get(status, 0) + 1
                    return
                except TimeoutError:
                    sock.sendall(b" " * 1024)
            sock.close()
        except OSError as exc:
            answers[type(exc).__name__] = answers.get(type(exc).__name__, 0) + 1

    def drip() -> None:  # one byte every 2 s, with a token
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=seconds + 30)
            sock.sendall(f"POST /commands/data/list HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {noisy}\r\n"
                         "Content-Length: 40\r\n\r\n".encode())  # fmt: skip
            sock.settimeout(2)
            while not stop.is_set():
                try:
                    data = sock.recv(4096)
                    answers["drip " + (data.split(b" ")[1].decode() if data else "closed")] = 1
                    return
                except TimeoutError:
                    sock.sendall(b" ")
        except OSError:
            pass

    with sampling(server) as memory:
        loaders = [background(lambda s=s: wrk(url, s, seconds)) for s in scripts]
        loaders += [background(trickle) for _ in range(100)] + [background(drip)]
        result = measure()
        stop.set()
        for t in loaders:
            t.join(seconds + 60)
    return {**result, **memory, "note": "60 query-open with a 2.7 MB filter, 100 unauthenticated 9 MB "
                                        f"trickles, 1 drip; answers: {dict(sorted(answers.items()))}"}  # fmt: skip


#: 100 distinct patterns, each matching the writes of load 4 (``data:writes:created``).
PATTERNS = [f"{head}{'writes'[:w]}*:{'created'[:c]}*" for head in ("data:", "d*:") for w in range(7)
            for c in range(8)][:100]  # fmt: skip


def load_subscriptions(server: Server, work: Path, noisy: str, seconds: float,
                       measure: Callable[[], dict[str, float]],
                       measure_creates: Callable[[], dict[str, float]]) -> dict[str, Any]:  # fmt: skip
    import websockets.asyncio.client as ws_client

    stop = threading.Event()
    counts = {"sockets": 0, "subscribed": 0, "refused": 0, "events": 0}
    ready = threading.Event()

    async def clients() -> None:
        sockets = []
        for _ in range(20):
            try:
                sock = await ws_client.connect(f"ws://127.0.0.1:{server.port}/ws", max_size=None,
                                               additional_headers={"Authorization": f"Bearer {noisy}"})  # fmt: skip
            except Exception:
                counts["refused"] += 1
                continue
            sockets.append(sock)

        async def subscribe(sock: Any) -> None:
            with contextlib.suppress(Exception):  # a socket over the limit is closed (1013)
                for i, pattern in enumerate(PATTERNS):
                    await sock.send(json.dumps({"type": "subscribe", "id": i, "pattern": pattern}))

        async def read(sock: Any) -> None:
            with contextlib.suppress(Exception):
                async for raw in sock:
                    kind = orjson.loads(raw).get("type")
                    if kind == "hello":
                        counts["sockets"] += 1
                    elif kind == "subscribed":
                        counts["subscribed"] += 1
                    elif kind == "event":
                        counts["events"] += 1

        for sock in sockets:
            await subscribe(sock)
        readers = [asyncio.create_task(read(s)) for s in sockets]
        await asyncio.sleep(1.0)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for sock in sockets:
            await sock.close()
        for task in readers:
            task.cancel()

    thread = background(lambda: asyncio.run(clients()))
    ready.wait(30)
    # a. As in the issue: the subscriptions only; the reader's own 100 KB writes are what they receive.
    creates = measure_creates()
    # b. Harder: the subscriber also writes 100 KB records as fast as it can while the reader reads.
    body = orjson.dumps({"collection": "writes", "data": {"text": "w" * 100_000}})
    writer = lua_script(work, "noisy-writes", noisy, body)
    url = f"{server.url}/commands/data/create"
    written: dict[str, float] = {}
    cpu = server_cpu(server.pid)
    loader = background(lambda: written.update(wrk(url, writer, seconds + 1)))
    result = measure()
    loader.join(seconds + 60)
    cpu = server_cpu(server.pid) - cpu
    # What the server's own process (every thread, not the job children) spent per 100 KB write
    # over the writer's run (the reader's reads, 20 records each, included).
    result["server_cpu"], result["writes"] = cpu, written.get("requests", 0.0)
    stop.set()
    thread.join(30)
    return {**result, "create_p99": creates.get("p99", 0.0), "create_p50": creates.get("p50", 0.0),
            "note": f"{counts['sockets']} sockets and {counts['subscribed']} subscriptions accepted of "
                    f"20 x 100, {counts['events']:,} events read; reads measured while the subscriber "
                    "also writes 100 KB records (wrk -c1)"}  # fmt: skip


# -- main ------------------------------------------------------------------------------------------


#: The loads ``--loads`` picks from, in the order they run.
LOADS = ("imports", "memory-import", "socket", "cursors", "subscriptions", "big-in", "heavy-pages",
         "authenticated-flood")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per load")
    parser.add_argument("--import-mb", type=int, default=300, help="size of the file imported")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--setting", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--job-duty", dest="setting", action="append", type="DBHANDLES_JOB_DUTY={}".format,
                        help="DBHANDLES_JOB_DUTY of the server (1: jobs never pause)")  # fmt: skip
    parser.add_argument("--loads", default=",".join(LOADS), help="which loads to run, in order")
    parser.add_argument("--source", help="the JSONL file to import (generated there when missing)")
    parser.add_argument("--share-session", action="store_true",
                        help="stay in the caller's scheduling group (as before 2026-11-30 15:40)")  # fmt: skip
    args = parser.parse_args()
    print(f"scheduling: {'left as it is' if args.share_session else own_session()}", flush=True)
    unknown = set(args.loads.split(",")) - set(LOADS)
    if unknown:
        parser.error(f"--loads: unknown {', '.join(sorted(unknown))}; known: {', '.join(LOADS)}")
    need_wrk()
    work = Path(tempfile.mkdtemp(prefix="dbh-fairness-"))
    settings = dict(s.split("=", 1) for s in args.setting)
    server = Server(work, settings)
    try:
        return bench(server, work, args)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def bench(server: Server, work: Path, args: argparse.Namespace) -> int:
    seconds = args.seconds
    reader = server.token("reader")
    noisy = server.token("noisy")
    loader = server.token("loader", admin=True)
    ops = [
        {"op": "create", "collection": "items", "data": {"n": i, "text": f"item {i}"}}
        for i in range(1000)
    ]
    server.call(server.admin, "data/batch", {"operations": ops, "suppressEvents": True})
    read = lua_script(work, "read", reader, orjson.dumps({"collection": "items", "limit": 20}))
    read_url = f"{server.url}/commands/data/list"
    create = lua_script(work, "create", reader,
                        orjson.dumps({"collection": "mine", "data": {"text": "r" * 100_000}}))  # fmt: skip
    create_url = f"{server.url}/commands/data/create"

    def measure() -> dict[str, float]:
        jobs, pressure, start = TreeCpu(server.pid), cpu_pressure_us(), time.monotonic()
        jobs.start()
        result = wrk(read_url, read, seconds)
        waited, elapsed = cpu_pressure_us(), time.monotonic() - start
        if pressure is not None and waited is not None:
            result["cpu_pressure"] = (waited - pressure) / elapsed / 1e4  # percent of the window
        result["jobs_cpu"] = jobs.seconds()
        return result

    rows: list[tuple[str, dict[str, Any]]] = []
    print(f"reader: wrk -t1 -c1 -d{seconds:g}s POST /commands/data/list (20 records), p99 per load")
    wrk(read_url, read, 4)  # warm-up
    quiet: list[dict[str, float]] = []

    def no_load() -> None:  # before and after every load: the machine's drift shows in the baseline
        quiet.append(measure())

    def measure_creates() -> dict[str, float]:
        return wrk(create_url, create, seconds)

    base_create: dict[str, float] = {}

    def subscriptions() -> dict[str, Any]:
        base_create.update(measure_creates())  # after the window before the load, as the load
        return load_subscriptions(server, work, noisy, seconds, measure, measure_creates)

    #: Each load by its ``--loads`` name: what it prints, its row's name, and the run.
    every_load: list[tuple[str, str, str, Callable[[], dict[str, Any]]]] = [
        ("imports", "load 1: two large imports", "1. two imports",
         lambda: load_imports(server, work, loader, args.import_mb, measure, args.source)),
        ("memory-import", "load 1m: an import into a memory database", "1m. memory import",
         lambda: load_memory_import(server, work, loader, args.import_mb, measure, args.source)),
        ("socket", "load 2: WebSocket client that never reads", "2. non-reading WebSocket",
         lambda: load_non_reader(server, noisy, measure)),
        ("cursors", "load 3: cursors with 2.7 MB filters, slow and unauthenticated bodies",
         "3. cursors and bodies", lambda: load_memory(server, work, noisy, seconds, measure)),
        ("subscriptions", "load 4: 20 sockets x 100 subscriptions, 100 KB writes",
         "4. subscriptions", subscriptions),
        ("big-in", "load 5: a 65 KB $in over 300,000 memory records", "5. big $in",
         lambda: load_big_in(server, work, noisy, seconds, measure)),
        ("heavy-pages", "load 6: 10 MB pages on 2 connections", "6. 10 MB pages",
         lambda: load_heavy_pages(server, work, noisy, seconds, measure)),
        ("authenticated-flood", "load 7: wrk -c400 of data/list with a valid token",
         "7. authenticated flood", lambda: load_authenticated_flood(server, work, noisy, seconds, measure)),
    ]  # fmt: skip
    loads = args.loads.split(",")
    for name, title, label, run in every_load:
        if name in loads:
            print(title, flush=True)
            no_load()
            rows.append((label, run()))
            no_load()
    p99s = sorted(q["p99"] for q in quiet)
    median = (p99s[(len(p99s) - 1) // 2] + p99s[len(p99s) // 2]) / 2
    base = {**quiet[0], "p99": median, "cpu_pressure": sum(q.get("cpu_pressure", 0) for q in quiet)
            / len(quiet), "jobs_cpu": max(q["jobs_cpu"] for q in quiet),
            "note": f"median of {len(quiet)} windows, one before and one after each load; their "
                    "p99s: " + ", ".join(f"{q['p99']:.2f}" for q in quiet)}  # fmt: skip
    rows.insert(0, ("no load", base))
    report(rows, base, base_create)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "create_base": base_create,
                                               "no_load": quiet}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
