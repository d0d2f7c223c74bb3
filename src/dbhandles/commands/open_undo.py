"""The database file a ``data/open`` creates, and its removal when the open is refused after all.

A remote caller's new database file is created in its folder pinned without following links
(``pinned.Pinned``), and that descriptor is kept until the open ends: should the open be refused
(a folder on the way swapped for a link meanwhile, the handle store failing), the file is removed
from the folder it was made in, through that descriptor, never by looking its path up again, which
during a swap leads to another folder (or is refused) and left the file behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

import orjson

from dbhandles.adapters.jsonfile_read import FORMAT as JSON_FORMAT
from dbhandles.dbfiles import SIDE_SUFFIXES
from dbhandles.errors import PathNotAllowed, StorageError
from dbhandles.file_kinds import SQLITE_HEADER
from dbhandles.pinned import Pinned, changed
from dbhandles.pinned_look import read_head

__all__ = ["Created", "create_database_file", "undo_create"]

#: What creating a file the check found missing answers when its folder was swapped meanwhile.
_CHANGED_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


class Created:
    """A database file this call created: its folder pinned (``folder``, kept open until
    ``close``), its name there and its ``(st_dev, st_ino)``."""

    __slots__ = ("folder", "identity")

    def __init__(self, folder: Pinned, identity: tuple[int, int]) -> None:
        self.folder = folder
        self.identity = identity

    def close(self) -> None:
        """Close the pinned folder (idempotent)."""
        self.folder.close()


def create_database_file(path: str, given: str, mode: int) -> Created | None:
    """Create the missing database file ``path`` (real) empty, with ``mode``, in its folder pinned
    without following links (``O_EXCL | O_NOFOLLOW``); ``None`` when a file is there already.

    Raises:
        PathNotAllowed: a folder on the way is now a link, or is gone (``changed``, naming
            ``given``).
        StorageError: the file cannot be created for another reason (no space, no permission).
    """
    try:
        folder = Pinned(path, "config.path")
    except OSError as exc:
        if exc.errno in _CHANGED_ERRNOS:
            raise changed("config.path", given) from exc
        raise StorageError(f"cannot create {given}: {exc.strerror}") from exc
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(folder.name, flags, mode, dir_fd=folder.at())
        except FileExistsError:
            folder.close()
            return None
        except OSError as exc:
            if exc.errno in _CHANGED_ERRNOS:
                raise changed("config.path", given) from exc
            raise StorageError(f"cannot create {given}: {exc.strerror}") from exc
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        return Created(folder, (info.st_dev, info.st_ino))
    except BaseException:
        folder.close()
        raise


def undo_create(path: str | None, created: Created | None) -> None:
    """Remove the database file a refused ``data/open`` created while it is still the new file:
    a plain file with one name that is empty, an SQLite database without a table or a JSON-adapter
    file without a collection (what the adapter made of it). A file that was replaced, linked or
    written meanwhile stays.

    With ``created`` (made by ``create_database_file``), the file is looked for in the folder it
    was made in, through the descriptor kept since, and only that inode is removed, with the side
    files SQLite made beside it; its content is read through that descriptor too (never by the
    path, which a swapped folder leads elsewhere). Without it (a file the adapter created for the
    local user at ``path``), the folder of ``path`` is pinned now; without either, nothing goes.
    """
    try:
        if created is not None:
            _remove(created.folder, created.identity)
            return
        if path is None:
            return
        # In its folder pinned without following links: a folder swapped for a link to another
        # place (the home) since the open leads the removal nowhere (``pinned.Pinned``).
        with Pinned(path, None) as folder:
            _remove(folder, None)
    except (OSError, PathNotAllowed):
        return  # gone already, or not ours to remove


def _remove(folder: Pinned, identity: tuple[int, int] | None) -> None:
    """Remove ``folder.name`` from ``folder`` (and its side files) while it is the new file:
    ``identity`` when given, with one name, empty or as ``_empty_at`` says."""
    at = folder.at()
    info = os.lstat(folder.name, dir_fd=at)
    if identity is not None and (info.st_dev, info.st_ino) != identity:
        return
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        return
    # What SQLite or the JSON adapter wrote is looked at through the pinned folder, never by the
    # path, which during a swap leads elsewhere (and left the file behind: round 24).
    if info.st_size and not _empty_at(folder, info):
        return
    again = os.lstat(folder.name, dir_fd=at)
    if (again.st_dev, again.st_ino) != (info.st_dev, info.st_ino):
        return
    os.unlink(folder.name, dir_fd=at)
    for suffix in SIDE_SUFFIXES:
        with contextlib.suppress(OSError):
            os.unlink(f"{folder.name}{suffix}", dir_fd=at)


#: How much of a new file ``_empty_at`` reads: a JSON-adapter file without a collection is far
#: smaller, and an SQLite database's schema page (page 1) header is in its first 108 bytes.
_HEAD = 256


def _empty_at(folder: Pinned, info: os.stat_result) -> bool:
    """Whether the file ``info`` (``lstat`` of ``folder.name`` in ``folder``) is what a refused
    open makes of a new file: an SQLite database with nothing in its schema (and no write-ahead
    log holding more), or a JSON-adapter file without a collection.

    Read through the pinned folder (``pinned_look.read_head``), and only while no descriptor of
    this process is on the file (a connection on it: it is in use, and stays); a file other than
    ``info`` found there stays too."""
    try:
        head = read_head(folder, (info.st_dev, info.st_ino), _HEAD, None, through_held=False)
        if head is None:
            return False
        if head.startswith(SQLITE_HEADER):
            return _empty_schema(head) and _no_log(folder)
    except (OSError, PathNotAllowed):
        return False
    if info.st_size > _HEAD:
        return False
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and doc.get("format") == JSON_FORMAT and not doc.get("collections")


def _empty_schema(head: bytes) -> bool:
    """Whether an SQLite file starting with ``head`` has an empty schema: page 1 is a table leaf
    (type 13 at offset 100) with no cell (offsets 103-104; https://www.sqlite.org/fileformat.html,
    1.6)."""
    return len(head) >= 108 and head[100] == 13 and int.from_bytes(head[103:105], "big") == 0


def _no_log(folder: Pinned) -> bool:
    """Whether the database's write-ahead log in ``folder`` is missing or holds no frame (only
    its 32-byte header): pages written there would not show in the file itself."""
    try:
        log = os.stat(f"{folder.name}-wal", dir_fd=folder.at(), follow_symlinks=False)
    except FileNotFoundError:
        return True
    return stat.S_ISREG(log.st_mode) and log.st_size <= 32
