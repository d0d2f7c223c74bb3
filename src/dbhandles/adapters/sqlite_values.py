"""JSON text read from SQLite as SQLite's own JSON functions read it: a duplicated key's first value.

dbhandles writes each record normalised (``dbhandles.values``: an object has each key once), but
another SQLite tool may write a collection's ``data`` (``UPDATE c SET data = '{"n": 1, "n": 2}'``)
or a foreign table's JSON text column with a key twice. SQLite's JSON functions, which every filter,
count, sort, facet and handle row filter runs on, take the **first** value of such a key; orjson and
Python take the last. Were a record read with orjson's rule, a handle whose row filter is
``label == "a"`` would be shown a record whose ``label`` reads ``"b"``. So a record is read with
SQLite's rule (``loads``): the value a reader sees is the value the filter judged (docs/filters.md
"Values").

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
    if orjson.dumps(value) == raw:  # written by dbhandles (or as it would): no key twice
        return value
    return _first_keys(raw, value)


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
