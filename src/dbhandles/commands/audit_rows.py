"""What the dispatcher's audit rows name: the database a command really touched, whatever its outcome.

One rule for successes, refusals and crashes (docs/security.md, "Audit log"):

* ``handle``: the handle id of the command's target; else the handle it created (data/open); else
  the handle id the handle or alias the caller named resolves to (another actor's alias, which the
  caller may not use, included); else, only when that name resolves to nothing (unknown, closed,
  mistyped), the name as the caller sent it; ``None`` when none was named. A name that is not a
  string (``{"a": 1}``, ``123``) is recorded as ``?`` and its JSON text (``audit_text``), never as
  the default database, and so is a ``collection`` that is not one.
* ``collection``: the table or collection the name reaches (``Adapter.resolve_collection``, the
  name permissions decide on: ``chat_messages`` for ``chatMessages`` on a ``fieldNames: camel``
  handle); the cursor's collection for query-next and query-close (``audit.note_collection``);
  ``*`` (``EVERY_COLLECTION``) for a command that touches every collection (data/clear); the name
  as sent when it reaches nothing.
* A command whose params name more than one database (data/copy: ``Command.audit_names``) gets one
  row for each, with the same outcome; data/batch one row per distinct collection, each with the
  operations done there; data/job-start names its command's target and operation (``audit_names``).
* A call that names its database by file (``_DATABASE_FILE``) and resolved no handle names the
  handle open on that file (``file_entry``), else the file in ``target``.
* A request of an authenticated caller refused before any command could run (an unknown command,
  params that are no object, a WebSocket message that is no request: ``record_unrun``) gets one
  row of operation ``request``, whatever the door.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from dbhandles.adapters import get_adapter_class
from dbhandles.adapters.base import FileConfig
from dbhandles.commands.base import (
    COMMANDS,
    EVERY_COLLECTION,
    AuditName,
    Command,
    audit_text,
    handle_target,
    named_in_params,
)
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError
from dbhandles.registry import DEFAULT_HANDLE, HandleEntry
from dbhandles.security import paths
from dbhandles.security.policy import batch_operations, operations_of

if TYPE_CHECKING:
    from dbhandles.security.audit import AuditLog
    from dbhandles.service import Service

__all__ = [
    "audit_collection",
    "audit_entry",
    "audit_names",
    "database_file",
    "file_entry",
    "raw_params",
    "record_failure",
    "record_outcome",
    "record_refusal",
    "record_unrun",
]

#: The ``command`` of an audit row whose request named none (a WebSocket message that is not a
#: request, or whose ``command`` is not a string).
NO_COMMAND = "(no command)"

log = logging.getLogger(__name__)


def raw_params(params: Mapping[str, Any] | BaseModel | None) -> Mapping[str, Any]:
    """Params as sent (camelCase keys), for the audit rows of what they name."""
    if isinstance(params, Mapping):
        return params
    if isinstance(params, BaseModel):
        return params.model_dump(by_alias=True, exclude_unset=True)
    return {}


def audit_entry(service: Service, name: str | None, context: Context) -> HandleEntry | None:
    """The handle ``name`` resolves to, as ``context``'s actor names handles (its own aliases
    first); another actor's alias still names the database it reaches. ``None``: not named, or
    it resolves to nothing."""
    if name is None:
        return None
    registry = service.registry
    try:
        return registry.resolve_for(name, context.actor, context.is_admin)
    except DbHandlesError:
        pass
    try:
        # Another actor's alias, which the caller was answered as an unknown name.
        exists, _ = registry.alias_owner(name)
        return registry.resolve(name) if exists else None
    except DbHandlesError:
        return None


#: Where the params of a command that takes a database by its file as well as by handle name that
#: file (the command's target rule opens it): a row whose call resolved no handle names the handle
#: open on that file (``file_entry``), else the file as ``target``.
_DATABASE_FILE: dict[str, tuple[str, ...]] = {
    "data/open": ("config", "path"),
    "data/import": ("output",),
    "data/export": ("input",),
}
_JOB_START = "data/job-start"
#: The commands whose params name their databases otherwise than by ``dbHandle`` and ``collection``
#: (besides those with ``Command.audit_names``).
_MANY_NAMES = frozenset({"data/batch", _JOB_START})


def _dig(raw: Mapping[str, Any], keys: tuple[str, ...]) -> object:
    value: object = raw
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _job(raw: Mapping[str, Any]) -> tuple[Command, Mapping[str, Any]] | None:
    """The command and params a ``data/job-start`` call names (``None``: none it could run)."""
    name, params = raw.get("command"), raw.get("params", {})
    job = COMMANDS.get(name) if isinstance(name, str) else None
    if job is None or job.name == _JOB_START or not isinstance(params, Mapping):
        return None
    return job, params


def database_file(command: Command, raw: Mapping[str, Any]) -> object:
    """The database file ``raw`` names for ``command`` (``_DATABASE_FILE``; a job's command's for
    data/job-start), as sent; ``None`` when it names none."""
    if command.name == _JOB_START:
        job = _job(raw)
        return database_file(*job) if job is not None else None
    keys = _DATABASE_FILE.get(command.name)
    return _dig(raw, keys) if keys is not None else None


def file_entry(
    service: Service, context: Context, given: object
) -> tuple[HandleEntry | None, str | None]:
    """The open handle on the database file ``given`` names (by its real path, as ``context``'s
    relative names resolve: ``paths.real_path``), the caller's own first, and that real path;
    ``(None, None)`` when ``given`` names no file."""
    real = paths.real_path(service.settings, context, given)
    if real is None:
        return None, None
    wanted = str(real)
    try:
        on_file = [
            e for e in service.registry.list_handles()
            if not e.is_default and isinstance(e.config, FileConfig) and e.config.path == wanted
        ]  # fmt: skip
    except Exception:  # an audit row never fails the call: the path alone
        log.debug("could not list handles for the audit log", exc_info=True)
        on_file = []
    own = [e for e in on_file if e.owner == context.actor]
    return next(iter(own or on_file), None), wanted


def _batch_names(command: Command, raw: Mapping[str, Any]) -> tuple[AuditName, ...]:
    """``data/batch``: one name per distinct collection its operations use, in order, each with the
    operations done there (``operations_of``'s rule: the command's own, ``delete`` for a delete)."""
    operations = raw.get("operations")
    handle = audit_text(raw.get("dbHandle"))
    done: dict[str | None, set[str]] = {}
    for op in operations if isinstance(operations, list) else ():
        if isinstance(op, Mapping):
            kinds = done.setdefault(audit_text(op.get("collection")), set())
            kinds.update((command.operation, "delete" if op.get("op") == "delete" else "write"))
    if not done:
        return named_in_params(raw)
    return tuple(AuditName(handle, c, ",".join(sorted(ops))) for c, ops in done.items())


def _job_names(raw: Mapping[str, Any]) -> tuple[AuditName, ...]:
    """``data/job-start``: what its command's params name, with that command's operation (an
    omitted ``dbHandle`` being the default database for a command that works on one)."""
    job = _job(raw)
    if job is None:
        return (AuditName(None, None),)
    command, params = job
    names = audit_names(command, params)
    return tuple(
        AuditName(
            DEFAULT_HANDLE if n.handle is None and i == 0 and command.target is handle_target
            and database_file(command, params) is None else n.handle,
            n.collection, n.operation or command.operation,
        )
        for i, n in enumerate(names)
    )  # fmt: skip


def _extra_names(
    command: Command, raw: Mapping[str, Any] | BaseModel | None
) -> tuple[AuditName, ...]:
    """``audit_names`` of a command whose params do not say it all by ``dbHandle`` and
    ``collection``; ``()`` for the others (the hot path: their params are not dumped)."""
    if command.audit_names is None and command.name not in _MANY_NAMES:
        return ()
    return audit_names(command, raw_params(raw))


def audit_names(command: Command, raw: Mapping[str, Any]) -> tuple[AuditName, ...]:
    """What a call's raw params name for its audit rows, one row each: ``Command.audit_names``
    (data/copy: target and source); data/batch's collections, one row per distinct collection
    (``_batch_names``); data/job-start's command's target and operation (``_job_names``); else
    ``dbHandle`` and ``collection`` (``named_in_params``)."""
    if command.audit_names is not None:
        return command.audit_names(raw)
    if command.name == "data/batch":
        return _batch_names(command, raw)
    if command.name == _JOB_START:
        return _job_names(raw)
    return named_in_params(raw)


def audit_collection(
    service: Service, entry: HandleEntry | None, name: str | None, *, fresh: bool
) -> str | None:
    """The table or collection ``name`` reaches through ``entry`` (``Adapter.resolve_collection``),
    else ``name`` as sent.

    Args:
        fresh: ask the database (a refusal: nothing looked at it yet); ``False`` right after the
            command ran: its adapter's schema cache says what the command saw
            (``Adapter.known_collection``, without a lease: every row asks).
    """
    if entry is None or name is None or name == EVERY_COLLECTION:
        return name
    try:
        if not get_adapter_class(entry.adapter_name).features.foreign_tables:
            return name  # it stores what it is asked for
        if not fresh:
            adapter = service.registry.live_adapter(entry)
            known = adapter.known_collection(name) if adapter is not None else None
            if known is not None:
                return known
        with service.registry.lease(entry) as (_, leased):
            return leased.resolve_collection(name)
    except Exception:  # an audit row never fails the call: the name as sent
        log.debug("could not resolve %r for the audit log", name, exc_info=True)
        return name


def record_unrun(audit: AuditLog, command: object, context: Context, code: str) -> None:
    """The row of an authenticated request refused before any command ran, the same at every door
    (HTTP, WebSocket, in-process, jobs): operation ``request``, the command as given (its first 200
    characters) when it is a non-empty string, else ``NO_COMMAND``; no handle."""
    name = command[:200] if isinstance(command, str) and command else NO_COMMAND
    audit.record_call(time.time(), context.actor, context.session_id, None, name, "request",
                      None, None, code)  # fmt: skip


def record_refusal(
    service: Service,
    command: Command,
    params: Mapping[str, Any] | BaseModel | None,
    context: Context,
    code: str,
) -> None:
    """The rows of a command refused before its params were parsed: one per database they name
    (``Command.audit_names``), an omitted ``dbHandle`` being the default database for a command
    that works on one (``handle_target``)."""
    if not service.audit.enabled:
        return
    raw = raw_params(params)
    names = audit_names(command, raw)
    given = database_file(command, raw)
    now = time.time()
    for i, named in enumerate(names):
        omitted = named.handle is None and given is None and command.target is handle_target
        entry = audit_entry(service, DEFAULT_HANDLE if omitted else named.handle, context)
        target = None
        if entry is None and named.handle is None and i == 0 and given is not None:
            # Named by its file: the handle open on it, else the file itself.
            entry, real = file_entry(service, context, given)
            target = paths.escape_target(real) if entry is None and real is not None else None
        service.audit.record_call(
            now, context.actor, context.session_id,
            entry.handle if entry is not None else named.handle, command.name,
            named.operation or command.operation,
            audit_collection(service, entry, named.collection, fresh=True), None, code, target,
        )  # fmt: skip


def _by_file(
    service: Service,
    command: Command,
    raw: Mapping[str, Any] | BaseModel | None,
    context: Context,
    target: str | None,
) -> tuple[HandleEntry | None, str | None]:
    """A call that resolved no handle but named a database file (``database_file``): the handle
    open on that file, else none and that file added to ``target``."""
    if command.name not in _DATABASE_FILE and command.name != _JOB_START:
        return None, target  # names no file (most calls: their params are not dumped)
    given = database_file(command, raw_params(raw))
    if given is None:
        return None, target
    found, real = file_entry(service, context, given)
    if found is not None or real is None:
        return found, target
    line = paths.escape_target(real)
    if target is None or line in target.split("\n"):
        return None, target or line
    return None, f"{target}\n{line}"


_MISSING = object()
#: Whether a class (or a base) defines an attribute by this name (a property, say): ``_attr``.
_DEFINED: dict[tuple[type, str], bool] = {}


def _attr(model: object, name: str) -> Any:
    """``getattr(model, name, None)``, a field's value taken from ``__dict__`` first: a field a
    pydantic model does not have costs an exception inside its ``__getattr__`` (about 2 µs, two
    per call of most commands: ``id`` of a listing's params and result), so a name neither in
    ``__dict__``, among its extra fields nor defined by its class (a property, data/copy's
    ``db_handle``, found by ``getattr``) is ``None`` at once."""
    value = getattr(model, "__dict__", {}).get(name, _MISSING)
    if value is not _MISSING:
        return value
    kind = type(model)
    defined = _DEFINED.get((kind, name))
    if defined is None:
        defined = any(name in getattr(k, "__dict__", ()) for k in kind.__mro__)
        if len(_DEFINED) < 4096:  # bounded: one entry per model class and name asked
            _DEFINED[kind, name] = defined
    if defined:
        return getattr(model, name, None)
    extra = getattr(model, "__pydantic_extra__", None)
    return extra.get(name) if isinstance(extra, dict) else None


def record_failure(
    service: Service,
    command: Command,
    raw: Mapping[str, Any] | BaseModel | None,
    params: BaseModel,
    context: Context,
    entry: HandleEntry | None,
    exc: BaseException,
    target: str | None,
    noted: str | None,
) -> None:
    """``record_outcome`` of a command that raised ``exc`` after its params were parsed (a
    ``DbHandlesError`` is logged with its code and masked for the caller: where the home and the
    data root are is not a non-admin's to know; anything else is ``internal_error``)."""
    if isinstance(exc, DbHandlesError):
        record_outcome(service, command, raw, params, context, entry, None, exc.code, target, noted)
        paths.mask_error(service.settings, context, exc, raw)
    else:
        record_outcome(service, command, raw, params, context, entry, None, "internal_error",
                       target, noted)  # fmt: skip


def record_outcome(
    service: Service,
    command: Command,
    raw: Mapping[str, Any] | BaseModel | None,
    params: BaseModel,
    context: Context,
    entry: HandleEntry | None,
    result: Any,
    code: str | None,
    target: str | None = None,
    noted: str | None = None,
) -> None:
    """The rows of a command whose params were parsed, whatever its outcome (``code`` ``None``:
    it succeeded). ``entry`` is its target if it was found, ``target`` the real files it resolved
    (``security.paths``), ``noted`` the collection its target rule found (``note_collection``)."""
    # Reading the log is not itself logged, but a refused attempt to read it is.
    if not service.audit.enabled or (code is None and command.name == "data/audit"):
        return
    found: HandleEntry | None = entry
    # ``_extra_names``, written out: every command ends here, and most name no more.
    names = (
        ()
        if command.audit_names is None and command.name not in _MANY_NAMES
        else audit_names(command, raw_params(raw))
    )
    if entry is not None:
        handle: str | None = entry.handle
    else:
        named = _attr(params, "db_handle")
        named = named if isinstance(named, str) else names[0].handle if names else None
        created = _attr(result, "db_handle")
        found = None if created is not None else audit_entry(service, named, context)
        if found is None and created is None and named is None:
            found, target = _by_file(service, command, raw, context, target)
        handle = found.handle if found is not None else created or named
    record_id = _attr(params, "id") or _attr(result, "id")
    collection = _attr(params, "collection")
    if not isinstance(collection, str):
        collection = noted or (names[0].collection if names else None)
    fresh = code is not None
    if names and names[0].operation is not None:
        operations = names[0].operation  # data/batch's per collection; a job's command's
    elif "operations" not in type(params).__pydantic_fields__ or batch_operations(params) is None:
        operations = command.operation
    else:
        operations = ",".join(sorted(operations_of(command, params)))
    now = time.time()
    service.audit.record_call(
        now, context.actor, context.session_id, handle, command.name, operations,
        audit_collection(service, found, collection, fresh=fresh),
        record_id if isinstance(record_id, str) else None, code, target,
    )  # fmt: skip
    for side in names[1:]:
        if side.handle == names[0].handle:  # the same name: what the target's row found
            at, side_handle = found, handle
        else:
            at = audit_entry(service, side.handle, context)
            side_handle = at.handle if at is not None else side.handle
        service.audit.record_call(
            now, context.actor, context.session_id, side_handle, command.name,
            side.operation or command.operation,
            audit_collection(service, at, side.collection, fresh=fresh), None, code,
        )  # fmt: skip
