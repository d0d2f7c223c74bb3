"""Record-level logic shared by every adapter: building, merging, validating and versioning records."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import Any

from dbhandles.adapters.base import Record, Session
from dbhandles.clock import iso_now
from dbhandles.errors import Conflict, InvalidParams, PermissionDenied, RecordNotFound
from dbhandles.evaluate import matches
from dbhandles.filters import MAX_ID_LENGTH, RESERVED_FIELDS, FilterNode
from dbhandles.schemas import Declaration

__all__ = [
    "NUMBER_BOUND",
    "check_json",
    "check_record_id",
    "create_record",
    "delete_record",
    "update_record",
    "visible",
]

MAX_DEPTH = 64
#: Every number of a record lies strictly between these (the OpenAPI document's ``JsonValue``):
#: integers fit in 64 bits, and so does any whole number written as a float (past 2**53 every float
#: is whole, and 1e19 is the integer 10**19 to JSON Schema). -2**63 itself is out: a JSON parser may
#: read -2**63 - 1 as the float -2**63.
NUMBER_BOUND = 2**63


def check_record_id(value: object, field: str = "id") -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise InvalidParams(f"{field}: a record id is a non-empty string of at most {MAX_ID_LENGTH} "
                            "characters", field=field)  # fmt: skip
    return value


def check_json(value: object, where: str, depth: int = 0) -> None:
    """Refuse what JSON cannot hold faithfully (NaN, infinities, non-string keys, other types)."""
    if depth > MAX_DEPTH:
        raise InvalidParams(f"{where}: nested deeper than {MAX_DEPTH} levels", field=where)
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidParams(f"{where}: NaN and infinity are not JSON numbers", field=where)
        if not -NUMBER_BOUND < value < NUMBER_BOUND:
            raise InvalidParams(
                f"{where}: numbers must lie strictly between -2**63 and 2**63 (integers fit in 64 "
                "bits; store bigger ones as strings)",
                field=where,
            )
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidParams(f"{where}: object keys must be strings", field=where)
            check_json(item, f"{where}.{key}", depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(item, f"{where}[{i}]", depth + 1)
        return
    raise InvalidParams(f"{where}: {type(value).__name__} is not a JSON value", field=where)


def _user_fields(data: Mapping[str, Any], where: str, allow_id: str | None) -> dict[str, Any]:
    check_json(data, where)
    for key in data:
        if key in RESERVED_FIELDS and not (
            key == "id" and (allow_id is None or data[key] == allow_id)
        ):
            raise InvalidParams(
                f"{where}.{key}: {key!r} is managed by dbhandles and cannot be set"
                + (" to a different id" if key == "id" else ""),
                field=f"{where}.{key}",
            )
    return {k: v for k, v in data.items() if k not in RESERVED_FIELDS}


def visible(record: Record | None, row_filter: FilterNode | None) -> Record | None:
    """The record if the handle's row filter lets it be seen, else ``None`` (as if it did not exist)."""
    if record is None or row_filter is None or matches(row_filter, record):
        return record
    return None


def _inside(record: Record, row_filter: FilterNode | None) -> None:
    if row_filter is not None and not matches(row_filter, record):
        raise PermissionDenied(
            "Permission denied: the record would fall outside this handle's row filter",
            field="data",
        )


def delete_record(
    session: Session, collection: str, record_id: str, row_filter: FilterNode | None
) -> bool:
    """Delete a record the handle can see; ``False`` when there is none."""
    if row_filter is not None and visible(session.get(collection, record_id), row_filter) is None:
        return False
    return session.delete(collection, record_id)


def create_record(
    session: Session,
    collection: str,
    data: Mapping[str, Any],
    record_id: str | None,
    decl: Declaration | None,
    now: str | None = None,
    row_filter: FilterNode | None = None,
) -> Record:
    """Insert a new record (id from ``record_id``, else ``data.id``, else a new UUID4); return it."""
    if record_id is None and "id" in data:
        record_id = check_record_id(data["id"], "data.id")
    user = _user_fields(data, "data", record_id)
    now = now or iso_now()
    record: Record = {
        "id": check_record_id(record_id) if record_id is not None else str(uuid.uuid4()),
        **user,
        "createdAt": now,
        "updatedAt": now,
        "version": 1,
    }
    if decl is not None:
        record = decl.validate(record)
    _inside(record, row_filter)
    session.insert(collection, record)
    return record


def update_record(
    session: Session,
    collection: str,
    record_id: str,
    patch: Mapping[str, Any],
    decl: Declaration | None,
    *,
    increment_version: bool = True,
    expected_version: int | None = None,
    row_filter: FilterNode | None = None,
) -> tuple[Record, int]:
    """Merge ``patch`` into a stored record (top-level keys); return the new record and the old version.

    Raises:
        RecordNotFound: no such record.
        Conflict: ``expected_version`` is given and differs from the stored version.
    """
    user = _user_fields(patch, "data", record_id)
    existing = visible(session.get(collection, record_id), row_filter)
    if existing is None:
        raise RecordNotFound(f"no record with id {record_id!r} in {collection!r}", field="id")
    previous = int(existing["version"])
    if expected_version is not None and expected_version != previous:
        raise Conflict(
            f"record {record_id!r} is at version {previous}, not {expected_version}: it was changed "
            "by someone else; read it again and retry",
            field="expectedVersion",
        )
    record = {**existing, **user}
    record["updatedAt"] = iso_now()
    record["version"] = previous + 1 if increment_version else previous
    if decl is not None:
        record = decl.validate(record)
    _inside(record, row_filter)
    session.replace(collection, record)
    return record, previous
