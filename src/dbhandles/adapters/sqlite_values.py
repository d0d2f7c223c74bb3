"""JSON text another tool wrote into SQLite, read in full or not at all, and as SQLite's own JSON
functions read it.

dbhandles writes each record normalised (``dbhandles.values``: each key once, no U+0000, at most
``MAX_DEPTH`` levels, no reserved field in ``data``), but another SQLite tool may write anything
into a collection's ``data`` or a foreign table's JSON text column. A value is shown only when
the reader, every filter, count, sort, facet and handle row filter (run by SQLite's JSON
functions) and a later update would all see the same, whole value (docs/filters.md "Values"):

* a collection row (``load_record``) is **unreadable** (``Unreadable``: left out of every listing
  and count, named by a read, hidden behind a row filter, never written back) when its text is no
  JSON object, nests deeper than ``MAX_DEPTH``, holds U+0000 (SQLite's JSON functions read
  ``"a\\u0000b"`` as ``"a"``), repeats a key (SQLite reads the first value, an update would keep
  one), holds a reserved field (``id``: the row's id is its column) or an integer outside
  [-2**63, 2**63) (orjson reads one past 64 bits as an inexact float, which an update would write
  back; SQLite's JSON functions one at or past 2**63);
* a foreign column's text (``loads``) that is no JSON, too deep or holding U+0000 is the plain
  string it is; a key twice there reads its **first** value, as SQLite's filters read it.

Keys spelled with ``\\u`` escapes (``{"\\u006e": 16}``, or ``{"caf\\u00e9": 1}`` as Python's
``json.dumps`` writes a non-ASCII key by default): SQLite's ``json_extract`` and ``->>`` compared a
key by its raw spelling before 3.45 (``$.n`` misses ``"\\u006e"``) while ``json_each`` gives it
decoded, so a filter and a read disagreed. Every query therefore reads a collection's ``data`` (and
a foreign JSON text column) through ``record_source`` / ``document_sql``: a text holding no ``\\u``
that SQLite holds valid is used as it is (no call into Python); any other text is handed to
``RECORD_FUNCTION`` / ``DOCUMENT_FUNCTION``, which give it in dbhandles' canonical form (keys decoded:
exactly what ``load_record`` / ``loads`` reads), or NULL when those cannot read it in full. Both are
total: nothing a row holds makes them raise (which would fail the whole query), and they take the
text as a BLOB (``record_call``), since ``sqlite3`` fails on TEXT that is not UTF-8 before calling
them. The rule needs no probe of the engine: every SQLite version's JSON functions see the
canonical text.

The cost stays off the common row: a text dbhandles wrote is exactly orjson's serialisation of what
orjson reads from it (canonical: ``RECORD_FUNCTION`` gives it back unchanged), which one
``orjson.dumps`` and a byte comparison confirm; only another text (another tool's spacing, escapes
or key repeats) is read a second time, by ``json``, to find a repeated key. The other checks run
in C: the depth is told by orjson's own nesting limit as that ``orjson.dumps`` writes the value
(``_dumped``), U+0000 and long integers by byte searches of the text (the latter only for a
text whose integers are not all safe ones: ``_narrow_dumps``); a walk in Python is left
only for a text whose deepest containers lie exactly at ``MAX_DEPTH``. A collection's queries
skip even that for every row but those ``sqlite_records.foreign_rows`` names.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from typing import Any

import orjson

from dbhandles import budget
from dbhandles.errors import QueryFailed
from dbhandles.filters import MAX_ID_LENGTH, RESERVED_FIELDS
from dbhandles.values import MAX_DEPTH, MAX_VERSION, json_text

__all__ = [
    "BASE64_FUNCTION",
    "BUDGET_CHECK_BYTES",
    "DOCUMENT_FUNCTION",
    "RECORD_FUNCTION",
    "SYSTEM_READABLE",
    "Stopped",
    "Unreadable",
    "check_system",
    "document_call",
    "document_sql",
    "finite_numbers",
    "load_record",
    "loads",
    "plain",
    "record_call",
    "record_data",
    "record_source",
    "register",
    "system_problem",
]


class Unreadable(orjson.JSONDecodeError):
    """JSON text that cannot be read in full: not JSON, nested deeper than ``MAX_DEPTH``, holding
    U+0000 (which SQLite's JSON functions cut), or, for a record, an object repeating a key,
    holding a reserved field or an integer outside [-2**63, 2**63). An ``orjson.JSONDecodeError``
    (a ``ValueError``), so a caller that reads a foreign column's text as a string when it is no
    JSON does the same for these."""

    def __init__(self, why: str) -> None:
        super().__init__(why, "", 0)
        #: Why, in words (``str(exc)`` adds a position, meaningless here).
        self.why = why


def loads(text: object, depth: int = 1) -> Any:
    """``text`` (JSON text SQLite holds) as a Python value, each duplicated key holding its first
    value, as SQLite's ``json_extract`` and ``json_each`` read it.

    Args:
        text: the stored value; any SQLite value (a number, a BLOB) is refused as no JSON text.
        depth: the nesting level of the value in its record (1: a field's value, as a foreign
            column's; 0: the record itself), for the bound of ``dbhandles.values.MAX_DEPTH``.

    Raises:
        Unreadable: ``text`` is no JSON text, nests a value deeper than ``MAX_DEPTH`` levels below
            its record (what ``data/create`` refuses: orjson cannot even write a value 255 deep),
            or holds U+0000 (SQLite's JSON functions read a string up to it: a read would show,
            and a write give back, less than is stored).
    """
    return _read(text, depth, False)[0]


def load_record(text: object) -> dict[str, Any]:
    """The fields of a collection row whose ``data`` is ``text``: ``loads`` at the record's level,
    refusing also what cannot be read in full as a record's fields.

    Raises:
        Unreadable: what ``loads`` raises; or ``text`` is no JSON object, repeats a key (SQLite
            reads the first value, orjson and Python the last: an update would drop one), or
            holds a reserved field (``id``, ``createdAt``, ``updatedAt``, ``version``: the row's
            columns are those, and a second value would contradict them), or holds an integer
            literal outside [-2**63, 2**63) (``_wide_integer``: read as an inexact float).
    """
    return _read(text, 0, True)[0]  # type: ignore[no-any-return]


def _read(text: object, depth: int, record: bool) -> tuple[Any, bool]:
    """``(value, canonical)``: ``loads`` (``load_record`` when ``record``) of ``text``, and whether
    ``text`` is exactly orjson's text of it (every text dbhandles writes).

    Every check is linear and runs in C but for the rare text that may break it: the depth is
    told by orjson's own nesting limit (``_dumped``), U+0000 by a byte search of the text, long
    integers by the same ``orjson.dumps`` (``_narrow_dumps``) or, past 2**53 or in a text that is
    not canonical, by a byte search, and only a text another tool spelled (not canonical) is read
    a second time, to find a repeated key."""
    if type(text) is not str and type(text) is not bytes:
        raise Unreadable(f"a {type(text).__name__} is no JSON text")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Unreadable(str(exc).split(":", 1)[0]) from None
    kind = type(value)
    if kind is not dict and kind is not list:
        if record:
            raise Unreadable(f"is a JSON {_KINDS.get(kind, 'value')}, not an object")
        if kind is str and "\x00" in value:
            raise Unreadable("holds U+0000, which SQLite's JSON functions cut")
        return value, False
    if record and kind is not dict:
        raise Unreadable("is a JSON array, not an object")
    raw = text.encode() if isinstance(text, str) else text
    if record and not RESERVED_FIELDS.isdisjoint(value):
        taken = sorted(RESERVED_FIELDS.intersection(value))[0]
        raise Unreadable(f"holds the reserved field {json_text(taken, 40)}")
    narrow = False  # every integer of ``value`` is a safe integer (``_narrow_dumps``)
    if depth + raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:  # it may nest too deep
        dumped = _dumped(value, depth)
        if dumped is None:
            raise Unreadable(f"nests a value deeper than {MAX_DEPTH} levels")
    else:
        dumped = _narrow_dumps(value) if record else None
        narrow = dumped is not None
        if dumped is None:
            dumped = orjson.dumps(value)
    canonical = dumped == raw
    if not canonical:  # not written by dbhandles (nor as it would): a key twice?
        value, repeated = _first_keys(raw, value)
        if repeated and record:
            raise Unreadable("repeats a key")
    if _NUL in raw and _NUL in raw.replace(b"\\\\", b""):  # only another tool writes U+0000
        raise Unreadable("holds U+0000, which SQLite's JSON functions cut")
    # A canonical text of a value whose integers are all safe writes no other integer literal
    # (orjson writes every float with a ``.`` or an exponent): none is wide, no search needed.
    if (
        record
        and not (narrow and canonical)
        and _LONG_DIGITS in raw.translate(_DIGITS)
        and _wide_integer(raw)
    ):
        raise Unreadable(
            "holds an integer outside SQLite's 64 bits (at or past 2**63, or below -2**63), which "
            "orjson or SQLite's JSON functions read as an inexact float"
        )
    return value, canonical


#: How JSON text writes U+0000 (it has no other way: a raw control character is no JSON). A
#: string holds U+0000 exactly when its text, once every escaped backslash (``\\\\``) is taken
#: out, still holds this escape: a backslash only occurs inside a string, and a run of them pairs
#: from its left (``\\\\u0000`` is a backslash and ``u0000``).
_NUL = b"\\u0000"

#: A text holds an integer literal of 19 digits or more, the shortest at or past 2**63, only if
#: it holds ``_LONG_DIGITS`` once ``_DIGITS`` maps every digit to ``0`` (a string's digits count
#: too: ``_wide_integer`` decides). One C pass, where a regular expression took 4 times as long.
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19
#: The integers a row another tool wrote may hold (as ``data/create`` stores, but for -2**63,
#: which every reader keeps): orjson reads one past 64 bits as an inexact float, and SQLite's
#: JSON functions one at or past 2**63.
_SMALLEST, _PAST_LARGEST = -(2**63), 2**63


class _Wide(Exception):
    """An integer literal outside [``_SMALLEST``, ``_PAST_LARGEST``) (``_wide_integer``)."""


def _integer(literal: str) -> int:
    """``literal`` (a JSON integer) as an int, ``_Wide`` when outside the range (or longer than
    Python converts: thousands of digits)."""
    if len(literal) > 20:
        raise _Wide
    number = int(literal)
    if not _SMALLEST <= number < _PAST_LARGEST:
        raise _Wide
    return number


def _wide_integer(raw: bytes) -> bool:
    """Whether ``raw`` (JSON text orjson read) holds an integer literal outside [-2**63, 2**63):
    orjson reads one past 64 bits as a float (``123456789012345678901234567890`` as
    ``1.2345678901234568e+29``, which an update would write back: the integer lost), SQLite's
    JSON functions one at or past 2**63 as a float (a filter would judge another number than a
    read shows). Read by ``json`` (its integers exact), only once the text showed a long run of
    digits (``_LONG_DIGITS``). A float literal is not such: every reader reads the same nearest
    double."""
    try:
        json.loads(raw, parse_int=_integer)
    except _Wide:
        return True
    except (ValueError, RecursionError):  # pragma: no cover - orjson read it, at most 64 deep
        return False
    return False


def _narrow_dumps(value: Any) -> bytes | None:
    """``orjson.dumps(value)`` when every integer in ``value`` is a safe integer (within
    ±(2**53 - 1), orjson's ``OPT_STRICT_INTEGER``), else ``None``: one C pass that both writes the
    text ``_read`` compares and rules out an integer past 64 bits, where a byte search of the
    text for a long run of digits (``_LONG_DIGITS``) would be a second and a third pass."""
    try:
        return orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError:
        return None


#: How many single-item lists orjson may wrap a value in when it writes it (``orjson.dumps``
#: refuses more than ``_DUMPS_NESTING`` containers, one inside the other).
_DUMPS_NESTING = 254


def _nested_dumps(value: Any, containers: int) -> bytes | None:
    """``orjson.dumps(value)``, or ``None`` when ``value`` nests more than ``containers``
    containers one inside the other (itself the first). orjson counts them as it writes (its
    limit is ``_DUMPS_NESTING``): wrapped in the lists that leave it ``containers``, ``value``
    is written in C, with no walk in Python, and sliced out of the wrapping."""
    wrap = _DUMPS_NESTING - containers
    outer: Any = value
    for _ in range(wrap):
        outer = [outer]
    try:
        dumped = orjson.dumps(outer)
    except orjson.JSONEncodeError:
        return None
    return dumped[wrap : len(dumped) - wrap] if wrap else dumped


def _dumped(value: Any, depth: int) -> bytes | None:
    """``orjson.dumps(value)`` (a container at nesting ``depth``), or ``None`` when a value inside
    lies deeper than ``MAX_DEPTH`` as ``dbhandles.values.check_value`` counts: the items of a
    non-empty container at ``MAX_DEPTH`` are one level too deep.

    orjson's nesting limit tells first whether a container lies at ``MAX_DEPTH`` at all (most
    texts: none) and then whether one lies past it (too deep); only a text whose deepest
    containers lie exactly at ``MAX_DEPTH`` is walked, level by level (``_holds_at``), to find
    whether one of those holds anything."""
    dumped = _nested_dumps(value, MAX_DEPTH - depth)
    if dumped is not None:
        return dumped
    dumped = _nested_dumps(value, MAX_DEPTH - depth + 1)
    if dumped is None or _holds_at(value, depth):
        return None
    return dumped


def _holds_at(value: Any, depth: int) -> bool:
    """Whether a container at nesting ``MAX_DEPTH`` inside ``value`` (a container at ``depth``)
    holds anything. Breadth first, one list of the containers of each level (a comprehension per
    level, no call per value): ``value`` nests at most one level past ``MAX_DEPTH``."""
    level: list[Any] = [value]
    for _ in range(depth, MAX_DEPTH):
        level = [
            item
            for container in level
            for item in (container.values() if type(container) is dict else container)
            if type(item) is dict or type(item) is list
        ]
        if not level:
            return False
    return any(level)


def _first_keys(raw: bytes, value: Any) -> tuple[Any, bool]:
    """``value`` again with SQLite's rule when ``raw`` repeats a key, else ``value`` itself (read
    by orjson: its numbers, its floats past 64 bits); and whether ``raw`` repeats a key."""
    repeated = False

    def first(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        obj: dict[str, Any] = {}
        for key, item in pairs:
            if key in obj:
                repeated = True
            else:
                obj[key] = item
        return obj

    try:
        again = json.loads(raw, object_pairs_hook=first)
    except (ValueError, RecursionError):  # pragma: no cover - orjson read it, at most 64 deep
        return value, False
    return (again, True) if repeated else (value, False)


#: The SQL function giving a collection row's ``data`` in canonical form, or NULL (``register``).
RECORD_FUNCTION = "_dbh_record"
#: The SQL function giving a foreign column's JSON text in canonical form, or NULL (``register``).
DOCUMENT_FUNCTION = "_dbh_document"


#: A text at least this long (bytes) is read by ``RECORD_FUNCTION`` / ``DOCUMENT_FUNCTION`` only
#: while the command has time left (``_canonical``).
BUDGET_CHECK_BYTES = 1 << 16


class Stopped(Exception):
    """Raised by ``RECORD_FUNCTION`` / ``DOCUMENT_FUNCTION`` instead of reading a long text once the
    running command is past its deadline or told to stop: SQLite fails the statement (``user-defined
    function raised exception``), which ``sqlite_errors`` reports as ``budget.interruption()``."""


def _canonical(text: object, depth: int, record: bool) -> str | None:
    """``text`` read by ``_read`` and written back by orjson, else None (unreadable). Total: a SQL
    function that raised would fail the whole query (``user-defined function raised exception``),
    so nothing a row holds may make it raise.

    A long text (``BUDGET_CHECK_BYTES``) costs milliseconds to read, and SQLite's progress handler
    runs only every ``budget.PROGRESS_STEPS`` steps, which a few such rows never reach: so before
    reading one the command's deadline and stop are looked at here.

    Raises:
        Stopped: the command is past its deadline or told to stop (not the row's content)."""
    if (
        type(text) is bytes
        and len(text) >= BUDGET_CHECK_BYTES
        and (budget.expired() or budget.interrupt_requested())
    ):
        raise Stopped("the command's time budget ran out or it was told to stop")
    try:
        value, canonical = _read(text, depth, record)
        if not record and type(value) is not dict and type(value) is not list:
            return None
        if canonical:  # every text dbhandles writes: given back as it is (no ``cast``: per row)
            if isinstance(text, str):
                return text
            if isinstance(text, bytes):
                return text.decode()
        return orjson.dumps(value).decode()
    except Exception:  # any failure on a row's content is "unreadable", never a failed query
        return None


def _record(text: object) -> str | None:
    return _canonical(text, 0, True)


def _document(text: object) -> str | None:
    return _canonical(text, 1, False)


def record_call(column: str = "data") -> str:
    """SQL calling ``RECORD_FUNCTION`` on ``column``. The text goes as a BLOB: Python's ``sqlite3``
    decodes a TEXT argument before the function runs, and text that is not UTF-8 (another tool
    may write it) would fail the whole query there; as bytes, ``_read`` finds it is no JSON."""
    return f"{RECORD_FUNCTION}(CAST({column} AS BLOB))"


def document_call(column: str) -> str:
    """SQL calling ``DOCUMENT_FUNCTION`` on ``column``, as ``record_call`` does."""
    return f"{DOCUMENT_FUNCTION}(CAST({column} AS BLOB))"


#: The SQL function giving a BLOB's standard base64 (a compound key's or a view row's ``id``
#: shows a BLOB as ``{"$base64": ...}``, as a field does: ``sqlite_foreign_schema.key_item``).
BASE64_FUNCTION = "_dbh_base64"


def _base64(value: object) -> str | None:
    return base64.b64encode(value).decode("ascii") if type(value) is bytes else None


def register(conn: sqlite3.Connection) -> None:
    """Define ``RECORD_FUNCTION``, ``DOCUMENT_FUNCTION`` and ``BASE64_FUNCTION`` on ``conn``
    (deterministic: SQLite may compute them once per row and value)."""
    conn.create_function(RECORD_FUNCTION, 1, _record, deterministic=True)
    conn.create_function(DOCUMENT_FUNCTION, 1, _document, deterministic=True)
    conn.create_function(BASE64_FUNCTION, 1, _base64, deterministic=True)


def plain(column: str) -> str:
    """SQL: ``column``'s text starts an object and holds no ``\\u`` escape, the one spelling SQLite's JSON functions
    and ``loads`` may read apart (a key compared by its raw spelling before SQLite 3.45, a lone
    surrogate ``loads`` refuses, U+0000). ``instr`` is a byte scan: a few percent of a filter's
    time, where ``json_valid`` or a ``GLOB`` would double it (``benchmarks/array_filters.py``)."""
    return f"(instr({column}, '\\u') = 0 AND substr({column}, 1, 1) = '{{')"


def record_source(column: str = "data", *, exact: bool = False) -> str:
    """SQL of a collection row's ``column`` as the JSON text every filter, sort, count and facet
    reads; NULL when ``loads`` cannot read it as an object (the row is then no record).

    Fast (``exact`` False): a text that is ``_plain`` and starts an object (every text dbhandles
    writes) is used as it is, any other goes through ``RECORD_FUNCTION``. Text that is not JSON
    at all makes SQLite's JSON functions fail the query (``malformed JSON``): the session then
    runs it again ``exact``, every row through ``RECORD_FUNCTION``."""
    if exact:
        return record_call(column)
    return f"(CASE WHEN {plain(column)} THEN {column} ELSE {record_call(column)} END)"


def document_sql(column: str) -> str:
    """SQL of a foreign column as a JSON document: its text when that starts a JSON object or array
    and reads as one (canonical as in ``record_source``), else NULL (a string, a number, no JSON,
    or JSON ``loads`` cannot read in full: nested deeper than ``MAX_DEPTH``, U+0000).

    The text is used as it is only when it cannot nest too deep: fewer than ``MAX_DEPTH - 1``
    brackets (a field's value is at level 1), told by its length or by counting them, and spells
    no number past a double (``finite_numbers``); any other text goes to ``DOCUMENT_FUNCTION``,
    which measures the depth (SQLite's ``json_valid`` accepts 1,000 levels) and reads numbers as
    ``loads`` does."""
    shallow = (
        f"(length({column}) < {MAX_DEPTH - 1} OR length({column}) - length(replace(replace("
        f"{column}, '[', ''), '{{', '')) < {MAX_DEPTH - 1})"
    )
    return (
        f"(CASE WHEN typeof({column}) = 'text' AND substr({column}, 1, 1) IN ('{{', '[') THEN "
        f"(CASE WHEN instr({column}, '\\u') = 0 AND {shallow} AND {finite_numbers(column)} "
        f"AND json_valid({column}) THEN {column} ELSE {document_call(column)} END) END)"
    )


#: An exponent of three digits (or a sign and two), what a number needs to pass a double's range
#: (1.8e308) unless it spells out 200 digits or more (``finite_numbers``).
_BIG_EXPONENT = "[0-9+][0-9][0-9]"
#: The shortest run of digits ``finite_numbers`` sends to the reader: a number past a double with
#: no exponent of three digits needs 210 digits before its point (``1`` and 209 zeros ``e99``;
#: 309 with no exponent), so a shorter run never spells one.
_LONG_RUN = 200


def finite_numbers(column: str) -> str:
    """SQL: ``column``'s text spells no number past a double's range (1.8e308), which SQLite's
    ``json_valid`` and JSON functions take (as an infinity) and orjson, hence ``loads``, refuses:
    such text is a string to the reader, so it must be one to every filter, sort and keyset
    position. Two spellings reach that range: an exponent of three digits (``[1e400]``,
    ``1E+999``; ``e+12`` counts) and a run of ``_LONG_RUN`` digits or more (``[1000...0]``, 309
    digits; ``1`` and 250 zeros ``e99``). False is no verdict: the caller asks
    ``DOCUMENT_FUNCTION``, which reads the text as ``loads`` does (a string holding ``e100`` or
    200 digits in a row only takes that slower path).

    Each ``GLOB`` starts with a letter or a digit, which SQLite seeks with ``strcspn``, and runs
    only on text holding that letter or long enough to hold the run. The run is sought as nine
    ``GLOB`` s, one per digit it may start with (a JSON number's integer part starts with 1-9; a
    run in a fraction or a string starting with ``0`` spells no large number): one starting with
    the class ``[0-9]`` tries the class at every position, five times slower than the nine
    together, and no fewer literals find every run (``benchmarks/foreign_json_filters.py``)."""
    exponents = [
        f"(instr({column}, '{e}') = 0 OR NOT {column} GLOB '*{e}{_BIG_EXPONENT}*')" for e in "eE"
    ]
    run = "[0-9]" * (_LONG_RUN - 1)
    digits = " AND ".join(f"NOT {column} GLOB '*{d}{run}*'" for d in "123456789")
    return f"({' AND '.join(exponents)} AND (length({column}) < {_LONG_RUN} OR ({digits})))"


#: A timestamp as dbhandles writes ``createdAt`` / ``updatedAt`` (``clock.iso_now``; the importer
#: normalises to it): ``YYYY-MM-DDTHH:MM:SS.mmmZ``, which sorts as the time does.
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_TIMESTAMP_GLOB = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z"
)

#: SQL (no parameters, true or false, never NULL): a collection row's system columns are what
#: dbhandles writes: ``id`` a non-empty text of at most ``MAX_ID_LENGTH`` characters without
#: U+0000 (``length`` counts up to one, ``instr`` finds it), ``version`` an integer from 1 to
#: ``MAX_VERSION``, ``created_at`` / ``updated_at`` ``_TIMESTAMP`` text. Another tool may write
#: anything there (a BLOB id, ``''``, ``version = 'abc'``); such a row is unreadable, as one whose
#: ``data`` is (``system_problem`` says why, for a read).
SYSTEM_READABLE = (
    f"(typeof(id) = 'text' AND length(id) BETWEEN 1 AND {MAX_ID_LENGTH} "
    f"AND instr(id, char(0)) = 0 AND typeof(version) = 'integer' "
    f"AND version BETWEEN 1 AND {MAX_VERSION} "
    f"AND typeof(created_at) = 'text' AND created_at GLOB '{_TIMESTAMP_GLOB}' "
    f"AND typeof(updated_at) = 'text' AND updated_at GLOB '{_TIMESTAMP_GLOB}')"
)


def system_problem(
    record_id: object, created_at: object, updated_at: object, version: object
) -> str | None:
    """Why a collection row's system columns are not what dbhandles writes (``SYSTEM_READABLE``,
    in Python: the same rule), in words naming the field; ``None`` when they are.

    A JSON file's record is held to it too (``jsonfile``), where ``version`` must also be no
    ``bool`` (JSON ``true`` is no integer)."""
    if type(record_id) is not str:
        return f"its id is a {_SQL_KINDS.get(type(record_id), type(record_id).__name__)}, not text"
    if not record_id or len(record_id) > MAX_ID_LENGTH or "\x00" in record_id:
        return (
            f"its id is not a non-empty text of at most {MAX_ID_LENGTH} characters without U+0000"
        )
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        return f"its version {_shown(version)} is not an integer from 1 to {MAX_VERSION}"
    for name, value in (("createdAt", created_at), ("updatedAt", updated_at)):
        if type(value) is not str or _TIMESTAMP.fullmatch(value) is None:
            return (
                f"its {name} {_shown(value)} is not a timestamp as dbhandles writes one "
                "(YYYY-MM-DDTHH:MM:SS.mmmZ)"
            )
    return None


def _shown(value: object) -> str:
    """``value`` for a message: its JSON when it has one, a BLOB as SQL writes it (``x'6869'``)."""
    if type(value) is bytes:
        return f"x'{value[:40].hex()}'"
    try:
        return json_text(value, 40)
    except (TypeError, ValueError):
        return f"(a {_SQL_KINDS.get(type(value), type(value).__name__)})"


_SQL_KINDS: dict[type, str] = {bytes: "BLOB", int: "number", float: "number", bool: "boolean",
                               type(None): "NULL", dict: "JSON object", list: "JSON array",
                               str: "text"}  # fmt: skip


def check_system(
    collection: str, record_id: object, created_at: object, updated_at: object, version: object
) -> None:
    """Raise when a row's system columns are not what dbhandles writes (``system_problem``).

    Raises:
        QueryFailed: naming the collection, the record and the field, as ``record_data`` does.
    """
    why = system_problem(record_id, created_at, updated_at, version)
    if why is not None:
        raise QueryFailed(
            f"record {_shown(record_id)} of collection {json_text(collection, 80)}: {why}: "
            'another tool wrote it; listings and counts leave it out (docs/filters.md "Values")',
            details={
                "collection": collection,
                "id": record_id if type(record_id) is str else _shown(record_id),
            },
        )


def record_data(text: object, collection: str, record_id: object) -> dict[str, Any]:
    """The fields of the record ``record_id`` of ``collection`` stored as ``text``, read by
    ``load_record``.

    Raises:
        QueryFailed: another tool wrote ``text`` as something ``load_record`` cannot read in full
            as a record (``{n:1}``, ``NaN``, ``1e400``, a lone surrogate, an array, a scalar, too
            deep, U+0000, a key twice, a reserved field, an integer past 64 bits); the message
            names the collection, the record and why, ``details`` their names
            (``documents.seen`` hides it behind a row filter). 409, not 500: the database's
            content, not a fault of dbhandles or of the storage. Nothing is written after it: an update reads the record first.
    """
    try:
        return load_record(text)
    except Unreadable as exc:
        why = exc.why
    if not why.startswith("is a JSON"):
        why = f"is not JSON dbhandles can read in full ({why})"
    raise QueryFailed(
        f"record {json_text(str(record_id), 80)} of collection {json_text(collection, 80)} {why}: "
        'another tool wrote it; listings and counts leave it out (docs/filters.md "Values")',
        details={"collection": collection, "id": record_id},
    )


_KINDS: dict[type, str] = {list: "array", str: "string", int: "number", float: "number",
                           bool: "boolean", type(None): "null"}  # fmt: skip
