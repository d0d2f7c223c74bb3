"""Who runs a command and from where: the caller context every layer may read (a leaf module)."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ACTOR_PATTERN",
    "MAX_SESSION_ID",
    "SESSION_ID_PATTERN",
    "SESSION_ID_RULE",
    "Context",
    "is_scoped_session",
    "is_session_id",
]

#: An actor name: a letter or digit, then up to 63 letters, digits, '_', '.', '@' or '-'. The one rule
#: for actor names (tokens, grants, data spaces); valid in Python (with ``fullmatch``) and as a JSON
#: Schema pattern (the OpenAPI document declares it).
ACTOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"

#: The longest session id.
MAX_SESSION_ID = 128
#: A session id, as a client names its session (``X-Session-Id``, ``sessionId``, ``JTAG_SESSION_ID``,
#: ``Context.session_id`` in-process): a letter or digit, then up to 127 letters, digits, '_', '.',
#: ':', '@' or '-'. The original system's ids (UUIDs) fit; '/' and '#' never do, as they scope a
#: session by its actor (``alice/s1``, ``alice#<connection>``); nor do blanks, control or format
#: characters (they would reach the audit log and the terminal). The one rule of every door; valid in
#: Python (with ``fullmatch``) and as a JSON Schema pattern.
SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$"
#: The rule in words, for error messages.
SESSION_ID_RULE = (
    f"1 to {MAX_SESSION_ID} characters: a letter or digit, then letters, digits, '_', '.', ':', "
    "'@' or '-' (a UUID fits; no blanks, '/', '#' or control characters)"
)
_SESSION_ID = re.compile(SESSION_ID_PATTERN[1:-1])
_ACTOR = ACTOR_PATTERN[1:-1]
#: A session as the server scopes it: ``<actor>/`` (no id), ``<actor>/<id>`` or ``<actor>#<id>``.
_SCOPED = re.compile(f"({_ACTOR})(?:/(?:{_SESSION_ID.pattern})?|#{_SESSION_ID.pattern})")


def is_session_id(value: object) -> bool:
    """Whether ``value`` is a session id (``SESSION_ID_PATTERN``).

    >>> [is_session_id(v) for v in ("7c3e1f0a-2d4b-4c5e-8f9a-0b1c2d3e4f5a", "s1", " ", "a/b")]
    [True, True, False, False]
    """
    return isinstance(value, str) and _SESSION_ID.fullmatch(value) is not None


def is_scoped_session(value: str, actor: str) -> bool:
    """Whether ``value`` is a session of ``actor`` as the server scopes it (``alice/s1``,
    ``alice/``, ``alice#c1``): what ``Context.session_id`` may hold besides a session id."""
    found = _SCOPED.fullmatch(value)
    return found is not None and found.group(1) == actor


@dataclass(frozen=True, slots=True)
class Context:
    """Who runs a command and from where; reaches every handler.

    Attributes:
        actor: the actor the caller authenticated as (``local`` in-process and from the local CLI).
        session_id: the caller's session (a server connection or a CLI), which owns its query cursors:
            a session id (``SESSION_ID_PATTERN``), or one the server scoped by the actor
            (``alice/s1``, ``alice#<connection>``); ``Service.execute`` refuses anything else.
        is_admin: whether the actor is an administrator.
        trusted_local: in-process callers (the Python API, the CLI without a server) are the local
            user: path roots apply only to requests that come from elsewhere.
        token_id: the id of the bearer token the request came with (``None``: none), so a long
            job can see that its token was revoked while it ran.
    """

    actor: str = "local"
    session_id: str | None = None
    is_admin: bool = True
    trusted_local: bool = True
    token_id: str | None = None
