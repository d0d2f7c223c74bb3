"""Lines an import did not write because their id was already stored with other fields.

Every batch is written with "skip existing", and a number given as an id is its text (``ids.py``):
``5``, ``5.0`` and ``"5"`` are one id, so are ``-0.0`` and ``0``. A skipped line whose fields are
those of the stored record loses nothing (a re-run, a resumed run, a line given twice); one whose
fields differ was not written at all, and was only counted in ``skipped`` (outside report, finding
10). ``collisions`` finds those lines, with the line that stored the id when it is in the same
batch (this insert, or an earlier chunk's: ``earlier``), so the import reports each one
(``errors``, the rejects file, ``duplicates``).

It runs only when an insert skipped rows, in the insert's own transaction, so it sees the rows the
insert just stored: it reads each distinct id once (``Session.get_many``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from dbhandles.adapters.base import Session
from dbhandles.importer.rows import RESERVED_KEYS, Row
from dbhandles.value_equality import same_value
from dbhandles.values import json_text

__all__ = ["Collision", "collisions"]

_SORTED = orjson.OPT_SORT_KEYS

#: ``(line, id, reason)`` of a line that was not written.
Collision = tuple[int, str, str]


def _same_fields(held: dict[str, Any], data: str) -> bool:
    """Whether the stored fields ``held`` are those of the row's JSON text ``data``: first as
    bytes (a line stored as its own text reads back as it was written), then with sorted keys, and
    only then value by value (``1`` and ``1.0``), so a re-run's reading back stays in C."""
    text = orjson.dumps(held)
    if text == data.encode():
        return True
    fields = orjson.loads(data)
    if orjson.dumps(held, option=_SORTED) == orjson.dumps(fields, option=_SORTED):
        return True
    return same_value(held, fields)


def _stored_fields(session: Session, collection: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored fields of each of ``ids``, read by id (``Session.get_many``: index lookups, as
    point reads, or one statement per batch of ids on PostgreSQL, where a point read per id made
    a re-run of 10,000 lines 10,000 round trips; a filtered ``find`` would first check every row
    of the collection for rows another tool wrote, in a process that did not write them, which
    made a one-line re-run read 200,000 rows; outside report). A row that cannot be read back is
    left out: nothing to compare it with."""
    return {
        record_id: {k: v for k, v in record.items() if k not in RESERVED_KEYS}
        for record_id, record in session.get_many(collection, ids).items()
    }


def collisions(
    session: Session,
    collection: str,
    rows: Sequence[Row],
    lines: Sequence[int],
    earlier: Callable[[str], int | None] | None = None,
) -> list[Collision]:
    """The rows of one insert (``rows[i]`` from line ``lines[i]``) whose id is stored with other
    fields than the row's: lines the insert skipped and that are in the database as no line.

    Args:
        session: the write session the rows were just inserted in (it sees them).
        collection: the collection they went to.
        rows: the storage rows, in line order.
        lines: the line number of each row.
        earlier: the line before this insert (of the same batch) whose fields are stored under an
            id, or ``None``; asked only for an id no line of this insert stored.

    Returns:
        ``(line, id, reason)`` per such row, in line order; the reason names the line of this
        insert, or else of ``earlier``, whose fields are stored under the id, when there is one.
    """
    stored = _stored_fields(session, collection, list(dict.fromkeys(row[0] for row in rows)))
    writer: dict[str, int] = {}  # the first line of this insert whose fields are the stored ones
    found: list[tuple[int, str]] = []
    for row, line in zip(rows, lines, strict=True):
        held = stored.get(row[0])
        if held is None:  # not readable back (a row another tool damaged): nothing to compare
            continue
        if _same_fields(held, row[1]):
            writer.setdefault(row[0], line)
        else:
            found.append((line, row[0]))
    result: list[Collision] = []
    for line, record_id in found:
        by = writer.get(record_id)
        if (by is None or by > line) and earlier is not None:
            by = earlier(record_id)
        how = (
            f"with the fields of line {by} of this input"
            if by is not None and by < line
            else "with other fields (by an earlier batch of this import or an earlier import)"
        )
        result.append((line, record_id, (
            f"id {json_text(record_id, 80)} is already stored {how}: this line was not written "
            "(ids are text: the numbers 5 and 5.0 and the string \"5\" are one id, and so are -0.0 "
            "and 0; give each record its own id, or delete the stored one first)"
        )))  # fmt: skip
    return result
