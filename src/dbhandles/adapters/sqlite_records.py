"""How a SQLite session reads a collection's rows so that every filter, count, sort and facet judges
the value a read shows (docs/filters.md "Values").

A row's ``data`` is either *plain* (``sqlite_values.plain``: it starts an object and holds no
``\\u`` escape: every text dbhandles writes), which SQLite's JSON functions read exactly as
``sqlite_values.loads`` does, or was written by another tool and is read through
``sqlite_values.RECORD_FUNCTION`` (canonical text, NULL when unreadable). ``guarded`` tests each row
once (one ``instr``) and runs the filter compiled for the stored text or for the canonical one;
``source`` gives the whole table that way, for sorts by a field and for facets (the test repeats
at each use of ``data`` there). Text that is not JSON makes SQLite fail the query
(``malformed JSON``); the session then runs it ``exact``: every row read canonically.
"""

from __future__ import annotations

from typing import Any

from dbhandles.adapters.base import Record
from dbhandles.adapters.sql_compile import Fragment, SqlCompiler, and_
from dbhandles.adapters.sqlite_compile import SqliteDialect
from dbhandles.adapters.sqlite_values import RECORD_FUNCTION, loads, plain, record_source
from dbhandles.filters import FilterNode

__all__ = ["EXACT_COMPILER", "decode_all", "exact_where", "guarded", "source"]


def decode_all(rows: list[Any]) -> tuple[list[Record], bool]:
    """``_decode`` of every row (``record_from_columns`` written out in the loop: a listing's hot
    path, no two calls per row), and whether every row could be read. A key written twice by
    another tool reads as SQLite's JSON functions read it, its first value (``sqlite_values``); a
    row ``loads`` cannot read as an object is left out."""
    try:
        return [
            {"id": i, **loads(d), "createdAt": c, "updatedAt": u, "version": v}
            for i, d, c, u, v in rows
        ], True
    except (ValueError, TypeError, RecursionError):
        return [
            {"id": i, **fields, "createdAt": c, "updatedAt": u, "version": v}
            for i, d, c, u, v in rows
            if type(fields := _readable(d)) is dict
        ], False


def _readable(text: str) -> Any:
    try:
        return loads(text)
    except (ValueError, RecursionError):
        return None


def source(table: str, exact: bool = False) -> str:
    """The collection stored as ``table`` as every query reads it: ``data`` as
    ``sqlite_values.record_source`` gives it (canonical where another tool wrote escapes), the
    rows it cannot read left out. ``LIMIT -1`` keeps the inner query a co-routine SQLite does not
    flatten, so that test runs once per row rather than at each use of ``data`` (a facet uses it
    three times); the queries that take this form scan the whole table anyway (a sort by a field,
    facets, samples)."""
    data = record_source("data", exact=exact)
    inner = f"SELECT id, {data} AS data, created_at, updated_at, version FROM {table} LIMIT -1"
    return f"(SELECT * FROM ({inner}) WHERE data IS NOT NULL)"


#: The filter compiler over a record read canonically (``sqlite_values.RECORD_FUNCTION``).
EXACT_COMPILER = SqlCompiler(SqliteDialect(f"{RECORD_FUNCTION}(data)", record=True))
_EXACT_WHERES: dict[str, Fragment] = {}


def exact_where(node: FilterNode | None) -> Fragment:
    """``node`` compiled by ``EXACT``, remembered as ``SqliteAdapter.where`` remembers its own."""
    key = repr(node)
    found = _EXACT_WHERES.get(key)
    if found is None:
        found = EXACT_COMPILER.where(node)
        if len(_EXACT_WHERES) >= 256:
            _EXACT_WHERES.clear()
        _EXACT_WHERES[key] = found
    return found


def guarded(where: Fragment, exact_where: Fragment, exact: bool) -> Fragment:
    """One condition testing each row once: ``where`` on its stored text where that text is one
    SQLite's JSON functions read as ``loads`` does (``sqlite_values.plain``), else ``exact_where``
    on its canonical text (no row when there is none). Every row takes the second way when
    ``exact``. One ``instr`` per row, where ``source`` repeats it at each use of ``data``."""
    readable = Fragment(f"{RECORD_FUNCTION}(data) IS NOT NULL")
    slow = and_(readable, exact_where)
    if exact:
        return slow
    return Fragment(
        f"(CASE WHEN {plain('data')} THEN ({where.sql}) ELSE ({slow.sql}) END)",
        (*where.params, *slow.params),
    )
