"""Parse Mongo-style filters and ``orderBy`` into a small tree that every adapter compiles.

The filter language (DESIGN decision 6) is the same on every adapter:

* ``{field: value}`` is equality; several fields are ANDed;
* operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists $regex $contains``, and ``$and``, ``$or``, ``$not``;
* dotted paths (``metadata.qualityScore``) reach into nested objects;
* comparisons are type-strict: a number only equals or orders against numbers, a string against
  strings, a boolean against booleans (so ``{"age": {"$gt": 5}}`` never matches ``"abc"``);
* JSON ``null`` and a missing field are the same thing: ``{"f": null}`` and ``{"f": {"$exists": false}}``
  match both; ``$ne``/``$nin`` match them too;
* ``$in: []`` matches nothing; an unknown operator is an error, never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from dbhandles.errors import InvalidFilter
from dbhandles.regex import pattern_problem

__all__ = [
    "COLLECTION_PATTERN",
    "IDENT_PATTERN",
    "MAX_ID_LENGTH",
    "MAX_IN_VALUES",
    "MAX_PATH_PARTS",
    "MAX_REGEX_LENGTH",
    "MAX_SORT_KEYS",
    "RESERVED_FIELDS",
    "And",
    "Compare",
    "FilterNode",
    "Not",
    "Or",
    "Scalar",
    "SortKey",
    "parse_fields",
    "parse_filter",
    "parse_order_by",
    "validate_collection",
    "validate_path",
]

Scalar: TypeAlias = str | int | float | bool | None

#: Fields every record has, managed by dbhandles and stored outside the user's JSON document.
RESERVED_FIELDS: frozenset[str] = frozenset({"id", "createdAt", "updatedAt", "version"})
#: The longest record id, in characters.
MAX_ID_LENGTH = 512

#: One part of a field path (and the shape of a collection name).
IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_IDENT = re.compile(IDENT_PATTERN)
SYSTEM_PREFIXES = ("_dbh_", "sqlite_", "pg_")
#: A collection name, as a regular expression valid in Python and in JSON Schema (ECMA 262): 1-64
#: letters, digits or underscores, not starting with a digit nor (in any case) with a system prefix.
#: ``validate_collection`` matches it and the OpenAPI document declares it (one rule, no drift).
COLLECTION_PATTERN = (
    "^(?!"
    + "|".join("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in p)
               for p in SYSTEM_PREFIXES)
    + ")"
    + IDENT_PATTERN.removeprefix("^")
)  # fmt: skip
_COLLECTION = re.compile(COLLECTION_PATTERN)
MAX_DEPTH = 32
MAX_PATH_PARTS = 16
MAX_IN_VALUES = 10_000
MAX_REGEX_LENGTH = 1_000
MAX_SORT_KEYS = 8

CompareOp = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists", "regex", "contains"
]
_FIELD_OPS: dict[str, CompareOp] = {
    "$eq": "eq",
    "$ne": "ne",
    "$gt": "gt",
    "$gte": "gte",
    "$lt": "lt",
    "$lte": "lte",
    "$in": "in",
    "$nin": "nin",
    "$exists": "exists",
    "$regex": "regex",
    "$contains": "contains",
}
_LOGICAL_OPS = ("$and", "$or", "$not")


@dataclass(frozen=True, slots=True)
class Compare:
    """One test on one field: ``path`` is the dotted path split into parts."""

    path: tuple[str, ...]
    op: CompareOp
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class And:
    """All children match (an empty ``And`` matches everything)."""

    children: tuple[FilterNode, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child matches (an empty ``Or`` matches nothing)."""

    children: tuple[FilterNode, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not match."""

    child: FilterNode


FilterNode: TypeAlias = Compare | And | Or | Not


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``orderBy`` entry."""

    path: tuple[str, ...]
    descending: bool = False

    @property
    def field(self) -> str:
        return ".".join(self.path)

    def to_wire(self) -> dict[str, str]:
        return {"field": self.field, "direction": "desc" if self.descending else "asc"}


def validate_collection(name: object, field: str = "collection") -> str:
    """Return ``name`` if it is a valid collection name, else raise ``InvalidParams``."""
    from dbhandles.errors import InvalidParams

    if isinstance(name, str) and _COLLECTION.fullmatch(name):
        return name
    if isinstance(name, str) and name.lower().startswith(SYSTEM_PREFIXES):
        raise InvalidParams(
            f"{field}: names starting with {', '.join(SYSTEM_PREFIXES)} are reserved for system tables",
            field=field,
        )
    raise InvalidParams(
        f"{field}: {name!r} is not a valid collection name; use 1-64 letters, digits or "
        "underscores, not starting with a digit (for example 'training_examples')",
        field=field,
    )


def validate_path(path: object, field: str = "field") -> tuple[str, ...]:
    """Split a dotted field path into parts, raising ``InvalidFilter`` if any part is not an identifier."""
    if not isinstance(path, str) or not path:
        raise InvalidFilter(f"{field}: a field path must be a non-empty string", field=field)
    parts = tuple(path.split("."))
    if len(parts) > MAX_PATH_PARTS or not all(_IDENT.fullmatch(p) for p in parts):
        raise InvalidFilter(
            f"{field}: {path!r} is not a valid field path; use dot-separated identifiers "
            "such as 'metadata.qualityScore'",
            field=field,
        )
    if len(parts) > 1 and parts[0] in RESERVED_FIELDS:
        raise InvalidFilter(f"{field}: {parts[0]!r} is a system field and has no sub-fields")
    return parts


def _scalar(value: object, where: str) -> Scalar:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidFilter(f"{where}: NaN and infinity cannot be compared")
        return value
    raise InvalidFilter(
        f"{where}: filters compare scalar values (string, number, boolean or null), "
        f"not {type(value).__name__}; use $contains to test array members"
    )


def _field_ops(
    path: tuple[str, ...], spec: Mapping[str, object], where: str, depth: int
) -> FilterNode:
    tests: list[FilterNode] = []
    for key, value in spec.items():
        if key == "$not":
            if not isinstance(value, Mapping) or not value:
                raise InvalidFilter(f"{where}.$not: expects an object of operators")
            tests.append(Not(_field_ops(path, value, f"{where}.$not", depth + 1)))
            continue
        op = _FIELD_OPS.get(key)
        if op is None:
            known = ", ".join([*_FIELD_OPS, "$not"])
            raise InvalidFilter(f"{where}: unknown operator {key!r}; known operators: {known}")
        tests.append(_compare(path, op, value, f"{where}.{key}"))
    return tests[0] if len(tests) == 1 else And(tuple(tests))


def _compare(path: tuple[str, ...], op: CompareOp, value: object, where: str) -> Compare:
    if op in ("in", "nin"):
        if not isinstance(value, list | tuple):
            raise InvalidFilter(f"{where}: expects a list of values")
        if len(value) > MAX_IN_VALUES:
            raise InvalidFilter(f"{where}: at most {MAX_IN_VALUES} values")
        return Compare(path, op, tuple(_scalar(v, where) for v in value))
    if op == "exists":
        if not isinstance(value, bool):
            raise InvalidFilter(f"{where}: expects true or false")
        return Compare(path, op, value)
    if op == "regex":
        if not isinstance(value, str) or len(value) > MAX_REGEX_LENGTH:
            raise InvalidFilter(
                f"{where}: expects a regular expression of at most {MAX_REGEX_LENGTH} characters",
                field=where,
            )
        problem = pattern_problem(value)
        if problem is not None:
            # RE2 syntax matches in linear time, so there is no catastrophic pattern to guard against.
            raise InvalidFilter(
                f"{where}: {value!r} is not a valid RE2 regular expression ({problem}); $regex "
                "takes RE2 syntax, which has no backreferences or look-around (docs/filters.md)",
                field=where,
            )
        return Compare(path, op, value)
    scalar = _scalar(value, where)
    if op in ("gt", "gte", "lt", "lte") and scalar is None:
        raise InvalidFilter(f"{where}: cannot order against null; use $exists")
    if op == "contains" and scalar is None:
        raise InvalidFilter(f"{where}: expects a string, number or boolean")
    return Compare(path, op, scalar)


def _parse(spec: object, where: str, depth: int) -> FilterNode:
    if depth > MAX_DEPTH:
        raise InvalidFilter(f"{where}: filter nested deeper than {MAX_DEPTH} levels")
    if not isinstance(spec, Mapping):
        raise InvalidFilter(f'{where}: a filter must be an object such as {{"label": "positive"}}')
    nodes: list[FilterNode] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise InvalidFilter(f"{where}: keys must be strings")
        sub = f"{where}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list):
                raise InvalidFilter(f"{sub}: expects a list of filters")
            children = tuple(_parse(v, f"{sub}[{i}]", depth + 1) for i, v in enumerate(value))
            nodes.append(And(children) if key == "$and" else Or(children))
        elif key == "$not":
            nodes.append(Not(_parse(value, sub, depth + 1)))
        elif key.startswith("$"):
            known = ", ".join(_LOGICAL_OPS)
            raise InvalidFilter(
                f"{sub}: unknown operator {key!r} at this level; use one of {known}"
            )
        else:
            path = validate_path(key, sub)
            if (
                isinstance(value, Mapping)
                and value
                and all(isinstance(k, str) and k.startswith("$") for k in value)
            ):
                nodes.append(_field_ops(path, value, sub, depth + 1))
            elif isinstance(value, Mapping) and any(
                isinstance(k, str) and k.startswith("$") for k in value
            ):
                raise InvalidFilter(f"{sub}: do not mix operators and plain keys in one object")
            else:
                nodes.append(Compare(path, "eq", _scalar(value, sub)))
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def parse_filter(spec: object, field: str = "filter") -> FilterNode | None:
    """Parse a wire filter into a tree; ``None`` or ``{}`` means "match everything".

    Raises:
        InvalidFilter: the message names the offending key path (``filter.age.$gt``).
    """
    if spec is None:
        return None
    if isinstance(spec, Mapping) and not spec:
        return None
    return _parse(spec, field, 0)


def _sort_key(item: object, where: str) -> SortKey:
    if isinstance(item, str):
        text = item.strip()
        descending = False
        if text.startswith("-"):
            descending, text = True, text[1:]
        elif " " in text or ":" in text:
            name, _, direction = text.replace(":", " ").partition(" ")
            text, descending = name, _direction(direction.strip(), where)
        return SortKey(validate_path(text, where), descending)
    if isinstance(item, Mapping):
        extra = set(item) - {"field", "direction"}
        if extra:
            raise InvalidFilter(f"{where}: unknown keys {sorted(extra)}; use {{field, direction}}")
        direction = item.get("direction", "asc")
        return SortKey(
            validate_path(item.get("field"), f"{where}.field"), _direction(direction, where)
        )
    raise InvalidFilter(
        f'{where}: expects {{"field": ..., "direction": "asc"|"desc"}} or a field name'
    )


def _direction(value: object, where: str) -> bool:
    if isinstance(value, str) and value.lower() in ("asc", "desc"):
        return value.lower() == "desc"
    raise InvalidFilter(f"{where}.direction: expects 'asc' or 'desc', got {value!r}")


def parse_order_by(spec: object, field: str = "orderBy") -> tuple[SortKey, ...]:
    """Normalise ``orderBy`` and append ``id`` as the final tie-breaker (keyset paging needs a total order).

    Accepts a list of ``{field, direction}`` or strings (``"name"``, ``"-createdAt"``, ``"score desc"``),
    a single such item, or the original system's bare ``"asc"``/``"desc"`` meaning ``createdAt``.
    """
    if spec is None or spec == []:
        items: Sequence[object] = []
    elif isinstance(spec, str) and spec.lower() in ("asc", "desc"):
        items = [{"field": "createdAt", "direction": spec.lower()}]
    elif isinstance(spec, str | Mapping):
        items = [spec]
    elif isinstance(spec, list | tuple):
        items = spec
    else:
        raise InvalidFilter(f"{field}: expects a list of {{field, direction}}")
    if len(items) > MAX_SORT_KEYS:
        raise InvalidFilter(f"{field}: at most {MAX_SORT_KEYS} sort keys")
    keys = [_sort_key(item, f"{field}[{i}]") for i, item in enumerate(items)]
    if not any(k.path == ("id",) for k in keys):
        keys.append(SortKey(("id",), False))
    else:
        # Keys after id can never decide an order: drop them so adapters need not compute them.
        keys = keys[: next(i for i, k in enumerate(keys) if k.path == ("id",)) + 1]
    return tuple(keys)


def parse_fields(spec: object, field: str = "fields") -> tuple[tuple[str, ...], ...] | None:
    """Validate a projection list; ``None`` means every field."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = [s for s in spec.split(",") if s.strip()]
    if not isinstance(spec, list | tuple):
        raise InvalidFilter(f"{field}: expects a list of field paths")
    return tuple(
        validate_path(s.strip() if isinstance(s, str) else s, f"{field}[{i}]")
        for i, s in enumerate(spec)
    )
