"""``check_filter_size``: the bound on the clauses one filter may hold, checked before it is parsed.

A filter's cost grows with its clauses at every step after the wire: the tree, the SQL an adapter
compiles (each field test through arrays is a subquery), SQLite's and PostgreSQL's planning of it,
the memory adapter's plans. ``{"$or": [{"s": "a0"}, ..., {"s": "a9999"}]}`` on a one-record
collection took 36.6 s before its 504, 20,000 clauses 185 s holding both request threads, and the
server's memory grew from 82 to 764 MB (issue 13): the query budget covers the statement, not what
comes before it. So a filter holds at most ``MAX_FILTER_CLAUSES``: each key of each object in it
counts one (a field test, an operator: ``$and``, ``$or``, ``$not``, ``$elemMatch``, ``$gt``...); the
values of one ``$in``/``$nin``/``$all`` list are one clause (bounded apart: ``MAX_IN_VALUES``). The
walk stops at the first clause past the limit, so a huge filter costs no more than an allowed one.
"""

from __future__ import annotations

from collections.abc import Mapping

from dbhandles.errors import InvalidFilter

__all__ = ["MAX_FILTER_CLAUSES", "check_filter_size"]

#: The most clauses one filter may hold (documented in docs/filters.md): an ``$and`` of 1,000
#: ``{field: {"$ne": v}}`` branches (2,001) passes (``tests/contract/test_wide_filters.py``).
MAX_FILTER_CLAUSES = 2_500
#: Operators whose value is a list of sub-filters (each walked); any other list is values.
_FILTER_LISTS = frozenset({"$and", "$or", "$nor"})


def check_filter_size(spec: object, field: str = "filter") -> None:
    """Refuse a filter of more than ``MAX_FILTER_CLAUSES`` clauses.

    Raises:
        InvalidFilter: (``invalid_filter``, an ``invalid_params``) naming the limit.
    """
    stack: list[object] = [spec]
    clauses = 0
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            clauses += len(item)
            if clauses > MAX_FILTER_CLAUSES:
                raise InvalidFilter(
                    f"{field}: the filter holds more than {MAX_FILTER_CLAUSES} clauses (field tests "
                    "and operators; the limit is MAX_FILTER_CLAUSES, docs/filters.md); split the "
                    "query, or test many values of one field with $in",
                    field=field,
                    details={"limit": MAX_FILTER_CLAUSES},
                )
            for key, value in item.items():
                if isinstance(value, Mapping):
                    stack.append(value)
                elif key in _FILTER_LISTS and isinstance(value, list | tuple):
                    stack.extend(value)
