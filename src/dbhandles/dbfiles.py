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

import contextlib
import os
import re
import sqlite3
import stat
import tempfile
import threading
import urllib.parse
from typing import IO, Any, Literal, cast

from dbhandles.errors import DbHandlesError, InvalidParams, StorageError

__all__ = [
    "PATH_SCHEMA",
    "LiveConnection",
    "PlainWriter",
    "being_written",
    "check_path_text",
    "check_plain",
    "connect_sqlite",
    "create_empty",
    "create_exclusive",
    "hold",
    "is_side_file",
    "is_sqlite_database",
    "live_conflict",
    "open_lock_file",
    "open_plain",
    "release",
    "replace_file",
    "sqlite_uri",
]

#: SQLite's side files of a database ``X``: ``X-wal``, ``X-shm``, ``X-journal`` and super-journals
#: ``X-mjNNNNNNNN`` (https://www.sqlite.org/tempfiles.html).
_SIDE_FILE = re.compile(r"-(wal|shm|journal|mj[0-9A-Fa-f]{8,9})\Z")
_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

_SQLITE_NOTADB = 26
#: SQLite's smallest page: a smaller file holds no database (SQLite would take it as an empty one).
_MIN_DATABASE = 512
_PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
_NAME_MAX = os.pathconf("/", "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
#: What ``check_path_text`` accepts, as JSON Schema (the OpenAPI document's ``Path``). The limits
#: are in bytes (UTF-8) and JSON Schema counts characters: the document says the length of a path
#: in characters (what no longer text can meet) and names the rest with the format ``dbh-path``.
PATH_SCHEMA: dict[str, object] = {
    "type": "string",
    "minLength": 1,
    "maxLength": _PATH_MAX - 1,
    "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029/]$",
    "format": "dbh-path",
    "description": f"A file path: no control character (C0, DEL, C1, U+2028, U+2029), not ending in "
    f"'/', at most {_PATH_MAX - 1} bytes (UTF-8) and {_NAME_MAX} bytes per name.",
}
#: Characters no path a caller gives may hold: C0 controls, DEL, C1 controls and the Unicode line
#: and paragraph separators. A file system takes them, but a name that holds a line break reads as
#: two lines wherever it is shown (the audit log's ``target``, a terminal, a log line).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: SQLITE_PERM, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_AUTH: the file could not be read at all.
_CANNOT_READ = frozenset({3, 10, 14, 23})

_lock = threading.Lock()
#: ``(st_dev, st_ino)`` of every database file this process has an SQLite connection to, with the
#: path it was opened by and how many connections hold it.
_live: dict[tuple[int, int], list[Any]] = {}
#: Canonical paths of other live database files (``hold``), with how many holders each.
_held: dict[str, int] = {}
#: Canonical paths of data files this process is writing with plain I/O (rejects, export partial
#: files), with how many writers each: no database may be opened on them meanwhile.
_writing: dict[str, int] = {}


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
        self._file, self._path, self._open = file, os.path.realpath(path), True
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
    """
    if immutable and mode != "ro":
        raise ValueError("immutable=1 is for read-only connections")
    conn = sqlite3.connect(
        sqlite_uri(path, mode, immutable=immutable),
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


def check_path_text(path: str | os.PathLike[str], field: str) -> str:
    """``path`` as text, refused before any system call if no file system could take it.

    Raises:
        InvalidParams: a NUL or other control character (``_CONTROL``), a path over ``PATH_MAX`` or a name over ``NAME_MAX`` bytes,
            or a path ending in ``/`` (that names a folder, not a file).
    """
    text = os.fspath(path)
    if not isinstance(text, str):
        raise InvalidParams(f"{field}: must be a text path", field=field)
    if "\x00" in text:
        raise InvalidParams(f"{field}: a path cannot contain NUL characters", field=field)
    bad = _CONTROL.search(text)
    if bad is not None:
        raise InvalidParams(
            f"{field}: a path cannot contain control characters (line breaks, tabs, C0/C1 "
            f"controls, U+2028/U+2029): {bad.group()!r} at position {bad.start()}",
            field=field,
        )
    if not text:
        raise InvalidParams(f"{field}: the path is empty", field=field)
    try:
        raw = os.fsencode(text)
    except UnicodeError as exc:
        raise InvalidParams(f"{field}: the path is not valid text ({exc})", field=field) from exc
    if len(raw) >= _PATH_MAX or any(len(part) > _NAME_MAX for part in raw.split(b"/")):
        raise InvalidParams(
            f"{field}: the path is too long (at most {_PATH_MAX - 1} bytes, {_NAME_MAX} a name)",
            field=field,
        )
    if text.endswith("/"):
        raise InvalidParams(f"{field}: {text} names a folder; give a file name", field=field)
    return text


def hold(path: str) -> None:
    """Count ``path`` (canonical) as a live database file of this process until ``release``.

    For databases that are not SQLite connections (the JSON adapter's files, rewritten under a new
    inode on every commit, so tracked by path)."""
    _count(_held, path, 1)


def release(path: str) -> None:
    """Undo one ``hold(path)``."""
    _count(_held, path, -1)


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
        if os.stat(path).st_size < _MIN_DATABASE:
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


def live_conflict(path: str, info: os.stat_result, *, writing: bool = False) -> str | None:
    """The live SQLite database of this process that ``path`` (with ``info`` from ``os.stat``) is, or
    is a side file or hard link of; for ``writing``, also a held database file (``hold``: plain
    reads of those are harmless, they carry no POSIX locks). ``None`` when it is none.
    """
    identity = (info.st_dev, info.st_ino)
    with _lock:
        entries = [(key, entry[0]) for key, entry in _live.items()]
        held = writing and os.path.realpath(path) in _held
    if held:
        return os.path.realpath(path)
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


def check_plain(path: str | os.PathLike[str], field: str, *, writing: bool = False) -> None:
    """Refuse ``path`` for plain file I/O if it is, or may be, part of a live database; for
    ``writing``, also anything but a missing or plain regular file.

    A missing file passes (it is not a database yet). For reading, folders and devices pass: the
    caller's own open reports them.

    Raises:
        InvalidParams: a path no file system takes (``check_path_text``); an SQLite side file by
            name; a database file (or side file, or hard link of one) this process has open; an
            SQLite database; for ``writing``: a symbolic link, a folder, device or pipe, or a file
            with other names (hard links), which writing would change behind those names.
    """
    text = check_path_text(path, field)
    if is_side_file(text):
        raise InvalidParams(
            f"{field}: {text} is named like one of SQLite's own files (-wal, -shm, -journal); "
            "those belong to a database and are never read or written as data files",
            field=field,
        )
    try:
        info = os.stat(text) if not writing else os.lstat(text)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InvalidParams(f"{field}: cannot use {text}: {exc.strerror}", field=field) from exc
    if writing and not stat.S_ISREG(info.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise InvalidParams(
            f"{field}: {text} is {what}; dbhandles only writes regular files it may replace",
            field=field,
        )
    if not stat.S_ISREG(info.st_mode):
        return
    database = live_conflict(text, info, writing=writing)
    if database is not None:
        same = "" if database == text else f" (the same file as {database})"
        raise InvalidParams(
            f"{field}: {text} is a database file{same} that this service has open; "
            "it is never read or written as a data file",
            field=field,
        )
    if writing and info.st_nlink > 1:
        raise InvalidParams(
            f"{field}: {text} has other names (hard links); writing it would change those files "
            "too, choose another file",
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


_WRITE_FLAGS = {
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "ab": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
}


def open_plain(path: str | os.PathLike[str], mode: str, field: str, **options: Any) -> IO[Any]:
    """``open(path, mode, **options)`` after :func:`check_plain` let ``path`` through.

    Writing modes (``wb``, ``w``, ``ab``) never follow a symbolic link (``O_NOFOLLOW``), so a link
    planted after the check cannot redirect the write.

    Raises:
        InvalidParams: from :func:`check_plain`.
        OSError: from ``open``.
    """
    writing = mode in _WRITE_FLAGS
    check_plain(path, field, writing=writing)
    if not writing:
        return open(os.fspath(path), mode, **options)
    fd = os.open(os.fspath(path), _WRITE_FLAGS[mode] | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    try:
        return cast(IO[Any], PlainWriter(os.fdopen(fd, mode, **options), os.fspath(path)))
    except BaseException:
        os.close(fd)
        raise


def create_exclusive(path: str | os.PathLike[str], field: str, mode: int = 0o666) -> IO[bytes]:
    """A new, empty file at ``path`` open for writing (a temporary name the caller renames later).

    A leftover file or link of that name (from a killed run, or planted) is removed first, then the
    file is created with ``O_EXCL | O_NOFOLLOW``: what is written lands in a new inode nobody else has.

    Raises:
        InvalidParams: from :func:`check_path_text`, or the name is a side file's.
        OSError: the folder is missing or not writable, or the name was taken again meanwhile.
    """
    text = check_path_text(path, field)
    if is_side_file(text):
        raise InvalidParams(f"{field}: {text} is named like one of SQLite's own files", field=field)
    try:
        if not stat.S_ISLNK(os.lstat(text).st_mode):
            # A leftover file is removed only if it could have been written here: never a
            # database, a live file, a special file or a file with other names.
            check_plain(text, field, writing=True)
        os.unlink(text)  # unlink never follows a link: a planted one is removed, its target kept
    except FileNotFoundError:
        pass
    fd = os.open(text, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    return cast(IO[bytes], PlainWriter(os.fdopen(fd, "wb"), text))


def open_lock_file(path: str | os.PathLike[str], field: str) -> int:
    """A descriptor on the lock file ``path`` (created if missing) for ``fcntl.flock``.

    ``flock`` locks belong to the open file, not the process, so closing this descriptor releases
    only this lock; but the file must not be a database, or closing it would release the process's
    POSIX locks on that database (see the module docstring).

    Raises:
        InvalidParams: from :func:`check_plain` (``writing``: no link, no database, no hard link).
        OSError: from ``os.open``.
    """
    check_plain(path, field, writing=True)
    return os.open(os.fspath(path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def replace_file(path: str | os.PathLike[str], data: bytes, field: str, mode: int = 0o600) -> None:
    """Write ``data`` to a new file next to ``path`` and rename it over ``path`` (atomic; the old
    file is never opened, and a link at ``path`` is replaced, not followed).

    Raises:
        InvalidParams: from :func:`check_plain` (``writing``).
        OSError: the folder is missing or not writable.
    """
    check_plain(path, field, writing=True)
    text = os.fspath(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(text)}.", dir=os.path.dirname(text) or "."
    )
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, text)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
