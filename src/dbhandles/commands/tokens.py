"""``token/create``, ``token/list``, ``token/revoke``: bearer tokens for actors (administrators only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import WithJsonSchema

from dbhandles.commands.base import Call, Params, Result, command
from dbhandles.commands.grammar import ActorName
from dbhandles.security.tokens import DURATION_PATTERN
from dbhandles.store import TokenRow

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["TokenCreateParams", "TokenRevokeParams"]


def _public(row: TokenRow) -> dict[str, Any]:
    return {
        "tokenId": row.token_id,
        "actor": row.actor,
        "isAdmin": row.is_admin,
        "createdAt": row.created_at,
        "expiresAt": row.expires_at,
        "revokedAt": row.revoked_at,
    }


class TokenCreateParams(Params):
    actor: ActorName
    """The actor the token stands for (e.g. helper-ai)."""
    expires: (
        Annotated[str, WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN})] | None
    ) = None
    """Lifetime such as 30d, 12h or 15m (more than 0); omitted: never expires."""
    admin: bool = False
    """Give the actor administrator rights (audit log, tokens, every handle)."""


class TokenCreateResult(Result):
    token: str
    token_id: str
    actor: str
    is_admin: bool
    expires_at: str | None = None


@command(
    "token/create",
    params=TokenCreateParams,
    result=TokenCreateResult,
    operation="admin",
    admin_only=True,
    summary="Create a bearer token for an actor; the token is shown once, only its hash is kept.",
    example="jtag token create --actor=helper-ai --expires=30d",
)
def token_create(service: Service, params: TokenCreateParams, call: Call) -> TokenCreateResult:
    token, row = service.tokens.create(params.actor, expires=params.expires, admin=params.admin)
    return TokenCreateResult(
        token=token,
        token_id=row.token_id,
        actor=row.actor,
        is_admin=row.is_admin,
        expires_at=row.expires_at,
    )


class TokenListParams(Params):
    pass


class TokenListResult(Result):
    tokens: list[dict[str, Any]]


@command(
    "token/list",
    params=TokenListParams,
    result=TokenListResult,
    operation="admin",
    admin_only=True,
    summary="List tokens (ids, actors, expiry, revocation; never the secrets).",
    example="jtag token list --format=table",
)
def token_list(service: Service, params: TokenListParams, call: Call) -> TokenListResult:
    return TokenListResult(tokens=[_public(r) for r in service.tokens.list()])


class TokenRevokeParams(Params):
    token_id: str
    """The tokenId (from token list) or the token itself."""


class TokenRevokeResult(Result):
    token_id: str
    actor: str
    revoked: bool = True


@command(
    "token/revoke",
    params=TokenRevokeParams,
    result=TokenRevokeResult,
    operation="admin",
    admin_only=True,
    summary="Revoke a token: requests with it get 401 from then on.",
    example="jtag token revoke --tokenId=<id>",
    positional="token_id",
)
def token_revoke(service: Service, params: TokenRevokeParams, call: Call) -> TokenRevokeResult:
    row = service.tokens.revoke(params.token_id)
    service.registry.access_generation.bump()  # open WebSockets re-check their token at once
    return TokenRevokeResult(token_id=row.token_id, actor=row.actor)
