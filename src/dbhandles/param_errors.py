"""Pydantic's refusals of a command's params in the service's own words (``invalid_params``).

One translation for every door (the dispatcher, ``jtag``'s client-side check, ``jtag
import-jsonl``/``export-jsonl``): ``field`` names the offending parameter by its wire name
(``split.fractions``, ``operations.0``), and the message never shows a name of the validation
library: no union branch tag (``list[any]``), no model class (``instance of SplitSpec``), no
``[key]`` location, and every value quoted as JSON text (``values.json_text``; docs/errors.md).
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dbhandles.errors import InvalidParams
from dbhandles.values import json_text, name_text

__all__ = ["params_error", "pydantic_words"]

#: How a message names a union branch pydantic tags by its type (``list[any]``, ``str``).
_FORMS = {"list": "a list", "str": "a string", "dict": "an object", "none": "null",
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
    elif len(where) < len(".".join(str(p) for p in loc)) and not _is_nan(err.get("input")):
        # A union: each branch failed, and pydantic names them by type (``list[any]``).
        forms = [_FORMS.get(str(e["loc"][-1]).split("[")[0], "") for e in errors
                 if _wire_loc(e["loc"]) == where and e["loc"]]  # fmt: skip
        shown = " or ".join(dict.fromkeys(f for f in forms if f)) or "another type"
        msg = f"expects {shown}, got {json_text(err.get('input'), 80)}"
    else:
        msg = pydantic_words(err)
    return InvalidParams(f"{where}: {msg}", field=where)


def pydantic_words(err: ErrorDetails) -> str:
    """One pydantic error's message without the library's names: a NaN is called not a number
    (pydantic would say it is not below a bound), a place that takes an object says so (pydantic
    names our model class), a custom validator's ``Value error, `` prefix is dropped."""
    value = err.get("input")
    if _is_nan(value):
        return "got NaN, which is not a number; give a finite number"
    if err["type"] in _OBJECT_TYPES or "instance of" in err["msg"]:
        return f"expects an object, got {json_text(value, 80)}"
    return err["msg"].removeprefix("Value error, ")


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


def _wire_loc(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the caller names it: field names (camelCase aliases) and list
    indexes (``operations.0``), without the type tags of union branches (``list[any]``)."""
    where = ""
    for part in loc:
        if isinstance(part, int):
            where += f".{part}" if where else str(part)  # ``operations.0``, as it always was
        elif part in _FORMS or _BRANCH_TAG.fullmatch(part):
            continue
        else:
            where += f".{name_text(part)}" if where else name_text(part)
    return where or "params"
