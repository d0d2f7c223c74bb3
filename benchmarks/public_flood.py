"""An anonymous flood of a public route: another actor's read latency, flood over no flood.

    python benchmarks/public_flood.py [--seconds=8] [--path=/openapi.json] [--connections=32]
                                      [--host-header=evil.example | --addresses=1000
                                       | --command=data/list]
                                      [--setting=DBHANDLES_PUBLIC_RATE=0 ...]

A real ``jtag serve`` (tokens required, defaults for every limit) on a loopback port and a temporary
home. bob (a non-admin token) runs ``POST /commands/data/list`` (20 small records) on one
connection with ``wrk -t1 -c1`` for ``--seconds``: once with no load, then while ``wrk -t2
-c<connections>`` asks ``GET <path>`` without a token from the same loopback address (issue 13:
before the per-address rate, the flood made bob's reads 6-11 times slower), then with no load again.
The ratio is bob's p50 and p99 under the flood over the mean of the two quiet windows, measured in
the same run (target: p99 ratio at most 3); ``<path>`` is asked once before, so the windows do not
include the one-time build of its document. It also prints what the flood got: its requests, and
how many were refused (429 from the rate).

``--host-header=NAME``: the flood sends ``Host: NAME`` (a name the server does not answer to: each
request is refused at the door, 403 within the rate). ``--addresses=N``: instead of wrk, the flood
is ``--connections`` threads in a child process, each request on a new connection from the next of
``N`` loopback source addresses (``127.0.w.k``), which every per-address limit counts as one; it
prints the flood's answers by status. ``--command=NAME``: the flood is wrk's ``POST /commands/NAME``
(``{}``) without a token instead of ``GET <path>`` (each refused 401 within the rate, then the
rate's delayed 429: issue 13, round 4).
"""

from __future__ import annotations

import argparse
import collections
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _wrk import lua_script, need_wrk, wrk
from fairness import Server


def flood(
    url: str, seconds: float, connections: int, host: str | None = None, script: Path | None = None
) -> subprocess.Popen[str]:
    """``wrk -t2 -c<connections>`` on ``url`` (a GET without a token; ``Host: host`` if given; the
    request of ``script`` if given), started, not waited for."""
    extra = ["-H", f"Host: {host}"] if host else []
    if script is not None:
        extra += ["-s", str(script)]
    return subprocess.Popen(
        [need_wrk(), "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", *extra, url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def rotating(port: int, path: str, seconds: float, threads: int, addresses: int) -> None:
    """The ``--addresses`` flood (run in a child process): ``threads`` threads asking ``GET path``
    for ``seconds``, each request on a new connection from the next loopback source address of
    ``addresses`` (127.0.w.k); prints ``{status: answers}`` as its last line."""
    sources = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(addresses)]
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()

    def run(first: int) -> None:
        n = first
        while time.monotonic() < stop:
            n += threads
            try:
                with socket.socket() as sock:
                    sock.settimeout(10)
                    sock.bind((sources[n % len(sources)], 0))
                    sock.connect(("127.0.0.1", port))
                    sock.sendall(request)
                    status = sock.recv(16).split(b" ")[1].decode()
                    while sock.recv(65536):
                        pass
            except (OSError, IndexError):
                status = "error"
            with lock:
                counts[status] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(orjson.dumps(dict(counts)).decode(), flush=True)


def rotating_flood(
    port: int, path: str, seconds: float, threads: int, addresses: int
) -> subprocess.Popen[str]:
    """``rotating`` in a child process (its own GIL), started, not waited for."""
    return subprocess.Popen(
        [sys.executable, __file__, "--rotate", f"--port={port}", f"--path={path}",
         f"--seconds={seconds}", f"--connections={threads}", f"--addresses={addresses}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--path", default="/openapi.json")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--setting", action="append", default=[], metavar="DBHANDLES_X=VALUE",
                        help="a setting of the server (DBHANDLES_PUBLIC_RATE=0: no rate)")  # fmt: skip
    parser.add_argument("--host-header", default=None, help="the flood's Host header")
    parser.add_argument("--addresses", type=int, default=0,
                        help="rotate the flood over this many loopback source addresses")  # fmt: skip
    parser.add_argument("--command", default=None,
                        help="flood POST /commands/COMMAND without a token instead")  # fmt: skip
    parser.add_argument("--rotate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rotate:
        rotating(args.port, args.path, args.seconds, args.connections, args.addresses)
        return 0
    with tempfile.TemporaryDirectory(prefix="dbh-public-flood-") as tmp:
        work = Path(tmp)
        server = Server(work, dict(pair.split("=", 1) for pair in args.setting))
        try:
            return bench(server, work, args)
        finally:
            server.stop()


def bench(server: Server, work: Path, args: argparse.Namespace) -> int:
    bob = server.token("bob")
    ops = [{"op": "create", "collection": "items", "data": {"n": i}} for i in range(200)]
    server.call(server.admin, "data/batch", {"operations": ops, "suppressEvents": True})
    read = lua_script(work, "read", bob, orjson.dumps({"collection": "items", "limit": 20}))
    read_url = f"{server.url}/commands/data/list"
    seconds = args.seconds
    wrk(read_url, read, 2)  # warm-up
    # The document is built on its first request (0.5-1.5 s of the loop on a busy machine, once
    # per server): built here, so the flood's windows measure what every later request costs.
    httpx.get(server.url + args.path, timeout=60)
    before = wrk(read_url, read, seconds)
    if args.addresses:
        flooder = rotating_flood(server.port, args.path, seconds + 2, args.connections,
                                 args.addresses)  # fmt: skip
    elif args.command:
        script = lua_script(work, "flood", None, b"{}")
        flooder = flood(f"{server.url}/commands/{args.command}", seconds + 2, args.connections,
                        args.host_header, script)  # fmt: skip
    else:
        flooder = flood(server.url + args.path, seconds + 2, args.connections, args.host_header)
    try:
        during = wrk(read_url, read, seconds)
    finally:
        out, _ = flooder.communicate(timeout=seconds + 60)
    after = wrk(read_url, read, seconds)
    print(f"bob: wrk -t1 -c1 -d{seconds:g}s POST /commands/data/list (20 records)")
    if args.addresses:
        answers = orjson.loads(out.splitlines()[-1]) if out.strip() else {}
        print(f"flood: {args.connections} threads GET {args.path}, no token, a new connection "
              f"each from {args.addresses} loopback addresses: answers by status {answers}")  # fmt: skip
    else:
        flooded = {"requests": 0, "non2xx": 0}
        for line in out.splitlines():
            words = line.split()
            if "requests in" in line:
                flooded["requests"] = int(words[0])
            elif line.strip().startswith("Non-2xx or 3xx responses:"):
                flooded["non2xx"] = int(words[-1])
        host = f", Host: {args.host_header}" if args.host_header else ""
        what = f"POST /commands/{args.command}" if args.command else f"GET {args.path}"
        print(f"flood: wrk -t2 -c{args.connections} {what}{host}, no token, same "
              f"address: {flooded['requests']} requests, {flooded['non2xx']} refused "
              "(non-2xx)")  # fmt: skip
    print(f"{'window':<10} {'p50 ms':>8} {'p99 ms':>8} {'reads':>8}")
    for name, row in (("before", before), ("flood", during), ("after", after)):
        print(f"{name:<10} {row['p50']:>8.2f} {row['p99']:>8.2f} {row['requests']:>8.0f}")
    for pct in ("p50", "p99"):
        quiet = (before[pct] + after[pct]) / 2
        print(f"ratio {pct} flood/no flood: {during[pct] / quiet:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
