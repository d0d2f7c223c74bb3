"""JSON numbers written into columns of tables dbhandles did not create: stored exactly or refused.

docs/foreign-tables.md "Numbers written": a JSON number goes into a column only as a value the
column holds exactly, so a listing shows back the number that was written; where the column's type
would change it, the write is ``invalid_params`` naming the field and saying what it would become
(nothing is written). Per type (``pg_number``; SQLite: ``sqlite_number``):

* ``numeric`` (a domain over it, its arrays): the number's exact shortest text
  (``values.number_text``: ``0.30000000000000004``, ``1e-7``, ``3.0`` as ``3``), never a ``float8`` parameter, whose cast to ``numeric`` keeps 15
  significant digits (``0.30000000000000004`` would become ``0.3``); a ``numeric(p,s)`` refuses a
  number with more than ``s`` digits after the point, which PostgreSQL would round;
* ``smallint``/``integer``/``bigint``: a float with a fractional part is refused (PostgreSQL would
  round ``3.5`` to 4); an integral float is its integer (``3.0`` -> 3);
* ``double precision``: an integer past 2**53 that a double does not hold is refused;
  ``real``: a number whose shortest ``real`` text reads back as another number is refused
  (``0.30000000000000004`` would be stored as ``0.3``; ``0.1`` is kept);
* text types: the number's text by the one number spelling of dbhandles (``values.number_text``:
  ``1e-7``, ``3.0`` as ``"3"``), not PostgreSQL's ``1e-07`` or SQLite's ``1.0e-07``.
"""

from __future__ import annotations

import re
import struct
from decimal import Decimal
from typing import Any

from dbhandles.values import json_text, number_text

__all__ = [
    "INTEGER_TYPES",
    "key_number_problem",
    "pg_number",
    "sqlite_number",
    "sqlite_number_problem",
    "sqlite_text_problem",
]

#: PostgreSQL's integer types (base type names).
INTEGER_TYPES = frozenset({"int2", "int4", "int8"})
_TYPE_NAMES = {"int2": "smallint", "int4": "integer", "int8": "bigint", "float4": "real",
               "float8": "double precision"}  # fmt: skip
#: PostgreSQL's string category types take a number as its text.
_TEXT_BASES = frozenset({"text", "varchar", "bpchar", "name", "citext"})
#: ``numeric(10,2)`` as ``format_type`` prints it (a negative scale since PostgreSQL 15).
_SCALE = re.compile(r"^numeric\(\d+,(-?\d+)\)")
#: SQLite's integers (and PostgreSQL's ``bigint``) lie in [-2**63, 2**63).
_INT64 = 2**63
#: The largest integer every smaller integer of which a double holds exactly.
_EXACT_DOUBLE = 2**53


def _float4_text(value: float) -> str:
    """The shortest text of the ``real`` (IEEE single) nearest to ``value``, as PostgreSQL prints
    it (its output is the shortest text that reads back as the same single)."""
    single = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        text = f"{single:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            return text
    return str(single)  # pragma: no cover - nine significant digits always read back


def pg_number(
    value: int | float, base: str, type_name: str, text_category: bool
) -> tuple[Any, str | None]:
    """What the JSON number ``value`` (not a boolean; finite, of any size) is bound as
    for a PostgreSQL column of base type ``base`` (``int4``, ``numeric``; an array's element type)
    declared ``type_name`` (``numeric(10,2)``), and why it cannot be (``None`` when it can).

    ``text_category``: the type is of the string category (its number goes in as text). Types
    this does not decide (``money``, ``oid``, types taking no number) come back as ``value``
    itself with no problem: the caller's rules take them.
    """
    if base in INTEGER_TYPES:
        if not -_INT64 <= value < _INT64:
            return value, f"past the 64-bit integers {_TYPE_NAMES[base]} holds at most"
        if isinstance(value, float):
            if not value.is_integer():
                return value, (
                    f"not a whole number, and {_TYPE_NAMES[base]} holds only whole numbers "
                    "(PostgreSQL would round it)"
                )
            return int(value), None
        return value, None
    if base == "numeric":
        text = number_text(value)
        scale = _SCALE.match(type_name)
        if scale is not None:
            exponent = Decimal(text).normalize().as_tuple().exponent
            if isinstance(exponent, int) and exponent < -int(scale.group(1)):
                places = int(scale.group(1))
                return text, (
                    f"more precise than {type_name}, which keeps {places} digits after the point "
                    "(PostgreSQL would round it)"
                )
        return text, None
    if base == "float8":
        return value, _double_problem(value, "double precision")
    if base == "float4":
        text = _float4_text(float(value))
        if float(text) != value:
            return value, f"more precise than real holds; it would be stored as {text}"
        return float(value), None
    if text_category or base in _TEXT_BASES:
        return number_text(value), None
    return value, None


def _double_problem(value: int | float, type_name: str) -> str | None:
    """Why a column of 64-bit floats (``type_name``) would not hold ``value`` exactly: an integer
    past 2**53 that no double is (``9007199254740993``), else ``None``."""
    if type(value) is int and abs(value) > _EXACT_DOUBLE and float(value) != value:
        return (
            f"an integer {type_name} does not hold (past 2**53); it would be stored as "
            f"{number_text(float(value))}"
        )
    return None


def sqlite_number_problem(value: Any, declared: str) -> str | None:
    """Why an SQLite column declared ``declared`` would not keep the JSON number ``value``
    exactly, or ``None``: a column of REAL affinity turns an integer into a REAL, which rounds
    one past 2**53 (other affinities keep an integer an INTEGER, a float a REAL). Past +-2**63
    (which only a column's own value reaches, ``documents._column_values``) SQLite stores no
    integer, and a column of INTEGER affinity no whole number; a float any other column keeps."""
    if type(value) not in (int, float):
        return None
    affinity = _affinity(declared)
    if not -_INT64 <= value < _INT64:
        if type(value) is int:
            return "an integer past the 64 bits SQLite stores (give it as a float or as text)"
        if affinity == "integer":
            return "past the 64-bit integers a column of INTEGER affinity holds (|n| < 2**63)"
        return None
    if type(value) is not int or affinity != "real":
        return None
    return _double_problem(value, "a REAL column")


def _affinity(declared: str) -> str:
    """SQLite's affinity of a column declared ``declared`` (https://sqlite.org/datatype3.html 3.1):
    ``integer``, ``text``, ``blob``, ``real`` or ``numeric``."""
    upper = declared.upper()
    if "INT" in upper:
        return "integer"
    if any(k in upper for k in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if "BLOB" in upper or not upper.strip():
        return "blob"
    if any(k in upper for k in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def sqlite_number(value: Any, declared: str) -> Any:
    """The JSON value ``value`` as bound for an SQLite column declared ``declared``: a number
    (not a boolean) into a column of TEXT affinity as its text by ``values.number_text``, since
    SQLite would write a REAL as ``%!.15g`` (``0.30000000000000004`` as ``"0.3"``, ``1e-7`` as
    ``"1.0e-07"``); anything else as it is (other affinities keep a number exactly)."""
    if type(value) not in (int, float) or _affinity(declared) != "text":
        return value
    return number_text(value)


#: A number's text as SQLite's numeric affinity reads it.
_NUMBER_TEXT = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def key_number_problem(value: Any, declared: str) -> str | None:
    """Why ``value`` (a key's value as an id or field gives it) cannot be the key of an SQLite
    column declared ``declared``, or ``None``: a column of INTEGER affinity takes an integer (or
    its text, or an integral number), one of REAL affinity (``REAL``, ``FLOAT``, ``DOUBLE``) a
    number (or its text); other affinities take any value.
    Otherwise SQLite would store ``abc`` as text in an integer key, a row no id reads."""
    affinity = _affinity(declared)
    integer = affinity == "integer"
    if affinity not in ("integer", "real"):
        # TEXT, BLOB or NUMERIC affinity (``DATE``, ``DECIMAL``): any value is a key, since
        # programs keep dates as text in a column declared DATE.
        return None
    number: float | int | None = None
    if type(value) in (int, float):
        number = value
    elif isinstance(value, str) and _NUMBER_TEXT.match(value):
        number = int(value) if re.fullmatch(r"[+-]?\d+", value) else float(value)
    if number is None:
        return "not a number" if not integer else "not an integer"
    if number - number != 0:
        return "not a finite number"
    if integer and type(number) is float and not number.is_integer():
        return "not an integer"
    return None


#: Text SQLite's INTEGER, REAL and NUMERIC affinities turn into a number: a decimal literal (ASCII
#: digits only; no hexadecimal), with blanks around it (https://sqlite.org/datatype3.html 3.4).
_CONVERTED = re.compile(
    r"[ \t\n\v\f\r]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t\n\v\f\r]*", re.ASCII
)


def sqlite_text_problem(value: Any, declared: str, strict: bool) -> str | None:
    """Why the JSON string ``value`` would not be kept in an SQLite column declared ``declared``
    (of a ``STRICT`` table when ``strict``), or ``None`` (any other value; text the column keeps;
    a number's text it keeps as that number). A column of INTEGER, REAL or NUMERIC affinity
    (``INT``, ``DECIMAL(10,2)``, ``BOOLEAN``, ``DATE``, ``ANY`` outside a ``STRICT`` table) stores
    text that is a decimal literal as the number it spells. A string that spells that number as
    JSON does (``"7"``, ``"1.50"``, ``"1e5"``; ``"12"`` stored as 12.0 under REAL) is taken as the
    number, as PostgreSQL's numeric types read their text and a copy compares values
    (docs/copy.md "Value-preserving"); any other (``"007"``, ``" 7"``, ``"+5"``, ``".5"``, one a
    REAL rounds or an infinity) would read back as another value, and is the problem, in words
    saying what it would become."""
    if type(value) is not str or _CONVERTED.fullmatch(value) is None:
        return None
    affinity = _affinity(declared)
    if affinity in ("text", "blob") or (strict and declared.strip().upper() == "ANY"):
        return None
    literal = value.strip(" \t\n\v\f\r")
    number: int | float
    if re.fullmatch(r"[+-]?[0-9]+", literal) and -(2**63) <= int(literal) < 2**63:
        number = int(literal)
    else:
        number = float(literal)
        if affinity != "real" and number.is_integer() and -(2**63) <= number < 2**63:
            number = int(number)  # INTEGER and NUMERIC affinity keep an integral REAL as INTEGER
    if affinity == "real":
        number = float(number)
    if number - number != 0:
        shown = "an infinity"
    else:
        if _JSON_NUMBER.fullmatch(value) and Decimal(value) == Decimal(
            float.__repr__(number) if type(number) is float else number
        ):
            return None
        shown = f"the number {json_text(number)}"
    return (
        f"a string SQLite stores as {shown} in a column of {affinity.upper()} affinity, which is "
        "not that number spelled as JSON spells it (a leading zero, a + sign, blanks, or a value "
        "a REAL rounds), so it would not read back as written; send the number to store a "
        "number, or keep such text in a column of TEXT affinity"
    )


#: A JSON number's text (RFC 8259 section 6): no sign but ``-``, no leading zero, no blanks.
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?", re.ASCII)
