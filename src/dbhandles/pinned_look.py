"""Looking a caller's file up, and at its first bytes, through its folder pinned, never by its path.

A lookup by path (``os.stat(path)``) walks every folder on the way by name, so a folder swapped for
a link to another actor's space (``renameat2(RENAME_EXCHANGE)``) for just that moment leads it
there: its answer ("Not a directory", "Permission denied", a file's kind or first bytes) would then
tell the caller about names in a folder it may not list (issue 12, round 24). Here the folder is
opened one name at a time from ``/`` without following any link (``pinned.Pinned``) and the last
name is looked up relative to it (``fstatat``, ``openat`` with ``O_NOFOLLOW``), so every answer
depends on the caller's own folders only: a folder on the way that is a link now is ``changed``
(``path_not_allowed``); a name missing in the pinned folder is missing, whatever another folder
holds; nothing is read through a link.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from dbhandles.errors import PathNotAllowed
from dbhandles.file_kinds import (
    MIN_DATABASE,
    OPENING,
    SQLITE_HEADER,
    Identity,
    changed_while_opened,
    descriptors,
)
from dbhandles.pinned import Pinned, open_folder

__all__ = ["head_at", "look", "names_in", "read_head", "sqlite_header_at"]


def look(path: str, field: str) -> tuple[Pinned, os.stat_result] | None:
    """The folder of ``path`` (a real path) pinned, with its last name's ``lstat`` there;
    ``None`` when the name (or a folder on the way) is missing from the caller's own folders.
    The caller closes the folder.

    Raises:
        PathNotAllowed: a folder on the way is a symbolic link now (``changed``).
        OSError: a folder on the way is a file or not searchable, in the caller's own folders
            (never met through a link, so the answer is about those folders only).
    """
    try:
        folder = Pinned(path, field)
    except FileNotFoundError:
        return None
    try:
        info = os.stat(folder.name, dir_fd=folder.at(), follow_symlinks=False)
    except FileNotFoundError:
        folder.close()
        return None
    except BaseException:
        folder.close()
        raise
    return folder, info


def sqlite_header_at(
    folder: Pinned, info: os.stat_result, field: str, busy: Callable[[os.stat_result], bool]
) -> bool:
    """Whether the regular file ``info`` (its ``lstat`` in ``folder``) starts as an SQLite
    database does: at least 512 bytes, the 16-byte magic string and a page size SQLite takes.

    Read by ``read_head``: through a descriptor opened in the pinned folder (``O_NOFOLLOW``,
    ``O_NONBLOCK``), never by the path. Closing a plain descriptor on a file releases this process's POSIX locks on it
    (``dbfiles``), so this happens under ``OPENING`` (no SQLite connection of this process opens
    or closes meanwhile), only when ``busy(info)`` says no connection of this process holds the
    file, and a file this process has a descriptor on already (an SQLite connection made some
    other way included) is read through that descriptor (``pread``: no offset moves, nothing is
    closed); one open for writing only is a data file being written, never a database.

    Raises:
        PathNotAllowed: the name led to another file than ``info`` when it was opened
            (``changed_while_opened``), or to a file this process has open as a database
            (``busy``: the caller words it).
        OSError: the file cannot be opened or read.
    """
    if not stat.S_ISREG(info.st_mode) or info.st_size < MIN_DATABASE:
        return False
    with OPENING:
        if busy(info):
            raise PathNotAllowed(f"{field}: a database file this service has open", field=field)
        head = read_head(folder, (info.st_dev, info.st_ino), 100, field, through_held=True)
    if head is None or len(head) < 100 or not head.startswith(SQLITE_HEADER):
        return False
    size = int.from_bytes(head[16:18], "big")
    return size == 1 or (512 <= size <= 32768 and size & (size - 1) == 0)


def read_head(
    folder: Pinned, identity: Identity, n: int, field: str | None, *, through_held: bool
) -> bytes | None:
    """The first ``n`` bytes (fewer when the file is shorter) of ``folder.name``, the file
    ``identity`` in the pinned ``folder``.

    Read under ``OPENING`` (no SQLite connection of this process opens or closes meanwhile)
    through a descriptor opened in the pinned folder (``O_NOFOLLOW``, ``O_NONBLOCK``), never by
    the path. Closing a plain descriptor on a file releases this process's POSIX locks on it
    (``dbfiles``), so a file this process has a descriptor on already (an SQLite connection) is
    never opened again: with ``through_held`` it is read through that descriptor (``pread``: no
    offset moves, nothing is closed; ``None`` when none is readable, as one open for writing
    only), without it the answer is ``None`` (the file is in use), and so it is when this
    process's descriptors cannot be listed (with ``through_held``, the file is then opened).

    Raises:
        PathNotAllowed: the name led to another file than ``identity`` when it was opened
            (``changed_while_opened``, naming ``field``).
        OSError: the file cannot be opened or read.
    """
    with OPENING:
        listed = descriptors()
        if listed is None and not through_held:
            return None
        held = [fd for fd, seen in (listed or {}).items() if seen == identity]
        if held:
            return _read_held(held, identity, n) if through_held else None
        return _read_at(folder, identity, n, field)


def _read_held(held: list[int], identity: Identity, n: int) -> bytes | None:
    """The first ``n`` bytes of the file ``identity`` through a descriptor this process holds on
    it already (``None``: none is readable)."""
    for fd in held:
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) == identity:
                return _pread(fd, n)
        except OSError:
            continue  # write-only, or closed meanwhile
    return None


def _read_at(folder: Pinned, identity: Identity, n: int, field: str | None) -> bytes:
    """The first ``n`` bytes of ``folder.name`` opened in ``folder``, which must be ``identity``."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(folder.name, flags, dir_fd=folder.at())
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != identity:
            raise changed_while_opened(field, folder.path)
        return _pread(fd, n)
    finally:
        os.close(fd)


def head_at(
    folder: Pinned,
    info: os.stat_result,
    field: str,
    busy: Callable[[os.stat_result], bool],
    size: int,
) -> bytes | None:
    """The first ``size`` bytes (fewer: the whole file) of the regular file ``info`` (its
    ``lstat`` in ``folder``), read as ``sqlite_header_at`` reads them (``read_head``,
    ``through_held``); ``None`` when this process holds only write-only descriptors on it.

    Raises:
        PathNotAllowed: the name led to another file than ``info`` (``changed_while_opened``), or
            to a file this process has open as a database (``busy``).
        OSError: the file cannot be opened or read.
    """
    with OPENING:
        if busy(info):
            raise PathNotAllowed(f"{field}: a database file this service has open", field=field)
        return read_head(folder, (info.st_dev, info.st_ino), size, field, through_held=True)


def names_in(folder: str | os.PathLike[str], field: str) -> list[str]:
    """The names in ``folder`` (a real path), listed through it opened one name at a time from
    ``/`` (``pinned.open_folder``), never by its path; ``[]`` when it is missing or unreadable.

    Raises:
        PathNotAllowed: a folder on the way is a symbolic link now (``changed``).
    """
    try:
        pinned = open_folder(os.fspath(folder), field)
    except OSError:
        return []
    try:
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        listed = os.open(".", flags, dir_fd=pinned)
        try:
            return os.listdir(listed)
        finally:
            os.close(listed)
    except OSError:
        return []
    finally:
        os.close(pinned)


def _pread(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes from offset 0 (no offset moves), the whole file when shorter."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        part = os.pread(fd, size - got, got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)
