"""The one rule for the text of a path any caller gives (re-exported by ``dbhandles.dbfiles``):
what no file system takes, or what would read as two lines wherever a name is shown."""

from __future__ import annotations

import json
import os
import re

from dbhandles.errors import InvalidParams
from dbhandles.values import json_text

__all__ = ["NAME_MAX", "PATH_MAX", "PATH_SCHEMA", "check_full_path", "check_path_text"]

_PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 4096
_NAME_MAX = os.pathconf("/", "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
#: The file system's longest path (bytes, with its end) and longest name (bytes).
PATH_MAX, NAME_MAX = _PATH_MAX, _NAME_MAX
#: The most bytes a door adds to a path it was given for a file it makes beside it: an export's
#: ``.<name>.partial`` (9), a JSON commit's ``.<name>.<8 hex>.tmp`` (14), SQLite's ``-journal``.
_BESIDE = 16
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
            f"controls, U+2028/U+2029): {json.dumps(bad.group())} at position {bad.start()}",
            field=field,
        )
    if not text:
        raise InvalidParams(f"{field}: the path is empty", field=field)
    try:
        raw = os.fsencode(text)
    except UnicodeError as exc:
        # Python's words would quote the character as Python writes it ('\udc80'): say it as JSON.
        where = exc.start if isinstance(exc, UnicodeEncodeError) else 0
        raise InvalidParams(
            f"{field}: the path is not valid text ({json.dumps(text[where])} at position {where} "
            "is a lone surrogate, which no file name holds)",
            field=field,
        ) from exc
    if len(raw) >= _PATH_MAX or any(len(part) > _NAME_MAX for part in raw.split(b"/")):
        raise InvalidParams(
            f"{field}: the path is too long (at most {_PATH_MAX - 1} bytes, {_NAME_MAX} a name)",
            field=field,
        )
    if text.endswith("/"):
        raise InvalidParams(
            f"{field}: {json_text(text)} names a folder; give a file name", field=field
        )
    return text


def check_full_path(real: str | os.PathLike[str], given: str, field: str) -> None:
    """Refuse the full path ``real`` (absolute, resolved: a relative name given in a data space is
    longer there) when it leaves no room under ``PATH_MAX`` for the files a door makes beside it
    (``_BESIDE``), so the refusal names the limit up front instead of a vague failure of the
    file system (``ENAMETOOLONG``) after the fact.

    Raises:
        InvalidParams: the full path is too long.
    """
    size = len(os.fsencode(real))
    if size + _BESIDE >= _PATH_MAX:
        raise InvalidParams(
            f"{field}: {json_text(given, 40)} is too long a path: in full it is {size} bytes, and "
            f"the file system takes at most {_PATH_MAX - 1} bytes, less {_BESIDE} for the files "
            "made beside it (a temporary or journal file); choose a shorter path",
            field=field,
        )
