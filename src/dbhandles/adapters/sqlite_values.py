"""JSON text read from SQLite as SQLite's own JSON functions read it: a duplicated key's first
value, a string cut at U+0000.

dbhandles writes each record normalised (``dbhandles.values``: an object has each key once), but
another SQLite tool may write a collection's ``data`` (``UPDATE c SET data = '{"n": 1, "n": 2}'``)
or a foreign table's JSON text column with a key twice. SQLite's JSON functions, which every filter,
count, sort, facet and handle row filter runs on, take the **first** value of such a key; orjson and
Python take the last. Were a record read with orjson's rule, a handle whose row filter is
``label == "a"`` would be shown a record whose ``label`` reads ``"b"``. So a record is read with
SQLite's rule (``loads``): the value a reader sees is the value the filter judged (docs/filters.md
"Values"). The same holds for U+0000, which dbhandles refuses but another tool may write
(``"a\\u0000b"``): SQLite's JSON functions read the string up to it (``"a"``), and so does a read.

Keys spelled with ``\\u`` escapes (``{"\\u006e": 16}``, or ``{"caf\\u00e9": 1}`` as Python's
``json.dumps`` writes a non-ASCII key by default): SQLite's ``json_extract`` and ``->>`` compared a
key by its raw spelling before 3.45 (``$.n`` misses ``"\\u006e"``) while ``json_each`` gives it
decoded, so a filter and a read disagreed. Every query therefore reads a collection's ``data`` (and
a foreign JSON text column) through ``record_source`` / ``document_sql``: a text holding no ``\\u``
that SQLite holds valid is used as it is (no call into Python); any other text is handed to
``RECORD_FUNCTION`` / ``DOCUMENT_FUNCTION``, which give it in dbhandles' canonical form (keys decoded,
each once, strings cut at U+0000: exactly what ``loads`` reads), or NULL when ``loads`` cannot read
it (the record is unreadable: left out of every listing, count and facet; a read names it). The rule
needs no probe of the engine: on every SQLite version the JSON functions see the canonical text.

The cost stays off the common row: a text dbhandles wrote is exactly orjson's serialisation of what
orjson reads from it (canonical: ``RECORD_FUNCTION`` gives it back unchanged), which one
``orjson.dumps`` and a byte comparison confirm; only another text (another tool's spacing, escapes
or key repeats) is read a second time, by ``json``, to find a repeated key. A collection's queries
skip even that for every row but those ``sqlite_records.foreign_rows`` names.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import orjson

from dbhandles.errors import QueryFailed
from dbhandles.values import json_text

__all__ = [
    "DOCUMENT_FUNCTION",
    "RECORD_FUNCTION",
    "document_sql",
    "loads",
    "plain",
    "record_data",
    "record_source",
    "register",
]


def loads(text: str | bytes) -> Any:
    """``text`` (JSON text SQLite holds) as a Python value, each duplicated key holding its first
    value, as SQLite's ``json_extract`` and ``json_each`` read it.

    Raises:
        orjson.JSONDecodeError: ``text`` is not JSON (a ``ValueError``).
    """
    value = orjson.loads(text)
    kind = type(value)
    if kind is not dict and kind is not list:
        return value
    raw = text.encode() if isinstance(text, str) else text
    if orjson.dumps(value) != raw:  # not written by dbhandles (nor as it would): a key twice?
        value = _first_keys(raw, value)
    if _NUL in raw:  # only another tool writes U+0000 (dbhandles refuses it)
        value = _cut_at_nul(value)
    return value


#: How JSON text writes U+0000 (it has no other way: a raw control character is no JSON).
_NUL = b"\\u0000"


def _cut_at_nul(value: Any) -> Any:
    """``value`` with each string value cut at its first U+0000, as SQLite's JSON functions read it
    (``json_extract('{"t": "a\\u0000b"}', '$.t')`` is ``'a'``, which ``{"t": "a"}`` matches).
    Keys stay: no filter path can name a key holding U+0000."""
    if isinstance(value, str):
        return value.split("\x00", 1)[0]
    if isinstance(value, dict):
        return {key: _cut_at_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut_at_nul(item) for item in value]
    return value


def _first_keys(raw: bytes, value: Any) -> Any:
    """``value`` again with SQLite's rule when ``raw`` repeats a key, else ``value`` itself (read
    by orjson: its numbers, its floats past 64 bits)."""
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
    except (ValueError, RecursionError):  # json recurses where orjson does not
        return value
    return again if repeated else value


#: The SQL function giving a collection row's ``data`` in canonical form, or NULL (``register``).
RECORD_FUNCTION = "_dbh_record"
#: The SQL function giving a foreign column's JSON text in canonical form, or NULL (``register``).
DOCUMENT_FUNCTION = "_dbh_document"


def _canonical(text: str | bytes | None, kinds: tuple[type, ...]) -> str | None:
    """``text`` read by ``loads`` and written back by orjson when it is a value of ``kinds``,
    else None (not JSON, or JSON Python cannot hold: a lone surrogate, a number past a double)."""
    if text is None:
        return None
    try:
        value = orjson.loads(text)
        raw = text.encode() if isinstance(text, str) else text
        if isinstance(text, str) and orjson.dumps(value) == raw and _NUL not in raw:
            # Canonical (every text dbhandles writes): ``loads`` reads it as orjson does.
            return text if isinstance(value, kinds) else None
        value = loads(text)
    except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
        return None
    if not isinstance(value, kinds):
        return None
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # pragma: no cover - loads gives JSON values only
        return None


def _record(text: str | bytes | None) -> str | None:
    return _canonical(text, (dict,))


def _document(text: str | bytes | None) -> str | None:
    return _canonical(text, (dict, list))


def register(conn: sqlite3.Connection) -> None:
    """Define ``RECORD_FUNCTION`` and ``DOCUMENT_FUNCTION`` on ``conn`` (deterministic: SQLite may
    compute them once per row and value)."""
    conn.create_function(RECORD_FUNCTION, 1, _record, deterministic=True)
    conn.create_function(DOCUMENT_FUNCTION, 1, _document, deterministic=True)


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
        return f"{RECORD_FUNCTION}({column})"
    return f"(CASE WHEN {plain(column)} THEN {column} ELSE {RECORD_FUNCTION}({column}) END)"


def document_sql(column: str) -> str:
    """SQL of a foreign column as a JSON document: its text when that starts a JSON object or array
    and reads as one (canonical as in ``record_source``), else NULL (a string, a number, no JSON)."""
    return (
        f"(CASE WHEN typeof({column}) = 'text' AND substr({column}, 1, 1) IN ('{{', '[') THEN "
        f"(CASE WHEN instr({column}, '\\u') = 0 AND json_valid({column}) THEN {column} "
        f"ELSE {DOCUMENT_FUNCTION}({column}) END) END)"
    )


def record_data(text: str | bytes, collection: str, record_id: object) -> dict[str, Any]:
    """The fields of the record ``record_id`` of ``collection`` stored as ``text``, read by ``loads``.

    Raises:
        QueryFailed: another tool wrote ``text`` as something ``loads`` cannot read as a JSON
            object (``{n:1}``, ``NaN``, ``1e400``, a lone surrogate, an array, a scalar); the
            message names the collection and the record, ``details`` their names
            (``documents.seen`` hides it behind a row filter). 409, not 500: the database's content, not a fault of
            dbhandles or of the storage.
    """
    try:
        value = loads(text)
    except (ValueError, RecursionError) as exc:
        why = f"is not JSON dbhandles can read ({str(exc).split(':', 1)[0]})"
    else:
        if type(value) is dict:
            return value
        why = f"is a JSON {_KINDS.get(type(value), 'value')}, not an object"
    raise QueryFailed(
        f"record {json_text(str(record_id), 80)} of collection {json_text(collection, 80)} {why}: "
        'another tool wrote it; listings and counts leave it out (docs/filters.md "Values")',
        details={"collection": collection, "id": record_id},
    )


_KINDS: dict[type, str] = {list: "array", str: "string", int: "number", float: "number",
                           bool: "boolean", type(None): "null"}  # fmt: skip
