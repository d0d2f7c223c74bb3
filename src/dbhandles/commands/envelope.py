"""The one result envelope: built by ``success_envelope`` and ``error_envelope`` only."""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from dbhandles.clock import iso_now
from dbhandles.commands.base import Result, client_session
from dbhandles.context import Context
from dbhandles.errors import DbHandlesError

__all__ = ["error_envelope", "success_envelope"]


def _base(success: bool, context: Context | None) -> dict[str, Any]:
    envelope: dict[str, Any] = {"success": success, "timestamp": iso_now()}
    if context is not None and context.session_id is not None:
        # The id as the client knows it (``s1`` of ``alice/s1``), never the actor-scoped key: every
        # door (in-process, HTTP, WebSocket) answers the same ``sessionId`` for the same call.
        session_id = client_session(context.session_id)
        if session_id is not None:
            envelope["sessionId"] = session_id
    return envelope


#: Field types whose values ``model_dump(mode="json")`` gives back unchanged (``float`` left out:
#: what it makes of NaN and infinities is a serializer setting).
_AS_IS = (str, int, bool, type(None))


def _as_is(annotation: object) -> bool:
    """Whether every value of a field typed ``annotation`` is a JSON value the serializer keeps as it is."""
    if annotation in _AS_IS:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return all(_as_is(arg) for arg in typing.get_args(annotation))
    return False


@functools.cache
def _wire_plan(model: type[Result]) -> tuple[tuple[tuple[str, str, bool], ...], bool]:
    """``(field name, wire key, taken as is)`` for every field of ``model`` in declaration order,
    and whether every field is taken as is (its ``json_fields`` and fields of ``_AS_IS`` types)."""
    keys = tuple(
        (name, info.serialization_alias or info.alias or name, name in model.json_fields)
        for name, info in model.model_fields.items()
    )
    plain = all(as_is or _as_is(model.model_fields[name].annotation) for name, _, as_is in keys)
    return keys, plain


def success_envelope(
    result: Result, context: Context | None = None, *, share_json: bool = False
) -> dict[str, Any]:
    """``{success: true, timestamp, ...result fields (camelCase)}``.

    Args:
        share_json: the caller only reads (a read command): the result's ``json_fields`` (records
            the adapter decoded for this call) go into the envelope as they are, the other fields
            through the model's JSON serializer, or as they are when their types are ones it
            keeps unchanged (``str``, ``int``, ``bool``, ``None``: a data/read or data/list result
            is then built without the serializer); the keys and values are the same either way.
    """
    if context is None or context.session_id is None:  # ``_base``, inlined: every call ends here
        envelope: dict[str, Any] = {"success": True, "timestamp": iso_now()}
    else:
        envelope = _base(True, context)
    model = type(result)
    if not share_json or not model.json_fields:
        envelope.update(result.model_dump(mode="json", by_alias=True))
        return envelope
    keys, plain = _wire_plan(model)
    if plain:
        values = result.__dict__
        for name, key, _ in keys:
            envelope[key] = values[name]
        return envelope
    rest = result.model_dump(mode="json", by_alias=True, exclude=set(model.json_fields))
    for name, key, as_is in keys:
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
