"""The one choke point: who may open what, and whether a command may run through a handle.

``Service.execute`` calls ``authorize`` before every handler; ``data/open`` calls ``check_open``.
Every command declares its operation in the command table, so a command added later cannot skip the
check (a test builds the permission matrix from the table).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from dbhandles.adapters import Adapter, AdapterConfig, FileConfig
from dbhandles.clock import iso_now
from dbhandles.context import Context
from dbhandles.dbfiles import open_plain, replace_file
from dbhandles.errors import (
    AccessDenied,
    DbHandlesError,
    PathNotAllowed,
    PermissionDenied,
    QuotaExceeded,
)
from dbhandles.security.permissions import PRESETS, Permissions, narrow

if TYPE_CHECKING:
    from pydantic import BaseModel

    from dbhandles.registry import HandleEntry
    from dbhandles.settings import Settings

__all__ = [
    "Authorizable",
    "authorize",
    "batch_operations",
    "check_open",
    "operations_of",
    "owner_file",
    "read_owner",
    "write_owner",
]


class Authorizable(Protocol):
    """What the policy needs to know of a command (``commands.base.Command`` is one): security sits
    below the command layer and never imports it."""

    @property
    def name(self) -> str: ...

    @property
    def operation(self) -> str: ...

    @property
    def admin_only(self) -> bool: ...


def owner_file(path: str) -> Path:
    """The ``.owner`` sidecar of a file database: ``<file>.owner``."""
    return Path(f"{path}.owner")


def read_owner(path: str) -> dict[str, Any] | None:
    """The owner recorded next to the database at ``path``, if a readable record is there.

    Read through ``dbfiles.open_plain``: a ``.owner`` name that is really a database (or a link to
    one) is never opened with plain I/O, which would release this process's locks on it.
    """
    try:
        with open_plain(owner_file(path), "rb", "config.path") as file:
            data = orjson.loads(file.read())
    except (OSError, orjson.JSONDecodeError, DbHandlesError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("owner"), str) else None


def write_owner(path: str, owner: str, isolation: str) -> None:
    """Record the owner next to the database so it survives re-opening by path (owner-only file)."""
    record = orjson.dumps({"owner": owner, "isolationMode": isolation, "createdAt": iso_now()})
    # A new file renamed into place: the old one (or a planted link) is replaced, never opened.
    replace_file(owner_file(path), record, "config.path", 0o600)


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def check_open(
    cls: type[Adapter],
    config: AdapterConfig,
    requested: Permissions | None,
    context: Context,
    settings: Settings,
    handles_owned: int,
) -> tuple[Permissions | None, dict[str, Any] | None]:
    """Decide whether ``context`` may open this database; return the handle's effective permissions
    and the recorded ownership (if any).

    Raises:
        PathNotAllowed: a file outside the allowed roots (remote actors only; ``..`` and links resolved).
        AccessDenied: the database is owned by another actor with ``strict`` isolation.
        QuotaExceeded: the actor holds too many handles.
        PermissionDenied: the actor tries to record someone else as owner.
    """
    path = config.path if cls.features.file_based and isinstance(config, FileConfig) else None
    if path is not None and not context.trusted_local:
        real = Path(os.path.realpath(os.path.expanduser(path)))
        roots = settings.roots()
        if not _under(real, roots):
            raise PathNotAllowed(
                f"config.path: {real} is outside the allowed folders ({', '.join(map(str, roots))}); "
                "an administrator can add folders with DBHANDLES_ALLOWED_ROOTS",
                field="config.path",
            )
    if not context.is_admin and handles_owned >= settings.max_handles_per_actor:
        raise QuotaExceeded(
            f"actor {context.actor!r} already holds {handles_owned} open handles (the limit is "
            f"{settings.max_handles_per_actor}); close some with data/close"
        )
    if (
        requested is not None
        and requested.owner not in (None, context.actor)
        and not context.is_admin
    ):
        raise PermissionDenied("permissions.owner: only an administrator can record another owner")
    recorded = None
    if path is not None:
        real_path = os.path.realpath(os.path.expanduser(path))
        recorded = read_owner(real_path)
    ceiling: Permissions | None = None
    if recorded is not None and recorded["owner"] != context.actor and not context.is_admin:
        isolation = recorded.get("isolationMode", "none")
        if isolation == "strict":
            raise AccessDenied(
                f"Access denied: database owned by {recorded['owner']!r}, requested by {context.actor!r}"
            )
        if isolation == "soft":
            ceiling = PRESETS["READ_ONLY"].model_copy(update={"isolation_mode": "soft"})
    return narrow(requested, ceiling), recorded


def _field(params: BaseModel, name: str) -> Any:
    # Looking a missing attribute up on a pydantic model is slow (its __getattr__ raises inside);
    # checking the declared fields first keeps this off the hot path.
    return getattr(params, name) if name in type(params).model_fields else None


def batch_operations(params: BaseModel) -> Any:
    """The operations of a ``data/batch`` call (``None`` for every other command)."""
    return _field(params, "operations")


def operations_of(command: Authorizable, params: BaseModel) -> set[str]:
    """What a call does: the command's declared operation, widened by what a batch contains."""
    ops: set[str] = {command.operation}
    for op in batch_operations(params) or ():
        ops.add("delete" if op.op == "delete" else "write")
    return ops


def collections_of(params: BaseModel) -> list[str]:
    collection = _field(params, "collection")
    names = [collection] if isinstance(collection, str) else []
    names += [str(op.collection) for op in batch_operations(params) or ()]
    return names


def authorize(
    command: Authorizable, params: BaseModel, context: Context, entry: HandleEntry | None
) -> None:
    """Refuse the call unless the actor and the handle's permissions allow every operation in it.

    Raises:
        PermissionDenied, AccessDenied, Forbidden (admin-only commands).
    """
    from dbhandles.errors import Forbidden

    ops = operations_of(command, params)
    if command.admin_only and not context.is_admin:
        raise Forbidden(f"{command.name} is for administrators only")
    if entry is None:
        return
    data_ops = ops & {"read", "write", "delete", "schema"}
    foreign = entry.owner is not None and entry.owner != context.actor and not context.is_admin
    permissions = entry.permissions
    if foreign and permissions is not None and permissions.isolation_mode == "strict":
        raise AccessDenied(
            f"Access denied: handle owned by {entry.owner!r}, requested by {context.actor!r}"
        )
    if (
        foreign
        and permissions is not None
        and permissions.isolation_mode == "soft"
        and data_ops - {"read"}
    ):
        raise AccessDenied(
            f"Access denied: handle owned by {entry.owner!r} is read-only for {context.actor!r} (soft isolation)"
        )
    if command.name == "data/close" and foreign:
        raise AccessDenied(
            f"Access denied: only {entry.owner!r} (or an administrator) can close this handle"
        )
    if permissions is None:
        return
    for op in sorted(data_ops):
        if not permissions.allows(op):
            raise PermissionDenied(f"Permission denied: handle does not have {op} access")
    for name in collections_of(params):
        refusal = permissions.collection_refusal(name)
        if refusal is not None:
            raise PermissionDenied(f"Permission denied: {refusal}")
    if entry.row_filter is not None and "schema" in data_ops and command.name != "data/schema":
        raise PermissionDenied(
            f"Permission denied: {command.name} would reach rows outside this handle's row filter"
        )
