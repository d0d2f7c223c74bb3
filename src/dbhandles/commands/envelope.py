"""The one result envelope: built by ``success_envelope`` and ``error_envelope`` only."""

from __future__ import annotations

import functools
from typing import Any

from dbhandles.clock import iso_now
from dbhandles.commands.base import Result
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError

__all__ = ["error_envelope", "success_envelope"]


def _base(success: bool, context: Context | None) -> dict[str, Any]:
    envelope: dict[str, Any] = {"success": success, "timestamp": iso_now()}
    if context is not None and context.session_id is not None:
        envelope["sessionId"] = context.session_id
    return envelope


@functools.cache
def _wire_keys(model: type[Result]) -> tuple[tuple[str, str, bool], ...]:
    """``(field name, wire key, taken as is)`` for every field of ``model``, in declaration order."""
    return tuple(
        (name, info.serialization_alias or info.alias or name, name in model.json_fields)
        for name, info in model.model_fields.items()
    )


def success_envelope(
    result: Result, context: Context | None = None, *, share_json: bool = False
) -> dict[str, Any]:
    """``{success: true, timestamp, ...result fields (camelCase)}``.

    Args:
        share_json: the caller only reads (a read command): the result's ``json_fields`` (records
            the adapter decoded for this call) go into the envelope as they are, the other fields
            through the model's JSON serializer; the keys and values are the same either way.
    """
    envelope = _base(True, context)
    model = type(result)
    if not share_json or not model.json_fields:
        envelope.update(result.model_dump(mode="json", by_alias=True))
        return envelope
    rest = result.model_dump(mode="json", by_alias=True, exclude=set(model.json_fields))
    for name, key, as_is in _wire_keys(model):
        envelope[key] = getattr(result, name) if as_is else rest[key]
    return envelope


def error_envelope(exc: DbHandlesError, context: Context | None = None) -> dict[str, Any]:
    """``{success: false, timestamp, error, code[, field][, details...]}``: an error's ``details``
    (what a failed import kept, say) are fields of the envelope, never replacing these."""
    envelope = _base(False, context)
    envelope.update(exc.details)
    envelope["error"] = exc.message
    envelope["code"] = exc.code
    if exc.field is not None:
        envelope["field"] = exc.field
    return envelope
