"""Who may call the server: other web sites refused, bearer tokens to actors, sessions per actor, and
tokens kept out of logs.

Sessions: the ``X-Session-Id`` a client sends is its own name for a session, not a capability. The
server scopes it by the authenticated actor (``alice`` sending ``s1`` runs in session ``alice/s1``), so
another actor who learns or guesses the id reaches a different session and never sees the first one's
cursors. Results echo the id the client sent. The scoping is deterministic, so several servers sharing
one default database agree on it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from starlette.types import Scope

from dbhandles.context import Context
from dbhandles.errors import Forbidden, InvalidParams, Unauthorized

if TYPE_CHECKING:
    from dbhandles.security.tokens import TokenManager

__all__ = [
    "AMBIGUOUS",
    "LOOPBACK_HOSTS",
    "MAX_KNOWN_CONTEXTS",
    "QUERY_TOKEN_KEY",
    "TARGET_KEY",
    "RedactSecrets",
    "allowed_hosts",
    "authenticate",
    "check_site",
    "check_target",
    "claimed_actor",
    "install_log_redaction",
    "query_token",
    "redact",
    "request_host",
    "require_host",
    "scoped_session",
    "socket_credential",
    "socket_session",
]

#: Where the token taken out of ``/ws?token=...`` is kept in the ASGI scope.
QUERY_TOKEN_KEY = "dbhandles.query_token"
#: Where the HTTP protocol (``connections.limited_protocol``) keeps a request target that is not a
#: path (absolute-form, ``http://host/commands/...``): uvicorn's scope keeps only its path.
TARGET_KEY = "dbhandles.target"
#: The schemes of an absolute-form target this server answers (``check_target``).
_TARGET_SCHEMES = frozenset({"http", "https", "ws", "wss"})
#: Loggers that may see request lines (uvicorn's, and the websockets library's handshake debug logs).
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "websockets.server")

_TOKEN_PARAM = re.compile(r"((?:^|[?&\s])token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[^\s\"']+", re.IGNORECASE)
_TOKEN = re.compile(r"\bdbh_[A-Za-z0-9]{8,32}_[A-Za-z0-9_-]{20,128}")
REDACTED = "[redacted]"
#: What a request's credentials are taken as when it gives more than one (two ``Authorization``
#: headers, ``?token=`` twice, or both on a WebSocket): refused (``authenticate``), never one of
#: them picked. No header value can hold a NUL, so no real credential reads as this.
AMBIGUOUS = "\x00ambiguous"


#: The names of this machine's loopback addresses: always answered to.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
#: Bind addresses that name no host (every interface): they add nothing to the allowed names.
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def _host_name(host: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8080`` -> ``[::1]``), lower case, without the
    trailing dot of a fully qualified name."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]") + 1
        rest = host[end:] if end else ""
        # ``[::1]`` or ``[::1]:port``; anything else after ``]`` (``[::1]evil.com``) is no name
        # of ours, so the whole text is compared (and refused).
        name = host[:end] if end and (not rest or (rest[0] == ":" and rest[1:].isdigit())) else host
    else:
        name, sep, port = host.rpartition(":")
        if not sep or not port.isdigit():
            name = host
    # One trailing dot is a fully qualified name; two are no name at all.
    return name[:-1] if name.endswith(".") and not name.endswith("..") else name


def request_host(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The one ``Host`` header of an ASGI request (``None``: none, as in HTTP/1.0).

    Raises:
        InvalidParams: more than one ``Host`` header (RFC 9112 §3.2: a server must answer 400),
            which a proxy and this server could read differently.
    """
    found = [value for key, value in headers if key == b"host"]
    if len(found) > 1:
        raise InvalidParams("a request may carry one Host header, not several", field="Host")
    return found[0].decode("latin-1") if found else None


def require_host(scope: Scope, host: str | None) -> None:
    """An HTTP/1.1 request names its host (RFC 9112 §3.2: a server answers 400 without one); an
    HTTP/1.0 one need not.

    Raises:
        InvalidParams: an HTTP/1.1 (or later) request without ``Host``.
    """
    if host is None and scope.get("http_version", "1.1") not in ("1.0", "0.9"):
        raise InvalidParams("an HTTP/1.1 request must carry a Host header", field="Host")


def allowed_hosts(configured: Iterable[str], bound: Iterable[str] = ()) -> frozenset[str]:
    """The host names a request may give: the loopback names, the addresses the server is bound to
    (not a wildcard) and ``DBHANDLES_ALLOWED_HOSTS`` (``*``: any)."""
    names = set(LOOPBACK_HOSTS)
    for host in (*configured, *bound):
        name = host.strip().lower()
        if ":" in name and not name.startswith("[") and name.count(":") > 1:
            name = f"[{name}]"  # an IPv6 address as a Host header spells it
        name = _host_name(name) if name != "*" else name
        if name not in _WILDCARDS:
            names.add(name)
    return frozenset(names)


def check_site(
    origin: str | None,
    fetch_site: str | None,
    host: str | None,
    hosts: frozenset[str] = LOOPBACK_HOSTS,
) -> None:
    """Refuse a request for a host name the server does not answer to, or that a browser made on
    behalf of another site (a page driving the local server).

    A page of ``attacker.example`` whose name the attacker then points at 127.0.0.1 (DNS
    rebinding) is the same origin as its own requests: only the ``Host`` it sends tells it apart,
    so ``Host`` must be one of ``hosts`` (``allowed_hosts``), in every mode, token or not. Its port
    is not compared: a request that reached this server came through its port whatever it says.
    A request without ``Host`` (HTTP/1.0) comes from no browser and is not refused for it.

    Browsers say where a request comes from (``Sec-Fetch-Site``, ``Origin``); programs such as
    ``jtag`` and ``Client`` send neither and are not affected. Another port on the same host is
    another site too: ``same-site`` is refused like ``cross-site``.

    Raises:
        Forbidden: a ``Host`` not in ``hosts``; the request comes from another site.
    """
    if host is not None and "*" not in hosts and _host_name(host) not in hosts:
        raise Forbidden(
            "refused a request for a host name this server does not answer to (a name pointed at "
            "it by someone else); call it by 127.0.0.1, localhost or [::1], or an administrator "
            "can add the name to DBHANDLES_ALLOWED_HOSTS",
            field="Host",
        )
    if fetch_site is not None and fetch_site.lower() in ("cross-site", "same-site"):
        raise Forbidden(
            f"refused a {fetch_site} request from a web page; only the dashboard served by this "
            "server (and programs such as jtag) may call it",
            field="Sec-Fetch-Site",
        )
    if origin is not None and (origin == "null" or urlsplit(origin).netloc != (host or "")):
        raise Forbidden(
            f"refused a request from the web page at {origin}; only the dashboard served by this "
            "server (and programs such as jtag) may call it",
            field="Origin",
        )


def check_target(scope: Scope, hosts: frozenset[str] = LOOPBACK_HOSTS) -> None:
    """Hold an absolute-form request target (``POST http://host/commands/data/list``, RFC 9112
    §3.2.2) to the rule of ``Host``: its authority names the host a server must answer for (it
    wins over ``Host``, RFC 9110 §7.2), so it must be one of ``hosts`` too (``Host`` is checked as
    well). A target left whole in the scope's path (a WebSocket upgrade, servers other than
    uvicorn's httptools) is replaced by its path there, so routing sees ``/ws``. A path
    (origin-form) passes as it is.

    Raises:
        InvalidParams: a target that is neither a path nor an ``http``, ``https``, ``ws`` or
            ``wss`` URL naming a host without user information (field ``target``).
        Forbidden: a URL naming a host this server does not answer to (field ``target``).
    """
    target = scope.get(TARGET_KEY)
    path = scope.get("path", "/")
    if target is None:
        if path.startswith("/"):
            return
        raw_path = scope.get("raw_path")  # as sent: a %2F in it is not yet a "/"
        target = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else path
    try:
        parts = urlsplit(target)
        port = parts.port  # a port that is no number raises
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme.lower() not in _TARGET_SCHEMES
        or not parts.hostname
        or "@" in parts.netloc
    ):
        raise InvalidParams(
            "the request target must be a path (/commands/<name>) or an http(s) or ws(s) URL "
            "naming this server's host, without user information",
            field="target",
        )
    name = parts.netloc if port is None else parts.netloc.rpartition(":")[0]
    if "*" not in hosts and _host_name(name) not in hosts:
        raise Forbidden(
            "refused a request whose target names a host this server does not answer to (an "
            "absolute URL's host is the request's host); call it by 127.0.0.1, localhost or "
            "[::1], or an administrator can add the name to DBHANDLES_ALLOWED_HOSTS",
            field="target",
        )
    if not path.startswith("/"):
        raw = parts.path or "/"
        scope["path"] = unquote(raw)
        scope["raw_path"] = raw.encode("latin-1")


def scoped_session(actor: str, session_id: str | None) -> str:
    """The session a request runs in: the client's id scoped by the actor (``alice/s1``).

    Without an id, the actor's requests share the session ``alice/``: private to that actor.
    Actor names cannot contain ``/``, so two actors never share a scoped session.
    """
    return f"{actor}/{session_id or ''}"


def socket_session(actor: str, connection_id: str) -> str:
    """The session of one WebSocket connection (``alice#<id>``): no ``X-Session-Id`` can name it
    (those are always ``actor/...``), so its cursors are reachable from that connection only."""
    return f"{actor}#{connection_id}"


#: How many contexts ``authenticate`` keeps for reuse (``known``); past it they are all dropped.
MAX_KNOWN_CONTEXTS = 1024


def authenticate(
    tokens: TokenManager,
    authorization: str | None,
    session_id: str | None,
    *,
    require_token: bool,
    known: dict[tuple[str, str | None], Context] | None = None,
) -> Context:
    """Who a request runs as (call it in a worker thread: checking a token reads the database).

    A request with ``Authorization: Bearer <token>`` runs as the token's actor. Without one it runs as
    the local user, unless tokens are required. Either way it comes from the network, so the path
    roots apply (``trusted_local=False``). The session is scoped by the actor (``scoped_session``).

    ``known``: contexts made before, per (token, session id), reused when the token's check (made
    every time, ``TokenManager.authenticate``) gives the same actor, admin flag and token id; a
    ``Context`` is frozen, so a reused one is the one this call would make.

    Raises:
        Unauthorized: a malformed, unknown, expired or revoked token, or none when one is required;
            more than one credential (``AMBIGUOUS``).
    """
    token: str | None = None
    if authorization == AMBIGUOUS:
        raise Unauthorized(
            "the request gives more than one credential (Authorization headers, ?token= "
            "parameters, or both); send exactly one"
        )
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        token = value.strip()
    if token is None:
        if require_token:
            raise Unauthorized(
                "this server requires a token: send 'Authorization: Bearer <token>' "
                "(the local admin token is in <home>/admin.token; 'jtag' sends it by itself)"
            )
        local = Context()
        return Context(
            actor=local.actor,
            session_id=scoped_session(local.actor, session_id),
            trusted_local=False,
        )
    actor = tokens.authenticate(token)
    if known is not None:
        context = known.get((token, session_id))
        if (
            context is not None
            and context.actor == actor.name
            and context.is_admin == actor.is_admin
            and context.token_id == actor.token_id
        ):
            return context
    context = Context(
        actor=actor.name,
        is_admin=actor.is_admin,
        session_id=scoped_session(actor.name, session_id),
        trusted_local=False,
        token_id=actor.token_id,
    )
    if known is not None:
        if len(known) >= MAX_KNOWN_CONTEXTS:
            known.clear()
        known[token, session_id] = context
    return context


_TOKEN_ID = re.compile(r"^\s*bearer\s+dbh_([A-Za-z0-9]{8,32})_", re.IGNORECASE)


def claimed_actor(authorization: str | None) -> str:
    """Who a refused request claimed to be, for its audit row: ``anonymous`` (no token),
    ``token:<id>`` (a token's id: never its secret), or ``invalid-token`` (anything else)."""
    if authorization is None:
        return "anonymous"
    match = _TOKEN_ID.match(authorization)
    return f"token:{match.group(1)}" if match else "invalid-token"


def query_token(scope: Scope) -> str | None:
    """The ``token`` of ``/ws?token=...``, taken out of the scope's query string.

    The server logs request lines with their query string; once the token is out of the scope, no log
    line built from it can carry the token. Idempotent: the token is kept under ``QUERY_TOKEN_KEY``.
    More than one ``token`` is ``AMBIGUOUS``.
    """
    if QUERY_TOKEN_KEY in scope:
        kept: str | None = scope[QUERY_TOKEN_KEY]
        return kept
    raw: bytes = scope.get("query_string", b"")
    token: str | None = None
    if b"token" in raw.lower():
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        rest = []
        given = 0
        for key, value in pairs:
            if key.lower() == "token":
                given += 1
                token = AMBIGUOUS if given > 1 else value or None
            else:
                rest.append((key, value))
        scope["query_string"] = urlencode(rest).encode("latin-1")
    scope[QUERY_TOKEN_KEY] = token
    return token


def socket_credential(headers: list[str], query: str | None) -> str | None:
    """The credential of a WebSocket upgrade: its ``Authorization`` header or its ``?token=``
    (``query_token``), as a header value; ``AMBIGUOUS`` when it gives more than one."""
    if len(headers) + (query is not None) > 1 or query == AMBIGUOUS:
        return AMBIGUOUS  # refused: never one credential of several
    if query:
        return f"Bearer {query}"
    return headers[0] if headers else None


def redact(text: str) -> str:
    """``text`` with bearer tokens, ``token=`` parameters and ``Bearer`` values replaced."""
    text = _TOKEN.sub(REDACTED, text)
    text = _TOKEN_PARAM.sub(rf"\1{REDACTED}", text)
    return _BEARER.sub(rf"\1{REDACTED}", text)


class RedactSecrets(logging.Filter):
    """A logging filter that removes tokens from every record it sees (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler to report
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction(names: Iterable[str] = LOGGERS) -> None:
    """Add a ``RedactSecrets`` filter (once) to each named logger and to each of its handlers.

    A logger's filters see only what is logged to that logger; its handlers' filters also see what
    child loggers propagate to them. Call it after the log configuration is in place.
    """
    for name in names:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, RedactSecrets) for f in target.filters):
                target.addFilter(RedactSecrets())
