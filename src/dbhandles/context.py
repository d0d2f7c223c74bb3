"""Who runs a command and from where: the caller context every layer may read (a leaf module)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACTOR_PATTERN", "Context"]

#: An actor name: a letter or digit, then up to 63 letters, digits, '_', '.', '@' or '-'. The one rule
#: for actor names (tokens, grants, data spaces); valid in Python (with ``fullmatch``) and as a JSON
#: Schema pattern (the OpenAPI document declares it).
ACTOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


@dataclass(frozen=True, slots=True)
class Context:
    """Who runs a command and from where; reaches every handler.

    Attributes:
        actor: the actor the caller authenticated as (``local`` in-process and from the local CLI).
        session_id: the caller's session (a server connection or a CLI), which owns its query cursors.
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
