"""Rows another tool wrote into a PostgreSQL collection, read in full or not at all.

dbhandles writes each record's ``data`` normalised (``dbhandles.values``), but another tool may
``INSERT`` any ``jsonb`` (docs/filters.md "Values"). A row is a record only when every reader, every
filter, count, sort and facet (run by PostgreSQL on the ``jsonb``) and a later update would see the
same, whole value; any other row is **unreadable**, exactly as on SQLite (``sqlite_values``):
left out of every listing, count, facet, export and copy (``READABLE`` in their ``WHERE``), counted
in ``unreadable``, named by a read (``record_problem``), hidden behind a row filter.

Unreadable on PostgreSQL: ``data`` that is no object; a reserved field (``id``, ``createdAt``,
``updatedAt``, ``version``) inside it, which would contradict the row's columns; an integer outside
[-2**63, 2**63) or a number with a fraction that no double holds exactly (``jsonb`` keeps ``1e400``,
``18446744073709551616``, ``1e-400`` and ``1.00000000000000000001`` exactly as ``numeric``, which
the driver reads as no number or as an inexact float while filters and sorts compare the exact
number: a listing failed with ``storage_error``, keyset paging looped, a move deleted the row after
copying ``0.0``, an update wrote the float back); nesting deeper than ``MAX_DEPTH`` (a field's value is level 1, an
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
#: A jsonpath item: a number a reader may not take in exactly. Every other number is an integer
#: within 2**53 (a reader's int, or a float such as ``2.0`` that holds it exactly). The rest are
#: looked at again by ``_INEXACT``: an integer past 53 bits, a number with a fraction.
_SUSPECT_TEST = f'? (@.type() == "number" && (@ > {2**53} || @ < -{2**53} || @ != @.floor()))'
_SUSPECT = f"@.** {_SUSPECT_TEST}"
#: A jsonpath item nested past ``MAX_DEPTH`` (the record is level 0 of ``.**{n}``, a field's
#: value level 1).
_DEEP = f"@.**{{{MAX_DEPTH + 1}}}"
#: The largest double, as ``dbhandles.values`` words the bound, and the smallest above zero: a
#: number past either is no double (``float8`` refuses it rather than round it to infinity or 0).
_DOUBLE_MAX = "1.7976931348623157e308"
_DOUBLE_TINY = "4.9406564584124654e-324"
#: SQL: a ``numeric`` ``n`` (a number of ``_SUSPECT_TEST``) a reader takes in inexactly. Without a
#: fraction (``numeric`` scale 0: an integer, or another tool's ``1.5e300``, which ``jsonb`` cannot
#: tell apart) it is read as an integer, which must fit 64 bits. With one it is read as a float,
#: which must be exactly the number: ``float8``'s text is the shortest that reads back as the same
#: double (PostgreSQL 12 on, ``extra_float_digits`` 1, the default), which is the text dbhandles
#: wrote (``postgres_compile.dump_document`` writes a float's shortest text, ``0.30000000000000004``
#: or ``1e300`` spelled out), so only another tool's ``1.00000000000000000001``, ``1e-400`` or
#: ``9223372036854775808.5`` differs. The ``CASE`` keeps ``float8`` from numbers it refuses.
_INEXACT_NUMBER = (
    f"(CASE WHEN scale(n) = 0 THEN n >= {NUMBER_BOUND} OR n < -{NUMBER_BOUND} "
    f"WHEN abs(n) > {_DOUBLE_MAX} OR (n <> 0 AND abs(n) < {_DOUBLE_TINY}) THEN TRUE "
    "ELSE n <> n::float8::text::numeric END)"
)
#: SQL: ``data`` holds a number read as no number or as an inexact number.
_INEXACT = (
    "EXISTS (SELECT FROM (SELECT v::numeric AS n FROM jsonb_path_query(data, "
    f"'strict $.** {_SUSPECT_TEST}') AS v) AS q WHERE {_INEXACT_NUMBER})"
)
#: SQL: ``data`` nests a value past ``MAX_DEPTH``.
_TOO_DEEP = f"jsonb_path_exists(data, 'strict $ ? (exists ({_DEEP}))')"

#: SQL (no parameters) true when a collection row's ``data`` is a record dbhandles reads in full.
#: One walk of the ``jsonb`` (in C) decides for every row but one holding a number with a fraction
#: or past 53 bits, or nesting past ``MAX_DEPTH``, which alone is looked at again. Wrapped in a ``CASE``:
#: the planner guesses an ``=`` on an expression keeps 0.5% of the rows, and then ran a page in
#: id order as a scan and sort of the whole table rather than an index scan that stops after the
#: page (``benchmarks/postgres_readable_rows.py``); a ``CASE`` it guesses at a half.
READABLE = (
    f"(CASE WHEN jsonb_typeof(data) = 'object' AND NOT data ?| array[{_RESERVED}] AND (NOT "
    f"jsonb_path_exists(data, 'strict $ ? (exists ({_SUSPECT}) || exists ({_DEEP}))') OR "
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
    "64 bits -2**63 .. 2**63 - 1 or a number no double holds exactly, read as an inexact float "
    "or as no number)' "
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
