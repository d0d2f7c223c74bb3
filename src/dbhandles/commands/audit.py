"""``data/audit``: read the audit log (administrators only)."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, WithJsonSchema

from dbhandles.commands.audit_rows import audit_entry
from dbhandles.commands.base import Call, CallerParams, Result, command
from dbhandles.context import Context
from dbhandles.errors import InvalidParams
from dbhandles.values import json_text

if TYPE_CHECKING:
    from dbhandles.service import Service

__all__ = ["AGO_PATTERN", "SINCE_SCHEMA", "AuditParams", "filter_handles", "parse_since"]

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
        f"since: {json_text(value, 80)} is neither an RFC 3339 time (2024-05-01T10:00:00Z, or a date "
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


def filter_handles(service: Service, name: str | None, context: Context) -> list[str | None]:
    """The ``handle`` values of the rows ``data/audit``'s ``handle`` filter ``name`` matches.

    Rows name the handle id a name resolved to (commands/audit_rows.py), so the filter resolves
    ``name`` the same way: a handle id, an alias of the administrator's, or an actor's alias as
    ``data/list-handles`` shows it to an administrator (``bob:training``, ``alias_key``). It then
    matches rows of that handle id, and rows that recorded ``name`` itself (a name that resolved to
    nothing when it was used, such as another actor's unqualified alias probed by name). A name
    that resolves to nothing matches only rows that recorded exactly that name. ``[None]``: no filter.
    """
    if name is None:
        return [None]
    entry = audit_entry(service, name, context)
    if entry is None and ":" in name:
        # An actor's alias as stored (``<actor>:<alias>``): no caller can send it as a handle name.
        entry = next((e for e in service.registry.list_handles() if name in e.aliases), None)
    if entry is None or entry.handle == name:
        return [name]
    return [entry.handle, name]


class AuditParams(CallerParams):
    actor: str | None = None
    """Only rows of this actor."""
    handle: str | None = None
    """Only rows of this handle: a handle id, or an alias (yours, or an actor's as data/list-handles shows it, bob:training) meaning the handle id it resolves to, as the rows name it; also rows that recorded exactly this name unresolved."""
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
    since = parse_since(params.since) if params.since is not None else None
    rows = []
    handles = filter_handles(service, params.handle, call.context)
    for handle in handles:
        rows.extend(
            service.registry.store.query_audit(
                actor=params.actor, handle=handle, operation=params.operation, since=since,
                limit=params.limit,
            )
        )  # fmt: skip
    if len(handles) > 1:
        rows.sort(key=lambda row: row.at, reverse=True)  # stable: each query's order kept on ties
        del rows[params.limit :]
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
