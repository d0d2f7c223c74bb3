"""``wrk`` for the benchmarks: found (or installed with apt-get), a POST script, and its latency
percentiles in milliseconds (corrected for coordinated omission, as wrk reports them)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["lua_script", "need_wrk", "wrk"]

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def need_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install -y wrk)...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("this benchmark drives HTTP load with wrk: apt-get install -y wrk")
    return found


def lua_script(work: Path, name: str, token: str | None, body: bytes, limit: int = 0) -> Path:
    """A wrk script POSTing ``body``; with ``limit``, each thread stops after that many requests."""
    data = work / f"{name}.body"
    data.write_bytes(body)
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"\n' if token else ""
    stop = (
        f"local n = 0\nrequest = function()\n  n = n + 1\n  if n > {limit} then wrk.thread:stop() end\n"
        "  return wrk.format(nil)\nend\n"
        if limit
        else ""
    )
    script = work / f"{name}.lua"
    script.write_text(
        f'wrk.method = "POST"\nlocal f = io.open("{data}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        f'wrk.headers["Content-Type"] = "application/json"\n{auth}{stop}'
    )
    return script


def wrk(url: str, script: Path, seconds: float, connections: int = 1) -> dict[str, float]:
    out = subprocess.run(
        [need_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
         "--timeout", "30s", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    result: dict[str, float] = {}
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        if m:
            result[f"p{pct}"] = float(m.group(1)) * _UNITS[m.group(2)]
    m = re.search(r"(\d+) requests in", out)
    result["requests"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(m.group(1)) if m else 0.0
    return result
