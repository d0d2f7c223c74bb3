"""The one rule for the values a record holds, the same on every adapter and through every door.

A record is a JSON object (RFC 8259) whose values every adapter stores and reads back exactly, and
whose filters give the same answer everywhere. What cannot be kept that way is refused, with the
path of the value (``data.messages[2].content``); one value is normalised. The rule, and why:

* **Text is valid Unicode without U+0000.** PostgreSQL's ``text`` and ``jsonb`` cannot hold U+0000
  (it refuses the value), and SQLite's JSON functions stop reading a string at it (so
  ``{"t": "a"}`` would match ``"a\\u0000b"`` there and the exact value never would). A lone surrogate
  (``"\\ud800"``) is not a Unicode character: it has no UTF-8 form (RFC 8259 §8.2, RFC 3629). The
  rule holds for object keys too.
* **Numbers are finite and lie strictly between -2**63 and 2**63.** SQLite and the record columns
  keep 64-bit integers (a bigger integer turns into an inexact float in SQLite's JSON functions);
  past 2**53 every float is whole, and the same bound keeps each one an integer JSON Schema and
  SQLite can hold. NaN and the infinities are not JSON numbers (RFC 8259 §6). Store bigger numbers
  as strings.
* **-0.0 is stored as 0.0.** PostgreSQL's ``numeric`` has no negative zero, so it would read back
  as ``0.0`` there alone; they are equal numbers everywhere.
* **Nesting is at most ``MAX_DEPTH`` levels** below the record, well inside every engine's limit (SQLite's JSON
  functions stop at 1000, Python's recursion at about as many).
* **Object keys are strings**, and an object has each key once: a JSON text with a duplicated key
  (``{"a": 1, "a": 2}``) is read as Python and orjson read it, the last one winning, and stored as
  that object re-serialised, so SQLite's JSON functions (which take the first) never see another.

``check_value`` applies the rule to a Python value (the API, HTTP and CLI bodies, batches);
``canonical`` applies it to a line of an import cheaply, along with orjson's serialisation of it.
Filters take the scalar part of the rule (``check_scalar``): a filter value no record can hold is
an error, not a filter that silently matches nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from dbhandles.errors import InvalidParams

__all__ = [
    "MAX_DEPTH",
    "NUMBER_BOUND",
    "canonical",
    "check_scalar",
    "check_value",
    "text_problem",
]

MAX_DEPTH = 64
#: Every number of a record lies strictly between ``-NUMBER_BOUND`` and ``NUMBER_BOUND``; -2**63
#: itself is out, since a JSON parser may read -2**63 - 1 as the float -2**63.
NUMBER_BOUND = 2**63
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

#: What may break the rule in orjson's serialisation of an object: an escaped U+0000 (orjson always
#: writes it so), a negative zero, and a float written with a positive exponent (orjson does so from
#: 1e16 up, so every float at or past 2**63 has one). Integers past 2**53 make orjson's
#: ``OPT_STRICT_INTEGER`` fail instead. Each is a false alarm inside a string, which the walk settles.
_NUL, _NEGATIVE_ZERO, _POSITIVE_EXPONENT = b"\\u0000", b"-0.0", b"e+"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (see the module docstring), or ``None``."""
    if "\x00" in text:
        return (
            "text contains U+0000 (NUL), which no record can hold (PostgreSQL cannot store it, "
            "SQLite's JSON functions cut text at it); remove it or encode the value"
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "text is not valid Unicode (it holds a lone surrogate such as \\ud800)"
    return None


def _number_problem(value: int | float) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN and infinity are not JSON numbers"
    if not -NUMBER_BOUND < value < NUMBER_BOUND:
        return (
            "numbers must lie strictly between -2**63 and 2**63 (integers fit in 64 bits; "
            "store bigger ones as strings)"
        )
    return None


def check_value(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` as a record stores it (``-0.0`` becomes ``0.0``; tuples become lists).

    Args:
        value: a JSON-like Python value (dicts with string keys, lists, str, int, float, bool, None).
        where: the path of ``value`` in messages and ``field`` (``data``, ``data.tags[0]``); an
            empty one names the fields of a top-level object by themselves (``tags[0]``).
        depth: the nesting level of ``value`` (callers leave it at 0).

    Returns:
        ``value`` itself when it needs no change, else a normalised copy.

    Raises:
        InvalidParams: a value breaks the rule of the module docstring; ``field`` is its path.
    """
    if depth > MAX_DEPTH:
        raise InvalidParams(f"{where}: nested deeper than {MAX_DEPTH} levels", field=where)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise InvalidParams(f"{where}: {problem}", field=where)
        return value
    if isinstance(value, int | float):
        problem = _number_problem(value)
        if problem is not None:
            raise InvalidParams(f"{where}: {problem}", field=where)
        if isinstance(value, float) and value == 0.0 and math.copysign(1.0, value) < 0:
            return 0.0
        return value
    if isinstance(value, Mapping):
        changed: dict[str, Any] | None = None
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidParams(f"{where}: object keys must be strings", field=where)
            problem = text_problem(key)
            if problem is not None:
                raise InvalidParams(f"{where}: key {key!r}: {problem}", field=where)
            new = check_value(item, f"{where}.{key}" if where else key, depth + 1)
            if new is not item and changed is None:
                changed = dict(value)
            if changed is not None:
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list | tuple):
        items = [check_value(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
        if isinstance(value, list) and all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    raise InvalidParams(f"{where}: {type(value).__name__} is not a JSON value", field=where)


def canonical(obj: dict[str, Any], where: str) -> tuple[dict[str, Any], bytes]:
    """``check_value`` for an object parsed by orjson, and its text: orjson's serialisation of it.

    The exact check walks the object in Python; this serialises it first (which the caller needs
    anyway) and walks only objects that may break the rule: an integer past 2**53, one of the
    patterns above, or more brackets than ``MAX_DEPTH``. orjson has already refused lone
    surrogates, NaN and the infinities when it parsed the object.

    Returns:
        ``(obj, text)``, or the normalised copy of ``obj`` and its text.

    Raises:
        InvalidParams: as ``check_value``.
    """
    try:
        text = orjson.dumps(obj, option=orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError:  # an integer past 2**53, or nesting orjson will not write
        text = b""
    if (
        text
        and _NUL not in text
        and _NEGATIVE_ZERO not in text
        and _POSITIVE_EXPONENT not in text
        and text.count(b"{") + text.count(b"[") <= MAX_DEPTH
    ):
        return obj, text
    checked: dict[str, Any] = check_value(obj, where)
    return checked, orjson.dumps(checked)


def check_scalar(value: object, where: str) -> str | None:
    """Why a scalar filter value cannot be compared the same way everywhere, or ``None``.

    A string no record can hold (U+0000, a lone surrogate), NaN or an infinity, and an integer
    outside the 64-bit range (the SQL adapters bind 64-bit integers) are refused. A float past
    ±2**63 is allowed: it orders beyond every stored number on every adapter.
    """
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "NaN and infinity cannot be compared"
    if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
        return f"integer {value} is outside the 64-bit range"
    return None
