"""PostgreSQL's part of the SQL compiler: the ``jsonb`` dialect, numbers, and RE2 regexes for ``~``.

``sql_compile.SqlCompiler`` does the compiling; ``PostgresDialect`` supplies the fragments. Three things
need more than a fragment, and live here:

* **Numbers.** ``jsonb`` keeps a number as the decimal its JSON text spells, while the oracle compares
  Python ints and floats exactly by value. Both agree below 2**53. Above it a float stands for an
  integer its shortest text does not spell (``-9.223372036854776e+18`` is -2**63 exactly), so the
  dialect compares a *number key* instead: the stored decimal below 2**53 and beyond 2**63 (only floats
  get there), the exact integer in between. Floats are told apart from integers by their scale:
  ``dump_document`` writes every float with a fraction (``1e+16`` becomes ``10000000000000000.0``),
  which also keeps a float a float when it is read back. ``number_key`` does the same for bound values.
* **Regexes.** ``$regex`` takes RE2 syntax; ``translate_regex`` (``postgres_regex``) rewrites it to
  a PostgreSQL ARE that matches exactly the same strings, or refuses it.
* **Constants.** The compiler folds constants to ``1``/``0``, which PostgreSQL does not take as
  booleans; ``boolean`` turns a top-level constant into ``TRUE``/``FALSE`` (folding guarantees that
  constants never appear nested).
"""

from __future__ import annotations

import re
from decimal import Decimal

from dbhandles.adapters.postgres_regex import translate_regex
from dbhandles.adapters.sql_compile import FALSE, TRUE, Fragment
from dbhandles.adapters.sql_dialect import Dialect, sql_string
from dbhandles.errors import InvalidFilter
from dbhandles.filters import (
    And,
    Compare,
    ElemMatch,
    FilterNode,
    Not,
    Or,
    Scalar,
    check_collection_path,
)

__all__ = [
    "PostgresDialect",
    "boolean",
    "dump_document",
    "number_key",
    "prepare_filter",
    "translate_regex",
]

_EXACT = 2**53
_INT64 = 2**63
_KINDS = {1: ("boolean",), 2: ("number",), 3: ("string",), 4: ("array", "object")}


# -- numbers ----------------------------------------------------------------------------------------

_NUMBER_OR_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?e\+\d+')


def _expand(match: re.Match[bytes]) -> bytes:
    token = match.group(0)
    if token.startswith(b'"'):
        return token
    return format(Decimal(token.decode()), "f").encode() + b".0"


def dump_document(data: bytes) -> bytes:
    """JSON text (from orjson) with every float written with a fraction, so ``jsonb`` keeps it a float.

    orjson writes large floats as ``1e+16``, which ``jsonb`` stores as the integer 10**16; written as
    ``10000000000000000.0`` it keeps a scale, reads back as a float, and the number key knows it.
    """
    if b"e+" not in data:
        return data
    return _NUMBER_OR_STRING.sub(_expand, data)


def number_key(value: int | float) -> int | Decimal:
    """The number key of a Python number (what ``PostgresDialect.value(path, 2)`` gives for it)."""
    if isinstance(value, int):
        return value
    if abs(value) < _EXACT or not -_INT64 <= value < _INT64:
        return Decimal(repr(value))
    return int(value)


def _number_key_sql(j: str) -> str:
    """The number key of a jsonb expression (NULL unless it is a number); see the module docstring."""
    n = f"({j})::numeric"
    f = f"{n}::float8"
    return (
        f"(CASE WHEN jsonb_typeof({j}) = 'number' THEN CASE "
        f"WHEN scale({n}) = 0 OR abs({n}) < {_EXACT} THEN {n} "
        f"WHEN {f} >= (-{_INT64})::float8 AND {f} < ({_INT64})::float8 THEN {f}::int8::numeric "
        f"ELSE {n} END END)"
    )


def prepare_filter(node: FilterNode | None) -> FilterNode | None:
    """The filter with every ``$regex`` pattern translated for PostgreSQL."""
    if node is None:
        return None
    if isinstance(node, Compare):
        if node.op == "regex" and isinstance(node.value, str):
            return Compare(node.path, "regex", translate_regex(node.value))
        return node
    if isinstance(node, And):
        return And(tuple(prepare_filter(c) for c in node.children))  # type: ignore[misc]
    if isinstance(node, Or):
        return Or(tuple(prepare_filter(c) for c in node.children))  # type: ignore[misc]
    if isinstance(node, Not):
        child = prepare_filter(node.child)
        assert child is not None
        return Not(child)
    if isinstance(node, ElemMatch):
        inner = prepare_filter(node.child)
        assert inner is not None
        return ElemMatch(node.path, inner, node.scalar)
    return node


def boolean(fragment: Fragment) -> Fragment:
    """A compiled condition as PostgreSQL takes it (folded constants become TRUE/FALSE)."""
    if fragment == TRUE:
        return Fragment("TRUE")
    if fragment == FALSE:
        return Fragment("FALSE")
    return fragment


# -- the dialect ------------------------------------------------------------------------------------


class PostgresDialect(Dialect):
    """``jsonb`` operators over the ``data`` column; ``%s`` placeholders for psycopg.

    Every expression is error-free on every stored value: casts only happen inside ``CASE`` (the
    planner may reorder ANDed conditions, never the branches of a ``CASE``). Strings compare by code
    point under ``COLLATE "C"`` (the text columns are declared with it too), and so do regexes:
    ``translate_regex`` spells every class and case fold out as code points, so no locale is involved.
    """

    placeholder = "%s"
    arrays = True

    def __init__(self, column: str = "data", depth: int = 0) -> None:
        self.column = column
        self.depth = depth

    def _parts(self, path: tuple[str, ...]) -> list[str]:
        # At the record's root (a collection's ``data``) the first part is a field, never an index.
        check_collection_path(path, top=self.column == "data" and not self.depth)
        # A numeric part indexes an array (``-> 0`` is NULL on an object, as the oracle has it).
        return [part if part.isdigit() else sql_string(part) for part in path]

    def json(self, path: tuple[str, ...]) -> str:
        """The field as ``jsonb`` (NULL when missing)."""
        sql = self.column
        for part in self._parts(path):
            # jsonb keeps a scalar as a one-element array: ``'5'::jsonb -> 0`` is 5, not NULL.
            sql = self.index(sql, int(part)) if part.isdigit() else f"{sql} -> {part}"
        return sql

    def _text(self, path: tuple[str, ...]) -> str:
        parts = self._parts(path)
        if not parts or any(p.isdigit() for p in parts):
            return f"({self.json(path)} #>> '{{}}')"
        return " -> ".join([self.column, *parts[:-1]]) + f" ->> {parts[-1]}"

    def _type(self, path: tuple[str, ...]) -> str:
        return f"COALESCE(jsonb_typeof({self.json(path)}), 'null')"

    def bind(self, value: Scalar) -> object:
        if isinstance(value, float):
            return number_key(value)
        if isinstance(value, str) and "\x00" in value:
            raise InvalidFilter(
                "PostgreSQL text cannot contain NUL (U+0000); no stored value can match"
            )
        return value

    def value(self, path: tuple[str, ...], rank: int) -> str:
        if rank == 1:
            return f"({self.json(path)} = 'true'::jsonb)"
        if rank == 2:
            return _number_key_sql(self.json(path))
        return f'(({self._text(path)}) COLLATE "C")'

    def has_rank(self, path: tuple[str, ...], ranks: tuple[int, ...]) -> str:
        kinds = [k for r in ranks for k in _KINDS[r]]
        if len(kinds) == 1:
            return f"{self._type(path)} = '{kinds[0]}'"
        return f"{self._type(path)} IN ({', '.join(repr(k) for k in kinds)})"

    def is_missing(self, path: tuple[str, ...]) -> str:
        return f"{self._type(path)} = 'null'"

    def rank(self, path: tuple[str, ...]) -> str:
        whens = " ".join(f"WHEN '{k}' THEN {r}" for r, kinds in _KINDS.items() for k in kinds)
        return f"(CASE jsonb_typeof({self.json(path)}) {whens} ELSE 0 END)"

    def sort_values(self, path: tuple[str, ...]) -> tuple[str, ...]:
        # One expression per valued rank, each NULL outside it: rows of one rank differ only in theirs.
        j = self.json(path)
        return (
            f"(CASE WHEN jsonb_typeof({j}) = 'boolean' THEN {j} = 'true'::jsonb END)",
            _number_key_sql(j),
            f"(CASE WHEN jsonb_typeof({j}) = 'string' THEN {self._text(path)} END) COLLATE \"C\"",
        )

    def regex(self, text_sql: str) -> str:
        return f'(({text_sql}) COLLATE "C" ~ %s)'

    def substring(self, text_sql: str) -> str:
        return f"(strpos({text_sql}, %s) > 0)"

    def array_has(self, path: tuple[str, ...], rank: int) -> str:
        j = self.json(path)
        guard = f"{self._type(path)} = 'array'"
        if rank == 1:
            return f"({guard} AND {j} @> jsonb_build_array(%s::boolean))"
        if rank == 3:
            return f"({guard} AND {j} @> jsonb_build_array(%s::text))"
        # Containment compares stored decimals; the number key compares values as the oracle does.
        # The CASE keeps jsonb_array_elements away from non-arrays whatever order the planner picks.
        elements = (
            f"jsonb_array_elements(CASE WHEN jsonb_typeof({j}) = 'array' THEN {j} ELSE '[]' END)"
        )
        return f"({guard} AND EXISTS (SELECT 1 FROM {elements} AS e(v) WHERE {_number_key_sql('e.v')} = %s))"

    def is_kind(self, path: tuple[str, ...], kind: str) -> str:
        return f"{self._type(path)} = '{kind}'"

    def size(self, path: tuple[str, ...]) -> str:
        j = self.json(path)
        return (
            f"({self.is_kind(path, 'array')} AND jsonb_array_length("
            f"CASE WHEN jsonb_typeof({j}) = 'array' THEN {j} ELSE '[]' END) = %s)"
        )

    def index_hint(self, path: tuple[str, ...], kind: str) -> str:
        if self.depth:
            return "1"  # no index reaches inside a subquery
        value = self.value(path, 3)
        if kind == "array":  # ->> gives an array as its JSON text, '[' first
            return f"{value} >= '[' AND {value} < '\\'"
        return f"{value} IS NULL"

    # -- paths through arrays -----------------------------------------------------------------------

    def node(self, path: tuple[str, ...]) -> str:
        return f"({self.json(path)})"

    def index(self, json: str, position: int) -> str:
        # ``json -> n`` gives a scalar itself for n = 0; a CASE testing the kind first would repeat
        # ``json`` (2**n text for n indexes in a row). Strict jsonpath refuses a non-array, silently.
        return f"jsonb_path_query_first({json}, 'strict $[{int(position)}]', '{{}}', true)"

    def key(self, alias: str, part: str) -> str:
        return f"({alias}.v -> {self._parts((part,))[0]})"

    def each(self, json: str, alias: str, *, arrays_only: bool = False) -> str:
        other = "'[]'::jsonb" if arrays_only else f"jsonb_build_array({json})"
        return (
            f"jsonb_array_elements(CASE WHEN jsonb_typeof({json}) = 'array' THEN {json} "
            f"ELSE {other} END) AS {alias}(v)"
        )

    def element(self, alias: str) -> PostgresDialect:
        return PostgresDialect(f"{alias}.v", self.depth + 1)

    def on_json(self, json: str) -> PostgresDialect:
        return PostgresDialect(json, self.depth + 1)

    def object_of(self, alias: str) -> str:
        return f"{alias}.v"

    def index_expressions(self, path: tuple[str, ...]) -> tuple[str, str]:
        """What a declared index on ``path`` is built on: the string and the number comparisons."""
        return self.value(path, 3), self.value(path, 2)
