"""The event loop's CPU per event delivered to WebSocket subscribers: each event's frame written raw
(``server/ws_frames.py``) against the same events through Starlette's ``send_text`` (the way before).

    python benchmarks/ws_event_frames.py [--sockets=16] [--events=400] [--kb=100] [--rounds=3]

A server (``create_app`` under ``server_config``, as ``jtag serve`` runs it) in a thread of this process;
``--sockets`` subscribers to ``data:*`` (an administrator's) in a child process that read and discard what they receive
(no parsing: the cost measured is the server's). The events are published on the service's bus
(``--kb`` KB payloads) and the event loop thread's CPU time (``/proc``, user + system) is read from
the first publish until every byte of every event was written to the sockets and read by the
child (one event at a time: none is dropped). Rounds alternate the two ways, so drift of the machine falls on both; the ratio printed is
of their medians (send_text over raw: above 1 means the raw frames cost the loop less).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from dbhandles import Service, Settings  # noqa: E402
from dbhandles.cli.serve import bind, server_config  # noqa: E402
from dbhandles.server import create_app  # noqa: E402
from dbhandles.server.ws_frames import FrameWriter  # noqa: E402

#: The child: open N sockets, subscribe each to data:*, say "ready", then read and count bytes;
#: prints the count read so far whenever a line arrives on stdin.
CHILD = r"""
import base64, os, socket, sys, threading
port, count, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
got = [0] * count
def run(i, sock):
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return
        got[i] += len(data)
socks = []
for i in range(count):
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += sock.recv(1)
    body = b'{"type":"subscribe","id":1,"pattern":"data:*"}'
    sock.sendall(bytes((0x81, 0x80 | len(body))) + b"\0\0\0\0" + body)
    socks.append(sock)
    threading.Thread(target=run, args=(i, sock), daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    print(sum(got), flush=True)
"""


def loop_cpu(tid: int) -> float:
    """CPU seconds (user + system) of thread ``tid`` of this process."""
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sockets", type=int, default=16)
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument("--kb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dbh-frames-"))
    service = Service(settings=Settings(home=home))
    token = service.tokens.create("bench", admin=True)[0]  # an administrator: no per-actor limits
    app = create_app(service)
    state = app.state.dbhandles
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    import uvicorn

    server = uvicorn.Server(server_config(app, service.settings))
    loop_tid: list[int] = []
    original_startup = server.startup

    async def startup(*a: Any, **k: Any) -> None:
        loop_tid.append(threading.get_native_id())
        await original_startup(*a, **k)

    server.startup = startup  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(port), str(args.sockets), token],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 30
    while state.fanout is None or state.fanout.pattern_count < args.sockets:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{state.websockets} sockets, "
                f"{state.fanout and state.fanout.pattern_count} subscriptions"
            )
        time.sleep(0.05)
    payload = {"dbHandle": "default", "collection": "c", "text": "x" * (args.kb * 1000)}

    def read_so_far() -> int:
        child.stdin.write("\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        return int(child.stdout.readline())  # type: ignore[union-attr]

    raw_ok = FrameWriter._raw_ok
    results: dict[str, list[float]] = {"raw": [], "send_text": []}
    try:
        for _ in range(args.rounds):
            for way in ("send_text", "raw"):
                FrameWriter._raw_ok = raw_ok if way == "raw" else (lambda self: False)  # type: ignore[method-assign]
                before_bytes = read_so_far()
                cpu = loop_cpu(loop_tid[0])
                for i in range(args.events):  # one at a time: no outbox fills, nothing is dropped
                    service.events.publish("data:c:created", {**payload, "id": str(i)})
                    wanted = before_bytes + (i + 1) * args.sockets * args.kb * 1000
                    deadline = time.monotonic() + 30
                    while read_so_far() < wanted:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"event {i} not read by every socket in 30 s")
                        time.sleep(0.001)
                results[way].append((loop_cpu(loop_tid[0]) - cpu) / args.events * 1000)
    finally:
        FrameWriter._raw_ok = raw_ok  # type: ignore[method-assign]
        child.kill()
        child.wait()
        server.should_exit = True
        thread.join(15)
        service.close()
    text, raw = statistics.median(results["send_text"]), statistics.median(results["raw"])
    print(f"{args.sockets} sockets, {args.events} events of {args.kb} KB per round, {args.rounds} rounds; "
          "event loop CPU ms per event (each round):")  # fmt: skip
    for way, values in results.items():
        print(f"  {way:9s} " + ", ".join(f"{v:.2f}" for v in values))
    print(f"send_text / raw: {text / raw:.2f}x (medians {text:.2f} / {raw:.2f} ms per event)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
