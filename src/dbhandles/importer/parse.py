"""Parse a chunk of JSONL lines into ids, reserved rows or rejections: the CPU-bound half of an import.

``parse_chunk`` returns one item per line:

* a ``str``: a plain line (no reserved key at the top level, the common case) and its record id. The
  record's data is the line's own text, when that text is exactly orjson's serialisation of the
  object it parses to (compact JSON, as JavaScript and orjson write it): the text then says nothing
  else than the object does;
* a ``Reserved`` row ``(id, data, createdAt, updatedAt, version)`` for a line with reserved keys (see
  ``rows.py``), or whose text differs from that serialisation (whitespace, escapes, a duplicated key:
  SQLite's JSON functions would read the first of two equal keys where orjson keeps the last, so the
  stored text is the serialisation); a timestamp the line does not give is ``None`` and filled in by
  the writer;
* a ``Rejected``: the line cannot be imported, with the reason (a value that breaks the rule of
  ``dbhandles.values``, such as a U+0000 or an integer past 64 bits, names its field);
* ``None``: a blank line (ignored).

This module depends on nothing heavier than orjson, so the parser process (``worker.py``) starts in a
few milliseconds. It is the hot loop of an import (a few microseconds a line), so the content-hash
case is inlined.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from typing import Any, NamedTuple

import orjson

from dbhandles.errors import InvalidParams
from dbhandles.importer.ids import BadLine, id_function
from dbhandles.importer.rows import Reserved, reserved_row
from dbhandles.values import canonical, check_value, read_json, read_json_loosely, utf8_problem

__all__ = ["Item", "ParsedChunk", "Rejected", "parse_chunk"]


class Rejected(NamedTuple):
    """A line that cannot become a record, and why."""

    reason: str


Item = str | Reserved | Rejected | None


@dataclass(slots=True)
class ParsedChunk:
    """The items of one chunk, one per line.

    Attributes:
        items: see the module docstring.
        plain: every item is a ``str`` (no blank, reserved or rejected line): the writer can pair the
            ids with the lines without looking at each item.
    """

    items: list[Item]
    plain: bool


_TYPE_NAMES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def _describe(value: object) -> str:
    return "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)


def _json_problem(exc: orjson.JSONDecodeError, line: bytes) -> str:
    """Why ``line`` is not JSON, placed by its column only: orjson's own "line 1" (or "line 2",
    past the line's newline) would contradict the file's line number the reason is shown with."""
    end = len(line.rstrip(b"\r\n").decode("utf-8", "replace"))
    return f"invalid JSON: {exc.msg} at column {min(exc.pos, end) + 1}"


def _value_problem(line: bytes) -> str | None:
    """The value rule's reason for a line orjson refused for a value it cannot hold (a lone
    surrogate escape, ``NaN``, ``Infinity``), naming the field (``messages[2].content: text is not
    valid Unicode ...``) as for every other bad value; ``None`` when the line is not JSON at all."""
    obj = read_json_loosely(line)
    if type(obj) is not dict:
        return None
    try:
        check_value(obj, "")
    except InvalidParams as exc:
        return exc.message
    return None


def _exact(line: bytes) -> Any:
    """``line`` read by ``values.read_json`` (integers exact), ``None`` when it is not JSON."""
    try:
        return read_json(line)
    except ValueError:
        return None


def parse_chunk(lines: list[bytes], id_field: str | None) -> ParsedChunk:
    """One item per line (see the module docstring).

    Args:
        lines: a chunk of lines from ``ChunkReader``.
        id_field: the import's ``idField`` (``None``: the line's ``id``, else its content hash).
    """
    get_id = id_function(id_field)
    hash_ids = id_field is None
    loads, dumps, sort_keys = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    decode_error = orjson.JSONDecodeError
    items: list[Item] = []
    append = items.append
    plain = True
    for line in lines:
        try:
            obj = loads(line)
        except decode_error as exc:
            # A number orjson cannot hold (an integer of 309 digits): read_json reads it, and the
            # value rule below says which field and why.
            obj = _exact(line) if "infinity" in str(exc) else None
            if obj is None:
                # orjson reports bad UTF-8 as "surrogates not allowed ... line 1 column 1": say so.
                reason = utf8_problem(line) or _value_problem(line) or _json_problem(exc, line)
                append(None if not line.strip() else Rejected(reason))
                plain = False
                continue
        if type(obj) is not dict:
            append(
                Rejected(f"not a JSON object but {_describe(obj)}; each line must be one object")
            )
            plain = False
            continue
        try:
            # The object as stored (-0.0 normalised): ids and text come from it.
            obj, text = canonical(obj, "")
            if "id" in obj or "createdAt" in obj or "updatedAt" in obj or "version" in obj:
                append(reserved_row(obj, get_id(obj), id_field))
                plain = False
                continue
            if hash_ids:  # ids.content_id, inlined
                record_id = sha256(dumps(obj, option=sort_keys)).hexdigest()[:32]
            else:
                record_id = get_id(obj)
            # A line ends with "\n" (the last one may not): compare without copying it.
            if line.startswith(text) and (len(line) == len(text) or line[len(text) :].isspace()):
                append(record_id)
            else:
                append((record_id, text.decode(), None, None, 1))
                plain = False
        except BadLine as exc:
            append(Rejected(exc.reason))
            plain = False
        except InvalidParams as exc:
            append(Rejected(exc.message))
            plain = False
    return ParsedChunk(items, plain)
