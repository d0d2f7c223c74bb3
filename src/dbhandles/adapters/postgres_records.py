"""Rows another tool wrote into a PostgreSQL collection, read in full or not at all.

dbhandles writes each record's ``data`` normalised (``dbhandles.values``), but another tool may
``INSERT`` any ``jsonb`` (docs/filters.md "Values"). A row is a record only when every reader, every
filter, count, sort and facet (run by PostgreSQL on the ``jsonb``) and a later update would see the
same, whole value; any other row is **unreadable**, exactly as on SQLite (``sqlite_values``):
left out of every listing, count, facet, export and copy (``READABLE`` in their ``WHERE``), counted
in ``unreadable``, named by a read (``record_problem``), hidden behind a row filter.

Unreadable on PostgreSQL: ``data`` that is no object; a reserved field (``id``, ``createdAt``,
``updatedAt``, ``version``) inside it, which would contradict the row's columns; an integer outside
[-2**63, 2**63) or a number past a double (``jsonb`` keeps ``1e400`` and ``18446744073709551616``
exactly as ``numeric``, which the driver reads as no number or as an inexact float: a listing
failed with ``storage_error``, an update wrote the float back); nesting deeper than ``MAX_DEPTH`` (a field's value is level 1, an
item of a container at level 64 is too deep). ``jsonb`` itself holds no U+0000 and keeps each key
once (the last), as every reader shows it, so those need no check here.

The test is one ``jsonb_path_exists`` walk per row, in C inside the server, so counts count what
listings list in the same statement; nothing is decoded in Python.
"""

from __future__ import annotations

from dbhandles.errors import QueryFailed
from dbhandles.filters import RESERVED_FIELDS
from dbhandles.values import MAX_DEPTH, NUMBER_BOUND, json_text

__all__ = ["READABLE", "UNREADABLE_WHY", "record_problem"]

_RESERVED = ", ".join(f"'{name}'" for name in sorted(RESERVED_FIELDS))
#: A jsonpath item: a number outside [-2**63, 2**63). Only a number without a fraction there
#: (``numeric`` scale 0: an integer, or another tool's ``1.5e300``, which ``jsonb`` cannot tell
#: apart) or one past a double is unreadable: dbhandles writes every float with a fraction
#: (``postgres_compile.dump_document``), which reads back as that float.
_WIDE_TEST = f'? (@.type() == "number" && (@ >= {NUMBER_BOUND} || @ < -{NUMBER_BOUND}))'
_WIDE = f"@.** {_WIDE_TEST}"
#: A jsonpath item nested past ``MAX_DEPTH`` (the record is level 0 of ``.**{n}``, a field's
#: value level 1).
_DEEP = f"@.**{{{MAX_DEPTH + 1}}}"
#: The largest double, as ``dbhandles.values`` words the bound.
_DOUBLE_MAX = "1.7976931348623157e308"
#: SQL: ``data`` holds a number read as no number or as an inexact float.
_INEXACT = (
    f"EXISTS (SELECT FROM jsonb_path_query(data, 'strict $.** {_WIDE_TEST}') AS v "
    f"WHERE scale(v::numeric) = 0 OR abs(v::numeric) > {_DOUBLE_MAX})"
)
#: SQL: ``data`` nests a value past ``MAX_DEPTH``.
_TOO_DEEP = f"jsonb_path_exists(data, 'strict $ ? (exists ({_DEEP}))')"

#: SQL (no parameters) true when a collection row's ``data`` is a record dbhandles reads in full.
#: One walk of the ``jsonb`` (in C) decides for every row but the rare one holding a number past
#: 64 bits or nesting past ``MAX_DEPTH``, which alone is looked at again. Wrapped in a ``CASE``:
#: the planner guesses an ``=`` on an expression keeps 0.5% of the rows, and then ran a page in
#: id order as a scan and sort of the whole table rather than an index scan that stops after the
#: page (``benchmarks/postgres_readable_rows.py``); a ``CASE`` it guesses at a half.
READABLE = (
    f"(CASE WHEN jsonb_typeof(data) = 'object' AND NOT data ?| array[{_RESERVED}] AND (NOT "
    f"jsonb_path_exists(data, 'strict $ ? (exists ({_WIDE}) || exists ({_DEEP}))') OR "
    f"(NOT {_TOO_DEEP} AND NOT {_INEXACT})) THEN TRUE ELSE FALSE END)"
)

#: SQL (no parameters): why a row's ``data`` is unreadable, in words, else NULL (``READABLE``).
UNREADABLE_WHY = (
    "(CASE WHEN jsonb_typeof(data) <> 'object' THEN "
    "'is a JSON ' || jsonb_typeof(data) || ', not an object' "
    f"WHEN data ?| array[{_RESERVED}] THEN 'is not JSON dbhandles can read in full (holds the "
    'reserved field "\' || (SELECT min(k COLLATE "C") FROM jsonb_object_keys(data) AS k WHERE '
    f"k IN ({_RESERVED})) || '\")' "
    f"WHEN {_INEXACT} THEN 'is not JSON dbhandles can read in full (holds an integer outside the "
    "64 bits -2**63 .. 2**63 - 1 or a number past a double, read as an inexact float or as no "
    "number)' "
    f"WHEN {_TOO_DEEP} THEN 'is not JSON dbhandles can read in full (nests a value deeper than "
    f"{MAX_DEPTH} levels)' END)"
)


def record_problem(why: str | None, collection: str, record_id: str) -> None:
    """Raise when ``why`` (the row's ``UNREADABLE_WHY``) says the row is unreadable.

    Raises:
        QueryFailed: the message names the collection, the record and why; ``details`` their names
            (``documents.seen`` hides it behind a row filter). 409: the database's content, not a
            fault of dbhandles or of the storage. An update reads the record first, so nothing is
            written over it.
    """
    if why is None:
        return
    raise QueryFailed(
        f"record {json_text(record_id, 80)} of collection {json_text(collection, 80)} {why}: "
        'another tool wrote it; listings and counts leave it out (docs/filters.md "Values")',
        details={"collection": collection, "id": record_id},
    )
