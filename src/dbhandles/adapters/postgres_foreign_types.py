"""JSON values as PostgreSQL types take them, for writes to tables dbhandles did not create.

``number_text`` says what a JSON number becomes in a column of a type (itself, its text, or an
``invalid_params`` naming the field and the type with the JSON form it takes); ``load_type`` reads a
composite or array type from the catalog into a ``PgType``; ``literal`` writes an object of a
composite's fields (nested composites, arrays of composites) as the text PostgreSQL parses by that
type (``(1,"x")``, ``{"(1,x)","(2,y)"}``). The text goes in as a bound parameter, never into SQL,
as the array literals of ``postgres_foreign_write`` do: one parameter of the column's own type,
with no per-connection type registration. The JSON form of each type is the one reads show
(``to_jsonb``), so what ``data/list`` shows can be written back (docs/foreign-tables.md
"PostgreSQL values").
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from dbhandles.errors import InvalidParams
from dbhandles.values import json_text

__all__ = [
    "NUMBERS",
    "PgType",
    "column_type",
    "domain_paths",
    "literal",
    "load_type",
    "number_text",
    "type_form",
]

#: Runs a catalog query in the session's transaction: ``(statement, params)`` -> its rows.
Rows = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]

#: Base types that take a JSON number as it is (bound as a number).
NUMBERS = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8"})
#: How deep composites and arrays may nest (PostgreSQL forbids a composite containing itself).
_MAX_DEPTH = 32
#: The JSON value a column of a base type (or ``pg_type.typcategory``) takes, for messages.
_FORMS_BY_TYPE = {
    "bool": "true or false",
    "date": 'a string such as "2024-03-01"',
    "time": 'a string such as "12:34:56"',
    "timetz": 'a string such as "12:34:56+02"',
    "timestamp": 'a string such as "2024-03-01T10:00:00"',
    "timestamptz": 'a string such as "2024-03-01T10:00:00Z"',
    "interval": 'a string such as "1 day 02:00:00" or "P1DT2H"',
    "inet": 'a string such as "192.168.0.1" or "10.0.0.0/8"',
    "cidr": 'a string such as "10.0.0.0/8"',
    "macaddr": 'a string such as "08:00:2b:01:02:03"',
    "macaddr8": 'a string such as "08:00:2b:01:02:03:04:05"',
    "bit": 'a string of 0s and 1s such as "1010"',
    "varbit": 'a string of 0s and 1s such as "1010"',
    "tsvector": "a string such as \"'fat' 'rat'\"",
    "tsquery": "a string such as \"'fat' & 'rat'\"",
    "uuid": 'a string such as "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"',
    "point": 'a string such as "(1,2)"',
    "bytea": '{"$base64": "<standard base64>"}',
}
_FORMS_BY_CATEGORY = {
    "G": 'a string such as "(1,2)" or "((0,0),(1,1))"',
    "R": 'a string such as "[1,5)" or "[2024-01-01,2024-02-01)"',
    "E": "one of its labels as a string",
    "C": "an object of its fields",
    "A": "an array",
}


@dataclass(frozen=True, slots=True)
class PgType:
    """A column's or a composite field's type, as far as writing JSON into it needs."""

    #: As ``format_type`` prints it (``z.pt``, ``integer[]``), for messages.
    name: str
    #: The base type's name (a domain's base type): ``int4``, ``_pt``.
    base: str
    #: ``pg_type.typcategory`` of the base type.
    category: str
    #: A composite's fields in order (name, type); ``None`` for other types.
    fields: tuple[tuple[str, PgType], ...] | None = None
    #: An array's element type; ``None`` for other types.
    element: PgType | None = None
    #: The domains (``schema.name``) its values are checked by: itself when it is a domain, and
    #: the domains that one is built on (what a domain's refusal names, ``domain_paths``).
    domains: tuple[str, ...] = ()


_TYPE = """
SELECT format_type(t.oid, NULL), t.typname, t.typcategory, t.typtype, t.typrelid, t.typelem,
       t.typbasetype, n.nspname
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.oid = %s
"""
_FIELDS = """
SELECT a.attname, a.atttypid FROM pg_attribute a
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_COLUMN_TYPE = "SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = %s AND a.attname = %s"


def load_type(rows: Rows, oid: int, depth: int = 0) -> PgType:
    """The ``PgType`` of type ``oid``: domains followed to their base type, a composite's fields
    and an array's element read as well (queries by oid, bound as parameters)."""
    name, base, category, kind, relid, element, base_oid, schema = rows(_TYPE, (oid,))[0]
    domains: list[str] = []
    while kind == "d":
        domains.append(f"{schema}.{base}")
        _, base, category, kind, relid, element, base_oid, schema = rows(_TYPE, (base_oid,))[0]
    checked = tuple(domains)
    if depth > _MAX_DEPTH:
        return PgType(name, base, category, domains=checked)
    if kind == "c":
        fields = tuple(
            (field, load_type(rows, field_oid, depth + 1))
            for field, field_oid in rows(_FIELDS, (relid,))
        )
        return PgType(name, base, category, fields=fields, domains=checked)
    if category == "A" and element:
        return PgType(
            name, base, category, element=load_type(rows, element, depth + 1), domains=checked
        )
    return PgType(name, base, category, domains=checked)


def domain_paths(kind: PgType, domain: str) -> list[tuple[str, ...]]:
    """The paths of the fields inside the composite type ``kind`` (nested composites, arrays of
    them) whose values ``domain`` (``schema.name``) checks: ``("a",)`` for a field ``a`` of a
    domain built on it, ``("corner", "a")`` inside a nested composite, ``("pts", "a")`` inside
    the elements of an array field (PostgreSQL does not say which element failed). ``[]`` when
    none does."""
    found: list[tuple[str, ...]] = []
    for field, inner in kind.fields or ():
        while inner.element is not None and domain not in inner.domains:
            inner = inner.element  # an array field: its elements' type
        if domain in inner.domains:
            found.append((field,))
        elif inner.fields is not None:
            found.extend((field, *path) for path in domain_paths(inner, domain))
    return found


def column_type(rows: Rows, table_oid: int, column: str) -> PgType:
    """The ``PgType`` of ``column`` of the relation ``table_oid``."""
    return load_type(rows, rows(_COLUMN_TYPE, (table_oid, column))[0][0])


def type_form(base: str, category: str) -> str:
    """The JSON value a type takes, for a message (``a string such as "1 day 02:00:00"``)."""
    return (
        _FORMS_BY_TYPE.get(base)
        or _FORMS_BY_CATEGORY.get(category)
        or "a string PostgreSQL reads as this type"
    )


def number_text(value: int | float, base: str, category: str, type_name: str, where: str) -> Any:
    """What the JSON number ``value`` is bound as for a value of base type ``base``: itself for
    the numeric types and text types (PostgreSQL casts a number to text on assignment), its text
    for the other numeric category types (``money``, ``oid``: PostgreSQL has no cast from every
    integer width, so it parses the text), in plain decimal form (``1e16`` as
    ``10000000000000000``, ``1e-5`` as ``0.00001``: neither reads an exponent; an integral
    number without a point, which ``oid`` needs).

    Raises:
        InvalidParams: a type no JSON number stands for (``interval``, ``inet``, enums, ...),
            naming ``where`` and the type, with the JSON value it takes.
    """
    if base in NUMBERS or category == "S":
        return value
    if category == "N":
        if isinstance(value, int) or value.is_integer():
            return str(int(value))  # ``1e9`` into an oid is 1000000000, not "1000000000.0"
        return format(Decimal(float.__repr__(value)), "f")
    raise InvalidParams(
        f"{where}: the type {type_name} takes no JSON number; give {type_form(base, category)}",
        field=where,
    )


def _quoted(text: str) -> str:
    """``text`` double-quoted with backslash escapes: one item of an array or record literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: Any, kind: PgType, where: str) -> str | None:
    """``value`` as the text PostgreSQL parses as ``kind`` (``None`` for null): an object of a
    composite's fields as a record literal, a list as an array literal, the rest as the text of
    a scalar (``where`` names the value in errors: ``data.c.a``, ``data.cs.0.a``).

    Raises:
        InvalidParams: an object with a field the composite does not have, or without one it has;
            an object or array where the type holds none; a number or boolean the type does not
            take. Each names the field (``where`` and the path below it).
    """
    if value is None:
        return None
    if kind.base in ("json", "jsonb"):
        return orjson.dumps(value).decode()
    if isinstance(value, str):
        return value  # PostgreSQL reads it by the type ("(2,y)" for a composite), and says if not
    if kind.fields is not None:
        if not isinstance(value, dict):
            raise InvalidParams(
                f"{where}: the type {kind.name} is a composite; give an object of its fields "
                f"({', '.join(f for f, _ in kind.fields)})",
                field=where,
            )
        return _record(value, kind, where)
    if kind.element is not None:
        if not isinstance(value, list):
            raise InvalidParams(f"{where}: the type {kind.name} takes an array", field=where)
        return _array(value, kind, where)
    if isinstance(value, dict) and kind.base == "bytea" and set(value) == {"$base64"}:
        return _bytea(value["$base64"], where)
    if isinstance(value, dict | list):
        shown = "objects" if isinstance(value, dict) else "arrays"
        raise InvalidParams(f"{where}: the type {kind.name} holds no {shown}", field=where)
    if isinstance(value, bool):
        if kind.base != "bool" and kind.category != "S":
            raise InvalidParams(
                f"{where}: the type {kind.name} is not boolean; give "
                f"{type_form(kind.base, kind.category)}",
                field=where,
            )
        return "true" if value else "false"
    return str(number_text(value, kind.base, kind.category, kind.name, where))


def _array(value: list[Any], kind: PgType, where: str) -> str:
    """An array literal ``{"(1,x)",NULL,{...}}`` of ``value``: a list inside it is a sub-array
    of the same element type (``pt[][]``), each other item its element's literal, quoted."""
    assert kind.element is not None
    items = []
    for i, item in enumerate(value):
        if isinstance(item, list) and kind.element.base not in ("json", "jsonb"):
            items.append(_array(item, kind, f"{where}.{i}"))
            continue
        text = literal(item, kind.element, f"{where}.{i}")
        items.append("NULL" if text is None else _quoted(text))
    return "{" + ",".join(items) + "}"


def _record(value: dict[str, Any], kind: PgType, where: str) -> str:
    """A record literal ``(1,"x",)`` of ``value``'s fields in the composite's order (null is an
    empty item, the empty string ``""``)."""
    assert kind.fields is not None
    names = [f for f, _ in kind.fields]
    unknown = [f for f in value if f not in names]
    if unknown:
        raise InvalidParams(
            f"{where}.{unknown[0]}: the type {kind.name} has no field {json_text(unknown[0], 80)} (its fields: "
            f"{', '.join(names)})",
            field=f"{where}.{unknown[0]}",
        )
    missing = [f for f in names if f not in value]
    if missing:
        raise InvalidParams(
            f"{where}.{missing[0]}: an object of type {kind.name} gives every field (missing: "
            f"{', '.join(missing)}; null for none)",
            field=f"{where}.{missing[0]}",
        )
    items = [literal(value[f], field_type, f"{where}.{f}") for f, field_type in kind.fields]
    return "(" + ",".join("" if t is None else _quoted(t) for t in items) + ")"


def _bytea(text: Any, where: str) -> str:
    """The ``\\x`` hex text of standard base64 ``text``."""
    try:
        if not isinstance(text, str):
            raise ValueError(text)
        return "\\x" + base64.b64decode(text.encode("ascii"), validate=True).hex()
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidParams(
            f'{where}: {{"$base64": ...}} holds standard base64 text', field=where
        ) from exc
