"""The wire form of a parsed chunk, from the parser process to the writer.

A frame is a 4-byte little-endian length, then an orjson array ``[lines, bytes, plain, items]``:
``lines`` and ``bytes`` describe the chunk the parser read, so the writer can check it is pairing the
items with the same lines it read itself; ``items`` are as in ``parse.py``, with a ``Rejected`` as
``{"rejected": reason}`` and a reserved row as an array.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from dbhandles.importer.parse import Item, ParsedChunk, Rejected

__all__ = ["HEADER", "decode", "encode"]

#: The length of the body that follows.
HEADER = struct.Struct("<I")


def _wire(item: Item) -> Any:
    return {"rejected": item.reason} if type(item) is Rejected else item


def _item(value: Any) -> Item:
    if type(value) is dict:
        return Rejected(value["rejected"])
    if type(value) is list:
        return (value[0], value[1], value[2], value[3], value[4])
    return value  # type: ignore[no-any-return]


def encode(chunk: ParsedChunk, lines: list[bytes]) -> bytes:
    """The frame of ``chunk``, parsed from ``lines``."""
    items = chunk.items if chunk.plain else [_wire(item) for item in chunk.items]
    body = orjson.dumps([len(lines), sum(map(len, lines)), chunk.plain, items])
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> tuple[int, int, ParsedChunk]:
    """``(lines, bytes, chunk)`` from the body of a frame (what follows the header)."""
    lines, size, plain, items = orjson.loads(body)
    if not plain:
        items = [_item(value) for value in items]
    return lines, size, ParsedChunk(items, plain)
