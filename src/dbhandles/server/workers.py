"""``jtag serve --workers=N``: N server processes on one port, and the supervisor that runs them.

One Python process serves about one core of requests (the GIL). The supervisor binds one listening
socket per worker, all on the same port with ``SO_REUSEPORT``, so the kernel spreads new
connections over the workers by their addresses (a shared socket would let whichever worker wakes
first accept a whole burst of connections). A socket stays open in the supervisor for the whole run:
a worker that is restarted takes the same socket over, and connections that arrived meanwhile wait in
its queue instead of being refused.

Each worker is a fresh interpreter (``subprocess``, never ``fork``: nothing the supervisor opened, no
SQLite connection nor thread, is inherited) that runs the ordinary one-process server on its socket.
Workers share the home through the default database (handles, aliases, cursors, tokens, audit) and
the event log ``<home>/events.sqlite`` (``events/sqlite_log.py``) as any processes on one home do.

The supervisor starts the workers in their own process group and forwards ``SIGTERM`` (also for a
``SIGINT``, so a worker is asked once, gracefully) and waits for them; each worker watches a pipe
from the supervisor and stops by itself when the supervisor dies without a word (``kill -9``). A
worker that exits while the supervisor runs is started again after a pause; one that fails
``MAX_QUICK_FAILURES`` times in a row within ``QUICK_SECONDS`` of its start stops the whole server.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields

from dbhandles.errors import InvalidParams
from dbhandles.settings import Settings

__all__ = [
    "MAX_QUICK_FAILURES",
    "MAX_WORKERS",
    "QUICK_SECONDS",
    "Supervisor",
    "bind_group",
    "settings_env",
    "watch_parent",
    "worker_argv",
]

log = logging.getLogger(__name__)

MAX_WORKERS = 64
#: A worker that exits this soon after it started failed to start: restarting it again and again
#: would only hide the cause (a bad setting, an unreadable home).
QUICK_SECONDS = 5.0
MAX_QUICK_FAILURES = 3
#: Pause before a worker that exited is started again.
RESTART_PAUSE = 0.5

#: argv of worker ``index`` (0-based) given the descriptors of its socket and of the parent pipe.
Command = Callable[[int, int, int], list[str]]


def bind_group(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port`` in one ``SO_REUSEPORT`` group (port 0: a free
    one, the same for all), inheritable so a worker process can be given one.

    Raises:
        InvalidParams: the address cannot be bound (in use, not a local address...); ``field`` is
            ``port``. Nothing stays open then.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise InvalidParams("serve: --workers needs SO_REUSEPORT, which this system lacks",
                            field="workers")  # fmt: skip
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError as exc:
        raise InvalidParams(f"serve: cannot listen on {host}:{port}: {exc}", field="port") from exc
    sockets: list[socket.socket] = []
    try:
        if port:
            # Sockets with SO_REUSEPORT of this same user would *join* a group already listening
            # there (another `jtag serve --workers`): a plain bind is refused by any listener.
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, port))
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # port 0: every other socket takes the one picked here
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        hint = " (is another server running there? pick another with --port)" if port else ""
        raise InvalidParams(
            f"serve: cannot listen on {host}:{port}: {exc.strerror or exc}{hint}", field="port"
        ) from exc
    return sockets


def settings_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment from which ``Settings.from_env()`` builds ``settings`` again (the inverse of
    ``from_env``): ``base`` (default ``os.environ``) with every setting's variable set or removed."""
    env = dict(os.environ if base is None else base)
    for f in fields(Settings):
        name, value = f.metadata["env"], getattr(settings, f.name)
        if value is None:
            env.pop(name, None)
        elif isinstance(value, bool):
            env[name] = "1" if value else "0"
        elif isinstance(value, tuple):
            sep = "," if f.name == "postgres_servers" else os.pathsep
            env[name] = sep.join(str(v) for v in value)
        elif isinstance(value, float):
            env[name] = repr(value)
        else:
            env[name] = str(value)
    return env


def watch_parent(fd: int, on_gone: Callable[[], None]) -> threading.Thread:
    """Call ``on_gone()`` (from a thread) when the supervisor's end of the pipe ``fd`` closes: the
    supervisor died without stopping this worker."""

    def wait() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        on_gone()

    thread = threading.Thread(target=wait, name="dbhandles-parent-watch", daemon=True)
    thread.start()
    return thread


class _Slot:
    __slots__ = ("failures", "index", "proc", "restart_at", "sock", "started")

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index, self.sock = index, sock
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.failures = 0
        self.restart_at: float | None = None


class Supervisor:
    """Start one worker per socket, keep them running, stop them on ``SIGTERM``/``SIGINT``.

    Args:
        command: the argv of a worker (``Command``).
        sockets: one listening socket per worker (``bind_group``); the supervisor keeps them open.
        env: the workers' environment (``settings_env``).
        stop_seconds: how long stopping waits for the workers before it kills them (their graceful
            shutdown, ``shutdown_grace_seconds`` plus uvicorn's own, must fit in it).
    """

    def __init__(
        self,
        command: Command,
        sockets: Sequence[socket.socket],
        *,
        env: Mapping[str, str],
        stop_seconds: float = 30.0,
    ) -> None:
        self._command = command
        self._env = dict(env)
        self._slots = [_Slot(i, sock) for i, sock in enumerate(sockets)]
        self._stop_seconds = stop_seconds
        self._stopping = threading.Event()
        self.failed: str | None = None
        # The workers hold the read end; nobody ever writes: when this process dies the write end
        # closes and every worker reads end-of-file (``watch_parent``).
        self._watch_r, self._watch_w = os.pipe()

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        return [s.proc.pid for s in self._slots if s.proc is not None and s.proc.poll() is None]

    def _spawn(self, slot: _Slot) -> None:
        argv = self._command(slot.index, slot.sock.fileno(), self._watch_r)
        slot.proc = subprocess.Popen(
            argv,
            env=self._env,
            pass_fds=(slot.sock.fileno(), self._watch_r),
            # Not in the terminal's group: a Ctrl+C reaches the supervisor only, which asks each
            # worker once (a second signal would make uvicorn skip its graceful shutdown).
            process_group=0,
        )
        slot.started, slot.restart_at = time.monotonic(), None

    def start(self) -> None:
        """Start every worker (returns at once; they accept connections as they come up)."""
        for slot in self._slots:
            self._spawn(slot)

    def run(self) -> int:
        """Supervise until ``SIGTERM``/``SIGINT`` (or ``stop``); stop the workers; return the exit
        status (0, or 1 when workers kept failing at start: ``failed`` says which)."""
        main = threading.current_thread() is threading.main_thread()
        previous = {}
        if main:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda signum, frame: self._stopping.set())
        try:
            if not any(s.proc for s in self._slots):
                self.start()
            while not self._stopping.wait(0.2):
                self._check()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._watch_r)
            os.close(self._watch_w)
        return 1 if self.failed else 0

    def stop(self) -> None:
        """Ask ``run`` to stop the workers and return (from any thread)."""
        self._stopping.set()

    def _check(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            proc = slot.proc
            if slot.restart_at is not None:
                if now >= slot.restart_at:
                    self._spawn(slot)
                continue
            if proc is None or proc.poll() is None:
                continue
            quick = now - slot.started < QUICK_SECONDS
            slot.failures = slot.failures + 1 if quick else 0
            if slot.failures >= MAX_QUICK_FAILURES:
                self.failed = (
                    f"worker {slot.index} exited {slot.failures} times in a row within "
                    f"{QUICK_SECONDS:g}s of its start (last status {proc.returncode})"
                )
                sys.stderr.write(f"dbhandles: {self.failed}; stopping the server\n")
                self._stopping.set()
                return
            sys.stderr.write(
                f"dbhandles: worker {slot.index} (pid {proc.pid}) exited with status "
                f"{proc.returncode}; starting it again\n"
            )
            slot.restart_at = now + RESTART_PAUSE

    def _stop_all(self) -> None:
        live = [s.proc for s in self._slots if s.proc is not None and s.proc.poll() is None]
        for proc in live:
            proc.send_signal(signal.SIGTERM)  # a no-op for a process that has exited
        deadline = time.monotonic() + self._stop_seconds
        for proc in live:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %s did not stop in %gs; killing it", proc.pid,
                            self._stop_seconds)  # fmt: skip
                proc.kill()
                proc.wait()


def worker_argv(module: str, spec: str) -> list[str]:
    """``python -m <module> <spec>`` with this interpreter (a worker's command)."""
    return [sys.executable, "-m", module, spec]
