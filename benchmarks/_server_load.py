"""The load clients of ``benchmarks/server_read.py``: an asyncio HTTP/1.1 client, a WebSocket client
and ``wrk``, each returning requests/s and latencies, and (given the server's pid) the CPU time the
server used, so that throughput can be read per CPU-second on a machine other work also uses."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

COLLECTION = "records"
WRK = shutil.which("wrk") or "/usr/bin/wrk"


def record_id(i: int) -> str:
    return f"r{i:07d}"


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
    #: CPU seconds (user + system) the server used during the measured seconds (0: not measured).
    cpu: float = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def per_cpu(self) -> float:
        """Requests per CPU-second of the server: what the server costs, whatever share of the
        cores other work on the machine left it."""
        return self.requests / self.cpu if self.cpu > 0 else float("nan")

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


async def ws_load(
    port: int, handle: str, count: int, load: Load, query: str = "", mode: str = ""
) -> Stats:
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
    return Stats(
        f"dbhandles WebSocket /ws {mode}".rstrip(), counts[0], seconds, latencies, errors[0]
    )


def _seconds(text: str) -> float:
    """A duration as wrk prints it (``812.00us``, ``1.20ms``, ``2.01s``) in seconds."""
    for unit, scale in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float("nan")


_WRK_SCRIPT = """
local bodies = {%s}
local n = 0
request = function()
  n = n %% #bodies + 1
  return wrk.format("POST", "%s", nil, bodies[n])
end
"""


def wrk_load(name: str, port: int, path: str, bodies: list[bytes], load: Load, token: str,
             work: Path, pid: int | None = None) -> Stats:  # fmt: skip
    """Requests/s and latencies of ``wrk -t1`` with ``load.connections`` connections, ``bodies`` in
    turn; with ``pid`` (the server's), also the CPU time it and its children used meanwhile."""
    script = work / f"wrk-{port}-{abs(hash(path))}.lua"
    quoted = ",".join("[[" + b.decode() + "]]" for b in bodies[:2000])
    script.write_text(_WRK_SCRIPT % (quoted, path))
    headers = ["-H", "Content-Type: application/json"]
    if token:
        headers += ["-H", f"Authorization: Bearer {token}"]
    command = [WRK, "-t1", f"-c{load.connections}", f"-d{load.seconds:g}s", "--latency",
               *headers, "-s", str(script), f"http://127.0.0.1:{port}{path}"]  # fmt: skip
    if load.warmup > 0:
        warm = [*command[:3], f"-d{max(1, round(load.warmup))}s", *command[4:]]
        subprocess.run(warm, capture_output=True, check=True)
    before = tree_cpu(pid) if pid is not None else 0.0
    out = subprocess.run(command, capture_output=True, check=True, text=True).stdout
    cpu = tree_cpu(pid) - before if pid is not None else 0.0
    rps = float(out.split("Requests/sec:")[1].split()[0])
    latencies: dict[str, float] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            latencies[parts[0]] = _seconds(parts[1])
    errors = 0
    if "Non-2xx or 3xx responses:" in out:
        errors = int(out.split("Non-2xx or 3xx responses:")[1].split()[0])
    count = int(rps * load.seconds)
    # wrk gives percentiles, not every latency: keep p50 and p99 where Stats.pct looks for them.
    samples = [latencies.get("50%", float("nan"))] * 98 + [latencies.get("99%", float("nan"))] * 2
    return Stats(name, count, load.seconds, samples, errors, cpu)


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its children (Linux ``/proc``;
    0 elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # the process, or a child
            total += (int(fields[11]) + int(fields[12])) / tick
    return total
