"""Which handle an import writes to (or an export reads from), and which files a command may touch.

A database given by path is opened through ``data/open`` like any other, so the import really goes
through the handle system, its path rules and its ownership. Re-running an import on the same file
reuses the handle an earlier run minted (handles are durable) instead of leaking one per run. The
handle finally used is authorised like any data command's, whichever way it was named.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from dbhandles.adapters import FileConfig
from dbhandles.commands.base import DataParams
from dbhandles.context import Context
from dbhandles.dbfiles import check_path_text, check_plain
from dbhandles.errors import InvalidParams, PathNotAllowed, PermissionDenied
from dbhandles.registry import HandleEntry

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["check_file", "resolve_target"]


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def check_file(
    service: Service,
    path: str | os.PathLike[str],
    field: str,
    context: Context,
    *,
    writing: bool = False,
) -> Path:
    """The real path of a file a command reads or writes, checked like ``data/open`` checks paths.

    Remote requests may only reach files under the allowed roots (``DBHANDLES_ALLOWED_ROOTS``); the
    file must not be an SQLite database or one of its side files.

    Raises:
        PathNotAllowed: a remote request for a file outside the allowed roots.
        InvalidParams: the file is an SQLite database or side file, or (``writing``) a link, a
            special file or a file with other names (``dbfiles.check_plain``).
    """
    real = Path(os.path.realpath(os.path.expanduser(check_path_text(path, field))))
    if not context.trusted_local:
        roots = service.settings.roots()
        if not _under(real, roots):
            raise PathNotAllowed(
                f"{field}: {real} is outside the allowed folders ({', '.join(map(str, roots))}); "
                "an administrator can add folders with DBHANDLES_ALLOWED_ROOTS",
                field=field,
            )
    # An SQLite database (or one of its side files) is never read or written as JSONL: writing
    # would destroy it, and a plain open() in this process would release its connections' locks.
    check_plain(real, field, writing=writing)
    return real


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
    if entry.owner not in (None, context.actor) or entry.permissions is not None:
        return False
    return mode == "readonly" or not config.readonly


def _open_path(service: Service, path: str, mode: str, context: Context) -> str:
    canonical = os.path.realpath(os.path.expanduser(path))
    # A handle on a file that was deleted since is not reused: data/open creates the file again.
    if os.path.exists(canonical):
        for entry in service.registry.list_handles():
            if _reusable(entry, canonical, mode, context):
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
    if path is not None and params.db_handle is not None:
        raise InvalidParams(
            f"{path_field}: give {path_field} or dbHandle, not both", field=path_field
        )
    if path is None and params.db_handle is None:
        raise InvalidParams(
            f"{path_field}: missing; give {path_field} (an SQLite file, opened with data/open) or "
            "dbHandle (an open handle; 'default' for the default database)",
            field=path_field,
        )
    handle: str | None = params.db_handle
    if path is not None:
        handle = _open_path(service, check_path_text(path, path_field), mode, context)
    entry = service.registry.resolve(handle)
    if entry.row_filter is not None:
        raise PermissionDenied(
            f"Permission denied: this handle only reaches rows matching its row filter, and "
            f"{command_name} works on whole collections; use a handle without a row filter"
        )
    return entry
