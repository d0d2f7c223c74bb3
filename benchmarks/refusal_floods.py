"""Three floods of issue 13's outside rounds: another actor's read latency, flood over no flood,
and the server's memory.

    python benchmarks/refusal_floods.py --flood=wrong-tokens [--seconds=6] [--connections=300]
    python benchmarks/refusal_floods.py --flood=ws-wrong-tokens [--seconds=6] [--connections=300]
    python benchmarks/refusal_floods.py --flood=non-readers [--seconds=6] [--connections=400]

A real ``jtag serve`` (tokens required, defaults for every limit) on a loopback port and a temporary
home. bob (a non-admin token) runs ``POST /commands/data/list`` (20 records) with ``wrk -t1 -c1``
for ``--seconds``: with no load, then under the flood, then with no load again; the ratio is bob's
p50 and p99 under the flood over the mean of the two quiet windows, measured in the same run.

``wrong-tokens``: ``wrk -t2 -c<connections>`` POSTs ``/commands/data/list`` with a token of a
made-up id each (``dbh_<random 12 hex>_<secret>``: each refused 401 within the rate, then the
rate's 429). ``ws-wrong-tokens``: the same with ``GET /ws`` WebSocket upgrades (``Upgrade:
websocket``, a ``Sec-WebSocket-Key``), each with a token of a made-up id. ``non-readers``:
``<connections>`` sockets from 127.0.0.2-200 (one client address: loopback), SO_RCVBUF 2 KB, each pipelining 50 ``GET /openapi.json`` and never reading (a socket the
server closes is opened again), in a child process. bob's flood window starts with the flood (the
child's own start-up, about 0.3 s, inside it). Prints the server's RSS before, at the end of the
flood window and 3 s after the flood, and the server's CPU seconds while the flood ran (bob's reads
included; over wrk's count of flood requests: a cost per refusal that the machine's load blurs
less than bob's p99).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from _wrk import lua_script, need_wrk, wrk
from fairness import Server, server_cpu

#: wrk's request of the ``wrong-tokens`` flood, and of the ``ws-wrong-tokens`` one (an upgrade).
_POST_EMPTY = (
    'wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n'
)
_WS_UPGRADE = (
    'wrk.method = "GET"\nwrk.headers["Upgrade"] = "websocket"\n'
    'wrk.headers["Connection"] = "Upgrade"\nwrk.headers["Sec-WebSocket-Version"] = "13"\n'
    'wrk.headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="\n'
)


def non_readers(port: int, seconds: float, connections: int) -> None:
    """The ``non-readers`` flood (run in a child process)."""
    request = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 50
    stop = time.monotonic() + seconds
    socks: dict[int, socket.socket] = {}

    def open_one(i: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.bind((f"127.0.0.{2 + i % 199}", 0))
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        socks[i] = sock

    for i in range(connections):
        open_one(i)
    sent = dict.fromkeys(range(connections), False)
    while time.monotonic() < stop:
        for i, sock in list(socks.items()):
            try:
                if not sent[i]:
                    sock.send(request)
                    sent[i] = True
                elif sock.recv(1, socket.MSG_PEEK) == b"":
                    raise ConnectionResetError  # closed by the server
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                sock.close()
                open_one(i)
                sent[i] = False
        time.sleep(0.05)
    for sock in socks.values():
        sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--flood", choices=["wrong-tokens", "ws-wrong-tokens", "non-readers"], required=True
    )
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=0)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        non_readers(args.port, args.seconds, args.connections)
        return 0
    connections = args.connections or (400 if args.flood == "non-readers" else 300)
    with tempfile.TemporaryDirectory(prefix="dbh-refusal-floods-") as tmp:
        work = Path(tmp)
        server = Server(work)
        try:
            bob = server.token("bob")
            ops = [{"op": "create", "collection": "items", "data": {"n": i}} for i in range(200)]
            server.call(server.admin, "data/batch", {"operations": ops, "suppressEvents": True})
            read = lua_script(work, "read", bob, orjson.dumps({"collection": "items", "limit": 20}))
            url = f"{server.url}/commands/data/list"
            wrk(url, read, 2)  # warm-up
            before = wrk(url, read, args.seconds)
            rss_before = server.rss_mb()
            if args.flood != "non-readers":
                script = work / "flood.lua"
                target = url if args.flood == "wrong-tokens" else f"{server.url}/ws"
                script.write_text(
                    (_WS_UPGRADE if args.flood == "ws-wrong-tokens" else _POST_EMPTY)
                    + "request = function()\n"
                    '  wrk.headers["Authorization"] = string.format("Bearer dbh_%06x%06x_%s",\n'
                    "    math.random(0, 16777215), math.random(0, 16777215),\n"
                    '    "wrongsecretwrongsecretwrong")\n'
                    "  return wrk.format(nil)\nend\n"
                )
                flooder = subprocess.Popen(
                    [need_wrk(), "-t2", f"-c{connections}", f"-d{round(args.seconds + 2)}s",
                     "-s", str(script), target],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                )  # fmt: skip
            else:
                flooder = subprocess.Popen(
                    [sys.executable, __file__, "--flood=non-readers", "--child",
                     f"--port={server.port}", f"--seconds={args.seconds + 2}",
                     f"--connections={connections}"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                )  # fmt: skip
            # No pause: the window takes in the flood's first seconds (a stall there, issue 13).
            cpu_before = server_cpu(server.pid)
            try:
                during = wrk(url, read, args.seconds)
                rss_during = server.rss_mb()
            finally:
                out, _ = flooder.communicate(timeout=args.seconds + 60)
            cpu = server_cpu(server.pid) - cpu_before
            time.sleep(3)
            rss_after = server.rss_mb()
            after = wrk(url, read, args.seconds)
        finally:
            server.stop()
    flooded = next((line.strip() for line in out.splitlines() if "requests in" in line), "")
    print(f"flood: {args.flood}, {connections} connections {flooded}")
    print(f"{'window':<10} {'p50 ms':>8} {'p99 ms':>8} {'reads':>8}")
    for name, row in (("before", before), ("flood", during), ("after", after)):
        print(f"{name:<10} {row['p50']:>8.2f} {row['p99']:>8.2f} {row['requests']:>8.0f}")
    for pct in ("p50", "p99"):
        quiet = (before[pct] + after[pct]) / 2
        print(f"ratio {pct} flood/no flood: {during[pct] / quiet:.2f}x")
    flood_requests = re.search(r"(\d+) requests in", flooded)
    per = f", {1000 * cpu / int(flood_requests.group(1)):.2f} ms" if flood_requests else ""
    print(f"server CPU s during the flood (bob's reads included): {cpu:.2f}{per} per flood request")
    print(
        f"server RSS MB: before {rss_before:.0f}, flood {rss_during:.0f}, 3 s after {rss_after:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
