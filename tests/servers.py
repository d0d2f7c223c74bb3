"""Helpers for tests that need a server: an in-process test client, a uvicorn thread, a ``jtag serve``
process, the ``./jtag`` script, and a headless Chromium."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from dbhandles import Service

if TYPE_CHECKING:
    from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parent.parent
JTAG = REPO / "jtag"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_client(service: Service, **options: Any) -> TestClient:
    """Starlette's in-process client over ``create_app(service, **options)`` (use it with ``with``).

    Anonymous requests are accepted unless ``require_token=True`` is given: most tests are about
    something else; the token tests check the (secure) default.
    """
    options.setdefault("require_token", False)
    with warnings.catch_warnings():
        # This starlette asks for the httpx2 package and warns when it runs on httpx.
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from dbhandles.server import create_app

    # The in-process client calls the app by the host name "testserver": the one it is bound to
    # (the server answers only to its own host names, auth.check_site).
    options.setdefault("hosts", ("testserver",))
    return TestClient(create_app(service, **options), raise_server_exceptions=False)


def jtag_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a ``jtag`` process on ``home``, without the caller's ``JTAG_URL``."""
    env = {k: v for k, v in os.environ.items() if k not in ("JTAG_URL", "JTAG_SESSION_ID")}
    env["DBHANDLES_HOME"] = str(home)
    env.update(extra)
    return env


def run_jtag(
    *args: str, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``./jtag`` with ``args`` (from ``cwd``, default a neutral folder) and capture its output."""
    return subprocess.run(
        [str(JTAG), *args],
        env=dict(env),
        cwd=str(cwd or tempfile.gettempdir()),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def envelope_of(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON envelope a ``jtag`` run printed (failing the test with its output if it is not one)."""
    try:
        value = orjson.loads(proc.stdout)
    except orjson.JSONDecodeError:
        pytest.fail(
            f"jtag printed no JSON envelope:\nstdout={proc.stdout!r}\nstderr={proc.stderr!r}"
        )
    assert isinstance(value, dict)
    return value


def wait_for_health(url: str, timeout: float = 20.0) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/health", timeout=1.0)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"no server at {url} after {timeout}s ({last})")


class ThreadServer:
    """``create_app(service)`` under a real uvicorn, in a thread, on a free loopback port."""

    def __init__(self, service: Service, *, require_token: bool = False) -> None:
        import uvicorn

        from dbhandles.server import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(service, require_token=require_token), host="127.0.0.1", port=self.port,
            log_level="warning",
            access_log=False, timeout_graceful_shutdown=5,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        wait_for_health(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class ServerProcess:
    """``./jtag serve`` as a real process on a free port, for ``home``."""

    def __init__(self, home: Path, port: int | None = None, *args: str) -> None:
        self.home = home
        self.args = args
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = jtag_env(home)
        self.proc: subprocess.Popen[str] | None = None
        self.output = ""

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen(
            [str(JTAG), "serve", f"--port={self.port}", *self.args],
            env=self.env, cwd=tempfile.gettempdir(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            wait_for_health(self.url)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"jtag serve did not start:\n{self.output}") from None
        return self

    @property
    def token(self) -> str:
        """The local admin token the server created in ``<home>/admin.token``."""
        return (self.home / "admin.token").read_text().strip()

    def dashboard(self) -> str:
        """The dashboard link the server printed (with ``#token=...`` on the home's first start)."""
        return next(line.split("dashboard: ", 1)[1].split()[0] for line in self.banner().splitlines()
                    if line.startswith("dashboard: "))  # fmt: skip

    def banner(self) -> str:
        """The first lines the server printed (its banner), without stopping it."""
        assert self.proc is not None and self.proc.stdout is not None
        while "press Ctrl+C to stop" not in self.output:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output += line
        return self.output

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the server with ``sig``; return its exit status (its output is in ``self.output``)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.output += out or ""
        return int(self.proc.returncode)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.stop()


@contextlib.contextmanager
def subscribed(server: ServerProcess, token: str) -> Iterator[Any]:
    """A WebSocket on ``server`` (authenticated by ``token``) subscribed to every data event."""
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{server.port}/ws?token={token}", open_timeout=10) as sock:
        assert orjson.loads(sock.recv(timeout=10))["type"] == "hello"
        sock.send(orjson.dumps({"type": "subscribe", "id": 1, "pattern": "data:*"}).decode())
        assert orjson.loads(sock.recv(timeout=10))["type"] == "subscribed"
        yield sock


def next_event(sock: Any, timeout: float = 15.0) -> dict[str, Any]:
    """The next ``event`` message on the WebSocket ``sock``, past any other, within ``timeout``
    seconds (``TimeoutError`` past it)."""
    deadline = time.monotonic() + timeout
    while True:
        message: dict[str, Any] = orjson.loads(
            sock.recv(timeout=max(0.1, deadline - time.monotonic()))
        )
        if message["type"] == "event":
            return message


#: A worker for ``server.workers.Supervisor`` (``index_worker``): it answers each connection dealt
#: to it through its channel with ``<index> <pid>`` (and, through ``receive_connections``, the
#: supervisor's heartbeats), and gives up after 60 seconds.
INDEX_WORKER = """
import os, socket, sys, time
from dbhandles.server.workers import receive_connections
channel = socket.socket(fileno=int(sys.argv[1]))
channel.setblocking(False)
held, deadline = [], time.monotonic() + 60
while time.monotonic() < deadline:
    taken = receive_connections(channel)
    if taken is None:
        break
    for sock in taken:
        sock.sendall(b"%s %d" % (sys.argv[2].encode(), os.getpid()))
        held.append(sock)
    time.sleep(0.01)
"""


def index_worker(index: int, fd: int, watch: object) -> list[str]:
    """``Supervisor``'s command for worker ``index`` on the channel ``fd``: ``INDEX_WORKER``."""
    return [sys.executable, "-c", INDEX_WORKER, str(fd), str(index)]


def require_chromium() -> None:
    """Skip when Chromium is missing, except under ``CI`` where a missing browser is a failure."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (shutil.which(p) or Path(p).exists())]
    if missing:
        message = (f"needs {', '.join(missing)}: apt-get install -y chromium chromium-driver "
                   "(or `make system-deps`)")  # fmt: skip
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and the browser test cannot run: {message}")
        pytest.skip(message)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium driven by selenium, with a fresh profile, closed afterwards."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService

    profile = tempfile.mkdtemp(prefix="dbh-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1400,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=ChromeService(CHROMEDRIVER, log_output=os.devnull)
    )
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
