"""What kind of file a descriptor is on, and which file, checked after an open that cannot block
(``O_NONBLOCK``, ``O_PATH``): a named pipe (FIFO) swapped in for a file between a check by name and
the open is refused, never waited on (a pipe's read-only open waits for a writer; issue 12, round
20), and so is a link or another file swapped in there (``open_read``, ``sqlite_opened``: the file
opened is the file that was checked; issue 12, round 22)."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import stat
import threading
import urllib.parse
from collections.abc import Callable
from typing import Literal

from dbhandles.errors import InvalidParams, PathNotAllowed, StorageError
from dbhandles.values import json_text

__all__ = [
    "MIN_DATABASE",
    "OPENING",
    "PIPE",
    "SQLITE_HEADER",
    "Identity",
    "changed_while_opened",
    "descriptors",
    "is_sqlite_database",
    "open_read",
    "regular",
    "set_read_check",
    "sqlite_opened",
    "sqlite_uri",
    "waits_to_open",
]

_SQLITE_NOTADB = 26
#: SQLite's smallest page: a smaller file holds no database (SQLite would take it as an empty one).
MIN_DATABASE = 512
#: The first 16 bytes of every SQLite 3 database file (https://www.sqlite.org/fileformat.html, 1.3).
SQLITE_HEADER = b"SQLite format 3\x00"
#: SQLITE_PERM, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_AUTH: the file could not be read at all.
_CANNOT_READ = frozenset({3, 10, 14, 23})
#: Why SQLite is not let open a file read-only (``file_kinds.waits_to_open``).
PIPE = "a named pipe (FIFO), device or socket, not a database file"
#: Held while this process opens (``dbfiles.connect_sqlite``, ``is_sqlite_database``) or closes
#: (``dbfiles.LiveConnection.close``) an SQLite connection: no database descriptor of another
#: connection comes or goes (nor its number is reused) while ``sqlite_opened`` tells which
#: descriptor a connect opened.
OPENING = threading.RLock()
#: A file's ``(st_dev, st_ino)``: which file a name or a descriptor is on.
Identity = tuple[int, int]
#: How a descriptor just opened from a path is checked against what the running call decided
#: there (``set_read_check``: ``security/paths.confirm_read``, a layer above).
_read_check: list[Callable[[int, str | os.PathLike[str], str], None]] = []


def set_read_check(check: Callable[[int, str | os.PathLike[str], str], None]) -> None:
    """Let the path policy check every descriptor ``open_read`` and ``sqlite_opened`` confirm:
    ``check(fd, path, field)`` raises ``PathNotAllowed`` when the file opened is not the one the
    running call checked at ``path`` (``(st_dev, st_ino)`` recorded then)."""
    _read_check[:] = [check]


def changed_while_opened(field: str | None, path: str | os.PathLike[str]) -> PathNotAllowed:
    """The refusal of a name that led to another file (a link, another file) when it was opened
    than when it was checked: the same words wherever it leads, so they tell nothing of it."""
    prefix = f"{field}: " if field else ""
    return PathNotAllowed(
        f"{prefix}{json_text(os.fspath(path))} changed while it was being opened (it was replaced "
        "by a link or another file); nothing was read from it, try again",
        field=field,
    )


def open_read(
    path: str | os.PathLike[str], field: str, check: Callable[[os.stat_result], None]
) -> int:
    """A read-only descriptor (``O_NONBLOCK``) on the file ``path`` names now, never through a
    link at its last name, after ``check(info)`` and the path policy's check (``set_read_check``)
    passed for that very file.

    The name is looked up once, as an ``O_PATH | O_NOFOLLOW`` descriptor (which opens nothing and
    whose close releases no POSIX lock, so a live database's hard link swapped in is harmless),
    the checks run on that file, and it is then opened through that descriptor
    (``/proc/self/fd/N``), not by the name again. ``check`` is given the name's own ``lstat``
    taken after the look and found on the same file: its link count is the file's while the name
    still led to it (a hard link to another actor's file swapped in for the look and out again
    before an ``fstat`` would show one name by then, never while the name is a second one).

    Raises:
        PathNotAllowed: ``path`` is now a symbolic link, or led to another file after the look
            (``changed_while_opened``; a file replaced by a commit meanwhile is looked up
            again, twice at most), or from the checks.
        OSError: from ``os.open`` (``FileNotFoundError``, ``PermissionError``...).
    """
    look, info = _look(path, field)
    try:
        check(info)
        for confirm in _read_check:
            confirm(look, path, field)
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(f"/proc/self/fd/{look}", flags)
        except FileNotFoundError:  # no /proc: by the name, then compared
            fd = os.open(path, flags | os.O_NOFOLLOW)
    finally:
        os.close(look)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
        os.close(fd)
        raise changed_while_opened(field, path)
    return fd


def _look(path: str | os.PathLike[str], field: str) -> tuple[int, os.stat_result]:
    """An ``O_PATH | O_NOFOLLOW`` descriptor on the file ``path`` names, with the name's
    ``lstat`` taken after it, on that same file (see ``open_read``)."""
    for _ in range(3):
        look = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            info = os.fstat(look)
            named = os.lstat(path)
        except OSError:
            named = None
        same = named is not None and (named.st_dev, named.st_ino) == (info.st_dev, info.st_ino)
        if same and named is not None and not stat.S_ISLNK(info.st_mode):
            return look, named
        os.close(look)
        if named is None or stat.S_ISLNK(info.st_mode) or stat.S_ISLNK(named.st_mode):
            break
    raise changed_while_opened(field, path)


def descriptors() -> dict[int, Identity] | None:
    """The regular files this process has open, by descriptor (``None``: no ``/proc/self/fd``)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    found: dict[int, Identity] = {}
    for name in names:
        try:
            info = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue  # closed meanwhile (listdir's own descriptor among them)
        if stat.S_ISREG(info.st_mode):
            found[int(name)] = (info.st_dev, info.st_ino)
    return found


#: Names of files SQLite opens beside a database while other connections work: side files
#: (``-wal``, ``-shm``, ``-journal``, super-journals) and its temporary files.
_BESIDE = re.compile(r"(-(wal|shm|journal|mj[0-9A-Fa-f]{8,9})|/etilqs_[^/]*)\Z")


def _main(fd: int) -> bool:
    """Whether ``fd`` may be a connection's main database file: not a file SQLite opens beside
    one (another thread's statement opens those at any time)."""
    try:
        name = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
    except OSError:
        return False  # closed meanwhile: not this connection's, which is open
    return _BESIDE.search(name) is None


def sqlite_opened(
    path: str, expected: Identity, before: dict[int, Identity] | None, field: str
) -> None:
    """Check that the connection SQLite just opened by the name ``path`` (``sqlite3`` gives no
    way to open a descriptor, nor to refuse links) holds the file ``expected`` that was checked
    there (``os.lstat`` before the connect): some descriptor opened since ``before``
    (``descriptors``) is on it, or, when none is new (SQLite reuses a descriptor it kept for the
    file), one this process already had; then the path policy's check (``set_read_check``).

    Called under ``OPENING`` (with the connect and ``before``), so no other connection's database
    descriptor is opened, closed or renumbered meanwhile. Remaining window: SQLite reusing a
    descriptor it kept (no new one) while another thread opens some other file is refused (try
    again), and one it kept for another file the name led to meanwhile passes if this process
    has ``expected`` open too; nothing is checked without ``/proc/self/fd``.

    Raises:
        PathNotAllowed: the connection is on another file (``changed_while_opened``), or from
            the path policy's check.
    """
    after = descriptors()
    if after is None or before is None:
        return
    new = [fd for fd, identity in after.items() if before.get(fd) != identity and _main(fd)]
    held = [fd for fd in (new or list(after)) if after[fd] == expected]
    if not held:
        raise changed_while_opened(field, path)
    try:
        for confirm in _read_check:
            confirm(held[0], path, field)
    except OSError as exc:  # that descriptor closed meanwhile (another connection's)
        raise changed_while_opened(field, path) from exc


def waits_to_open(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a named pipe, device or socket, whose read-only open (``O_RDONLY``
    without ``O_NONBLOCK``, as SQLite's) may wait forever: asked before SQLite opens a database
    read-only. Looked at through an ``O_PATH`` descriptor, which opens nothing and whose close
    releases no POSIX lock (Linux: ``FMODE_PATH``), so it is harmless on a live database file
    (``dbfiles``). A pipe swapped in between this look and SQLite's own open (by name) is not
    caught. ``False`` when nothing is there (the open reports it)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def regular(fd: int, path: str | os.PathLike[str], field: str) -> None:
    """Check that ``fd`` (opened ``O_NONBLOCK``) is on a regular file, then clear ``O_NONBLOCK``
    so reads and writes of it behave as usual.

    Raises:
        IsADirectoryError: a folder (each caller words it).
        InvalidParams: a named pipe (FIFO), device or socket, in the words of the importer's own
            check of its input (``importer/command.py``).
    """
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    if not stat.S_ISREG(mode):
        raise InvalidParams(
            f"{field}: {json_text(os.fspath(path))} is not a regular file (a pipe or a device); "
            "save the data to a file first",
            field=field,
        )
    os.set_blocking(fd, True)


def sqlite_uri(path: str, mode: Literal["ro", "rw", "rwc"], *, immutable: bool = False) -> str:
    """A ``file:`` URI for ``path``: every byte that is not a plain path character is percent-encoded,
    so ``?``, ``#`` and ``%`` in a file name are never read as URI syntax."""
    uri = f"file:{urllib.parse.quote(os.fsencode(path))}?mode={mode}"
    return uri + "&immutable=1" if immutable else uri


def is_sqlite_database(path: str) -> bool:
    """Whether the regular file ``path`` is an SQLite database, asked of SQLite itself.

    The file is opened ``immutable=1`` (no locks, no ``-shm``), so this works on read-only mounts and
    never changes the file. A file smaller than SQLite's smallest page (512 bytes) is not reported
    as a database (SQLite would take an empty or tiny file as an empty database). Never call this on
    a side file: the callers refuse those by name and by link count first.

    Raises:
        StorageError: SQLite cannot open the file for another reason than its content.
    """
    try:
        if os.stat(path).st_size < MIN_DATABASE:
            return False
    except OSError as exc:
        raise StorageError(f"cannot inspect {json_text(str(path))}: {exc.strerror}") from exc
    try:
        if waits_to_open(path):
            raise sqlite3.OperationalError(PIPE)
        with OPENING:
            probe = sqlite3.connect(sqlite_uri(path, "ro", immutable=True), uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot inspect {json_text(str(path))}: {exc}") from exc
    try:
        probe.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == _SQLITE_NOTADB or "not a database" in str(exc):
            return False
        if primary in _CANNOT_READ:
            raise StorageError(f"cannot inspect {json_text(str(path))}: {exc}") from exc
        # Any other answer came after SQLite accepted the header. Without locks (immutable) a
        # page read while another process checkpoints may look "malformed": still a database.
        return True
    finally:
        with OPENING:
            probe.close()
    return True
