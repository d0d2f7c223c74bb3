"""Parse a chunk of JSONL lines into storage rows or rejections: the CPU-bound half of an import.

For each line of a chunk ``parse_chunk`` returns one item:

* ``None``: a blank line (ignored);
* a ``Row``: ``(id, data, createdAt, updatedAt, version)``. A line without reserved keys (the common
  case) is stored as its own text: it was just parsed by orjson, so it is valid JSON, and serialising
  the object again would only cost time. A line with reserved keys goes through ``rows.py``;
* a ``Rejected``: the line cannot be imported, with the reason.

This is the hot loop of an import (a few microseconds a line), so the content-hash case is inlined.
"""

from __future__ import annotations

from hashlib import sha256
from typing import NamedTuple

import orjson

from dbhandles.importer.ids import BadLine, id_function
from dbhandles.importer.rows import Row, reserved_row

__all__ = ["Item", "Rejected", "parse_chunk"]


class Rejected(NamedTuple):
    """A line that cannot become a record, and why."""

    reason: str


Item = Row | Rejected | None

_TYPE_NAMES = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
}


def _describe(value: object) -> str:
    return "null" if value is None else _TYPE_NAMES.get(type(value), type(value).__name__)


def parse_chunk(lines: list[bytes], id_field: str | None, now: str) -> list[Item]:
    """One item per line (see the module docstring).

    Args:
        lines: a chunk of lines from ``ChunkReader``.
        id_field: the import's ``idField`` (``None``: the line's ``id``, else its content hash).
        now: ``createdAt`` / ``updatedAt`` of rows whose line does not carry them.
    """
    get_id = id_function(id_field)
    hash_ids = id_field is None
    loads, dumps, sort_keys = orjson.loads, orjson.dumps, orjson.OPT_SORT_KEYS
    decode_error = orjson.JSONDecodeError
    items: list[Item] = []
    append = items.append
    for line in lines:
        try:
            obj = loads(line)
        except decode_error as exc:
            append(None if not line.strip() else Rejected(f"invalid JSON: {exc}"))
            continue
        if type(obj) is not dict:
            append(
                Rejected(f"not a JSON object but {_describe(obj)}; each line must be one object")
            )
            continue
        try:
            if "id" in obj or "createdAt" in obj or "updatedAt" in obj or "version" in obj:
                append(reserved_row(obj, get_id(obj), now, id_field))
            elif hash_ids:  # ids.content_id, inlined
                record_id = sha256(dumps(obj, option=sort_keys)).hexdigest()[:32]
                append((record_id, line.strip().decode(), now, now, 1))
            else:
                append((get_id(obj), line.strip().decode(), now, now, 1))
        except BadLine as exc:
            append(Rejected(exc.reason))
    return items
