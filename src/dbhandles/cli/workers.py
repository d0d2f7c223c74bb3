"""``jtag serve --workers=N``: the supervisor's start (bind, prepare the home, announce) and the
entry point of one worker (``python -m dbhandles.cli.workers <spec>``); ``server/workers.py`` runs
the processes."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
from collections.abc import Sequence

import orjson

from dbhandles.cli.home_claim import claim_home
from dbhandles.cli.serve import ServeOptions, announce, display_url, serve
from dbhandles.cli.transport import remove_state
from dbhandles.commands.envelope import error_envelope
from dbhandles.errors import DbHandlesError
from dbhandles.server.workers import (
    Supervisor,
    bind_listener,
    settings_env,
    watch_parent,
    worker_argv,
)
from dbhandles.settings import Settings

__all__ = ["serve_workers", "worker_main"]

_MODULE = "dbhandles.cli.workers"


def serve_workers(options: ServeOptions, settings: Settings) -> None:
    """Run ``options.workers`` server processes on one port until SIGINT/SIGTERM.

    This process claims the home (``cli/home_claim.py``: a second server on it is refused),
    binds the port, creates or upgrades the home and its admin token once (so the
    workers do not race for it), writes ``server.json`` with its own pid (it lives as long as the
    server) and prints the banner; then it deals the connections to the workers in turn and
    supervises them (``server/workers.py``).

    Raises:
        DbHandlesError: another server runs on the home, or the address cannot be bound
            (``InvalidParams``, ``field`` ``home`` or ``port``), the home cannot be opened,
            or the workers kept failing at start (``internal_error`` naming the exit status).
    """
    from dbhandles.service import Service

    home = settings.home.expanduser()
    claim = claim_home(home)  # one server per home; its workers run under this claim
    try:
        listener = bind_listener(options.host, options.port)
    except BaseException:
        claim.release()
        raise
    try:
        with Service(settings=settings) as service:
            created = service.tokens.ensure_admin_token()
            admin_file = service.tokens.admin_file
        url = display_url(options.host, listener.getsockname()[1])
        # ``workers`` kept: a worker knows it is one of several (``serve`` runs it on its channel).
        spec = dataclasses.asdict(dataclasses.replace(options, help=False))

        def command(index: int, fd: int, watch: int) -> list[str]:
            return worker_argv(
                _MODULE,
                orjson.dumps({"fd": fd, "watch": watch, "index": index, "options": spec}).decode(),
            )

        supervisor = Supervisor(
            command,
            listener,
            options.workers,
            env=settings_env(settings),
            stop_seconds=settings.shutdown_grace_seconds + 20.0,
        )
        supervisor.start()
        try:
            announce(options, home, url, created, admin_file, workers=options.workers)
        except BaseException:
            supervisor.stop()  # run() then only stops the workers it just started
            supervisor.run()
            raise
        try:
            status = supervisor.run()
        finally:
            remove_state(home)
    finally:
        listener.close()
        claim.release()
    if status:
        raise DbHandlesError(f"serve: {supervisor.failed} (its output above says why)")


def worker_main(argv: Sequence[str]) -> int:
    """One worker: serve the connections dealt down the inherited channel until SIGTERM (or the
    supervisor is gone)."""
    spec = orjson.loads(argv[0])
    options = ServeOptions(**spec["options"])
    channel = socket.socket(fileno=int(spec["fd"]))
    # The supervisor died without stopping us (kill -9): stop as if it had asked.
    watch_parent(int(spec["watch"]), lambda: os.kill(os.getpid(), signal.SIGTERM))
    try:
        serve(options, Settings.from_env(), channel=channel)
    except DbHandlesError as exc:
        sys.stdout.write(orjson.dumps(error_envelope(exc)).decode() + "\n")
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
