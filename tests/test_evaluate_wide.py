"""A wide ``$or``/``$and`` (more than ``evaluate._WIDE`` branches) is evaluated with one set lookup
per path; it must answer exactly as the same branches nested two at a time (the plain rule)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dbhandles.evaluate import matches
from dbhandles.filters import And, FilterNode, Or, parse_filter

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, 2.5, -0.5]),
    st.sampled_from(["", "a", "b", "1"]),
)  # fmt: skip
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.fixed_dictionaries({"k": SCALARS}))
RECORDS = st.fixed_dictionaries({}, optional={"a": VALUES, "b": VALUES})
PATHS = st.sampled_from(["a", "b", "a.k", "a.0"])
BRANCHES = st.one_of(
    st.builds(lambda p, v: {p: v}, PATHS, SCALARS),
    st.builds(lambda p, v: {p: {"$ne": v}}, PATHS, SCALARS),
    st.builds(lambda p, v: {p: {"$in": v}}, PATHS, st.lists(SCALARS, min_size=1, max_size=3)),
    st.builds(lambda p, v: {p: {"$nin": v}}, PATHS, st.lists(SCALARS, min_size=1, max_size=3)),
    st.builds(lambda p, v: {p: {"$gt": v}}, PATHS, st.integers(-3, 3)),
)


def _narrow(node: FilterNode) -> FilterNode:
    """The same filter with every ``$or``/``$and`` nested two branches at a time."""
    if isinstance(node, And | Or):
        children = [_narrow(child) for child in node.children]
        kind = type(node)
        while len(children) > 2:
            children = [kind((children[0], children[1])), *children[2:]]
        return kind(tuple(children))
    return node


@settings(max_examples=300, deadline=None)
@given(
    st.lists(RECORDS, min_size=1, max_size=8),
    st.sampled_from(["$or", "$and"]),
    st.lists(BRANCHES, min_size=9, max_size=30),
)
def test_a_wide_filter_answers_as_the_narrow_one(
    records: list[dict[str, Any]], op: str, branches: list[dict[str, Any]]
) -> None:
    node = parse_filter({op: branches})
    narrow = _narrow(node)
    for record in records:
        assert matches(node, record) == matches(narrow, record), (record, branches)
