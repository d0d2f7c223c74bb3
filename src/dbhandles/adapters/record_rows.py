"""A record split into its storage fields, refused in one set of words by every SQL adapter."""

from __future__ import annotations

from typing import Any

import orjson

from dbhandles.adapters.base import Record
from dbhandles.errors import InvalidParams
from dbhandles.filters import RESERVED_FIELDS
from dbhandles.values import json_text

__all__ = ["StorageFields", "storage_fields"]

#: ``(id, user fields as orjson bytes, createdAt, updatedAt, version)``, the values not yet checked.
StorageFields = tuple[str, bytes, Any, Any, Any]


def storage_fields(record: Record) -> StorageFields:
    """The id, the user fields as JSON (orjson bytes) and the three system fields of ``record``.

    Each adapter writes the JSON in its own form (SQLite: text within a size; PostgreSQL: ``jsonb``
    with floats kept floats) after this.

    Raises:
        InvalidParams: a system field is missing, a value is no JSON, or the id is no string.
    """
    try:
        record_id = record["id"]
        system = (record["createdAt"], record["updatedAt"], record["version"])
        data = orjson.dumps({k: v for k, v in record.items() if k not in RESERVED_FIELDS})
    except KeyError as exc:
        raise InvalidParams(
            f"record is missing the system field {json_text(exc.args[0], 80)}"
        ) from exc
    except orjson.JSONEncodeError as exc:
        raise InvalidParams(
            f"record {json_text(record.get('id'), 80)} cannot be stored as JSON: {exc}"
        ) from exc
    if not isinstance(record_id, str):
        raise InvalidParams(f"record id {json_text(record_id, 80)} must be a string", field="id")
    return (record_id, data, *system)
