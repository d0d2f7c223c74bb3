"""Pydantic's refusals of a command's params in the service's own words (``invalid_params``).

One translation for every door (the dispatcher, ``jtag``'s client-side check, ``jtag
import-jsonl``/``export-jsonl``): ``field`` names the offending parameter by its wire name
(``split.fractions``, ``operations[0].collection``, ``split["b.c"]``: ``values.member_path``,
``item_path``), and the message never shows a word of the validation library: no union branch tag
(``list[any]``), no model class (``instance of SplitSpec``), no ``[key]`` location, no "Input
should", no Python type name; each pydantic error type has the service's words in one table
(``_EXPECTS``), and the sent value is quoted as JSON text (``values.json_text``; docs/errors.md).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sized
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dbhandles.errors import InvalidParams
from dbhandles.values import NAN_WORDS, item_path, json_text, member_path

__all__ = ["params_error", "pydantic_words"]

#: How a message names a union branch pydantic tags by its type (``list[any]``, ``str``).
_FORMS = {"list": "an array", "str": "a string", "dict": "an object", "none": "null",
          "int": "an integer", "float": "a number", "bool": "true or false"}  # fmt: skip
#: A part of a pydantic location that is no wire name: a union branch's type tag.
_BRANCH_TAG = re.compile(r"(?:function|constrained|tagged|lax|json|nullable)-.*|.*\[.*\]", re.S)
#: Error types whose pydantic words name a class of ours (``instance of SplitSpec``): each is a
#: place that takes a JSON object.
_OBJECT_TYPES = frozenset(
    {"model_type", "model_attributes_type", "dataclass_type", "dataclass_exact_type", "dict_type"}
)
#: What one key of an object parameter is called, by the parameter's wire name (default ``key``).
_KEY_NOUNS = {"fractions": "fraction name"}


def params_error(command: str, exc: ValidationError) -> InvalidParams:
    """A pydantic error on a command's params as ``invalid_params`` naming the (camelCase) field.

    Args:
        command: the command's wire name (``data/list``), which the hint of an unknown or missing
            parameter names.
        exc: the model's refusal; its first error is the one reported.

    Returns:
        The error to raise: message ``<field>: <words>``, ``field`` the wire location.
    """
    errors = exc.errors()
    err = errors[0]
    loc = err["loc"]
    if len(loc) >= 2 and loc[-1] == "[key]":
        return _key_error(err)
    where = _wire_loc(loc)
    if err["type"] == "extra_forbidden":
        msg = f"unknown parameter for {command}; run 'jtag help {command}' to see its parameters"
    elif err["type"] == "missing":
        msg = f"missing required parameter for {command}"
    elif any(_is_tag(part) for part in loc) and not _is_nan(err.get("input")):
        # A union: each branch failed, and pydantic names them by type (``list[any]``).
        forms = [_FORMS.get(str(e["loc"][-1]).split("[")[0], "") for e in errors
                 if _wire_loc(e["loc"]) == where and e["loc"]]  # fmt: skip
        shown = " or ".join(dict.fromkeys(f for f in forms if f)) or "another type"
        msg = f"expects {shown}, got {json_text(err.get('input'), 80)}"
    else:
        msg = pydantic_words(err)
    return InvalidParams(f"{where}: {msg}", field=where)


def _literals(ctx: dict[str, Any]) -> str:
    """Pydantic's ``'abort' or 'skip'`` with each choice as JSON text (``"abort" or "skip"``)."""
    return re.sub(
        r"'((?:[^'\\]|\\.)*)'", lambda m: json.dumps(m.group(1)), str(ctx.get("expected"))
    )


def _count(ctx: dict[str, Any], key: str, noun: str) -> str:
    n = ctx.get(key)
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _sized(ctx: dict[str, Any]) -> str:
    return "key" if ctx.get("field_type") == "Dictionary" else "item"


def _bound(ctx: dict[str, Any], key: str) -> str:
    return json_text(ctx.get(key), 80)


#: What a parameter expects, in the service's words, by pydantic error type; the message is
#: ``expects <this>, got <the sent value as JSON>``. A type not listed gets ``_OTHER``.
_EXPECTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "int_type": lambda c: "an integer",
    "int_parsing": lambda c: "an integer",
    "int_from_float": lambda c: "an integer (a number without a fraction)",
    "int_parsing_size": lambda c: "an integer of at most 64 bits",
    "float_type": lambda c: "a number",
    "float_parsing": lambda c: "a number",
    "finite_number": lambda c: "a finite number",
    "decimal_type": lambda c: "a number",
    "bool_type": lambda c: "true or false",
    "bool_parsing": lambda c: "true or false",
    "string_type": lambda c: "a string",
    "string_unicode": lambda c: "a string of Unicode text",
    "string_sub_type": lambda c: "a string",
    "bytes_type": lambda c: "a string",
    "none_required": lambda c: "null",
    "literal_error": _literals,
    "enum": _literals,
    "string_too_short": lambda c: (
        "a non-empty string"
        if c.get("min_length") == 1
        else f"a string of at least {_count(c, 'min_length', 'character')}"
    ),
    "string_too_long": lambda c: f"a string of at most {_count(c, 'max_length', 'character')}",
    "string_pattern_mismatch": lambda c: f"a string matching {json_text(c.get('pattern'), 80)}",
    "too_short": lambda c: f"at least {_count(c, 'min_length', _sized(c))}",
    "too_long": lambda c: f"at most {_count(c, 'max_length', _sized(c))}",
    "greater_than": lambda c: f"a number greater than {_bound(c, 'gt')}",
    "greater_than_equal": lambda c: f"a number of at least {_bound(c, 'ge')}",
    "less_than": lambda c: f"a number less than {_bound(c, 'lt')}",
    "less_than_equal": lambda c: f"a number of at most {_bound(c, 'le')}",
    "multiple_of": lambda c: f"a multiple of {_bound(c, 'multiple_of')}",
    "dict_type": lambda c: "an object",
    "model_type": lambda c: "an object",
    "model_attributes_type": lambda c: "an object",
    "dataclass_type": lambda c: "an object",
    "dataclass_exact_type": lambda c: "an object",
    "mapping_type": lambda c: "an object",
    "list_type": lambda c: "an array",
    "tuple_type": lambda c: "an array",
    "set_type": lambda c: "an array",
    "frozen_set_type": lambda c: "an array",
    "iterable_type": lambda c: "an array",
    "set_item_not_hashable": lambda c: "an array of strings, numbers, true, false or null",
    "missing": lambda c: "a value (it is required)",
    "extra_forbidden": lambda c: "no such parameter",
    "union_tag_invalid": lambda c: f"a tag of {_literals({'expected': c.get('expected_tags')})}",
    "union_tag_not_found": lambda c: f"the key {json_text(c.get('discriminator'), 80)}",
    "date_type": lambda c: "a date",
    "datetime_type": lambda c: "a date and time",
    "url_type": lambda c: "a URL",
    "uuid_type": lambda c: "a UUID",
    "uuid_parsing": lambda c: "a UUID",
}
_OTHER = "another value"
#: Error types whose ``got`` is the size of what was sent, not its text.
_SIZE_TYPES = frozenset({"too_short", "too_long"})


def pydantic_words(err: ErrorDetails) -> str:
    """One pydantic error's message in the service's words (``expects an integer, got "5x"``): a
    NaN is called not a number (pydantic would say it is not below a bound), a place that takes an
    object says so (pydantic names our model class), a custom validator's message is kept (without
    its ``Value error, `` prefix), every other type is worded by ``_EXPECTS`` with the sent value
    quoted as JSON text."""
    value = err.get("input")
    if _is_nan(value):
        return f"{NAN_WORDS}; give a finite number"
    kind = err["type"]
    if kind in ("value_error", "assertion_error"):
        return err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    if kind in _OBJECT_TYPES or "instance of" in err["msg"]:
        expects = "an object"
    else:
        rule = _EXPECTS.get(kind)
        expects = rule(ctx) if rule is not None else _OTHER
    if kind in _SIZE_TYPES and isinstance(value, Sized) and not isinstance(value, str):
        got = f"{len(value)}" if kind == "too_short" else f"{len(value)}: {json_text(value, 60)}"
        return f"expects {expects}, got {got}"
    return f"expects {expects}, got {json_text(value, 80)}"


def _key_error(err: ErrorDetails) -> InvalidParams:
    """A refused key of an object parameter (pydantic's location ends with ``<key>, [key]``):
    ``field`` names the object, the message the key's rule and the key as JSON text."""
    loc = err["loc"]
    where = _wire_loc(loc[:-2])
    key = str(loc[-2])
    last = str(loc[-3]) if len(loc) >= 3 else ""
    noun = _KEY_NOUNS.get(last, "key")
    ctx = err.get("ctx") or {}
    if err["type"] == "string_too_short" and ctx.get("min_length") == 1:
        msg = f"a {noun} must be a non-empty string, got {json_text(key, 80)}"
    elif err["type"] == "string_too_long":
        msg = f"a {noun} is at most {ctx.get('max_length')} characters, got {json_text(key, 80)}"
    else:
        msg = f"the {noun} {json_text(key, 80)} is refused: {pydantic_words(err)}"
    return InvalidParams(f"{where}: {msg}", field=where)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _is_tag(part: int | str) -> bool:
    """Whether a part of a pydantic location is a union branch's type tag, no wire name."""
    return isinstance(part, str) and (part in _FORMS or bool(_BRANCH_TAG.fullmatch(part)))


def _wire_loc(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the caller names it: field names (camelCase aliases), list indexes
    in brackets and odd keys as JSON in brackets (``operations[0]["x.y"]``, ``[""]``:
    ``values.member_path``), without the type tags of union branches (``list[any]``)."""
    where = ""
    for part in loc:
        if isinstance(part, int):
            where = item_path(where, part)
        elif not _is_tag(part):
            where = member_path(where, part)
    return where or "params"
