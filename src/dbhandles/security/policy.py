"""The one choke point: who may open what, and whether a command may run through a handle.

``Service.execute`` calls ``authorize`` before every handler; ``data/open`` calls
``AccessPolicy.check_open``. Every command declares its operation in the command table, so a command
added later cannot skip the check (a test builds the permission matrix from the table).

Rights attach to databases, not to handles. A file database's owner and the grants on it live in the
handle store (``_dbh_databases``, ``_dbh_grants``), never in a file a data command could write. For a
remote non-admin actor (``AccessPolicy.database_rights``):

- a database it owns, or one in its own data space nobody else owns: everything;
- another actor's database: what that actor (or an administrator) granted it with ``data/grant``;
  else read-only when the owner chose ``soft`` isolation; else nothing (``access_denied``);
- a database under a read root (``DBHANDLES_READ_ROOTS``) that nobody shared: read-only;
- the shared ``default`` database: ``DBHANDLES_DEFAULT_ACCESS`` (by default read and write, never
  delete, truncate, clear or vacuum);
- a database server: only one listed in ``DBHANDLES_POSTGRES_SERVERS``.

The same rights cap a handle it opens (opening again never widens them) and every command it runs
through another actor's handle. Administrators and the local user are not limited by them."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

from dbhandles.adapters import Adapter, AdapterConfig, FileConfig
from dbhandles.clock import iso_now
from dbhandles.context import Context
from dbhandles.errors import (
    AccessDenied,
    Forbidden,
    HandleNotFound,
    PathNotAllowed,
    PermissionDenied,
    QuotaExceeded,
    ServerNotAllowed,
)
from dbhandles.security import paths
from dbhandles.security.borrowed import BorrowedRights
from dbhandles.security.file_names import FileNames
from dbhandles.security.names import check_actor_name, check_memory_name
from dbhandles.security.permissions import (
    DEFAULT_CEILINGS,
    GRANT_ACCESS,
    PRESETS,
    Permissions,
    ResolvedName,
    narrow,
)
from dbhandles.security.safe_folders import refuse_changeable
from dbhandles.security.write_checks import (
    check_cascades,
    check_row_filter_fields,
    check_row_filter_view,
)
from dbhandles.store import DatabaseRow, GrantRow, HandleStore, NameCheck, file_database
from dbhandles.values import json_text

#: ``(entry, names, cascades) -> {name: what it reaches}`` for the names of one call
#: (``AccessPolicy``; ``cascades``: with what deletes and key updates reach through foreign keys).
NameResolver = Callable[["HandleEntry", Sequence[str], bool], dict[str, ResolvedName]]

if TYPE_CHECKING:
    from pydantic import BaseModel

    from dbhandles.adapters.memory import MemoryConfig
    from dbhandles.registry import HandleEntry
    from dbhandles.settings import Settings

__all__ = [
    "DEFAULT_CEILINGS",
    "GRANT_ACCESS",
    "AccessPolicy",
    "Authorizable",
    "NameResolver",
    "Opening",
    "authorize",
    "batch_operations",
    "operations_of",
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


@dataclass(frozen=True, slots=True)
class Opening:
    """What ``check_open`` decided: the config to open (its path resolved once), the handle's
    permissions, and the ownership to record before the handle exists."""

    config: AdapterConfig
    permissions: Permissions | None
    #: ``_dbh_databases`` key of a file database (``None`` for the others).
    database: str | None = None
    #: The file's path as resolved (once) by the path policy, and where it lies for the caller.
    resolved: paths.Resolved | None = None
    #: Ownership to record: ``(owner, isolation)``; ``None`` to record nothing.
    claim: tuple[str, str] | None = None


def _is_memory_config(config: AdapterConfig) -> TypeGuard[MemoryConfig]:
    """``isinstance(config, MemoryConfig)``; no config is one before ``adapters/memory.py`` is
    imported, so a process that opens only SQLite never imports it (~1.5 ms of a CLI start)."""
    module = sys.modules.get("dbhandles.adapters.memory")
    return module is not None and isinstance(config, module.MemoryConfig)


def _not_shared() -> PathNotAllowed:
    return PathNotAllowed(f"config.path: {paths.NOT_SHARED}", field="config.path")


def _denied(owner: str, actor: str) -> AccessDenied:
    return AccessDenied(
        f"Access denied: database owned by {json_text(owner, 80)}, requested by {json_text(actor, 80)}; its owner (or an "
        "administrator) can share it with data/grant"
    )


def _owner_refused(stored: str | None) -> PermissionDenied:
    """A non-admin's ``permissions.owner`` naming an owner that is not the one stored (or recorded
    by this open): only an administrator records an owner it names."""
    now = (
        f"this database's owner is {json_text(stored, 80)}: name that owner or leave permissions.owner out"
        if stored is not None
        else "nobody owns this database and this open makes nobody its owner (only a database "
        "you create or first open in your own data space becomes yours): leave it out"
    )
    return PermissionDenied(
        f"permissions.owner: only an administrator can record an owner it names; {now}",
        field="permissions.owner",
    )


class AccessPolicy:
    """Rights of actors on databases, from the settings and the handle store's owners and grants."""

    def __init__(self, settings: Settings, store: HandleStore) -> None:
        self.settings = settings
        self.store = store
        #: What names reach in a handle's database (set by the service, which holds the
        #: adapters); ``None``: names are compared as asked for, ignoring case.
        self.resolve_names: NameResolver | None = None
        #: Its own handles on others' databases, re-decided on every use (``security/borrowed.py``).
        self.borrowed = BorrowedRights(self)
        #: The names database files are used by (``security/file_names.py``).
        self.names = FileNames(store)

    # -- databases ---------------------------------------------------------------------------------

    @staticmethod
    def database_of(config: AdapterConfig) -> str | None:
        """The ``_dbh_databases`` key of an opened (prepared) config: file databases only."""
        return file_database(config.path) if isinstance(config, FileConfig) else None

    def database_rights(
        self, context: Context, database: str, place: paths.Place, *, readonly: bool
    ) -> tuple[Permissions | None, DatabaseRow | None]:
        """The ceiling of a non-admin actor on a file database (``None``: no limit) and its record.

        Raises:
            PathNotAllowed: a path outside the actor's space and read roots where no database was
                shared with it (one answer, ``_not_shared``, whether a file is there, and whoever
                owns it); a read root opened for writing.
            AccessDenied: another actor's database in a read root.
        """
        record = self.store.get_database(database)
        if record is not None and record.owner == context.actor:
            return None, record
        if record is None:
            if place == "own":
                return None, None
            if place == "read":
                if not readonly:
                    raise PathNotAllowed(
                        "config.path: the folders of DBHANDLES_READ_ROOTS are for reading: open "
                        'the database with "mode": "readonly"',
                        field="config.path",
                    )
                return PRESETS["READ_ONLY"], None
            raise _not_shared()
        grant = self.store.get_grant(database, context.actor)
        if grant is not None:
            return Permissions.model_validate(grant.permissions), record
        if record.isolation == "soft":
            return PRESETS["READ_ONLY"].model_copy(update={"isolation_mode": "soft"}), record
        if place == "read" and readonly and record.isolation == "none":
            return PRESETS["READ_ONLY"], record
        if place != "read":
            raise _not_shared()
        raise _denied(record.owner, context.actor)

    def check_open(
        self,
        cls: type[Adapter],
        config: AdapterConfig,
        requested: Permissions | None,
        context: Context,
        handles_owned: int,
    ) -> Opening:
        """Decide whether ``context`` may open this database, and how.

        Raises:
            PathNotAllowed: a file the caller may not reach (see ``security.paths``).
            AccessDenied: another actor's database that was not shared with the caller.
            ServerNotAllowed: a database server a non-admin may not reach.
            QuotaExceeded: the actor holds too many handles.
            PermissionDenied: a non-admin names in ``permissions.owner`` an owner other than the
                one stored or recorded by this open (field ``permissions.owner``).
        """
        settings = self.settings
        if not context.is_admin and handles_owned >= settings.max_handles_per_actor:
            raise QuotaExceeded(
                f"actor {json_text(context.actor, 80)} already holds {handles_owned} open handles (the limit is "
                f"{settings.max_handles_per_actor}); close some with data/close"
            )
        isolation = requested.isolation_mode if requested is not None else "none"
        named = requested.owner if requested is not None else None
        if named is not None and context.is_admin:
            # The owner an administrator records is an actor: the one rule of names (a reserved
            # name spelled exactly is an administrator's and may own; ``Bob`` next to ``bob`` not).
            holders = {t.actor for t in self.store.list_tokens()}
            check_actor_name(named, "permissions.owner", reserved=True, holders=holders)
        # Only an administrator records an owner it names; a non-admin's database is its own.
        owner = (named if context.is_admin else None) or context.actor
        if cls.features.file_based and isinstance(config, FileConfig):
            found = paths.resolve(
                settings, context, config.path, "config.path", "database",
                registered=self._registered,
            )  # fmt: skip
            config = config.model_copy(update={"path": str(found.path)})
            # What the book of names records for this file and its side files is what this
            # process decides on (a restart knows no name of its own yet): file_names.py.
            self.names.seed(str(found.path))
            database = file_database(str(found.path))
            if context.is_admin:
                record = self.store.get_database(database)
                ceiling = None
            else:
                ceiling, record = self.database_rights(
                    context, database, found.place, readonly=config.readonly
                )
                if cls.features.side_files_by_name:  # SQLite's -wal, -shm (safe_folders.py)
                    refuse_changeable(found.path, found.given)
            claim: tuple[str, str] | None = None
            # Asked for by its name or a preset's: only then is a recorded mode changed (a plain
            # reopen keeps it), loosening included (the owner's right; docs/security.md).
            asked = requested is not None and "isolation_mode" in requested.model_fields_set
            if context.is_admin:
                # An administrator records an owner only when it asks for isolation.
                if (isolation != "none" and record is None) or (
                    asked and record is not None and record.owner == owner
                ):
                    claim = (owner, isolation)
            elif (record is None and found.place == "own") or (
                record is not None and record.owner == owner
            ):
                # What an actor opens in its own space is its own; its owner reopening it with an
                # isolation mode changes that mode. Nothing else is ever claimed by a non-admin.
                claim = (owner, isolation) if record is None or asked else None
            stored_owner = claim[0] if claim is not None else (record.owner if record else None)
            if named is not None and named != stored_owner and not context.is_admin:
                # Naming the owner already stored (or recorded by this open) changes nothing;
                # any other name would record nothing: refused, so no answer shows an owner not
                # stored (itself on a database shared with it or in a read root included).
                raise _owner_refused(stored_owner)
            effective = narrow(requested, ceiling)
            if effective is not None and effective.owner != stored_owner and effective.owner:
                # An administrator naming an owner that is not recorded (no isolation asked, or
                # another actor owns it) is answered the owner that is, as for isolationMode.
                effective = effective.model_copy(update={"owner": stored_owner})
            shown = effective.isolation_mode if effective is not None else "none"
            stored = claim[1] if claim is not None else (record.isolation if record else "none")
            if shown != stored or (effective is None and record is not None):
                # The handle answers the mode that is (or is about to be) recorded, never one that
                # is not: a non-owner's asked-for mode is ignored (only the owner, or an
                # administrator naming it, sets a database's mode), and a reopen answers the
                # stored mode, "none" included.
                effective = (effective or Permissions()).model_copy(
                    update={"isolation_mode": stored}
                )
            return Opening(config, effective, database, found, claim)
        if named not in (None, context.actor) and not context.is_admin:
            raise _owner_refused(context.actor)  # a memory or server database is its opener's
        target = config.audit_target()
        if target is not None:
            paths.note(target)  # the audit row's target, refused and failed opens included
        if _is_memory_config(config) and config.name is not None:
            check_memory_name(config.name, "config.name")
        if not context.is_admin:
            if _is_memory_config(config):
                # A memory database's name belongs to its actor: another actor's same name is
                # another database.
                if config.name is not None:
                    config = config.model_copy(update={"name": f"{context.actor}/{config.name}"})
            else:
                endpoint = config.tenant_endpoint()
                if endpoint is not None and endpoint not in self.allowed_servers():
                    raise ServerNotAllowed(
                        "config: this database server is not one an administrator listed for "
                        "non-admin actors (DBHANDLES_POSTGRES_SERVERS)",
                        field="config",
                    )
                config = config.tenant_config()
        return Opening(config, requested)

    def _registered(self, real: Path) -> bool:
        """Whether the handle store's book of names records the real path ``real`` as the name
        of the file it leads to now (``paths.resolve``'s ``registered``: such a name is the one a
        file with other names is used by). An owner or a stored handle by that name is not
        enough: the name may lead to another file by now (a hard link swapped in)."""
        return self.names.seed(str(real))

    def allowed_servers(self) -> set[str]:
        """``DBHANDLES_POSTGRES_SERVERS`` as ``host:port`` strings (5432 when no port is given)."""
        found = set()
        for entry in self.settings.postgres_servers:
            host, sep, port = entry.rpartition(":")
            if not sep or not host or not port.isdigit():
                host, port = entry, "5432"
            found.add(f"{host}:{port}")
        return found

    def claim(self, opening: Opening, context: Context) -> DatabaseRow | None:
        """Record the ownership ``check_open`` decided, before the handle: the row made, or None.

        Raises:
            AccessDenied: another actor claimed the database first.
        """
        if opening.claim is None or opening.database is None:
            return None
        owner, isolation = opening.claim
        row = DatabaseRow(opening.database, owner, isolation, iso_now())
        held = self.store.claim_database(row, isolation_if_owner=True)
        if held.owner != owner and not context.is_admin:
            raise _denied(held.owner, context.actor)
        return row if held == row else None

    # -- handles -----------------------------------------------------------------------------------

    def handle_ceiling(self, context: Context, entry: HandleEntry) -> Permissions | None:
        """What a non-admin actor may do through ``entry`` beyond the handle's own permissions
        (``None``: nothing more is refused).

        Raises:
            AccessDenied: another actor's handle on a database not shared with this one (or shared
                with restrictions a borrowed handle would not apply).
        """
        if context.is_admin:
            return None
        if entry.is_default:
            return DEFAULT_CEILINGS[self.settings.default_access]
        if entry.owner == context.actor:
            return None
        database = self.database_of(entry.config)
        if database is None:
            # A memory database or a server: reachable only through its opener's handles.
            raise AccessDenied(
                f"Access denied: handle owned by {json_text(entry.owner, 80)}, requested by {json_text(context.actor, 80)}"
            )
        real = Path(database.removeprefix("file:"))
        place = paths.place_of(self.settings, context, real, "database") or "other"
        try:
            ceiling, _ = self.database_rights(
                context, database, place, readonly=entry.config.readonly
            )
        except (PathNotAllowed, AccessDenied):
            raise AccessDenied(
                f"Access denied: handle owned by {json_text(entry.owner, 80)}, requested by {json_text(context.actor, 80)}"
            ) from None
        if ceiling is not None and (
            ceiling.row_filter is not None
            or ceiling.allowed_collections is not None
            or ceiling.denied_collections
        ):
            raise AccessDenied(
                "Access denied: your rights on this database are limited to some rows or "
                "collections; open it yourself with data/open to get a handle that applies them"
            )
        return ceiling

    def shared_with(self, context: Context, entry: HandleEntry) -> bool:
        """Whether the database behind another actor's handle is visible to ``context`` at all
        (granted, ``soft``, or readable under a read root): if not, its handle is answered like an
        unknown one, so a leaked handle id tells nothing about whose it is, or that it exists."""
        database = self.database_of(entry.config)
        if database is None:
            return False  # a memory database or a server: its opener's alone
        real = Path(database.removeprefix("file:"))
        place = paths.place_of(self.settings, context, real, "database") or "other"
        try:
            self.database_rights(context, database, place, readonly=True)
        except (PathNotAllowed, AccessDenied):
            return False
        return True

    # -- grants ------------------------------------------------------------------------------------

    def may_share(self, context: Context, entry: HandleEntry) -> str:
        """The database behind ``entry`` if ``context`` may grant rights on it (its owner, or an
        administrator).

        Raises:
            HandleNotFound: another actor's handle on a database not shared with the caller.
            AccessDenied: the caller is neither.
            Forbidden: not a file database (only those can be shared).
        """
        if (
            not context.is_admin
            and not entry.is_default
            and entry.owner != context.actor
            and not self.shared_with(context, entry)
        ):
            raise HandleNotFound.unknown(
                json_text(entry.handle, 80)
            )  # as unknown as in every other command
        database = self.database_of(entry.config)
        if database is None or entry.is_default:
            raise Forbidden(
                "only file databases (sqlite, json) can be shared with data/grant; the default "
                "database is shared by DBHANDLES_DEFAULT_ACCESS"
            )
        if context.is_admin:
            return database
        record = self.store.get_database(database)
        if record is not None and record.owner == context.actor:
            return database
        real = Path(database.removeprefix("file:"))
        if record is None and paths.place_of(self.settings, context, real, "database") == "own":
            return database
        raise AccessDenied(
            f"Access denied: only the owner of this database (or an administrator) can share it, "
            f"requested by {json_text(context.actor, 80)}"
        )

    def put_grant(self, database: str, actor: str, permissions: Permissions, context: Context,
                  check: NameCheck | None = None) -> GrantRow:  # fmt: skip
        """Record ``actor``'s grant (``check``: the rule of names, ``HandleStore.put_grant``)."""
        from dbhandles.store.sql import grant_id

        row = GrantRow(
            grant_id(database, actor), database, actor, permissions.to_wire(), context.actor,
            iso_now(),
        )  # fmt: skip
        if self.store.get_database(database) is None:
            # A database shared from an actor's own space is that actor's from now on.
            self.store.claim_database(DatabaseRow(database, context.actor, "none", iso_now()))
        self.store.put_grant(row, check)
        return row


def _field(params: BaseModel, name: str) -> Any:
    # Looking a missing attribute up on a pydantic model is slow (its __getattr__ raises inside);
    # checking the declared fields first keeps this off the hot path.
    # (``__pydantic_fields__``: ``model_fields`` is a property of the class that costs a call.)
    return getattr(params, name) if name in type(params).__pydantic_fields__ else None


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
    command: Authorizable,
    params: BaseModel,
    context: Context,
    entry: HandleEntry | None,
    access: AccessPolicy | None = None,
) -> None:
    """Refuse the call unless the actor and the handle's permissions allow every operation in it.

    ``access`` adds the actor's rights on the database behind the handle (the shared default
    database, another actor's handle): ``Service.authorize`` always passes it.

    Raises:
        PermissionDenied, AccessDenied, Forbidden (admin-only commands).
    """
    ops = operations_of(command, params)
    if command.admin_only and not context.is_admin:
        raise Forbidden(f"{command.name} is for administrators only")
    if entry is None:
        return
    data_ops = ops & {"read", "write", "delete", "schema"}
    # Another actor's handle (an ownerless one, of a release before owners, is nobody's own).
    foreign = not entry.is_default and entry.owner != context.actor and not context.is_admin
    if foreign and access is not None and not access.shared_with(context, entry):
        named = _field(params, "db_handle")
        raise HandleNotFound.unknown(
            json_text(named if isinstance(named, str) else entry.handle, 80)
        )
    permissions = entry.permissions
    if foreign and permissions is not None and permissions.isolation_mode == "strict":
        raise AccessDenied(
            f"Access denied: handle owned by {json_text(entry.owner, 80)}, requested by {json_text(context.actor, 80)}"
        )
    if (
        foreign
        and permissions is not None
        and permissions.isolation_mode == "soft"
        and data_ops - {"read"}
    ):
        raise AccessDenied(
            f"Access denied: handle owned by {json_text(entry.owner, 80)} is read-only for {json_text(context.actor, 80)} (soft isolation)"
        )
    if command.name == "data/close" and foreign:
        raise AccessDenied(
            "Access denied: only the actor who opened this handle (or an administrator) can "
            "close it; close your own handles"
        )
    if access is not None and data_ops and not context.is_admin and (foreign or entry.is_default):
        ceiling = access.handle_ceiling(context, entry)
        for op in sorted(data_ops):
            if ceiling is not None and not ceiling.allows(op):
                if entry.is_default:
                    raise PermissionDenied(
                        f"Permission denied: non-admin actors may not {op} in the shared default "
                        f"database (DBHANDLES_DEFAULT_ACCESS={access.settings.default_access})"
                    )
                raise AccessDenied(
                    f"Access denied: {json_text(context.actor, 80)} may not {op} in this database of "
                    f"{json_text(entry.owner, 80)}"
                )
    own = not (foreign or entry.is_default or context.is_admin)
    if access is not None and data_ops and own:
        # Its own handle on a database another actor may have narrowed since it was opened.
        access.borrowed.check(context, entry, data_ops)
    if permissions is None:
        return
    for op in sorted(data_ops):
        if not permissions.allows(op):
            raise PermissionDenied(f"Permission denied: handle does not have {op} access")
    names = collections_of(params)
    # Deletes and writes reach what the database's foreign-key actions write too (check_cascades).
    cascading = data_ops & {"write", "delete"}
    if command.name == "data/truncate":  # a "schema" operation that deletes every row
        cascading.add("delete")
    resolved: dict[str, ResolvedName] = {}
    if names and access is not None and access.resolve_names is not None:
        listed = [*permissions.denied_collections, *(permissions.allowed_collections or ())]
        if listed or entry.row_filter is not None:
            resolved = access.resolve_names(entry, [*names, *listed], bool(cascading))
    for name in names:
        refusal = permissions.collection_refusal(name, resolved)
        if refusal is not None:
            raise PermissionDenied(f"Permission denied: {refusal}")
        found = resolved.get(name)
        if found is not None and cascading:
            reached = found.deletes if "delete" in cascading else ()
            if "write" in cascading and command.name != "data/create":
                reached += found.updates
            if "write" in cascading and command.name != "data/update":  # insert triggers
                reached += found.inserts
            check_cascades(permissions, entry.row_filter is not None, name, reached, resolved)
        if entry.row_filter is not None and found is not None:
            check_row_filter_view(name, found)
        if entry.row_filter is not None and found is not None and found.fields is not None:
            check_row_filter_fields(entry.row_filter, found.name, found.fields)
    if command.name == "data/clear" and (
        permissions.denied_collections or permissions.allowed_collections is not None
    ):
        # clear names no collection: it would empty the ones this handle may not reach too.
        raise PermissionDenied(
            "Permission denied: data/clear empties every collection and this handle may reach "
            "only some; use data/truncate on each collection it may"
        )
    if entry.row_filter is not None and "schema" in data_ops and command.name != "data/schema":
        raise PermissionDenied(
            f"Permission denied: {command.name} would reach rows outside this handle's row filter"
        )
