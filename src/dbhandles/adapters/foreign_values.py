"""Values of tables dbhandles did not create, as JSON: SQLite storage classes in, JSON values out.

The rules (docs/foreign-tables.md "Values"), the same in Python (here) and in the SQL that filters and
sorts (``sqlite_foreign_sql``), so a filter sees exactly the value a listing shows:

* INTEGER and REAL are numbers; NULL is null; a REAL that is infinite (SQLite stores NaN as NULL) is
  shown, filtered and sorted as null, since JSON has no infinity.
* TEXT is a string, except TEXT whose first character is ``{`` or ``[`` and that is valid JSON: that
  is the object or array it holds (how sqlite-utils stores nested values), so dotted paths reach in;
  a key the text holds twice has its first value, as SQLite's JSON functions read it
  (``sqlite_values``).
* BLOB is ``{"$base64": "<standard base64 with padding>"}``.
* A record's ``id`` is its key (``id_value``): the value of a single-column key as stored (never
  parsed as JSON), the ``rowid`` of a table without a key, and for a compound key (or a view, whose
  "key" is all its columns) the compact JSON text of the array of the key's values in key order,
  for example ``["2024-01-01",7]``, a BLOB in it as ``{"$base64": ...}`` (``encode_key`` /
  ``decode_key``); rows of a view equal in every
  column are told apart by ``#2``, ``#3`` after the second, third ... (``ForeignTable.id_sql``).
  Commands take a numeric id as its text (``documents.id_text``).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from itertools import compress, repeat
from operator import itemgetter
from typing import Any

import orjson

from dbhandles.adapters.sqlite_values import loads
from dbhandles.errors import InvalidParams
from dbhandles.values import MAX_DEPTH, json_text

__all__ = [
    "BLOB_KEY",
    "RecordLayout",
    "decode_key",
    "encode_key",
    "id_value",
    "inexact_value",
    "json_value",
    "records_builder",
    "row_values",
    "rows_records",
    "sqlite_value",
]

#: Rows in, records out (``records_builder``).
_Builder = Callable[[Iterable[Sequence[Any]]], list[dict[str, Any]]]

#: The key of the object a BLOB is shown as.
BLOB_KEY = "$base64"
_JSON_STARTS = ("{", "[")
#: How JSON text writes U+0000, which SQLite's JSON functions read as the end of a string.
_NUL = b"\\u0000"


def json_value(value: Any) -> Any:
    """One SQLite value (as ``sqlite3`` returns it) as the JSON value a foreign record holds."""
    kind = type(value)
    if kind is str:
        if value[:1] in _JSON_STARTS:
            try:
                return loads(value)  # a key written twice holds its first value, as in SQL
            except orjson.JSONDecodeError:
                return value
        return value
    if kind is float:
        # inf - inf is NaN, and NaN != NaN: the one comparison that tells an infinity.
        return value if value - value == 0 else None
    if kind is bytes:
        return {BLOB_KEY: base64.b64encode(value).decode("ascii")}
    return value


def inexact_value(value: Any) -> str | None:
    """Why ``json_value`` of one stored SQLite value is not that value exactly, or ``None`` when
    it is (a string, an integer, a finite real, a BLOB's base64, and JSON text whose every key and
    number the served value holds). Inexact: an infinite REAL (served as null) and JSON text that
    repeats a key (served with its first value) or spells a number a double rounds
    (``1.00000000000000000001``, ``9007199254740993``). What ``data/copy`` with ``move`` checks
    before it deletes a source row (docs/copy.md "Value-preserving"). Spacing and escapes are no
    value: ``{"a": 1}`` is ``{"a":1}`` exactly."""
    if type(value) is float and value - value != 0:
        return "is an infinity, which JSON has no number for (served as null)"
    if type(value) is not str or value[:1] not in _JSON_STARTS:
        return None
    served = json_value(value)
    if type(served) is str:
        return None  # served as the text it is
    try:
        precise = json.loads(value, object_pairs_hook=_Pairs, parse_float=Decimal)
    except (ValueError, RecursionError):  # pragma: no cover - orjson read it, at most 254 deep
        return "is JSON text its record cannot show exactly"
    return _differs(precise, served)


class _Pairs(list[tuple[str, Any]]):
    """An object as ``json.loads`` reads it, every key in order (a repeated one too)."""


def _differs(precise: Any, served: Any) -> str | None:
    """Why ``served`` (a JSON value as a record shows it) is not ``precise`` (read with every key
    and each number's exact decimal), else ``None``. Iterative: a text may nest 254 levels."""
    stack = [(precise, served)]
    while stack:
        want, have = stack.pop()
        if isinstance(want, _Pairs):
            keys = [k for k, _ in want]
            if len(set(keys)) != len(keys):
                twice = next(k for i, k in enumerate(keys) if k in keys[:i])
                return f"repeats the key {json_text(twice, 40)} (a read shows one of its values)"
            stack.extend((item, have.get(key)) for key, item in want)
        elif type(want) is list:
            stack.extend(zip(want, have, strict=True))
        elif (
            isinstance(want, Decimal | int)
            and type(want) is not bool
            and type(have) is float
            and Decimal(str(have)) != want  # a float's str is its shortest round-trip text
        ):
            return f"spells the number {want}, which a 64-bit float rounds to {have}"
    return None


def id_value(value: Any) -> Any:
    """A single-column key's value as a record's ``id``: as stored (text is never parsed as JSON)."""
    if type(value) is bytes:
        return {BLOB_KEY: base64.b64encode(value).decode("ascii")}
    if type(value) is float and value - value != 0:
        return None
    return value


def row_values(row: Sequence[Any], start: int) -> list[Any]:
    """``json_value`` of every item of ``row`` from index ``start`` on (the hot loop of a listing:
    integers, null and text that cannot hold JSON are taken as they are without a call)."""
    return [
        value
        if value is None or type(value) is int or (type(value) is str and value[:1] not in "{[")
        else json_value(value)
        for value in row[start:]
    ]


_NONE = type(None)
#: The characters a JSON container's text starts with, and a text's first character.
_CONTAINER_STARTS = frozenset(_JSON_STARTS)
_first = itemgetter(0)
_WHOLE_NUMBERS = frozenset({int, _NONE})
_TEXTS = frozenset({str, _NONE})
_NUMBERS = frozenset({int, float, _NONE})


def _kept(column: Sequence[Any], kinds: set[type], is_id: bool) -> bool:
    """Whether ``id_value`` (``is_id``) or ``json_value`` keeps every value of ``column`` (whose
    value types are ``kinds``) as it is, decided by loops that run in C: integers and null; text
    none of which starts with ``{`` or ``[`` (any text, for an id); finite numbers."""
    if kinds <= _WHOLE_NUMBERS:
        return True
    if kinds <= _TEXTS:  # filter(None, ...) leaves out null (and "", which holds no JSON)
        # The first characters, taken in C (``itemgetter``; a one-character text is a shared
        # object, nothing is allocated): half the time of a ``startswith`` call per value.
        return is_id or _CONTAINER_STARTS.isdisjoint(map(_first, filter(None, column)))
    if kinds <= _NUMBERS:  # null and 0 left out: both are kept, and NaN and infinities are truthy
        return all(map(math.isfinite, filter(None, column)))
    return False


class RecordLayout:
    """How the rows of one foreign table's select become records: worked out once per table
    (``ForeignReader``), so a listing's per-row work is only what its values need.

    ``keys`` are the record's keys (``id`` first); ``sources[i]`` is the index in a selected row of
    the value of ``keys[i]`` (a single key column that is also a field is selected once, as the
    id, and read twice); ``integer_id``: the id column holds only integers (the rowid or its
    alias), so neither it nor the field read from it ever needs a conversion.
    """

    __slots__ = ("_built", "identity", "integer_id", "keys", "sources")

    def __init__(self, keys: Sequence[str], sources: Sequence[int], integer_id: bool) -> None:
        if len(keys) != len(sources) or not keys or sources[0] != 0:
            raise ValueError("a layout has one source per key, the id's first")
        self.keys = tuple(keys)
        self.sources = tuple(sources)
        self.integer_id = integer_id
        #: Every selected value is used once, in order (no key column read twice).
        self.identity = self.sources == tuple(range(len(self.sources)))
        #: ``records_builder`` of ``sources`` and of one value per key, made at the first listing.
        self._built: tuple[_Builder, _Builder] | None = None

    def record(self, row: Sequence[Any]) -> dict[str, Any]:
        """The record of one selected row (``id_value`` of its id, ``json_value`` of the rest).

        A read by key's hot path: with an integer id (which ``json_value`` keeps as it is) every
        value goes through one comprehension, whose common values (null, integers, text that
        cannot hold JSON, finite reals) are taken without a call."""
        if not self.identity:
            row = [row[s] for s in self.sources]
        if not self.integer_id:
            return dict(zip(self.keys, [id_value(row[0]), *row_values(row, 1)]))  # noqa: B905
        values = [
            value
            if value is None
            or (kind := type(value)) is int
            or (kind is str and value[:1] not in "{[")
            or (kind is float and value - value == 0)
            else json_value(value)
            for value in row
        ]
        return dict(zip(self.keys, values))  # noqa: B905 - one source per key (checked above)

    def records(self, rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """The records of ``rows``, done column by column (a listing's hot loop): a column whose
        values are all kept as they are (``_kept``: one look at its value types, then loops in
        C) is taken whole; only the others go through ``id_value`` / ``json_value`` value by
        value. The id column of an integer key is never looked at. When every value is kept, the
        records are built from the rows as they came, else from the columns (``records_builder``)."""
        if not rows:
            return []
        selected: list[Sequence[Any]] = list(zip(*rows, strict=True))
        columns: list[Sequence[Any]] = []
        changed = False
        for position, source in enumerate(self.sources):
            column = selected[source]
            if not (self.integer_id and source == 0):
                is_id = position == 0
                kinds = set(map(type, column))
                if not _kept(column, kinds, is_id):
                    column = [id_value(v) for v in column] if is_id else _json_column(column, kinds)
                    changed = True
            columns.append(column)
        built = self._built
        if built is None:
            built = self._built = (
                records_builder(self.keys, self.sources),
                records_builder(self.keys, range(len(self.keys))),
            )
        if not changed:  # the records straight from the rows, each value from its source
            return built[0](rows)
        # Every row has one value per key (the zips above are strict): no check per record.
        return built[1](zip(*columns))  # noqa: B905


#: The most keys a generated builder writes out (``records_builder``); wider records zip.
_BUILT_KEYS = 256


def records_builder(keys: Sequence[str], sources: Sequence[int]) -> _Builder:
    """A function from rows to records: record key ``keys[i]`` holds the row's value at
    ``sources[i]``. Made once per table (``RecordLayout``), it builds each record as one dict
    display (``{k0: r[0], k1: r[0], k2: r[1]}``), which takes half the time ``dict(zip(keys,
    row))`` takes per row: a listing builds a hundred of them. The generated source holds numbered
    names and positions only; the keys (column names another program chose) reach it as values,
    never as code. Past ``_BUILT_KEYS`` keys it zips.

    Raises:
        ValueError: ``keys`` and ``sources`` differ in length.
    """
    if len(keys) != len(sources):
        raise ValueError("a builder has one source per key")
    if len(keys) > _BUILT_KEYS:
        keys = tuple(keys)
        positions = tuple(sources)

        def zipped(rows: Iterable[Sequence[Any]]) -> list[dict[str, Any]]:
            return [dict(zip(keys, [row[s] for s in positions], strict=True)) for row in rows]

        return zipped
    names: dict[str, Any] = {f"k{i}": key for i, key in enumerate(keys)}
    display = ", ".join(f"k{i}: r[{int(s)}]" for i, s in enumerate(sources))
    code = f"def build(rows):\n    return [{{{display}}} for r in rows]\n"
    exec(compile(code, "<foreign_values.records_builder>", "exec"), names)
    built: _Builder = names["build"]
    return built


def rows_records(keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    """The records of ``rows`` selected as ``(key, column, ...)``: ``keys`` zipped with
    ``id_value`` of the first item and ``json_value`` of the others (``RecordLayout.records``
    with each value selected once)."""
    return RecordLayout(keys, range(len(keys)), False).records(rows)


def _json_column(column: Sequence[Any], kinds: set[type]) -> list[Any]:
    """``json_value`` of every value of ``column`` (whose value types are ``kinds``): a column of
    text and null (a JSON column) parses its JSON without a call per value (``_json_texts``),
    the others go value by value."""
    if kinds <= _TEXTS:
        starts = (
            map(_starts_json, column)
            if _NONE in kinds
            else map(str.startswith, column, repeat(_JSON_STARTS))
        )
        texts = list(compress(column, starts))
        parsed = _json_texts(texts)
        if parsed is not None:
            if len(texts) == len(column):
                return parsed
            found = iter(parsed)
            return [next(found) if v and v[0] in "{[" else v for v in column]
        try:
            return [loads(v) if v and v[0] in "{[" else v for v in column]
        except orjson.JSONDecodeError:
            pass  # some text starting with { or [ is no JSON: it stays text
    return [json_value(value) for value in column]


def _starts_json(value: str | None) -> bool:
    return value is not None and value[:1] in _JSON_STARTS


def _json_texts(texts: list[str]) -> list[Any] | None:
    """``loads`` of every text of ``texts`` (each starting with ``{`` or ``[``) in a few calls
    for them all, or ``None`` when that cannot be told so (the caller then reads each by itself).

    ``loads`` reads a text with orjson, then writes it back to tell whether SQLite's JSON
    functions read it alike (a key written twice, U+0000: ``sqlite_values``). The same test for a
    whole column: orjson reads each text, writes the list of them once, and that equals the texts
    joined by commas in brackets exactly when each text is what orjson writes for its own value
    (each is one complete JSON value, so the commas cannot fall elsewhere), and neither side
    holds U+0000 when the joined texts do not. A text that is no JSON, a repeated key, other
    spacing, escapes or a value too deep for orjson to write: ``None``."""
    # A text shorter than MAX_DEPTH - 1 characters cannot open that many containers: the count
    # below (two ``str.count`` a text, a third of this function's time on short JSON) is only
    # needed when some text is as long.
    if max(map(len, texts), default=0) >= MAX_DEPTH - 1 and any(
        t.count("[") + t.count("{") >= MAX_DEPTH - 1 for t in texts
    ):
        return None  # perhaps too deep: ``loads`` measures each (a deeper one stays text)
    try:
        parsed = list(map(orjson.loads, texts))
        written = orjson.dumps(parsed)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    joined = b",".join(map(str.encode, texts))
    if written[1:-1] != joined or _NUL in joined:
        return None
    return parsed


def sqlite_value(value: Any, where: str) -> Any:
    """A JSON value (already checked by ``documents.check_json``) as SQLite stores it: the reverse
    of ``json_value``. Numbers, strings and null as they are; ``true``/``false`` as 1/0 (SQLite has no
    booleans, so they read back as numbers); ``{"$base64": "..."}`` as a BLOB; any other object or
    array as its compact JSON text (read back as that object or array).

    Raises:
        InvalidParams: a ``$base64`` object whose text is not standard base64 (``where`` names it).
    """
    kind = type(value)
    if value is None or kind is int or kind is float or kind is str:
        return value
    if kind is bool:
        return int(value)
    if isinstance(value, dict) and len(value) == 1 and BLOB_KEY in value:
        text = value[BLOB_KEY]
        try:
            if not isinstance(text, str):
                raise ValueError(text)
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise InvalidParams(
                f"{where}: {{{json_text(BLOB_KEY, 80)}: ...}} stands for a BLOB and holds standard base64 text",
                field=where,
            ) from exc
    return orjson.dumps(value).decode()


def encode_key(values: Sequence[Any]) -> str:
    """The ``id`` of a row with a compound key: compact JSON of the key's values, in key order.

    Text is JSON-escaped as SQLite's ``json_array`` does it, so the same text comes out of SQL (for
    filters and sorting on ``id``) and out of Python; a BLOB is ``{"$base64": ...}``, as the SQL
    writes it (``sqlite_foreign_schema.key_item``).
    """
    return orjson.dumps([json_value(v) if type(v) is bytes else v for v in values]).decode()


def decode_key(record_id: str, width: int, blobs: bool = False) -> list[Any] | None:
    """The key values an ``id`` made by ``encode_key`` stands for; ``None`` if it is not one
    (not JSON, not an array of ``width`` scalars): no row has such an id. With ``blobs`` (SQLite,
    whose ids show a BLOB as ``{"$base64": ...}``), such an item is the BLOB's bytes."""
    try:
        values = orjson.loads(record_id)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(values, list) or len(values) != width:
        return None
    if blobs:
        values = [_blob(v) if isinstance(v, dict) else v for v in values]
    if any(isinstance(v, dict | list | bool) for v in values):
        return None
    return values


def _blob(item: dict[str, Any]) -> Any:
    """The bytes ``{"$base64": text}`` stands for; ``item`` itself when it is no such object."""
    text = item.get(BLOB_KEY) if len(item) == 1 else None
    if not isinstance(text, str):
        return item
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        return item
