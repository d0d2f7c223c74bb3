"""``jtag serve``: run the server under uvicorn, announce it in ``<home>/server.json`` while it runs."""

from __future__ import annotations

import contextlib
import functools
import gc
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dbhandles.cli.help import command_help
from dbhandles.cli.home_claim import claim_home
from dbhandles.cli.masking import mask_tokens
from dbhandles.cli.output import render
from dbhandles.cli.transport import DEFAULT_PORT, remove_state, write_state
from dbhandles.commands.envelope import error_envelope
from dbhandles.errors import DbHandlesError, InvalidParams
from dbhandles.server.app import DEFAULT_THREADS
from dbhandles.server.workers import listen_on
from dbhandles.settings import Settings
from dbhandles.values import json_text
from dbhandles.wire import DEFAULT_HOST

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from uvicorn import Config

    from dbhandles.service import Service

__all__ = [
    "ServeOptions",
    "announce",
    "bind",
    "display_url",
    "log_like_uvicorn",
    "parse_options",
    "serve",
    "serve_main",
    "server_config",
    "settle_heap",
    "switch_interval",
]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
#: How far past ``max_body_bytes`` uvicorn still reads a WebSocket message, so that a message over
#: the limit is answered by the app (an ``error`` ``payload_too_large``, the socket stays open);
#: one past this too is refused by uvicorn unread, from its frame header: close code 1009.
WS_MESSAGE_SLACK = 1 << 20
_VALUED = ("host", "port", "log-level", "threads", "workers")
_FLAGS = ("allow-anonymous",)


def option(value: str | None, help: str) -> dict[str, str | None]:
    """The metadata of a ``ServeOptions`` field: its ``--flag=<value>`` placeholder (None for a flag
    without a value) and its help. ``jtag help serve`` and docs/server.md are generated from it."""
    return {"value": value, "help": help}


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``jtag serve`` was asked for; each option's field carries its help (``option``)."""

    host: str = field(
        default=DEFAULT_HOST,
        metadata=option("string", "Interface to bind; loopback unless you need more."),
    )
    port: int = field(
        default=DEFAULT_PORT,
        metadata=option("integer", "TCP port; 0 picks a free one (printed at start)."),
    )
    log_level: str = field(
        default="warning",
        metadata=option("level", f"uvicorn's log level: {', '.join(LOG_LEVELS)}."),
    )
    threads: int = field(
        default=DEFAULT_THREADS,
        metadata=option(
            "integer",
            "Worker threads for database work (plus one spare, for a caller that arrives while "
            "others fill them). Python work holds the GIL, so more threads help only when "
            "commands wait on slow I/O rather than the CPU.",
        ),
    )
    workers: int = field(
        default=1,
        metadata=option(
            "integer",
            "Server processes sharing the port and the home (one process serves about one core); "
            "see docs/scaling.md.",
        ),
    )
    allow_anonymous: bool = field(
        default=False,
        metadata=option(
            None, "Accept requests without a token (development only; prints a warning)."
        ),
    )
    help: bool = False


def _int(key: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidParams(f"serve: --{key} must be a number", field=key) from None
    if not low <= number <= high:
        raise InvalidParams(f"serve: --{key} must be between {low} and {high}", field=key)
    return number


def parse_options(argv: Sequence[str]) -> ServeOptions:
    """``--host --port --log-level --threads --allow-anonymous --help``.

    Raises:
        InvalidParams: an unknown option or a bad value (the field names the option).
    """
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token in ("--help", "-h"):
            values["help"] = "true"
            continue
        key, eq, value = token[2:].partition("=") if token.startswith("--") else (token, "", "")
        if key in _FLAGS and not eq:
            values[key] = "true"
            continue
        if key not in _VALUED + _FLAGS:
            options = ", ".join(f"--{o}" for o in _VALUED + _FLAGS)
            raise InvalidParams(
                f"serve: unknown option {json_text(token, 80)}; options: {options}", field=key
            )
        if not eq:
            if i >= len(argv):
                raise InvalidParams(f"serve: --{key} needs a value", field=key)
            value, i = argv[i], i + 1
        values[key] = value
    level = values.get("log-level", "warning")
    if level not in LOG_LEVELS:
        raise InvalidParams(
            f"serve: --log-level must be one of {', '.join(LOG_LEVELS)}", field="log-level"
        )
    return ServeOptions(
        host=values.get("host", "127.0.0.1"),
        port=_int("port", values.get("port", str(DEFAULT_PORT)), 0, 65535),
        log_level=level,
        threads=_int("threads", values.get("threads", str(DEFAULT_THREADS)), 1, 256),
        workers=_int("workers", values.get("workers", "1"), 1, 64),
        allow_anonymous=values.get("allow-anonymous", "false").lower() in ("true", "1", "yes"),
        help="help" in values,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one).

    Raises:
        InvalidParams: the address cannot be bound (in use, not a local address...).
    """
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET  # a host name such as "localhost"
    sock = listen_on(family, host, port)
    sock.set_inheritable(True)
    return sock


def display_url(host: str, port: int) -> str:
    """A URL a browser on this machine can open (wildcard binds are shown as loopback)."""
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class _Stopped(Exception):
    """Raised by the SIGTERM handler once uvicorn has finished its graceful shutdown."""


def _stop(signum: int, frame: object) -> None:
    raise _Stopped


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    options: ServeOptions, settings: Settings | None = None, *, channel: socket.socket | None = None
) -> None:
    """Serve until SIGINT/SIGTERM; on the way out every accepted request is answered (running
    commands and jobs get ``shutdown_grace_seconds``, then jobs are cancelled at a batch boundary; see
    ``server/shutdown.py``) and the service closes. ``options.workers`` above 1 runs that many
    processes under a supervisor (``cli/workers.py``).

    Args:
        channel: a worker of ``--workers``: its end of the channel its supervisor deals it
            connections through (``server/workers.py``; the supervisor listens, writes
            ``server.json`` and prints the banner).

    Raises:
        DbHandlesError: another server runs on the home (``invalid_params``, ``field`` ``home``:
            ``cli/home_claim.py``), the address cannot be bound, or the service cannot start.
    """

    from dbhandles.server import create_app
    from dbhandles.server.auth import install_log_redaction
    from dbhandles.server.log_summary import summarize_client_warnings
    from dbhandles.server.shutdown import GracefulServer
    from dbhandles.service import Service

    settings = settings or Settings.from_env()
    if options.workers > 1 and channel is None:
        from dbhandles.cli.workers import serve_workers

        log_like_a_server(options.log_level)
        serve_workers(options, settings)
        return
    home = settings.home.expanduser()
    # One server per home (cli/home_claim.py): a worker's supervisor holds it for its workers.
    claim = claim_home(home) if channel is None else None
    try:
        sock = channel if channel is not None else bind(options.host, options.port)
    except BaseException:
        if claim is not None:
            claim.release()
        raise
    try:
        service = Service(settings=settings)
    except BaseException:
        sock.close()
        if claim is not None:
            claim.release()
        raise
    if channel is not None:
        # One of several workers: a memory database opened here would be found only here.
        service.registry.processes = options.workers
    # The local admin token: `jtag` on this machine reads it from <home>/admin.token by itself.
    created = service.tokens.ensure_admin_token()
    app = create_app(
        service,
        close_service=True,
        require_token=not options.allow_anonymous,
        threads=options.threads,
        hosts=(options.host,),
    )
    app.state.dbhandles.shutdown_hooks.append(lambda: remove_state(home))
    settle_heap(service)
    config = server_config(app, settings, log_level=options.log_level)
    # uvicorn logs WebSocket request lines with their query string (``/ws?token=...`` from a
    # browser); the app also takes the token out of the scope, this catches every other line.
    log_like_uvicorn()
    summarize_client_warnings()
    install_log_redaction()
    if channel is None:
        url = display_url(options.host, sock.getsockname()[1])
        announce(options, home, url, created, service.tokens.admin_file)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to the handler it found:
    # make that handler a clean exit (status 0, cleanup done) instead of the default kill.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop) if main else None
    try:
        server = GracefulServer(config, app.state.dbhandles, settings.shutdown_grace_seconds,
                                channel=channel)  # fmt: skip
        with switch_interval(settings.switch_interval_ms):
            server.run(sockets=[sock] if channel is None else [])
    except _Stopped:
        pass
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        remove_state(home)
        service.close()
        sock.close()
        if claim is not None:
            claim.release()  # last: server.json is gone, the next server may start


def log_like_uvicorn(name: str = "dbhandles") -> None:
    """Give the logger ``name`` uvicorn's level (``--log-level``: ``uvicorn.Config`` sets it on
    ``uvicorn.error``) and handlers (its format, on stderr), not propagated (as uvicorn's own).
    Call it once ``server_config`` configured uvicorn's logging: uvicorn configures only its own
    loggers, and the INFO lines of ``dbhandles.*`` (connections cut, shutdown summaries) never
    appeared, whatever the level."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.getLogger("uvicorn.error").level)
    for handler in logging.getLogger("uvicorn").handlers:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    logger.propagate = False


def log_like_a_server(log_level: str) -> None:
    """Logging as a server process has it, in a process that runs no uvicorn server (the
    supervisor of ``--workers``, ``cli/workers.py``): uvicorn's loggers configured as
    ``server_config``'s ``uvicorn.Config`` configures them (its format on stderr, ``log_level``),
    ``dbhandles.*`` logged like uvicorn (``log_like_uvicorn``) and tokens redacted. Without it the
    supervisor's lines (a worker restarted or killed, a connection it could not hand over) had no
    handler: INFO lines were lost, warnings printed bare by Python's last resort.

    Args:
        log_level: one of ``LOG_LEVELS`` (``--log-level``).
    """
    import uvicorn

    from dbhandles.server.auth import install_log_redaction

    uvicorn.Config(_no_app, log_level=log_level, access_log=False)  # configures logging only
    log_like_uvicorn()
    install_log_redaction()


async def _no_app(scope: object, receive: object, send: object) -> None:
    """The app of the ``uvicorn.Config`` ``log_like_a_server`` makes for its logging: never run."""


@contextlib.contextmanager
def switch_interval(ms: float) -> Iterator[None]:
    """Python's thread switch interval at ``ms`` milliseconds while the block runs, restored after.

    CPython hands the GIL from a thread that keeps it busy (an actor's ``data/list`` filtering
    300,000 memory records in Python, orjson encoding a 10 MB answer) to a waiting one only after
    the interval, 5 ms by default; a read of another actor needs the GIL several times (the loop
    reading it, a worker thread running it, the loop writing it), so each request of the reader
    waited some multiple of 5 ms behind the busy thread (issue 13). ``DBHANDLES_SWITCH_INTERVAL_MS``.
    """
    before = sys.getswitchinterval()
    sys.setswitchinterval(ms / 1000)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def settle_heap(service: Service) -> None:
    """What start-up made (modules, the service, the app) out of the cycle collector's full
    collections (``gc.freeze``), and the same for what jobs run in this process keep
    (``job_heap.py``): a full collection walks every object not frozen, holding the GIL, and every
    request waits for it."""
    gc.collect()
    gc.freeze()
    service.jobs.freeze_heap = True


def server_config(app: Starlette, settings: Settings, *, log_level: str = "warning") -> Config:
    """The uvicorn configuration of ``app`` (made by ``create_app``): its HTTP/1.1 protocol refuses
    connections past ``max_connections`` and ``max_connections_per_address`` at accept time, closes a
    connection whose request head is late (``header_timeout_seconds``) or that idles
    ``keep_alive_seconds`` after an answer, and runs a pipelined request only once the answer before
    it was written, bounds each request head (``max_header_bytes``), and answers every request
    received before a malformed one or the client's end of stream (``server/connections.py``).
    WebSocket messages are never compressed (``permessage-deflate`` is not offered); one over
    ``max_body_bytes`` gets an ``error`` (``server/ws.py``), one over that plus
    ``WS_MESSAGE_SLACK`` closes the socket with 1009; frames and bytes are counted as they arrive
    (``server/ws_wire.py``)."""
    import uvicorn

    from dbhandles.server.connections import limited_protocol
    from dbhandles.server.ws_serve import early_refusal
    from dbhandles.server.ws_wire import GuardedWebSocketProtocol

    state = app.state.dbhandles
    return uvicorn.Config(
        app,
        # Its own refusals (a malformed request, an invalid handshake, a head too large or late)
        # are charged to the address's public rate (ServerState.door_refusal); an upgrade past the
        # rate with a credential that cannot be valid is refused before the WebSocket protocol.
        http=limited_protocol(
            state.wire, state.door_refusal, functools.partial(early_refusal, state)
        ),
        # Frames and bytes counted as they arrive, pongs bounded, fragmented messages bounded
        # (server/ws_wire.py).
        ws=GuardedWebSocketProtocol,
        log_level=log_level,
        access_log=False,
        ws_max_size=settings.max_body_bytes + WS_MESSAGE_SLACK,
        # No per-message deflate: it compresses every message once per socket, on the event loop
        # (an event to 16 subscribers, 16 compressions), and every other client's request waits
        # behind it (docs/performance.md, "Fairness between actors"). Loopback and LAN clients
        # gain little from it; a proxy in front can compress.
        ws_per_message_deflate=False,
        # The protocol counts connections itself (uvicorn's own limit answers in plain text, and
        # only once a request head arrived).
        limit_concurrency=None,
        timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]  # a float works
        # What is left after GracefulServer answered every accepted request (server/shutdown.py).
        timeout_graceful_shutdown=10,
        lifespan="on",
    )


def announce(
    options: ServeOptions,
    home: Path,
    url: str,
    created: str | None,
    admin_file: Path,
    *,
    workers: int = 1,
) -> None:
    """Record the server in ``<home>/server.json`` (with this process's id) and print the banner."""
    write_state(home, url)
    dashboard = f"{url}/"
    if created:
        # Printed this once, like a notebook server's link: the page keeps the token for the tab and
        # drops it from the address. Later starts never print it (output often ends up in logs).
        dashboard += f"#token={created}"
    elif not options.allow_anonymous:
        dashboard += f"  (the page asks for a token; the admin token is in {admin_file})"
    processes = f", {workers} workers" if workers > 1 else ""
    lines = [
        f"dbhandles server on {url} (home {home}, pid {os.getpid()}{processes})",
        f"dashboard: {dashboard}",
    ]
    if created:
        lines.append(
            f"created the admin token in {admin_file} (jtag uses it by itself; "
            "this is the only time it is printed)"
        )
    if options.allow_anonymous:
        where = "this machine" if _is_loopback(options.host) else "this network"
        lines.append(
            f"warning: --allow-anonymous: any program on {where} can read and write every handle"
        )
    lines.append("press Ctrl+C to stop")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def serve_main(argv: Sequence[str]) -> int:
    """``jtag serve [--host=127.0.0.1] [--port=7878] ...``; returns the exit code."""
    try:
        options = parse_options(argv)
        if options.help:
            sys.stdout.write(command_help("serve") + "\n")
            return 0
        serve(options)
    except DbHandlesError as exc:
        sys.stdout.write(mask_tokens(render(error_envelope(exc), "json")) + "\n")
        return 1
    except ValueError as exc:
        sys.stdout.write(
            render(error_envelope(InvalidParams(f"configuration: {exc}")), "json") + "\n"
        )
        return 1
    except KeyboardInterrupt:
        pass
    sys.stdout.write("dbhandles server stopped\n")
    return 0
