"""PostgreSQL's part of the SQL compiler: the ``jsonb`` dialect, numbers, and Python regexes for ``~``.

``sql_compile.SqlCompiler`` does the compiling; ``PostgresDialect`` supplies the fragments. Three things
need more than a fragment, and live here:

* **Numbers.** ``jsonb`` keeps a number as the decimal its JSON text spells, while the oracle compares
  Python ints and floats exactly by value. Both agree below 2**53. Above it a float stands for an
  integer its shortest text does not spell (``-9.223372036854776e+18`` is -2**63 exactly), so the
  dialect compares a *number key* instead: the stored decimal below 2**53 and beyond 2**63 (only floats
  get there), the exact integer in between. Floats are told apart from integers by their scale:
  ``dump_document`` writes every float with a fraction (``1e+16`` becomes ``10000000000000000.0``),
  which also keeps a float a float when it is read back. ``number_key`` does the same for bound values.
* **Regexes.** ``$regex`` takes Python syntax; ``translate_regex`` rewrites it to a PostgreSQL ARE
  that matches the same strings (``.`` never matches a newline, ``$`` also matches before a final
  newline, ``\\b`` is a word boundary) and refuses what PostgreSQL cannot express.
* **Constants.** The compiler folds constants to ``1``/``0``, which PostgreSQL does not take as
  booleans; ``boolean`` turns a top-level constant into ``TRUE``/``FALSE`` (folding guarantees that
  constants never appear nested).
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from dbhandles.adapters.sql_compile import FALSE, TRUE, Fragment
from dbhandles.adapters.sql_dialect import Dialect
from dbhandles.errors import InvalidFilter
from dbhandles.filters import And, Compare, FilterNode, Not, Or, Scalar

__all__ = [
    "PostgresDialect",
    "boolean",
    "dump_document",
    "number_key",
    "prepare_filter",
    "translate_regex",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
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


# -- regular expressions ----------------------------------------------------------------------------

_FLAGS = re.compile(r"\(\?([aiLmsux]+)\)")
_BOUND = re.compile(r"\{(\d*)(,?)(\d*)\}")


def _refuse(pattern: str, what: str) -> InvalidFilter:
    return InvalidFilter(
        f"$regex: {pattern!r} uses {what}, which PostgreSQL regexes cannot express"
    )


@lru_cache(maxsize=512)
def translate_regex(pattern: str) -> str:
    """A PostgreSQL ARE that matches exactly the strings Python's ``re.search(pattern, s)`` does.

    Raises:
        InvalidFilter: the pattern uses a feature PostgreSQL lacks (named back-references, scoped or
            verbose/ASCII flags, atomic groups, possessive quantifiers, ``\\N{...}``).
    """
    flags: set[str] = set()
    i = 0
    while match := _FLAGS.match(pattern, i):
        flags.update(match.group(1))
        i = match.end()
    for flag, name in (("x", "the verbose flag (?x)"), ("a", "the ASCII flag (?a)"), ("L", "(?L)")):
        if flag in flags:
            raise _refuse(pattern, name)
    out: list[str] = ["(?i)"] if "i" in flags else []
    in_class = False
    class_start = 0
    quantified = False  # the previous token was a quantifier (a '+' now would make it possessive)
    n = len(pattern)
    while i < n:
        c = pattern[i]
        was_quantified, quantified = quantified, False
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if e == "x":  # Python takes exactly two hex digits, PostgreSQL as many as follow
                out.append("\\u00" + pattern[i + 2 : i + 4])
                i += 4
                continue
            if e == "N":
                raise _refuse(pattern, "\\N{...}")
            if e in "bB" and not in_class:
                out.append("\\y" if e == "b" else "\\Y")
            else:
                out.append(c + e)
            i += 2
            continue
        if in_class:
            if c == "]" and i > class_start:
                in_class = False
                out.append("]")
            elif c == "[":  # literal in Python; PostgreSQL would read "[:", "[." or "[=" as a class
                out.append("\\[")
            else:
                out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append("[")
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("\\]")
                i += 1
            class_start = i
            continue
        if c == "(":
            if pattern.startswith("(?P<", i):
                i = pattern.index(">", i) + 1
                out.append("(")
                continue
            if pattern.startswith("(?#", i):
                i = pattern.index(")", i) + 1
                continue
            if pattern.startswith(("(?P=", "(?>", "(?("), i) or re.match(
                r"\(\?[-aiLmsux]+:", pattern[i:]
            ):
                raise _refuse(
                    pattern, "named back-references, atomic groups, conditionals or scoped flags"
                )
            out.append(c)
        elif c == ".":
            out.append("." if "s" in flags else "[^\\n]")
        elif c == "$":
            out.append("(?=\\n|\\Z)" if "m" in flags else "(?=\\n?\\Z)")
        elif c == "^":
            out.append("(?:^|(?<=\\n))" if "m" in flags else "^")
        elif c == "{":
            bound = _BOUND.match(pattern, i)
            if bound is None or not (bound.group(1) or bound.group(2)):
                out.append("\\{")  # not a quantifier: Python reads it as a literal brace
            else:
                low, comma, high = bound.groups()
                out.append("{" + (low or "0") + comma + high + "}")
                i = bound.end()
                quantified = True
                continue
        elif c in "*+?":
            if c == "+" and was_quantified:
                raise _refuse(pattern, "possessive quantifiers")
            quantified = c != "?" or not was_quantified
            out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


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
    point under ``COLLATE "C"`` (the text columns are declared with it too); regexes run under
    ``regex_collation`` (ICU's root locale where the server has it), so ``\\w`` and ``(?i)`` know
    Unicode as Python does.
    """

    placeholder = "%s"

    def __init__(self, column: str = "data", regex_collation: str = "default") -> None:
        self.column = column
        self.regex_collation = regex_collation

    def _parts(self, path: tuple[str, ...]) -> list[str]:
        for part in path:
            if not _IDENT.fullmatch(part):
                raise InvalidFilter(f"{'.'.join(path)!r} is not a valid field path")
        return [f"'{part}'" for part in path]

    def json(self, path: tuple[str, ...]) -> str:
        """The field as ``jsonb`` (NULL when missing)."""
        return " -> ".join([self.column, *self._parts(path)])

    def _text(self, path: tuple[str, ...]) -> str:
        parts = self._parts(path)
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
        return f'(({text_sql}) COLLATE "{self.regex_collation}" ~ %s)'

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

    def index_expressions(self, path: tuple[str, ...]) -> tuple[str, str]:
        """What a declared index on ``path`` is built on: the string and the number comparisons."""
        return self.value(path, 3), self.value(path, 2)
