"""``jtag serve --workers=N``: N server processes on one port, and the supervisor that runs them.

One Python process serves about one core of requests (the GIL). The supervisor listens on the port
itself and deals each new connection to the workers in turn (round robin), passing the accepted
socket down a Unix socket pair (``SCM_RIGHTS``); a worker serves it as if it had accepted it. So
N workers hold N-th shares of the connections whatever their addresses, which neither
``SO_REUSEPORT`` (the kernel hashes each connection's addresses: 8 connections of one client were
split 7/1 as often as 4/4, and two workers then served 1.05x to 1.56x one worker) nor one shared
socket (whichever worker wakes first accepts a whole burst) gives. Connections are long-lived
(keep-alive), so the hand-off costs the supervisor one ``accept`` and one ``sendmsg`` per
connection, not per request. The socket stays open in the supervisor for the whole run: while a
worker is being restarted its turns go to the others, and when none is running connections wait in
the listen queue instead of being refused.

Each worker is a fresh interpreter (``subprocess``, never ``fork``: nothing the supervisor opened, no
SQLite connection nor thread, is inherited) that runs the ordinary one-process server, taking its
connections from its end of the pair (``server/shutdown.py`` ``GracefulServer``). Workers share the
home through the default database (handles, aliases, cursors, tokens, audit) and the event log
``<home>/events.sqlite`` (``events/sqlite_log.py``) as any processes on one home do.

The supervisor starts the workers in their own process group and forwards ``SIGTERM`` (also for a
``SIGINT``, so a worker is asked once, gracefully) and waits for them; each worker watches a pipe
from the supervisor and stops by itself when the supervisor dies without a word (``kill -9``). A
worker that exits while the supervisor runs is started again after a pause, on the same socket pair
(connections dealt to it just before it died are served by its successor); one that fails
``MAX_QUICK_FAILURES`` times in a row within ``QUICK_SECONDS`` of its start stops the whole server.

A worker that stops taking its connections (stopped, ``SIGSTOP``; its event loop stuck) does not
exit, so exits alone would keep dealing it its share of the connections, each waiting for nothing.
So the supervisor also sends each worker a heartbeat down the same channel every
``HEARTBEAT_SECONDS`` (one byte without a descriptor, read in turn with the connections), which the
worker answers on the channel (``receive_connections``). A worker whose heartbeat is unanswered for
``STALL_SECONDS`` is dealt no more connections until it answers; one unanswered for
``HUNG_SECONDS`` (or that never answered within ``START_SECONDS`` of its start) is killed
(``SIGKILL``: a stopped process cannot act on ``SIGTERM``) and started again like a worker that
exited; the connections it had not taken stay in the channel for its successor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import fields

from dbhandles.errors import InvalidParams
from dbhandles.settings import Settings

__all__ = [
    "HEARTBEAT_SECONDS",
    "HUNG_SECONDS",
    "MAX_QUICK_FAILURES",
    "MAX_WORKERS",
    "QUICK_SECONDS",
    "STALL_SECONDS",
    "START_SECONDS",
    "Supervisor",
    "bind_listener",
    "receive_connections",
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
#: How long the dealer waits, when no worker can take a connection (none running, or every
#: channel full), before it tries again; meanwhile new connections wait in the listen queue.
RETRY_SECONDS = 0.01
#: A heartbeat goes down each worker's channel this often (when the previous one was answered).
HEARTBEAT_SECONDS = 1.0
#: A worker whose heartbeat is unanswered this long is dealt no connection until it answers.
STALL_SECONDS = 3.0
#: A worker whose heartbeat is unanswered this long is killed and started again.
HUNG_SECONDS = 30.0
#: A worker that has not answered any heartbeat this long after its start is killed and started
#: again (its start reads the home and imports the server: seconds on a busy machine).
START_SECONDS = 60.0
#: The heartbeat (supervisor -> worker) and its answer (worker -> supervisor), one byte each; a
#: connection comes as ``b"c"`` with its descriptor.
_PING, _PONG = b"h", b"a"

#: argv of worker ``index`` (0-based) given the descriptors of its end of the connection channel
#: (``receive_connections``) and of the parent pipe.
Command = Callable[[int, int, int], list[str]]


def bind_listener(host: str, port: int) -> socket.socket:
    """The supervisor's listening socket on ``host:port`` (port 0: a free one).

    Raises:
        InvalidParams: the address cannot be bound (in use, not a local address...); ``field`` is
            ``port``. Nothing stays open then.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except OSError as exc:
        raise InvalidParams(f"serve: cannot listen on {host}:{port}: {exc}", field="port") from exc
    return listen_on(family, host, port)


def listen_on(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    """A ``family`` socket listening on ``host:port`` (port 0: a free one), for ``jtag serve``'s
    single process (``cli.serve.bind``) and its supervisor (``bind_listener``).

    Raises:
        InvalidParams: the address cannot be bound; ``field`` is ``port``. Nothing stays open then.
    """
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR only lets a restart bind over connections in TIME_WAIT; no SO_REUSEPORT, so a
        # second server is refused the port instead of silently sharing it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        hint = " (is another server running there? pick another with --port)" if port else ""
        raise InvalidParams(
            f"serve: cannot listen on {host}:{port}: {exc.strerror or exc}{hint}", field="port"
        ) from exc
    return sock


def receive_connections(channel: socket.socket, limit: int = 64) -> list[socket.socket] | None:
    """In a worker: the connections its supervisor dealt it and it has not taken yet (``channel``
    is its end of the pair, non-blocking), at most ``limit``; ``None`` once the supervisor's end is
    closed. Each arrives as one byte carrying one descriptor; a heartbeat (a byte without one) is
    answered on the channel at once, so the supervisor knows this worker takes what it is dealt."""
    taken: list[socket.socket] = []
    while len(taken) < limit:
        try:
            data, fds, _flags, _addr = socket.recv_fds(channel, 1, 1)
        except (BlockingIOError, InterruptedError):
            break
        if not data:
            for sock in taken:
                sock.close()
            return None
        if data == _PING and not fds:
            # A full channel back means answers are already waiting there: nothing is lost.
            with contextlib.suppress(BlockingIOError, InterruptedError):
                channel.send(_PONG)
            continue
        taken.extend(socket.socket(fileno=fd) for fd in fds)
    return taken


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
    __slots__ = (
        "answered", "asked", "failures", "index", "mine", "proc", "restart_at", "started", "theirs",
    )  # fmt: skip

    def __init__(self, index: int) -> None:
        self.index = index
        # The connection channel: the supervisor sends on ``mine``, the worker (and each worker
        # that replaces it) receives on ``theirs``. Both stay open for the whole run.
        self.mine, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.mine.setblocking(False)
        self.theirs.set_inheritable(True)
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.failures = 0
        self.restart_at: float | None = None
        #: When the worker last answered a heartbeat (``None``: not since its start), and when the
        #: heartbeat it owes was sent (``None``: none owed); ``time.monotonic``.
        self.answered: float | None = None
        self.asked: float | None = None

    def running(self) -> bool:
        proc = self.proc
        return proc is not None and self.restart_at is None and proc.poll() is None

    def taking(self, now: float, stall: float) -> bool:
        """Whether connections may be dealt to it: running, and not owing a heartbeat for
        ``stall`` seconds (a worker still starting is dealt its share: they wait in its channel)."""
        if not self.running():
            return False
        return self.asked is None or self.answered is None or now - self.asked < stall

    def overdue(self, now: float, hung: float, start: float) -> float | None:
        """How long the worker has owed its heartbeat past what is allowed (``None``: it is not)."""
        if self.asked is None:
            return None
        # Never answered since its start: it may still be starting (``start``).
        late = now - self.started - start if self.answered is None else now - self.asked - hung
        return late if late > 0 else None

    def heartbeat(self, now: float, every: float) -> None:
        """Read the worker's answers; send the next heartbeat when the last one was answered and
        ``every`` seconds have passed."""
        try:
            while self.mine.recv(4096):
                self.answered, self.asked = now, None
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return
        if self.asked is None and (self.answered is None or now - self.answered >= every):
            with contextlib.suppress(BlockingIOError, InterruptedError):  # full: asked next time
                self.mine.send(_PING)
                self.asked = now

    def close(self) -> None:
        self.mine.close()
        self.theirs.close()


class Supervisor:
    """Start ``count`` workers, deal them the connections of ``listener`` in turn, keep them
    running, stop them on ``SIGTERM``/``SIGINT``.

    Args:
        command: the argv of a worker (``Command``).
        listener: the listening socket (``bind_listener``); the supervisor accepts on it, and its
            caller closes it.
        count: how many workers.
        env: the workers' environment (``settings_env``).
        stop_seconds: how long stopping waits for the workers before it kills them (their graceful
            shutdown, ``shutdown_grace_seconds`` plus uvicorn's own, must fit in it).
        heartbeat_seconds, stall_seconds, hung_seconds, start_seconds: the heartbeat's period, and
            how long an unanswered one stops the dealing to a worker and gets it killed and started
            again (``HEARTBEAT_SECONDS``, ``STALL_SECONDS``, ``HUNG_SECONDS``, ``START_SECONDS``).
    """

    def __init__(
        self,
        command: Command,
        listener: socket.socket,
        count: int,
        *,
        env: Mapping[str, str],
        stop_seconds: float = 30.0,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        stall_seconds: float = STALL_SECONDS,
        hung_seconds: float = HUNG_SECONDS,
        start_seconds: float = START_SECONDS,
    ) -> None:
        self._command = command
        self._env = dict(env)
        self._listener = listener
        self._slots = [_Slot(i) for i in range(count)]
        self._stop_seconds = stop_seconds
        self._heartbeat = (heartbeat_seconds, stall_seconds, hung_seconds, start_seconds)
        #: Workers killed because they stopped answering (by index).
        self.hung = [0] * count
        self._stopping = threading.Event()
        self._dealer: threading.Thread | None = None
        self._turn = 0
        #: Connections dealt to each worker so far (by index).
        self.dealt = [0] * count
        self.failed: str | None = None
        # The workers hold the read end; nobody ever writes: when this process dies the write end
        # closes and every worker reads end-of-file (``watch_parent``).
        self._watch_r, self._watch_w = os.pipe()

    @property
    def taking(self) -> list[bool]:
        """By index: whether the dealer hands connections to that worker now (running, and
        answering its heartbeats)."""
        now, stall = time.monotonic(), self._heartbeat[1]
        return [slot.taking(now, stall) for slot in self._slots]

    @property
    def pids(self) -> list[int]:
        """The process ids of the running workers."""
        return [s.proc.pid for s in self._slots if s.proc is not None and s.proc.poll() is None]

    def _spawn(self, slot: _Slot) -> None:
        argv = self._command(slot.index, slot.theirs.fileno(), self._watch_r)
        slot.proc = subprocess.Popen(
            argv,
            env=self._env,
            pass_fds=(slot.theirs.fileno(), self._watch_r),
            # Not in the terminal's group: a Ctrl+C reaches the supervisor only, which asks each
            # worker once (a second signal would make uvicorn skip its graceful shutdown).
            process_group=0,
        )
        slot.started, slot.restart_at = time.monotonic(), None
        slot.answered = slot.asked = None

    def start(self) -> None:
        """Start every worker and the dealer of connections (returns at once; a worker serves the
        connections dealt to it once it is up)."""
        for slot in self._slots:
            self._spawn(slot)
        if self._dealer is None:
            self._dealer = threading.Thread(target=self._deal, name="dbhandles-dealer", daemon=True)
            self._dealer.start()

    def _deal(self) -> None:
        """Accept connections and hand each to the next running worker that takes it."""
        self._listener.settimeout(0.2)  # to notice ``stop`` while no connection arrives
        while not self._stopping.is_set():
            stall = self._heartbeat[1]
            if not any(slot.taking(time.monotonic(), stall) for slot in self._slots):
                self._stopping.wait(RETRY_SECONDS)  # no taker: connections wait in the queue
                continue
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set() or self._listener.fileno() < 0:
                    return
                log.warning("accepting a connection failed", exc_info=True)
                self._stopping.wait(RETRY_SECONDS)
                continue
            with conn:  # the worker has its own descriptor once sent; this one is closed here
                while not self._hand(conn) and not self._stopping.is_set():
                    self._stopping.wait(RETRY_SECONDS)

    def _hand(self, conn: socket.socket) -> bool:
        """Send ``conn`` to the next worker in turn that takes connections and whose channel has
        room."""
        count, now, stall = len(self._slots), time.monotonic(), self._heartbeat[1]
        for step in range(count):
            slot = self._slots[(self._turn + step) % count]
            if not slot.taking(now, stall):
                continue
            try:
                socket.send_fds(slot.mine, [b"c"], [conn.fileno()])
            except (BlockingIOError, InterruptedError):
                continue  # that worker is behind on taking its connections: the next one
            except OSError:
                log.warning("could not hand a connection to worker %d", slot.index, exc_info=True)
                continue
            self._turn = (slot.index + 1) % count
            self.dealt[slot.index] += 1
            return True
        return False

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
            self._stopping.set()
            if self._dealer is not None:
                self._dealer.join()  # no connection is dealt to a stopping worker
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self._watch_r)
            os.close(self._watch_w)
            for slot in self._slots:
                slot.close()
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
            if proc is None:
                continue
            if proc.poll() is None:
                self._watch(slot, proc, now)
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

    def _watch(self, slot: _Slot, proc: subprocess.Popen[bytes], now: float) -> None:
        """Heartbeat a running worker; kill one that stopped answering (``_check`` then starts it
        again as a worker that exited)."""
        every, _stall, hung, start = self._heartbeat
        slot.heartbeat(now, every)
        late = slot.overdue(now, hung, start)
        if late is None:
            return
        waited = hung if slot.answered is not None else start
        sys.stderr.write(
            f"dbhandles: worker {slot.index} (pid {proc.pid}) has not taken its connections for "
            f"{waited:g}s (stopped or stuck); killing it and starting it again\n"
        )
        self.hung[slot.index] += 1
        with contextlib.suppress(OSError):
            proc.kill()  # SIGKILL: also ends a stopped process
        proc.wait()

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
