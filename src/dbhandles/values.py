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
Filters and keyset cursors take the scalar part of the rule (``check_scalar``: for a cursor the
same integer bound, except that -2**63 is taken, which a 64-bit column of a table dbhandles did not
create may hold; a filter takes any integer, compared by value): a filter value no record can hold
is an error, not a filter that silently matches nothing.
A number taken as a record id has one text on every door (``number_text``). A message quotes a
value the caller sent as JSON (``json_text``: ``null``, ``true``, ``"k\\u0000"``), never as Python
writes it, and names a place in the record, never an empty path (``the record's key "k\\u0000"``).

Every door reads JSON text with ``read_json``: orjson, except that an integer orjson would read as a
float (past the 64-bit range) is read exactly, so the rule sees the integer that was sent and refuses
it with the same message over HTTP, the WebSocket and the CLI as in-process (a filter ``{"$lt":
18446744073709551616}`` is no float there). ``utf8_problem`` says where a text is not UTF-8.

A record's ``version`` is an integer from 1 to ``MAX_VERSION`` (2**31 - 1, what PostgreSQL's
``integer`` version column holds) on every adapter.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from dbhandles.errors import InvalidParams

__all__ = [
    "MAX_DEPTH",
    "MAX_VERSION",
    "NAN_WORDS",
    "NUMBER_BOUND",
    "UNSHOWABLE",
    "UNSHOWABLE_BEYOND_C0",
    "UNSHOWABLE_CLASS",
    "canonical",
    "check_record",
    "check_scalar",
    "check_value",
    "dump_json",
    "item_path",
    "json_problem",
    "json_text",
    "member_path",
    "name_text",
    "non_finite_problem",
    "number_text",
    "read_json",
    "read_json_loosely",
    "text_problem",
    "utf8_problem",
]

MAX_DEPTH = 64
#: Every number of a record lies strictly between ``-NUMBER_BOUND`` and ``NUMBER_BOUND``; -2**63
#: itself is out, since a JSON parser may read -2**63 - 1 as the float -2**63.
NUMBER_BOUND = 2**63
#: The largest ``version`` of a record (PostgreSQL keeps it in an ``integer`` column): every
#: adapter refuses an imported version past it and an update that would go past it.
MAX_VERSION = 2**31 - 1
#: 19 digits in a row: orjson reads every integer of 18 digits or fewer exactly (and those of 19 or
#: 20 up to 2**64 - 1); a longer or more negative one it reads as a float.
_LONG_DIGIT_RUN = b"0" * 19
#: Every ASCII digit to ``0``, every other byte to a space: a run of 19 digits becomes
#: ``_LONG_DIGIT_RUN``. ``bytes.translate`` and ``in`` scan a 10 MB body in about 7 ms where
#: ``re`` took 76-180 ms, holding Python's GIL (so every other thread, the event loop included).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))


def _has_long_digits(text: bytes | bytearray | memoryview | str) -> bool:
    """Whether ``text`` holds 19 or more ASCII digits in a row (``read_json``)."""
    if isinstance(text, str):
        # orjson has read it: no lone surrogate is left, but ``surrogatepass`` never raises.
        data: bytes | bytearray = text.encode("utf-8", "surrogatepass")
    elif isinstance(text, memoryview):
        data = text.tobytes()
    else:
        data = text
    return _LONG_DIGIT_RUN in data.translate(_DIGITS_ONLY)


#: The Unicode categories Cc (controls), Cf (format: bidirectional controls and marks, zero-width
#: characters, the byte order mark, soft hyphen, tags), Zl and Zp (line and paragraph separators),
#: as of Unicode 14.0 (``unicodedata``; ``tests/test_security_round6.py`` checks the ranges against
#: the running Python's tables). Written out, since Python's ``re`` has no ``\p{...}`` classes and
#: computing them would cost every ``jtag`` start a walk over 1.1 million code points.
UNSHOWABLE_BEYOND_C0 = (
    "\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
)
UNSHOWABLE_CLASS = "\x00-\x1f" + UNSHOWABLE_BEYOND_C0
#: The characters no name may hold (the CLI's display rule, ``cli/output.py``), and that an
#: error message writes as escapes (``json_text``, ``name_text``).
UNSHOWABLE = re.compile(f"[{UNSHOWABLE_CLASS}]")
#: A key a path writes after a dot as it is (``member_path``): not empty, and none of the
#: characters that spell a path's steps (``.``, ``[``, ``]``, ``"``, a backslash), a message's
#: separator (``:``), white space or a character a line cannot show.
_PLAIN_KEY = re.compile(rf'[^.\[\]"\\:\s{UNSHOWABLE_CLASS}]+')


def read_json(text: bytes | str) -> Any:
    """A JSON text as Python values, integers exact: the reader of every door (HTTP bodies,
    WebSocket messages, the CLI's JSON params).

    orjson reads it (fast, strict: no NaN, no lone surrogate, valid UTF-8); when the text holds a
    run of 19 or more digits, which may be an integer orjson read as a float (``2**64`` becomes
    ``1.8446744073709552e19``), the already validated text is read again by ``json``, which keeps
    integers exact, so that the value rule refuses that integer instead of seeing another number.

    A number orjson cannot hold at all (an integer of 309 digits or more, ``1e400``: "number is
    infinity") is read the same way, so that the value rule names the field and says why (an
    integer past ``NUMBER_BOUND``, an infinity) rather than calling the text not JSON. So are the
    literals ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's ``json`` writes, and the
    ``Client`` sends for a NaN): read as those floats, they are refused by the rule of the place
    that holds them (``filter.n: NaN is not a number ...`` is ``invalid_filter``, ``data.n: ...``
    ``invalid_params``), the answer the in-process API gives, on every door.

    Raises:
        orjson.JSONDecodeError: ``text`` is not JSON (a ``ValueError``).
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "infinity" not in str(exc) and not _has_constant(text):
            raise
        exact = _exact_json(text)
        if exact is _NOT_READ:
            raise
        return exact
    if not _has_long_digits(text):
        return value
    exact = _exact_json(text)
    return value if exact is _NOT_READ else exact


def dump_json(value: Any, option: int = 0) -> bytes:
    """``orjson.dumps(value, option=option)``, the writer of every door; but an integer past 64
    bits, which orjson cannot write and only a JSON-adapter file edited by hand holds (served
    read-only, exactly: docs/filters.md "Values"), is written exactly by ``json`` (as compact, or
    indented by two with ``OPT_INDENT_2``), the text ``read_json`` reads back.

    Raises:
        TypeError: ``value`` is not JSON.
    """
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise
    indent = 2 if option & orjson.OPT_INDENT_2 else None
    separators = (",", ": ") if indent else (",", ":")
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators).encode()


#: What ``_exact_json`` gives for a text it cannot read.
_NOT_READ = object()
#: Integers of more digits than this are read as this bound (with their sign): the value rule
#: refuses them just the same, and Python's int() of thousands of digits is slow or refused.
_MAX_EXACT_DIGITS = 40
_HUGE: int = 10**_MAX_EXACT_DIGITS


def _exact_int(digits: str) -> int:
    if len(digits.lstrip("-")) > _MAX_EXACT_DIGITS:
        return -_HUGE if digits.startswith("-") else _HUGE
    return int(digits)


#: The literals Python's ``json`` writes for NaN and the infinities (``-Infinity`` holds the second).
_CONSTANTS = (b"NaN", b"Infinity")


def _has_constant(text: bytes | bytearray | memoryview | str) -> bool:
    """Whether ``text`` may hold a ``NaN`` or ``Infinity`` literal (orjson refused it)."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    return any(constant in data for constant in _CONSTANTS)


def read_json_loosely(text: bytes | str) -> Any:
    """``text`` read as ``read_json`` reads it, except that a lone surrogate escape (``"\\ud800"``),
    which no strict reader takes, is read as that lone surrogate: so that the value rule
    (``check_value``) can name the field that holds it rather than a column of the text (an
    import's rejected line). ``None`` when the text is not JSON even so, or not UTF-8.
    """
    value = _exact_json(text, surrogates=True)
    return None if value is _NOT_READ else value


def _exact_json(text: bytes | bytearray | memoryview | str, *, surrogates: bool = False) -> Any:
    """``text`` read by ``json`` with integers exact, and ``NaN``/``Infinity``/``-Infinity`` as
    those floats (``_NOT_READ`` when ``json`` cannot, or finds what orjson would refuse for
    another reason: a lone surrogate unless ``surrogates``, a text that is not UTF-8, which
    ``json`` would read as UTF-16 or UTF-32)."""
    try:
        if not isinstance(text, str):
            text = bytes(text).decode("utf-8")
        value = json.loads(text, parse_int=_exact_int)
    except (ValueError, RecursionError):  # RecursionError: nested near orjson's limit of 1024
        return _NOT_READ
    return _NOT_READ if not surrogates and _has_lone_surrogate(value) else value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def json_problem(text: bytes | str, exc: ValueError) -> str:
    """Why ``read_json`` refused ``text`` (``exc``), as a predicate: ``is not valid UTF-8 (byte 0xE9
    at column 4)`` rather than orjson's words for it (``surrogates not allowed: line 1 column 1``),
    else ``is not valid JSON: <orjson's message>``."""
    problem = utf8_problem(text) if isinstance(text, bytes) else None
    return f"is {problem}" if problem else f"is not valid JSON: {exc}"


def utf8_problem(data: bytes) -> str | None:
    """``not valid UTF-8 (byte 0xE9 at column 4)`` when ``data`` is not UTF-8, else ``None``.

    The column counts characters from 1 within ``data`` (a line of a file, a request body).
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = len(data[: exc.start].decode("utf-8")) + 1
        return f"not valid UTF-8 (byte 0x{data[exc.start]:02X} at column {column})"
    return None


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


#: What the value rule says of numbers, in every message that refuses one.
_NUMBER_RULE = (
    "numbers must lie strictly between -2**63 and 2**63 (integers fit in 64 bits; "
    "store bigger ones as strings)"
)
#: The value rule said of a float at or past ±2**63 (``1e20``): no integer, yet past 2**53 every
#: double is whole, and one this large is past what the 64-bit integers records keep.
_FLOAT_RULE = (
    "numbers must lie strictly between -2**63 and 2**63 (a float this large is a whole number "
    "past the 64-bit integers a record keeps; store bigger ones as strings)"
)
#: Why an infinity was met: JSON text has none, but a number literal past the double range
#: (``1e400``, ``-2e308``) is read as one.
_INFINITY = (
    "the number is infinite (a number literal past the double range, beyond "
    "±1.7976931348623157e308 such as 1e400, overflows to infinity)"
)


#: What every door calls a NaN (a record's value, a filter's, a number param, a split's fraction),
#: after the place's prefix; a filter may add "and cannot be compared".
NAN_WORDS = "NaN is not a number (JSON has no NaN)"


def non_finite_problem(value: float) -> str:
    """Why the NaN or infinity ``value`` is no JSON number, in the words of every door's error: an
    infinity is said to come from a literal past the double range (``1e400``), the one way JSON
    text gives one, and the value rule follows."""
    if math.isnan(value):
        return NAN_WORDS
    return f"{_INFINITY} and JSON has no infinity; {_NUMBER_RULE}"


def json_text(value: object, limit: int = 200) -> str:
    """``value`` as an error message quotes it: its JSON text (``null``, ``true``, ``0.0``,
    ``"k\\u0000"``, ``[1, "a"]``), as the caller wrote it and a record stores it, never Python's
    ``repr`` (``None``, ``True``, ``'k\\x00'``). An integer past 64 bits is written in full, NaN and
    the infinities as JavaScript writes them (``NaN``, ``-Infinity``), a lone surrogate as its
    escape; past ``limit`` characters the text is cut and ends with ``…``."""
    if isinstance(value, float) and not math.isfinite(value):
        text = json.dumps(value)  # orjson would write null
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # past 64 bits, a lone surrogate, a NaN in a container, or deep nesting
            text = _shallow_json(value, limit)
    return _cut(_escape(text), limit)


def name_text(name: str, limit: int = 80) -> str:
    """``name`` (a key, a field path) as a message's ``field`` and path prefix show it: as given,
    with each character a line cannot show (Unicode Cc, Cf, Zl, Zp: ``UNSHOWABLE``) written as its
    JSON escape (``a\\u0000``), and cut past ``limit`` characters (ending with ``…``)."""
    return _cut(_escape(name), limit)


def member_path(where: str, key: str) -> str:
    """The path of the member ``key`` of the object at ``where`` (``""``: the record itself), as
    every error message and ``field`` spells a place in a value (the value rule of every write
    command and of the importer's rejects, the NaN check of a request body).

    A plain key (``_PLAIN_KEY``) follows a dot (``data.messages``; at the top, ``messages``); any
    other key is its JSON string in brackets, as JavaScript writes a member access
    (``data.a[""]["b.c"]``, ``["x.y"]``), escaped as ``name_text`` escapes; an array's item is
    ``where[0]`` (``item_path``). So no two places share a spelling: ``a.b`` is never the key
    ``"a.b"``, ``a[0]`` never the key ``"0"`` (``a.0``), and the empty key is never the place
    that holds it.

    >>> member_path("", "a"), member_path("data", "x.y"), member_path("data.a", "")
    ('a', 'data["x.y"]', 'data.a[""]')
    """
    if _PLAIN_KEY.fullmatch(key):
        return f"{where}.{key}" if where else key
    return f"{where}[{_escape(json.dumps(key, ensure_ascii=False))}]"


def item_path(where: str, index: int) -> str:
    """The path of item ``index`` of the array at ``where`` (``member_path``): ``where[0]``."""
    return f"{where}[{index}]"


def _escape(text: str) -> str:
    """``text`` with every ``UNSHOWABLE`` character as its JSON escape (``\\u2028``; past the
    Basic Multilingual Plane, its surrogate pair), so a message never holds a raw control."""
    return UNSHOWABLE.sub(_escaped, text) if UNSHOWABLE.search(text) else text


def _escaped(found: re.Match[str]) -> str:
    return json.dumps(found.group())[1:-1]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shallow_json(value: object, limit: int, depth: int = 0) -> str:
    """``json_text``'s fallback: the JSON text of ``value`` built with bounded recursion (a
    container nested past 32 levels, or past ``limit`` characters, is written ``[…]``/``{…}``), so
    a message about a deeply nested value never fails itself."""
    if isinstance(value, dict | list | tuple):
        opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
        if depth >= 32:
            return f"{opening}…{closing}"
        parts: list[str] = []
        size = 0
        items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
        for key, item in items:
            text = _shallow_json(item, limit, depth + 1)
            if key is not None:
                text = f"{json.dumps(str(key))}: {text}"
            parts.append(text)
            size += len(text) + 2
            if size > limit:
                parts.append("…")
                break
        return opening + ", ".join(parts) + closing
    return json.dumps(value, default=repr)


def _at(where: str) -> str:
    """The place ``where`` names in a message: ``the record`` for its top level (no path)."""
    return where or "the record"


def _number_problem(value: int | float) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return non_finite_problem(value)
    if not -NUMBER_BOUND < value < NUMBER_BOUND:
        return _FLOAT_RULE if isinstance(value, float) else _NUMBER_RULE
    return None


def check_value(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` as a record stores it (``-0.0`` becomes ``0.0``; tuples become lists).

    Args:
        value: a JSON-like Python value (dicts with string keys, lists, str, int, float, bool, None).
        where: the path of ``value`` in messages and ``field`` (``data``, ``data.tags[0]``); an
            empty one names the fields of a top-level object by themselves (``tags[0]``). The
            paths below it are spelled by ``member_path`` and ``item_path``.
        depth: the nesting level of ``value`` (callers leave it at 0).

    Returns:
        ``value`` itself when it needs no change, else a normalised copy.

    Raises:
        InvalidParams: a value breaks the rule of the module docstring; ``field`` is its path.
    """
    if depth > MAX_DEPTH:
        raise InvalidParams(
            f"{_at(where)}: nested deeper than {MAX_DEPTH} levels", field=where or None
        )
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise InvalidParams(f"{_at(where)}: {problem}", field=where or None)
        return value
    if isinstance(value, int | float):
        problem = _number_problem(value)
        if problem is not None:
            raise InvalidParams(f"{_at(where)}: {problem}", field=where or None)
        if isinstance(value, float) and value == 0.0 and math.copysign(1.0, value) < 0:
            return 0.0
        return value
    if isinstance(value, Mapping):
        changed: dict[str, Any] | None = None
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidParams(
                    f"{_at(where)}: object keys must be strings, got {json_text(key)}",
                    field=where or None,
                )
            problem = text_problem(key)
            if problem is not None:
                place = f"{where}: key" if where else "the record's key"
                raise InvalidParams(f"{place} {json_text(key)}: {problem}", field=where or None)
            new = check_value(item, member_path(where, key), depth + 1)
            if new is not item and changed is None:
                changed = dict(value)
            if changed is not None:
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list | tuple):
        items = [check_value(item, item_path(where, i), depth + 1) for i, item in enumerate(value)]
        if isinstance(value, list) and all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return items
    raise InvalidParams(
        f"{_at(where)}: {type(value).__name__} is not a JSON value", field=where or None
    )


def _plain(value: dict[str, Any] | list[Any], depth: int) -> bool:
    """Whether the container ``value`` (at nesting ``depth``) certainly keeps the rule unchanged.

    One pass in Python over a parsed object, with no path strings: ``True`` means ``check_value``
    would return ``value`` itself; ``False`` means it may refuse or normalise something (a U+0000, a
    number at or past the bound, NaN, ``0.0`` of either sign, a type that is no JSON value, too deep),
    and ``check_value`` decides.
    """
    if depth >= MAX_DEPTH:  # the items of a container at MAX_DEPTH are one level too deep
        return False
    if type(value) is dict:
        # Keys are strings when orjson parsed the object; any other key makes join raise.
        try:
            if "\x00" in "".join(value):
                return False
        except TypeError:
            return False
        items: Any = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is str:
            if "\x00" in item:  # lone surrogates: orjson refuses them when it parses
                return False
        elif kind is dict or kind is list:
            if not _plain(item, depth + 1):
                return False
        elif kind is int:
            if not -NUMBER_BOUND < item < NUMBER_BOUND:
                return False
        elif kind is float:
            # NaN fails the comparison; 0.0 goes to the exact check, which tells -0.0 apart.
            if not -NUMBER_BOUND < item < NUMBER_BOUND or item == 0.0:
                return False
        elif item is not None and kind is not bool:
            return False
    return True


def canonical(obj: dict[str, Any], where: str) -> tuple[dict[str, Any], bytes]:
    """``check_value`` for an object parsed by orjson, and its text: orjson's serialisation of it.

    The import's hot path (one call a line). A single pass (``_plain``) settles the common object
    that keeps the rule as it is; any other goes through ``check_value``, which refuses it or
    normalises it. The decision is the same as ``check_value``'s on every object (a hypothesis
    property in ``tests/test_import_values.py`` checks it). orjson has already refused lone
    surrogates, NaN and the infinities when it parsed the object, and reads an integer past the
    64-bit range as a float at or past 2**63, which the bound refuses as well.

    Returns:
        ``(obj, text)``, or the normalised copy of ``obj`` and its text.

    Raises:
        InvalidParams: as ``check_value``.
    """
    if not _plain(obj, 0):
        obj = check_value(obj, where)
    return obj, orjson.dumps(obj)


def check_record(obj: dict[str, Any]) -> dict[str, Any]:
    """``check_value(obj, "")`` for a record read from a database (``data/copy``'s rows): one pass
    (``_plain``) settles the common record, any other goes through ``check_value``. A value a
    database other than dbhandles' own writes let in (a JSON file edited by hand holding U+0000, a
    foreign table's integer -2**63) is refused here, naming its path (``t.x[1]``), rather than by
    the target's driver in its own words, or silently stored by SQLite.

    Raises:
        InvalidParams: as ``check_value``, ``field`` being the path in the record.
    """
    return obj if _plain(obj, 0) else check_value(obj, "")


def check_scalar(value: object, where: str, *, wide_integers: bool = False) -> str | None:
    """Why a scalar filter (or cursor) value cannot be compared the same way everywhere, or
    ``None``.

    A string no record can hold (U+0000, a lone surrogate), NaN or an infinity (a number literal
    past the double range, ``1e400``, is read as one), and (unless ``wide_integers``) an integer
    outside the 64 bits (-2**63 to 2**63 - 1; past them, with the message a stored value gets) are
    refused. -2**63 itself is taken, though no record of a collection holds it: a column of a table
    dbhandles did not create may (SQLite's INTEGER, PostgreSQL's ``bigint``), and on a collection
    it orders below every stored number. A float past ±2**63 is allowed too: it orders beyond every
    stored number on every adapter.

    Args:
        value: the scalar.
        where: unused by the check; callers put it in their message.
        wide_integers: take any integer (a filter's: ``adapters/wide_integers.py``).
    """
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return f"{NAN_WORDS} and cannot be compared"
        if math.isinf(value):
            return f"{_INFINITY} and cannot be compared; compare with a finite number"
        return None
    if isinstance(value, int) and value != -NUMBER_BOUND and not wide_integers:
        return _number_problem(value)
    return None


def number_text(value: int | float) -> str:
    """A number taken as a record id, as its text: the one id rule of every door (``data/create``,
    ``data/import``, batches, foreign keys).

    An integer in decimal; an integral float as that integer (``3.0`` -> ``"3"``, as JavaScript
    prints it) while it lies within ±2**63; any other float as orjson writes it in JSON, its shortest
    round-trip form (``2.5``, ``1e-7``; Python's ``repr`` would say ``1e-07``). Callers check the
    bound of the value rule first.
    """
    if type(value) is float and value.is_integer() and -NUMBER_BOUND < value < NUMBER_BOUND:
        return str(int(value))
    if type(value) is float:
        return orjson.dumps(value).decode()
    return str(int(value))
