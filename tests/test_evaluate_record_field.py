"""The shortcuts of ``evaluate._compare`` answer as the rule they stand for (issue 13: a 1,300-value
``$in`` over 300,000 memory records held the GIL for seconds).

A test on a record's own field reads the field without walking the path (``candidates``), a single
leaf value is not spread, ``$in`` is one set lookup per leaf (``_keys_of``) and ``_key`` ranks the
exact JSON types from a table. The reference below is the rule itself: every leaf value of the path
(``leaf_values``), compared with each wanted value by ``_equal`` or ``_value_test``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dbhandles.errors import InvalidFilter
from dbhandles.evaluate import _equal, _key, _value_test, leaf_values, matches, rank
from dbhandles.filters import Compare, parse_filter


class Text(str):
    """A ``str`` subclass: ``_key`` must rank it through ``rank``, as a string."""


class Whole(int):
    """An ``int`` subclass."""


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, 2.5, -0.5]),
    st.sampled_from(["", "a", "b", "1", "0"]),
)  # fmt: skip
STORED = st.one_of(
    SCALARS, st.builds(Text, st.sampled_from(["a", "b"])), st.builds(Whole, st.integers(-1, 1))
)
VALUES = st.recursive(
    STORED,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "k", "0"]), inner, max_size=2),
    max_leaves=6,
)  # fmt: skip
RECORDS = st.dictionaries(st.sampled_from(["a", "b", "0"]), VALUES, max_size=3)
#: One part (the shortcut), a digit (never the shortcut: it indexes arrays), and two parts.
PATHS = st.sampled_from(["a", "b", "0", "a.k", "a.0"])
OPS = st.sampled_from(["$eq", "$ne", "$in", "$nin", "$gt", "$lte", "$regex"])


def _rule(node: Compare, record: Any) -> bool:
    """What the filter means, without any shortcut."""
    op, wanted = node.op, node.value
    if op in ("ne", "nin"):
        return not _rule(Compare(node.path, "eq" if op == "ne" else "in", wanted), record)
    leaves = leaf_values(record, node.path)
    if op == "in":
        return any(_equal(leaf, value) for value in wanted for leaf in leaves)  # type: ignore[union-attr]
    return any(_value_test(op, wanted, leaf) for leaf in leaves)


def _filter(path: str, op: str, wanted: list[Any]) -> Compare:
    if op in ("$in", "$nin"):
        value: Any = wanted
    elif op == "$regex":
        value = "^a|1"
    else:
        value = wanted[0]
    try:
        node = parse_filter({path: {op: value}})
    except InvalidFilter:  # ordering against null, say: refused before any record is read
        assume(False)
        raise
    assert isinstance(node, Compare)
    return node


@settings(max_examples=600, deadline=None)
@given(RECORDS, PATHS, OPS, st.lists(SCALARS, min_size=1, max_size=4))
def test_a_field_test_answers_as_the_rule(
    record: Any, path: str, op: str, wanted: list[Any]
) -> None:
    node = _filter(path, op, wanted)
    assert matches(node, record) == _rule(node, record)


@given(VALUES)
def test_key_ranks_as_rank(value: Any) -> None:
    assert _key(value)[0] == rank(value)
    assert _key(value) == _key(value)  # (hashable, stable): what the ``$in`` set holds


def test_in_finds_a_value_among_many() -> None:
    wanted = [f"tag-{i}" for i in range(1300)]
    node = _filter("tag", "$in", wanted)
    assert matches(node, {"tag": "tag-1299"})
    assert not matches(node, {"tag": "tag-1300"})
    assert matches(node, {"tag": ["x", Text("tag-7")]})  # an array's element, a str subclass
    assert not matches(_filter("n", "$in", [1, 2]), {"n": True})  # type-strict: true is not 1
    assert matches(_filter("n", "$in", [1, 2]), {"n": 1.0})  # 1 is 1.0
