"""The one module allowed to touch database files with plain file I/O, and the rules that keep it safe.

Why this module exists: SQLite's locks on Unix are POSIX advisory locks, owned by a *process* and an
*inode*. When a process closes any descriptor on a file, every POSIX lock that process holds on that
file is released, the locks of its open SQLite connections included ("How To Corrupt An SQLite
Database File", section 2.2, https://www.sqlite.org/howtocorrupt.html). A server holding a connection
to ``default.sqlite`` that merely reads the file's 16-byte header with ``open()``/``close()`` loses its
shared lock; the next process on the same home that closes its last connection then believes it is
alone, checkpoints and deletes the write-ahead log under the server, and acknowledged writes are lost.

The rules, each enforced here and nowhere else:

- **Checks go through SQLite.** Whether a file is an SQLite database is asked of SQLite itself
  (:func:`is_sqlite_database`): SQLite's own VFS knows which inodes this process has open and never
  releases a lock by closing a second descriptor.
- **Creation never opens an existing file.** :func:`create_empty` uses ``O_CREAT | O_EXCL``, so it either
  makes a new inode (which nobody can hold locks on) or touches nothing.
- **Plain I/O on a file a user named goes through a gate** (:func:`open_plain`, :func:`check_plain`):
  it refuses SQLite's own side files by name (``-wal``, ``-shm``, ``-journal``, super-journals), any
  file that is (a hard link to) a database file or side file this process has a connection to, and any
  SQLite database (a JSONL input, an export, a rejects file or a JSON-adapter file is never one).
- **Connections are made here** (:func:`connect_sqlite`), so the set of live database files the gate
  consults is complete.

A lint-style test (``tests/test_plain_file_io.py``) fails when another module calls ``open()`` and its
relatives outside a short, reasoned allowlist.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
import urllib.parse
from pathlib import Path
from typing import IO, Any, Literal

from dbhandles.errors import DbHandlesError, InvalidParams, StorageError

__all__ = [
    "LiveConnection",
    "check_plain",
    "connect_sqlite",
    "create_empty",
    "is_side_file",
    "is_sqlite_database",
    "open_plain",
    "sqlite_uri",
]

#: SQLite's side files of a database ``X``: ``X-wal``, ``X-shm``, ``X-journal`` and super-journals
#: ``X-mjNNNNNNNN`` (https://www.sqlite.org/tempfiles.html).
_SIDE_FILE = re.compile(r"-(wal|shm|journal|mj[0-9A-Fa-f]{8,9})\Z")
_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

_SQLITE_NOTADB = 26
#: SQLITE_PERM, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_AUTH: the file could not be read at all.
_CANNOT_READ = frozenset({3, 10, 14, 23})

_lock = threading.Lock()
#: ``(st_dev, st_ino)`` of every database file this process has an SQLite connection to, with the
#: path it was opened by and how many connections hold it.
_live: dict[tuple[int, int], list[Any]] = {}


def sqlite_uri(path: str, mode: Literal["ro", "rw", "rwc"], *, immutable: bool = False) -> str:
    """A ``file:`` URI for ``path``: every byte that is not a plain path character is percent-encoded,
    so ``?``, ``#`` and ``%`` in a file name are never read as URI syntax."""
    uri = f"file:{urllib.parse.quote(os.fsencode(path))}?mode={mode}"
    return uri + "&immutable=1" if immutable else uri


def _identity(path: str) -> tuple[int, int] | None:
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
            super().close()
        finally:
            if identity is not None:
                with _lock:
                    entry = _live.get(identity)
                    if entry is not None:
                        entry[1] -= 1
                        if entry[1] <= 0:
                            del _live[identity]


def connect_sqlite(
    path: str, mode: Literal["ro", "rw", "rwc"], *, timeout: float = 5.0
) -> LiveConnection:
    """A connection to the database file ``path`` (autocommit, usable from any thread).

    Args:
        path: the canonical path of the file.
        mode: SQLite's ``mode`` URI parameter (``ro`` read-only, ``rw`` read-write, ``rwc`` create).
        timeout: seconds a statement waits for another process's lock.

    Raises:
        sqlite3.Error: from the driver; callers translate it at their own boundary.
    """
    conn = sqlite3.connect(
        sqlite_uri(path, mode),
        uri=True,
        timeout=timeout,
        check_same_thread=False,
        isolation_level=None,
        factory=LiveConnection,
    )
    identity = _identity(path)
    if identity is not None:
        with _lock:
            entry = _live.setdefault(identity, [path, 0])
            entry[1] += 1
        conn._dbh_identity = identity
    return conn


def is_side_file(path: str | os.PathLike[str]) -> bool:
    """Whether the name of ``path`` is that of an SQLite side file (``-wal``, ``-shm``, ``-journal``,
    a super-journal), whether or not its database exists."""
    return _SIDE_FILE.search(os.path.basename(os.fspath(path))) is not None


def is_sqlite_database(path: str) -> bool:
    """Whether the regular, non-empty file ``path`` is an SQLite database, asked of SQLite itself.

    The file is opened ``immutable=1`` (no locks, no ``-shm``), so this works on read-only mounts and
    never changes the file. An empty file is not reported as a database here (SQLite would take it
    as an empty one). Never call this on a side file: :func:`check_plain` refuses those by name first.

    Raises:
        StorageError: SQLite cannot open the file for another reason than its content.
    """
    try:
        if os.stat(path).st_size == 0:
            return False
    except OSError as exc:
        raise StorageError(f"cannot inspect {path}: {exc.strerror}") from exc
    try:
        probe = sqlite3.connect(sqlite_uri(path, "ro", immutable=True), uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot inspect {path}: {exc}") from exc
    try:
        probe.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == _SQLITE_NOTADB or "not a database" in str(exc):
            return False
        if primary in _CANNOT_READ:
            raise StorageError(f"cannot inspect {path}: {exc}") from exc
        # Any other answer came after SQLite accepted the header. Without locks (immutable) a
        # page read while another process checkpoints may look "malformed": still a database.
        return True
    finally:
        probe.close()
    return True


def create_empty(path: str, mode: int = 0o644) -> bool:
    """Create ``path`` as an empty file (an empty SQLite database) unless something is there already.

    ``O_EXCL`` means an existing file is never opened (so never closed, so no lock of this process on
    it is ever released); ``O_NOFOLLOW`` means a planted symlink is not followed.

    Returns:
        Whether the file was created.

    Raises:
        OSError: the folder is missing or not writable.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def _live_conflict(info: os.stat_result) -> str | None:
    """The database this process has a connection to whose file (or side file) ``info`` is."""
    identity = (info.st_dev, info.st_ino)
    with _lock:
        entries = [(key, entry[0]) for key, entry in _live.items()]
    for key, database in entries:
        if key == identity:
            return str(database)
    if info.st_nlink > 1:
        # A hard link under another name: compare with the side files of every live database.
        for _, database in entries:
            for suffix in _SIDE_SUFFIXES:
                if _identity(database + suffix) == identity:
                    return str(database) + suffix
    return None


def check_plain(path: str | os.PathLike[str], field: str) -> None:
    """Refuse ``path`` for plain file I/O if it is, or may be, part of a live SQLite database.

    A missing file passes (it is not a database yet). Folders and devices pass too: the caller's own
    open reports them.

    Raises:
        InvalidParams: ``path`` is an SQLite side file, a database file (or side file) this process has
            a connection to, or an SQLite database.
    """
    text = os.fspath(path)
    if is_side_file(text):
        raise InvalidParams(
            f"{field}: {text} is named like one of SQLite's own files (-wal, -shm, -journal); "
            "those belong to a database and are never read or written as data files",
            field=field,
        )
    try:
        info = os.stat(text)
    except OSError:
        return
    if not stat.S_ISREG(info.st_mode):
        return
    database = _live_conflict(info)
    if database is not None:
        same = "" if database == text else f" (the same file as {database})"
        raise InvalidParams(
            f"{field}: {text} is an SQLite database{same} that this service has open; "
            "it is never read or written as a data file",
            field=field,
        )
    try:
        database_file = is_sqlite_database(text)
    except DbHandlesError:
        database_file = False  # unreadable: the caller's own open reports why
    if database_file:
        raise InvalidParams(
            f"{field}: {text} is an SQLite database, not a data file; choose another file",
            field=field,
        )


def open_plain(path: str | os.PathLike[str], mode: str, field: str, **options: Any) -> IO[Any]:
    """``open(path, mode, **options)`` after :func:`check_plain` let ``path`` through.

    Raises:
        InvalidParams: from :func:`check_plain`.
        OSError: from ``open``.
    """
    check_plain(path, field)
    return open(Path(path), mode, **options)
