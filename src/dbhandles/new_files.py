"""New files on a path a caller named: made exclusively, or written aside and renamed into place,
always in the path's folder pinned without following links (``pinned.Pinned``).

The rules of ``dbfiles`` hold here too (a leftover is removed only after ``check_plain``; nothing
existing is opened but the replaced JSON-adapter file, which is never an SQLite file); what this
module adds is that no name is ever looked up again from ``/`` between the check and the write, so
a folder swapped for a link to another place (the service's home) is refused, never written into.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from typing import IO, cast

from dbhandles.dbfiles import PlainWriter, check_path_text, check_plain, is_side_file, know
from dbhandles.errors import PathNotAllowed
from dbhandles.pinned import Pinned
from dbhandles.values import json_text

__all__ = ["create_exclusive", "open_in", "replace_database_file", "replace_file"]

#: Flags of every open here of a name that is already there: never a link, never waiting on a
#: named pipe swapped in (its open would wait for the other end); the caller ``fstat``s the file.
_NO_WAIT = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def create_exclusive(
    path: str | os.PathLike[str], field: str, mode: int = 0o666, *, folder: int | None = None
) -> IO[bytes]:
    """A new, empty file at ``path`` open for writing (a temporary name the caller renames later).

    A leftover file or link of that name (from a killed run, or planted) is removed first, then the
    file is created with ``O_EXCL | O_NOFOLLOW``: what is written lands in a new inode nobody else has.
    Both are done in the path's folder pinned without following links (``folder``, the caller's
    ``pinned.Pinned`` descriptor, else one opened here): a folder swapped for a link is refused.

    Raises:
        InvalidParams: from :func:`check_path_text`.
        PathNotAllowed: the name is a side file's; a leftover file there that may not be replaced
            (:func:`check_plain`); a folder on the way is now a link.
        OSError: the folder is missing or not writable, or the name was taken again meanwhile.
    """
    text = check_path_text(path, field)
    if is_side_file(text):
        raise PathNotAllowed(
            f"{field}: {json_text(text)} is named like one of SQLite's own files", field=field
        )
    if folder is None:
        with Pinned(text, field) as pinned:
            return create_exclusive(text, field, mode, folder=pinned.at())
    name = os.path.basename(text)
    try:
        if not stat.S_ISLNK(os.lstat(name, dir_fd=folder).st_mode):
            # A leftover file is removed only if it could have been written here: never a
            # database, a live file, a special file or a file with other names.
            check_plain(text, field, writing=True)
        os.unlink(name, dir_fd=folder)  # never follows a link: a planted one goes, its target stays
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    file = os.fdopen(os.open(name, flags, mode, dir_fd=folder), "wb")
    try:
        return cast(IO[bytes], PlainWriter(file, text))
    except BaseException:
        file.close()
        raise


def replace_file(path: str | os.PathLike[str], data: bytes, field: str, mode: int = 0o600) -> None:
    """Write ``data`` to a new file next to ``path`` and rename it over ``path`` (atomic; the old
    file is never opened, and a link at ``path`` is replaced, not followed), all in the folder
    pinned without following links (``pinned.Pinned``).

    Raises:
        InvalidParams, PathNotAllowed: from :func:`check_plain` (``writing``); a folder on the way
            is now a link.
        OSError: the folder is missing or not writable.
    """
    check_plain(path, field, writing=True)
    with Pinned(path, field) as folder:
        _replace_in(folder, data, mode)


def _replace_in(folder: Pinned, data: bytes, mode: int, *, sync: bool = False) -> None:
    """Write ``data`` to a new file in ``folder`` and rename it over ``folder.name``."""
    at = folder.at()
    tmp = f".{folder.name[:200]}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                 dir_fd=at)  # fmt: skip
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if sync:
                file.flush()
                os.fsync(file.fileno())
        os.chmod(tmp, mode, dir_fd=at)
        os.replace(tmp, folder.name, src_dir_fd=at, dst_dir_fd=at)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=at)
        raise


def replace_database_file(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` (synced) to a new file next to the database file ``path`` and rename it over
    ``path`` (a JSON-adapter commit: atomic, so a crash leaves the old file or the new one), and
    empty the file it replaced when that file still has a name after the rename. All of it is done
    in the folder pinned without following links (``pinned.Pinned``), then the folder is synced.

    A hard link someone made to the database (a name in another actor's space, say) keeps the
    replaced file, with everything the database held then, once the rename gave ``path`` a new
    file: emptied here, no earlier content of the database stays readable under another name. The
    replaced file is opened before the rename (``O_NOFOLLOW``: a symbolic link at ``path`` is
    replaced, never followed) and checked after it (``st_nlink``), so a link made at any moment is
    caught. It is never an SQLite file (a JSON-adapter file), so no POSIX lock is released.

    Raises:
        PathNotAllowed: a folder on the way is now a link.
        OSError: from the write or the rename.
    """
    with Pinned(path, "config.path") as folder:
        at = folder.at()
        try:
            # O_NONBLOCK: a named pipe there is never waited on (for a reader), only left alone.
            old: int | None = os.open(folder.name, _NO_WAIT | os.O_WRONLY, dir_fd=at)
        except OSError:
            old = None  # missing (a new database), a symbolic link, or not ours to write
        if old is not None and not stat.S_ISREG(os.fstat(old).st_mode):
            os.close(old)
            old = None
        try:
            _replace_in(folder, data, mode, sync=True)
            know(path, vouched=True)  # the new file: made here, with this one name
            if old is not None and os.fstat(old).st_nlink > 0:
                os.ftruncate(old, 0)
        finally:
            if old is not None:
                os.close(old)
        listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=at)
        try:
            os.fsync(listing)
        finally:
            os.close(listing)


def open_in(folder: int, name: str) -> int:
    """A read-only descriptor on ``name`` in the pinned ``folder``, never following a link nor
    waiting (``O_NONBLOCK``, left set: the caller checks ``fstat`` and reads no data), for a file
    ``check_plain`` let through: never a database, so closing it releases no lock.

    Raises:
        OSError: from ``os.open`` (``ELOOP`` for a link).
    """
    return os.open(name, _NO_WAIT | os.O_RDONLY, dir_fd=folder)
