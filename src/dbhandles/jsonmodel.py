"""``JsonModel``: a pydantic model that reads JSON values as JSON Schema does (a leaf module).

Params, adapter configs and permissions are described by their models' JSON schemas (the OpenAPI
document); this base makes each model accept exactly what its schema says:

- strict: a value has the JSON type its field declares (``0`` is not ``false``, ``"5"`` is not ``5``;
  pydantic's lax mode would take both);
- a number with no fractional part is an integer (JSON Schema's ``integer`` takes ``5.0``), so an
  ``int`` field takes ``5.0`` as ``5``.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = ["JsonModel"]


class JsonModel(BaseModel):
    """Base of the models that parse JSON from callers (see the module docstring)."""

    # Validators are built on first use: a process builds the few models it uses, not all of them.
    model_config = ConfigDict(strict=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fixed = None
        for key in _integer_keys(cls):
            value = data.get(key)
            if isinstance(value, float) and value.is_integer():
                fixed = fixed if fixed is not None else dict(data)
                fixed[key] = int(value)
        return data if fixed is None else fixed


def _kinds(annotation: Any) -> set[type]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return {k for arg in typing.get_args(annotation) for k in _kinds(arg)}
    if origin is typing.Annotated:
        return _kinds(typing.get_args(annotation)[0])
    return {annotation} if isinstance(annotation, type) else set()


@functools.cache
def _integer_keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys (alias and name) of ``model``'s fields that take integers but no other numbers."""
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        kinds = _kinds(info.annotation)
        if int in kinds and float not in kinds:
            keys |= {info.alias or name, name}
    return tuple(sorted(keys))
