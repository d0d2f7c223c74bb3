"""The routes that need no token: ``GET /health``, ``/commands``, ``/commands/<name>``, ``/openapi.json``
and the dashboard's files, each O(1) small work on the event loop.

Anyone who can reach the server may call them, so none may cost the loop more than a lookup: every
document is built once per server (its settings never change) as the bytes it is sent as, with an
``ETag`` (``If-None-Match`` is answered 304 without a body); the dashboard's files are read once.
Building ``/openapi.json`` with the server's limits costs 15 ms and ``/commands`` 10 ms of one core:
built per request, four clients asking in a loop held every other client's requests for up to 400 ms
(issue 13). And each client address may have at most ``PUBLIC_REQUESTS_PER_ADDRESS`` of these
requests in progress (a client that does not read its answer holds one until the server could
hand it all to the kernel: ``written``): past it, ``too_many_requests`` (429), so no flood of anonymous requests can take the
loop or the memory of answers written to clients that never read them.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dbhandles.adapters import adapter_names
from dbhandles.commands import builtin_commands
from dbhandles.commands.envelope import error_envelope
from dbhandles.errors import TooManyRequests, UnknownCommand
from dbhandles.server.openapi import command_info, commands_listing, openapi_document
from dbhandles.values import json_text
from dbhandles.wire import home_id

if TYPE_CHECKING:
    from dbhandles.server.app import ServerState

__all__ = [
    "PUBLIC_REQUESTS_PER_ADDRESS",
    "STATIC_FILES",
    "Document",
    "Documents",
    "PublicLimit",
    "command_info_endpoint",
    "commands_endpoint",
    "health_endpoint",
    "openapi_endpoint",
    "static_endpoint",
    "written",
]

COMMANDS = builtin_commands()
JSON = "application/json"
#: Requests to the routes that need no token one client address may have in progress at once.
PUBLIC_REQUESTS_PER_ADDRESS = 8
STATIC_FILES = {
    "/": "index.html",
    "/jtag.js": "jtag.js",
    "/app.js": "app.js",
    "/style.css": "style.css",
    # A file rather than a data: URL in the page, which the page's own policy (img-src 'self') refuses.
    "/favicon.svg": "favicon.svg",
}
_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: The dashboard is never framed by another page (clickjacking), runs only its own scripts, and
#: talks only to this server.
_PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class Document:
    """One answer as it is sent: ``body`` (bytes), its ``media_type``, and ``etag`` (a quoted hash
    of the body)."""

    body: bytes
    media_type: str
    etag: str

    @classmethod
    def of(cls, body: bytes, media_type: str = JSON) -> Document:
        return cls(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def response(self, request: Request, headers: dict[str, str] | None = None) -> Response:
        """200 with the body, or 304 without it when the request's ``If-None-Match`` names it."""
        sent = {"ETag": self.etag, "Cache-Control": "no-cache", **(headers or {})}
        given = request.headers.get("if-none-match", "")
        if self.etag in (tag.strip() for tag in given.split(",")) or given.strip() == "*":
            return Response(status_code=304, headers=sent)
        return Response(self.body, media_type=self.media_type, headers=sent)


class Documents:
    """The documents of one server, each built on first use and kept (``Documents.builds`` counts
    the builds, for tests). The command table can grow (adapters registered from entry points
    after start-up): the documents that list it are rebuilt once when it did.

    Args:
        state: the server whose settings and version the documents show.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._kept: dict[str, Document] = {}
        self._key: tuple[str, ...] = ()
        self.builds = 0
        self._home_id: str | None = None

    def _get(self, name: str, build: Callable[[], bytes], media_type: str = JSON) -> Document:
        key = (*sorted(COMMANDS), *adapter_names())
        if key != self._key:
            self._kept.clear()
            self._key = key
        found = self._kept.get(name)
        if found is None:
            self.builds += 1
            found = self._kept[name] = Document.of(build(), media_type)
        return found

    def openapi(self) -> Document:
        state = self.state
        return self._get("openapi", lambda: orjson.dumps(
            openapi_document(state.version, state.service.settings)))  # fmt: skip

    def commands(self) -> Document:
        settings = self.state.service.settings
        return self._get("commands", lambda: orjson.dumps({"commands": commands_listing(settings)}))

    def command(self, name: str) -> Document | None:
        """One command's entry of ``/commands``, or None if there is no such command."""
        command = COMMANDS.get(name)
        if command is None:
            return None
        settings = self.state.service.settings
        return self._get(f"command:{name}", lambda: orjson.dumps(command_info(command, settings)))

    def static(self, path: str) -> Document:
        name = STATIC_FILES[path]
        media = _STATIC_TYPES[os.path.splitext(name)[1]]
        return self._get(
            f"static:{name}",
            lambda: files("dbhandles.server").joinpath("static", name).read_bytes(),
            media,
        )

    def home_id(self) -> str:
        """``wire.home_id`` of the resolved home folder (resolved once: a path lookup is I/O)."""
        if self._home_id is None:
            home = self.state.service.settings.home.expanduser().resolve()
            self._home_id = home_id(str(home))
        return self._home_id


class PublicLimit:
    """Requests in progress on the routes that need no token, per client address (only touched on
    the event loop).

    Args:
        limit: the most one address may have in progress at once.
    """

    def __init__(self, limit: int = PUBLIC_REQUESTS_PER_ADDRESS) -> None:
        self.limit = limit
        self.counts: Counter[str] = Counter()

    def enter(self, address: str) -> None:
        """Count one more request from ``address``.

        Raises:
            TooManyRequests: ``address`` already has ``limit`` of them in progress.
        """
        if self.counts[address] >= self.limit:
            raise TooManyRequests(
                f"{json_text(address, 80)} already has {self.limit} requests in progress on the "
                "routes that need no token (GET /health, /commands, /openapi.json, the dashboard); "
                "read their answers before sending more",
                field="connection",
            )
        self.counts[address] += 1

    def leave(self, address: str) -> None:
        self.counts[address] -= 1
        if self.counts[address] <= 0:
            del self.counts[address]


async def written(send: object) -> None:
    """Return once the answer handed to ``send`` (uvicorn's request cycle's) left the connection's
    write buffer for the kernel (below its low-water mark), or the connection was lost; at once
    elsewhere (an in-process test client). A request holds its ``PublicLimit`` slot until then:
    released when handed over, the slot of a client that never reads was free again at once, and
    the limit never applied (issue 13)."""
    flow = getattr(getattr(send, "__self__", None), "flow", None)
    if flow is not None and getattr(flow, "write_paused", False):
        await flow.drain()


def _documents(request: Request) -> Documents:
    state: ServerState = request.app.state.dbhandles
    return state.documents


async def command_info_endpoint(request: Request) -> Response:
    """``GET /commands/<name>``: one command's description and schemas."""
    name = request.path_params["name"]
    found = _documents(request).command(name)
    if found is None:
        exc = UnknownCommand(f"unknown command {json_text(name, 80)}; GET /commands lists them",
                             field="command")  # fmt: skip
        return Response(
            orjson.dumps(error_envelope(exc)), status_code=exc.http_status, media_type=JSON
        )
    return found.response(request)


async def commands_endpoint(request: Request) -> Response:
    """``GET /commands``: every command with its params/result JSON schemas."""
    return _documents(request).commands().response(request)


async def openapi_endpoint(request: Request) -> Response:
    """``GET /openapi.json``: the OpenAPI 3.1 document, with this server's limits."""
    return _documents(request).openapi().response(request)


async def health_endpoint(request: Request) -> Response:
    """``GET /health``: liveness plus what the CLI checks before using this server: the pid and
    ``homeId`` (``wire.home_id`` of the resolved home folder; the path itself is not shown)."""
    state: ServerState = request.app.state.dbhandles
    body: dict[str, Any] = {
        "status": "ok",
        "service": "dbhandles",
        "version": state.version,
        "pid": os.getpid(),
        "homeId": state.documents.home_id(),
        "connections": state.websockets,
    }
    return Response(orjson.dumps(body), media_type=JSON)


async def static_endpoint(request: Request) -> Response:
    """The dashboard and the browser client, from the package's ``static`` folder."""
    return _documents(request).static(request.url.path).response(request, _PAGE_HEADERS)
