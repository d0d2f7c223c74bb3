"""Record-level logic shared by every adapter: building, merging, validating and versioning records."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from dbhandles.adapters.base import Record, Session, TableWriter
from dbhandles.adapters.foreign_writer import stored_version
from dbhandles.clock import iso_now
from dbhandles.errors import (
    Conflict,
    InvalidParams,
    PermissionDenied,
    QueryFailed,
    RecordNotFound,
)
from dbhandles.evaluate import matches
from dbhandles.filters import MAX_ID_LENGTH, RESERVED_FIELDS, FilterNode, check_collection_query
from dbhandles.row_writes import loose_field, loose_message
from dbhandles.schemas import Declaration
from dbhandles.values import (
    MAX_DEPTH,
    MAX_VERSION,
    NUMBER_BOUND,
    check_value,
    json_text,
    member_path,
    number_text,
    text_problem,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_TABLE_ID_LENGTH",
    "NUMBER_BOUND",
    "check_held_id",
    "check_json",
    "check_record_id",
    "column_values",
    "create_record",
    "delete_record",
    "id_text",
    "record_version",
    "seen",
    "update_record",
    "visible",
]


#: The longest id a command takes: the id of a row of a table dbhandles did not create (a long
#: text key, the JSON of a view's row) may be longer than a collection's ids (``MAX_ID_LENGTH``).
MAX_TABLE_ID_LENGTH = 65_536


def id_text(value: object) -> object:
    """An id given as a JSON number as its canonical text; anything else as it is.

    The ``id`` of a row of a table dbhandles did not create is its key's value, a number for a
    numeric key (docs/foreign-tables.md); wherever an id is taken, that number is its text by the
    one id rule of every door (``values.number_text``, also the importer's): an integer in decimal,
    an integral float as the integer (``3.0`` -> ``"3"``, since JavaScript prints it so), any other
    float as JSON writes it (``2.5``, ``1e-7``). ``true``/``false`` are no ids and are left to be
    refused.
    """
    if type(value) is int:
        return str(value)
    if type(value) is float and value - value == 0:
        return number_text(value)
    return value


def check_record_id(
    value: object,
    field: str = "id",
    limit: int = MAX_TABLE_ID_LENGTH,
    *,
    held: bool = False,
    new: bool = False,
) -> str:
    """A record id: a non-empty string of at most ``limit`` characters (``MAX_ID_LENGTH`` for a
    new record of a collection), valid Unicode without U+0000 (``values.text_problem``:
    PostgreSQL's ``text`` cannot hold it); a JSON number is taken as its text (``id_text``).
    With ``held`` (an id that names a row which may exist) U+0000 is left to ``check_held_id``:
    a table dbhandles did not create may hold it in a key another tool wrote.

    Raises:
        InvalidParams: anything else, a number not strictly between -2**63 and 2**63 included
            (the numbers of a record: a ``new`` id, which create and import store, is held to
            it); an id naming a stored row (read, update, delete) takes an integer key's whole
            int64 range, -2**63 included (it is listed as that number), and any finite double
            (a REAL key's); ``field`` names it.
    """
    # An id naming a stored integer key takes its whole int64 range: -2**63 is listed as that
    # number (foreign-tables.md), and one naming a stored REAL key any double (-1e300 is listed
    # as that number); a new record's id is held to the numbers of a record.
    if (
        type(value) in (int, float)
        and not -NUMBER_BOUND < value < NUMBER_BOUND  # type: ignore[operator]
        and (new or (type(value) is int and value != -NUMBER_BOUND))
    ):
        raise InvalidParams(f"{field}: a numeric id lies strictly between -2**63 and 2**63, as "
                            "every number of a record (an id naming a stored integer key may be "
                            "-2**63)", field=field)  # fmt: skip
    value = id_text(value)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidParams(f"{field}: a record id is a non-empty string (or a number, for a key "
                            f"that is one) of at most {limit} characters", field=field)  # fmt: skip
    problem = text_problem(value.replace("\x00", "") if held else value)
    if problem is not None:
        raise InvalidParams(f"{field}: {problem}", field=field)
    return value


def check_held_id(session: Session, collection: str, record_id: str, field: str = "id") -> None:
    """Refuse U+0000 in ``record_id`` unless ``collection`` is a table dbhandles did not create
    (``Session.table``), whose key another tool may have written with it (docs/foreign-tables.md
    "Values"): no record of a collection holds it. On PostgreSQL, whose text cannot hold it, the
    adapter refuses it as ``invalid_params`` naming PostgreSQL.

    Raises:
        InvalidParams: U+0000 in the id of a collection's record; ``field`` names it.
    """
    if "\x00" in record_id and session.table(collection) is None:
        check_record_id(record_id, field)


def check_json(value: object, where: str) -> Any:
    """``value`` as a record stores it, by the one rule of ``dbhandles.values`` (``check_value``):
    valid Unicode without U+0000, finite numbers strictly between -2**63 and 2**63, string keys, at
    most 64 levels; ``-0.0`` becomes ``0.0``.

    Raises:
        InvalidParams: a value breaks the rule; ``field`` is its path (``data.tags[1]``).
    """
    return check_value(value, where)


def _user_fields(data: Mapping[str, Any], where: str, allow_id: str | None) -> dict[str, Any]:
    data = check_json(data, where)
    for key in data:
        if key in RESERVED_FIELDS and not (
            key == "id" and (allow_id is None or id_text(data[key]) == allow_id)
        ):
            raise InvalidParams(
                f"{member_path(where, key)}: {json_text(key, 80)} is managed by dbhandles and "
                "cannot be set" + (" to a different id" if key == "id" else ""),
                field=member_path(where, key),
            )
    return {k: v for k, v in data.items() if k not in RESERVED_FIELDS}


def visible(record: Record | None, row_filter: FilterNode | None) -> Record | None:
    """The record if the handle's row filter lets it be seen, else ``None`` (as if it did not exist)."""
    if record is None or row_filter is None or matches(row_filter, record):
        return record
    return None


def seen(
    read: Callable[[str, str], Record | None],
    collection: str,
    record_id: str,
    row_filter: FilterNode | None,
) -> Record | None:
    """``read(collection, record_id)`` as the handle may see it (``visible``): every id door
    (read, update, delete, batch operations) reads a record through this.

    Behind a row filter, a row the filter cannot be tested on (another tool wrote it as no JSON
    object dbhandles can read: ``sqlite_values.record_data``) is hidden, answered exactly as a
    missing id: naming it would tell the id exists (docs/security.md, section 5).

    Raises:
        QueryFailed: without a row filter, the row is unreadable (the message names the record);
            any other failure of ``read`` as it is.
    """
    try:
        record = read(collection, record_id)
    except QueryFailed as exc:
        if row_filter is None or exc.details.keys() != {"collection", "id"}:
            raise
        if exc.details["id"] != record_id:
            raise
        return None
    return visible(record, row_filter)


def _inside(record: Record, row_filter: FilterNode | None, *, collection: bool = False) -> None:
    if collection and row_filter is not None:
        # What a read through this handle refuses (a path no collection's record has, such as
        # ``ownér``), a write refuses too: never a record written that the handle cannot list.
        check_collection_query(row_filter)
    if row_filter is not None and not matches(row_filter, record):
        raise PermissionDenied(
            "Permission denied: the record would fall outside this handle's row filter",
            field="data",
        )
    if row_filter is not None and (loose := loose_field(row_filter, record)) is not None:
        # An array holding the filter's value matches other filters too (row_writes.py).
        raise PermissionDenied(loose_message(loose), field=f"data.{loose}")


def record_version(session: Session, collection: str, record: Record) -> int | None:
    """The version of ``record`` as stored in ``collection``, for a result: a collection's own; on
    a table dbhandles did not create, the ``version`` column's value only where that column is the
    record's version (``TableWriter.reserved``: an integer type, docs/foreign-tables.md "Versions
    and timestamps"), else ``None`` (a ``version`` column of another type is plain data, and a
    result's version is an integer or null)."""
    writer = session.table_writer(collection)
    if writer is not None and "version" not in writer.reserved:
        return None
    version = record.get("version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def delete_record(
    session: Session, collection: str, record_id: str, row_filter: FilterNode | None
) -> bool:
    """Delete a record the handle can see; ``False`` when there is none (``check_held_id``)."""
    check_held_id(session, collection, record_id)
    if row_filter is not None and seen(session.get, collection, record_id, row_filter) is None:
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
    """Insert a new record (id from ``record_id``, else ``data.id``, else a new UUID4); return it.

    Through a handle with a row filter the id is always a new UUID4: an id the caller chose could
    be one the filter hides, and refusing it (``record_exists``) would tell the caller that a record
    it may not see exists (docs/security.md, row-level security).

    Raises:
        PermissionDenied: an id was given through a handle with a row filter; the record would fall
            outside the row filter.
        RecordExists: the id is taken.
    """
    if record_id is None and "id" in data:
        record_id = check_record_id(data["id"], "data.id", new=True)
    elif record_id is not None:
        # a new key, which dbhandles writes: no U+0000, no -2**63
        record_id = check_record_id(record_id, new=True)
    if row_filter is not None and record_id is not None:
        raise PermissionDenied(
            "Permission denied: through a handle with a row filter, dbhandles chooses the ids of new "
            "records (an id you choose could be one the filter hides); omit id and data.id",
            field="id",
        )
    writer = session.table_writer(collection)
    if writer is not None:
        return _create_row(writer, data, record_id, now or iso_now(), row_filter)
    user = _user_fields(data, "data", record_id)
    now = now or iso_now()
    record: Record = {
        "id": check_record_id(record_id, "id", MAX_ID_LENGTH, new=True)
        if record_id is not None
        else str(uuid.uuid4()),
        **user,
        "createdAt": now,
        "updatedAt": now,
        "version": 1,
    }
    if decl is not None:
        record = decl.validate(record)
    _inside(record, row_filter, collection=True)
    session.insert(collection, record)
    return record


def _table_fields(
    writer: TableWriter, data: Mapping[str, Any], record_id: str | None
) -> dict[str, Any]:
    """The fields of a row to write: a table's columns are whatever it has, but the reserved fields
    it keeps (``TableWriter.reserved``) are dbhandles' to set, and ``id`` only its own."""
    data = column_values(data)
    for key in data:
        if key in writer.reserved or (key == "id" and id_text(data[key]) != record_id):
            raise InvalidParams(
                f"data.{key}: {json_text(key, 80)} is managed by dbhandles and cannot be set"
                + (" to a different id" if key == "id" else ""),
                field=f"data.{key}",
            )
    return {k: v for k, v in data.items() if k != "id"}


def column_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a row for a table dbhandles did not create: ``data/create``, ``update``,
    ``batch``, ``copy`` into one) checked as ``check_json`` does, except a field's own number
    past the records' +-2**63 (a finite ``1e20`` for a REAL or ``double precision`` column, a large integer for a
    ``numeric`` one): the rule that keeps a record's integers exact is dbhandles' own, and a
    column has its own (the writer applies it, ``sqlite_number_problem``/``pg_number``: what the
    column cannot hold is ``invalid_params`` naming the field, nothing written)."""
    wide = {key for key, value in data.items() if type(value) in (int, float)
            and value - value == 0 and not -NUMBER_BOUND < value < NUMBER_BOUND}  # fmt: skip
    if not wide:
        return dict(check_json(data, "data"))
    checked = check_json({k: v for k, v in data.items() if k not in wide}, "data")
    return {key: data[key] if key in wide else checked[key] for key in data}


def _create_row(
    writer: TableWriter,
    data: Mapping[str, Any],
    record_id: str | None,
    now: str,
    row_filter: FilterNode | None,
) -> Record:
    """``create_record`` on a table dbhandles did not create (docs/foreign-tables.md "Writes")."""
    writer.check_writable()
    row = _table_fields(writer, data, record_id)
    if record_id is not None:
        row["id"] = record_id
    for name in ("createdAt", "updatedAt"):
        if name in writer.reserved:
            row[name] = now
    if "version" in writer.reserved:
        row["version"] = 1
    stored = writer.insert(row)
    _inside(stored, row_filter)  # what was stored: a failure here rolls the write back
    return stored


def _update_row(
    session: Session,
    writer: TableWriter,
    collection: str,
    record_id: str,
    patch: Mapping[str, Any],
    *,
    increment_version: bool,
    expected_version: int | None,
    row_filter: FilterNode | None,
) -> tuple[Record, int | None]:
    """``update_record`` on a table dbhandles did not create (docs/foreign-tables.md "Writes")."""
    writer.check_writable()
    changes = _table_fields(writer, patch, record_id)
    versioned = "version" in writer.reserved
    if expected_version is not None and not versioned:
        raise InvalidParams(
            f"expectedVersion: table {json_text(writer.name, 80)} has no version column, so there is no version "
            "to compare (a column named version with an integer type, or version/created_at/"
            'updated_at with "fieldNames": "camel", keeps one)',
            field="expectedVersion",
        )
    existing = seen(session.get, collection, record_id, row_filter)
    if existing is None:
        raise RecordNotFound(
            f"no record with id {json_text(record_id, 80)} in {json_text(collection, 80)}",
            field="id",
        )
    previous: int | None = None
    if versioned:
        previous = stored_version(existing.get("version"), record_id, writer.name)
        if expected_version is not None and expected_version != previous:
            # A NULL version reads as null and counts as 0: say both, one answer to the caller.
            at = "null (not versioned yet, which counts as 0)" if previous == 0 else previous
            raise Conflict(
                f"record {json_text(record_id, 80)} is at version {at}, not {expected_version}: it was "
                "changed by someone else; read it again and retry",
                field="expectedVersion",
            )
        if increment_version:
            if previous >= MAX_VERSION:
                raise InvalidParams(
                    f"record {json_text(record_id, 80)} is at version {previous}, the largest a record may have "
                    f"({MAX_VERSION}, on every adapter); update it with incrementVersion: false",
                    field="version",
                )
            changes["version"] = previous + 1
    if "updatedAt" in writer.reserved:
        changes["updatedAt"] = iso_now()
    record = writer.update(record_id, changes)
    if record is None:
        raise RecordNotFound(
            f"no record with id {json_text(record_id, 80)} in {json_text(collection, 80)}",
            field="id",
        )
    _inside(record, row_filter)
    return record, previous


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
) -> tuple[Record, int | None]:
    """Merge ``patch`` into a stored record (top-level keys); return the new record and the old version.

    On a table dbhandles did not create (``Session.table_writer``) the given columns are set, and
    the old version is ``None`` when the table keeps none.

    Raises:
        RecordNotFound: no such record.
        Conflict: ``expected_version`` is given and differs from the stored version.
        InvalidParams: ``expected_version`` on a table without a version column; the record is at
            ``MAX_VERSION`` and ``increment_version`` is true.
    """
    check_held_id(session, collection, record_id)
    writer = session.table_writer(collection)
    if writer is not None:
        return _update_row(session, writer, collection, record_id, patch,
                           increment_version=increment_version,
                           expected_version=expected_version, row_filter=row_filter)  # fmt: skip
    user = _user_fields(patch, "data", record_id)
    existing = seen(session.get, collection, record_id, row_filter)
    if existing is None:
        raise RecordNotFound(
            f"no record with id {json_text(record_id, 80)} in {json_text(collection, 80)}",
            field="id",
        )
    previous = int(existing["version"])
    if expected_version is not None and expected_version != previous:
        raise Conflict(
            f"record {json_text(record_id, 80)} is at version {previous}, not {expected_version}: it was changed "
            "by someone else; read it again and retry",
            field="expectedVersion",
        )
    if increment_version and previous >= MAX_VERSION:
        raise InvalidParams(
            f"record {json_text(record_id, 80)} is at version {previous}, the largest a record may have "
            f"({MAX_VERSION}, on every adapter); update it with incrementVersion: false",
            field="version",
        )
    record = {**existing, **user}
    record["updatedAt"] = iso_now()
    record["version"] = previous + 1 if increment_version else previous
    if decl is not None:
        record = decl.validate(record)
    _inside(record, row_filter, collection=True)
    session.replace(collection, record)
    return record, previous
