"""``data/open``, ``data/close``, ``data/list-handles``: the life of a handle."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from pydantic import ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from dbhandles.adapters import FileConfig, adapter_names, get_adapter_class
from dbhandles.commands.base import Call, CallerParams, Result, command, handle_target
from dbhandles.commands.grammar import HandleName, like, model_ref
from dbhandles.commands.open_undo import Created, create_database_file, undo_create
from dbhandles.context import Context
from dbhandles.dbfiles import is_side_file
from dbhandles.errors import (
    DbHandlesError,
    InvalidConfig,
    InvalidParams,
    NotADatabase,
    NotSupported,
    PathNotAllowed,
    ReadOnly,
    ServerNotAllowed,
    StorageError,
)
from dbhandles.handle_entry import HandleEntry, check_alias, shown_alias
from dbhandles.pinned import Made, Snapshot, changed, moved, remove_made, snapshot
from dbhandles.registry import ALIAS_PATTERN
from dbhandles.security import paths
from dbhandles.security.database_files import check_adapter_file, check_own_files_free
from dbhandles.security.permissions import Permissions, effective, narrow, parse_permissions
from dbhandles.security.policy import Opening
from dbhandles.security.safe_folders import refuse_changeable

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


log = logging.getLogger(__name__)

#: The adapter ``data/open`` uses when the call names none (the README's and the original's default).
DEFAULT_ADAPTER = "sqlite"


def _open_schema(schema: dict[str, Any]) -> None:
    """``adapter`` names an adapter registered now (``sqlite`` when omitted); ``config`` is that
    adapter's config model (or the same as JSON text), ``null`` only when every key of it has a
    default."""
    properties = schema["properties"]
    properties["adapter"] = {"type": "string", "enum": adapter_names(),
                             "description": properties["adapter"].get("description")}  # fmt: skip
    branches = []
    for name in adapter_names():
        model = get_adapter_class(name).config_model
        forms: list[dict[str, Any]] = [
            model_ref(model),
            {"type": "string", "format": "dbh-json-object", "contentMediaType": "application/json",
             "contentSchema": model_ref(model)},
        ]  # fmt: skip
        branch: dict[str, Any] = {
            "properties": {"adapter": {"const": name}, "config": {"anyOf": forms}},
            "required": ["adapter"],
        }
        if any(field.is_required() for field in model.model_fields.values()):
            branch["required"] = ["adapter", "config"]
        else:
            forms.append({"type": "null"})
        branches.append(branch)
        if name == DEFAULT_ADAPTER:
            # Without adapter: the default adapter's branch, adapter left out.
            default = {k: v for k, v in branch.items() if k != "required"}
            default["properties"] = {"config": branch["properties"]["config"]}
            default["not"] = {"required": ["adapter"]}
            if "config" in branch["required"]:
                default["required"] = ["config"]
            branches.append(default)
    schema["anyOf"] = branches


class OpenParams(CallerParams):
    model_config = ConfigDict(json_schema_extra=_open_schema)

    adapter: str | None = None
    """Adapter name: sqlite (the default), memory, json, postgres (or one registered by an entry point)."""
    config: dict[str, Any] | str | None = None
    """Adapter config, e.g. {"path": "/tmp/training.sqlite", "mode": "create"}."""
    alias: Annotated[str, WithJsonSchema({"type": "string", "pattern": ALIAS_PATTERN})] | None = (
        None
    )
    """Optional alias to point at the new handle (e.g. 'training'); aliases belong to the actor that points them (each actor has its own names); re-pointing one's own is allowed."""
    emit_events: bool = True
    """Publish data:* events for writes through this handle."""
    permissions: Annotated[dict[str, Any], like("Permissions")] | None = None
    """Phase 2: {read, write, delete, schema, allowedCollections, deniedCollections, owner, isolationMode, rowFilter, preset}."""
    preset: Annotated[str | None, like("Preset")] = None
    """Permission preset: GOD_MODE, READ_ONLY, TRAINING_JOB, PERSONA_KNOWLEDGE, COLLABORATIVE."""

    @model_validator(mode="after")
    def _adapter_given_or_left_out(self) -> OpenParams:
        # Left out means sqlite; an explicit null names no adapter (the document says so too).
        if self.adapter is None and "adapter" in self.model_fields_set:
            raise InvalidParams(
                f"adapter: give an adapter name, or leave adapter out for {DEFAULT_ADAPTER}",
                field="adapter",
            )
        return self

    @field_validator("alias")
    @classmethod
    def _alias_is_valid(cls, alias: str | None) -> str | None:
        # Decided with the params, before anything is resolved, claimed or created.
        return None if alias is None else check_alias(alias)


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
    adapter = params.adapter if params.adapter is not None else DEFAULT_ADAPTER
    config = params.config
    if isinstance(config, str):
        try:
            config = orjson.loads(config)
        except orjson.JSONDecodeError as exc:
            raise InvalidParams(f"config: not valid JSON: {exc}", field="config") from exc
        if not isinstance(config, dict):
            raise InvalidParams("config: expects a JSON object", field="config")
    registry = service.registry
    cls, parsed = registry.parse(adapter, config)
    if registry.processes > 1 and not cls.features.durable:
        raise NotSupported(
            f"adapter: a {cls.name} database lives in the one server process that opens it, and "
            f"this server runs {registry.processes} worker processes (jtag serve --workers): "
            "requests that reach another worker would not find it (handle_not_found). Open a file "
            "instead (adapter sqlite, config.path), or serve with --workers=1 (docs/scaling.md)",
            field="adapter",
        )
    requested = parse_permissions(params.permissions, params.preset)
    owned = (
        0
        if context.is_admin
        else sum(1 for e in registry.list_handles() if e.owner == context.actor)
    )
    # The one decision (security/policy.py): the path resolved once, the rights on the database.
    opening = service.access.check_open(cls, parsed, requested, context, owned)
    found = opening.resolved
    if found is not None:
        # Whoever asks, whichever adapter: a database's own files (a JSON database's lock file,
        # its temporary files) are never a database of their own, and a database is never
        # opened where its adapter's own file beside it is one already. SQLite's side files are
        # refused by name already, with their own words (paths.resolve, each adapter's prepare).
        if not is_side_file(found.path):
            check_adapter_file(service, found.path, found.given, "config.path")
        check_own_files_free(service, cls, found.path, found.given, "config.path")
    # Every check is made before anything is created (docs/security.md §8); should a later
    # step fail all the same, the file this call created goes with it (``open_undo.undo_create``).
    fresh = _missing_file(opening)
    made: list[Made] = []
    created: Created | None = None
    claimed = None
    folders = None
    try:
        if opening.resolved is not None:
            made, created = _prepare_file(opening, context, cls.features.side_files_by_name)
        # The folders as this open uses them (those it made included), to tell a failure
        # caused by a folder swapped from now on.
        folders = _own_folders(service, opening, context)
        claimed = service.access.claim(opening, context)
        handle = _open_handle(service, opening, params, context, adapter)
    except BaseException as exc:
        # SQLite or the file system failed because a folder on the way was swapped: a refusal.
        swapped = folders is not None and isinstance(exc, _SWAP_ERRORS) and moved(folders)
        # Refused after the checks: the file, the ownership record and the folders this call
        # made go (each only while it is still the one made: docs/security.md §8).
        if fresh is not None or created is not None:
            # ``created`` alone when the look for a missing file (``_missing_file``, by the path)
            # met another folder's file through a swapped link: the file made here goes all the same.
            undo_create(fresh, created)
        if claimed is not None:  # while it is still the record made, and nobody was granted it
            service.access.store.release_database(claimed)
        remove_made(made)
        if swapped:
            assert opening.resolved is not None
            raise changed("config.path", opening.resolved.given) from exc
        if isinstance(exc, NotADatabase) and exc.field is None and opening.resolved is not None:
            # The file config.path named is refused: the error names that param, as every other
            # refusal of the path does.
            exc.field = "config.path"
            exc.message = f"config.path: {exc.message}"
            exc.args = (exc.message,)
        raise
    finally:
        if created is not None:
            created.close()
    entry = registry.resolve(handle)
    return OpenResult(
        db_handle=handle, adapter=entry.adapter_name, alias=params.alias, config=entry.config.public(),
        owner=_stored_owner(service, entry),
        permissions=_wire(effective(opening.permissions, entry.config.readonly)),
    )  # fmt: skip


#: What SQLite or the file system answers when a folder on the way is swapped under an open
#: (``disk I/O error``, ``unable to open database file``, ``No such file or directory``, the
#: JSON adapter's ``cannot create the folder``).
_SWAP_ERRORS = (StorageError, ReadOnly, NotADatabase, InvalidConfig)


def _own_folders(service: Service, opening: Opening, context: Context) -> Snapshot | None:
    """The folders from a remote non-admin actor's space down to the database's folder as they
    are now (``pinned.snapshot``), when the database lies in that space; else ``None``."""
    found = opening.resolved
    if found is None or context.trusted_local or context.is_admin or found.place != "own":
        return None
    space = os.path.realpath(service.settings.space_root() / context.actor)
    if os.path.commonpath([space, str(found.path.parent)]) != space:
        return None
    return snapshot(space, str(found.path.parent))


def _open_handle(
    service: Service, opening: Opening, params: OpenParams, context: Context, adapter: str
) -> str:
    """Open the handle (its id), once ``data_open`` recorded the ownership ``check_open`` decided.

    Raises:
        PathNotAllowed: a link appeared on the path between the check and the open.
        DbHandlesError: the database could not be opened (a non-admin's failed memory or server
            open says only its code: the server log says why).
    """
    registry = service.registry
    if opening.claim is not None:
        # An owner may have narrowed its database (isolation): cached decisions end now.
        registry.access_generation.bump()
    effective = opening.permissions
    try:
        handle = registry.open(
            adapter, opening.config, alias=params.alias, emit_events=params.emit_events,
            owner=context.actor, permissions=effective, take_alias=context.is_admin,
        )  # fmt: skip
    except DbHandlesError as exc:
        if context.is_admin or opening.database is not None or _callers_own(exc):
            raise
        # A non-admin learns that the server could not be used, not why (which ports are open);
        # the server log says why, as the answer promises.
        log.warning("data/open of a %s database by %r failed (%s): %s", adapter, context.actor,
                    exc.code, exc.message)  # fmt: skip
        raise type(exc)(
            f"data/open: the {adapter} database could not be opened ({exc.code}); an "
            "administrator can see why in the server log"
        ) from exc
    entry = registry.resolve(handle)
    if opening.resolved is not None and (
        not isinstance(entry.config, FileConfig) or entry.config.path != str(opening.resolved.path)
    ):
        registry.close(handle)  # a link appeared between the check and the open
        raise PathNotAllowed(
            "config.path: the path changed while it was checked", field="config.path"
        )
    return handle


def _missing_file(opening: Opening) -> str | None:
    """The path of the database file a ``mode: create`` open will create (``None``: it exists,
    or nothing is created)."""
    config = opening.config
    if not isinstance(config, FileConfig) or config.mode != "create":
        return None
    path = str(opening.resolved.path) if opening.resolved is not None else config.path
    return None if os.path.lexists(path) else path


def _wire(permissions: Permissions | None) -> dict[str, Any] | None:
    return permissions.to_wire() if permissions is not None else None


def _stored_owner(service: Service, entry: HandleEntry) -> str | None:
    """The owner an answer shows for ``entry``'s database: a file database's owner as stored
    (``_dbh_databases``; ``None`` when nobody owns it), never the handle's opener unless it is
    that owner; a memory or server database is its opener's alone (docs/security.md)."""
    database = service.access.database_of(entry.config)
    if database is None:
        return entry.owner
    record = service.access.store.get_database(database)
    return record.owner if record is not None else None


def _callers_own(error: DbHandlesError) -> bool:
    """Whether a failed open's error is about the call's own params (a bad alias) or is a
    refusal in dbhandles' own words, which tell nothing of the server and are shown as they are;
    a config error may quote the server."""
    if isinstance(error, ServerNotAllowed):
        return True  # its words are dbhandles' own (a server that did not ask for the password)
    return isinstance(error, InvalidParams) and not isinstance(error, InvalidConfig)


def _prepare_file(
    opening: Opening, context: Context, side_files: bool
) -> tuple[list[Made], Created | None]:
    """For a remote caller, create a missing database file private (0600) and without following a
    link (``O_EXCL | O_NOFOLLOW``) before the adapter sees it: an adapter takes an empty file as an
    empty database, and SQLite gives its side files the mode of the database. The local user's
    files are created by the adapter, as before. Returns the folders it made (``ensure_parent``)
    and the file it created, its folder still pinned for ``open_undo.undo_create``.

    For an adapter that opens side files by name (``side_files``), a remote non-admin actor's path
    is checked again once every folder exists (``safe_folders.refuse_changeable``): the check made
    before stopped at the first missing folder, which another OS user may have made meanwhile.

    Raises:
        PathNotAllowed: a folder on the way is now another OS user's or writable by others.
    """
    found = opening.resolved
    config = opening.config
    if (
        found is None
        or context.trusted_local
        or config.mode != "create"
        or not isinstance(config, FileConfig)
    ):
        return [], None
    config.check_path_length(found.path)  # before any folder is made
    made = paths.ensure_parent(found, "config.path")
    try:
        if side_files and not context.is_admin:  # every folder exists now: all are walked
            refuse_changeable(found.path, found.given)
        if not found.path.parent.is_dir():
            return made, None  # the adapter says what is missing
        return made, create_database_file(str(found.path), found.given, paths.PRIVATE_MODE)
    except BaseException:
        remove_made(made)
        raise


class CloseParams(CallerParams):
    db_handle: HandleName
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
    # The handle the caller's name reaches as it reaches it everywhere (``handle_target``: its own
    # alias first, another actor's alias unknown), closed by id: ``registry.close`` given the
    # name would resolve an alias outside the caller's names (another actor's of that name).
    # The registry closes the handle's query cursors with it (``QueryCursors.close_handle``).
    assert call.target is not None
    return CloseResult(db_handle=service.registry.close(call.target.handle))


class ListHandlesParams(CallerParams):
    pass


class HandlesResult(Result):
    handles: list[dict[str, Any]] = Field(default_factory=list)


def _stored_modes(service: Service, entries: list[HandleEntry]) -> list[dict[str, Any]]:
    """Each entry's ``info()``, its ``permissions.isolationMode`` and ``owner`` the file database's
    stored mode and owner (an owner may have changed the mode since the handle was opened), not
    the mode it was opened with nor the handle's opener."""
    infos = []
    for entry in entries:
        info = entry.info()
        database = service.access.database_of(entry.config)
        record = service.access.store.get_database(database) if database is not None else None
        if record is not None:
            info["permissions"] = {**(info["permissions"] or {}), "isolationMode": record.isolation}
        if database is not None:  # the stored owner, not the handle's opener (``_stored_owner``)
            info["owner"] = record.owner if record is not None else None
        infos.append(info)
    return infos


@command(
    "data/list-handles",
    params=ListHandlesParams,
    result=HandlesResult,
    operation="read",
    summary="List open handles, 'default' first (a non-admin actor sees 'default' and its own).",
    example="jtag data/list-handles",
)
def data_list_handles(service: Service, params: ListHandlesParams, call: Call) -> HandlesResult:
    context = call.context
    entries = service.registry.list_handles()
    if not context.is_admin:
        # An actor sees the shared default and its own handles, never other actors' (their paths,
        # aliases and permissions are theirs).
        entries = [e for e in entries if e.is_default or e.owner == context.actor]
        for entry in entries:  # its aliases by the names it gives them (handle_entry.alias_key)
            entry.aliases = [shown_alias(a, context.actor) for a in entry.aliases]
        infos = _stored_modes(service, entries)
        for entry, info in zip(entries, infos, strict=True):
            if info["isDefault"]:
                # The default database's file lies in the home: its path is not the actor's to know.
                info["config"] = {k: v for k, v in info["config"].items() if k != "path"}
                # What the actor may really do there: the handle's permissions within the
                # default's ceiling for non-admin actors (DBHANDLES_DEFAULT_ACCESS), never null
                # while that ceiling refuses something.
                ceiling = service.access.handle_ceiling(context, entry)
                rights = effective(narrow(entry.permissions, ceiling), entry.config.readonly)
                info["permissions"] = _wire(rights)
        return HandlesResult(handles=infos)
    return HandlesResult(handles=_stored_modes(service, entries))
