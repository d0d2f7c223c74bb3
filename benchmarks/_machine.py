"""What the machine does around a benchmark window: its scheduling group, CPU pressure, and the CPU time
of a process tree (``benchmarks/fairness.py``).

On Linux with autogroups (``/proc/sys/kernel/sched_autogroup_enabled``), a process's niceness only ranks
it against the processes of its own session: ``nice -n -10`` gives a benchmark no edge over another
session's test suite, which gets an equal share of the CPU as a group. ``own_session`` starts the
benchmark again in a session of its own whose group gets the benchmark's niceness, so the niceness
means what it says.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["TreeCpu", "cpu_pressure_us", "own_session"]

_AUTOGROUP = Path("/proc/self/autogroup")
_AGAIN = "DBH_BENCH_OWN_SESSION"


def own_session() -> str:
    """When this process runs at a negative niceness on a kernel with autogroups: run this script
    again (``setsid -w``) in a new session whose group has the same niceness, exiting with its
    status; in that run, set the group's niceness. What was done, for the report."""
    nice = os.nice(0)
    if nice >= 0 or not _AUTOGROUP.exists():
        return f"niceness {nice}, scheduling group left as it is"
    if os.getsid(0) != os.getpid():
        if os.environ.get(_AGAIN) or not shutil.which("setsid"):
            # Never the caller's session: its group holds the caller's other processes too.
            return f"niceness {nice}, in the caller's session (no setsid): its group left as it is"
        env = {**os.environ, _AGAIN: "1"}
        sys.exit(subprocess.run(["setsid", "-w", sys.executable, *sys.argv], env=env).returncode)
    try:
        _AUTOGROUP.write_text(str(nice))
    except OSError as exc:  # not root (a negative group niceness needs CAP_SYS_NICE)
        return f"niceness {nice}; its scheduling group could not be set ({exc})"
    return f"niceness {nice}, in a session of its own whose scheduling group has niceness {nice}"


def cpu_pressure_us() -> int | None:
    """Microseconds during which some runnable task waited for a CPU, since boot (Linux PSI);
    ``None`` where the kernel does not say."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return int(line.rsplit("total=", 1)[1])


def _ticks(pid: str) -> tuple[int, int] | None:
    """(parent pid, user + system clock ticks) of ``pid``."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


class TreeCpu:
    """CPU seconds used by the processes started by ``root`` (its descendants, not itself) between
    ``start`` and ``seconds``; a process that ended in between counts up to its last sample."""

    def __init__(self, root: int) -> None:
        self.root = root
        self._first: dict[int, int] = {}

    def _sample(self) -> dict[int, int]:
        table: dict[int, tuple[int, int]] = {}
        for name in os.listdir("/proc"):
            if name.isdigit() and (found := _ticks(name)) is not None:
                table[int(name)] = found
        inside, found_more = {self.root}, True
        while found_more:
            found_more = False
            for pid, (ppid, _) in table.items():
                if ppid in inside and pid not in inside:
                    inside.add(pid)
                    found_more = True
        return {pid: table[pid][1] for pid in inside - {self.root}}

    def start(self) -> None:
        self._first = self._sample()

    def seconds(self) -> float:
        now = self._sample()
        ticks = sum(t - self._first.get(pid, 0) for pid, t in now.items())
        return ticks / os.sysconf("SC_CLK_TCK")
