"""Storage rows ``(id, data JSON text, createdAt, updatedAt, version)`` of imported lines.

The fast case (no reserved key at the top level, the continuum-git shape, written compactly) stores the
line's own text as ``data``: it is exactly orjson's serialisation of the object it parses to (see
``parse.py``), so every reader of the stored text (orjson, SQLite's and PostgreSQL's JSON functions)
sees that object. Other lines store that serialisation instead. Lines that carry reserved keys (an
export of dbhandles records) take the slower path below, which removes them from ``data`` and keeps
their values:

* ``id``: the record id when no ``idField`` is given (a non-empty string); with an ``idField`` it must
  equal the id found there.
* ``createdAt`` / ``updatedAt``: kept when they are ISO-8601 timestamps with a timezone (normalised to
  UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ``); a missing ``createdAt`` falls back to ``updatedAt``, then to the
  time of the batch, and a missing ``updatedAt`` to ``createdAt`` (``complete`` does that, in the
  writer: the parser may run in another process and does not read the clock).
* ``version``: kept when it is an integer >= 1, else 1.
Anything else in a reserved key rejects the line: it is better to say so than to drop a user's field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from dbhandles.importer.ids import BadLine

__all__ = ["RESERVED_KEYS", "Reserved", "Row", "complete", "reserved_row"]

#: ``(id, data, createdAt, updatedAt, version)``; ``data`` is the JSON text of the user fields.
Row = tuple[str, str, str, str, int]
#: A ``Row`` whose timestamps may still be missing (``None``): what the parser makes of a line.
Reserved = tuple[str, str, str | None, str | None, int]

RESERVED_KEYS = ("id", "createdAt", "updatedAt", "version")

_CANONICAL_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z")


def timestamp(value: object, key: str) -> str | None:
    """A reserved timestamp from a line in canonical UTC form (``None`` when absent)."""
    if value is None:
        return None
    if isinstance(value, str):
        if _CANONICAL_TS.match(value):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                raise BadLine(
                    f"{key}: {value!r} has no timezone; add 'Z' or an offset such as +02:00"
                )
            utc = parsed.astimezone(UTC)
            return utc.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    raise BadLine(
        f"{key}: {key!r} is a reserved field and must be an ISO-8601 timestamp, got {value!r}"[:300]
    )


def _version(value: object) -> int:
    if value is None:
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise BadLine(
        f"version: 'version' is a reserved field and must be an integer >= 1, got {value!r}"[:300]
    )


def reserved_row(obj: dict[str, Any], record_id: str, id_field: str | None) -> Reserved:
    """The row of an object that has at least one reserved key (see the module docstring).

    Args:
        obj: the parsed line.
        record_id: the id already chosen for it.
        id_field: the ``idField`` of the import; when it is not ``id`` itself, an ``id`` key in the
            line must agree with the id found there.

    Raises:
        BadLine: a reserved key holds a value that cannot be kept.
    """
    if id_field not in (None, "id") and "id" in obj and obj["id"] != record_id:
        raise BadLine(
            f"id: the line's 'id' ({obj['id']!r}) differs from its id field ({record_id!r})"[:300]
        )
    created = timestamp(obj.get("createdAt"), "createdAt")
    updated = timestamp(obj.get("updatedAt"), "updatedAt")
    version = _version(obj.get("version"))
    user = {k: v for k, v in obj.items() if k not in RESERVED_KEYS}
    return (record_id, orjson.dumps(user).decode(), created, updated, version)


def complete(row: Reserved, now: str) -> Row:
    """Fill in the timestamps a line did not give: ``createdAt`` from ``updatedAt``, else ``now``;
    ``updatedAt`` from ``createdAt``."""
    record_id, data, created, updated, version = row
    created = created or updated or now
    return (record_id, data, created, updated or created, version)
