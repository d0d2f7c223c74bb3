"""Compile the filter tree, ``orderBy`` and keyset positions to SQL with bound parameters.

The SQL must agree with ``dbhandles.evaluate`` (the oracle) on every input. Every value has a
*rank* (missing/null 0, booleans 1, numbers 2, strings 3, arrays/objects 4): comparisons succeed
only within one rank, ordering sorts by rank, then by value (ranks 1-3). Every leaf is 0 or 1, never
NULL (a total type guard is ANDed before each comparison), so ``$not``, ``$ne`` and ``$nin`` are
plain ``NOT``. Field paths are validated identifiers embedded as path literals (so an expression
index matches); values, ranks and patterns are bound parameters. Engine differences sit behind
``Dialect`` (``sql_dialect``; ``sqlite_compile``, ``postgres_compile``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dbhandles import budget
from dbhandles.adapters.sql_dialect import Dialect
from dbhandles.adapters.wide_integers import narrowed
from dbhandles.errors import InvalidFilter, InvalidParams
from dbhandles.evaluate import rank as rank_of
from dbhandles.filters import And, Compare, ElemMatch, FilterNode, Not, Or, Scalar, SortKey
from dbhandles.values import check_scalar, json_text

__all__ = [
    "FALSE",
    "RESERVED_COLUMNS",
    "TRUE",
    "Column",
    "Fragment",
    "SqlCompiler",
    "and_",
    "not_",
    "or_",
]

#: Ranks whose members are ordered among themselves (booleans, numbers, strings).
_VALUED = (1, 2, 3)
_ORDER_OPS: Mapping[str, str] = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
#: Negations, compiled as the complement of their positive form.
_NEGATED: Mapping[str, Literal["eq", "in"]] = {"ne": "eq", "nin": "in"}
#: Tests of a value that also test each element of an array there (MongoDB's rule).
_SPREAD = frozenset({"eq", "in", "gt", "gte", "lt", "lte", "regex"})


@dataclass(frozen=True, slots=True)
class Fragment:
    """A piece of SQL and the parameters its placeholders bind, in order."""

    sql: str
    params: tuple[object, ...] = ()


TRUE = Fragment("1")
FALSE = Fragment("0")


def and_(*parts: Fragment) -> Fragment:
    """Conjunction with constant folding (an empty conjunction is ``TRUE``)."""
    kept: list[Fragment] = []
    for part in parts:
        if part == FALSE:
            return FALSE
        if part != TRUE:
            kept.append(part)
    return _join(" AND ", kept, TRUE)


def or_(*parts: Fragment) -> Fragment:
    """Disjunction with constant folding (an empty disjunction is ``FALSE``)."""
    kept: list[Fragment] = []
    for part in parts:
        if part == TRUE:
            return TRUE
        if part != FALSE:
            kept.append(part)
    return _join(" OR ", kept, FALSE)


def not_(part: Fragment) -> Fragment:
    """Negation; only correct because every compiled fragment is 0/1, never NULL."""
    if part == TRUE:
        return FALSE
    if part == FALSE:
        return TRUE
    return Fragment(f"NOT ({part.sql})", part.params)


#: A path with at most this many parts that step into arrays is guarded part by part (one cheap
#: type test per part); a longer one by "the value is missing", so the SQL grows linearly with it.
_GUARDED_PARTS = 8


def _walk(d: Dialect, path: tuple[str, ...]) -> tuple[list[str], str]:
    """``FROM`` items and the JSON expression of one candidate of ``path`` on dialect ``d``
    (``evaluate.candidates``): one ``each`` item per part that may step through an array, so the
    SQL grows linearly with the number of parts."""
    froms: list[str] = []
    current = d.node(path[:1])
    for k, part in enumerate(path[1:]):
        if part.isdigit():
            current = d.index(current, int(part))
        else:
            alias = d.alias(str(k))
            froms.append(d.each(current, alias))
            current = d.key(alias, part)
    return froms, current


def _through(
    d: Dialect,
    path: tuple[str, ...],
    test: Callable[[Dialect, tuple[str, ...]], Fragment],
    spread: bool,
    *,
    nested: bool = False,
) -> Fragment:
    """``SqlCompiler.through`` on dialect ``d``: one flat ``OR`` of ``AND``s (so an index on the
    field can serve every branch, see ``Dialect.index_hint``), linear in the parts of ``path``.

    Branches: no part but the last meets an array and the value there passes (``direct``); or it
    is an array and (``spread``) an element passes; or a part meets an array. For that last case,
    at the record's root and up to ``_GUARDED_PARTS`` such parts, one branch per part ``k``: the
    part before it is an array (read in place), and the rest of the path passes in one of its
    elements, where it is walked again (``nested``). Inside an element, or past
    ``_GUARDED_PARTS`` parts, one branch: the value is missing or null (what any array on the
    path leaves) and some candidate of the path (``_walk``, one lateral ``FROM`` item per part)
    passes, or (``spread``) an element of one.
    """
    mid = [k for k in range(1, len(path)) if not path[k].isdigit()]
    branches = []
    direct = TRUE
    if mid and d.arrays and not nested:
        rows = d.rows_of(path, d.alias("1"))
        if rows is not None:
            return _one_pass(d, path, test, spread, rows)
    if mid and d.arrays:
        hint = Fragment(d.index_hint(path, "missing"))
        if nested or len(mid) > _GUARDED_PARTS:
            meets = Fragment(d.is_missing(path))
            froms, current = _walk(d, path)
            leaf = d.on_json(current)
            inner = test(leaf, ())
            if spread:
                x = leaf.alias("x")
                each = _exists([leaf.elements((), x)], test(leaf.element(x), ()))
                inner = or_(inner, and_(Fragment(leaf.is_kind((), "array")), each))
            # Cheap tests first in each AND (SQLite evaluates in order): most rows fail the first.
            branches.append(and_(meets, hint, _exists(froms, inner)))
        else:
            is_array = [Fragment(d.is_kind(path[:k], "array")) for k in mid]
            meets = or_(*is_array)
            for k, array in zip(mid, is_array, strict=True):
                alias = d.alias(str(k))
                rest = _through(d.inside(alias), path[k:], test, spread, nested=True)
                branches.append(and_(array, _exists([d.elements(path[:k], alias)], rest), hint))
        direct = not_(meets)
    branches.append(and_(test(d, path), direct))
    if spread and d.is_kind(path, "array") != FALSE.sql:
        leaf_alias = d.alias("x")
        elements = _exists([d.elements(path, leaf_alias)], test(d.element(leaf_alias), ()))
        hint = Fragment(d.index_hint(path, "array"))
        branches.append(and_(hint, Fragment(d.is_kind(path, "array")), elements))
    return or_(*branches)


def _one_pass(
    d: Dialect,
    path: tuple[str, ...],
    test: Callable[[Dialect, tuple[str, ...]], Fragment],
    spread: bool,
    rows: tuple[str, str],
) -> Fragment:
    """``_through``'s answer for a path ``f.k`` in one pass over the rows of ``f`` (``rows_of``): an
    element of an array ``f`` where ``k`` passes (walked as ``_through`` does), or the member ``k``
    of an object ``f`` that passes (with ``spread``, or an element of it); or ``f.k`` is missing, ``f``
    no array, and ``test`` passes on a missing value (only ``null`` does: settled unread)."""
    element_row, member_row = rows
    alias = d.alias("1")
    inside = _through(d.inside(alias), path[1:], test, spread, nested=True)
    member = d.element(alias)
    found = test(member, ())
    if spread:
        x = member.alias("x")
        each = _exists([member.elements((), x)], test(member.element(x), ()))
        found = or_(found, and_(Fragment(member.is_kind((), "array")), each))
    either = or_(and_(Fragment(element_row), inside), and_(Fragment(member_row), found))
    missing = and_(
        test(d.on_json("NULL"), ()),
        Fragment(d.is_missing(path)),
        not_(Fragment(d.is_kind(path[:1], "array"))),
    )
    return or_(_exists([d.elements(path[:1], alias)], either), missing)


def _exists(froms: Sequence[str], condition: Fragment) -> Fragment:
    """``EXISTS`` over ``froms`` (lateral ``FROM`` items without parameters) where ``condition``."""
    if condition == FALSE:
        return FALSE
    where = "" if condition == TRUE else f" WHERE {condition.sql}"
    return Fragment(f"EXISTS (SELECT 1 FROM {', '.join(froms)}{where})", condition.params)


#: Past this many operands a conjunction or disjunction is written as a balanced tree.
_FLAT_OPERANDS = 32


def _join(sep: str, parts: list[Fragment], empty: Fragment) -> Fragment:
    if not parts:
        return empty
    if len(parts) == 1:
        return parts[0]
    if len(parts) > _FLAT_OPERANDS:
        # ``a OR b OR c ...`` parses as a chain as deep as it is long, and SQLite refuses an
        # expression deeper than 1000 ("Expression tree is too large"): halves nest log2(n) deep.
        half = len(parts) // 2
        parts = [_join(sep, parts[:half], empty), _join(sep, parts[half:], empty)]
    params: list[object] = []
    for part in parts:
        params.extend(part.params)
    return Fragment(sep.join(f"({p.sql})" for p in parts), tuple(params))


@dataclass(frozen=True, slots=True)
class Column:
    """A reserved field stored in its own column; every row's value there has rank ``rank``."""

    name: str
    rank: int


#: Reserved fields and the columns that hold them (ids and ISO timestamps are strings).
RESERVED_COLUMNS: Mapping[str, Column] = {
    "id": Column("id", 3),
    "createdAt": Column("created_at", 3),
    "updatedAt": Column("updated_at", 3),
    "version": Column("version", 2),
}


def _check_scalar(value: object, where: str) -> None:
    """Refuse values the driver cannot bind faithfully (the oracle has no such limits). Any
    integer passes: a filter's wider one reaches SQLite as a double bound (``wide_integers``), and
    a served row's (a keyset position, a cursor's id) is bound by ``Dialect.bind`` as its JSON
    reads it (PostgreSQL exactly; SQLite as the nearest double)."""
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidFilter(f"{where}: {check_scalar(value, where)}", field=where)
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidFilter(f"{where}: text is not valid Unicode ({exc.reason})") from exc


class SqlCompiler:
    """Turns filter trees, sort keys and keyset positions into SQL for one dialect.

    Args:
        dialect: the engine's fragments.
        columns: reserved fields stored in columns of their own (others live in the JSON document).
    """

    def __init__(self, dialect: Dialect, columns: Mapping[str, Column] = RESERVED_COLUMNS) -> None:
        self.dialect = dialect
        self.columns = columns

    # -- parameters ---------------------------------------------------------------------------

    def _param(self, value: Scalar, where: str = "filter") -> Fragment:
        _check_scalar(value, where)
        return Fragment(self.dialect.placeholder, (self.dialect.bind(value),))

    def _op(self, left: str, op: str, value: Scalar, *, text: bool = False) -> Fragment:
        """``left op ?``; ``text`` orders strings by code point (only matters for <, >)."""
        ph = self._param(value)
        if text and op != "=":
            return Fragment(
                f"{self.dialect.text(left)} {op} {self.dialect.text(ph.sql)}", ph.params
            )
        return Fragment(f"{left} {op} {ph.sql}", ph.params)

    # -- filters ------------------------------------------------------------------------------

    def where(self, node: FilterNode | None) -> Fragment:
        """A total boolean expression equivalent to ``evaluate.matches(node, record)``."""
        if node is None:
            return TRUE
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, And):
            return and_(*(self.where(child) for child in node.children))
        if isinstance(node, Or):
            return or_(*(self.where(child) for child in node.children))
        if isinstance(node, Not):
            return not_(self.where(node.child))
        if isinstance(node, ElemMatch):
            return self._elem_match(node)
        raise InvalidFilter(f"unknown filter node {node!r}")

    def _compare(self, node: Compare) -> Fragment:
        budget.check()  # compiling a wide filter is the query's time too (issue 13)
        wider = narrowed(node, self.dialect.wide_integers)  # integers past 64 bits
        if wider is not None:
            return self.where(wider)
        path, op, value = node.path, node.op, node.value
        if op in _NEGATED:
            return not_(self._compare(Compare(path, _NEGATED[op], value)))
        if op == "exists" and value is False:  # no candidate is present, not "one is absent"
            return not_(self._compare(Compare(path, "exists", True)))
        if isinstance(value, tuple) != (op == "in"):
            raise InvalidFilter(f"{'.'.join(path)}: ${op} does not take this value")
        column = self.columns.get(path[0]) if len(path) == 1 else None
        if column is not None:
            return self._test(self.dialect, path, column, op, value)

        def test(d: Dialect, at: tuple[str, ...]) -> Fragment:
            return self._test(d, at, None, op, value)

        if not path:  # the element itself, in $elemMatch's operator form: never spread
            return test(self.dialect, ())
        return self.through(path, test, spread=op in _SPREAD)

    def _test(
        self, d: Dialect, path: tuple[str, ...], column: Column | None, op: str, value: object
    ) -> Fragment:
        """The positive test ``op`` on the one value at ``path`` (a column, or a JSON field of ``d``)."""
        if op == "in":
            return self._in(d, path, column, value)  # type: ignore[arg-type]
        if op == "eq":
            return self._in(d, path, column, (value,))  # type: ignore[arg-type]
        if op == "exists":
            present = TRUE if column is not None else not_(Fragment(d.is_missing(path)))
            return present if value else not_(present)
        if op == "size":
            if column is not None or not d.arrays:
                return FALSE
            return Fragment(d.size(path), (value,))
        if op == "regex":
            return self._text_test(d, path, column, d.regex, value)  # type: ignore[arg-type]
        if op == "contains":
            return self._contains(d, path, column, value)  # type: ignore[arg-type]
        if op in _ORDER_OPS:
            return self._ordered(d, path, column, _ORDER_OPS[op], value)  # type: ignore[arg-type]
        raise InvalidFilter(f"{'.'.join(path)}: unknown operator ${op}")

    # -- paths through arrays ---------------------------------------------------------------------

    def _mid_arrays(self, path: tuple[str, ...]) -> Fragment:
        """True when a part of ``path`` other than the last meets an array it must look into (past
        ``_GUARDED_PARTS`` such parts: the value is missing or null, which such an array implies)."""
        mid = [k for k in range(1, len(path)) if not path[k].isdigit()]
        if len(mid) > _GUARDED_PARTS and self.dialect.arrays:
            return Fragment(self.dialect.is_missing(path))
        return or_(*(
            Fragment(self.dialect.is_kind(path[:k], "array"))
            for k in range(1, len(path))
            if not path[k].isdigit()
        ))  # fmt: skip

    def through(
        self,
        path: tuple[str, ...],
        test: Callable[[Dialect, tuple[str, ...]], Fragment],
        *,
        spread: bool,
    ) -> Fragment:
        """``test`` holds for some candidate of ``path`` (or, with ``spread``, for some leaf value).

        ``test(dialect, path)`` tests one value. Where no part but the last can meet an array, the
        value at the path is tested directly (an expression index serves this) and, with ``spread``,
        the elements of an array there; otherwise every candidate is walked in a subquery.
        """
        return _through(self.dialect, path, test, spread)

    def _elem_match(self, node: ElemMatch) -> Fragment:
        if not self.dialect.arrays:
            return FALSE

        def test(d: Dialect, at: tuple[str, ...]) -> Fragment:
            alias = d.alias("e")
            element = d.element(alias)
            if node.scalar:
                inner = SqlCompiler(element, {}).where(node.child)
            else:
                child = SqlCompiler(d.inside(alias), {}).where(node.child)
                inner = and_(Fragment(element.is_kind((), "object")), child)
            if inner == FALSE:
                return FALSE
            array = Fragment(d.is_kind(at, "array"))
            return and_(array, _exists([d.elements(at, alias)], inner))

        if not node.path:
            return test(self.dialect, ())
        return self.through(node.path, test, spread=False)

    def _in(
        self,
        d: Dialect,
        path: tuple[str, ...],
        column: Column | None,
        values: Iterable[Scalar],
    ) -> Fragment:
        by_rank: dict[int, list[Scalar]] = {}
        for value in values:
            by_rank.setdefault(rank_of(value), []).append(value)
        parts: list[Fragment] = []
        for r, group in sorted(by_rank.items()):
            if r == 0:
                parts.append(FALSE if column is not None else Fragment(d.is_missing(path)))
            elif column is not None:
                if r == column.rank:
                    parts.append(self._member(d.quote_ident(column.name), group))
            else:
                left = d.value(path, r)
                if r == 3 and d.typed_text and len(group) == 1 and str(group[0])[:1] not in "[{":
                    # Only a text can equal it (Dialect.typed_text); IS is never NULL.
                    parts.append(self._op(left, "IS", group[0]))
                    continue
                parts.append(and_(self._member(left, group), Fragment(d.has_rank(path, (r,)))))
        return or_(*parts)

    def _member(self, left: str, group: list[Scalar]) -> Fragment:
        if len(group) == 1:
            return self._op(left, "=", group[0])
        try:  # every text at once (a lone surrogate is then named by the check of each)
            "".join(group).encode("utf-8")  # type: ignore[arg-type]
        except (TypeError, UnicodeEncodeError):
            for value in group:
                _check_scalar(value, "filter")
        placeholders = ", ".join([self.dialect.placeholder] * len(group))
        return Fragment(f"{left} IN ({placeholders})", tuple(map(self.dialect.bind, group)))

    def _text_test(
        self,
        d: Dialect,
        path: tuple[str, ...],
        column: Column | None,
        test: Callable[[str], str],
        value: Scalar,
    ) -> Fragment:
        if not isinstance(value, str):
            return FALSE
        ph = self._param(value)
        if column is not None:
            if column.rank != 3:
                return FALSE
            return Fragment(test(d.quote_ident(column.name)), ph.params)
        guard = Fragment(d.has_rank(path, (3,)))
        return and_(Fragment(test(d.value(path, 3)), ph.params), guard)

    def _contains(
        self, d: Dialect, path: tuple[str, ...], column: Column | None, value: Scalar
    ) -> Fragment:
        r = rank_of(value)
        if r not in _VALUED:
            return FALSE
        substring = self._text_test(d, path, column, d.substring, value)
        if column is not None:
            return substring
        member = Fragment(d.array_has(path, r), self._param(value).params)
        return or_(substring, member)

    def _ordered(
        self, d: Dialect, path: tuple[str, ...], column: Column | None, op: str, value: Scalar
    ) -> Fragment:
        r = rank_of(value)
        if r not in _VALUED:
            return FALSE
        if column is not None:
            if r != column.rank:
                return FALSE
            return self._op(d.quote_ident(column.name), op, value, text=r == 3)
        guard = Fragment(d.has_rank(path, (r,)))
        return and_(self._op(d.value(path, r), op, value, text=r == 3), guard)

    # -- ordering -----------------------------------------------------------------------------

    def order_by(self, keys: Sequence[SortKey]) -> str:
        """An ``ORDER BY`` list (without the keywords) giving ``evaluate.sort_records``' order."""
        items: list[str] = []
        for key in keys:
            direction = "DESC" if key.descending else "ASC"
            column = self.columns.get(key.path[0]) if len(key.path) == 1 else None
            if column is not None:
                sql = self.dialect.quote_ident(column.name)
                items.append(f"{self.dialect.text(sql) if column.rank == 3 else sql} {direction}")
                continue
            rank_sql, values, _ = self._sort_key(key)
            items.append(f"{rank_sql} {direction}")
            items.extend(f"{expr} {direction}" for expr in values)
        if not any(k.path == ("id",) for k in keys):
            items.append(f"{self.dialect.text(self.dialect.quote_ident('id'))} ASC")
        return ", ".join(items)

    def _sort_key(self, key: SortKey) -> tuple[str, tuple[str, ...], Callable[[int], str]]:
        """The rank, the ordering values and the value of a given rank of ``evaluate.sort_key_value``.

        A field with no array on its path sorts by its value; otherwise a subquery picks the
        smallest leaf value (largest, descending), MongoDB's rule; no leaf at all is rank 0.
        """
        d, path = self.dialect, key.path
        direct_rank, direct_values = d.rank(path), d.sort_values(path)
        arrays = or_(self._mid_arrays(path), Fragment(d.is_kind(path, "array")))
        if arrays == FALSE:
            return direct_rank, direct_values, lambda r: d.value(path, r)
        froms, current = _walk(d, path)
        leaf = d.alias("x")
        froms.append(d.each(current, leaf))
        element = d.element(leaf)
        direction = "DESC" if key.descending else "ASC"
        order = ", ".join(
            f"{expr} {direction}" for expr in (element.rank(()), *element.sort_values(()))
        )

        def pick(expr: str, direct: str, default: str = "NULL") -> str:
            chosen = f"SELECT {expr} FROM {', '.join(froms)} ORDER BY {order} LIMIT 1"
            return (
                f"(CASE WHEN {arrays.sql} THEN COALESCE(({chosen}), {default}) ELSE {direct} END)"
            )

        rank_sql = pick(element.rank(()), direct_rank, "0")
        values = tuple(
            pick(e, v) for e, v in zip(element.sort_values(()), direct_values, strict=True)
        )
        return rank_sql, values, lambda r: pick(element.value((), r), d.value(path, r))

    # -- keyset positions ---------------------------------------------------------------------

    def after(self, keys: Sequence[SortKey], position: Sequence[Any]) -> Fragment:
        """Rows that sort strictly after ``position`` (from ``evaluate.position_of``) under ``keys``.

        Lexicographic over the keys: for some key, every earlier key is equal and this key is
        greater (or smaller, for a descending key); each key compares ``(rank, value)`` pairs.

        Raises:
            InvalidParams: the position does not fit the keys (wrong length or malformed pairs).
        """
        if len(position) != len(keys):
            raise InvalidParams(
                f"after: the position has {len(position)} values but the order has {len(keys)} keys",
                field="after",
            )
        alternatives: list[Fragment] = []
        prefix: list[Fragment] = []
        for i, (key, raw) in enumerate(zip(keys, position, strict=True)):
            r, value = _position(raw, f"after[{i}]")
            beyond, equal = self._key_after(key, r, value)
            alternatives.append(and_(*prefix, beyond))
            prefix.append(equal)
        found = or_(*alternatives)
        first = self.columns.get(keys[0].path[0]) if len(keys[0].path) == 1 else None
        r, value = _position(position[0], "after[0]")
        if first is not None and first.rank == r and len(keys) > 1:
            # The same rows, with the first key's range said on its own: an index on that column
            # serves it (inside the OR, SQLite would split the OR and sort what it found).
            left = self.dialect.quote_ident(first.name)
            found = and_(self._op(left, "<=" if keys[0].descending else ">=", value, text=r == 3),
                         found)  # fmt: skip
        return found

    def _key_after(self, key: SortKey, r: int, value: Scalar) -> tuple[Fragment, Fragment]:
        """(row is beyond the position on this key, row equals it on this key)."""
        op = "<" if key.descending else ">"
        column = self.columns.get(key.path[0]) if len(key.path) == 1 else None
        if column is not None:
            if column.rank != r:
                later = (column.rank > r) != key.descending
                return (TRUE if later else FALSE), FALSE
            left = self.dialect.quote_ident(column.name)
            return self._op(left, op, value, text=r == 3), self._op(left, "=", value)
        rank_sql, _, value_of = self._sort_key(key)
        rank_beyond = self._op(rank_sql, op, r)
        rank_equal = self._op(rank_sql, "=", r)
        if r not in _VALUED:
            return rank_beyond, rank_equal
        # Once the rank is equal the value is non-NULL, so plain comparisons are total here.
        left = value_of(r)
        beyond = or_(rank_beyond, and_(rank_equal, self._op(left, op, value, text=r == 3)))
        return beyond, and_(rank_equal, self._op(left, "=", value))


def _position(raw: object, where: str) -> tuple[int, Scalar]:
    """Validate one ``(rank, value)`` pair of a keyset position (it may come back from JSON)."""
    if not isinstance(raw, tuple | list) or len(raw) != 2:
        raise InvalidParams(f"{where}: expects a [rank, value] pair", field="after")
    r, value = raw
    if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= 4:
        raise InvalidParams(f"{where}: rank must be an integer from 0 to 4", field="after")
    if r not in _VALUED:
        return r, None
    if not isinstance(value, str | int | float) or rank_of(value) != r:
        raise InvalidParams(
            f"{where}: value {json_text(value, 80)} does not have rank {r}", field="after"
        )
    _check_scalar(value, where)
    return r, value
