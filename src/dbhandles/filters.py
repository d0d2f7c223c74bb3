"""Parse Mongo-style filters and ``orderBy`` into a small tree that every adapter compiles.

The filter language (DESIGN decision 6) is the same on every adapter:

* ``{field: value}`` is equality; several fields are ANDed;
* operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists $regex $contains $size $all $elemMatch $and $or $not``;
* dotted paths (``metadata.qualityScore``) reach into nested objects and, as in MongoDB, through arrays
  (``messages.role`` tests the role of every message; any one matching is enough); a numeric segment
  indexes an array (``messages.0.role``);
* comparisons are type-strict: a number only equals or orders against numbers, a string against
  strings, a boolean against booleans (so ``{"age": {"$gt": 5}}`` never matches ``"abc"``);
* JSON ``null`` and a missing field are the same thing: ``{"f": null}`` and ``{"f": {"$exists": false}}``
  match both; ``$ne``/``$nin`` match them too;
* ``$in: []`` matches nothing; an unknown operator is an error, never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, get_args

from dbhandles.byte_cache import NAME_CACHE_BYTES, ByteCache, deep_sizeof
from dbhandles.errors import InvalidFilter, InvalidParams
from dbhandles.filter_size import check_filter_size
from dbhandles.filter_text import HeldText
from dbhandles.regex import pattern_problem
from dbhandles.values import check_scalar, json_text, name_text

__all__ = [
    "COLLECTION_PATTERN", "IDENT_PATTERN", "MAX_COLLECTION_LENGTH", "MAX_ID_LENGTH",
    "MAX_IN_VALUES", "MAX_PATH_PARTS", "MAX_REGEX_LENGTH", "MAX_SORT_KEYS",
    "NEW_COLLECTION_PATTERN", "RESERVED_FIELDS", "TOP_FIELD_PATTERN", "And", "Compare", "ElemMatch",
    "FilterNode", "Not", "Or", "Scalar", "SortKey", "check_collection_path",
    "check_collection_query", "check_collection_values", "check_new_collection", "parse_fields",
    "parse_filter", "parse_order_by", "top_fields", "validate_collection", "validate_path",
]  # fmt: skip

Scalar: TypeAlias = str | int | float | bool | None

#: Fields every record has, managed by dbhandles and stored outside the user's JSON document.
RESERVED_FIELDS: frozenset[str] = frozenset({"id", "createdAt", "updatedAt", "version"})
#: The longest record id, in characters.
MAX_ID_LENGTH = 512

#: One part of a field path (and the shape of a collection name).
IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_IDENT = re.compile(IDENT_PATTERN)
SYSTEM_PREFIXES = ("_dbh_", "sqlite_", "pg_")
_NOT_SYSTEM = (
    "(?!"
    + "|".join("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in p)
               for p in SYSTEM_PREFIXES)
    + ")"
)  # fmt: skip
#: The longest ``collection`` a command takes, in characters.
MAX_COLLECTION_LENGTH = 255
#: Control characters (C0, DEL, C1): never part of a name (a table name, a column name).
_CONTROLS = "\\u0000-\\u001f\\u007f-\\u009f"
#: The ``collection`` a command takes, as a regular expression valid in Python and in JSON Schema
#: (ECMA 262): 1-255 characters, no control character, not starting (in any case) with a system
#: prefix. It names an existing table or view as it is spelled (``Order Items``, ``café``, ``select``),
#: which adapters always quote; ``validate_collection`` matches it and the OpenAPI document declares it.
COLLECTION_PATTERN = f"^{_NOT_SYSTEM}[^{_CONTROLS}]{{1,{MAX_COLLECTION_LENGTH}}}$"
_COLLECTION = re.compile(COLLECTION_PATTERN)
#: Names ``validate_collection`` accepted lately (it is a pure function of the name).
_ACCEPTED: ByteCache[str, bool] = ByteCache(NAME_CACHE_BYTES)
#: A name for a NEW collection (what an adapter creates): 1-64 letters, digits or underscores, not
#: starting with a digit nor with a system prefix. ``check_new_collection`` enforces it.
NEW_COLLECTION_PATTERN = f"^{_NOT_SYSTEM}" + IDENT_PATTERN.removeprefix("^")
_NEW_COLLECTION = re.compile(NEW_COLLECTION_PATTERN)
#: The first part of a field path (a top-level field, a foreign table's column): 1-255 characters,
#: no '.', no control character, not starting with '$' (an operator) nor starting or ending with
#: whitespace. Parts after the first are identifiers (they reach into JSON documents).
#: ``TOP_FIELD_PATTERN`` has no anchors: the grammar builds dotted paths from it.
TOP_FIELD_PATTERN = (
    f"[^\\s.${_CONTROLS}](?:[^.{_CONTROLS}]{{0,{MAX_COLLECTION_LENGTH - 2}}}[^\\s.{_CONTROLS}])?"
)
_TOP_FIELD = re.compile(TOP_FIELD_PATTERN)
MAX_DEPTH = 32
MAX_PATH_PARTS = 64  # a stored value nests at most 64 levels (values.MAX_DEPTH)
MAX_IN_VALUES = 10_000
MAX_REGEX_LENGTH = 1_000
MAX_SORT_KEYS = 8

CompareOp = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "exists", "regex", "contains", "size"
]
_FIELD_OPS: dict[str, CompareOp] = {f"${op}": op for op in get_args(CompareOp)}
#: Field operators that build more than one ``Compare``.
_COMPOUND_OPS = ("$all", "$elemMatch", "$not")
#: A numeric path segment: an index into an array (``messages.0.role``), in filters only.
_INDEX = re.compile(r"^(?:0|[1-9][0-9]{0,8})$")
_LOGICAL_OPS = ("$and", "$or", "$not")


@dataclass(frozen=True, slots=True)
class Compare:
    """One test on one field: ``path`` is the dotted path split into parts.

    An empty ``path`` (only inside the operator form of ``ElemMatch``) means the array element itself.
    """

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


@dataclass(frozen=True, slots=True)
class ElemMatch:
    """Some element of an array reached by ``path`` satisfies ``child`` (MongoDB's ``$elemMatch``).

    ``child`` tests the element as a record (an object element; ``{"role": "user"}``), or, when
    ``scalar`` is true, the element's own value (``{"$gte": 2, "$lt": 5}``: its ``Compare`` nodes have
    an empty path).
    """

    path: tuple[str, ...]
    child: FilterNode
    scalar: bool


FilterNode: TypeAlias = Compare | And | Or | Not | ElemMatch

#: One part of a path into a collection's JSON documents: an identifier or an array index.
COLLECTION_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}|0|[1-9][0-9]{0,8}")
#: Why a path is refused in a collection, the same on every adapter (a foreign table's columns may
#: have other names: docs/foreign-tables.md "Names").
NOT_A_COLLECTION_PATH = (
    "{} is not a valid field path (filter, orderBy, groupBy) in a collection: its fields are identifiers (letters, digits, "
    "'_'); other names are for the columns of tables dbhandles did not create"
)


def check_collection_path(path: tuple[str, ...], *, top: bool = True) -> None:
    """Refuse a path whose parts are not identifiers (or array indexes) in a dbhandles collection;
    with ``top`` (a path from the record, not from an ``$elemMatch`` element) its first part must be
    an identifier: a top-level field named ``0`` or ``7`` is not one (an index reaches into arrays,
    and a record is an object).

    Raises:
        InvalidFilter: a part is not an identifier, e.g. ``'Order Total'`` or a top-level ``'7'``
            (``NOT_A_COLLECTION_PATH``).
    """
    if not all(COLLECTION_PART.fullmatch(part) for part in path) or (
        top and path and path[0].isdigit()
    ):
        raise InvalidFilter(NOT_A_COLLECTION_PATH.format(json_text(".".join(path), 80)))


def _filter_paths(node: FilterNode) -> Iterator[tuple[str, ...]]:
    if isinstance(node, Compare):
        yield node.path
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from _filter_paths(child)
    elif isinstance(node, Not):
        yield from _filter_paths(node.child)
    else:
        yield node.path
        if not node.scalar:
            yield from _filter_paths(node.child)


def top_fields(node: FilterNode) -> set[str]:
    """The top-level fields a filter tests (``a`` of ``a.b``; inside ``$elemMatch`` only its own)."""
    if isinstance(node, And | Or):
        return set().union(*(top_fields(child) for child in node.children))
    if isinstance(node, Not):
        return top_fields(node.child)
    return {node.path[0]} if node.path else set()  # an empty path: an element (never top level)


def check_collection_query(
    filter: FilterNode | None,
    paths: Iterable[tuple[str, ...]] = (),
) -> None:
    """``check_collection_path`` for every path of ``filter`` and of ``paths`` (sort keys, groups):
    what the SQL adapters refuse when they compile a collection's query, the adapters that evaluate
    in Python refuse too, so every adapter answers the same.

    Raises:
        InvalidFilter: a path is not one a collection's documents can be reached by.
    """
    if filter is not None:
        check_collection_values(filter)
        for path in _filter_paths(filter):
            if path:
                check_collection_path(path, top=False)
        for field in top_fields(filter):
            check_collection_path((field,))
    for path in paths:
        check_collection_path(path)


def check_collection_values(node: FilterNode, where: str = "filter") -> None:
    """Raise ``InvalidFilter`` naming the field (``filter.a.b``) of a string in ``node`` holding U+0000:
    ``parse_filter`` takes it for a table dbhandles did not create, no collection's record holds it."""
    if isinstance(node, And | Or):
        for child in node.children:
            check_collection_values(child, where)
    elif isinstance(node, Not):
        check_collection_values(node.child, where)
    elif isinstance(node, ElemMatch):
        check_collection_values(node.child, ".".join((where, *node.path)))
    elif node.op != "regex":
        for value in node.value if isinstance(node.value, tuple) else (node.value,):
            if isinstance(value, str) and "\x00" in value:
                at = getattr(value, "where", None) or ".".join((where, *node.path))
                raise InvalidFilter(f"{at}: {check_scalar(value, at)}", field=at)


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
    """Return ``name`` if a command may name it as a collection, else raise ``InvalidParams``.

    Any table or view name is accepted (``Order Items``, ``café``); what a NEW collection may be called
    is narrower, and checked by the adapter that would create it (``check_new_collection``).
    """
    if isinstance(name, str):
        if _ACCEPTED.get(name):
            return name
        if _COLLECTION.fullmatch(name):  # names repeat from call to call: a few are remembered
            _ACCEPTED.put(name, True, deep_sizeof((name, True)))
            return name
    if isinstance(name, str) and name.lower().startswith(SYSTEM_PREFIXES):
        raise InvalidParams(
            f"{field}: names starting with {', '.join(SYSTEM_PREFIXES)} are reserved for system tables",
            field=field,
        )
    raise InvalidParams(
        f"{field}: {json_text(name, 80)} is not a valid collection name; use 1-{MAX_COLLECTION_LENGTH} characters "
        "without control characters (a new collection: letters, digits or underscores, for example "
        "'training_examples')",
        field=field,
    )


def check_new_collection(name: str, field: str = "collection") -> str:
    """Return ``name`` if a new collection may be created under it, else raise ``InvalidParams``.

    Adapters call it where a write would create a collection that does not exist: a table that is
    already there may have any name, a new one is 1-64 letters, digits or underscores.
    """
    from dbhandles.errors import InvalidParams

    validate_collection(name, field)
    if not _NEW_COLLECTION.fullmatch(name):
        raise InvalidParams(
            f"{field}: no collection, table or view is named {json_text(name, 80)}, and a new collection cannot "
            "be: a new collection's name is 1-64 letters, digits or underscores, not starting with "
            "a digit (for example 'training_examples'); tables and views that already exist may "
            "have any name",
            field=field,
        )
    return name


#: Paths ``validate_path`` accepted, by ``(path, indexes)``: params and handler both parse them.
_PATHS: ByteCache[tuple[str, bool], tuple[str, ...]] = ByteCache(NAME_CACHE_BYTES)


def validate_path(path: object, field: str = "field", *, indexes: bool = False) -> tuple[str, ...]:
    """Split a dotted field path into parts, raising ``InvalidFilter`` if a part is not valid.

    The first part is a top-level field (a foreign table's column may be ``Order Total`` or
    ``café``: any name without '.', control characters, a leading '$' or surrounding whitespace);
    the others are identifiers. With ``indexes`` (filters only), a part after the first may also be
    an array index (``0``, ``12``). An accepted path is split once (``_PATHS``); a refused one
    again each time, its message naming each call's ``field``."""
    if type(path) is not str:
        return _split_path(path, field, indexes)  # refused
    found = _PATHS.get((path, indexes))
    if found is None:
        found = _split_path(path, field, indexes)
        _PATHS.put((path, indexes), found, deep_sizeof(((path, indexes), found)))
    return found


def _split_path(path: object, field: str, indexes: bool) -> tuple[str, ...]:
    if not isinstance(path, str) or not path:
        raise _refused(field, f"a field path must be a non-empty string, got {json_text(path, 80)}")
    parts = tuple(path.split("."))
    if len(parts) > MAX_PATH_PARTS:
        raise InvalidFilter(
            f"{field}: {json_text(path, 80)} has {len(parts)} dot-separated parts; a field path "
            f"has at most {MAX_PATH_PARTS} (a stored value nests at most {MAX_PATH_PARTS} levels)",
            field=field,
        )
    if not _TOP_FIELD.fullmatch(parts[0]) or not all(
        _IDENT.fullmatch(p) or (indexes and _INDEX.fullmatch(p)) for p in parts[1:]
    ):
        if _TOP_FIELD.fullmatch(parts[0]) and all(_IDENT.fullmatch(p) or _INDEX.fullmatch(p)
                                                  for p in parts[1:]):  # fmt: skip
            raise _refused(field, f"{json_text(path, 80)} is not a valid field path here: a number "
                           "after a '.' is an array index (or ends a column name such as 'v1.2'), "
                           "which only filters take (docs/foreign-tables.md \"Names\")")  # fmt: skip
        raise InvalidFilter(
            f"{field}: {json_text(path, 80)} is not a valid field path; use a field name (no '.', no control "
            "character, not starting with '$') followed by dot-separated identifiers, such as "
            "'metadata.qualityScore'",
            field=field,
        )
    if len(parts) > 1 and parts[0] in RESERVED_FIELDS:
        raise _refused(field, f"{json_text(parts[0])} is a system field and has no sub-fields")
    return parts


def _refused(where: str, problem: str) -> InvalidFilter:
    """The error for the part of a filter or order at ``where`` (its path, already escaped)."""
    return InvalidFilter(f"{where}: {problem}", field=where)


def _scalar(value: object, where: str) -> Scalar:
    if value is None or isinstance(value, (str, bool, int, float)):
        # The value rule of records (dbhandles.values): one no record can hold is an error here too;
        # but U+0000, which a table dbhandles did not create may hold (``check_collection_values``).
        held = value.replace("\x00", "") if isinstance(value, str) else value
        problem = check_scalar(held, where, wide_integers=True)  # integers compare by value
        if problem is not None:
            raise _refused(where, problem)
        return HeldText(value, where) if isinstance(value, str) and "\x00" in value else value
    raise InvalidFilter(
        f"{where}: filters compare scalar values (string, number, boolean or null), not "
        f"{'an object' if isinstance(value, dict) else 'an array'}: got {json_text(value, 80)}; a field holding an array matches when one of its elements "
        "does, and whole-array equality is not supported: use $all and $size, or $elemMatch "
        "(docs/filters.md)",
        field=where,
    )


def _field_ops(
    path: tuple[str, ...], spec: Mapping[str, object], where: str, depth: int
) -> FilterNode:
    if depth > MAX_DEPTH:
        raise _refused(where, f"filter nested deeper than {MAX_DEPTH} levels")
    tests: list[FilterNode] = []
    for key, value in spec.items():
        if key == "$not":
            if not isinstance(value, Mapping) or not value:
                raise _refused(f"{where}.$not", "expects an object of operators")
            tests.append(Not(_field_ops(path, value, f"{where}.$not", depth + 1)))
            continue
        if key == "$all":
            if not isinstance(value, list | tuple) or len(value) > MAX_IN_VALUES:
                raise _refused(f"{where}.$all", f"expects a list of at most {MAX_IN_VALUES} values")
            alls: list[FilterNode] = []  # MongoDB: every value is an element ([] matches nothing)
            for i, item in enumerate(value):
                if isinstance(item, Mapping | list | tuple):
                    raise InvalidFilter(
                        f"{where}.$all[{i}]: $all takes scalar values here (string, number, "
                        "boolean or null), not objects or arrays; for several conditions on "
                        'elements, combine $elemMatch filters with $and ({"$and": [{"f": '
                        '{"$elemMatch": ...}}, ...]})',
                        field=f"{where}.$all[{i}]",
                    )
                alls.append(Compare(path, "eq", _scalar(item, f"{where}.$all[{i}]")))
            tests.append(And(tuple(alls)) if alls else Or(()))
            continue
        if key == "$elemMatch":
            tests.append(_elem_match(path, value, f"{where}.$elemMatch", depth + 1))
            continue
        op = _FIELD_OPS.get(key)
        if op is None:
            known = ", ".join([*_FIELD_OPS, *_COMPOUND_OPS])
            problem = f"unknown operator {json_text(key, 80)}; known operators: {known}"
            raise _refused(f"{where}.{name_text(key)}", problem)
        tests.append(_compare(path, op, value, f"{where}.{key}"))
    return tests[0] if len(tests) == 1 else And(tuple(tests))


def _is_operator_spec(spec: Mapping[object, object]) -> bool:
    """``{"$gt": 1, "$not": {"$lt": 0}}`` (tests of one value), not a filter (``{"role": "user"}``)."""
    return all(
        isinstance(k, str)
        and (k in _FIELD_OPS or k in _COMPOUND_OPS)
        and (k != "$not" or (isinstance(v, Mapping) and _is_operator_spec(v)))
        for k, v in spec.items()
    )


def _elem_match(path: tuple[str, ...], spec: object, where: str, depth: int) -> ElemMatch:
    if not isinstance(spec, Mapping) or not spec:
        raise InvalidFilter(
            f'{where}: expects a filter on each element ({{"role": "user"}}) or operators '
            '({"$gte": 2}); an empty {} is refused: name what an element must match',
            field=where,
        )
    if _is_operator_spec(spec):
        return ElemMatch(path, _field_ops((), spec, where, depth), scalar=True)
    return ElemMatch(path, _parse(spec, where, depth), scalar=False)


def _compare(path: tuple[str, ...], op: CompareOp, value: object, where: str) -> Compare:
    if op in ("in", "nin"):
        if not isinstance(value, list | tuple):
            raise _refused(where, "expects a list of values")
        if len(value) > MAX_IN_VALUES:
            raise _refused(where, f"at most {MAX_IN_VALUES} values")
        return Compare(path, op, tuple(_scalar(v, f"{where}[{i}]") for i, v in enumerate(value)))
    if op == "exists":
        if not isinstance(value, bool):
            raise _refused(where, "expects true or false")
        return Compare(path, op, value)
    if op == "size":
        # 2.0 is 2 (numbers are equal by value); 2.5 and true are no number of elements.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**31:
            raise _refused(where, "expects a whole number of elements (0 or more)")
        return Compare(path, op, value)
    if op == "regex":
        if not isinstance(value, str) or len(value) > MAX_REGEX_LENGTH:
            raise _refused(
                where, f"expects a regular expression of at most {MAX_REGEX_LENGTH} characters"
            )
        problem = pattern_problem(value)
        if problem is not None:
            # RE2 syntax matches in linear time, so there is no catastrophic pattern to guard against.
            raise InvalidFilter(
                f"{where}: {json_text(value, 80)} is not a valid RE2 regular expression ({problem}); $regex "
                "takes RE2 syntax, which has no backreferences or look-around (docs/filters.md)",
                field=where,
            )
        return Compare(path, op, value)
    scalar = _scalar(value, where)
    if op in ("gt", "gte", "lt", "lte") and scalar is None:
        raise _refused(where, "cannot order against null; use $exists")
    if op == "contains" and scalar is None:
        raise _refused(where, "expects a string, number or boolean")
    return Compare(path, op, scalar)


def _parse(spec: object, where: str, depth: int) -> FilterNode:
    if depth > MAX_DEPTH:
        raise _refused(where, f"filter nested deeper than {MAX_DEPTH} levels")
    if not isinstance(spec, Mapping):
        raise _refused(where, 'a filter must be an object such as {"label": "positive"}')
    nodes: list[FilterNode] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise _refused(where, "keys must be strings")
        sub = f"{where}.{name_text(key)}"
        if key in ("$and", "$or"):
            if not isinstance(value, list):
                raise _refused(sub, "expects a list of filters")
            children = tuple(_parse(v, f"{sub}[{i}]", depth + 1) for i, v in enumerate(value))
            nodes.append(And(children) if key == "$and" else Or(children))
        elif key == "$not":
            nodes.append(Not(_parse(value, sub, depth + 1)))
        elif key.startswith("$"):
            known = ", ".join(_LOGICAL_OPS)
            raise _refused(
                sub, f"unknown operator {json_text(key, 80)} at this level; use one of {known}"
            )
        else:
            path = validate_path(key, sub, indexes=True)
            if (
                isinstance(value, Mapping)
                and value
                and all(isinstance(k, str) and k.startswith("$") for k in value)
            ):
                nodes.append(_field_ops(path, value, sub, depth + 1))
            elif isinstance(value, Mapping) and any(
                isinstance(k, str) and k.startswith("$") for k in value
            ):
                raise _refused(sub, "do not mix operators and plain keys in one object")
            else:
                nodes.append(Compare(path, "eq", _scalar(value, sub)))
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def parse_filter(spec: object, field: str = "filter") -> FilterNode | None:
    """Parse a wire filter into a tree; ``None`` or ``{}`` means "match everything".

    Raises:
        InvalidFilter: names the offending key path (``filter.age.$gt``), or the clause limit.
    """
    if spec is None or (isinstance(spec, Mapping) and not spec):
        return None
    check_filter_size(spec, field)  # before anything costs in proportion to it
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
        path = validate_path(text, where)
        if not _IDENT.fullmatch(path[0]):
            raise InvalidFilter(
                f"{where}: {json_text(text, 80)}: in the text form of orderBy ('name', '-name', 'name desc') a "
                'field is a dotted path of identifiers; give other names as {"field": "Order '
                'Total", "direction": "desc"}',
                field=where,
            )
        return SortKey(path, descending)
    if isinstance(item, Mapping):
        extra = set(item) - {"field", "direction"}
        if extra:
            shown = ", ".join(json_text(k, 80) for k in sorted(extra, key=str)[:5])
            raise _refused(where, f"unknown keys {shown}; use {{field, direction}}")
        direction = item.get("direction", "asc")
        return SortKey(
            validate_path(item.get("field"), f"{where}.field"), _direction(direction, where)
        )
    raise _refused(where, 'expects {"field": ..., "direction": "asc"|"desc"} or a field name')


def _direction(value: object, where: str) -> bool:
    if isinstance(value, str) and value.lower() in ("asc", "desc"):
        return value.lower() == "desc"
    raise InvalidFilter(
        f'{where}.direction: expects "asc" or "desc", got {json_text(value, 80)} (a field whose '
        'name holds spaces is given as {"field": "Order Total"})',
        field=f"{where}.direction",
    )


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
        raise _refused(field, "expects a list of {field, direction}")
    if len(items) > MAX_SORT_KEYS:
        raise _refused(field, f"at most {MAX_SORT_KEYS} sort keys")
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
        raise _refused(field, "expects a list of field paths")
    return tuple(
        validate_path(s.strip() if isinstance(s, str) else s, f"{field}[{i}]")
        for i, s in enumerate(spec)
    )
