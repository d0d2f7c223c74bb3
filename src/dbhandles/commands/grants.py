"""``data/grant``, ``data/revoke``, ``data/list-grants``: an owner shares a database with another actor.

Rights attach to the database (a file, by its real path), not to a handle: a grant is the ceiling of
every handle the grantee opens on it and of every command it runs through another actor's handle on
it. Grants live in the handle store. A change (a new grant, a narrower one, a revocation) bumps the
access generation (``security/generation.py``: no cached decision, such as which events a WebSocket
receives, outlives it) and closes the grantee's open handles on that database, so none keeps rights
it no longer has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from dbhandles.adapters import FileConfig
from dbhandles.commands.base import (
    Call,
    CallerParams,
    DataParams,
    DataResult,
    Result,
    command,
)
from dbhandles.commands.grammar import ActorName, HandleName, like
from dbhandles.errors import AccessDenied, InvalidParams
from dbhandles.security.names import check_actor_name
from dbhandles.security.permissions import narrow, parse_permissions
from dbhandles.security.policy import GRANT_ACCESS
from dbhandles.store import TokenRow
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["GrantParams", "GrantResult", "ListGrantsParams", "RevokeParams"]


def _grantee(
    service: Service, name: str, *, database: str | None = None, admin: bool = True
) -> str:
    """``name`` if it can be given a grant (``data/grant``), or, with ``database``, named to end or
    list grants: the one rule of actor names (``names.check_actor_name``, what ``token/create``
    checks): no reserved name, no name that differs only in case from a reserved one or from a
    token holder's, no administrator's name (administrators are not limited by grants).

    A name a stored grant holds exactly (on ``database``, or anywhere for ``database`` ``"*"``)
    is always accepted there, so a grant stored before this rule can still be revoked and listed.
    A non-admin (``admin`` false) naming a grant to end or list is answered by the lookup alone
    (nothing revoked, nothing listed) for every name no grant there holds: the rule's reasons
    (an administrator's name, another spelling of a token holder's) would tell it which names
    exist on this server (docs/security.md §6).

    Raises:
        InvalidParams: the name breaks the rule (field ``actor``).
    """
    if database is not None:
        scope = None if database == "*" else database
        if not admin or service.registry.store.list_grants(scope, name):
            return name
    _check_grantee(name, service.tokens.list(), [], admin=admin)
    return name


#: What a non-admin's grant to a name no plain token holds is told: the same for a name nobody
#: holds, a spelling in another case of one that is held, a reserved or an administrator's name,
#: so the answer says only what a successful grant would (that exactly this name holds a token).
_NO_SUCH_ACTOR = (
    "no actor of this server holds a token by exactly this name; a grant names an actor that "
    "has one (ask an administrator to create it, then grant again)"
)


def _check_grantee(
    name: str, tokens: list[TokenRow], grantees: list[str], *, admin: bool = True
) -> None:
    """The rule ``_grantee`` applies, given every stored token and the names stored grants hold
    (``put_grant`` runs it again in the store's write transaction, so a token or grant for a
    second spelling of the name cannot slip in between). A non-admin (``admin`` false) may name
    only an actor that holds (or held) a plain token, so it cannot reserve a name, in any case,
    before the administrator gives it to someone (docs/security.md §6); an administrator may
    grant to a name before its first token.

    Raises:
        InvalidParams: a non-admin naming a name no plain token holds (``_NO_SUCH_ACTOR``, one
            answer whatever the reason); a reserved name, a name that differs only in case from a
            token holder's or another grantee's, or an administrator's name (field ``actor``).
    """
    if not admin and not any(t.actor == name and not t.is_admin for t in tokens):
        raise InvalidParams(f"actor: {json_text(name, 80)}: {_NO_SUCH_ACTOR}", field="actor")
    check_actor_name(name, holders={t.actor for t in tokens} | set(grantees))
    if any(t.actor == name and t.is_admin for t in tokens):
        raise InvalidParams(
            f"actor: {json_text(name, 80)} is an administrator's name; administrators are not limited by "
            "owners or grants, so a grant would give it nothing: grant to a non-admin actor",
            field="actor",
        )


def _close_handles_of(service: Service, actor: str, database: str) -> int:
    """Close ``actor``'s handles on ``database`` (their rights changed); how many."""
    closed = 0
    for entry in service.registry.list_handles():
        if (
            entry.owner == actor
            and not entry.is_default
            and service.access.database_of(entry.config) == database
        ):
            service.registry.close(entry.handle)
            closed += 1
    return closed


class GrantParams(DataParams):
    actor: ActorName
    """The actor to share the database with."""
    access: Literal["read", "write", "full"] = "read"
    """read; write (read, create, update, delete: not truncate, clear or vacuum); full."""
    permissions: Annotated[dict[str, Any], like("GrantPermissions")] | None = None
    """Narrower still: {write, delete, schema, allowedCollections, deniedCollections, rowFilter}."""


class GrantResult(DataResult):
    actor: str
    path: str
    permissions: dict[str, Any]
    handles_closed: int


@command(
    "data/grant",
    params=GrantParams,
    result=GrantResult,
    operation="admin",
    summary="Share the database behind a handle with another actor (its owner or an administrator).",
    example='jtag data/grant --dbHandle="<UUID>" --actor=bob --access=read',
)
def data_grant(service: Service, params: GrantParams, call: Call) -> GrantResult:
    assert call.target is not None
    context = call.context
    database = service.access.may_share(context, call.target)
    actor = _grantee(service, params.actor, admin=context.is_admin or context.trusted_local)
    if actor == context.actor:
        raise InvalidParams("actor: you already have your own rights", field="actor")
    extra = parse_permissions(params.permissions)
    if extra is not None and (extra.owner is not None or extra.isolation_mode != "none"):
        raise InvalidParams(
            "permissions: a grant says what the actor may do; owner and isolationMode belong to "
            "the database (data/open)",
            field="permissions",
        )
    permissions = narrow(extra, GRANT_ACCESS[params.access])
    assert permissions is not None
    service.access.put_grant(
        database, actor, permissions, context,
        check=lambda tokens, grantees: _check_grantee(
            actor, tokens, grantees, admin=context.is_admin or context.trusted_local
        ),
    )  # fmt: skip
    service.registry.access_generation.bump()  # a narrower grant ends cached decisions at once
    closed = _close_handles_of(service, actor, database)
    assert isinstance(call.target.config, FileConfig)
    return GrantResult(db_handle=call.target.handle, actor=actor, path=call.target.config.path,
                       permissions=permissions.to_wire(), handles_closed=closed)  # fmt: skip


class RevokeParams(DataParams):
    actor: ActorName
    """The actor whose grant on the database behind dbHandle ends."""


class RevokeResult(DataResult):
    actor: str
    revoked: bool
    handles_closed: int


@command(
    "data/revoke",
    params=RevokeParams,
    result=RevokeResult,
    operation="admin",
    summary="End another actor's grant on the database behind a handle; its handles on it close.",
    example='jtag data/revoke --dbHandle="<UUID>" --actor=bob',
)
def data_revoke(service: Service, params: RevokeParams, call: Call) -> RevokeResult:
    assert call.target is not None
    database = service.access.may_share(call.context, call.target)
    context = call.context
    admin = context.is_admin or context.trusted_local
    actor = _grantee(service, params.actor, database=database, admin=admin)
    revoked = service.registry.store.delete_grant(database, actor)
    service.registry.access_generation.bump()  # no cached decision outlives the grant
    # A non-admin ends only what it granted: naming someone it never granted to (an
    # administrator with a handle here) closes nothing, and the count tells nothing of them.
    closed = _close_handles_of(service, actor, database) if revoked or admin else 0
    return RevokeResult(db_handle=call.target.handle, actor=actor, revoked=revoked,
                        handles_closed=closed)  # fmt: skip


class ListGrantsParams(CallerParams):
    db_handle: HandleName | None = None
    """Only the grants on the database behind this handle (required for non-admin actors)."""
    actor: str | None = None
    """Only the grants of this actor."""
    limit: int = Field(default=1000, ge=1, le=10_000)
    """At most this many grants."""


class ListGrantsResult(Result):
    grants: list[dict[str, Any]]


@command(
    "data/list-grants",
    params=ListGrantsParams,
    result=ListGrantsResult,
    operation="admin",
    summary="List grants: on one database (its owner), or every grant (administrators).",
    example='jtag data/list-grants --dbHandle="<UUID>"',
)
def data_list_grants(service: Service, params: ListGrantsParams, call: Call) -> ListGrantsResult:
    context = call.context
    database: str | None = None
    if params.db_handle is not None:
        entry = service.registry.resolve_for(params.db_handle, context.actor, context.is_admin)
        database = service.access.may_share(context, entry)
    elif not context.is_admin:
        raise AccessDenied("Access denied: name the database (dbHandle) whose grants to list")
    if params.actor is not None:
        _grantee(service, params.actor, database=database or "*",
                 admin=context.is_admin or context.trusted_local)  # fmt: skip
    rows = service.registry.store.list_grants(database, params.actor)[: params.limit]
    return ListGrantsResult(
        grants=[
            {"path": r.db_key.removeprefix("file:"), "actor": r.actor, "permissions": r.permissions,
             "grantedBy": r.granted_by, "grantedAt": r.granted_at}
            for r in rows
        ]
    )  # fmt: skip
