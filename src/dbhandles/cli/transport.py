"""Where a ``jtag`` command runs: a running server when there is one, otherwise in-process.

``JTAG_URL`` names the server explicitly; then it must be reachable (``server_unreachable`` otherwise:
the CLI never quietly runs the command against a different registry). Without it, the CLI looks at
``<home>/server.json`` (written by ``jtag serve``) and at the default address, and uses a server only if
its ``GET /health`` says it serves the same home folder (asked only of an address where something
accepts a connection, so an in-process run never imports ``http.client``). The remote path uses only
``http.client``, so a CLI call stays fast to start; what goes over the wire (routes, headers, envelopes, the
``server_unreachable`` failure) is ``dbhandles.wire``, which ``Client`` uses too.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from dbhandles import wire
from dbhandles.cli.session import env_session
from dbhandles.settings import Settings
from dbhandles.values import json_text
from dbhandles.wire import DEFAULT_PORT, DEFAULT_URL, home_id

if TYPE_CHECKING:
    import http.client

__all__ = [
    "ADMIN_TOKEN_FILE",
    "CLI_HINT",
    "DEFAULT_PORT",
    "DEFAULT_URL",
    "LocalTransport",
    "RemoteTransport",
    "Transport",
    "choose_transport",
    "env_token",
    "find_server",
    "read_state",
    "refuse_token_without_server",
    "remove_state",
    "state_path",
    "token_needs_server",
    "unreachable",
    "unreachable_url_answer",
    "write_state",
]

HEALTH_TIMEOUT = 0.5
COMMAND_TIMEOUT = 600.0


class Transport(Protocol):
    """Runs one command and returns its envelope (success or failure); never raises for a command error."""

    mode: str

    def dispatch(self, name: str, params: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


#: What the CLI suggests when the server it chose does not answer.
CLI_HINT = "start it with 'jtag serve' or unset JTAG_URL to run commands in-process"


def unreachable(url: str, reason: object) -> dict[str, Any]:
    """The envelope for "the server named by JTAG_URL (or found running) did not answer"."""
    return wire.cannot_reach(url, reason, CLI_HINT)


class LocalTransport:
    """Runs commands in this process against the durable registry in ``settings.home``."""

    mode = "local"

    def __init__(self, settings: Settings, session_id: str | None = None) -> None:
        from dbhandles.context import Context
        from dbhandles.service import Service

        self._service = Service(settings=settings)
        self._context = Context(session_id=session_id)

    def dispatch(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._service.dispatch(name, params, context=self._context)

    def end_session(self, session_id: str) -> int:
        """Close the query cursors of a CLI session that was replaced (``--new-session``)."""
        return self._service.end_session(session_id)

    def close(self) -> None:
        self._service.close()


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {json_text(url, 80)}")
    import http.client  # here, not at the top: an in-process command never needs it

    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=timeout), parts.path.rstrip("/")


class RemoteTransport:
    """Sends commands to a server as ``POST /commands/<name>``; the body back is the envelope."""

    mode = "remote"

    def __init__(self, url: str, session_id: str | None = None, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self._headers = wire.request_headers(token, session_id)

    def dispatch(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        import http.client

        body = wire.encode_params(params)  # NaN and the infinities go as literals the server reads
        try:
            conn, prefix = _connection(self.url, COMMAND_TIMEOUT)
        except ValueError as exc:
            return unreachable(self.url, exc)
        try:
            conn.request("POST", prefix + wire.command_path(name), body=body, headers=self._headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return unreachable(self.url, exc)
        finally:
            conn.close()
        return wire.read_envelope(self.url, response.status, body)

    def close(self) -> None:
        """Nothing to release: each command uses its own short connection."""


#: The answers of ``/health`` that say a server is there but cannot answer now, and what each says
#: when its body is not the server's error envelope (which says why: stopping, or full).
_BUSY = {429: "too many requests from this address", 503: "unavailable"}


def _busy_reason(status: int, body: bytes) -> str:
    """Why a server answered ``/health`` with ``status`` (429, 503): its error envelope's message,
    else ``_BUSY``'s word. A 503 says "stopping" only when the server said so: a full server
    answers 503 too (issue 13)."""
    try:
        envelope = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _BUSY[status]
    error = envelope.get("error") if isinstance(envelope, dict) else None
    return json_text(error, 300) if isinstance(error, str) and error else _BUSY[status]


def health(url: str, timeout: float = HEALTH_TIMEOUT) -> dict[str, Any] | None:
    """``GET /health`` of ``url``, or ``None`` when nothing (or not a dbhandles server) answers.

    Raises:
        ServerUnreachable: a server answered that it is too busy (429) or cannot answer now
            (503: stopping, or full), in its words: it is there, so the command must not run
            anywhere else (in-process, beside it).
    """
    import http.client

    try:
        conn, prefix = _connection(url, timeout)
    except ValueError:
        return None
    try:
        conn.request("GET", prefix + wire.HEALTH_PATH)
        response = conn.getresponse()
        body = response.read()
        if response.status in _BUSY:
            from dbhandles.errors import ServerUnreachable

            raise ServerUnreachable(
                f"the server at {json_text(url, 200)} answered {wire.HEALTH_PATH} with "
                f"{response.status} ({_busy_reason(response.status, body)}); nothing was run here "
                "or there, try again"
            )
        if response.status != 200:
            return None
        info = orjson.loads(body)
    except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
        return None
    finally:
        conn.close()
    return info if wire.is_dbhandles_health(info) else None


# -- the state file written by `jtag serve` --------------------------------------------------------


def state_path(home: Path) -> Path:
    return home / "server.json"


def write_state(home: Path, url: str) -> Path:
    """Record ``url`` and this process id in ``<home>/server.json`` (atomically)."""
    home.mkdir(parents=True, exist_ok=True)
    path = state_path(home)
    tmp = path.with_name(f".server.json.{os.getpid()}")
    tmp.write_bytes(orjson.dumps({"url": url, "pid": os.getpid(), "home": str(_canonical(home))}))
    tmp.replace(path)
    return path


def read_state(home: Path) -> dict[str, Any] | None:
    try:
        state = orjson.loads(state_path(home).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return state if isinstance(state, dict) else None


def remove_state(home: Path) -> None:
    """Remove ``server.json`` if it is still ours (a newer server may have replaced it)."""
    state = read_state(home)
    if state is not None and state.get("pid") == os.getpid():
        state_path(home).unlink(missing_ok=True)


def _canonical(home: Path) -> Path:
    return home.expanduser().resolve()


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listening(url: str, timeout: float = HEALTH_TIMEOUT) -> bool:
    """Whether anything accepts a TCP connection at ``url``'s address (nothing is sent)."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return _accepts(parts.hostname or "", port, timeout)
    except (OSError, ValueError):
        return False


def _accepts(host: str, port: int, timeout: float) -> bool:
    """``socket.create_connection`` to ``(host, port)`` succeeds (the socket is closed at once).

    Raises:
        OSError: the name does not resolve.
    """
    # An ASCII name goes to ``getaddrinfo`` as bytes: a ``str`` passes through the ``idna`` codec,
    # whose import (with ``stringprep``) is ~1.5 ms of every in-process command's start.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    for family, kind, proto, _, address in socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM):
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(address)
            except OSError:
                continue
            return True
    return False


def find_server(home: Path) -> str | None:
    """The URL of a live server for ``home`` (from ``server.json`` or the default address), else None."""
    candidates: list[str] = []
    state = read_state(home)
    if state is not None and isinstance(state.get("url"), str) and _pid_alive(state.get("pid")):
        candidates.append(state["url"])
    if DEFAULT_URL not in candidates:
        candidates.append(DEFAULT_URL)
    want = home_id(str(_canonical(home)))
    for url in candidates:
        if not _listening(url):
            continue
        info = health(url)
        if info is not None and info.get("homeId") == want:
            return url
    return None


#: The file ``jtag serve`` writes its local admin token to: ``security.tokens.ADMIN_TOKEN_FILE``
#: (tests/test_cli_quick_params.py checks they agree), named here because that module imports the
#: store, which a command sent to a server never needs.
ADMIN_TOKEN_FILE = "admin.token"


def _admin_token_path(home: Path) -> Path:
    return home / ADMIN_TOKEN_FILE


def _admin_token(home: Path) -> str | None:
    """The local admin token ``jtag serve`` wrote to ``<home>/admin.token``, if this user can read it."""
    try:
        return _admin_token_path(home).read_text().strip() or None
    except OSError:
        return None


def choose_transport(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    *,
    token: str | None = None,
    session_id: str | None = None,
    command: str = "jtag",
) -> Transport:
    """``JTAG_URL``, else a live server for this home, else in-process (see the module docstring).

    Against a server, the CLI sends ``token`` (``--token``), else ``JTAG_TOKEN``, else the local admin
    token when the server serves this same home folder (so the local CLI needs no setup). In-process
    the CLI is the local user, an administrator, and no token is needed. ``session_id`` defaults to
    ``JTAG_SESSION_ID``. A token (``token`` or ``JTAG_TOKEN``) names an actor of a server: with
    no server for this home the command is refused (``server_unreachable``, naming ``command``),
    never run in-process, where it would have the local administrator's rights, not the token's.

    Raises:
        InvalidParams: ``JTAG_SESSION_ID`` is not a session id (``session.env_session``).
        ServerUnreachable: a token was given and no server serves this home.
    """
    env = os.environ if environ is None else environ
    session_id = session_id or env_session(env)
    token = token or env_token(env)
    home = settings.home.expanduser()
    explicit = (env.get("JTAG_URL") or "").strip()
    if explicit:
        if token is None and _admin_token_path(home).exists():
            info = health(explicit)
            if info is not None and info.get("homeId") == home_id(str(_canonical(home))):
                token = _admin_token(home)
        return RemoteTransport(explicit, session_id, token)
    url = find_server(home)
    if url is not None:
        return RemoteTransport(url, session_id, token or _admin_token(home))
    if token is not None:
        raise token_needs_server(command, home)
    return LocalTransport(settings, session_id)


def env_token(environ: Mapping[str, str]) -> str | None:
    """``JTAG_TOKEN`` (``None``: not set).

    Raises:
        InvalidParams: it is set but empty (or blank), as ``--token=`` is refused: an empty token
            is a token given, never the local administrator's run in-process.
    """
    if "JTAG_TOKEN" not in environ:
        return None
    token = environ["JTAG_TOKEN"].strip()
    if not token:
        from dbhandles.errors import InvalidParams

        raise InvalidParams(
            "JTAG_TOKEN is set but empty; give a token (JTAG_TOKEN=dbh_...) or unset it",
            field="JTAG_TOKEN",
        )
    return token


def refuse_token_without_server(
    settings: Settings, environ: Mapping[str, str], token: str | None, command: str
) -> None:
    """Refuse a run given a token (``token``, else ``JTAG_TOKEN``) when no server serves this
    home and no ``JTAG_URL`` is set, before the run writes anything (its session file): a refused
    run leaves the home as it was.

    Raises:
        InvalidParams: ``JTAG_TOKEN`` is set but empty (``env_token``).
        ServerUnreachable: a token was given and no server serves this home.
    """
    token = token or env_token(environ)
    if token is None or (environ.get("JTAG_URL") or "").strip():
        return
    home = settings.home.expanduser()
    if find_server(home) is None:
        raise token_needs_server(command, home)


def unreachable_url_answer(environ: Mapping[str, str], command: str) -> dict[str, Any] | None:
    """The ``server_unreachable`` answer of a run whose ``JTAG_URL`` accepts no connection, given
    before it writes anything (its session file and the home folder that holds it): a run that
    cannot reach its server leaves the home as it was, with or without a token. Asked only when
    the run would write its session (``session.writes_session``): one TCP connection, nothing
    sent. ``None`` when something listens there. An envelope, not an exception: a command sent
    to a server imports neither the commands nor the database stack (tests/test_cli_quick_params.py).
    """
    url = (environ.get("JTAG_URL") or "").strip()
    if url and not _listening(url):
        return unreachable(url, f"{command}: nothing accepts a connection there; nothing ran and "
                           "nothing was written")  # fmt: skip
    return None


def token_needs_server(command: str, home: Path) -> Exception:
    """The refusal of a command given a token when no server serves ``home``: it never runs
    in-process, as the local administrator, with more rights than the token
    (``server_unreachable``)."""
    from dbhandles.errors import ServerUnreachable

    return ServerUnreachable(
        f"{command}: the token names an actor of a server, but no server serves {home} (start "
        "one with 'jtag serve', or set JTAG_URL); nothing ran: without a server it would run as "
        "the local administrator, not as that actor"
    )
