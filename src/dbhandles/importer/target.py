"""Which handle an import writes to (or an export reads from), and which files a command may touch.

A database given by path is opened through ``data/open`` like any other, so the import really goes
through the handle system, its path rules and its ownership. Re-running an import on the same file
reuses the handle an earlier run minted (handles are durable) instead of leaking one per run. The
handle finally used is authorised like any data command's, whichever way it was named.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbhandles.adapters import FileConfig, get_adapter_class
from dbhandles.commands.base import DataParams
from dbhandles.context import Context
from dbhandles.dbfiles import check_path_text, check_plain, known_name
from dbhandles.errors import (
    AccessDenied,
    DatabaseNotFound,
    DbHandlesError,
    InvalidParams,
    NotADatabase,
    PathNotAllowed,
    PermissionDenied,
)
from dbhandles.path_text import NAME_MAX
from dbhandles.pinned import Pinned
from dbhandles.pinned_look import look
from dbhandles.registry import HandleEntry
from dbhandles.security import paths
from dbhandles.security.database_files import (
    check_adapter_file,
    check_database_output,
    is_database_file,
    is_open_handle_database,
)
from dbhandles.security.safe_folders import refuse_changeable
from dbhandles.store import file_database
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = [
    "check_file",
    "check_one_target",
    "check_rejects_file",
    "one_target_schema",
    "resolve_target",
]


def check_file(
    service: Service,
    path: str | os.PathLike[str],
    field: str,
    context: Context,
    *,
    writing: bool = False,
) -> Path:
    """The real path of a file a command reads or writes, decided by the one path policy
    (``security/paths.py``) and resolved once per call (a second ask returns the first answer).

    Remote administrators reach files under the allowed roots (``DBHANDLES_ALLOWED_ROOTS``); a
    non-admin actor writes only in its data space and reads there and under the read roots
    (``DBHANDLES_READ_ROOTS``); nobody reaches the service's own state. The file must not be an
    SQLite database or one of its side files; a file to write is never a database of any adapter
    (``database_files.check_database_output``: registered, open, or recognized by its content).

    Raises:
        PathNotAllowed: a file the caller may not reach; an SQLite database or side file; for
            ``writing``, a database of any adapter (one answer, whoever's it is), or a link, a special file or a file with other names
            (``dbfiles.check_plain``).
        InvalidParams: a path no file system takes.
    """
    text = os.fspath(path)
    found = paths.resolved(field, text) or paths.resolve(
        service.settings, context, text, field, "output" if writing else "input"
    )
    if writing:
        paths.ensure_parent(found, field)
        # Before check_plain: one answer for every database, whoever's, whichever adapter.
        check_database_output(service, found.path, found.given, field)
    # An SQLite database (or one of its side files) is never read or written as JSONL: writing
    # would destroy it, and a plain open() in this process would release its connections' locks.
    # The local user may read a data file with other names (hard links: every file it can read is
    # its own); a remote caller only by the name the service knows it by (docs/security.md).
    check_plain(found.path, field, writing=writing, other_names=context.trusted_local)
    if not writing:
        _check_database_input(service, found, field, context)
    return found.path


def check_rejects_file(
    service: Service, given: str | os.PathLike[str], named: bool, context: Context
) -> Path:
    """``check_file`` of an import's rejects file to write; one it was not ``named`` (the default
    ``<database>.rejects.jsonl``) whose name is past the file system's ``NAME_MAX`` is refused
    saying so, not as a path the caller gave that is too long.

    Raises:
        InvalidParams: the default name is too long; from ``check_file``.
        PathNotAllowed: from ``check_file``.
    """
    size = len(os.fsencode(Path(given).name))
    if not named and size > NAME_MAX:
        raise InvalidParams(
            f"rejects: the default rejects file, the database's name and .rejects.jsonl, would be "
            f"a name of {size} bytes, and the file system takes at most {NAME_MAX}: give "
            "rejects (a shorter name), or import into a database with a shorter name",
            field="rejects",
        )
    return check_file(service, given, "rejects", context, writing=True)


def _check_database_input(
    service: Service, found: paths.Resolved, field: str, context: Context
) -> None:
    """``_check_database_access``, then: the database file of an open handle (of any adapter) is
    never an import input, whoever asks (an SQLite file is refused by ``check_plain`` already; a
    JSON adapter's file would otherwise be read as lines of JSON behind its handle's back). The
    access decision comes first, so a file the caller may not open gets ``data/open``'s answer.
    The file is looked up in its folder pinned (``pinned_look.look``), never by its path.

    Raises:
        PathNotAllowed, AccessDenied: see ``_check_database_access``; the file is an open handle's
            database (``path_not_allowed``); a folder on the way is a link now (``changed``).
    """
    try:
        looked = look(str(found.path), field)
    except OSError:
        looked = None  # the read's own open reports it
    info: os.stat_result | None = None
    if looked is not None:
        folder, seen = looked
        with folder:
            if stat.S_ISREG(seen.st_mode):
                info = seen
                _check_database_access(service, found, field, context, folder, info)
    check_adapter_file(service, found.path, found.given, field)
    if info is not None and is_open_handle_database(service, found.path, info):
        raise PathNotAllowed(
            f"{field}: {json_text(found.given, 80)} is the database file of an open handle; "
            "it is never read as a data file (export it with data/export from that handle)",
            field=field,
        )


def _check_database_access(
    service: Service,
    found: paths.Resolved,
    field: str,
    context: Context,
    folder: Pinned,
    info: os.stat_result,
) -> None:
    """An import input that is a database of any adapter (``info``: the regular file's ``lstat``
    in ``folder``, its folder pinned) is read only as ``data/open`` would let the caller read it:
    the same ownership, isolation and grant decision (``AccessPolicy``), and only when nothing in
    the caller's rights limits it to some rows or collections (a whole-file read would bypass
    that). A database with other names (hard links) is never an input: a second name is a way
    past the checks made on the first. Administrators are not limited.

    Raises:
        PathNotAllowed, AccessDenied: as ``data/open`` of the file, read-only, would answer; the
            database has other names (hard links) and this is not the one it is known by.
    """
    real = found.path
    if (context.trusted_local or context.is_admin) and info.st_nlink == 1:
        # Nothing below refuses an administrator a file with one name: skip is_database_file,
        # which imports every adapter to ask it (psycopg alone costs ~0.15 s of CPU).
        return
    if not is_database_file(service, real, folder, info, field):
        return
    if info.st_nlink > 1 and known_name(info) != str(real):
        # A second name is a way past the checks made on the first: refused as a file the caller
        # may not use (the code of every other such refusal: dbfiles.check_plain).
        raise PathNotAllowed(
            f"{field}: {found.given} is a database file with other names (hard links); it is never "
            "read as a data set by a name it is not known by (export it with data/export from a "
            "handle on it)",
            field=field,
        )
    if context.trusted_local or context.is_admin:
        return
    try:
        ceiling, _ = service.access.database_rights(
            context, file_database(str(real)), found.place, readonly=True
        )
    except DbHandlesError as exc:
        exc.message = exc.message.replace("config.path", field, 1)
        exc.args, exc.field = (exc.message,), field
        raise
    if ceiling is not None and (
        not ceiling.allows("read")
        or ceiling.row_filter is not None
        or ceiling.allowed_collections is not None
        or ceiling.denied_collections
    ):
        raise AccessDenied(
            f"{field}: {found.given} is a database your rights reach only in part (some rows, "
            "collections or none); open it with data/open and read it through that handle"
        )


#: A database named by path is an SQLite file: ``_open_path`` opens it with this adapter, so only this
#: adapter's handles on the same file are reused.
_PATH_ADAPTER = "sqlite"


def _reusable(entry: HandleEntry, canonical: str, mode: str, context: Context) -> bool:
    config = entry.config
    if entry.is_default or entry.adapter_name != _PATH_ADAPTER:
        return False
    if not isinstance(config, FileConfig) or config.path != canonical:
        return False
    # Only a plain handle of the same actor: never borrow someone else's, or a restricted one.
    owners = (None, context.actor) if context.is_admin else (context.actor,)
    if entry.owner not in owners or entry.permissions is not None:
        return False
    return mode == "readonly" or not config.readonly


def _open_path(service: Service, path: str, mode: str, context: Context) -> str:
    # Where data/open will look for it (a non-admin's relative name is in its own data space).
    canonical = str(paths.resolve(service.settings, context, path, "config.path", "database").path)
    # A handle on a file that was deleted since is not reused: data/open creates the file again.
    if os.path.exists(canonical):
        for entry in service.registry.list_handles():
            if _reusable(entry, canonical, mode, context):
                # As data/open would decide now (safe_folders.py).
                side_files = get_adapter_class(_PATH_ADAPTER).features.side_files_by_name
                if not context.is_admin and side_files:
                    refuse_changeable(Path(canonical), path)
                return entry.handle
    config: dict[str, object] = {"path": path, "mode": mode}
    if mode != "readonly":
        # An import output is in WAL ("import once, read everywhere"), and the load may leave WAL
        # for a rollback journal while it runs (SqliteAdapter.bulk_load) and come back to it.
        config["wal"] = True
    result = service.execute(
        "data/open", {"adapter": _PATH_ADAPTER, "config": config}, context=context
    )
    return str(result["dbHandle"])


def check_one_target(path: str | None, db_handle: str | None, path_field: str) -> None:
    """Exactly one of ``path`` and ``db_handle`` is given (the params models check it when parsed;
    ``one_target_schema`` says it in their JSON schema).

    Raises:
        InvalidParams: both or neither.
    """
    if path is not None and db_handle is not None:
        raise InvalidParams(
            f"{path_field}: give {path_field} or dbHandle, not both", field=path_field
        )
    if path is None and db_handle is None:
        raise InvalidParams(
            f"{path_field}: missing; give {path_field} (an SQLite file, opened with data/open) or "
            "dbHandle (an open handle; 'default' for the default database)",
            field=path_field,
        )


def one_target_schema(path_field: str) -> dict[str, Any]:
    """``check_one_target`` as JSON Schema, for a params model's ``json_schema_extra``."""
    given, absent = {"type": "string"}, {"type": "null"}
    return {
        "anyOf": [
            {"required": [path_field], "properties": {path_field: given, "dbHandle": absent}},
            {"required": ["dbHandle"], "properties": {"dbHandle": given, path_field: absent}},
        ]
    }


def resolve_target(
    service: Service,
    command_name: str,
    params: DataParams,
    path: str | None,
    *,
    path_field: str,
    mode: str,
    context: Context,
) -> HandleEntry:
    """The handle named by exactly one of ``path`` (an SQLite file) and ``params.db_handle``.

    Nothing defaults to the ``default`` database: a bulk import landing there by accident is the
    kind of mix-up handles exist to prevent, so it has to be asked for (``dbHandle: "default"``).
    The dispatcher then authorises the handle for the command like any target.

    Raises:
        InvalidParams: both or neither were given.
        PermissionDenied: the handle has a row filter (imports and exports do not apply one).
        DbHandlesError: from ``data/open``.
    """
    check_one_target(path, params.db_handle, path_field)
    if path is not None:
        try:
            handle = _open_path(service, check_path_text(path, path_field), mode, context)
        except DbHandlesError as exc:
            # data/open's words name its own param: the caller gave this one.
            if isinstance(exc, DatabaseNotFound) and mode == "readonly":
                # data/open's hint (mode create) is no answer for a database to read from.
                exc.field = path_field
                exc.message = (
                    f"{path_field}: {json_text(path, 80)} does not exist; {command_name} reads an "
                    "existing database: check the path, or give dbHandle"
                )
                exc.args = (exc.message,)
            elif exc.field == "config.path":
                exc.field = path_field
                exc.message = exc.message.replace("config.path:", f"{path_field}:", 1)
                exc.args = (exc.message,)
            elif exc.field is None and isinstance(exc, NotADatabase | DatabaseNotFound):
                # The file itself is refused: it is this param's, whatever data/open calls it.
                exc.field = path_field
                exc.message = f"{path_field}: {exc.message}"
                exc.args = (exc.message,)
            raise
        entry = service.registry.resolve(handle)
    else:
        entry = service.registry.resolve_for(params.db_handle, context.actor, context.is_admin)
    if entry.row_filter is not None:
        raise PermissionDenied(
            f"Permission denied: this handle only reaches rows matching its row filter, and "
            f"{command_name} works on whole collections; use a handle without a row filter"
        )
    return entry
