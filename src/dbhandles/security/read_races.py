"""A read of a caller's own file whose folders changed between the check and the open.

A name is checked on its real path, then opened by that path: a folder on the way swapped for a
link to another actor's folder (``renameat2(RENAME_EXCHANGE)`` by a process that may rename in the
caller's space) for just the moment of the open leads the open elsewhere. What it finds there
must not reach the caller, nor may the answer depend on it: a file found there is not read, and a
name missing there must not be answered "no such file" when one found there is refused, which
would tell the caller which names exist in a folder it may not list.

So the answer is decided on the caller's own folder, pinned after the open without following
any link (``pinned.Pinned``), never on what the open met: a folder on the way that is a link now
is ``changed`` (``path_not_allowed``); a name that is in the pinned folder but was not what the
open found (missing, or another file) is ``changed``; a name missing from the pinned folder is
``not_found``, whether the open found another folder's file or none. Each answer depends only on
the caller's own folders, never on the names in the folder a swapped link led to.
"""

from __future__ import annotations

import os
from pathlib import Path

from dbhandles.errors import NotFound, PathNotAllowed
from dbhandles.pinned import Pinned, changed
from dbhandles.values import json_text

__all__ = ["confirm_found", "confirm_missing_at"]


def _identity_now(real: Path, field: str, given: str) -> tuple[int, int] | None:
    """The ``(st_dev, st_ino)`` of the name ``real`` in its folder pinned now (``None``:
    missing there, or its folder is).

    Raises:
        PathNotAllowed: a folder on the way is a link now (``changed``).
    """
    try:
        with Pinned(real, field) as folder:
            info = os.lstat(folder.name, dir_fd=folder.at())
    except PathNotAllowed:
        raise changed(field, given) from None
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise changed(field, given) from exc
    return info.st_dev, info.st_ino


def confirm_missing_at(real: Path, field: str, given: str) -> None:
    """Before answering that ``real`` (checked as ``given``) is missing: it is missing from the
    caller's own folder (module docstring).

    Raises:
        PathNotAllowed: a folder on the way is a link now, or the name is there (the open that
            missed it was led elsewhere): ``changed``.
    """
    if _identity_now(real, field, given) is not None:
        raise changed(field, given)


def confirm_found(info: os.stat_result, real: Path, field: str, given: str) -> None:
    """After opening ``real`` (checked as ``given``) as the file ``info`` (``fstat``): it is the
    file the name leads to in the caller's own folder (module docstring).

    Raises:
        PathNotAllowed: a folder on the way is a link now, or the name there is another file
            (``changed``).
        NotFound: the name is missing from the caller's folder: the file opened was another
            folder's, and the answer is the one a missing name gets.
    """
    now = _identity_now(real, field, given)
    if now is None:
        raise NotFound(f"{field}: no such file {json_text(str(real), 80)}", field=field)
    if now != (info.st_dev, info.st_ino):
        raise changed(field, given)
