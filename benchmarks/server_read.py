"""Benchmark: ``POST /commands/data/read`` on a 200,000-record SQLite handle against a bare ceiling.

The ceiling is a bare Starlette + uvicorn endpoint that does one ``sqlite3`` select by id on the same file
and returns the row. Both servers run as separate processes with the same uvicorn settings, and the same
load client (asyncio, keep-alive HTTP/1.1 over loopback, N connections, random ids) drives both in one
run. It prints requests/s, p50 and p99 for each, the ratio (target: at least 0.5x the ceiling) and the
WebSocket request/response throughput of ``/ws``. A benchmark, not a test: nothing here asserts a time.

    .venv/bin/python benchmarks/server_read.py [--records 200000] [--seconds 5] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
COLLECTION = "records"
TARGET = 0.5


# -- the ceiling: run in its own process as `server_read.py --ceiling PATH PORT` ----------------------


def ceiling_app(path: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    conn = sqlite3.connect(path, check_same_thread=False)
    sql = f'SELECT id, data, created_at, updated_at, version FROM "{COLLECTION}" WHERE id = ?'

    async def read(request: Request) -> Response:
        record_id = orjson.loads(await request.body())["id"]
        row = conn.execute(sql, (record_id,)).fetchone()
        body = b'{"success":true,"found":%s,"data":%s}' % (
            b"true" if row else b"false",
            row[1].encode() if row else b"null",
        )
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/read", read, methods=["POST"])])


def run_stub(home: str, port: int) -> None:
    """The dbhandles app with a dispatcher that returns a fixed envelope: what the transport costs."""
    import uvicorn

    sys.path.insert(0, str(REPO / "src"))
    from dbhandles import Service, Settings
    from dbhandles.server import create_app

    service = Service(settings=Settings(home=Path(home)))
    envelope: dict[str, Any] = {"success": True, "timestamp": "2026-01-01T00:00:00.000Z", "dbHandle": "h",
                "collection": COLLECTION, "id": "r0000001", "found": True,
                "data": {"text": "example 1 of the training set", "label": "negative"}}  # fmt: skip

    def stub_dispatch(name: str, params: Any = None, *, context: Any = None) -> dict[str, Any]:
        return envelope

    service.dispatch = stub_dispatch  # type: ignore[method-assign]
    app = create_app(service, require_token=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def run_ceiling(path: str, port: int) -> None:
    import uvicorn

    uvicorn.run(
        ceiling_app(path), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


# -- set-up ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def record_id(i: int) -> str:
    return f"r{i:07d}"


def populate(home: Path, db_path: Path, count: int) -> str:
    """A SQLite handle with ``count`` records (ids r0000000...), made through the public commands."""
    sys.path.insert(0, str(REPO / "src"))
    from dbhandles import Service, Settings

    labels = ("positive", "negative", "neutral")
    with Service(settings=Settings(home=home)) as service:
        handle = str(service.execute("data/open", {"adapter": "sqlite", "alias": "bench",
                                                   "config": {"path": str(db_path), "mode": "create"}})["dbHandle"])  # fmt: skip
        for start in range(0, count, 10_000):
            ops = [
                {"op": "create", "collection": COLLECTION, "id": record_id(i),
                 "data": {"text": f"example {i} of the training set", "label": labels[i % 3],
                          "metadata": {"qualityScore": (i % 100) / 100, "source": "git"}}}
                for i in range(start, min(count, start + 10_000))
            ]  # fmt: skip
            service.execute(
                "data/batch", {"dbHandle": handle, "operations": ops, "suppressEvents": True}
            )
    return handle


def wait_up(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until ``GET /health`` answers (the ceiling has no such route: any HTTP answer will do)."""
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/health")
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    raise TimeoutError(f"nothing answers on {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- the load client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    seconds: float
    connections: int
    warmup: float


@dataclass
class Stats:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return (
            ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
            if ordered
            else float("nan")
        )


async def http_load(
    name: str, port: int, path: str, bodies: list[bytes], load: Load, extra_headers: str = ""
) -> Stats:
    seconds, conns, warmup = load.seconds, load.connections, load.warmup
    start = time.perf_counter() + warmup
    end = start + seconds
    latencies: list[float] = []
    counts = [0]
    errors = [0]

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        rng = random.Random(k)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{extra_headers}Content-Length: "
        ).encode()
        try:
            while True:
                body = bodies[rng.randrange(len(bodies))]
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                headers = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in headers.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                payload = await reader.readexactly(length)
                t1 = time.perf_counter()
                if t0 >= start:
                    latencies.append(t1 - t0)
                    counts[0] += 1
                    if headers[9:12] != b"200" or b'"found":true' not in payload:
                        errors[0] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(k) for k in range(conns)))
    return Stats(name, counts[0], seconds, latencies, errors[0])


async def ws_load(port: int, handle: str, count: int, load: Load, query: str = "") -> Stats:
    from websockets.asyncio.client import connect

    seconds, conns, warmup = load.seconds, load.connections, load.warmup
    start = time.perf_counter() + warmup
    end = start + seconds
    latencies: list[float] = []
    counts = [0]
    errors = [0]

    async def worker(k: int) -> None:
        rng = random.Random(1000 + k)
        url = f"ws://127.0.0.1:{port}/ws{query}"
        async with connect(url, max_size=None, compression=None) as ws:
            await ws.recv()  # hello
            n = 0
            while True:
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                n += 1
                params = {
                    "dbHandle": handle,
                    "collection": COLLECTION,
                    "id": record_id(rng.randrange(count)),
                }
                await ws.send(
                    orjson.dumps(
                        {"type": "request", "id": n, "command": "data/read", "params": params}
                    )
                )
                reply = orjson.loads(await ws.recv())
                t1 = time.perf_counter()
                if t0 >= start:
                    latencies.append(t1 - t0)
                    counts[0] += 1
                    if reply.get("id") != n or not reply["result"].get("found"):
                        errors[0] += 1

    await asyncio.gather(*(worker(k) for k in range(conns)))
    return Stats("dbhandles WebSocket /ws", counts[0], seconds, latencies, errors[0])


def run_async(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# -- main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternate ceiling/dbhandles this many times"
    )
    parser.add_argument("--threads", type=int, default=2, help="jtag serve --threads")
    parser.add_argument("--anonymous", action="store_true", help="serve with --allow-anonymous")
    parser.add_argument("--ceiling", nargs=2, metavar=("PATH", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--stub", nargs=2, metavar=("HOME", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling:
        run_ceiling(args.ceiling[0], int(args.ceiling[1]))
        return 0
    if args.stub:
        run_stub(args.stub[0], int(args.stub[1]))
        return 0

    work = Path(tempfile.mkdtemp(prefix="dbh-bench-"))
    try:
        return bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(args: argparse.Namespace, work: Path) -> int:
    home, db_path = work / "home", work / "bench.sqlite"
    t0 = time.perf_counter()
    handle = populate(home, db_path, args.records)
    size_mb = db_path.stat().st_size / 1e6
    print(
        f"populated {args.records:,} records in {time.perf_counter() - t0:.1f}s ({size_mb:.0f} MB)"
    )
    python = sys.executable
    env = {**os.environ, "DBHANDLES_HOME": str(home)}
    env.pop("JTAG_URL", None)

    rng = random.Random(7)
    ids = [record_id(rng.randrange(args.records)) for _ in range(5000)]
    ceiling_bodies = [orjson.dumps({"id": i}) for i in ids]
    dbh_bodies = [
        orjson.dumps({"dbHandle": handle, "collection": COLLECTION, "id": i}) for i in ids
    ]
    load = Load(args.seconds, args.connections, args.warmup)

    ceiling_port, dbh_port, stub_port = free_port(), free_port(), free_port()
    serve = [
        python,
        "-m",
        "dbhandles.cli",
        "serve",
        f"--port={dbh_port}",
        f"--threads={args.threads}",
    ]
    if args.anonymous:
        serve.append("--allow-anonymous")
    ceiling = subprocess.Popen(
        [python, __file__, "--ceiling", str(db_path), str(ceiling_port)], env=env
    )
    server = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL)
    stub = subprocess.Popen(
        [python, __file__, "--stub", str(work / "stub-home"), str(stub_port)], env=env
    )
    try:
        wait_up(ceiling_port, ceiling)
        wait_up(dbh_port, server)
        wait_up(stub_port, stub)
        # Like every client of a server that requires tokens: each request carries one and is checked.
        token = "" if args.anonymous else (home / "admin.token").read_text().strip()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        query = f"?token={token}" if token else ""
        runs: dict[str, list[Stats]] = {"ceiling": [], "dbhandles": []}
        for _ in range(args.rounds):
            runs["ceiling"].append(run_async(http_load(
                "ceiling: Starlette + sqlite3", ceiling_port, "/read", ceiling_bodies, load)))  # fmt: skip
            runs["dbhandles"].append(run_async(http_load(
                "dbhandles POST /commands/data/read", dbh_port, "/commands/data/read", dbh_bodies, load,
                auth)))  # fmt: skip
        ws = run_async(ws_load(dbh_port, handle, args.records, load, query))
        transport = run_async(http_load(
            "transport only (stub dispatcher)", stub_port, "/commands/data/read", dbh_bodies, load))  # fmt: skip
    finally:
        stop(ceiling)
        stop(server)
        stop(stub)
    report(args, runs, ws, transport)
    return 0


def report(
    args: argparse.Namespace, runs: dict[str, list[Stats]], ws: Stats, transport: Stats
) -> None:
    best_ceiling = max(runs["ceiling"], key=lambda s: s.rps)
    best_dbh = max(runs["dbhandles"], key=lambda s: s.rps)
    auth = (
        "no token (--allow-anonymous)" if args.anonymous else "a bearer token checked per request"
    )
    print(
        f"\nload: {args.connections} keep-alive connections, {args.seconds:g}s measured per run (best of "
        f"{args.rounds}), random ids over {args.records:,} records, {auth}, {os.cpu_count()} CPUs"
    )
    print(f"{'':38} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for s in (best_ceiling, best_dbh, ws, transport):
        print(f"{s.name:38} {s.rps:9.0f} {s.pct(0.5):8.2f} {s.pct(0.99):8.2f} {s.errors:7d}")
    ratio = best_dbh.rps / best_ceiling.rps
    verdict = "meets" if ratio >= TARGET else "BELOW"
    print(
        f"\nHTTP ratio dbhandles / ceiling: {ratio:.2f}x (target >= {TARGET}x): {verdict} the target"
    )
    print(f"WebSocket ratio / ceiling:      {ws.rps / best_ceiling.rps:.2f}x")
    print(
        f"transport only / ceiling:       {transport.rps / best_ceiling.rps:.2f}x (the same HTTP path with "
        "a dispatcher that returns a fixed envelope: the rest of the gap is Service.dispatch)"
    )
    ceiling_runs = ", ".join(f"{s.rps:.0f}" for s in runs["ceiling"])
    dbh_runs = ", ".join(f"{s.rps:.0f}" for s in runs["dbhandles"])
    median = statistics.median(s.rps for s in runs["dbhandles"]) / statistics.median(
        s.rps for s in runs["ceiling"]
    )
    print(
        f"every run, req/s: ceiling [{ceiling_runs}], dbhandles [{dbh_runs}]; median ratio {median:.2f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
