"""Lock files: a descriptor for ``fcntl.flock`` on a file beside a database (the JSON adapter's
``<db>.lock``, the home's claim), never on a database itself (``dbfiles``'s module docstring: closing
a descriptor on a database would release the process's POSIX locks on it)."""

from __future__ import annotations

import os

from dbhandles.dbfiles import check_plain
from dbhandles.pinned import Pinned

__all__ = ["open_lock_file"]


def open_lock_file(path: str | os.PathLike[str], field: str, *, pinned: bool = False) -> int:
    """A descriptor on the lock file ``path`` (created if missing) for ``fcntl.flock``.

    ``flock`` locks belong to the open file, not the process, so closing this descriptor releases
    only this lock; but the file must not be a database, or closing it would release the process's
    POSIX locks on that database (see the module docstring). With ``pinned`` (a path a caller
    named), it is opened in its folder pinned without following links (``pinned.Pinned``).

    Raises:
        InvalidParams, PathNotAllowed: from :func:`check_plain` (``writing``: no link, no
            database, no hard link); ``pinned``, and a folder on the way is now a link.
        OSError: from ``os.open``.
    """
    check_plain(path, field, writing=True)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    if not pinned:
        return os.open(os.fspath(path), flags, 0o600)
    with Pinned(path, field) as folder:
        return os.open(folder.name, flags, 0o600, dir_fd=folder.at())
