"""Storage rows ``(id, data JSON text, createdAt, updatedAt, version)`` of imported lines.

The fast case (no reserved key at the top level, the continuum-git shape, written compactly) stores the
line's own text as ``data``: it is exactly orjson's serialisation of the object it parses to (see
``parse.py``), so every reader of the stored text (orjson, SQLite's and PostgreSQL's JSON functions)
sees that object. Other lines store that serialisation instead. Lines that carry reserved keys (an
export of dbhandles records) take the slower path below, which removes them from ``data`` and keeps
their values:

* ``id``: the record id when no ``idField`` is given (an id by the rule of ``ids.py``: a non-empty
  string or a number, taken as its text); with an ``idField`` it must be an id equal to the one found
  there.
* ``createdAt`` / ``updatedAt``: kept when they are ISO-8601 timestamps (ASCII digits) of a real
  date and time with a timezone, whose UTC time falls in the years 0001 to 9999; normalised to UTC
  ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (the year always 4 digits, so the text sorts as the time does). A
  missing ``createdAt`` falls back to ``updatedAt``, then to the time of the batch, and a missing
  ``updatedAt`` to ``createdAt`` (``complete`` does that, in the writer: the parser may run in
  another process and does not read the clock).
* ``version``: an integer from 1 to ``MAX_VERSION`` (2**31 - 1, on every adapter); 1 when absent.
* ``null`` in ``createdAt``, ``updatedAt`` or ``version`` is the key left out (as ``id: null`` is).
Anything else in a reserved key rejects the line: it is better to say so than to drop a user's field.

A line without an id (no ``idField``, no ``id`` or ``id: null``) gets the content hash of the record
as stored (``normalised``): its user fields, the normalised timestamps (both, once either is given)
and a version other than 1. So ``updatedAt`` written ``+00:00`` or ``.000Z``, or a ``null`` reserved
key, gives the id the same record gets written any other way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from dbhandles.importer.ids import BadLine, content_id, id_text
from dbhandles.values import MAX_VERSION, json_text

__all__ = ["RESERVED_KEYS", "Reserved", "Row", "complete", "normalised", "reserved_row"]

#: ``(id, data, createdAt, updatedAt, version)``; ``data`` is the JSON text of the user fields.
Row = tuple[str, str, str, str, int]
#: A ``Row`` whose timestamps may still be missing (``None``): what the parser makes of a line.
Reserved = tuple[str, str, str | None, str | None, int]

RESERVED_KEYS = ("id", "createdAt", "updatedAt", "version")

# ASCII digits only: ``\d`` would take any Unicode digit (Arabic-Indic, fullwidth...).
#: RFC 3339 ``date-time`` (section 5.6), with the space its note allows for ``T``: date, time,
#: fraction, offset.
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
#: The same without an offset: a local time, refused with its own hint.
_RFC3339_LOCAL = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?")
_RFC3339_WORDS = (
    "an RFC 3339 timestamp such as 2026-01-31T09:30:00Z, 2026-01-31T09:30:00.250+02:00 "
    "or 2026-01-31 09:30:00Z"
)
_CANONICAL_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def _bad_timestamp(key: str, value: object, why: str) -> BadLine:
    return BadLine(
        f"{key}: {json_text(key)} is a reserved field and must be {why}, got {json_text(value)}"
    )


def timestamp(value: object, key: str) -> str | None:
    """A reserved timestamp from a line in canonical UTC form (``None`` when absent).

    The accepted form is RFC 3339's date-time (``_RFC3339``): ``YYYY-MM-DD``, ``T`` (or ``t``, or
    the space RFC 3339's note allows), ``HH:MM:SS``, an optional fraction of one or more digits
    (kept to the millisecond, cut, not rounded), then ``Z`` (or ``z``) or an offset ``+HH:MM`` /
    ``-HH:MM``. Other ISO-8601 forms (week dates ``2026-W01-1``, ordinal dates, basic forms without
    separators, no seconds, an empty fraction ``00.Z``, seconds in the offset ``+01:00:30``) are
    refused.

    Raises:
        BadLine: not an RFC 3339 date-time of a real date and time with an offset (ASCII digits),
            or its UTC time falls outside the years 0001-9999.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii():
        raise _bad_timestamp(key, value, _RFC3339_WORDS)
    found = _RFC3339.fullmatch(value)
    if found is None:
        if _RFC3339_LOCAL.fullmatch(value):
            raise BadLine(
                f"{key}: {json_text(value)} has no timezone; add Z or an offset such as +02:00"
            )
        raise _bad_timestamp(key, value, _RFC3339_WORDS)
    date, clock, fraction, offset = found.groups()
    zone = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}{(fraction or '')[:7]}{zone}")
    except ValueError as exc:  # no such date or time (month 13, 25:00, an offset of 24:00)
        raise _bad_timestamp(key, value, f"{_RFC3339_WORDS} ({exc})") from None
    if _CANONICAL_TS.fullmatch(value):
        return value  # a real UTC time already in the stored form (the export of a collection)
    try:
        utc = parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise _bad_timestamp(
            key, value, "a timestamp whose UTC time falls in the years 0001 to 9999"
        ) from None
    # isoformat writes the year in 4 digits (strftime's %Y would write 999 for 0999).
    return utc.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _version(value: object) -> int:
    if value is None:
        return 1
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_VERSION:
        return value
    raise BadLine(
        f'version: "version" is a reserved field and must be an integer from 1 to {MAX_VERSION} '
        f"(2**31 - 1), got {json_text(value)}"
    )


def normalised(
    user: dict[str, Any], created: str | None, updated: str | None, version: int
) -> dict[str, Any]:
    """The record a line stores, as its content hash sees it: the user fields, ``createdAt`` and
    ``updatedAt`` (each filling in the other, as ``complete`` does) when either was given, and
    ``version`` when it is not the default 1. A line without reserved keys hashes to the same."""
    record = dict(user)
    if created is not None or updated is not None:
        record["createdAt"] = created or updated
        record["updatedAt"] = updated or created
    if version != 1:
        record["version"] = version
    return record


def reserved_row(obj: dict[str, Any], record_id: str, id_field: str | None) -> Reserved:
    """The row of an object that has at least one reserved key (see the module docstring).

    Args:
        obj: the parsed line.
        record_id: the id already chosen for it; replaced by the hash of the normalised record
            when the line has no id of its own and no ``id_field`` is given.
        id_field: the ``idField`` of the import; when it is not ``id`` itself, an ``id`` key in the
            line must agree with the id found there.

    Raises:
        BadLine: a reserved key holds a value that cannot be kept.
    """
    if id_field not in (None, "id") and "id" in obj and id_text(obj["id"], "id") != record_id:
        raise BadLine(
            f'id: the line\'s "id" ({json_text(obj["id"])}) differs from its id field '
            f"({json_text(record_id)})"
        )
    created = timestamp(obj.get("createdAt"), "createdAt")
    updated = timestamp(obj.get("updatedAt"), "updatedAt")
    version = _version(obj.get("version"))
    user = {k: v for k, v in obj.items() if k not in RESERVED_KEYS}
    if id_field is None and obj.get("id") is None:
        record_id = content_id(normalised(user, created, updated, version))
    return (record_id, orjson.dumps(user).decode(), created, updated, version)


def complete(row: Reserved, now: str) -> Row:
    """Fill in the timestamps a line did not give: ``createdAt`` from ``updatedAt``, else ``now``;
    ``updatedAt`` from ``createdAt``."""
    record_id, data, created, updated, version = row
    created = created or updated or now
    return (record_id, data, created, updated or created, version)
