"""Which column a PostgreSQL type-capacity error of a write came from.

PostgreSQL leaves the column out of the errors a value past its type's capacity raises: ``value too
long for type character varying(3)`` (SQLSTATE 22001, a ``varchar(n)``/``char(n)`` column or a
domain over one), ``numeric field overflow`` (22003, past a ``numeric(p,s)``'s precision),
``integer out of range`` / ``smallint out of range`` / ``bigint out of range``, ``value "..." is
out of range for type bigint`` (22003). The
foreign-table writer (``postgres_foreign_write``) knows what it sent to which column and each
column's type, so the column is the first (in the table's order, the order PostgreSQL converts
them in) whose sent value is past the capacity the message names (docs/foreign-tables.md
"PostgreSQL writes": the field is ``data.<column>``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

__all__ = ["over_capacity"]


class _Column(Protocol):
    """A column as ``postgres_foreign_schema.PgColumn`` describes it."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def base(self) -> str: ...


#: ``value too long for type character varying(3)``: the type's base and its length.
_TOO_LONG = re.compile(r"value too long for type (character varying|character)\((\d+)\)")
_LENGTH_BASES = {"character varying": "varchar", "character": "bpchar"}
#: A length or precision a column's type declares (``character varying(3)``, ``numeric(5,2)``).
_MODIFIER = re.compile(r"\((\d+)(?:,\s*(-?\d+))?\)$")
#: ``smallint out of range`` (and ``integer``, ``bigint``; ``value "9e20" is out of range for
#: type bigint`` for a text read as one): the base type and its range.
_OUT_OF_RANGE = re.compile(
    r"^(smallint|integer|bigint) out of range|is out of range for type (smallint|integer|bigint)$"
)
_RANGES = {
    "smallint": ("int2", 1 << 15),
    "integer": ("int4", 1 << 31),
    "bigint": ("int8", 1 << 63),
}


def _text(value: Any) -> str | None:
    """The text PostgreSQL reads a sent scalar as (``None`` for what is not one)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int | float | Decimal):
        return str(value)
    return None


def _number(value: Any) -> Decimal | None:
    text = _text(value)
    if text is None:
        return None
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _too_long(column: _Column, base: str, length: int, value: Any) -> bool:
    if column.base != base:
        return False
    declared = _MODIFIER.search(column.type)
    if declared is not None and int(declared.group(1)) != length:
        return False  # a column of another length (a domain's own type declares none)
    text = _text(value)
    # PostgreSQL cuts trailing spaces past the length silently (SQL's rule) rather than refusing.
    return text is not None and len(text.rstrip(" ")) > length


def _past_precision(column: _Column, value: Any) -> bool:
    if column.base != "numeric":
        return False
    declared = _MODIFIER.search(column.type)
    number = _number(value)
    if declared is None or number is None:
        return False
    precision, scale = int(declared.group(1)), int(declared.group(2) or 0)
    try:
        rounded = number.quantize(Decimal(1).scaleb(-scale))
    except InvalidOperation:
        return True  # past what Decimal's context holds: past any declared precision
    return abs(rounded) >= Decimal(10) ** (precision - scale)


def _out_of_range(column: _Column, base: str, limit: int, value: Any) -> bool:
    if column.base != base:
        return False
    number = _number(value)
    if number is None:
        return False
    # An integer column rounds a fractional text ("1.5") the way numeric does: the range is
    # checked on the rounded value, so the edge is compared half a unit out.
    return not (-limit - Decimal("0.5") < number < limit - Decimal("0.5"))


def over_capacity(
    message: str, columns: Iterable[_Column], values: Mapping[str, Any]
) -> str | None:
    """The column whose sent value is past the capacity ``message`` (the server's primary
    message) names, the first in ``columns``' order; ``None`` when the message is no capacity
    error or no sent value can be told past it.

    Args:
        message: PostgreSQL's primary message (``value too long for type character(2)``).
        columns: the table's columns, in its order (``PgColumn``: ``name``, ``type``, ``base``).
        values: column name -> the parameter sent for it.
    """
    sent = [c for c in columns if c.name in values]
    long = _TOO_LONG.search(message)
    if long is not None:
        base, length = _LENGTH_BASES[long.group(1)], int(long.group(2))
        hits = [c for c in sent if _too_long(c, base, length, values[c.name])]
    elif message.startswith("numeric field overflow"):
        hits = [c for c in sent if _past_precision(c, values[c.name])]
    elif (ranged := _OUT_OF_RANGE.search(message)) is not None:
        base, limit = _RANGES[ranged.group(1) or ranged.group(2)]
        hits = [c for c in sent if _out_of_range(c, base, limit, values[c.name])]
    else:
        return None
    return hits[0].name if hits else None
