"""``data/copy`` into a table dbhandles did not create: records as rows, idempotent through the key.

``copy_run`` hands a batch here when its target is a writable foreign table
(``Session.table_writer``; docs/copy.md "Tables dbhandles did not create"). A record becomes a row:

* ``id`` is the table's key (the text of a numeric key, the JSON array of a compound one);
* every other field is the column served under its name; a field that is no column is
  ``invalid_params`` naming it, except the reserved ``createdAt``, ``updatedAt`` and ``version``,
  which go into the columns the table keeps them in and are dropped where it keeps none (a record
  that lacks one gets the time of the copy, or version 1, where the table keeps it);
* a row whose key is absent is inserted; a row present with equal content counts as already
  copied (``skipped``); one with other content is a conflict (``skip``, ``abort``, ``replace``).

"Equal content" is decided by the database, not by comparing JSON: the table stores ``true`` as
``1`` (SQLite), ``"2024-01-01T00:00:00Z"`` in a ``timestamptz`` column as its own text, and so on.
So the row is updated to the record inside a savepoint, read back, and the savepoint rolled back
(``_stores_as``): the row is equal when that changes nothing.

That the table stores a record *the same way twice* does not make the stored row the record: an
``integer`` column turns ``"007"`` into ``7``, ``numeric(6,2)`` ``1.005`` into ``1.01``,
``varchar(3)`` ``"abc  "`` into ``"abc"``. ``changed_field`` compares the row as stored with the
record itself, field by field, under ``preserved`` (docs/copy.md "Value-preserving"): a move deletes
a source row only when no field changed, and a copy reports the rows that did (``Placed.changed``).

Every error (a constraint the table refuses, a field that is no column) names the record and
leaves nothing of the batch written: the whole batch is one write transaction.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from dbhandles.adapters.base import Adapter, Record, Session, TableWriter
from dbhandles.clock import iso_now
from dbhandles.documents import id_text
from dbhandles.errors import Conflict, DbHandlesError, InvalidParams
from dbhandles.filters import RESERVED_FIELDS
from dbhandles.value_equality import same_value
from dbhandles.values import json_text

__all__ = ["Placed", "changed_field", "preserved", "table_fields", "write_rows"]

#: A JSON number as text: no sign but ``-``, no leading zero (``"007"`` is a code, not 7), no spaces.
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Placed:
    """A source row now safely in the target, and the target's row as stored (``None`` for a
    collection, whose copy is the record itself: ``copy_run.same_record`` verifies it)."""

    row: Record
    stored: Record | None = None
    #: The first field whose value the table changed (``changed_field``), ``None`` when none did.
    changed: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one batch did to a table: rows placed, and the counts of each kind."""

    placed: list[Placed]
    copied: int
    replaced: int
    skipped: int
    conflicts: list[str]


class _Probe(Exception):
    """Not an error: carries the probed row out of its savepoint, which it rolls back."""

    def __init__(self, stored: Record | None) -> None:
        super().__init__("probe")
        self.stored = stored


def _decimal(value: Any) -> Decimal | None:
    """The exact decimal a JSON number, or a string spelling one (``_NUMBER``), stands for."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            return None
    return None


def _instant(text: str) -> dt.datetime | dt.time | None:
    """The date-time (aware, in UTC; a naive one is read as UTC) or time of day ``text`` spells."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            return dt.time.fromisoformat(text)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _same_text(a: str, b: str) -> bool:
    """Whether two different texts are one value: one instant, one UUID or one decimal."""
    one, two = _instant(a), _instant(b)
    if one is not None and two is not None:
        return type(one) is type(two) and one == two
    try:
        return uuid.UUID(a) == uuid.UUID(b)
    except ValueError:
        pass
    x, y = _decimal(a), _decimal(b)
    return x is not None and x == y


def preserved(value: Any, stored: Any) -> bool:
    """Whether the table kept ``value`` when it stored it as ``stored`` (the JSON it reads back).

    Value-preserving conversions (docs/copy.md "Value-preserving"): ``true``/``false`` stored as
    ``1``/``0``; a number and a string spelling the same decimal (``"7.50"`` and ``7.5``, not
    ``"007"`` and ``7``); two texts of one instant (``"2024-03-01T10:00:00+02:00"`` and
    ``"2024-03-01T08:00:00.000000Z"``; a text without an offset is read as UTC), of one time of
    day, of one UUID, or of one decimal. Anything else must be ``same_value``: ``"abc  "`` stored as
    ``"abc"``, ``1.005`` as ``1.01``, a date-time as its date are changes.
    """
    if same_value(value, stored):
        return True
    if isinstance(value, bool):
        return type(stored) is int and stored == int(value)
    if isinstance(value, str) and isinstance(stored, str):
        return _same_text(value, stored)
    if isinstance(value, str | int | float) and isinstance(stored, str | int | float):
        if isinstance(stored, bool) or not (isinstance(value, str) or isinstance(stored, str)):
            return False
        x, y = _decimal(value), _decimal(stored)
        return x is not None and x == y
    return False


def changed_field(record: Record, stored: Record) -> str | None:
    """The first field of ``record`` that the table's row ``stored`` does not hold (``preserved``),
    ``None`` when it holds them all. The id compares as text (``documents.id_text``); a reserved
    field the table keeps no column for is not compared (it was dropped, docs/copy.md)."""
    if "id" in stored and id_text(stored["id"]) != str(record.get("id")):
        return "id"
    for name, value in record.items():
        if name == "id" or (name in RESERVED_FIELDS and name not in stored):
            continue
        if name not in stored or not preserved(value, stored[name]):
            return name
    return None


def table_fields(description: dict[str, Any]) -> frozenset[str]:
    """The fields a row of the table described (``Session.table``) may be given: its columns as
    served, generated ones aside."""
    return frozenset(
        str(c.get("field", c["name"])) for c in description["columns"] if not c.get("generated")
    )


def _row(record: Record, fields: frozenset[str], reserved: frozenset[str], now: str) -> Record:
    """The row to write for ``record`` (see the module docstring).

    Raises:
        InvalidParams: a field (not a reserved one) that the table has no column for.
    """
    row: Record = {"id": record["id"]}
    for name, value in record.items():
        if name == "id":
            continue
        if name in fields:
            row[name] = value
        elif name not in RESERVED_FIELDS:
            known = ", ".join(sorted(fields))
            raise InvalidParams(
                f"data.{name}: the target table has no column {json_text(name, 80)} (its fields: {known}); "
                "copy into a table that has one, or into a collection",
                field=f"data.{name}",
            )
    for name in reserved:
        if name not in row:
            row[name] = 1 if name == "version" else now
    return row


def _named(exc: DbHandlesError, record_id: str) -> None:
    """Make ``exc`` say which record it is about, and that the batch was not written."""
    exc.restate(f"record {json_text(record_id, 80)}: ", "nothing of this batch was written")
    exc.details.setdefault("record", record_id)


def _stores_as(target: Adapter, table: str, row: Record) -> Record | None:
    """The row ``row["id"]`` as the table would store it after an update to ``row`` (``None`` if
    the table refuses it): the update runs in a savepoint that is always rolled back."""
    changes = {k: v for k, v in row.items() if k != "id"}
    try:
        with target.session(write=True) as nested:
            writer = nested.table_writer(table)
            assert writer is not None
            writer.converting = True  # as ``write_rows`` writes it
            raise _Probe(writer.update(str(row["id"]), changes))
    except _Probe as probe:
        return probe.stored
    except DbHandlesError:
        return None


def write_rows(
    target: Adapter,
    session: Session,
    writer: TableWriter,
    table: str,
    rows: list[Record],
    on_conflict: str,
) -> Outcome:
    """Store one batch of records in the foreign table ``table``, inside ``session``'s write
    transaction (see the module docstring).

    Raises:
        ReadOnly: the table cannot be written (a view, no primary key).
        InvalidParams: a field that is no column; an id that cannot be the table's key.
        ConstraintViolation, RecordExists: the table refused a row (naming the constraint and field).
        Conflict: a row present with other content, with ``on_conflict="abort"``.
    """
    writer.check_writable()
    writer.converting = True  # a value stored as another is a change it reports (docs/copy.md)
    description = session.table(table)
    assert description is not None
    fields = table_fields(description)
    now = iso_now()
    placed: list[Placed] = []
    copied = replaced = skipped = 0
    conflicts: list[str] = []
    for record in rows:
        record_id = str(record["id"])
        try:
            row = _row(record, fields, writer.reserved, now)
            have = session.get(table, record_id)
            if have is None:
                inserted = writer.insert(row)
                placed.append(Placed(record, inserted, changed_field(record, inserted)))
                copied += 1
                continue
            stored = _stores_as(target, table, row)
            if stored is not None and same_value(stored, have):
                placed.append(Placed(record, have, changed_field(record, have)))
                skipped += 1
            elif on_conflict == "replace":
                written = writer.update(record_id, {k: v for k, v in row.items() if k != "id"})
                assert written is not None
                placed.append(Placed(record, written, changed_field(record, written)))
                replaced += 1
            elif on_conflict == "abort":
                raise Conflict(
                    f"the row is already in table {json_text(writer.name, 80)} with other content "
                    "(onConflict: abort)",
                    field="to.collection",
                )
            else:
                conflicts.append(record_id)
        except DbHandlesError as exc:
            _named(exc, record_id)
            raise
    return Outcome(placed, copied, replaced, skipped, conflicts)
