"""A folder pinned by a descriptor: files made, renamed or removed in it by their names only.

A path is checked on its real path (``security/paths.py``), but a check by name says nothing of the
moment after it: a folder on the way can be swapped for a symbolic link to another place (the
service's home) between the check and the write, and ``O_NOFOLLOW``/``O_EXCL`` guard only the last
name. So every file dbhandles creates, replaces, renames or deletes on a path a caller named is
handled relative to its folder's descriptor (``os.open(name, dir_fd=)``, ``os.replace(...,
src_dir_fd=, dst_dir_fd=)``, ``os.unlink(name, dir_fd=)``), and that descriptor is opened by
:func:`open_folder` one name at a time from ``/`` with ``O_NOFOLLOW | O_DIRECTORY``: it is the
folder the checked path names, or the open fails. The paths handed here are real paths (the path
policy resolves every path it decides on), so a link found on the way was put there after the
check, and is refused (``path_not_allowed``), never followed. Once open, the descriptor names that
folder wherever it is moved: a rename by someone who may write in it keeps it among the places they
may write.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import stat

from dbhandles.errors import PathNotAllowed
from dbhandles.values import json_text

__all__ = [
    "Made",
    "Pinned",
    "Snapshot",
    "begin_decided",
    "changed",
    "decide",
    "decided",
    "end_decided",
    "ensure",
    "ensured",
    "gone",
    "moved",
    "open_folder",
    "remove_made",
    "snapshot",
    "stays",
]

#: ``O_PATH``: only search permission is needed on each folder, and nothing is read through it.
_WALK = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


#: The real paths the path policy decided on in the running call (``security/paths.py`` records
#: them): the paths an adapter or writer below it is handed, which must not be resolved again.
_DECIDED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "dbhandles_decided", default=frozenset()
)


def begin_decided() -> contextvars.Token[frozenset[str]]:
    """Start a call with no decided path (``security.paths.begin_call``)."""
    return _DECIDED.set(frozenset())


def end_decided(token: contextvars.Token[frozenset[str]]) -> None:
    _DECIDED.reset(token)


def decide(path: str) -> None:
    """Record ``path`` (real) as decided by the path policy in the running call."""
    _DECIDED.set(_DECIDED.get() | {path})


def decided(path: str) -> bool:
    """Whether the path policy decided on ``path`` in the running call."""
    return path in _DECIDED.get()


def stays(given: str, real: str, field: str | None) -> None:
    """Refuse a decided path ``given`` that now resolves elsewhere (``real``): an adapter that
    canonicalises a path again after the policy decided on it would otherwise follow a folder
    swapped for a link since.

    Raises:
        PathNotAllowed: ``given`` was decided and ``real`` differs (``changed``).
    """
    if real != given and decided(given):
        raise changed(field, given)


def real(path: str, field: str | None) -> str:
    """``os.path.realpath(path)``; a lookup that fails because a folder on the way changed while
    it was walked (``realpath`` raises ``EINVAL``, ``ENOENT``...) is a refusal, never a 500.

    Raises:
        PathNotAllowed: ``realpath`` raised (``changed``).
    """
    try:
        return os.path.realpath(path)
    except OSError as exc:
        raise changed(field, path) from exc


def changed(field: str | None, path: str) -> PathNotAllowed:
    """The refusal of a path that changed between its check and its use (a folder on the way is
    now a symbolic link, or moved): the same words wherever the link leads."""
    prefix = f"{field}: " if field else ""
    return PathNotAllowed(
        f"{prefix}{json_text(path)} changed while it was checked (a folder on the way was replaced by a "
        "link or moved); nothing was written, try again",
        field=field,
    )


#: A folder ``open_folder`` made: ``(path, st_dev, st_ino)``, for ``remove_made``.
Made = tuple[str, int, int]


def gone(exc: OSError, field: str | None, path: str) -> PathNotAllowed | None:
    """The refusal for ``exc``, raised creating the file ``path`` in a folder this call made sure
    of moments before (``ensure``), when it says that folder is not there any more (``ENOENT``,
    ``ENOTDIR``, ``ELOOP``: swapped or moved since): ``changed``, never a storage failure or
    bad params. ``None`` for other errors (a full disk, no permission) and other folders (one
    that was never there is the caller's mistake)."""
    folder = os.path.dirname(os.path.abspath(path))
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP) and ensured(folder):
        return changed(field, path)
    return None


def ensure(folder: str) -> None:
    """Record that the folder ``folder`` (real) was made sure of in the running call
    (``paths.ensure_parent``): from now on, its absence is a change (``gone``)."""
    decide(folder.rstrip(os.sep) + os.sep)  # a file's path never ends with a separator


def ensured(folder: str) -> bool:
    """Whether ``ensure`` recorded ``folder`` in the running call."""
    return decided(folder.rstrip(os.sep) + os.sep)


def open_folder(
    folder: str,
    field: str | None,
    shown: str | None = None,
    *,
    make: bool = False,
    made: list[Made] | None = None,
) -> int:
    """A descriptor (``O_PATH``) on ``folder`` (absolute, real), opened one name at a time from
    ``/`` without following any link. The caller closes it.

    Args:
        folder: the folder's real path (made absolute; ``..`` is resolved by text).
        field: the param named in a refusal.
        shown: the path named in a refusal (default: ``folder``).
        make: create each missing folder on the way (mode 0700), in the folder opened before it.
        made: with ``make``, gets each folder this call made (outermost first), so a call that
            is refused later can remove them (``remove_made``).

    Raises:
        PathNotAllowed: a name on the way is a symbolic link (``changed``).
        OSError: a name on the way is missing (without ``make``), not a folder, or not
            searchable; or a folder cannot be created.
    """
    absolute = os.path.abspath(folder)
    fd = os.open("/", _WALK)
    walked = ""
    try:
        for name in absolute.split("/"):
            if not name:
                continue
            walked += "/" + name
            try:
                step, new = _step(name, fd, make)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _swapped(name, fd):
                    raise changed(field, shown or folder) from exc
                raise
            os.close(fd)
            fd = step
            if new and made is not None:
                info = os.fstat(fd)
                made.append((walked, info.st_dev, info.st_ino))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _step(name: str, folder: int, make: bool) -> tuple[int, bool]:
    """``name`` in ``folder`` opened without following a link; made first if missing and
    ``make``. Returns the descriptor and whether this call made the folder."""
    try:
        return os.open(name, _WALK, dir_fd=folder), False
    except FileNotFoundError:
        if not make:
            raise
    new = False
    # Made meanwhile if it exists (a folder, a file or a link: the open that follows tells).
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=folder)
        new = True
    return os.open(name, _WALK, dir_fd=folder), new


def remove_made(made: list[Made]) -> None:
    """Remove the folders a refused call made (``open_folder``'s ``made``), innermost first, each
    only while it is still the folder made (same ``st_dev``/``st_ino``, reached without following
    a link) and empty: a folder someone put a file in, or swapped, stays. Never raises."""
    for path, dev, ino in reversed(made):
        parent, name = os.path.split(path)
        try:
            fd = open_folder(parent, None)
        except (OSError, PathNotAllowed):
            return  # the way there changed: leave it (and the folders above it)
        try:
            info = os.lstat(name, dir_fd=fd)
            if not stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) != (dev, ino):
                return
            os.rmdir(name, dir_fd=fd)  # only an empty folder (ENOTEMPTY otherwise)
        except OSError:
            return
        finally:
            os.close(fd)


def _swapped(name: str, folder: int) -> bool:
    """Whether ``name`` in ``folder``, which just failed to open as a folder (``ELOOP``,
    ``ENOTDIR``), changed rather than being a file: a link now, gone, or a folder again (a link
    a moment ago, swapped back since). Only a name that is still a file or another non-folder is
    the caller's mistake ("a parent of this path is a file")."""
    try:
        mode = os.lstat(name, dir_fd=folder).st_mode
    except OSError:
        return True  # gone meanwhile: it changed all the same
    return stat.S_ISLNK(mode) or stat.S_ISDIR(mode)


class Pinned:
    """The folder of ``path``, pinned (``open_folder``) until ``close``; ``name`` is the path's
    last name, which every call relative to ``fd`` uses.

    Raises:
        PathNotAllowed, OSError: from ``open_folder``.
    """

    __slots__ = ("fd", "folder", "name", "path")

    def __init__(self, path: str | os.PathLike[str], field: str | None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.folder, self.name = os.path.split(self.path)
        self.fd: int | None = open_folder(self.folder, field, self.path)

    def at(self) -> int:
        """The folder's descriptor (``dir_fd``).

        Raises:
            ValueError: closed.
        """
        if self.fd is None:
            raise ValueError("the pinned folder is closed")
        return self.fd

    def stays(self, field: str | None) -> None:
        """Refuse a folder its path no longer leads to (gone, moved, a link now): a check made of
        the descriptor (``os.access(".", dir_fd=)``) answers for the folder pinned, and a file
        created later by the path would land elsewhere, so the path changed while it was checked.

        Raises:
            PathNotAllowed: the path's folder is missing or another folder (``changed``).
            ValueError: closed.
        """
        pinned = os.fstat(self.at())
        try:
            named = os.lstat(self.folder)
        except OSError as exc:
            raise changed(field, self.path) from exc
        if (named.st_dev, named.st_ino) != (pinned.st_dev, pinned.st_ino):
            raise changed(field, self.path)

    def close(self) -> None:
        """Close the descriptor (idempotent)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The folders from a top folder down to a file's folder as they were: ``(path, (st_dev,
#: st_ino, st_mode, st_mtime_ns) or None when missing)`` each (``snapshot``).
Snapshot = tuple[tuple[str, tuple[int, int, int, int] | None], ...]


def _seen(path: str) -> tuple[int, int, int, int] | None:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_mode, info.st_mtime_ns


def snapshot(top: str, folder: str) -> Snapshot:
    """How each folder from ``top`` down to ``folder`` (real paths, ``folder`` inside ``top``)
    is now, by ``lstat`` (a link is seen as a link), for ``moved`` to compare with later."""
    chain = [top]
    rest = os.path.relpath(folder, top)
    if rest != ".":
        for name in rest.split(os.sep):
            chain.append(os.path.join(chain[-1], name))
    return tuple((path, _seen(path)) for path in chain)


def moved(before: Snapshot) -> bool:
    """Whether a folder of ``before`` changed since: gone, replaced (another inode, a link), or,
    for each folder above the last, a name in it added, removed or renamed (its mtime). The last
    folder's own names are not compared (the call itself creates files there). What SQLite or
    the file system reports when a folder is swapped under a call (``disk I/O error``, ``No such
    file or directory``) is then a refusal of a path that changed, not a storage failure."""
    for n, (path, seen) in enumerate(before):
        now = _seen(path)
        if seen is None or now is None:
            if seen != now:
                return True
            continue
        last = n == len(before) - 1
        if now[:3] != seen[:3] or (not last and now[3] != seen[3]):
            return True
    return False
