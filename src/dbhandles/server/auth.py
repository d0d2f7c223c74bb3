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
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.types import Scope

from dbhandles.context import Context
from dbhandles.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from dbhandles.security.tokens import TokenManager

__all__ = [
    "QUERY_TOKEN_KEY",
    "RedactSecrets",
    "authenticate",
    "check_site",
    "claimed_actor",
    "install_log_redaction",
    "query_token",
    "redact",
    "scoped_session",
    "socket_session",
]

#: Where the token taken out of ``/ws?token=...`` is kept in the ASGI scope.
QUERY_TOKEN_KEY = "dbhandles.query_token"
#: Loggers that may see request lines (uvicorn's, and the websockets library's handshake debug logs).
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets", "websockets.server")

_TOKEN_PARAM = re.compile(r"((?:^|[?&\s])token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)[^\s\"']+", re.IGNORECASE)
_TOKEN = re.compile(r"\bdbh_[A-Za-z0-9]{8,32}_[A-Za-z0-9_-]{20,128}")
REDACTED = "[redacted]"


def check_site(origin: str | None, fetch_site: str | None, host: str | None) -> None:
    """Refuse a request a browser made on behalf of another site (a page driving the local server).

    Browsers say where a request comes from (``Sec-Fetch-Site``, ``Origin``); programs such as
    ``jtag`` and ``Client`` send neither and are not affected. Another port on the same host is
    another site too: ``same-site`` is refused like ``cross-site``.

    Raises:
        Forbidden: the request comes from another site.
    """
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


def authenticate(
    tokens: TokenManager, authorization: str | None, session_id: str | None, *, require_token: bool
) -> Context:
    """Who a request runs as (call it in a worker thread: checking a token reads the database).

    A request with ``Authorization: Bearer <token>`` runs as the token's actor. Without one it runs as
    the local user, unless tokens are required. Either way it comes from the network, so the path
    roots apply (``trusted_local=False``). The session is scoped by the actor (``scoped_session``).

    Raises:
        Unauthorized: a malformed, unknown, expired or revoked token, or none when one is required.
    """
    token: str | None = None
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
    return Context(
        actor=actor.name,
        is_admin=actor.is_admin,
        session_id=scoped_session(actor.name, session_id),
        trusted_local=False,
        token_id=actor.token_id,
    )


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
    """
    if QUERY_TOKEN_KEY in scope:
        kept: str | None = scope[QUERY_TOKEN_KEY]
        return kept
    raw: bytes = scope.get("query_string", b"")
    token: str | None = None
    if b"token" in raw.lower():
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
        rest = []
        for key, value in pairs:
            if key.lower() == "token":
                token = token or value or None
            else:
                rest.append((key, value))
        scope["query_string"] = urlencode(rest).encode("latin-1")
    scope[QUERY_TOKEN_KEY] = token
    return token


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
