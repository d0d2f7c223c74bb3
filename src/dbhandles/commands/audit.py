"""``data/audit``: read the audit log (administrators only)."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, WithJsonSchema

from dbhandles.commands.base import Call, CallerParams, Result, command
from dbhandles.errors import InvalidParams

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["AGO_PATTERN", "SINCE_SCHEMA", "AuditParams", "parse_since"]

#: ``<n> <unit>[s] ago``, as a regular expression valid in Python and in JSON Schema.
AGO_PATTERN = r"^ *([0-9]{1,5}) *(second|minute|hour|day|week)s? +ago *$"
_AGO = re.compile(AGO_PATTERN)
# RFC 3339: a full-date, or a date-time with seconds and an offset ('T' and 'Z' in either case).
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(?:([Zz])|([+-])([0-9]{2}):([0-9]{2})))?"
)
#: The schema of ``since``: an RFC 3339 date-time or full-date, or a time ago.
SINCE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "string", "pattern": AGO_PATTERN},
    ]
}


def _since_error(value: str) -> InvalidParams:
    return InvalidParams(
        f"since: {value!r} is neither an RFC 3339 time (2024-05-01T10:00:00Z, or a date "
        "2024-05-01) nor like '1 hour ago'",
        field="since",
    )


def _moment(value: str) -> datetime:
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise _since_error(value)
    year, month, day, hour, minute, second, fraction, _zulu, sign, off_h, off_m = match.groups()
    if int(year) == 0:
        return datetime.min.replace(tzinfo=UTC)  # year 0 (RFC 3339 has it) is before any row
    try:
        offset = timedelta(0)
        if sign is not None:
            if int(off_h) > 23 or int(off_m) > 59:
                raise ValueError("offset out of range")
            offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
        moment = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0),
            min(int(second or 0), 59),  # a leap second (:60) counts as :59
            int((fraction or "0")[:6].ljust(6, "0")), tzinfo=timezone(offset),
        )  # fmt: skip
    except ValueError:
        raise _since_error(value) from None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # a moment just outside years 1-9999 once in UTC
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


def parse_since(value: str, now: datetime | None = None) -> str:
    """``"1 hour ago"`` or an RFC 3339 time or date → the ISO-8601 UTC string the audit rows are
    compared with (``SINCE_SCHEMA`` says the same)."""
    now = now or datetime.now(UTC)
    match = _AGO.fullmatch(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        moment = now - timedelta(**{f"{unit}s": amount})
    else:
        moment = _moment(value)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z"
    )


class AuditParams(CallerParams):
    actor: str | None = None
    """Only rows of this actor."""
    handle: str | None = None
    """Only rows of this handle."""
    operation: str | None = None
    """Only rows of this operation (read, write, delete, schema, admin)."""
    since: Annotated[str, WithJsonSchema(SINCE_SCHEMA)] | None = None
    """RFC 3339 time (2024-05-01T10:00:00Z) or date (2024-05-01), or '<n> <seconds|minutes|hours|days|weeks> ago'."""
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
        since=parse_since(params.since) if params.since is not None else None,
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
                "target": item.pop("target"),
            }
        )
    return AuditResult(entries=entries)
