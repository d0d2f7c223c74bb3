"""Benchmark: how long ``jtag`` takes to start, against ``sqlite-utils tables x.db`` in the same run.

Each command runs as a fresh process (the console scripts of this virtualenv), once to warm the
bytecode cache and then ``--runs`` times, the tools taking turns so that the machine's noise falls on
all of them alike. It prints each median wall time and its ratio to sqlite-utils' median (target:
at most 1.0x), and the median CPU time (user + system of the child) with its ratio: on a shared,
loaded machine the CPU time moves less than the wall time. The in-process ``data/list`` runs on an
empty home (no server is looked up but the default address, as a user's first command would); the
same command is then run on the home of a ``jtag serve`` (so it is sent there, as the local
administrator), started before the runs and stopped after them: its wall time is the CLI's start
plus the requests the server answers, its CPU time the CLI's alone (the server's is counted only
once it exits, after the runs).

Two reference rows, with no target, show the floor under the in-process command: the interpreter's
own start, and importing pydantic (every command validates its params with a pydantic model).
A benchmark, not a test: nothing here asserts a time.

    .venv/bin/python benchmarks/cli_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.0
BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT = 30.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of running ``argv`` from spawn to exit (it must succeed)."""
    cpu = _children_cpu()
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start, _children_cpu() - cpu


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A ``jtag serve`` of ``home`` on a free port, answering ``/health``."""
    import urllib.request

    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "jtag"), "serve", f"--port={port}"],
        env={**env, "DBHANDLES_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait()
                raise SystemExit(f"jtag serve did not start on {url}") from None
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per command (median)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dbh-cli-start-") as tmp:
        db = Path(tmp) / "x.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE users (id TEXT PRIMARY KEY, data TEXT)")
        conn.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JTAG_", "DBHANDLES_"))}
        # Both tools get compiled bytecode (as an installed tool has), kept out of the source tree.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        env["DBHANDLES_HOME"] = str(Path(tmp) / "home")
        # The server's own home: the CLI finds it in server.json and sends its local admin token.
        server_home = Path(tmp) / "server-home"
        server = _serve(server_home, env)
        remote_env = {**env, "DBHANDLES_HOME": str(server_home)}
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "sqlite-utils tables x.db": ([str(BIN / "sqlite-utils"), "tables", str(db)], env),
            "jtag help": ([str(BIN / "jtag"), "help"], env),
            "jtag help data/list": ([str(BIN / "jtag"), "help", "data/list"], env),
            "jtag data/list --collection=users (in-process)": (
                [str(BIN / "jtag"), "data/list", "--collection=users"],
                env,
            ),
            "jtag data/list --collection=users (to a server)": (
                [str(BIN / "jtag"), "data/list", "--collection=users"],
                remote_env,
            ),
            "(ref) python -c pass": ([sys.executable, "-c", "pass"], env),
            "(ref) python -c 'import pydantic.main'": (
                [sys.executable, "-c", "import pydantic.main"],
                env,
            ),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        try:
            for argv_, env_ in cases.values():
                _run(argv_, env_)  # warm-up: writes the bytecode cache
            load = os.getloadavg()[0]
            for _ in range(args.runs):
                for name, (argv_, env_) in cases.items():
                    times[name].append(_run(argv_, env_))
        finally:
            server.terminate()
            server.wait(timeout=SERVER_START_TIMEOUT)
    base_name = next(iter(cases))
    base_wall = statistics.median(t[0] for t in times[base_name])
    base_cpu = statistics.median(t[1] for t in times[base_name])
    print(
        f"load average: {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
        f"{args.runs} runs each, medians"
    )
    print(f"{'command':<50} {'wall ms':>8} {'ratio':>7} {'cpu ms':>8} {'ratio':>7}")
    for name, samples in times.items():
        wall = statistics.median(t[0] for t in samples)
        cpu = statistics.median(t[1] for t in samples)
        ratio = wall / base_wall
        mark = (
            ""
            if name == base_name or name.startswith("(ref)")
            else ("  ok" if ratio <= TARGET else f"  > {TARGET}x")
        )
        print(
            f"{name:<50} {wall * 1000:>8.1f} {ratio:>6.2f}x "
            f"{cpu * 1000:>8.1f} {cpu / base_cpu:>6.2f}x{mark}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
