"""The one result envelope: built by ``success_envelope`` and ``error_envelope`` only."""

from __future__ import annotations

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


def success_envelope(result: Result, context: Context | None = None) -> dict[str, Any]:
    """``{success: true, timestamp, ...result fields (camelCase)}``."""
    envelope = _base(True, context)
    envelope.update(result.model_dump(mode="json", by_alias=True))
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
