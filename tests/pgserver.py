"""A throwaway PostgreSQL server for the tests: ``initdb`` + ``pg_ctl`` on a temporary folder.

The server is started once per test session, on first use, and listens on a Unix socket in its own
folder and on a free TCP port on 127.0.0.1 only (so ``jtag serve`` subprocesses and URLs with a host
work too). Authentication is ``trust``: nothing but this machine can reach it. It runs with
``fsync=off``: a crash loses nothing the tests care about.

``initdb`` and ``postgres`` refuse to run as root; CI runs as root, so then they run as the
``postgres`` system user (created by the Debian package, or here with ``useradd`` when missing), and
the temporary folder belongs to that user. A watchdog process stops the server and removes the folder
if the test process dies without running its exit handlers (a ``SIGKILL`` after a timeout, say).
"""

from __future__ import annotations

import atexit
import glob
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbhandles.adapters.postgres import PostgresAdapter

__all__ = [
    "PgServer",
    "postgres_binaries",
    "postgres_config",
    "postgres_server",
    "require_postgres",
]

SUPERUSER = "postgres"
_RUN_AS = "postgres"


def postgres_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres`` (PATH first, then Debian's), or None."""
    on_path = shutil.which("initdb")
    candidates: list[Path] = []
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parent.name.split(".")],
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_root() -> bool:
    return os.geteuid() == 0


def _ensure_user() -> None:
    """As root, make sure the unprivileged user that runs the server exists."""
    try:
        import pwd

        pwd.getpwnam(_RUN_AS)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", _RUN_AS],
            check=True,
            capture_output=True,
        )


def _chown_tree(path: Path) -> None:
    import pwd

    entry = pwd.getpwnam(_RUN_AS)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _command(argv: list[str]) -> list[str]:
    """``argv`` run as the unprivileged user when we are root."""
    if _as_root():
        return ["runuser", "-u", _RUN_AS, "--", *argv]
    return argv


@dataclass
class PgServer:
    """A running throwaway server; ``url`` connects through the Unix socket."""

    root: Path
    bin: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def url(self) -> str:
        """A libpq URL through the Unix socket (the fastest way in)."""
        return f"postgresql://{SUPERUSER}@/postgres?host={self.socket_dir}&port={self.port}"

    @property
    def tcp_url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _command([str(self.bin / "pg_ctl"), "-D", str(self.data_dir), *args]),
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,  # the unprivileged user may not be allowed into the caller's folder
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", "-w", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _start() -> PgServer:
    folder = postgres_binaries()
    if folder is None:
        raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
    if _as_root():
        _ensure_user()
    root = Path(tempfile.mkdtemp(prefix="dbh-pg-", dir="/tmp"))
    (root / "sock").mkdir()
    if _as_root():
        for path in (root, root / "sock"):
            _chown_tree(path)
    server = PgServer(root=root, bin=folder, port=_free_port())
    init = subprocess.run(
        _command([
            str(folder / "initdb"), "-D", str(server.data_dir), "--username", SUPERUSER,
            "--auth", "trust", "--encoding", "UTF8", "--locale", "C.UTF-8", "--no-sync",
        ]),
        capture_output=True, text=True, timeout=180, cwd=root,
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
    for attempt in range(3):
        if attempt:  # the free port was taken before the server bound it: try another
            server.port = _free_port()
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-p {server.port}", f"-k {server.socket_dir}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            "-c max_connections=300", "-c shared_buffers=32MB", "-c log_min_messages=warning",
        ])  # fmt: skip
        started = server.pg_ctl(
            "start", "-w", "-t", "60", "-l", str(root / "server.log"), "-o", options, check=False
        )
        if started.returncode == 0:
            break
        detail = server.log_tail() or started.stderr
        if "already in use" not in detail:
            break
    if started.returncode != 0:
        server.stop()
        raise RuntimeError(f"pg_ctl start failed: {detail}")
    _watchdog(server)
    return server


def _watchdog(server: PgServer) -> None:
    """Stop the server if this process dies without its exit handlers (killed after a timeout)."""
    stop = " ".join(
        _command(
            [str(server.bin / "pg_ctl"), "-D", str(server.data_dir), "stop", "-m", "immediate"]
        )
    )
    script = (
        f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 2; done; "
        f"{stop} >/dev/null 2>&1; rm -rf {server.root}"
    )
    # The shell backgrounds the loop and exits at once: nothing is left for this process to wait for.
    subprocess.run(
        ["sh", "-c", f"({script}) </dev/null >/dev/null 2>&1 &"],
        check=True, start_new_session=True, timeout=30, cwd="/",
    )  # fmt: skip


_lock = threading.Lock()
_server: PgServer | None = None
_failure: str | None = None


def postgres_server() -> PgServer:
    """The session's server, started on first use and stopped at exit.

    Raises:
        RuntimeError: the binaries are missing or the server did not start (the message says why).
    """
    global _server, _failure
    with _lock:
        if _server is not None:
            return _server
        if _failure is not None:
            raise RuntimeError(_failure)
        try:
            _server = _start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            _failure = str(exc)
            raise
        atexit.register(_server.stop)
        return _server


def require_postgres() -> PgServer:
    """The server, or skip the calling test when PostgreSQL is not installed here.

    A server that is installed but fails to start is an error, not a skip. Under ``CI=true`` the
    conftest turns skips of ``postgres``-marked tests into a failed run.
    """
    if postgres_binaries() is None:
        import pytest

        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; install postgresql")
    return postgres_server()


def schema_for(tmp_path: Path) -> str:
    """A schema name unique to one test's temporary folder (valid, lower-case, under 63 bytes)."""
    digest = hashlib.sha1(str(tmp_path).encode()).hexdigest()[:16]
    return f"t_{digest}"


def postgres_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """A ``postgres`` adapter config for a fresh schema of the session's server, one per test."""
    server = require_postgres()
    return {"url": server.url, "schema": schema_for(tmp_path), "mode": "create", **extra}


def run_in_schema(config: dict[str, Any], *statements: str) -> None:
    """Run ``statements`` in order (in autocommit, with plain psycopg: another tool, not dbhandles)
    in the schema of the ``postgres`` adapter config ``config``, made first if missing."""
    import psycopg
    from psycopg import sql

    schema = sql.Identifier(config["schema"])
    with psycopg.connect(config["url"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
        conn.execute(sql.SQL("SET search_path = {}").format(schema))
        for statement in statements:
            conn.execute(statement)


def postgres_schema(tmp_path: Path, *statements: str, **extra: Any) -> dict[str, Any]:
    """``postgres_config(tmp_path, **extra)`` with its schema made, holding what ``statements``
    made (``run_in_schema``): tables another tool made, before dbhandles opens the schema."""
    config = postgres_config(tmp_path, **extra)
    run_in_schema(config, *statements)
    return config


@contextmanager
def postgres_adapter(config: dict[str, Any]) -> Iterator[PostgresAdapter]:
    """A ``PostgresAdapter`` opened on ``config`` (``postgres_config``), closed on the way out."""
    from dbhandles.adapters.postgres import PostgresAdapter

    instance = PostgresAdapter(PostgresAdapter.prepare(PostgresAdapter.parse_config(config)))
    try:
        yield instance
    finally:
        instance.close()


if __name__ == "__main__":  # manual check: python -m tests.pgserver
    srv = postgres_server()
    sys.stdout.write(f"{srv.url}\n{srv.tcp_url}\n")
