"""Folders another OS user can change: where SQLite's own opens by name cannot be trusted.

SQLite opens a database's side files (``-wal``, ``-shm``, ``-journal``) by name, after any check
and for as long as a connection lives, and removes them by name when its last connection closes
(``sqlite3WalClose``, ``unixShmUnmap``). dbhandles pins the folders of every file it makes itself
(``pinned.py``), but cannot pin those. Whoever may rename a folder on a database's path can
therefore point one of those opens, or removals, at a file of the same name elsewhere: the
service's home, another actor's database. So, as OpenSSH's ``StrictModes`` and ``sudo`` do for the
files they trust, a remote non-admin actor's database is opened only where no other OS user can
change its path: every folder from ``/`` down to the database's own folder is owned by root or by
the service's user, and no folder on the way may be written by group or others, except a folder
with the sticky bit (the system temp folder: only an entry's owner may rename it, and the next
folder down is checked in turn). The database's own folder must not be writable by anyone else at
all, sticky or not (another user could plant ``name-wal`` there). The service's own user is
trusted: it can read the home anyway (docs/security.md, "Decided once").
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dbhandles.errors import PathNotAllowed
from dbhandles.pinned import changed
from dbhandles.values import json_text

__all__ = ["changeable_folder", "refuse_changeable"]

#: Group and others' write permission.
_SHARED_WRITE = stat.S_IWGRP | stat.S_IWOTH


def changeable_folder(database: Path) -> tuple[Path, bool] | None:
    """The first folder from ``/`` down to ``database``'s own folder (``database`` a real path:
    no links left) that an OS user other than root and the service's own can rename or write
    into, and whether the path changed since it was resolved (a name on the way that is now a
    link); ``None`` when there is none. The walk stops at the first missing folder or file (refused
    later). A missing folder is made by the service, private and pinned (``paths.ensure_parent``),
    but another OS user may make it first in a sticky folder, so ``data/open`` asks again once
    every folder exists (``commands/handles._prepare_file``).
    """
    trusted = {0, os.geteuid()}
    folder = database.parent
    for part in [*reversed(folder.parents), folder]:
        try:
            info = os.lstat(part)
        except FileNotFoundError:
            return None
        except OSError:
            return part, False
        if stat.S_ISLNK(info.st_mode):
            return part, True
        if not stat.S_ISDIR(info.st_mode):
            return None  # a file: "a parent of this path is a file" (``paths.ensure_parent``)
        if info.st_uid not in trusted:
            return part, False
        if info.st_mode & _SHARED_WRITE and (part == folder or not info.st_mode & stat.S_ISVTX):
            return part, False
    return None


def refuse_changeable(database: Path, shown: str, field: str = "config.path") -> None:
    """Refuse a remote non-admin actor's database whose path another OS user can change. Asked
    after the access decision, so a path nobody shared with the caller is answered as before; the
    folder is not named (its real path would show where the data root is).

    Args:
        database: the database's real path.
        shown: the path as the caller gave it (for the message).
        field: the param the path came from (``dbHandle`` for a stored handle's reopen).

    Raises:
        PathNotAllowed: ``changeable_folder`` found one (field ``field``), or the path changed
            since it was resolved (``pinned.changed``'s words).
    """
    found = changeable_folder(database)
    if found is None:
        return
    if found[1]:
        raise changed(field, shown)
    raise PathNotAllowed(
        f"{field}: {json_text(shown)}: a folder on this path can be renamed or written by "
        "another OS user (owned by another user, or writable by group or others); SQLite opens a "
        "database's -wal and -shm by name, so such a database is opened only by an administrator "
        "or the local user",
        field=field,
    )
