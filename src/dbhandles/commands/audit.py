"""``data/audit``: read the audit log (administrators only)."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field

from dbhandles.commands.base import Call, Params, Result, command
from dbhandles.errors import InvalidParams

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["AuditParams", "parse_since"]

_AGO = re.compile(r"^\s*(\d+)\s*(second|minute|hour|day|week)s?\s+ago\s*$", re.IGNORECASE)


def parse_since(value: str, now: datetime | None = None) -> str:
    """``"1 hour ago"`` or an ISO-8601 time → the ISO-8601 UTC string the audit rows are compared with."""
    now = now or datetime.now(UTC)
    match = _AGO.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        moment = now - timedelta(**{f"{unit}s": amount})
    else:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidParams(
                f"since: {value!r} is neither an ISO-8601 time nor like '1 hour ago'", field="since"
            ) from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class AuditParams(Params):
    actor: str | None = None
    """Only rows of this actor."""
    handle: str | None = None
    """Only rows of this handle."""
    operation: str | None = None
    """Only rows of this operation (read, write, delete, schema, admin)."""
    since: str | None = None
    """ISO-8601 time or '<n> <seconds|minutes|hours|days|weeks> ago'."""
    limit: int = Field(default=100, ge=1, le=10_000)
    """At most this many rows, newest first."""


class AuditResult(Result):
    entries: list[dict[str, Any]]


@command(
    "data/audit",
    params=AuditParams,
    result=AuditResult,
    operation="admin",
    admin_only=True,
    summary="Read the append-only audit log, newest first (administrators only).",
    example='jtag data/audit --actor=helper-ai --since="1 hour ago" --format=table',
)
def data_audit(service: Service, params: AuditParams, call: Call) -> AuditResult:
    service.audit.flush()
    rows = service.registry.store.query_audit(
        actor=params.actor,
        handle=params.handle,
        operation=params.operation,
        since=parse_since(params.since) if params.since else None,
        limit=params.limit,
    )
    entries = []
    for row in rows:
        item = asdict(row)
        entries.append(
            {
                "timestamp": item.pop("at"),
                "actor": item.pop("actor"),
                "sessionId": item.pop("session_id"),
                "handle": item.pop("handle"),
                "command": item.pop("command"),
                "operation": item.pop("operation"),
                "collection": item.pop("collection"),
                "recordId": item.pop("record_id"),
                "success": item.pop("success"),
                "code": item.pop("code"),
            }
        )
    return AuditResult(entries=entries)
