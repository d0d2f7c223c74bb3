"""The one module allowed to touch database files with plain file I/O, and the rules that keep it safe.

Why this module exists: SQLite's locks on Unix are POSIX advisory locks, owned by a *process* and an
*inode*. When a process closes any descriptor on a file, every POSIX lock that process holds on that
file is released, the locks of its open SQLite connections included ("How To Corrupt An SQLite
Database File", section 2.2, https://www.sqlite.org/howtocorrupt.html). A server holding a connection
to ``default.sqlite`` that merely reads the file's 16-byte header with ``open()``/``close()`` loses its
shared lock; the next process on the same home that closes its last connection then believes it is
alone, checkpoints and deletes the write-ahead log under the server, and acknowledged writes are lost.

The rules, each enforced here and nowhere else:

- **Checks go through SQLite,** or read a file no connection of this process holds. Whether a file
  is an SQLite database is asked of SQLite itself (:func:`is_sqlite_database`), whose VFS knows
  which inodes this process has open; the gate reads the header of a file a caller named through
  its pinned folder (``pinned_look``), under ``OPENING`` and only when no connection holds it.
- **Creation never opens an existing file.** :func:`create_empty` uses ``O_CREAT | O_EXCL``, so it either
  makes a new inode (which nobody can hold locks on) or touches nothing.
- **Plain I/O on a file a user named goes through a gate** (:func:`open_plain`, :func:`check_plain`):
  it refuses SQLite's own side files by name (``-wal``, ``-shm``, ``-journal``, super-journals), any
  file that is (a hard link to) a database file or side file this process has a connection to, a
  file with other names by a name it is not known by (for every caller, except a data file the
  local user reads: ``other_names``), and any SQLite database (a JSONL input, an export, a rejects
  file or a JSON-adapter file is never one).
- **Connections are made here** (:func:`connect_sqlite`), so the set of live database files the gate
  consults is complete.
- **A database file is used by one name.** A file with several names (hard links) is one inode, and
  SQLite keeps one set of side files per *name* ("How To Corrupt", section 2.4). The name this
  process uses a file by is recorded (:func:`know`: the first connection, a held JSON database, the
  home's default database, the name the handle store's book of names records,
  ``security/file_names.py``) and only that name is accepted for
  a file with other names (:func:`check_names`); every other name is a link and refused. So a link
  someone plants to the default database (or to another actor's) refuses the link, never the
  database under the name the service knows.

A lint-style test (``tests/test_plain_file_io.py``) fails when another module calls ``open()`` and its
relatives outside a short, reasoned allowlist.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
from collections.abc import Callable
from typing import IO, Any, Literal, cast

from dbhandles.errors import InvalidParams, PathNotAllowed
from dbhandles.file_kinds import (
    OPENING,
    PIPE,
    changed_while_opened,
    descriptors,
    is_sqlite_database,
    open_read,
    regular,
    sqlite_opened,
    sqlite_uri,
    waits_to_open,
)
from dbhandles.path_text import PATH_SCHEMA, check_path_text
from dbhandles.pinned import Pinned, decided
from dbhandles.pinned_look import look, sqlite_header_at
from dbhandles.values import json_text

__all__ = [
    "MAX_VALUE_BYTES",
    "PATH_SCHEMA",
    "SIDE_SUFFIXES",
    "LiveConnection",
    "PlainWriter",
    "being_written",
    "check_names",
    "check_path_text",
    "check_plain",
    "connect_sqlite",
    "create_empty",
    "file_identity",
    "hold",
    "is_side_file",
    "is_sqlite_database",
    "know",
    "known_name",
    "known_names",
    "live_conflict",
    "open_plain",
    "release",
    "set_file_refusal",
    "sqlite_uri",
]

#: SQLite's side files of a database ``X``: ``X-wal``, ``X-shm``, ``X-journal`` and super-journals
#: ``X-mjNNNNNNNN`` (https://www.sqlite.org/tempfiles.html).
_SIDE_FILE = re.compile(r"-(wal|shm|journal|mj[0-9A-Fa-f]{8,9})\Z")
#: The fixed suffixes of those side files (a super-journal's is random: ``_SIDE_FILE`` only).
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

_lock = threading.Lock()
#: ``(st_dev, st_ino)`` of every database file this process has an SQLite connection to, with the
#: path it was opened by and how many connections hold it.
_live: dict[tuple[int, int], list[Any]] = {}
#: Canonical paths of other live database files (``hold``), with how many holders each.
_held: dict[str, int] = {}
#: The one name (canonical path) this process uses each database file by, by ``(st_dev, st_ino)``
#: (``know``); an entry whose name no longer leads to its file is forgotten when looked up.
_names: dict[tuple[int, int], str] = {}
#: Canonical paths of data files this process is writing with plain I/O (rejects, export partial
#: files), with how many writers each: no database may be opened on them meanwhile.
_writing: dict[str, int] = {}


def _real(path: str | os.PathLike[str]) -> str:
    """``os.path.realpath(path)``, or ``path`` made absolute when a folder on the way changes
    while it is walked (``realpath`` then raises): what it is used for here (a name to compare,
    to record) is checked again on the file itself, and never a 500."""
    try:
        return os.path.realpath(path)
    except OSError:
        return os.path.abspath(path)


def _count(table: dict[str, int], path: str, step: int) -> None:
    with _lock:
        count = table.get(path, 0) + step
        if count > 0:
            table[path] = count
        else:
            table.pop(path, None)


def being_written(path: str) -> bool:
    """Whether this process has ``path`` (canonical) open for plain writing right now."""
    with _lock:
        return path in _writing


class PlainWriter:
    """A data file open for plain writing, known to the gate (``being_written``) until it is closed,
    so no database is opened on it meanwhile. Everything else is the wrapped file's."""

    def __init__(self, file: IO[Any], path: str) -> None:
        self._file, self._path, self._open = file, _real(path), True
        _count(_writing, self._path, 1)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def write(self, data: Any) -> int:
        return int(self._file.write(data))

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._file.close()
            finally:
                _count(_writing, self._path, -1)

    def __enter__(self) -> PlainWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _named(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of the file ``path`` names itself (``None``: nothing there).

    Raises:
        PathNotAllowed: a link, or a file with other names by a name it is not known by."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(info.st_mode):
        raise changed_while_opened("config.path", path)
    check_names(_real(path), info, "config.path")
    return info.st_dev, info.st_ino


def file_identity(path: str) -> tuple[int, int] | None:
    """``(device, inode)`` of the file at ``path``, ``None`` when there is none."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class LiveConnection(sqlite3.Connection):
    """An ``sqlite3.Connection`` whose file is known to :func:`check_plain` until it is closed."""

    _dbh_identity: tuple[int, int] | None = None

    def close(self) -> None:
        identity, self._dbh_identity = self._dbh_identity, None
        try:
            with OPENING:  # see file_kinds.sqlite_opened
                super().close()
        finally:
            if identity is not None:
                with _lock:
                    entry = _live.get(identity)
                    if entry is not None:
                        entry[1] -= 1
                        if entry[1] <= 0:
                            del _live[identity]


#: The largest string or blob SQLite may build or store on a connection of dbhandles
#: (``SQLITE_LIMIT_LENGTH``, bytes; also the largest row). Twice the longest import line (32 MiB)
#: and six times the default request body (10 MiB): no legal record comes near it. One SQL
#: function call (``printf``, ``zeroblob``, ``replace``, ``group_concat``) cannot be interrupted
#: by the time budget's progress handler, so a view computing gigabytes would hold a request for
#: as long as the allocation takes; with the limit it fails at once with ``SQLITE_TOOBIG``.
MAX_VALUE_BYTES = 64 << 20


def connect_sqlite(
    path: str, mode: Literal["ro", "rw", "rwc"], *, timeout: float = 5.0, immutable: bool = False
) -> LiveConnection:
    """A connection to the database file ``path`` (autocommit, usable from any thread).

    Args:
        path: the canonical path of the file.
        mode: SQLite's ``mode`` URI parameter (``ro`` read-only, ``rw`` read-write, ``rwc`` create).
        timeout: seconds a statement waits for another process's lock.
        immutable: SQLite's ``immutable=1`` (with ``mode`` ``ro`` only): no locks, no side files,
            so a database in WAL mode can be read from a folder this process cannot write; the
            caller promises nobody writes the file meanwhile (what is in its ``-wal`` is not read).

    Raises:
        sqlite3.Error: from the driver; callers translate it at their own boundary.
        PathNotAllowed: ``path`` is (or was, while SQLite opened it) a link or a file with other
            names by a name it is not known by (``check_names``), or the file the connection
            holds is not the one ``path`` named (``file_kinds.sqlite_opened``): closed, refused.
    """
    if immutable and mode != "ro":
        raise ValueError("immutable=1 is for read-only connections")
    if mode == "ro" and waits_to_open(path):
        raise sqlite3.OperationalError(f"unable to open database file: {PIPE}")
    if mode == "rwc" and decided(path):
        # A path a caller named was created in its pinned folder (create_empty) before this
        # open: SQLite, which opens by name, must not create another where a link swapped in
        # since leads (the service's home).
        mode = "rw"
    # SQLite opens by name and follows links: the file there now (no link, one name or the
    # known one) must be the one its connection holds (``file_kinds.sqlite_opened``).
    with OPENING:
        before, named = descriptors(), _named(path)
        conn = sqlite3.connect(
            sqlite_uri(path, mode, immutable=immutable),
            uri=True,
            timeout=timeout,
            check_same_thread=False,
            isolation_level=None,
            factory=LiveConnection,
        )
        try:
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
            identity = named or _named(path)  # None before: SQLite created it (``rwc``)
            if identity is None:  # the name was removed meanwhile: whatever SQLite opened, not it
                raise changed_while_opened("config.path", path)
            sqlite_opened(path, identity, before, "config.path")
        except BaseException:
            conn.close()
            raise
        with _lock:  # under OPENING: a header read (pinned_look) never misses a new connection
            entry = _live.setdefault(identity, [path, 0])
            entry[1] += 1
        conn._dbh_identity = identity
    know(path)
    return conn


def is_side_file(path: str | os.PathLike[str]) -> bool:
    """Whether the name of ``path`` is that of an SQLite side file (``-wal``, ``-shm``, ``-journal``,
    a super-journal), whether or not its database exists."""
    return _SIDE_FILE.search(os.path.basename(os.fspath(path))) is not None


def hold(path: str) -> None:
    """Count ``path`` (canonical) as a live database file of this process until ``release``.

    For databases that are not SQLite connections (the JSON adapter's files, rewritten under a new
    inode on every commit, so tracked by path); ``path`` is also the name its file is used by
    (``know``)."""
    _count(_held, path, 1)
    know(path)


def know(path: str | os.PathLike[str], *, vouched: bool = False) -> None:
    """Record ``path`` (made canonical) as the one name this process uses its file by, unless the
    file is already known by another name that still leads to it (the first name wins) and the
    name is not ``vouched``. A missing file records nothing.

    Called for the home's default database (before it is opened, ``vouched``), by
    :func:`connect_sqlite` and :func:`hold` for every database opened (a name reaches those only
    after :func:`check_names`), for an SQLite side file seen with one name next to its database,
    and, ``vouched``, for a name the handle store's book of names records for the file's identity
    (``security/file_names.py``: that record wins over whatever this process met first).
    """
    real = _real(os.fspath(path))
    identity = file_identity(real)
    if identity is None:
        return
    with _lock:
        current = _names.get(identity)
    if (
        not vouched
        and current is not None
        and current != real
        and file_identity(current) == identity
    ):
        return
    with _lock:
        _names[identity] = real


def known_name(info: os.stat_result) -> str | None:
    """The name this process uses the file ``info`` (``os.stat``) describes by (``None``: none)."""
    identity = (info.st_dev, info.st_ino)
    with _lock:
        name = _names.get(identity)
    if name is None or file_identity(name) == identity:
        return name
    with _lock:  # that name now leads elsewhere (deleted, replaced): the file is known by none
        if _names.get(identity) == name:
            del _names[identity]
    return None


def known_names() -> list[str]:
    """Every name this process uses a database file by (``know``)."""
    with _lock:
        return list(_names.values())


def check_names(path: str, info: os.stat_result, field: str | None = None) -> None:
    """Refuse the file ``path`` (canonical; ``info`` from ``os.stat``) if it has other names (hard
    links) and ``path`` is not the one name this process uses it by (``know``).

    The message names ``path`` only (the caller gave it), never the other name, which may be in the
    service's home or another actor's space.

    Raises:
        PathNotAllowed: a file with other names, by a name that is not the known one (or none is
            known: then no name of it is used, since none can be told from a planted link).
    """
    if info.st_nlink <= 1 or not stat.S_ISREG(info.st_mode):
        return
    known = known_name(info)
    if known == path:
        return
    prefix = f"{field}: " if field else ""
    if known is not None:
        why = ("is another name (a hard link) of a database file this service uses by another "
               "name; a file is used by one name only: use that name, or remove this link")  # fmt: skip
    else:
        why = ("has other names (hard links), and this service knows none of them as its name; a "
               "database or data file is used by one name only: use a file that has one name, "
               "or remove the other names")  # fmt: skip
    raise PathNotAllowed(f"{prefix}{json_text(str(path))} {why}", field=field)


def release(path: str) -> None:
    """Undo one ``hold(path)``."""
    _count(_held, path, -1)


def create_empty(path: str, mode: int = 0o644, *, pinned: bool = False) -> bool:
    """Create ``path`` as an empty file (an empty SQLite database) unless something is there already.

    ``O_EXCL`` means an existing file is never opened (so never closed, so no lock of this process on
    it is ever released); ``O_NOFOLLOW`` means a planted symlink is not followed. With ``pinned``,
    or for a path the path policy decided on in the running call (``pinned.decided``: a path a
    caller named, real), the file is made in its folder opened without following any link
    (``pinned.Pinned``), so a folder swapped for a link after the check is refused.

    Returns:
        Whether the file was created.

    Raises:
        PathNotAllowed: ``pinned``, and a folder on the way is now a link.
        OSError: the folder is missing or not writable.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        if pinned or decided(path):
            with Pinned(path, "config.path") as folder:
                fd = os.open(folder.name, flags, mode, dir_fd=folder.at())
        else:
            fd = os.open(path, flags, mode)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def live_conflict(path: str, info: os.stat_result, *, writing: bool = False) -> str | None:
    """The live SQLite database of this process that ``path`` (with ``info`` from ``os.stat``) is, or
    is a side file or hard link of; for ``writing``, also a held database file (``hold``: plain
    reads of those are harmless, they carry no POSIX locks). ``None`` when it is none.
    """
    identity = (info.st_dev, info.st_ino)
    with _lock:
        entries = [(key, entry[0]) for key, entry in _live.items()]
        held = writing and _real(path) in _held
    if held:
        return _real(path)
    for key, database in entries:
        if key == identity:
            return str(database)
    if info.st_nlink > 1:
        # A hard link under another name: compare with the side files of every live database.
        for _, database in entries:
            for suffix in SIDE_SUFFIXES:
                if file_identity(database + suffix) == identity:
                    return str(database) + suffix
    return None


def check_plain(
    path: str | os.PathLike[str], field: str, *, writing: bool = False, other_names: bool = False
) -> None:
    """Refuse ``path`` for plain file I/O if it is, or may be, part of a live database; for
    ``writing``, also anything but a missing or plain regular file. ``other_names``: a file to read
    may have other names (the local user's data read: docs/security.md "One name per file").

    A missing file passes (it is not a database yet). For reading, folders and devices pass: the
    caller's own open reports them.

    Every refusal of a file the caller may not use is ``path_not_allowed``, the code the path
    policy (``security/paths.py``) gives a file outside the caller's places, so a refusal of one
    kind has one code whichever door it came through; ``invalid_params`` is kept for a path whose
    text no file system takes.

    Raises:
        InvalidParams: a path no file system takes (``check_path_text``), or one the system cannot
            inspect (a parent that is a file, no permission).
        PathNotAllowed: an SQLite side file by name; a database file (or side file, or hard link of
            one) this process has open; an SQLite database; a regular file with other names (hard
            links) by a name it is not known by (``know``; not with ``other_names``); for ``writing``: a symbolic link, a
            folder, device or pipe, or a file with other names (hard links), which writing would
            change behind those names.
    """
    text = check_path_text(path, field)
    if is_side_file(text):
        raise PathNotAllowed(
            f"{field}: {json_text(text)} is named like one of SQLite's own files (-wal, -shm, -journal); "
            "those belong to a database and are never read or written as data files",
            field=field,
        )
    try:  # in its folder pinned, never by the path: no folder swapped in is walked (pinned_look)
        looked = look(os.path.abspath(text), field)
    except OSError as exc:
        raise InvalidParams(
            f"{field}: cannot use {json_text(text)}: {exc.strerror}", field=field
        ) from exc
    if looked is None:
        return
    folder, info = looked
    with folder:
        try:
            if not writing and stat.S_ISLNK(info.st_mode):
                # The path policy hands real paths: a link there now was put after the check.
                raise changed_while_opened(field, text)
            _check_file(text, info, field, writing, folder, other_names and not writing)
        except PathNotAllowed as exc:
            told = _file_refusal[0](text, info, exc) if _file_refusal else exc
            if told is exc:
                raise
            raise told from None


#: How a refusal about the file behind a name is told to the running call's caller
#: (``set_file_refusal``).
_file_refusal: list[Callable[[str, os.stat_result, PathNotAllowed], PathNotAllowed]] = []


def set_file_refusal(
    told: Callable[[str, os.stat_result, PathNotAllowed], PathNotAllowed],
) -> None:
    """Let the path policy (``security/paths.py``, a layer above) word the gate's refusals about
    the file behind a name: ``told(path, info, refusal)`` returns the refusal to raise (for a
    caller who may not use that file, words that do not depend on it)."""
    _file_refusal[:] = [told]


def _opened(text: str, info: os.stat_result, field: str, other_names: bool = False) -> None:
    """``check_plain``'s checks of a file to read that need no open, again on the file a name led
    to when it was opened (``info``): a file swapped in since the check by name."""
    try:
        if stat.S_ISREG(info.st_mode) and live_conflict(text, info) is not None:
            raise changed_while_opened(field, text)
        linked = info.st_nlink > 1 and not other_names and known_name(info) != _real(text)
        if stat.S_ISREG(info.st_mode) and linked:
            raise changed_while_opened(field, text)
    except PathNotAllowed as exc:
        told = _file_refusal[0](text, info, exc) if _file_refusal else exc
        raise told from None


def _check_file(
    text: str, info: os.stat_result, field: str, writing: bool, folder: Pinned, other: bool
) -> None:
    """``check_plain``'s checks of the file ``info`` found at ``text`` (in ``folder``;
    ``other``: a file with other names is accepted, the local user's data file)."""
    if writing and not stat.S_ISREG(info.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise PathNotAllowed(
            f"{field}: {json_text(text)} is {what}; dbhandles only writes regular files it may replace",
            field=field,
        )
    if not stat.S_ISREG(info.st_mode):
        return
    database = live_conflict(text, info, writing=writing)
    if database is not None:
        # The other name is not shown: it may be in the service's home or another actor's space.
        same = "" if database == text else " (by another of its names: hard links)"
        raise PathNotAllowed(
            f"{field}: {json_text(text)} is a database file{same} that this service has open; "
            "it is never read or written as a data file",
            field=field,
        )
    if writing and info.st_nlink > 1:
        raise PathNotAllowed(
            f"{field}: {json_text(text)} has other names (hard links); writing it would change those files "
            "too, choose another file",
            field=field,
        )
    try:
        busy = lambda seen: live_conflict(text, seen, writing=writing) is not None  # noqa: E731
        database_file = sqlite_header_at(folder, info, field, busy)
    except OSError:
        database_file = False  # unreadable: the caller's own open reports why
    if database_file:
        raise PathNotAllowed(
            f"{field}: {json_text(text)} is an SQLite database, not a data file; choose another file",
            field=field,
        )
    if info.st_nlink > 1 and not other and known_name(info) != _real(text):
        # A second name is a way to a file past every check made on its first (the home's
        # admin.token, another actor's data): only the name it is known by, except for the local
        # user's data reads (``other_names``: a live database or SQLite file was refused above).
        raise PathNotAllowed(
            f"{field}: {json_text(text)} has other names (hard links) and is not the name this service "
            "uses its file by; a file is read by one name only: use a file with one name",
            field=field,
        )


_WRITE_FLAGS = {
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
}


def open_plain(
    path: str | os.PathLike[str],
    mode: str,
    field: str,
    *,
    other_names: bool = False,
    **options: Any,
) -> IO[Any]:
    """``open(path, mode, **options)`` after :func:`check_plain` let ``path`` through
    (``other_names``: as there, for a read).

    Writing modes (``wb``, ``w``, ``ab``) never follow a symbolic link: not the last name
    (``O_NOFOLLOW``), nor a folder on the way (the file is opened in its folder pinned by
    ``pinned.Pinned``), so a link planted after the check cannot redirect the write.

    Raises:
        InvalidParams, PathNotAllowed: from :func:`check_plain`; a folder on the way is now a link;
            not a regular file once opened (a pipe swapped in: ``O_NONBLOCK``, never waited for).
        OSError: from ``open`` (``IsADirectoryError`` for a folder).
    """
    writing = mode in _WRITE_FLAGS
    check_plain(path, field, writing=writing, other_names=other_names)
    if not writing:  # no link followed; the file opened is checked again (``_opened``)
        fd = open_read(path, field, lambda info: _opened(os.fspath(path), info, field, other_names))
    else:
        with Pinned(path, field) as folder:
            flags = _WRITE_FLAGS[mode] | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(folder.name, flags, 0o666, dir_fd=folder.at())
    try:
        regular(fd, path, field)
        file = os.fdopen(fd, mode, **options)
    except BaseException:
        os.close(fd)
        raise
    return cast(IO[Any], PlainWriter(file, os.fspath(path))) if writing else file
