"""One server per home: ``jtag serve`` holds ``<home>/server.lock`` while it runs.

Two servers on one home would each write ``server.json`` (the second overwriting the first's), and
the one that stops first would remove it while the other still runs, so ``jtag`` would quietly run
in-process next to a live server. So a server (or the supervisor of ``--workers``; its workers do
not) takes an exclusive ``flock`` on ``<home>/server.lock`` before it binds its port, writes its pid
there, and keeps the descriptor open until it exits. The kernel releases the lock when the process
ends, however it ends (``kill -9`` too), so a stale ``server.json`` never blocks a start: the next
server takes the free lock and replaces it. A server of an older dbhandles that took no lock is
still found through ``server.json`` (a live pid whose address answers ``/health`` for this home).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from dbhandles.cli.transport import find_server, read_state
from dbhandles.errors import InvalidParams
from dbhandles.lock_files import open_lock_file

__all__ = ["LOCK_FILE", "HomeClaim", "claim_home"]

#: The lock file a running server holds (its content: the holder's pid).
LOCK_FILE = "server.lock"


class HomeClaim:
    """The lock of a running server on its home; ``release`` (idempotent) gives it up."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


def _running(home: Path, holder: str) -> str:
    """The message naming the server that runs on ``home`` (``holder``: the pid in the lock)."""
    state = read_state(home) or {}
    pid = state.get("pid") or holder or "unknown"
    url = state.get("url")
    where = f" on {url}" if isinstance(url, str) else " (still starting: no server.json yet)"
    return (
        f"serve: another server runs on the home {home} (pid {pid}{where}); one home has one "
        "server: use that one (jtag finds it by itself), stop it first, or start this one with "
        "another DBHANDLES_HOME"
    )


def claim_home(home: Path) -> HomeClaim:
    """Take ``<home>/server.lock`` for this process (creating the home if needed).

    Raises:
        InvalidParams: another server holds the home (``field`` ``home``; the message names its
            pid and URL), or the lock file cannot be opened.
    """
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = open_lock_file(home / LOCK_FILE, "home")
    except OSError as exc:
        raise InvalidParams(
            f"serve: cannot use the home {home}: {exc.strerror or exc}", field="home"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            raise InvalidParams(_running(home, holder), field="home") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        state = read_state(home)
        if state is not None and state.get("pid") != os.getpid() and find_server(home):
            # A server that takes no lock (an older dbhandles) still serves this home.
            raise InvalidParams(_running(home, ""), field="home")
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return HomeClaim(fd)
