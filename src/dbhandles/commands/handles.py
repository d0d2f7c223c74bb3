"""``data/open``, ``data/close``, ``data/list-handles``: the life of a handle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from pydantic import Field

from dbhandles.adapters import FileConfig, adapter_names
from dbhandles.commands.base import Call, Params, Result, command, handle_target
from dbhandles.errors import InvalidParams
from dbhandles.security.permissions import parse_permissions
from dbhandles.security.policy import check_open, write_owner

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = [
    "CloseParams",
    "CloseResult",
    "HandlesResult",
    "ListHandlesParams",
    "OpenParams",
    "OpenResult",
]


class OpenParams(Params):
    adapter: str | None = None
    """Adapter name: sqlite, memory, json, postgres (or one registered by an entry point)."""
    config: dict[str, Any] | str | None = None
    """Adapter config, e.g. {"path": "/tmp/training.sqlite", "mode": "create"}."""
    alias: str | None = None
    """Optional alias to point at the new handle (e.g. 'training'); re-pointing is allowed."""
    emit_events: bool = True
    """Publish data:* events for writes through this handle."""
    permissions: dict[str, Any] | None = None
    """Phase 2: {read, write, delete, schema, allowedCollections, deniedCollections, owner, isolationMode, rowFilter, preset}."""
    preset: str | None = None
    """Permission preset: GOD_MODE, READ_ONLY, TRAINING_JOB, PERSONA_KNOWLEDGE, COLLABORATIVE."""


class OpenResult(Result):
    db_handle: str
    adapter: str
    alias: str | None = None
    config: dict[str, Any]
    owner: str | None = None
    permissions: dict[str, Any] | None = None


@command(
    "data/open",
    params=OpenParams,
    result=OpenResult,
    operation="admin",
    summary="Open a database and return a new handle for it.",
    example="""jtag data/open --adapter=sqlite --config='{"path":"/tmp/training.sqlite","mode":"create"}'""",
)
def data_open(service: Service, params: OpenParams, call: Call) -> OpenResult:
    context = call.context
    if params.adapter is None:
        raise InvalidParams(
            f"adapter: missing required parameter; valid adapters: {', '.join(adapter_names())}. "
            "Most commands use the default database automatically: you probably want data/list or "
            "data/read instead of data/open",
            field="adapter",
        )
    config = params.config
    if isinstance(config, str):
        try:
            config = orjson.loads(config)
        except orjson.JSONDecodeError as exc:
            raise InvalidParams(f"config: not valid JSON: {exc}", field="config") from exc
        if not isinstance(config, dict):
            raise InvalidParams("config: expects a JSON object", field="config")
    registry = service.registry
    cls, parsed = registry.parse(params.adapter, config)
    requested = parse_permissions(params.permissions, params.preset)
    owned = (
        0
        if context.is_admin
        else sum(1 for e in registry.list_handles() if e.owner == context.actor)
    )
    effective, recorded = check_open(cls, parsed, requested, context, service.settings, owned)
    handle = registry.open(
        params.adapter, parsed, alias=params.alias, emit_events=params.emit_events,
        owner=context.actor, permissions=effective,
    )  # fmt: skip
    entry = registry.resolve(handle)
    opened = entry.config
    if (
        effective is not None
        and effective.isolation_mode != "none"
        and recorded is None
        and cls.features.file_based
        and isinstance(opened, FileConfig)
        and not opened.readonly
    ):
        write_owner(opened.path, effective.owner or context.actor, effective.isolation_mode)
    return OpenResult(
        db_handle=handle, adapter=entry.adapter_name, alias=params.alias, config=entry.config.public(),
        owner=entry.owner, permissions=effective.to_wire() if effective is not None else None,
    )  # fmt: skip


class CloseParams(Params):
    db_handle: str
    """The handle (or alias) to close; 'default' cannot be closed."""


class CloseResult(Result):
    db_handle: str
    closed: bool = True


@command(
    "data/close",
    params=CloseParams,
    result=CloseResult,
    target=handle_target,
    operation="admin",
    summary="Close a handle; its aliases and query cursors go with it. 'default' cannot be closed.",
    example='jtag data/close --dbHandle="<UUID>"',
)
def data_close(service: Service, params: CloseParams, call: Call) -> CloseResult:
    # The registry closes the handle's query cursors with it (``QueryCursors.close_handle``).
    return CloseResult(db_handle=service.registry.close(params.db_handle))


class ListHandlesParams(Params):
    pass


class HandlesResult(Result):
    handles: list[dict[str, Any]] = Field(default_factory=list)


@command(
    "data/list-handles",
    params=ListHandlesParams,
    result=HandlesResult,
    operation="read",
    summary="List every open handle, 'default' first.",
    example="jtag data/list-handles",
)
def data_list_handles(service: Service, params: ListHandlesParams, call: Call) -> HandlesResult:
    context = call.context
    entries = service.registry.list_handles()
    if not context.is_admin:
        # Other actors' strictly isolated handles are not even listed.
        entries = [
            e for e in entries
            if e.is_default or e.owner == context.actor
            or e.permissions is None or e.permissions.isolation_mode != "strict"
        ]  # fmt: skip
    return HandlesResult(handles=[e.info() for e in entries])
