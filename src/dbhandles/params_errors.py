"""The ``invalid_params`` error of a command's params that pydantic refused, in the caller's words."""

from __future__ import annotations

import re

from pydantic import ValidationError

from dbhandles.errors import InvalidParams
from dbhandles.values import json_text, name_text

__all__ = ["params_error"]


def params_error(command: str, exc: ValidationError) -> InvalidParams:
    """A pydantic error on a command's params as ``invalid_params`` naming the (camelCase) field."""
    errors = exc.errors()
    err = errors[0]
    where = _wire_loc(err["loc"])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = f"unknown parameter for {command}; run 'jtag help {command}' to see its parameters"
    elif err["type"] == "missing":
        msg = f"missing required parameter for {command}"
    elif len(where) < len(".".join(str(p) for p in err["loc"])):
        # A union: each branch failed, and pydantic names them by type (``list[any]``).
        forms = [_FORMS.get(str(e["loc"][-1]).split("[")[0], "") for e in errors
                 if _wire_loc(e["loc"]) == where and e["loc"]]  # fmt: skip
        shown = " or ".join(dict.fromkeys(f for f in forms if f)) or "another type"
        msg = f"expects {shown}, got {json_text(err.get('input'), 80)}"
    return InvalidParams(f"{where}: {msg}", field=where)


#: How a message names a union branch pydantic tags by its type (``list[any]``, ``str``).
_FORMS = {"list": "a list", "str": "a string", "dict": "an object", "none": "null",
          "int": "an integer", "float": "a number", "bool": "true or false"}  # fmt: skip
#: A part of a pydantic location that is no wire name: a union branch's type tag.
_BRANCH_TAG = re.compile(r"(?:function|constrained|tagged|lax|json|nullable)-.*|.*\[.*\]", re.S)


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
