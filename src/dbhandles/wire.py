"""The HTTP wire protocol of a dbhandles server, shared by ``Client`` (httpx) and ``jtag`` (http.client).

One place owns what both clients must agree on: the default address, the routes, the request headers,
how a response body becomes a result envelope (or the ``server_unreachable`` failure when it is not
one), and how a failure envelope becomes the exception the in-process API raises.

The CLI imports this module on every start, so it imports nothing heavy (no httpx, no pydantic, no
service): only the standard library, orjson and the dependency-free ``errors`` and ``clock``.

>>> command_path("data/list")
'/commands/data/list'
>>> ws_url("https://example.org/db/")
'wss://example.org/db/ws'
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from dbhandles.clock import iso_now
from dbhandles.errors import DbHandlesError, ServerUnreachable, error_class_for_code

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_URL",
    "HEALTH_PATH",
    "SERVE_HINT",
    "UNREACHABLE",
    "WS_PATH",
    "cannot_reach",
    "command_path",
    "decode_exact",
    "encode_params",
    "failure_envelope",
    "home_id",
    "is_dbhandles_health",
    "raise_for",
    "read_envelope",
    "request_headers",
    "server_unreachable",
    "ws_url",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7878
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
#: ``GET``: ``{"service": "dbhandles", "homeId": ..., "pid": ...}`` when a dbhandles server answers.
HEALTH_PATH = "/health"
#: The event socket (subscribe by pattern); see docs/server.md.
WS_PATH = "/ws"
#: The error code of "no dbhandles server answered" (HTTP 503), produced by the clients.
UNREACHABLE = ServerUnreachable.code
#: What the Python client suggests when nothing answers (the CLI has its own hint).
SERVE_HINT = "is 'jtag serve' running?"


def home_id(canonical_home: str) -> str:
    """What ``/health`` says of the server's home: the SHA-256 of its resolved path (32 hex
    characters), so a client that knows its own home can tell it is the same one, and nobody else
    learns the folder's name."""
    return hashlib.sha256(canonical_home.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def command_path(name: str) -> str:
    """The route a command is ``POST``-ed to; the body is its params as a JSON object."""
    return f"/commands/{name}"


def ws_url(url: str) -> str:
    """The event socket of the server at ``url`` (``ws://``, or ``wss://`` for ``https://``)."""
    parts = urllib.parse.urlsplit(url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + WS_PATH, "", ""))


def request_headers(token: str | None = None, session_id: str | None = None) -> dict[str, str]:
    """The headers of a command request: JSON both ways, the bearer token and the session id if any.

    Query cursors belong to the session named by ``X-Session-Id``; the token's actor runs the command.
    """
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if session_id:
        headers["X-Session-Id"] = session_id
    return headers


def encode_params(params: Mapping[str, Any] | None) -> bytes:
    """The request body for ``params``, every value as it is (the server's ``read_json`` reads it
    back exactly), so that the server refuses what the in-process API refuses, with its error.

    orjson writes NaN and the infinities as ``null``, which would change the value. An infinity
    (what ``jtag`` reads ``1e400`` as) is written as the literal ``1e400`` (``-1e400``), and NaN,
    which has no JSON number, as the literal ``NaN`` (as Python's ``json`` writes it): the
    server's ``read_json`` reads both back as those floats, and the server answers as in-process,
    by the rule of the place that holds it (a filter's ``invalid_filter`` "cannot be compared", a
    record's ``invalid_params``), one answer on every door. An integer past 64 bits, which orjson
    cannot write, is written exactly by ``json``, and the server refuses it by the value rule.

    Raises:
        TypeError: a value is not JSON-serialisable.
    """
    data = dict(params or {})
    try:
        body = orjson.dumps(data)
    except orjson.JSONEncodeError:
        return _spell_non_finite(data, _exact_dumps)
    if b"null" in body:  # cheap test first: a NaN or an infinity was written as null
        body = _spell_non_finite(data, orjson.dumps)
    return body


def _exact_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _spell_non_finite(data: dict[str, Any], dumps: Callable[[Any], bytes]) -> bytes:
    """``dumps(data)`` with each infinity written as the number literal ``1e400`` (``-1e400``) and
    each NaN as ``NaN``: each is first replaced by a marker string no sent text holds (a fresh
    random token)."""
    token = os.urandom(16).hex()
    marks = {1: f"+{token}", -1: f"-{token}", 0: f"n{token}"}

    def marked(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return marks[0 if math.isnan(value) else 1 if value > 0 else -1]
        if isinstance(value, Mapping):
            return {key: marked(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [marked(item) for item in value]
        return value

    body = dumps(marked(data))
    for sign, literal in ((1, b"1e400"), (-1, b"-1e400"), (0, b"NaN")):
        body = body.replace(f'"{marks[sign]}"'.encode(), literal)
    return body


def failure_envelope(exc: DbHandlesError) -> dict[str, Any]:
    """``{success: false, timestamp, error, code[, field]}``, as ``commands.envelope.error_envelope``.

    Built here so that the CLI need not import the command table to report an unreachable server.
    """
    envelope: dict[str, Any] = {
        "success": False,
        "timestamp": iso_now(),
        "error": exc.message,
        "code": exc.code,
    }
    if exc.field is not None:
        envelope["field"] = exc.field
    return envelope


def server_unreachable(message: str) -> ServerUnreachable:
    """The error for "no dbhandles server answered" (code ``server_unreachable``, HTTP 503)."""
    return ServerUnreachable(message)


def cannot_reach(url: str, reason: object, hint: str = SERVE_HINT) -> dict[str, Any]:
    """The failure envelope for "nothing answered at ``url``" (refused, timed out, not a URL...)."""
    return failure_envelope(
        server_unreachable(f"cannot reach the dbhandles server at {url} ({reason}); {hint}")
    )


#: A run of 19 digits: where an integer outside [-2**63, 2**64) may be (``decode_exact``).
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def decode_exact(body: bytes | str) -> Any:
    """``body`` decoded as JSON, every integer exact.

    orjson reads an integer outside [-2**63, 2**64) as an inexact float; a server answers such an
    integer a JSON-adapter file holds exactly (docs/filters.md "Values"). A body holding a run of
    19 digits (which every such integer does, and little else: timestamps and most numbers are
    shorter) is read again by Python's ``json``, which reads every other value as orjson does
    (the same nearest double for a float), so ``jtag`` and ``dbhandles.Client`` answer the
    integer as the server sent it.

    Raises:
        orjson.JSONDecodeError: ``body`` is not JSON (a ``ValueError``).
    """
    decoded = orjson.loads(body)
    raw = body.encode() if isinstance(body, str) else body
    if _LONG_DIGITS.search(raw) is None:
        return decoded
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # pragma: no cover - orjson read it
        return decoded


def read_envelope(url: str, status: int, body: bytes) -> dict[str, Any]:
    """The envelope in a response body, success or failure.

    A body that is not an envelope (a proxy's error page, another service) is the
    ``server_unreachable`` envelope: whatever answered, it was not a dbhandles server. An envelope is
    a JSON object whose ``success`` is ``true`` with a 2xx status, or ``false`` with a string
    ``error`` and ``code`` (docs/server.md); anything else is not trusted as one.
    """
    try:
        envelope = decode_exact(body)  # an integer past 64 bits stays exact
    except orjson.JSONDecodeError:
        envelope = None
    if isinstance(envelope, dict) and _is_envelope(envelope, status):
        return envelope
    return failure_envelope(
        server_unreachable(
            f"{url} answered HTTP {status} without a dbhandles envelope; is it a dbhandles server?"
        )
    )


def _is_envelope(envelope: Mapping[str, Any], status: int) -> bool:
    success = envelope.get("success")
    if success is True:
        return 200 <= status < 300
    return (
        success is False
        and isinstance(envelope.get("error"), str)
        and isinstance(envelope.get("code"), str)
    )


def raise_for(envelope: Mapping[str, Any]) -> None:
    """Nothing for a success envelope; else raise what the in-process API would have raised.

    Same class, ``code`` and ``field``; a code this version has no class for stays the server's code
    on a ``DbHandlesError``.
    """
    if envelope.get("success") is True:
        return
    code = str(envelope.get("code", "internal_error"))
    message = str(envelope.get("error", "the command failed"))
    exc = error_class_for_code(code)(message, field=envelope.get("field"))
    if exc.code != code:
        exc.code = code
    raise exc


def is_dbhandles_health(info: object) -> bool:
    """Whether a decoded ``GET /health`` body comes from a dbhandles server."""
    return isinstance(info, dict) and info.get("service") == "dbhandles"
