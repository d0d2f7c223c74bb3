"""Rows another tool wrote into a PostgreSQL collection, read in full or not at all.

dbhandles writes each record's ``data`` normalised (``dbhandles.values``), but another tool may
``INSERT`` any ``jsonb`` (docs/filters.md "Values"). A row is a record only when every reader, every
filter, count, sort and facet (run by PostgreSQL on the ``jsonb``) and a later update would see the
same, whole value; any other row is **unreadable**, exactly as on SQLite (``sqlite_values``):
left out of every listing, count, facet, export and copy (``READABLE`` in their ``WHERE``), counted
in ``unreadable``, named by a read (``record_problem``), hidden behind a row filter.

Unreadable on PostgreSQL: ``data`` that is no object; a reserved field (``id``, ``createdAt``,
``updatedAt``, ``version``) inside it, which would contradict the row's columns; a number the
reader does not keep exactly (``inexact_number``): an integer outside [-2**63, 2**63), or a number
with a fraction that is not the shortest text of a double (``jsonb`` keeps ``1e400``,
``18446744073709551616``, ``1e-400`` and ``1.00000000000000000001`` exactly as ``numeric``, which
the driver reads as no number or as another number while filters and sorts compare the exact
decimal: a listing failed with ``storage_error``, keyset paging looped, a move deleted the row
after copying ``0.0``, an update wrote the float back); nesting deeper than ``MAX_DEPTH`` (a field's value is level 1, an
item of a container at level 64 is too deep). ``jsonb`` itself holds no U+0000 and keeps each key
once (the last), as every reader shows it, so those need no check here.

Unreadable too, as on SQLite (``sqlite_values.SYSTEM_READABLE``): a row whose system columns are
not what dbhandles writes (``SYSTEM_READABLE``): an ``id`` that is empty or longer than
``MAX_ID_LENGTH`` characters (``text`` holds no U+0000), a ``version`` outside 1 ..
``MAX_VERSION`` (the column is ``integer``, so only 0 and below, or NULL in a table another tool
made without ``NOT NULL``), a ``created_at`` / ``updated_at`` that is not the timestamp dbhandles
writes (``YYYY-MM-DDTHH:MM:SS.mmmZ``; the columns are ``text``, so another tool may write any).

The test is a few comparisons of the row's columns, then one ``jsonb_path_exists`` walk per row,
in C inside the server, so counts count what listings list in the same statement; nothing is
decoded in Python.
"""

from __future__ import annotations

from dbhandles.errors import QueryFailed
from dbhandles.filters import MAX_ID_LENGTH, RESERVED_FIELDS
from dbhandles.values import MAX_DEPTH, MAX_VERSION, NUMBER_BOUND, json_text

__all__ = [
    "FIRST_LOOK",
    "READABLE",
    "SUSPECT_ROW",
    "SUSPECT_TEST",
    "SYSTEM_READABLE",
    "UNREADABLE_WHY",
    "inexact_number",
    "record_problem",
]

_RESERVED = ", ".join(f"'{name}'" for name in sorted(RESERVED_FIELDS))
#: A jsonpath item: a number the reader may not take in exactly. Every other number is an integer
#: within 2**53 (an int, or a float such as ``2.0`` that holds it exactly); the rest, an integer
#: past 53 bits or a number with a fraction, are looked at again by ``inexact_number``.
SUSPECT_TEST = f'? (@.type() == "number" && (@ > {2**53} || @ < -{2**53} || @ != @.floor()))'
_SUSPECT = f"@.** {SUSPECT_TEST}"
#: A jsonpath item nested past ``MAX_DEPTH`` (the record is level 0 of ``.**{n}``, a field's
#: value level 1).
_DEEP = f"@.**{{{MAX_DEPTH + 1}}}"
#: The largest double, as ``dbhandles.values`` words the bound, and (rounded up) the smallest above
#: zero: a number past either is read as no double or as 0.0, and ``float8`` refuses it (raises)
#: rather than round it.
_DOUBLE_MAX = "1.7976931348623157e308"
_DOUBLE_TINY = "4.9406564584124654e-324"


def _significant_digits(n: str) -> str:
    """SQL: how many digits of the positive ``numeric`` ``n`` lie between its first and last
    non-zero one (``70510993737728100`` has 15, ``0.00120`` 2)."""
    return f"length(btrim(replace({n}::text, '.', ''), '0'))"


#: SQL: the places after the point (negative: before it) of the digit above the last significant
#: one of ``a`` (a positive ``numeric`` with a fraction in its text): ``trunc(a, _COARSER)`` and one
#: unit more are the nearest numbers with fewer significant digits, below and above ``a``.
_COARSER = (
    "(CASE WHEN right(rtrim(a::text, '0'), 1) = '.' THEN length(rtrim(a::text, '.0')) "
    "- length(rtrim(rtrim(a::text, '0'), '.')) - 1 "
    "ELSE length(rtrim(a::text, '0')) - strpos(a::text, '.') - 1 END)"
)


#: SQL: ``c`` and one unit of the place ``_COARSER`` names: the nearest number above ``a`` with fewer
#: significant digits.
_ONE_MORE = "c + ('1e' || -s)::numeric"


def _rounds_to_d(c: str) -> str:
    """SQL: the positive ``numeric`` ``c`` is read as the double ``d`` (``float8`` rounds as
    strtod, ties to even; outside its range it would raise, so the ``CASE`` answers first)."""
    return f"(CASE WHEN ({c}) > {_DOUBLE_MAX} OR ({c}) < 2.5e-324 THEN FALSE ELSE ({c})::float8 = d END)"


def inexact_number(n: str, *, wide_integers: bool = False) -> str:
    """SQL true when dbhandles' reader does not keep the ``numeric`` ``n`` (a ``jsonb`` number) exactly.

    The reader is orjson on ``jsonb``'s text, which spells a ``numeric`` in plain decimals: without
    a fraction (scale 0) it is read as an int, which must fit 64 bits (past them orjson reads a
    float or nothing); with one as the nearest double ``d``, which dbhandles writes back as its
    shortest text (``shortest(d)``, Python's float text; ``postgres_compile.dump_document`` spells ``1e+16`` out with ``.0``).
    So a number with a fraction is kept exactly when it *is* ``shortest(d)`` as a number: ``1.50``,
    ``0.30000000000000004`` and ``70510993737728100.0`` are; ``1.00000000000000000001``,
    ``1e-400``, ``9223372036854775808.5``, ``0.1000000000000000000001`` and
    ``70510993737728096.0`` (``d`` exactly, but ``shortest(d)`` is ``7.05109937377281e+16``) are not:
    filters and sorts compare the stored decimal while the reader shows ``d``, and a write puts
    ``shortest(d)`` back.

    ``shortest(d)`` is the shortest decimal ``float8`` reads as ``d`` (ties to even, as strtod), the
    closest to ``d`` among the shortest. ``float8``'s text ``p`` (``extra_float_digits`` 1, which
    the adapter sets) is the shortest strictly inside ``d``'s rounding interval, the closest among
    those: ``shortest`` differs only by taking a shorter number on the interval's edge
    (``70510993737728100``, halfway between two doubles, where ``float8`` spells
    ``7.0510993737728096e+16``). So ``n`` is ``shortest(d)`` when no number with fewer significant
    digits reads as ``d`` (the interval holds one when it holds the nearest below or above ``n``,
    ``_COARSER``) and ``n`` is ``p`` or shorter than ``p`` (so on the edge). Below 2**54 an edge
    (halfway between two doubles) has at least as many significant digits as ``p`` (it ends in
    the digit 5 after the point, or is an odd integer), so there ``n`` is kept exactly when it is
    ``p``: one cast for nearly every float, the rest only past 2**54. ``float8`` sees only numbers
    inside its range: the SQL never raises.

    Args:
        n: a ``numeric`` SQL expression, evaluated several times (keep it cheap: ``(v::numeric)``).
        wide_integers: how an integer past 64 bits counts. False (collections): inexact, as
            ``dbhandles.values`` refuses it. True (a column of a table dbhandles did not create):
            as orjson reads it, an int up to 2**64 - 1 and a float past that (so ``1e300``,
            spelled out in ``jsonb``, is kept and ``2**64`` is not).
    """
    shorter = f"{_rounds_to_d('c')} OR {_rounds_to_d(_ONE_MORE)}"
    kept = (
        f"(SELECT (a = p OR {_significant_digits('a')} < {_significant_digits('p')}) "
        f"AND NOT ({shorter}) FROM (SELECT d, d::text::numeric AS p, trunc(a, s) AS c, s "
        f"FROM (SELECT a::float8 AS d, {_COARSER} AS s) AS r) AS k)"
    )
    # A plain expression (no subquery) up to the rare number past 2**54: it runs for every float
    # of every row a listing or count reads.
    integer = (
        f"WHEN scale({n}) = 0 AND {n} < {2 * NUMBER_BOUND} AND {n} >= -{NUMBER_BOUND} THEN FALSE "
        if wide_integers
        else f"WHEN scale({n}) = 0 THEN {n} >= {NUMBER_BOUND} OR {n} < -{NUMBER_BOUND} "
    )
    return (
        f"(CASE {integer}"
        f"WHEN {n} = 0 THEN FALSE "
        f"WHEN abs({n}) > {_DOUBLE_MAX} OR abs({n}) < {_DOUBLE_TINY} THEN TRUE "
        f"WHEN abs({n}) < {2**54} THEN {n} <> ({n}::float8)::text::numeric "
        f"ELSE NOT (SELECT {kept} FROM (SELECT abs({n}) + 0.0 AS a) AS o) END)"
    )


#: SQL: ``data`` holds a number the reader does not keep exactly.
_INEXACT = (
    f"EXISTS (SELECT FROM jsonb_path_query(data, 'strict $.** {SUSPECT_TEST}') AS v "
    f"WHERE {inexact_number('(v::numeric)')})"
)
#: SQL: ``data`` nests a value past ``MAX_DEPTH``.
_TOO_DEEP = f"jsonb_path_exists(data, 'strict $ ? (exists ({_DEEP}))')"

#: A POSIX regular expression: the timestamp dbhandles writes as ``createdAt`` / ``updatedAt``
#: (``clock.iso_now``), the one ``sqlite_values`` holds SQLite's columns to (``[.]``: no backslash
#: in an SQL literal).
_TIMESTAMP = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$"

#: SQL (no parameters; NULL, in a table another tool made without ``NOT NULL``, is not true): a
#: collection row's system columns are what dbhandles writes. Plain comparisons of columns, so
#: ``READABLE`` runs them before its walk of ``data``.
SYSTEM_READABLE = (
    f"(id <> '' AND char_length(id) <= {MAX_ID_LENGTH} AND version BETWEEN 1 AND {MAX_VERSION} "
    f"AND created_at ~ '{_TIMESTAMP}' AND updated_at ~ '{_TIMESTAMP}')"
)

#: SQL (no parameters; NULL when a column is): the tests of ``READABLE`` that need no second look at
#: a number, true when they pass; ``SUSPECT_ROW``: true when ``data`` holds a number or nesting only
#: the second look (``_INEXACT``, ``_TOO_DEEP``: a subquery) decides.
FIRST_LOOK = (
    f"({SYSTEM_READABLE} AND jsonb_typeof(data) = 'object' AND NOT data ?| array[{_RESERVED}])"
)
SUSPECT_ROW = f"jsonb_path_exists(data, 'strict $ ? (exists ({_SUSPECT}) || exists ({_DEEP}))')"

#: SQL (no parameters, true or false, never NULL) true when a collection row is a record dbhandles
#: reads in full: its system columns (``SYSTEM_READABLE``, first: the cheap tests, and a ``CASE``'s
#: ``AND`` runs in the order written) and its ``data``: one walk of the ``jsonb`` (in C) decides
#: for every row but one holding a number with a fraction or past 53 bits, or nesting past
#: ``MAX_DEPTH``, which alone is looked at again. Wrapped in a ``CASE``: the planner guesses an
#: ``=`` on an expression keeps 0.5% of the rows, and then ran a page in id order as a scan and
#: sort of the whole table rather than an index scan that stops after the page
#: (``benchmarks/postgres_readable_rows.py``); a ``CASE`` it guesses at a half.
READABLE = (
    f"(CASE WHEN {SYSTEM_READABLE} AND jsonb_typeof(data) = 'object' "
    f"AND NOT data ?| array[{_RESERVED}] AND (NOT "
    f"jsonb_path_exists(data, 'strict $ ? (exists ({_SUSPECT}) || exists ({_DEEP}))') OR "
    f"(NOT {_TOO_DEEP} AND NOT {_INEXACT})) THEN TRUE ELSE FALSE END)"
)

#: SQL (no parameters): why a row is unreadable, in words, else NULL (``READABLE``): its system
#: columns first (``its version 0 is not ...``, worded as ``sqlite_values.system_problem``), then
#: its ``data``.
UNREADABLE_WHY = (
    "(CASE WHEN id IS NULL OR id = '' OR char_length(id) > "
    f"{MAX_ID_LENGTH} THEN 'its id is not a non-empty text of at most {MAX_ID_LENGTH} characters "
    "without U+0000' "
    f"WHEN version IS NULL OR version NOT BETWEEN 1 AND {MAX_VERSION} THEN 'its version ' || "
    f"coalesce(version::text, 'null') || ' is not an integer from 1 to {MAX_VERSION}' "
    + "".join(
        f"WHEN {column} IS NULL OR {column} !~ '{_TIMESTAMP}' THEN 'its {name} ' || "
        f"coalesce(to_jsonb(left({column}, 40))::text, 'null') || ' is not a timestamp as "
        "dbhandles writes one (YYYY-MM-DDTHH:MM:SS.mmmZ)' "
        for column, name in (("created_at", "createdAt"), ("updated_at", "updatedAt"))
    )
    + "WHEN data IS NULL THEN 'is SQL NULL, not a JSON object' "
    "WHEN jsonb_typeof(data) <> 'object' THEN "
    "'is a JSON ' || jsonb_typeof(data) || ', not an object' "
    f"WHEN data ?| array[{_RESERVED}] THEN 'is not JSON dbhandles can read in full (holds the "
    'reserved field "\' || (SELECT min(k COLLATE "C") FROM jsonb_object_keys(data) AS k WHERE '
    f"k IN ({_RESERVED})) || '\")' "
    f"WHEN {_INEXACT} THEN 'is not JSON dbhandles can read in full (holds an integer outside the "
    "64 bits -2**63 .. 2**63 - 1 or a number that is not the shortest text of a double, read as "
    "another number or as no number)' "
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
    joint = ":" if why.startswith("its ") else ""  # a system column, worded as on SQLite
    raise QueryFailed(
        f"record {json_text(record_id, 80)} of collection "
        f"{json_text(collection, 80)}{joint} {why}: "
        'another tool wrote it; listings and counts leave it out (docs/filters.md "Values")',
        details={"collection": collection, "id": record_id},
    )
