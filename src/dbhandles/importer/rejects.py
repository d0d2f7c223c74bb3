"""The rejects file of an ``onError: skip`` import: one JSON object per rejected line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import orjson

from dbhandles.dbfiles import create_exclusive, open_plain
from dbhandles.errors import InvalidParams

__all__ = ["RejectsFile"]


class RejectsFile:
    """Writes ``{"line": n, "reason": "...", "text": "<the line>"}`` per rejected line.

    The file is created (or emptied) when the import starts, so after a run it lists exactly that
    run's rejected lines, also when there were none. With ``mode`` (a remote caller's import) it is
    always a new file with that mode (``O_EXCL | O_NOFOLLOW``), replacing the previous run's.

    Raises:
        InvalidParams: the file cannot be created.
    """

    def __init__(self, path: str | os.PathLike[str], mode: int | None = None) -> None:
        self.path = Path(path).expanduser()
        try:
            self._file: IO[bytes] = (
                open_plain(self.path, "wb", "rejects")
                if mode is None
                else create_exclusive(self.path, "rejects", mode)
            )
        except OSError as exc:
            raise InvalidParams(f"rejects: cannot create {str(self.path)!r}: {exc.strerror}",
                                field="rejects") from exc  # fmt: skip

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
