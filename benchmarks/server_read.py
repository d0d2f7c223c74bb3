"""Benchmark: ``POST /commands/data/read`` on a 200,000-record SQLite handle against a bare ceiling.

The ceiling is a bare Starlette + uvicorn endpoint that does one ``sqlite3`` select by id on the same file
and returns the row. Both servers run as separate processes with the same uvicorn settings, and the same
load client (asyncio, keep-alive HTTP/1.1 over loopback, N connections, random ids) drives both in one
run. It prints requests/s, p50 and p99 for each, the ratio (target: at least 0.7x the ceiling) and the
WebSocket request/response throughput of ``/ws``.

Then ``wrk`` (a C load generator, ``/usr/bin/wrk``; skipped with a note when it is missing) drives the
ceiling and ``data/read`` through every kind of SQLite handle on the same records: ``readwrite`` (the
handle that made them), ``readonly`` (a second handle on the same file), ``alias`` (an alias of the
first) and ``default`` (the home's default database), taking turns with the ceiling, and prints each
ratio, and the ratio of requests per CPU-second of each server (what a request costs, which the other
work of a shared machine moves less than the throughput). Last, ``wrk`` compares ``jtag serve --workers=2`` (``--workers``) with one worker on the same home,
taking turns, and prints the ratio (target: at least 1.4x on 2 cores; ``--workers-only`` runs only that).
A benchmark, not a test: nothing here asserts a time.

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
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server_load import (  # a sibling module of this script
    COLLECTION,
    WRK,
    Load,
    Stats,
    http_load,
    record_id,
    wrk_load,
    ws_load,
)

REPO = Path(__file__).resolve().parent.parent
TARGET = 0.7
WORKERS_TARGET = 1.4


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
            for target in (handle, "default"):
                service.execute(
                    "data/batch", {"dbHandle": target, "operations": ops, "suppressEvents": True}
                )
    return handle


def open_readonly(home: Path, db_path: Path) -> str:
    """A second handle on the same file, opened ``readonly`` (what users serve training data with)."""
    from dbhandles import Service, Settings

    with Service(settings=Settings(home=home)) as service:
        config = {"path": str(db_path), "mode": "readonly"}
        return str(
            service.execute("data/open", {"adapter": "sqlite", "config": config})["dbHandle"]
        )


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
    parser.add_argument("--workers", type=int, default=2,
                        help="also compare jtag serve --workers=N with one worker (1: skip)")  # fmt: skip
    parser.add_argument("--workers-mode", default="readwrite",
                        choices=("readwrite", "readonly", "alias", "default"),
                        help="the handle mode of the --workers comparison")  # fmt: skip
    parser.add_argument("--workers-only", action="store_true",
                        help="run only the --workers comparison")  # fmt: skip
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

    readonly = open_readonly(home, db_path)
    modes = {"readwrite": handle, "readonly": readonly, "alias": "bench", "default": None}
    mode_bodies = {
        mode: [
            orjson.dumps({"collection": COLLECTION, "id": i} | ({"dbHandle": h} if h else {}))
            for i in ids
        ]
        for mode, h in modes.items()
    }
    if args.workers_only:
        compare_workers(args, env, mode_bodies[args.workers_mode], load, home, work)
        return 0
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
        ws = {
            mode: run_async(ws_load(dbh_port, h or "default", args.records, load, query, mode))
            for mode, h in modes.items()
        }
        transport = run_async(http_load(
            "transport only (stub dispatcher)", stub_port, "/commands/data/read", dbh_bodies, load))  # fmt: skip
        wrk_runs: dict[str, list[Stats]] = {"ceiling": [], **{mode: [] for mode in modes}}
        if Path(WRK).exists():
            for _ in range(args.rounds):
                wrk_runs["ceiling"].append(wrk_load("ceiling", ceiling_port, "/read",
                                                    ceiling_bodies, load, "", work, ceiling.pid))  # fmt: skip
                for mode in modes:
                    wrk_runs[mode].append(wrk_load(mode, dbh_port, "/commands/data/read",
                                                   mode_bodies[mode], load, token, work, server.pid))  # fmt: skip
    finally:
        stop(ceiling)
        stop(server)
        stop(stub)
    report(args, runs, ws, transport)
    report_wrk(args, wrk_runs)
    if args.workers > 1:
        compare_workers(args, env, mode_bodies[args.workers_mode], load, home, work)
    return 0


def compare_workers(args: argparse.Namespace, env: dict[str, str], bodies: list[bytes],
                    load: Load, home: Path, work: Path) -> None:  # fmt: skip
    """``wrk`` on ``jtag serve`` with one worker and with ``--workers=N`` (both on the same home, the
    same wrk settings, taking turns); prints each median and their ratio (target: 2 workers >= 1.4x
    one on a 2-core machine)."""
    if not Path(WRK).exists():
        print(f"\nwrk: {WRK} not found (apt-get install -y wrk); --workers was not measured")
        return
    servers: dict[int, tuple[int, subprocess.Popen[bytes]]] = {}
    runs: dict[int, list[Stats]] = {1: [], args.workers: []}
    try:
        for count in runs:
            port = free_port()
            command = [sys.executable, "-m", "dbhandles.cli", "serve", f"--port={port}",
                       f"--threads={args.threads}", f"--workers={count}"]  # fmt: skip
            if args.anonymous:
                command.append("--allow-anonymous")
            servers[count] = (port, subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
            wait_up(port, servers[count][1])
        token = "" if args.anonymous else (home / "admin.token").read_text().strip()
        for _ in range(args.rounds):
            for count, (port, proc) in servers.items():
                runs[count].append(wrk_load(f"{count} workers", port, "/commands/data/read",
                                            bodies, load, token, work, proc.pid))  # fmt: skip
    finally:
        for _port, proc in servers.values():
            stop(proc)
    one = statistics.median(s.rps for s in runs[1])
    many = statistics.median(s.rps for s in runs[args.workers])
    verdict = "meets" if many / one >= WORKERS_TARGET else "BELOW"
    print(f"\njtag serve --workers, data/read on the {args.workers_mode} handle, wrk -t1 "
          f"-c{args.connections}, {args.seconds:g}s per run, {args.rounds} rounds taking turns; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    for count, stats in runs.items():
        every = ", ".join(f"{s.rps:.0f}" for s in stats)
        used = statistics.median(s.cpu / s.seconds for s in stats)
        per_core = statistics.median(s.per_cpu for s in stats)
        print(f"{count} worker(s): median {statistics.median(s.rps for s in stats):.0f} req/s "
              f"[{every}], non-2xx {sum(s.errors for s in stats)}; the server used {used:.2f} "
              f"cores, {per_core:.0f} req per CPU-second")  # fmt: skip
    print("(req per CPU-second equal for both: throughput is bounded by the cores the workers got; "
          "other load on the machine takes the rest)")  # fmt: skip
    print(f"ratio {args.workers} workers / 1 worker: {many / one:.2f}x "
          f"(target >= {WORKERS_TARGET}x with 2 workers on 2 cores): {verdict} the target")  # fmt: skip


def report_wrk(args: argparse.Namespace, runs: dict[str, list[Stats]]) -> None:
    """Each handle mode's ``wrk`` throughput over the ceiling's, from runs that took turns."""
    if not runs["ceiling"]:
        print(f"\nwrk: {WRK} not found (apt-get install -y wrk); the wrk ratios were not measured")
        return
    ceiling = statistics.median(s.rps for s in runs["ceiling"])
    print(f"\nwrk -t1 -c{args.connections}, {args.seconds:g}s per run, {args.rounds} rounds taking turns; "
          f"ceiling median {ceiling:.0f} req/s; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    # Requests per CPU-second of each server: the ratio of what a request costs, which other work
    # on the machine does not move as much as it moves the cores each server gets.
    ceiling_cpu = statistics.median(s.per_cpu for s in runs["ceiling"])
    print(f"ceiling: {ceiling_cpu:.0f} req per CPU-second of its server")
    print(f"{'handle mode':12} {'req/s (median)':>15} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
          f"{'ratio':>7} {'req/CPU-s':>10} {'CPU ratio':>10}")  # fmt: skip
    for mode, stats in runs.items():
        if mode == "ceiling":
            continue
        rps = statistics.median(s.rps for s in stats)
        mid = sorted(stats, key=lambda s: s.rps)[len(stats) // 2]
        ratio = rps / ceiling
        per_cpu = statistics.median(s.per_cpu for s in stats)
        mark = "" if ratio >= TARGET else f"  below {TARGET}x"
        print(f"{mode:12} {rps:15.0f} {mid.pct(0.5):8.2f} {mid.pct(0.99):8.2f} "
              f"{sum(s.errors for s in stats):8d} {ratio:6.2f}x {per_cpu:10.0f} "
              f"{per_cpu / ceiling_cpu:9.2f}x{mark}")  # fmt: skip


def report(
    args: argparse.Namespace, runs: dict[str, list[Stats]], ws: dict[str, Stats], transport: Stats
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
    for s in (best_ceiling, best_dbh, *ws.values(), transport):
        print(f"{s.name:38} {s.rps:9.0f} {s.pct(0.5):8.2f} {s.pct(0.99):8.2f} {s.errors:7d}")
    ratio = best_dbh.rps / best_ceiling.rps
    verdict = "meets" if ratio >= TARGET else "BELOW"
    print(
        f"\nHTTP ratio dbhandles / ceiling: {ratio:.2f}x (target >= {TARGET}x): {verdict} the target"
    )
    for mode, stats in ws.items():
        print(f"WebSocket {mode:9} / ceiling: {stats.rps / best_ceiling.rps:.2f}x")
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
