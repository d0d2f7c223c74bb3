"""JSON text read from SQLite as SQLite's own JSON functions read it: a duplicated key's first
value, a string cut at U+0000.

dbhandles writes each record normalised (``dbhandles.values``: an object has each key once), but
another SQLite tool may write a collection's ``data`` (``UPDATE c SET data = '{"n": 1, "n": 2}'``)
or a foreign table's JSON text column with a key twice. SQLite's JSON functions, which every filter,
count, sort, facet and handle row filter runs on, take the **first** value of such a key; orjson and
Python take the last. Were a record read with orjson's rule, a handle whose row filter is
``label == "a"`` would be shown a record whose ``label`` reads ``"b"``. So a record is read with
SQLite's rule (``loads``): the value a reader sees is the value the filter judged (docs/filters.md
"Values"). The same holds for U+0000, which dbhandles refuses but another tool may write
(``"a\\u0000b"``): SQLite's JSON functions read the string up to it (``"a"``), and so does a read.

The cost stays off the common row: a text dbhandles wrote is exactly orjson's serialisation of what
orjson reads from it (``canonical``), which one ``orjson.dumps`` and a byte comparison confirm; only
another text (another tool's spacing, escapes or key repeats) is read a second time, by ``json``,
to find a repeated key.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["loads"]


def loads(text: str | bytes) -> Any:
    """``text`` (JSON text SQLite holds) as a Python value, each duplicated key holding its first
    value, as SQLite's ``json_extract`` and ``json_each`` read it.

    Raises:
        orjson.JSONDecodeError: ``text`` is not JSON (a ``ValueError``).
    """
    value = orjson.loads(text)
    kind = type(value)
    if kind is not dict and kind is not list:
        return value
    raw = text.encode() if isinstance(text, str) else text
    if orjson.dumps(value) != raw:  # not written by dbhandles (nor as it would): a key twice?
        value = _first_keys(raw, value)
    if _NUL in raw:  # only another tool writes U+0000 (dbhandles refuses it)
        value = _cut_at_nul(value)
    return value


#: How JSON text writes U+0000 (it has no other way: a raw control character is no JSON).
_NUL = b"\\u0000"


def _cut_at_nul(value: Any) -> Any:
    """``value`` with each string value cut at its first U+0000, as SQLite's JSON functions read it
    (``json_extract('{"t": "a\\u0000b"}', '$.t')`` is ``'a'``, which ``{"t": "a"}`` matches).
    Keys stay: no filter path can name a key holding U+0000."""
    if isinstance(value, str):
        return value.split("\x00", 1)[0]
    if isinstance(value, dict):
        return {key: _cut_at_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut_at_nul(item) for item in value]
    return value


def _first_keys(raw: bytes, value: Any) -> Any:
    """``value`` again with SQLite's rule when ``raw`` repeats a key, else ``value`` itself (read
    by orjson: its numbers, its floats past 64 bits)."""
    repeated = False

    def first(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        obj: dict[str, Any] = {}
        for key, item in pairs:
            if key in obj:
                repeated = True
            else:
                obj[key] = item
        return obj

    try:
        again = json.loads(raw, object_pairs_hook=first)
    except (ValueError, RecursionError):  # json recurses where orjson does not
        return value
    return again if repeated else value
