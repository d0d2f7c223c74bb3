"""The wire form of a parsed chunk, from the parser process to the writer.

A frame is a header of two little-endian 32-bit lengths, a body and a payload. The body is an orjson
array ``[lines, bytes, plain, items]``: ``lines`` and ``bytes`` describe the chunk the parser read,
so the writer can check it is pairing the items with the same lines it read itself; ``items`` are as
in ``parse.py``, with a ``Rejected`` as ``{"rejected": reason}`` and a reserved row as an array
whose ``data`` is ``null``. The ``data`` texts of the reserved rows travel in the payload instead,
joined by newlines (orjson never writes a raw newline), so the record text is not escaped into a JSON
string and unescaped again (half the cost for a re-imported export, whose every line is such a row).
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

from dbhandles.importer.parse import Item, ParsedChunk, Rejected

__all__ = ["HEADER", "decode", "encode"]

#: The lengths of the body and of the payload that follow.
HEADER = struct.Struct("<II")


def encode(chunk: ParsedChunk, lines: list[bytes]) -> bytes:
    """The frame of ``chunk``, parsed from ``lines``."""
    items: list[Any] = chunk.items
    payload = b""
    if not chunk.plain:
        texts: list[str] = []
        items = []
        for item in chunk.items:
            if isinstance(item, Rejected):
                items.append({"rejected": item.reason})
            elif isinstance(item, tuple):
                texts.append(item[1])
                items.append([item[0], None, item[2], item[3], item[4]])
            else:
                items.append(item)
        payload = "\n".join(texts).encode() if texts else b""
    body = orjson.dumps([len(lines), sum(map(len, lines)), chunk.plain, items])
    return HEADER.pack(len(body), len(payload)) + body + payload


def decode(body: bytes, payload: bytes = b"") -> tuple[int, int, ParsedChunk]:
    """``(lines, bytes, chunk)`` from the body and payload of a frame (what follows the header)."""
    lines, size, plain, values = orjson.loads(body)
    if plain:
        return lines, size, ParsedChunk(values, True)
    texts = iter(payload.decode().split("\n") if payload else ())
    items: list[Item] = []
    for value in values:
        if type(value) is list:
            items.append((value[0], next(texts), value[2], value[3], value[4]))
        elif type(value) is dict:
            items.append(Rejected(value["rejected"]))
        else:
            items.append(value)
    return lines, size, ParsedChunk(items, False)
