"""The rejects file of an ``onError: skip`` import: one JSON object per rejected line."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO

import orjson

from dbhandles.dbfiles import open_plain
from dbhandles.errors import FileExists, InvalidParams
from dbhandles.new_files import create_exclusive
from dbhandles.pinned import Pinned, gone
from dbhandles.values import json_text

__all__ = ["RejectsFile", "check_rejects", "check_replaceable"]

_ENTRY_KEYS = {"line", "reason", "text"}


def _cannot_create(path: Path, reason: str) -> InvalidParams:
    return InvalidParams(f"rejects: cannot create {json_text(str(path), 80)}: {reason}",
                         field="rejects")  # fmt: skip


def check_rejects(path: str | os.PathLike[str]) -> None:
    """What creating the rejects file needs, decided before an import creates anything (its
    output database, a handle), whatever ``onError`` is: its folder exists and this process may
    create files in it, and no other file is there (``check_replaceable``).

    The folder is asked about through its pinned descriptor, never by its name again: a folder
    renamed away or swapped for a link an instant after the path check is a path that changed
    while it was checked (``path_not_allowed``), not a folder that may not be written.

    Raises:
        InvalidParams: the folder is missing, is not a folder or may not be written (``cannot
            create``, as ``RejectsFile`` would say).
        PathNotAllowed: a link on the way (``pinned.open_folder``), or a folder made sure of moments
            before is gone (``pinned.gone``) or no longer the one its path names
            (``Pinned.stays``).
        FileExists: from ``check_replaceable``.
    """
    target = Path(path).expanduser()
    effective = os.access in os.supports_effective_ids
    try:
        with Pinned(target, "rejects") as pinned:
            pinned.stays("rejects")
            writable = os.access(
                ".", os.W_OK | os.X_OK, dir_fd=pinned.at(), effective_ids=effective
            )
    except OSError as exc:
        if (refusal := gone(exc, "rejects", str(target))) is not None:
            raise refusal from exc
        raise _cannot_create(target, exc.strerror or str(exc)) from exc
    if not writable:
        raise _cannot_create(target, os.strerror(errno.EACCES))
    check_replaceable(target)


def check_replaceable(path: str | os.PathLike[str]) -> None:
    """Refuse to replace an existing file that is not a rejects file: the rule of ``data/export``
    (never replace a file it did not write), kept for rejects without an ``overwrite`` switch by
    recognising what an earlier run wrote (empty, or a first line ``{"line", "reason", "text"}``),
    so a re-run of the same import still replaces its own rejects.

    Raises:
        FileExists: something else is there.
        InvalidParams: from ``dbfiles`` (a database, a side file...).
    """
    target = Path(path).expanduser()
    if not os.path.lexists(target) or os.path.islink(target):
        return  # nothing there; a link is removed, never followed (new_files.create_exclusive)
    first = b""
    try:
        with open_plain(target, "rb", "rejects") as file:
            first = file.readline(64 * 1024)
    except OSError:
        pass  # unreadable: creating it reports why
    try:
        entry = orjson.loads(first) if first.strip() else {}
    except orjson.JSONDecodeError:
        entry = None
    if not isinstance(entry, dict) or (entry and set(entry) != _ENTRY_KEYS):
        raise FileExists(
            f"rejects: {json_text(str(target))} exists and is not a rejects file of an earlier run; choose "
            "another rejects name (nothing was imported)",
            field="rejects",
        )


class RejectsFile:
    """Writes ``{"line": n, "reason": "...", "text": "<the line>"}`` per rejected line.

    The file is created (or emptied) when the import starts, so after a run it lists exactly that
    run's rejected lines, also when there were none; an existing file is replaced only when it is
    a rejects file (``check_replaceable``). With ``mode`` (a remote caller's import) it is
    always a new file with that mode (``O_EXCL | O_NOFOLLOW``), replacing the previous run's.
    Either way it is created in its folder opened without following links (``pinned.Pinned``):
    a folder swapped for a link after the check is refused, never written through.

    Raises:
        InvalidParams: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], mode: int | None = None) -> None:
        self.path = Path(path).expanduser()
        check_replaceable(self.path)
        try:
            self._file: IO[bytes] = (
                open_plain(self.path, "wb", "rejects")
                if mode is None
                else create_exclusive(self.path, "rejects", mode)
            )
        except OSError as exc:
            if (refusal := gone(exc, "rejects", str(self.path))) is not None:
                raise refusal from exc
            raise _cannot_create(self.path, exc.strerror or str(exc)) from exc

    def write(self, line: int, reason: str, text: bytes) -> None:
        entry = {
            "line": line,
            "reason": reason,
            "text": text.decode("utf-8", "replace").rstrip("\r\n"),
        }
        self._file.write(orjson.dumps(entry) + b"\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
